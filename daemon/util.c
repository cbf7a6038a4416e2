/* util.c — allocation that cannot fail, clocks, refs. */
#include "gsd.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static void *check(void *p)
{
    if (p == NULL) {
        log_msg(LOG_ERR, "out of memory");
        abort();
    }
    return p;
}

void *xmalloc(size_t n)
{
    return check(malloc(n ? n : 1));
}

void *xcalloc(size_t n, size_t size)
{
    return check(calloc(n ? n : 1, size ? size : 1));
}

void *xrealloc(void *p, size_t n)
{
    return check(realloc(p, n ? n : 1));
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

int64_t loop_clock_ms;

int64_t loop_clock_tick(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return loop_clock_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
