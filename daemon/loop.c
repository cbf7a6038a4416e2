/* loop.c — the one event loop.
 *
 * Two priorities (gsd.h): the daemon's own timers (the watchdog's
 * heartbeat, call deadlines, servers' timers, signals) run first in every
 * pass, client work (connections' rounds, scheduler turns) after them.
 * libevent runs only the most urgent priority that has work in a pass, and
 * goes back to polling, and so to the timers, once a pass has spent
 * LOOP_PASS_MS on client work: each piece of client work is bounded on its
 * own (a round, a turn), so no amount of it delays a timer by more than a
 * pass plus the callback running at that moment. Client work has one
 * priority: what becomes due goes behind what is due already, so nothing
 * waits behind work that came later. */
#include "gsd.h"

struct event_base *loop_base;
bool shutting_down;

#define LOOP_PASS_MS 5

void loop_init(void)
{
    struct event_config *cfg = event_config_new();
    /* One thread: no locks. */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    struct timeval pass = {0, LOOP_PASS_MS * 1000};
    event_config_set_max_dispatch_interval(cfg, &pass, -1, LOOP_PRIO_CLIENT);
    loop_base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (loop_base == NULL || event_base_priority_init(loop_base, LOOP_PRIOS) < 0) {
        log_msg(LOG_ERR, "cannot create the event loop");
        abort();
    }
}

void loop_free(void)
{
    if (loop_base)
        event_base_free(loop_base);
    loop_base = NULL;
}

void loop_arm(struct event *ev, int64_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    event_add(ev, &tv);
}

struct event *loop_event(int prio, evutil_socket_t fd, short what, event_callback_fn fn, void *arg)
{
    struct event *ev = event_new(loop_base, fd, what, fn, arg);
    event_priority_set(ev, prio);
    return ev;
}
