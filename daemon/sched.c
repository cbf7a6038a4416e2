/* sched.c — the run queue: every server with mail gets a bounded share of
 * each loop turn (SCHED_PER_SERVER messages), a turn is bounded in
 * messages and in time (LOOP_SLICE_US), and the loop polls its sockets
 * between turns. A connection's round, which may run callbacks at once,
 * is bounded the same way (sched_round_begin). Servers that have ended
 * are freed here too, by an event of their own. */
#include "gsd.h"

static TAILQ_HEAD(, server) runq = TAILQ_HEAD_INITIALIZER(runq);
static struct event *kick; /* made active: runs in this loop pass */
static struct event *turn; /* a zero timer: runs after the next poll */
static bool pending;       /* a turn is due (or running) */
static unsigned woken;     /* messages posted since the last turn */
static unsigned now_left;  /* messages the current round may still handle at once */
static int64_t slice_from; /* loop_clock_us as the current round or turn began */
static struct event *reaper; /* made active: frees the servers that have ended */
/* Ended servers, to be freed, linked by run_link: off the run queue for
 * good (sched_forget, and sched_wake refuses them). */
static TAILQ_HEAD(, server) ended = TAILQ_HEAD_INITIALIZER(ended);

/* Up to this many messages posted in one loop pass are served in that
 * pass; more wait for one poll, which gathers more work per turn. */
#define KICK_MAX 32

static void sched_turn(evutil_socket_t fd, short what, void *arg);
static void reap(evutil_socket_t fd, short what, void *arg);

void sched_init(void)
{
    kick = event_new(loop_base, -1, 0, sched_turn, NULL);
    turn = evtimer_new(loop_base, sched_turn, NULL);
    reaper = event_new(loop_base, -1, 0, reap, NULL);
}

void sched_free(void)
{
    reap(-1, 0, NULL);
    if (reaper)
        event_free(reaper);
    reaper = NULL;
    if (turn)
        event_free(turn);
    if (kick)
        event_free(kick);
    turn = kick = NULL;
}

/* The first turn after the run queue fills runs in the same loop pass, after
 * the reads that filled it: a light load is answered with no extra poll. A
 * heavy one (over KICK_MAX messages), or a turn that leaves work behind,
 * goes through a zero timer instead: timers run only after the loop has
 * polled its sockets, so more requests are gathered per turn and a deep run
 * queue cannot starve I/O. */
static void arm(void)
{
    if (pending)
        return;
    pending = true;
    event_active(kick, EV_READ, 0);
}

void sched_wake(struct server *s)
{
    woken++;
    if (s->runnable || s->status == SERVER_ENDED)
        return;
    s->runnable = true;
    TAILQ_INSERT_TAIL(&runq, s, run_link);
    arm();
}

/* A round and a turn never run inside one another: they share the slice. */
static void slice_begin(void)
{
    loop_clock_tick();
    slice_from = loop_clock_us;
}

static bool slice_over(void)
{
    return loop_clock_us - slice_from >= LOOP_SLICE_US;
}

void sched_round_begin(void)
{
    now_left = SCHED_PER_TURN;
    slice_begin();
}

bool sched_round_over(void)
{
    return slice_over();
}

bool sched_run_now(void)
{
    if (now_left == 0 || slice_over())
        return false;
    now_left--;
    return true;
}

void sched_forget(struct server *s)
{
    if (!s->runnable)
        return;
    s->runnable = false;
    TAILQ_REMOVE(&runq, s, run_link);
}

/* An event of its own runs with nothing else on the stack: no callback,
 * method or caller still holds a server it frees. */
static void reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    struct server *s;
    while ((s = TAILQ_FIRST(&ended)) != NULL) {
        TAILQ_REMOVE(&ended, s, run_link);
        server_free(s);
    }
}

void sched_reap(struct server *s)
{
    TAILQ_INSERT_TAIL(&ended, s, run_link);
    event_active(reaper, EV_READ, 0);
}

static void sched_turn(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)arg;
    conn_flush_all(); /* what is answered already goes before callbacks that may take long */
    if (what == EV_READ && woken > KICK_MAX) { /* kicked under a heavy load */
        loop_arm(turn, 0);
        return;
    }
    int budget = SCHED_PER_TURN;
    slice_begin();
    while (budget > 0 && !TAILQ_EMPTY(&runq) && !slice_over()) {
        struct server *s = TAILQ_FIRST(&runq);
        TAILQ_REMOVE(&runq, s, run_link);
        s->runnable = false;
        for (int i = 0; i < SCHED_PER_SERVER && budget > 0 && s->status != SERVER_ENDED &&
                        server_has_work(s) && !slice_over();
             i++, budget--)
            server_run_one(s);
        /* Back of the queue if it still has mail: round robin. (A server
         * that posted to itself was queued again already.) */
        if (!s->runnable && s->status != SERVER_ENDED && server_has_work(s)) {
            s->runnable = true;
            TAILQ_INSERT_TAIL(&runq, s, run_link);
        }
    }
    woken = 0;                     /* what it posted is served next turn anyway */
    pending = !TAILQ_EMPTY(&runq); /* wakes during the turn did not kick */
    if (pending)
        loop_arm(turn, 0);
    conn_flush_all();
}
