/*
 * vclock.c — the test harness's virtual clock.
 *
 * This file defines clock_gettime. Linked into a test program (libgsdtest
 * is one relocatable object, so the definition always comes with it), it
 * takes the place of the C library's for every caller that goes through
 * the dynamic linker: the harness's copy of the daemon (now_ms,
 * loop_clock_tick), libevent (its timers read CLOCK_MONOTONIC_COARSE or
 * CLOCK_MONOTONIC through its PLT) and the modules the harness loads (the
 * cache module reads CLOCK_MONOTONIC itself). The monotonic clocks read
 * the virtual time once vclock_start has run, and it moves only when the
 * harness moves it; every other clock, and every read before the first
 * harness, is the real one.
 */
#include "vclock.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static bool on;         /* the monotonic clocks are virtual */
static int64_t virt_ns; /* their reading */
static int (*real_fn)(clockid_t, struct timespec *);

static int raw_clock_gettime(clockid_t id, struct timespec *ts)
{
    return (int)syscall(SYS_clock_gettime, id, ts);
}

int vclock_real(clockid_t id, struct timespec *ts)
{
    if (real_fn == NULL) {
        void *sym = dlsym(RTLD_NEXT, "clock_gettime");
        int (*fn)(clockid_t, struct timespec *) = NULL;
        if (sym)
            memcpy(&fn, &sym, sizeof fn); /* ISO C has no cast from void * to a function */
        real_fn = fn && fn != clock_gettime ? fn : raw_clock_gettime;
    }
    return real_fn(id, ts);
}

static bool virtual_id(clockid_t id)
{
    switch (id) {
    case CLOCK_MONOTONIC:
    case CLOCK_MONOTONIC_COARSE:
    case CLOCK_MONOTONIC_RAW:
    case CLOCK_BOOTTIME:
        return true;
    default:
        return false;
    }
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    if (!on || !virtual_id(id))
        return vclock_real(id, ts);
    ts->tv_sec = (time_t)(virt_ns / 1000000000);
    ts->tv_nsec = (long)(virt_ns % 1000000000);
    return 0;
}

void vclock_start(void)
{
    if (on)
        return;
    /* From the real reading, rounded up to a whole second: the clock never
     * goes back, and whole milliseconds stay whole. */
    struct timespec ts;
    vclock_real(CLOCK_MONOTONIC, &ts);
    virt_ns = ((int64_t)ts.tv_sec + 1) * 1000000000;
    on = true;
}

int64_t vclock_ns(void)
{
    return virt_ns;
}

void vclock_set_ns(int64_t ns)
{
    if (ns > virt_ns)
        virt_ns = ns;
}
