/* util.c — allocation that cannot fail, clocks, refs. */
#include "gsd.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Out of memory, anywhere: one line, then gsp_oom aborts. log_msg formats
 * into stack buffers and allocates nothing (localtime_r read the time zone
 * for the first line, at the start). */
static void oom_log(size_t n)
{
    log_msg(LOG_ERR, "out of memory allocating %zu bytes", n);
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        gsp_oom(n);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        gsp_oom(n * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        gsp_oom(n);
    return q;
}

/* Set before main, so before any allocation: protocol/'s failures log as
 * the daemon's do, and so do libevent's (the daemon does not check
 * event_new for NULL). */
__attribute__((constructor)) static void oom_setup(void)
{
    gsp_oom_hook = oom_log;
    event_set_mem_functions(xmalloc, xrealloc, free);
}

char *xstrndup(const char *s, size_t n)
{
    char *d = xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t loop_clock_ms, loop_clock_us;

int64_t loop_clock_tick(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    loop_clock_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    return loop_clock_ms = loop_clock_us / 1000;
}

const char *value_text(char *buf, size_t size, const msgpack_object *v)
{
    buf[0] = '\0';
    msgpack_object_print_buffer(buf, size, *v);
    buf[size - 1] = '\0';
    return buf;
}

uint64_t next_ref(void)
{
    static uint64_t last;
    return ++last;
}

#define ENC(name, bytes) const struct gsp_span name = {(const uint8_t *)(bytes), sizeof(bytes) - 1}
ENC(enc_nil, "\xc0");
ENC(enc_normal, "\xa6normal");
ENC(enc_shutdown, "\xa8shutdown");
ENC(enc_noproc, "\xa6noproc");
ENC(enc_timeout, "\xa7timeout");
ENC(enc_noconnection, "\xacnoconnection");

/* value_fits for a value that may be too long or too deep: framed. Out of
 * line, so that the short value's path needs no stack frame. */
static __attribute__((noinline)) bool value_fits_framed(const void *p, size_t len,
                                                        unsigned wrapping)
{
    struct gsp_framer f = {0};
    struct gsp_limits lim = {limits.message.max_size - 64, limits.message.max_depth - wrapping};
    size_t n;
    return gsp_framer_feed(&f, p, len, &lim, &n) == GSP_SCAN_DONE && n == len;
}

bool value_fits(const void *p, size_t len, unsigned wrapping)
{
    /* Every container takes a byte: a value this short cannot nest too
     * deep (the values checked here are well formed: encoded by the
     * daemon or framed from the wire). */
    if (len + wrapping <= limits.message.max_depth && len + 64 <= limits.message.max_size)
        return true;
    return value_fits_framed(p, len, wrapping);
}
