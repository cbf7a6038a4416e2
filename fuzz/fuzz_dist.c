/*
 * fuzz_dist.c — libFuzzer target for what an Erlang peer's bytes reach
 * first: distribution frames (4-byte length, 0 a tick) as dist.c cuts
 * them, each packet ('p', control message, payload), the control
 * message's elements and the payload read as terms into msgpack, then
 * that msgpack as the daemon would answer with it, back into a term,
 * which must read as the same msgpack again (the round trip dist.c
 * relies on). Any mismatch aborts.
 */
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gsd.h"

#define MAX_FRAME (1u << 16)
#define DEPTH 24

/* term -> msgpack -> term -> msgpack: the two msgpacks are the same. */
static void round_trip(struct gsp_span t, struct atom_set *seen, msgpack_zone *zone)
{
    static struct gsp_buf a, b, back;
    msgpack_packer pk;
    struct term_marks marks = {0};
    const uint8_t *p = t.ptr;
    a.len = 0;
    gsp_packer_init(&pk, &a);
    if (!term_to_mp(&p, t.ptr + t.len, &a, &pk, DEPTH, seen, &marks)) {
        free(marks.v);
        return;
    }
    msgpack_object v, *tuples = NULL, *bins = NULL;
    size_t nt = 0, nb = 0;
    if (!gsp_decode(a.data, a.len, zone, &v))
        abort(); /* what term_to_mp packs always decodes */
    if (marks.n) {
        tuples = msgpack_zone_malloc(zone, marks.n * sizeof *tuples);
        bins = msgpack_zone_malloc(zone, marks.n * sizeof *bins);
    }
    for (size_t i = 0; i < marks.n; i++) {
        msgpack_object o;
        if (!gsp_decode(a.data + marks.v[i].off, marks.v[i].len, zone, &o))
            abort(); /* each mark is one whole value */
        if (marks.v[i].kind == TERM_MARK_TUPLE)
            tuples[nt++] = o;
        else
            bins[nb++] = o;
    }
    free(marks.v);
    struct term_ctx ctx = {seen, NULL, tuples, bins, nt, nb, "gsd@fuzz", 8, false};
    back.len = 0;
    if (!mp_to_term(&v, &back, &ctx, DEPTH + 1))
        abort();
    p = back.data;
    b.len = 0;
    gsp_packer_init(&pk, &b);
    if (!term_to_mp(&p, back.data + back.len, &b, &pk, DEPTH, NULL, NULL) ||
        p != back.data + back.len || a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct atom_set seen = {0};
    msgpack_zone *zone = msgpack_zone_new(4096);
    size_t at = 0;
    while (size - at >= 4) {
        uint32_t len = (uint32_t)data[at] << 24 | (uint32_t)data[at + 1] << 16 |
                       (uint32_t)data[at + 2] << 8 | data[at + 3];
        at += 4;
        if (len == 0) /* a tick */
            continue;
        if (len > MAX_FRAME || size - at < len)
            break;
        struct gsp_span ctl, msg, el[DIST_CONTROL_MAX];
        unsigned n;
        if (dist_packet(data + at, len, &ctl, &msg)) {
            const uint8_t *q = ctl.ptr;
            if (!term_skip(&q, ctl.ptr + ctl.len, GSP_MAX_DEPTH_HARD, &seen))
                abort(); /* dist_packet checked it */
            if (dist_control(ctl, el, &n) >= 0)
                for (unsigned i = 0; i < n; i++)
                    round_trip(el[i], &seen, zone);
            round_trip(ctl, &seen, zone);
            if (msg.ptr)
                round_trip(msg, &seen, zone);
        } else /* a bare term, for the decoder's sake */
            round_trip((struct gsp_span){data + at, len}, &seen, zone);
        msgpack_zone_clear(zone);
        at += len;
    }
    atoms_free(&seen);
    msgpack_zone_free(zone);
    return 0;
}
