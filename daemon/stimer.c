/* stimer.c — a server's own timers (gs_timer_start): a message for its
 * handle_info after a delay. They end with the server. */
#include "gsd.h"

#include <stdlib.h>
#include <string.h>

struct stimer {
    uint64_t ref;
    struct server *server;
    struct event *ev;
    LIST_ENTRY(stimer) link;
    size_t len;
    uint8_t msg[];
};

static void stimer_free(struct stimer *t)
{
    LIST_REMOVE(t, link);
    if (--t->server->ntimers < limits.timers)
        t->server->timers_logged = false;
    event_free(t->ev);
    free(t);
}

static void stimer_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct stimer *t = arg;
    server_post(t->server, MSG_INFO, t->ref, t->msg, t->len);
    stimer_free(t);
}

uint64_t stimer_start(struct server *s, int64_t ms, const void *msg, size_t len, uint64_t ref)
{
    if (limits.timers && s->ntimers >= limits.timers) {
        if (!s->timers_logged)
            log_msg(LOG_WARN,
                    "server %llu (%s): %u timers pending, the limit; gs_timer_start fails",
                    (unsigned long long)s->id, s->name ? s->name : "-", s->ntimers);
        s->timers_logged = true;
        return 0;
    }
    s->ntimers++;
    struct stimer *t = xmalloc(sizeof *t + len);
    t->ref = ref ? ref : next_ref();
    t->server = s;
    t->len = len;
    memcpy(t->msg, msg, len);
    t->ev = loop_event(LOOP_PRIO_OWN, -1, 0, stimer_fire, t);
    LIST_INSERT_HEAD(&s->timers, t, link);
    loop_arm(t->ev, ms < 0 ? 0 : ms);
    return t->ref;
}

int stimer_cancel(struct server *s, uint64_t ref)
{
    struct stimer *t;
    LIST_FOREACH(t, &s->timers, link)
    {
        if (t->ref == ref) {
            stimer_free(t);
            return 0;
        }
    }
    return -1;
}

void stimer_clear(struct server *s)
{
    while (!LIST_EMPTY(&s->timers))
        stimer_free(LIST_FIRST(&s->timers));
}
