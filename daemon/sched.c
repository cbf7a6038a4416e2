/* sched.c — the run queue: every server with mail gets a bounded share of
 * each loop turn, and the loop polls its sockets between turns. */
#include "gsd.h"

static TAILQ_HEAD(, server) runq = TAILQ_HEAD_INITIALIZER(runq);
static struct event *turn;

static void sched_turn(evutil_socket_t fd, short what, void *arg);

void sched_init(void)
{
    turn = evtimer_new(loop_base, sched_turn, NULL);
}

void sched_free(void)
{
    if (turn)
        event_free(turn);
    turn = NULL;
}

/* A zero timer, not event_active: timers run only after the loop has polled
 * its sockets, so a deep run queue cannot starve I/O. */
static void arm(void)
{
    if (!evtimer_pending(turn, NULL))
        loop_arm(turn, 0);
}

void sched_wake(struct server *s)
{
    if (s->runnable || s->status == SERVER_ENDED)
        return;
    s->runnable = true;
    server_ref(s);
    TAILQ_INSERT_TAIL(&runq, s, run_link);
    arm();
}

void sched_forget(struct server *s)
{
    if (!s->runnable)
        return;
    s->runnable = false;
    TAILQ_REMOVE(&runq, s, run_link);
    server_unref(s);
}

static void sched_turn(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    int budget = SCHED_PER_TURN;
    while (budget > 0 && !TAILQ_EMPTY(&runq)) {
        struct server *s = TAILQ_FIRST(&runq);
        TAILQ_REMOVE(&runq, s, run_link);
        s->runnable = false;
        for (int i = 0; i < SCHED_PER_SERVER && budget > 0 && s->status != SERVER_ENDED &&
                        !STAILQ_EMPTY(&s->mbox.q);
             i++, budget--)
            server_run_one(s);
        /* Back of the queue if it still has mail: round robin. (A server
         * that posted to itself was queued again already, with a ref of
         * its own.) */
        if (!s->runnable && s->status != SERVER_ENDED && !STAILQ_EMPTY(&s->mbox.q)) {
            s->runnable = true;
            TAILQ_INSERT_TAIL(&runq, s, run_link);
        } else
            server_unref(s);
    }
    if (!TAILQ_EMPTY(&runq))
        arm();
    conn_flush_all();
}
