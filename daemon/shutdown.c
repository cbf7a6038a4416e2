/* shutdown.c — the orderly shutdown, as OTP's supervisors do it: servers
 * are stopped one at a time, the last started first, each with a stop
 * ordered after what its mailbox holds; the next is stopped once it has
 * ended. Every message accepted before the signal is so handled, and a
 * server can still call the ones started before it while it drains. New
 * work from clients is refused meanwhile (method.c). Whatever has not
 * ended after limits.shutdown_ms (0: no limit), or at a second signal, is
 * ended at once, and the messages it still held are counted in the log. */
#include "gsd.h"

#include <stdlib.h>

#define DRAIN_CHECK_MS 10 /* how often the time limit and the end are looked at */

static uint64_t *order; /* ids, the last started first */
static size_t norder, next;
static uint64_t current; /* the server whose stop is on its way; 0 none */
static struct event *check;
static int64_t deadline;
static bool finished;

static void collect(struct server *s, void *arg)
{
    (void)arg;
    order[norder++] = s->id;
}

/* Stops the next server once the one before it has ended. */
static void advance(void)
{
    while (!finished && !(current && registry_by_id(current)) && next < norder) {
        current = order[next++];
        struct server *s = registry_by_id(current);
        if (s)
            server_post(s, MSG_STOP, 0, enc_shutdown.ptr, enc_shutdown.len);
    }
}

void shutdown_server_ended(void)
{
    if (shutting_down)
        advance();
}

/* Ends s at once; counts what it still held but the shutdown's own stop. */
static void end_now(struct server *s, void *arg)
{
    uint64_t *dropped = arg;
    struct msg *m;
    STAILQ_FOREACH(m, &s->mbox.q, link)
    *dropped += m->kind != MSG_STOP || m->waiter;
    server_end(s, enc_shutdown, NULL);
    scratch_reset();
}

void shutdown_now(void)
{
    if (finished)
        return;
    finished = true;
    unsigned left = registry_count();
    uint64_t dropped = 0;
    registry_foreach(true, end_now, &dropped);
    if (left)
        log_msg(LOG_WARN,
                "shutdown: %u servers had not drained their mailboxes: ended, %llu queued "
                "messages dropped",
                left, (unsigned long long)dropped);
    log_flush(); /* the "ended" lines of many servers, say */
    conn_flush_all();
    event_base_loopbreak(loop_base);
}

static void check_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    if (registry_count() == 0 || (limits.shutdown_ms && now_ms() >= deadline))
        shutdown_now();
}

void shutdown_begin(void)
{
    shutting_down = true;
    order = xmalloc((registry_count() + 1) * sizeof *order);
    registry_foreach(true, collect, NULL);
    deadline = now_ms() + limits.shutdown_ms;
    struct timeval every = {0, DRAIN_CHECK_MS * 1000};
    check = loop_event(LOOP_PRIO_OWN, -1, EV_PERSIST, check_fire, NULL);
    event_add(check, &every);
    advance();
    check_fire(-1, 0, NULL);
}

void shutdown_free(void)
{
    if (check)
        event_free(check);
    check = NULL;
    free(order);
    order = NULL;
}
