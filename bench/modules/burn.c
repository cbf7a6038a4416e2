/*
 * burn — a server whose calls cost a fixed amount of CPU time: the work of
 * a callback that computes, for scaling figures (bench/scaling.sh).
 *
 * args: the microseconds of CPU one call burns, an integer (default 20).
 *
 *   call ["burn", us]   burns us microseconds instead; -> calls so far
 *   call anything else  burns the args' microseconds; -> calls so far
 *
 * The burn is a busy loop that runs until the thread's CPU time
 * (CLOCK_THREAD_CPUTIME_ID) has grown by the microseconds asked, not the
 * wall clock: a call preempted halfway still does all its work, and two
 * workers sharing one core each take twice as long, as real work would.
 * That clock is a system call (about 0.5 us here), so the loop runs most
 * of the way on an estimate of its iterations per microsecond, learnt from
 * the calls before, and reads the clock only a few times per call; the
 * system calls are part of the time burnt.
 */
#include <gsd/module.h>
#include <stdlib.h>
#include <time.h>

static double loops_per_us = 1000; /* learnt, per process */

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void spin(uint64_t loops)
{
    for (uint64_t i = 0; i < loops; i++)
        __asm__ volatile("" ::: "memory"); /* kept: one iteration each */
}

static void burn(int64_t us)
{
    if (us <= 0)
        return;
    uint64_t t0 = cpu_ns(), end = t0 + (uint64_t)us * 1000, t = t0, loops = 0;
    while (t < end) {
        /* 90 % of what is left, then the clock again; a short step at least */
        uint64_t n = (uint64_t)(loops_per_us * (double)(end - t) / 1000.0 * 0.9);
        if (n < 256)
            n = 256;
        spin(n);
        loops += n;
        t = cpu_ns();
    }
    double seen = (double)loops * 1000.0 / (double)(t - t0 ? t - t0 : 1);
    loops_per_us = 0.8 * loops_per_us + 0.2 * seen;
}

struct burn {
    int64_t us;     /* per call */
    uint64_t calls; /* handled */
};

static gs_result burn_init(gs_server *self, const gs_value *args, void **state)
{
    int64_t us = 20;
    if ((!gs_is_nil(args) && !gs_get_int(args, &us)) || us < 0 || us > 10000000)
        return gs_stop(gs_tuple(self, 2, gs_str("badarg"), *args));
    struct burn *b = calloc(1, sizeof *b);
    if (b == NULL)
        return gs_stop(gs_str("enomem"));
    b->us = us;
    *state = b;
    return gs_ok();
}

static gs_result burn_call(gs_server *self, const gs_value *request, gs_from from, void **state)
{
    (void)self, (void)from;
    struct burn *b = *state;
    int64_t us = b->us;
    if (gs_is_tuple(request, "burn", 2) &&
        (!gs_get_int(gs_at(request, 1), &us) || us < 0 || us > 10000000))
        return gs_reply(gs_str("badarg"));
    burn(us);
    return gs_reply(gs_uint(++b->calls));
}

static void burn_terminate(gs_server *self, const gs_value *reason, void **state)
{
    (void)self, (void)reason;
    free(*state);
}

GS_MODULE(.name = "burn", .vsn = 1, .init = burn_init, .handle_call = burn_call,
          .terminate = burn_terminate);
