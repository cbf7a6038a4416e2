/*
 * fuzz_frame.c — libFuzzer target for the protocol decoder: the framer fed
 * in pieces as reads would bring them, then each complete frame's
 * envelope, its params and a full decode, as the daemon reads them; what
 * libgsclient reads of a response's error, an error notification and a
 * down; and the one-pass reader, which must find the same frame and
 * envelope.
 */
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gsp.h"

/* The one-pass reader must find what the framer and the envelope find. */
static void check_one_pass(const uint8_t *p, size_t n, const struct gsp_limits *lim)
{
    struct gsp_envelope once, env;
    size_t once_len, len;
    struct gsp_framer f = {0};
    if (!gsp_request_read(p, n, lim, &once, &once_len))
        return;
    if (gsp_framer_feed(&f, p, n, lim, &len) != GSP_SCAN_DONE || len != once_len ||
        !gsp_envelope_read(p, len, &env) || env.type != once.type ||
        env.has_msgid != once.has_msgid || env.msgid != once.msgid ||
        env.method != once.method || env.method_len != once.method_len ||
        env.nparams != once.nparams || env.params.p != once.params.p ||
        env.params.end != once.params.end)
        abort();
}

/* What libgsclient reads of a message, each span decoded as it would be. */
static void read_as_client(const struct gsp_envelope *env, msgpack_zone *zone)
{
    const char *code;
    uint32_t code_len;
    struct gsp_span detail;
    struct gsp_down d;
    msgpack_object o;
    bool ok = env->type == GSP_RESPONSE
                  ? gsp_error_read(env->error, &code, &code_len, &detail)
                  : gsp_error_notify_read(env, &code, &code_len, &detail);
    if (ok && !gsp_decode(detail.ptr, detail.len, zone, &o))
        abort(); /* a span read in place is a whole value */
    if (env->type == GSP_NOTIFY && gsp_down_read(env, &d) &&
        ((d.name.ptr && !gsp_decode(d.name.ptr, d.name.len, zone, &o)) ||
         (d.reason.ptr && !gsp_decode(d.reason.ptr, d.reason.len, zone, &o))))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first byte picks how the stream is cut into reads. */
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] % 17 + 1;
    data++, size--;
    static const struct gsp_limits lim = {1 << 16, GSP_MAX_DEPTH_DEFAULT};
    struct gsp_framer f = {0};
    msgpack_zone *zone = msgpack_zone_new(4096);
    size_t start = 0, avail = 0, len;
    while (start < size) {
        if (avail == 0)
            check_one_pass(data + start, size - start, &lim);
        avail = avail + step > size - start ? size - start : avail + step;
        enum gsp_scan r = gsp_framer_feed(&f, data + start, avail, &lim, &len);
        if (r == GSP_SCAN_MORE) {
            if (avail == size - start)
                break;
            continue;
        }
        if (r != GSP_SCAN_DONE)
            break;
        struct gsp_envelope env;
        if (gsp_envelope_read(data + start, len, &env) && env.type != GSP_RESPONSE) {
            struct gsp_cursor p = env.params;
            struct gsp_span s;
            for (uint32_t i = 0; i < env.nparams && gsp_get_span(&p, &s); i++) {
                msgpack_object o;
                gsp_decode(s.ptr, s.len, zone, &o);
            }
            read_as_client(&env, zone);
        } else if (env.type == GSP_RESPONSE && env.has_msgid && env.error.ptr)
            read_as_client(&env, zone);
        msgpack_object whole;
        if (!gsp_decode(data + start, len, zone, &whole))
            abort(); /* the framer passed it: msgpack-c must read it */
        msgpack_zone_clear(zone);
        start += len;
        avail = 0;
    }
    msgpack_zone_free(zone);
    return 0;
}
