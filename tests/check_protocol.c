/* check_protocol.c — unit tests of protocol/: framing, envelopes, cursors,
 * values, names, the socket path and the packers. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct gsp_limits deflim = {GSP_MAX_SIZE_DEFAULT, GSP_MAX_DEPTH_DEFAULT};

/* The encoding of v (kept until exit). */
static uint8_t *enc(const msgpack_object *v, size_t *len)
{
    static uint8_t *kept[256];
    static unsigned n;
    uint8_t *b = gsp_encode(v, len);
    free(kept[n % 256]);
    kept[n++ % 256] = b;
    return b;
}

/* Feeds the whole buffer once to a fresh framer. */
static enum gsp_scan scan(const uint8_t *b, size_t len, const struct gsp_limits *lim,
                          size_t *frame_len)
{
    struct gsp_framer f = {0};
    *frame_len = 0;
    return gsp_framer_feed(&f, b, len, lim, frame_len);
}

/* Decodes bytes into a value living until exit. */
static const msgpack_object *dec(const uint8_t *p, size_t len)
{
    static msgpack_zone *z;
    if (z == NULL)
        z = msgpack_zone_new(4096);
    msgpack_object *o = msgpack_zone_malloc(z, sizeof *o);
    ck_assert_msg(gsp_decode(p, len, z, o), "%zu bytes do not decode", len);
    return o;
}

/* ---- framer --------------------------------------------------------------- */

/* An atom's ext (type 0x16) is flagged, in every ext form, and the one-pass
 * reader leaves such a request to the framer; a tuple's (0x17) is not. */
START_TEST(framer_flags_atoms)
{
    static const struct {
        const char *bytes;
        size_t len;
        bool atom;
    } cases[] = {
        {"\x94\x00\x01\xa4"
         "echo\x91\xd4\x16x",
         12, true}, /* fixext 1 */
        {"\x94\x00\x01\xa4"
         "echo\x91\xc7\x02\x16"
         "ab",
         14, true}, /* ext 8 */
        {"\x94\x00\x01\xa4"
         "echo\x91\x92\x01\xd5\x16"
         "ab",
         15, true}, /* nested */
        {"\x94\x00\x01\xa4"
         "echo\x91\xd4\x17\x00",
         12, false}, /* a tuple's marker */
        {"\x94\x00\x01\xa4"
         "echo\x91\xa1x",
         11, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint8_t *b = (const uint8_t *)cases[i].bytes;
        struct gsp_framer f = {0};
        struct gsp_envelope env;
        size_t flen = 0, rlen = 0;
        ck_assert_int_eq(gsp_framer_feed(&f, b, cases[i].len, &deflim, &flen), GSP_SCAN_DONE);
        ck_assert_uint_eq(flen, cases[i].len);
        ck_assert_msg(f.atom == cases[i].atom, "case %zu: atom %d", i, f.atom);
        ck_assert_msg(gsp_request_read(b, cases[i].len, &deflim, &env, &rlen) == !cases[i].atom,
                      "case %zu: the one-pass reader", i);
        /* the flag is the current message's: a plain one after clears it */
        const uint8_t plain[] = "\x94\x00\x02\xa4ping\x90";
        ck_assert_int_eq(gsp_framer_feed(&f, plain, sizeof plain - 1, &deflim, &flen),
                         GSP_SCAN_DONE);
        ck_assert(!f.atom);
    }
}
END_TEST

START_TEST(framer_whole_frame_done)
{
    size_t len, flen;
    const uint8_t *b = enc(mp("[0, 1, 'ping', []]"), &len);
    ck_assert_int_eq(scan(b, len, &deflim, &flen), GSP_SCAN_DONE);
    ck_assert_uint_eq(flen, len);
}
END_TEST

START_TEST(framer_scalar_frames)
{
    size_t flen;
    const uint8_t nil[] = {0xc0}, u64[] = {0xcf, 0, 0, 0, 0, 0, 0, 0, 1};
    const uint8_t fixext[] = {0xd4, 0x01, 0x05}, ext8[] = {0xc7, 0x02, 0x07, 0xaa, 0xbb};
    ck_assert_int_eq(scan(nil, 1, &deflim, &flen), GSP_SCAN_DONE);
    ck_assert_uint_eq(flen, 1);
    ck_assert_int_eq(scan(u64, 9, &deflim, &flen), GSP_SCAN_DONE);
    ck_assert_uint_eq(flen, 9);
    ck_assert_int_eq(scan(u64, 8, &deflim, &flen), GSP_SCAN_MORE);
    ck_assert_int_eq(scan(fixext, 3, &deflim, &flen), GSP_SCAN_DONE);
    ck_assert_uint_eq(flen, 3);
    ck_assert_int_eq(scan(ext8, 5, &deflim, &flen), GSP_SCAN_DONE);
    ck_assert_uint_eq(flen, 5);
    ck_assert_int_eq(scan(ext8, 4, &deflim, &flen), GSP_SCAN_MORE);
}
END_TEST

START_TEST(framer_byte_by_byte)
{
    size_t len, flen = 0;
    const uint8_t *b =
        enc(mp("[0, 4000000000, 'call', ['counter', ['add', -5, 1.5, b'xyz', {'k': [nil]}], "
               "'infinity']]"),
            &len);
    struct gsp_framer f = {0};
    for (size_t i = 1; i < len; i++)
        ck_assert_msg(gsp_framer_feed(&f, b, i, &deflim, &flen) == GSP_SCAN_MORE,
                      "done early at %zu of %zu bytes", i, len);
    ck_assert_int_eq(gsp_framer_feed(&f, b, len, &deflim, &flen), GSP_SCAN_DONE);
    ck_assert_uint_eq(flen, len);
}
END_TEST

START_TEST(framer_frames_back_to_back)
{
    const msgpack_object *msgs[3] = {mp("[0, 1, 'ping', []]"), mp("'just a string'"),
                                     mp("[2, 'cast', ['c', ['add', 1]]]")};
    struct gsp_buf all = {0};
    size_t lens[3];
    for (int i = 0; i < 3; i++) {
        const uint8_t *b = enc(msgs[i], &lens[i]);
        gsp_buf_append(&all, b, lens[i]);
    }
    struct gsp_framer f = {0};
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        size_t flen = 0;
        ck_assert_int_eq(gsp_framer_feed(&f, all.data + off, all.len - off, &deflim, &flen),
                         GSP_SCAN_DONE);
        ck_assert_uint_eq(flen, lens[i]);
        ck_assert_mp_eq(dec(all.data + off, flen), "%v", msgs[i]);
        off += flen;
    }
    ck_assert_uint_eq(off, all.len);
    gsp_buf_free(&all);
}
END_TEST

START_TEST(framer_resumes_after_more)
{
    size_t len, flen = 0;
    const uint8_t *b = enc(mp("[1, 2, nil, 'a longer result string']"), &len);
    struct gsp_framer f = {0};
    ck_assert_int_eq(gsp_framer_feed(&f, b, len / 2, &deflim, &flen), GSP_SCAN_MORE);
    ck_assert_int_eq(gsp_framer_feed(&f, b, len - 1, &deflim, &flen), GSP_SCAN_MORE);
    ck_assert_int_eq(gsp_framer_feed(&f, b, len, &deflim, &flen), GSP_SCAN_DONE);
    ck_assert_uint_eq(flen, len);
    /* reset for the next message: the same bytes frame again from scratch */
    ck_assert_int_eq(gsp_framer_feed(&f, b, len, &deflim, &flen), GSP_SCAN_DONE);
    ck_assert_uint_eq(flen, len);
}
END_TEST

START_TEST(framer_c1_is_invalid)
{
    size_t flen;
    const uint8_t c1[] = {0xc1}, nested[] = {0x93, 0x01, 0xc1, 0x02};
    ck_assert_int_eq(scan(c1, 1, &deflim, &flen), GSP_SCAN_INVALID);
    ck_assert_int_eq(scan(nested, sizeof nested, &deflim, &flen), GSP_SCAN_INVALID);
}
END_TEST

START_TEST(framer_array32_header_too_large_at_five_bytes)
{
    size_t flen;
    const uint8_t a[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    ck_assert_int_eq(scan(a, 1, &deflim, &flen), GSP_SCAN_MORE);
    ck_assert_int_eq(scan(a, 5, &deflim, &flen), GSP_SCAN_TOO_LARGE);
}
END_TEST

START_TEST(framer_map32_header_too_large_at_five_bytes)
{
    size_t flen;
    const uint8_t m[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    ck_assert_int_eq(scan(m, 5, &deflim, &flen), GSP_SCAN_TOO_LARGE);
}
END_TEST

START_TEST(framer_str32_claiming_4gb_too_large)
{
    size_t flen;
    const uint8_t s[] = {0xdb, 0xff, 0xff, 0xff, 0xff}, b[] = {0xc6, 0xff, 0xff, 0xff, 0xff};
    ck_assert_int_eq(scan(s, 5, &deflim, &flen), GSP_SCAN_TOO_LARGE);
    ck_assert_int_eq(scan(b, 5, &deflim, &flen), GSP_SCAN_TOO_LARGE);
}
END_TEST

START_TEST(framer_nested_huge_header_too_large)
{
    size_t flen;
    const uint8_t a[] = {0x94, 0x00, 0x01, 0xa4, 'p', 'i', 'n', 'g', 0xdd, 0x7f, 0xff, 0xff, 0xff};
    ck_assert_int_eq(scan(a, sizeof a, &deflim, &flen), GSP_SCAN_TOO_LARGE);
}
END_TEST

START_TEST(framer_size_at_limit_ok_one_over_too_large)
{
    const struct gsp_limits lim = {16, 32};
    uint8_t at[16], over[17];
    size_t flen;
    at[0] = 0xa0 | 15; /* fixstr of 15: 16 bytes */
    memset(at + 1, 'x', 15);
    over[0] = 0xa0 | 16;
    memset(over + 1, 'x', 16);
    ck_assert_int_eq(scan(at, 16, &lim, &flen), GSP_SCAN_DONE);
    ck_assert_uint_eq(flen, 16);
    ck_assert_int_eq(scan(over, 17, &lim, &flen), GSP_SCAN_TOO_LARGE);
    /* judged from the header alone */
    ck_assert_int_eq(scan(over, 1, &lim, &flen), GSP_SCAN_TOO_LARGE);
}
END_TEST

START_TEST(framer_array_size_at_limit_ok_one_over_too_large)
{
    const struct gsp_limits lim = {16, 32};
    uint8_t at[16], over[17];
    size_t flen;
    at[0] = 0x9f; /* fixarray of 15 nils: 16 bytes */
    memset(at + 1, 0xc0, 15);
    over[0] = 0xdc; /* array16 of 14 nils: 17 bytes */
    over[1] = 0;
    over[2] = 14;
    memset(over + 3, 0xc0, 14);
    ck_assert_int_eq(scan(at, 16, &lim, &flen), GSP_SCAN_DONE);
    ck_assert_uint_eq(flen, 16);
    ck_assert_int_eq(scan(over, 3, &lim, &flen), GSP_SCAN_TOO_LARGE);
}
END_TEST

START_TEST(framer_depth_32_ok)
{
    uint8_t b[33];
    size_t flen;
    memset(b, 0x91, 32); /* 32 nested one-element arrays around nil */
    b[32] = 0xc0;
    ck_assert_int_eq(scan(b, 33, &deflim, &flen), GSP_SCAN_DONE);
    ck_assert_uint_eq(flen, 33);
    /* and msgpack-c can decode what the framer let through */
    const msgpack_object *o = dec(b, 33);
    for (int i = 0; i < 32; i++) {
        ck_assert_int_eq(o->type, MSGPACK_OBJECT_ARRAY);
        o = &o->via.array.ptr[0];
    }
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_NIL);
}
END_TEST

START_TEST(framer_depth_32_empty_innermost_ok)
{
    uint8_t b[32];
    size_t flen;
    memset(b, 0x91, 31);
    b[31] = 0x90; /* the 32nd array, empty */
    ck_assert_int_eq(scan(b, 32, &deflim, &flen), GSP_SCAN_DONE);
    ck_assert_uint_eq(flen, 32);
}
END_TEST

START_TEST(framer_depth_33_too_deep)
{
    uint8_t b[34], e[33];
    size_t flen;
    memset(b, 0x91, 33);
    b[33] = 0xc0;
    memset(e, 0x91, 32);
    e[32] = 0x90;
    ck_assert_int_eq(scan(b, 34, &deflim, &flen), GSP_SCAN_TOO_DEEP);
    ck_assert_int_eq(scan(e, 33, &deflim, &flen), GSP_SCAN_TOO_DEEP);
}
END_TEST

START_TEST(framer_maps_count_depth)
{
    const struct gsp_limits lim = {1024, 2};
    size_t flen;
    const uint8_t two[] = {0x81, 0xa1, 'k', 0x91, 0x01};         /* {k: [1]} */
    const uint8_t three[] = {0x81, 0xa1, 'k', 0x91, 0x81, 1, 2}; /* {k: [{1: 2}]} */
    ck_assert_int_eq(scan(two, sizeof two, &lim, &flen), GSP_SCAN_DONE);
    ck_assert_uint_eq(flen, sizeof two);
    ck_assert_int_eq(scan(three, sizeof three, &lim, &flen), GSP_SCAN_TOO_DEEP);
}
END_TEST

START_TEST(framer_siblings_do_not_add_depth)
{
    const struct gsp_limits lim = {1024, 2};
    size_t flen;
    /* [[1], [2], [[]]] is depth 3; [[1], [2], [3]] is depth 2 */
    const uint8_t flat[] = {0x93, 0x91, 1, 0x91, 2, 0x91, 3};
    const uint8_t deep[] = {0x93, 0x91, 1, 0x91, 2, 0x91, 0x90};
    ck_assert_int_eq(scan(flat, sizeof flat, &lim, &flen), GSP_SCAN_DONE);
    ck_assert_uint_eq(flen, sizeof flat);
    ck_assert_int_eq(scan(deep, sizeof deep, &lim, &flen), GSP_SCAN_TOO_DEEP);
}
END_TEST

/* A buffer of n bytes, nils after the header h[0..hn) (kept until exit). */
static uint8_t *nils_after(const uint8_t *h, size_t hn, size_t n)
{
    static uint8_t *kept;
    free(kept);
    kept = malloc(n);
    ck_assert_ptr_nonnull(kept);
    memset(kept, 0xc0, n);
    memcpy(kept, h, hn);
    return kept;
}

static void put32(uint8_t *p, uint8_t tag, uint32_t n)
{
    p[0] = tag;
    for (int i = 0; i < 4; i++)
        p[1 + i] = (uint8_t)(n >> (24 - 8 * i));
}

/* Each item decodes into a 24-byte msgpack_object: a message of 1 MiB may
 * hold 4 MiB of them, 174762 items, however few bytes they take. */
START_TEST(framer_items_bounded_by_their_decoded_size)
{
    const struct gsp_limits lim = {1u << 20, 32};
    const uint32_t max = (4u << 20) / sizeof(msgpack_object);
    uint8_t h[16];
    size_t flen;
    ck_assert_uint_eq(gsp_max_items(&lim), max);
    put32(h, 0xdd, max); /* [nil × max]: within */
    ck_assert_int_eq(scan(nils_after(h, 5, 5 + max), 5 + max, &lim, &flen), GSP_SCAN_DONE);
    ck_assert_uint_eq(flen, 5 + max);
    put32(h, 0xdd, max + 1); /* one more: judged from the header alone */
    ck_assert_int_eq(scan(h, 5, &lim, &flen), GSP_SCAN_TOO_LARGE);
    put32(h, 0xdf, max / 2 + 1); /* a map's entry is two items */
    ck_assert_int_eq(scan(h, 5, &lim, &flen), GSP_SCAN_TOO_LARGE);
    /* Counted over the whole message: [[nil × (max - 2)], [nil]] is one
     * over, refused at the second array's header. */
    h[0] = 0x92;
    put32(h + 1, 0xdd, max - 2);
    uint8_t *b = nils_after(h, 6, 6 + (max - 2) + 2);
    b[6 + (max - 2)] = 0x91;
    ck_assert_int_eq(scan(b, 6 + (max - 2) + 1, &lim, &flen), GSP_SCAN_TOO_LARGE);
    b[6 + (max - 2)] = 0x90; /* [[nil × (max - 2)], []]: within */
    ck_assert_int_eq(scan(b, 6 + (max - 2) + 1, &lim, &flen), GSP_SCAN_DONE);
    /* Small limits keep a floor: 1 MiB of objects. */
    const struct gsp_limits tiny = {16, 32};
    ck_assert_uint_eq(gsp_max_items(&tiny), (1u << 20) / sizeof(msgpack_object));
}
END_TEST

/* The one-pass reader never takes what the framer refuses: a cast of more
 * items than the limit allows is left to the framer, which says too_large. */
START_TEST(request_read_leaves_too_many_items_to_the_framer)
{
    const struct gsp_limits lim = {1u << 20, 32};
    const uint32_t max = (uint32_t)gsp_max_items(&lim);
    uint8_t h[16] = {0x93, 0x02, 0xa4, 'c', 'a', 's', 't', 0x92, 0xa1, 'p'};
    struct gsp_envelope env;
    size_t len, flen;
    const uint32_t ns[] = {1000, max - 5, max - 4}; /* n + 5 items in all */
    for (int i = 0; i < 3; i++) {
        put32(h + 10, 0xdd, ns[i]);
        uint8_t *b = nils_after(h, 15, 15 + ns[i]);
        bool fits = ns[i] + 5 <= max, once = gsp_request_read(b, 15 + ns[i], &lim, &env, &len);
        ck_assert_int_eq(scan(b, 15 + ns[i], &lim, &flen),
                         fits ? GSP_SCAN_DONE : GSP_SCAN_TOO_LARGE);
        ck_assert(!once || (fits && len == flen));
        ck_assert_int_eq(once, i == 0); /* longer than max bytes: the framer's */
    }
}
END_TEST

/* ---- envelopes ------------------------------------------------------------- */

static bool env_of(const msgpack_object *v, struct gsp_envelope *env)
{
    size_t len;
    const uint8_t *b = enc(v, &len);
    return gsp_envelope_read(b, len, env);
}

START_TEST(envelope_request)
{
    struct gsp_envelope env;
    const char *s;
    uint32_t n;
    uint64_t u;
    ck_assert(env_of(mp("[0, 42, 'call', ['counter', 'get', nil]]"), &env));
    ck_assert_int_eq(env.type, GSP_REQUEST);
    ck_assert(env.has_msgid);
    ck_assert_uint_eq(env.msgid, 42);
    ck_assert(gsp_method_is(&env, "call"));
    ck_assert(!gsp_method_is(&env, "cal"));
    ck_assert(!gsp_method_is(&env, "calls"));
    ck_assert_uint_eq(env.nparams, 3);
    ck_assert(gsp_get_str(&env.params, &s, &n));
    ck_assert_uint_eq(n, 7);
    ck_assert(memcmp(s, "counter", 7) == 0);
    ck_assert(gsp_get_str(&env.params, &s, &n));
    ck_assert(gsp_get_nil(&env.params));
    ck_assert(env.params.p == env.params.end);
    ck_assert(!gsp_get_uint(&env.params, &u));
}
END_TEST

START_TEST(envelope_request_max_msgid)
{
    struct gsp_envelope env;
    ck_assert(env_of(mp("[0, 4294967295, 'ping', []]"), &env));
    ck_assert_uint_eq(env.msgid, UINT32_MAX);
    ck_assert_uint_eq(env.nparams, 0);
}
END_TEST

/* The one-pass reader on the encoding of v followed by `extra` bytes of
 * another message: false, or the framer's length and the envelope's fields. */
static bool one_pass(const msgpack_object *v, size_t extra, const struct gsp_limits *lim)
{
    size_t len, once_len, flen;
    const uint8_t *b = enc(v, &len);
    uint8_t buf[512];
    ck_assert_uint_le(len + extra, sizeof buf);
    memcpy(buf, b, len);
    memset(buf + len, 0x94, extra);
    struct gsp_envelope once, env;
    if (!gsp_request_read(buf, len + extra, lim, &once, &once_len))
        return false;
    ck_assert_int_eq(scan(buf, len + extra, lim, &flen), GSP_SCAN_DONE);
    ck_assert_uint_eq(once_len, flen);
    ck_assert(gsp_envelope_read(buf, flen, &env));
    ck_assert_int_eq(once.type, env.type);
    ck_assert_int_eq(once.has_msgid, env.has_msgid);
    ck_assert_uint_eq(once.msgid, env.msgid);
    ck_assert(once.method == env.method && once.method_len == env.method_len);
    ck_assert_uint_eq(once.nparams, env.nparams);
    ck_assert(once.params.p == env.params.p && once.params.end == env.params.end);
    return true;
}

START_TEST(request_read_in_one_pass)
{
    ck_assert(one_pass(mp("[0, 42, 'call', ['counter', 'get', nil]]"), 0, &deflim));
    ck_assert(one_pass(mp("[0, 4294967295, 'call', ['c', {'a': [1, [2]]}, 5000]]"), 3, &deflim));
    ck_assert(one_pass(mp("[0, 300, 'ping', []]"), 1, &deflim));
    ck_assert(one_pass(mp("[2, 'cast', ['counter', 'increment']]"), 0, &deflim));
    /* Not its forms: the framer and gsp_envelope_read read them. */
    ck_assert(!one_pass(mp("[1, 9, nil, 'pong']"), 0, &deflim));
    ck_assert(!one_pass(mp("[0, 42, 'call']"), 0, &deflim));
    ck_assert(!one_pass(mp("[0, -1, 'ping', []]"), 0, &deflim));
    ck_assert(!one_pass(mp("{'a': 1}"), 0, &deflim));
    /* Unfinished, over the size or depth limit: the framer says so. */
    size_t len;
    const uint8_t *b = enc(mp("[0, 7, 'call', ['counter', ['add', 1], nil]]"), &len);
    struct gsp_envelope env;
    for (size_t i = 0; i < len; i++)
        ck_assert(!gsp_request_read(b, i, &deflim, &env, &len));
    struct gsp_limits small = {len - 1, GSP_MAX_DEPTH_DEFAULT}, shallow = {GSP_MAX_SIZE_DEFAULT, 3};
    ck_assert(!gsp_request_read(b, len, &small, &env, &len));
    ck_assert(one_pass(mp("[0, 7, 'call', ['counter', ['add', 1], nil]]"), 0, &shallow));
    ck_assert(!one_pass(mp("[0, 7, 'call', ['counter', [['add'], 1], nil]]"), 0, &shallow));
}
END_TEST

START_TEST(envelope_response_result)
{
    struct gsp_envelope env;
    ck_assert(env_of(mp("[1, 9, nil, 'pong']"), &env));
    ck_assert_int_eq(env.type, GSP_RESPONSE);
    ck_assert(env.has_msgid);
    ck_assert_uint_eq(env.msgid, 9);
    ck_assert_uint_eq(env.error.len, 1);
    ck_assert_uint_eq(env.error.ptr[0], 0xc0);
    ck_assert_mp_eq(dec(env.result.ptr, env.result.len), "'pong'");
}
END_TEST

START_TEST(envelope_response_error)
{
    struct gsp_envelope env;
    ck_assert(env_of(mp("[1, 3, ['noproc', {'server': 'x'}], nil]"), &env));
    ck_assert_int_eq(env.type, GSP_RESPONSE);
    ck_assert_mp_eq(dec(env.error.ptr, env.error.len), "['noproc', {'server': 'x'}]");
    ck_assert_mp_eq(dec(env.result.ptr, env.result.len), "nil");
}
END_TEST

START_TEST(envelope_notification)
{
    struct gsp_envelope env;
    uint64_t ref;
    ck_assert(env_of(mp("[2, 'down', [7, 3, nil, 'normal']]"), &env));
    ck_assert_int_eq(env.type, GSP_NOTIFY);
    ck_assert(!env.has_msgid);
    ck_assert(gsp_method_is(&env, "down"));
    ck_assert_uint_eq(env.nparams, 4);
    ck_assert(gsp_get_uint(&env.params, &ref));
    ck_assert_uint_eq(ref, 7);
}
END_TEST

START_TEST(envelope_bin_method_accepted)
{
    struct gsp_envelope env;
    ck_assert(env_of(mp("[0, 5, b'ping', []]"), &env));
    ck_assert(gsp_method_is(&env, "ping"));
    ck_assert(env_of(mp("[2, b'cast', ['c', 'reset']]"), &env));
    ck_assert(gsp_method_is(&env, "cast"));
}
END_TEST

START_TEST(envelope_wrong_length_request_has_msgid)
{
    struct gsp_envelope env;
    ck_assert(!env_of(mp("[0, 17, 'ping']"), &env));
    ck_assert(env.has_msgid);
    ck_assert_uint_eq(env.msgid, 17);
    ck_assert(!env_of(mp("[0, 18, 'ping', [], 'extra']"), &env));
    ck_assert(env.has_msgid);
    ck_assert_uint_eq(env.msgid, 18);
}
END_TEST

START_TEST(envelope_bad_method_or_params_has_msgid)
{
    struct gsp_envelope env;
    ck_assert(!env_of(mp("[0, 19, 5, []]"), &env));
    ck_assert(env.has_msgid);
    ck_assert_uint_eq(env.msgid, 19);
    ck_assert(!env_of(mp("[0, 20, 'ping', {}]"), &env));
    ck_assert(env.has_msgid);
    ck_assert_uint_eq(env.msgid, 20);
    ck_assert(!env_of(mp("[0, 21, 'ping', nil]"), &env));
    ck_assert(env.has_msgid);
}
END_TEST

START_TEST(envelope_wrong_shapes)
{
    struct gsp_envelope env;
    const char *bad[] = {
        "5",
        "'ping'",
        "{'a': 1}",
        "[]",
        "[0]",
        "[0, 1]",
        "[3, 1, 'ping', []]",
        "[-1, 1, 'ping', []]",
        "['0', 1, 'ping', []]",
        "[2, 'cast']",
        "[2, 'cast', [], 1]",
        "[2, 5, []]",
        "[2, 'cast', 'x']",
        "[1, 1, nil]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(!env_of(mp(bad[i]), &env), "%s was read as an envelope", bad[i]);
}
END_TEST

START_TEST(envelope_unreadable_msgid)
{
    struct gsp_envelope env;
    ck_assert(!env_of(mp("[0, 'x', 'ping', []]"), &env));
    ck_assert(!env.has_msgid);
    ck_assert(!env_of(mp("[0, -1, 'ping', []]"), &env));
    ck_assert(!env.has_msgid);
    ck_assert(!env_of(mp("[0, 4294967296, 'ping', []]"), &env));
    ck_assert(!env.has_msgid);
    ck_assert(!env_of(mp("7"), &env));
    ck_assert(!env.has_msgid);
}
END_TEST

/* ---- cursor getters ----------------------------------------------------------- */

static struct gsp_cursor cur(const msgpack_object *v)
{
    size_t len;
    const uint8_t *b = enc(v, &len);
    struct gsp_cursor c = {b, b + len};
    return c;
}

START_TEST(cursor_uint_forms)
{
    const uint8_t forms[][9] = {
        {0x05},
        {0xcc, 0xc8},
        {0xcd, 0x01, 0x00},
        {0xce, 0xff, 0xff, 0xff, 0xff},
        {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
        {0xd0, 0x05},
        {0xd3, 0, 0, 0, 0, 0, 0, 0, 0x07},
    };
    const size_t lens[] = {1, 2, 3, 5, 9, 2, 9};
    const uint64_t want[] = {5, 200, 256, UINT32_MAX, UINT64_MAX, 5, 7};
    for (size_t i = 0; i < 7; i++) {
        struct gsp_cursor c = {forms[i], forms[i] + lens[i]};
        uint64_t v = 0;
        ck_assert_msg(gsp_get_uint(&c, &v), "form %zu not read", i);
        ck_assert_uint_eq(v, want[i]);
        ck_assert(c.p == c.end);
    }
}
END_TEST

START_TEST(cursor_uint_rejects_negative_and_others)
{
    const char *bad[] = {"-1", "-200", "'5'", "nil", "1.0", "[1]", "true"};
    for (size_t i = 0; i < 7; i++) {
        struct gsp_cursor c = cur(mp(bad[i])), before = c;
        uint64_t v = 99;
        ck_assert_msg(!gsp_get_uint(&c, &v), "%s read as a uint", bad[i]);
        ck_assert(c.p == before.p);
        ck_assert_uint_eq(v, 99);
    }
}
END_TEST

START_TEST(cursor_int_forms_and_bool)
{
    const uint8_t forms[][9] = {
        {0x05},
        {0xff},
        {0xe0},
        {0xd0, 0x80},
        {0xd1, 0xff, 0x38},
        {0xd2, 0x80, 0, 0, 0},
        {0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0},
        {0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
    };
    const size_t lens[] = {1, 1, 1, 2, 3, 5, 9, 9};
    const int64_t want[] = {5, -1, -32, -128, -200, INT32_MIN, INT64_MIN, INT64_MAX};
    for (size_t i = 0; i < 8; i++) {
        struct gsp_cursor c = {forms[i], forms[i] + lens[i]};
        int64_t v = 0;
        ck_assert_msg(gsp_get_int(&c, &v), "form %zu not read", i);
        ck_assert_int_eq(v, want[i]);
        ck_assert(c.p == c.end);
    }
    const uint8_t too_big[] = {0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0};
    struct gsp_cursor c = {too_big, too_big + 9};
    int64_t v = 99;
    ck_assert(!gsp_get_int(&c, &v) && v == 99 && c.p == too_big);
    c = cur(mp("'5'"));
    ck_assert(!gsp_get_int(&c, &v));
    bool b = false;
    c = cur(mp("true"));
    ck_assert(gsp_get_bool(&c, &b) && b && c.p == c.end);
    c = cur(mp("false"));
    ck_assert(gsp_get_bool(&c, &b) && !b && c.p == c.end);
    c = cur(mp("1"));
    ck_assert(!gsp_get_bool(&c, &b));
}
END_TEST

START_TEST(cursor_str_and_bin)
{
    char long_text[300];
    memset(long_text, 'q', 299);
    long_text[299] = '\0';
    struct gsp_cursor c = cur(mp("['', 'abc', b'\\x00\\x01', %s, 5]", long_text));
    const char *s;
    uint32_t n, items;
    ck_assert(gsp_get_array(&c, &items));
    ck_assert_uint_eq(items, 5);
    ck_assert(gsp_get_str(&c, &s, &n));
    ck_assert_uint_eq(n, 0);
    ck_assert(gsp_get_str(&c, &s, &n));
    ck_assert_uint_eq(n, 3);
    ck_assert(memcmp(s, "abc", 3) == 0);
    ck_assert(gsp_get_str(&c, &s, &n));
    ck_assert_uint_eq(n, 2);
    ck_assert(s[0] == 0 && s[1] == 1);
    ck_assert(gsp_get_str(&c, &s, &n));
    ck_assert_uint_eq(n, 299);
    ck_assert(s[298] == 'q');
    const uint8_t *at = c.p;
    ck_assert(!gsp_get_str(&c, &s, &n));
    ck_assert(c.p == at);
}
END_TEST

START_TEST(cursor_array_and_map)
{
    struct gsp_cursor c = cur(mp("{'a': 1, 'b': 2}")), before = c;
    uint32_t n = 0;
    ck_assert(!gsp_get_array(&c, &n));
    ck_assert(c.p == before.p);
    ck_assert(gsp_get_map(&c, &n));
    ck_assert_uint_eq(n, 2);
    c = cur(mp("[1, 2, 3]"));
    before = c;
    ck_assert(!gsp_get_map(&c, &n));
    ck_assert(c.p == before.p);
    ck_assert(gsp_get_array(&c, &n));
    ck_assert_uint_eq(n, 3);
}
END_TEST

START_TEST(cursor_nil)
{
    struct gsp_cursor c = cur(mp("[nil, 0]"));
    uint32_t n;
    ck_assert(gsp_get_array(&c, &n));
    ck_assert(gsp_is_nil(&c));
    ck_assert(gsp_get_nil(&c));
    ck_assert(!gsp_is_nil(&c));
    ck_assert(!gsp_get_nil(&c));
    uint64_t v;
    ck_assert(gsp_get_uint(&c, &v));
    ck_assert(!gsp_is_nil(&c)); /* at the end */
    ck_assert(!gsp_get_nil(&c));
}
END_TEST

START_TEST(cursor_span_steps_over_one_value)
{
    const msgpack_object *inner = mp("{'k': [1, [2, {'x': b'y'}], -3], 'z': 1.5}");
    struct gsp_cursor c = cur(mp("[%v, 'after']", inner));
    struct gsp_span sp;
    uint32_t n;
    const char *s;
    ck_assert(gsp_get_array(&c, &n));
    ck_assert(gsp_get_span(&c, &sp));
    ck_assert_mp_eq(dec(sp.ptr, sp.len), "%v", inner);
    ck_assert(gsp_get_str(&c, &s, &n));
    ck_assert_uint_eq(n, 5);
    ck_assert(c.p == c.end);
}
END_TEST

START_TEST(cursor_truncated_values_rejected)
{
    size_t len;
    const uint8_t *b = enc(mp("['abcdef', [1, 2, 3]]"), &len);
    struct gsp_cursor c = {b, b + 5}; /* mid-string */
    struct gsp_span sp;
    const char *s;
    uint32_t n;
    ck_assert(gsp_get_array(&c, &n));
    ck_assert(!gsp_get_str(&c, &s, &n));
    c.p = b;
    ck_assert(!gsp_get_span(&c, &sp));
    ck_assert(c.p == b);
    c.end = b + len - 1; /* the last array item missing */
    ck_assert(!gsp_get_span(&c, &sp));
    struct gsp_cursor empty = {b, b};
    uint64_t v;
    ck_assert(!gsp_get_uint(&empty, &v));
    ck_assert(!gsp_get_array(&empty, &n));
    ck_assert(!gsp_get_span(&empty, &sp));
}
END_TEST

/* ---- values ---------------------------------------------------------------------- */

START_TEST(decode_without_a_zone_only_lone_scalars)
{
    msgpack_object o;
    const uint8_t str[] = {0xa3, 'g', 'e', 't'}, neg[] = {0xff}, nil[] = {0xc0};
    ck_assert(gsp_decode(str, sizeof str, NULL, &o));
    ck_assert_int_eq(o.type, MSGPACK_OBJECT_STR);
    ck_assert_uint_eq(o.via.str.size, 3);
    ck_assert(memcmp(o.via.str.ptr, "get", 3) == 0);
    ck_assert(gsp_decode(neg, 1, NULL, &o));
    ck_assert_int_eq(o.via.i64, -1);
    ck_assert(gsp_decode(nil, 1, NULL, &o));
    ck_assert_int_eq(o.type, MSGPACK_OBJECT_NIL);
    size_t len;
    const uint8_t *arr = enc(mp("['get', 1]"), &len);
    ck_assert(!gsp_decode(arr, len, NULL, &o)); /* needs a zone */
    ck_assert_mp_eq(dec(arr, len), "['get', 1]");
    const uint8_t u16[] = {0xcd, 0x01, 0x00};
    ck_assert(!gsp_decode(u16, sizeof u16, NULL, &o));
    ck_assert_mp_eq(dec(u16, sizeof u16), "256");
}
END_TEST

START_TEST(value_copy_is_deep_and_equal)
{
    const msgpack_object *v =
        mp("[1, -2, 3.25, true, nil, 'str', b'bin', '', [], {}, {'m': [{'n': 'deep'}]}]");
    msgpack_object *copy = gsp_value_copy(v);
    ck_assert(gsp_value_equal(copy, v));
    ck_assert(copy->via.array.ptr != v->via.array.ptr);
    ck_assert(copy->via.array.ptr[5].via.str.ptr != v->via.array.ptr[5].via.str.ptr);
    /* changing the original does not reach the copy */
    ((char *)v->via.array.ptr[5].via.str.ptr)[0] = 'S';
    ck_assert(!gsp_value_equal(copy, v));
    ck_assert_mp_eq(&copy->via.array.ptr[5], "'str'");
    ck_assert_mp_eq(&copy->via.array.ptr[10], "{'m': [{'n': 'deep'}]}");
    free(copy);
}
END_TEST

START_TEST(value_copy_ext_and_scalars)
{
    const uint8_t ext[] = {0xd6, 0x05, 1, 2, 3, 4};
    const msgpack_object *e = dec(ext, sizeof ext);
    msgpack_object *copy = gsp_value_copy(e);
    ck_assert_int_eq(copy->type, MSGPACK_OBJECT_EXT);
    ck_assert_int_eq(copy->via.ext.type, 5);
    ck_assert_uint_eq(copy->via.ext.size, 4);
    ck_assert(gsp_value_equal(copy, e));
    free(copy);
    copy = gsp_value_copy(mp("7"));
    ck_assert_mp_eq(copy, "7");
    free(copy);
}
END_TEST

START_TEST(value_equal_integers_by_value)
{
    msgpack_object pos = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = 5};
    msgpack_object neg_typed = {.type = MSGPACK_OBJECT_NEGATIVE_INTEGER, .via.i64 = 5};
    msgpack_object minus = {.type = MSGPACK_OBJECT_NEGATIVE_INTEGER, .via.i64 = -5};
    msgpack_object big = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = UINT64_MAX};
    msgpack_object m1 = {.type = MSGPACK_OBJECT_NEGATIVE_INTEGER, .via.i64 = -1};
    ck_assert(gsp_value_equal(&pos, &neg_typed));
    ck_assert(!gsp_value_equal(&pos, &minus));
    ck_assert(!gsp_value_equal(&big, &m1));
    ck_assert(!gsp_value_equal(&pos, mp("5.0")));
}
END_TEST

START_TEST(value_equal_str_and_bin_alike)
{
    ck_assert(gsp_value_equal(mp("'abc'"), mp("b'abc'")));
    ck_assert(!gsp_value_equal(mp("'abc'"), mp("'abd'")));
    ck_assert(!gsp_value_equal(mp("'abc'"), mp("'ab'")));
    ck_assert(gsp_value_equal(mp("''"), mp("b''")));
}
END_TEST

START_TEST(value_equal_structure)
{
    ck_assert(gsp_value_equal(mp("[1, {'a': [nil]}]"), mp("[1, {'a': [nil]}]")));
    ck_assert(!gsp_value_equal(mp("[1, {'a': [nil]}]"), mp("[1, {'a': [false]}]")));
    ck_assert(!gsp_value_equal(mp("[1, 2]"), mp("[1, 2, 3]")));
    ck_assert(!gsp_value_equal(mp("{'a': 1}"), mp("{'a': 1, 'b': 2}")));
    ck_assert(!gsp_value_equal(mp("{'a': 1}"), mp("{'b': 1}")));
    ck_assert(!gsp_value_equal(mp("nil"), mp("false")));
    ck_assert(!gsp_value_equal(mp("[]"), mp("{}")));
    ck_assert(!gsp_value_equal(mp("true"), mp("false")));
    ck_assert(gsp_value_equal(mp("1.5"), mp("1.5")));
    ck_assert(!gsp_value_equal(mp("1.5"), mp("2.5")));
}
END_TEST

/* ---- names ---------------------------------------------------------------------- */

static bool name_ok(const char *s)
{
    return gsp_name_valid(s, strlen(s));
}

START_TEST(name_valid_rules)
{
    ck_assert(name_ok("counter"));
    ck_assert(name_ok("c1"));
    ck_assert(name_ok("12a"));
    ck_assert(name_ok("-1"));
    ck_assert(name_ok("1.5"));
    ck_assert(name_ok("a b/c"));
    ck_assert(!name_ok(""));
    ck_assert(!name_ok("0"));
    ck_assert(!name_ok("123"));
    ck_assert(!name_ok("00042"));
}
END_TEST

START_TEST(name_length_255_ok_256_not)
{
    char s[257];
    memset(s, 'n', sizeof s);
    ck_assert(gsp_name_valid(s, 255));
    ck_assert(!gsp_name_valid(s, 256));
    ck_assert(gsp_name_valid(s, 1));
    ck_assert(!gsp_name_valid(s, 0));
    ck_assert(!gsp_name_valid("a\0b", 3)); /* NUL would end it early as a C string */
}
END_TEST

START_TEST(name_utf8_checked)
{
    ck_assert(name_ok("caf\xc3\xa9"));       /* é */
    ck_assert(name_ok("\xe2\x82\xac"));      /* € */
    ck_assert(name_ok("\xf0\x9f\x98\x80"));  /* 😀 */
    ck_assert(!name_ok("\xff"));             /* never in UTF-8 */
    ck_assert(!name_ok("a\x80"));            /* stray continuation */
    ck_assert(!name_ok("\xc0\x80"));         /* overlong NUL */
    ck_assert(!name_ok("\xe0\x80\xaf"));     /* overlong '/' */
    ck_assert(!name_ok("\xe2\x82"));         /* truncated at the end */
    ck_assert(!name_ok("\xed\xa0\x80"));     /* a surrogate */
    ck_assert(!name_ok("\xf4\x90\x80\x80")); /* past U+10FFFF */
    ck_assert(!name_ok("ab\xc3"));           /* truncated lead byte */
}
END_TEST

static bool module_ok(const char *s)
{
    return gsp_module_name_valid(s, strlen(s));
}

START_TEST(module_name_rules)
{
    char s[257];
    ck_assert(module_ok("counter"));
    ck_assert(module_ok("my_mod-2"));
    ck_assert(module_ok("ABC"));
    ck_assert(module_ok("123"));
    ck_assert(!module_ok(""));
    ck_assert(!module_ok("../counter"));
    ck_assert(!module_ok("a/b"));
    ck_assert(!module_ok("counter.so"));
    ck_assert(!module_ok("a b"));
    ck_assert(!module_ok("caf\xc3\xa9"));
    memset(s, 'm', sizeof s);
    ck_assert(gsp_module_name_valid(s, 255));
    ck_assert(!gsp_module_name_valid(s, 256));
}
END_TEST

START_TEST(code_names)
{
    ck_assert_str_eq(gsp_code_name(GSP_BADARG), "badarg");
    ck_assert_str_eq(gsp_code_name(GSP_UNKNOWN_METHOD), "unknown_method");
    ck_assert_str_eq(gsp_code_name(GSP_NOPROC), "noproc");
    ck_assert_str_eq(gsp_code_name(GSP_TIMEOUT), "timeout");
    ck_assert_str_eq(gsp_code_name(GSP_EXIT), "exit");
    ck_assert_str_eq(gsp_code_name(GSP_ALREADY_STARTED), "already_started");
    ck_assert_str_eq(gsp_code_name(GSP_INIT_STOP), "init_stop");
    ck_assert_str_eq(gsp_code_name(GSP_IGNORE), "ignore");
    ck_assert_str_eq(gsp_code_name(GSP_MODULE), "module");
    ck_assert_str_eq(gsp_code_name(GSP_CODE_CHANGE), "code_change");
    ck_assert_str_eq(gsp_code_name(GSP_UNSUPPORTED), "unsupported");
    ck_assert_str_eq(gsp_code_name(GSP_UNAUTHORIZED), "unauthorized");
    ck_assert_str_eq(gsp_code_name(GSP_TOO_LARGE), "too_large");
    ck_assert_str_eq(gsp_code_name(GSP_PROTOCOL), "protocol");
    ck_assert_str_eq(gsp_code_name(GSP_SHUTTING_DOWN), "shutting_down");
    ck_assert_str_eq(gsp_code_name(GSP_CODE_COUNT), "unknown");
    ck_assert_str_eq(gsp_code_name((enum gsp_code) - 1), "unknown");
}
END_TEST

/* ---- socket path ---------------------------------------------------------------- */

START_TEST(socket_path_explicit_first)
{
    char out[256];
    setenv("GSD_SOCKET", "/env/gsd.sock", 1);
    setenv("XDG_RUNTIME_DIR", "/xdg", 1);
    ck_assert_int_eq(gsp_socket_path("/flag/gsd.sock", out, sizeof out), 0);
    ck_assert_str_eq(out, "/flag/gsd.sock");
}
END_TEST

START_TEST(socket_path_env_second)
{
    char out[256];
    setenv("GSD_SOCKET", "/env/gsd.sock", 1);
    setenv("XDG_RUNTIME_DIR", "/xdg", 1);
    ck_assert_int_eq(gsp_socket_path(NULL, out, sizeof out), 0);
    ck_assert_str_eq(out, "/env/gsd.sock");
}
END_TEST

START_TEST(socket_path_root_default)
{
    char out[256];
    ck_assert_msg(geteuid() == 0, "this test runs as root");
    unsetenv("GSD_SOCKET");
    setenv("XDG_RUNTIME_DIR", "/xdg", 1);
    ck_assert_int_eq(gsp_socket_path(NULL, out, sizeof out), 0);
    ck_assert_str_eq(out, "/run/gsd/gsd.sock");
}
END_TEST

START_TEST(socket_path_user_xdg)
{
    char out[256];
    unsetenv("GSD_SOCKET");
    setenv("XDG_RUNTIME_DIR", "/run/user/65534", 1);
    uid_t was = geteuid();
    if (was == 0)
        ck_assert_int_eq(seteuid(65534), 0); /* this test's own process */
    int rc = gsp_socket_path(NULL, out, sizeof out);
    ck_assert_int_eq(seteuid(was), 0); /* LeakSanitizer needs its euid back at exit */
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(out, "/run/user/65534/gsd.sock");
}
END_TEST

START_TEST(socket_path_user_fallback)
{
    char out[256], want[64];
    unsetenv("GSD_SOCKET");
    unsetenv("XDG_RUNTIME_DIR");
    uid_t was = geteuid();
    if (was == 0)
        ck_assert_int_eq(seteuid(65534), 0);
    snprintf(want, sizeof want, "/tmp/gsd-%u/gsd.sock", (unsigned)geteuid());
    int rc = gsp_socket_path(NULL, out, sizeof out);
    ck_assert_int_eq(seteuid(was), 0);
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(out, want);
}
END_TEST

START_TEST(socket_path_too_long)
{
    char out[256], longp[200];
    memset(longp, 'p', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';
    ck_assert_int_eq(gsp_socket_path("/a/b.sock", out, 5), -1);
    ck_assert_int_eq(gsp_socket_path(longp, out, sizeof out), -1); /* > sun_path */
}
END_TEST

/* ---- packers ---------------------------------------------------------------------- */

static const msgpack_object *packed(struct gsp_buf *b)
{
    size_t flen;
    ck_assert_int_eq(scan(b->data, b->len, &deflim, &flen), GSP_SCAN_DONE);
    ck_assert_uint_eq(flen, b->len);
    return dec(b->data, b->len);
}

START_TEST(pack_request_round_trip)
{
    struct gsp_buf b = {0};
    msgpack_packer pk;
    struct gsp_envelope env;
    gsp_packer_init(&pk, &b);
    gsp_pack_request(&pk, 77, "call", 3);
    gsp_pack_str(&pk, "counter");
    gsp_pack_strn(&pk, "getXXX", 3);
    msgpack_pack_nil(&pk);
    ck_assert_mp_eq(packed(&b), "[0, 77, 'call', ['counter', 'get', nil]]");
    ck_assert(gsp_envelope_read(b.data, b.len, &env));
    ck_assert_int_eq(env.type, GSP_REQUEST);
    ck_assert_uint_eq(env.msgid, 77);
    gsp_buf_free(&b);
    ck_assert_ptr_null(b.data);
}
END_TEST

START_TEST(pack_notify_round_trip)
{
    struct gsp_buf b = {0};
    msgpack_packer pk;
    gsp_packer_init(&pk, &b);
    gsp_pack_notify(&pk, "down", 4);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_uint64(&pk, 2);
    msgpack_pack_nil(&pk);
    gsp_pack_str(&pk, "normal");
    ck_assert_mp_eq(packed(&b), "[2, 'down', [1, 2, nil, 'normal']]");
    gsp_buf_free(&b);
}
END_TEST

START_TEST(pack_result_and_errors)
{
    struct gsp_buf b = {0};
    msgpack_packer pk;
    gsp_packer_init(&pk, &b);
    gsp_pack_result(&pk, 4000000000u);
    gsp_pack_str(&pk, "pong");
    ck_assert_mp_eq(packed(&b), "[1, 4000000000, nil, 'pong']");
    b.len = 0;
    gsp_pack_error_begin(&pk, 3, GSP_ALREADY_STARTED);
    msgpack_pack_uint64(&pk, 12);
    gsp_pack_error_end(&pk);
    ck_assert_mp_eq(packed(&b), "[1, 3, ['already_started', 12], nil]");
    b.len = 0;
    gsp_pack_error(&pk, 5, GSP_NOPROC, "no server %s (%d)", "x", 7);
    ck_assert_mp_eq(packed(&b), "[1, 5, ['noproc', 'no server x (7)'], nil]");
    gsp_buf_free(&b);
}
END_TEST

/* The envelopes the daemon sends and libgsclient reads, packed and read
 * back by the same module. */
START_TEST(pack_and_read_responses_downs_and_call_replies)
{
    struct gsp_buf b = {0};
    msgpack_packer pk;
    struct gsp_envelope env;
    gsp_packer_init(&pk, &b);
    gsp_pack_response(&pk, 9, GSP_OK, "\xa2ok", 3);
    ck_assert_mp_eq(packed(&b), "[1, 9, nil, 'ok']");
    b.len = 0;
    gsp_pack_response(&pk, 9, GSP_EXIT, "\xa6normal", 7);
    ck_assert_mp_eq(packed(&b), "[1, 9, ['exit', 'normal'], nil]");
    ck_assert(gsp_envelope_read(b.data, b.len, &env));
    const char *code;
    uint32_t code_len;
    struct gsp_span detail;
    ck_assert(gsp_error_read(env.error, &code, &code_len, &detail));
    ck_assert_int_eq((int)code_len, 4);
    ck_assert(memcmp(code, "exit", 4) == 0);
    ck_assert_mp_eq(dec(detail.ptr, detail.len), "'normal'");
    ck_assert(!gsp_error_read(env.result, &code, &code_len, &detail)); /* nil */
    ck_assert(gsp_span_is_nil(env.result));

    b.len = 0;
    gsp_pack_down(&pk, 5, 7, "c", 1, "\xa8shutdown", 9);
    ck_assert_mp_eq(packed(&b), "[2, 'down', [5, 7, 'c', 'shutdown']]");
    ck_assert(gsp_envelope_read(b.data, b.len, &env));
    struct gsp_down d;
    ck_assert(gsp_down_read(&env, &d));
    ck_assert_uint_eq(d.ref, 5);
    ck_assert_uint_eq(d.id, 7);
    ck_assert_mp_eq(dec(d.name.ptr, d.name.len), "'c'");
    ck_assert_mp_eq(dec(d.reason.ptr, d.reason.len), "'shutdown'");
    b.len = 0;
    gsp_pack_down(&pk, 6, 0, NULL, 0, "\xa6noproc", 7);
    ck_assert_mp_eq(packed(&b), "[2, 'down', [6, 0, nil, 'noproc']]");
    b.len = 0;
    gsp_pack_down_info(&pk, 6, 7, "\xa6normal", 7);
    ck_assert_mp_eq(packed(&b), "['down', 6, 7, 'normal']");

    b.len = 0;
    gsp_pack_error_notify(&pk, GSP_PROTOCOL, "not msgpack");
    ck_assert_mp_eq(packed(&b), "[2, 'error', ['protocol', 'not msgpack']]");
    ck_assert(gsp_envelope_read(b.data, b.len, &env));
    ck_assert(gsp_error_notify_read(&env, &code, &code_len, &detail));
    ck_assert_int_eq((int)code_len, 8);
    ck_assert_mp_eq(dec(detail.ptr, detail.len), "'not msgpack'");

    b.len = 0;
    gsp_pack_call_reply(&pk, 3, GSP_OK, "\x2a", 1);
    ck_assert_mp_eq(packed(&b), "['reply', 3, nil, 42]");
    b.len = 0;
    gsp_pack_call_reply(&pk, 3, GSP_NOPROC, "\xa2no", 3);
    ck_assert_mp_eq(packed(&b), "['reply', 3, ['noproc', 'no'], nil]");
    gsp_buf_free(&b);
}
END_TEST

START_TEST(read_downs_with_only_a_ref)
{
    struct gsp_envelope env;
    struct gsp_down d;
    const msgpack_object *v = mp("[2, 'down', [5]]");
    size_t len;
    uint8_t *bytes = gsp_encode(v, &len);
    ck_assert(gsp_envelope_read(bytes, len, &env));
    ck_assert(gsp_down_read(&env, &d));
    ck_assert_uint_eq(d.ref, 5);
    ck_assert_uint_eq(d.id, 0);
    ck_assert_ptr_null(d.name.ptr);
    free(bytes);
    v = mp("[2, 'down', ['x', 1]]");
    bytes = gsp_encode(v, &len);
    ck_assert(gsp_envelope_read(bytes, len, &env));
    ck_assert(!gsp_down_read(&env, &d)); /* nobody could tell whose it is */
    free(bytes);
    v = mp("[5, nil, 1]");
    bytes = gsp_encode(v, &len);
    const char *code;
    uint32_t code_len;
    struct gsp_span detail;
    ck_assert(!gsp_error_read((struct gsp_span){bytes, len}, &code, &code_len, &detail));
    free(bytes);
}
END_TEST

START_TEST(pack_error_long_detail_truncated_not_broken)
{
    struct gsp_buf b = {0};
    msgpack_packer pk;
    char big[2000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    gsp_packer_init(&pk, &b);
    gsp_pack_error(&pk, 1, GSP_BADARG, "%s", big);
    const msgpack_object *m = packed(&b);
    const msgpack_object *err = mp_item(m, 2);
    ck_assert_mp_eq(mp_item(err, 0), "'badarg'");
    ck_assert_int_eq(mp_item(err, 1)->type, MSGPACK_OBJECT_STR);
    ck_assert_uint_gt(mp_item(err, 1)->via.str.size, 0);
    gsp_buf_free(&b);
}
END_TEST

START_TEST(pack_encode_and_raw)
{
    const msgpack_object *v = mp("{'a': [1, -1, 2.5, b'x', nil, true], 'b': {}}");
    size_t len;
    uint8_t *bytes = gsp_encode(v, &len);
    ck_assert_mp_eq(dec(bytes, len), "%v", v);
    struct gsp_buf b = {0};
    msgpack_packer pk;
    gsp_packer_init(&pk, &b);
    gsp_pack_result(&pk, 1);
    gsp_pack_raw(&pk, bytes, len);
    ck_assert_mp_eq(packed(&b), "[1, 1, nil, %v]", v);
    free(bytes);
    gsp_buf_free(&b);
}
END_TEST

/* gsp_buf_pack writes exactly the bytes msgpack-c's packer writes, at
 * every boundary between the short and long forms. */
static void same_bytes(const msgpack_object *v, const char *what, unsigned i)
{
    struct gsp_buf mine = {0}, theirs = {0};
    msgpack_packer pk;
    gsp_packer_init(&pk, &theirs);
    msgpack_pack_object(&pk, *v);
    gsp_buf_pack(&mine, v);
    ck_assert_msg(mine.len == theirs.len && memcmp(mine.data, theirs.data, mine.len) == 0,
                  "%s %u: %zu bytes, msgpack-c %zu", what, i, mine.len, theirs.len);
    gsp_buf_free(&mine);
    gsp_buf_free(&theirs);
}

START_TEST(buf_pack_matches_msgpack_c)
{
    static char text[65536];
    static msgpack_object items[65536];
    static const uint32_t sizes[] = {0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536};
    static const int64_t ints[] = {0,      1,      127,    128,           255,
                                   256,    65535,  65536,  4294967295LL,  4294967296LL,
                                   -1,     -32,    -33,    -128,          -129,
                                   -32768, -32769, INT32_MIN, INT32_MIN - 1LL, INT64_MIN};
    msgpack_object vals[40];
    msgpack_object_kv pairs[16];
    unsigned n = 0;
    memset(text, 'x', sizeof text);
    vals[n++] = (msgpack_object){.type = MSGPACK_OBJECT_NIL};
    vals[n++] = (msgpack_object){.type = MSGPACK_OBJECT_BOOLEAN, .via.boolean = true};
    vals[n++] = (msgpack_object){.type = MSGPACK_OBJECT_BOOLEAN, .via.boolean = false};
    vals[n++] = (msgpack_object){.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = UINT64_MAX};
    vals[n++] = (msgpack_object){.type = MSGPACK_OBJECT_FLOAT64, .via.f64 = 1.5};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        vals[n++] = ints[i] >= 0 ? (msgpack_object){.type = MSGPACK_OBJECT_POSITIVE_INTEGER,
                                                    .via.u64 = (uint64_t)ints[i]}
                                 : (msgpack_object){.type = MSGPACK_OBJECT_NEGATIVE_INTEGER,
                                                    .via.i64 = ints[i]};
    for (unsigned i = 0; i < n; i++)
        same_bytes(&vals[i], "scalar", i);
    for (uint32_t j = 0; j < 65536; j++)
        items[j] = vals[j % n];
    for (unsigned i = 0; i < 16; i++) {
        pairs[i].key = vals[i % n];
        pairs[i].val = vals[(i + 3) % n];
    }
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        msgpack_object v = {.type = MSGPACK_OBJECT_STR};
        v.via.str.ptr = text;
        v.via.str.size = sizes[i];
        same_bytes(&v, "str", sizes[i]);
        v.type = MSGPACK_OBJECT_BIN;
        same_bytes(&v, "bin", sizes[i]);
        v = (msgpack_object){.type = MSGPACK_OBJECT_ARRAY};
        v.via.array.ptr = items;
        v.via.array.size = sizes[i];
        same_bytes(&v, "array", sizes[i]);
        if (sizes[i] <= 16) {
            v = (msgpack_object){.type = MSGPACK_OBJECT_MAP};
            v.via.map.ptr = pairs;
            v.via.map.size = sizes[i];
            same_bytes(&v, "map", sizes[i]);
        }
    }
}
END_TEST

/* Packing with a limit stops where the bytes pass it, copying no body that
 * would; the buffer is left as it was. */
START_TEST(buf_pack_max_stops_at_the_limit)
{
    static char text[64];
    struct gsp_buf b = {0};
    msgpack_object big = {.type = MSGPACK_OBJECT_BIN};
    big.via.bin.ptr = text; /* claims 1 GiB: none of it is read */
    big.via.bin.size = 1u << 30;
    gsp_buf_append(&b, "ab", 2);
    ck_assert(!gsp_buf_pack_max(&b, &big, 1000));
    ck_assert_uint_eq(b.len, 2);
    ck_assert_uint_lt(b.cap, 4096);
    big.type = MSGPACK_OBJECT_EXT;
    big.via.ext.ptr = text;
    big.via.ext.size = 1u << 30;
    ck_assert(!gsp_buf_pack_max(&b, &big, 1000));
    ck_assert_uint_eq(b.len, 2);
    const msgpack_object *v = mp("[1, 'abc', {'k': [nil, true]}, 2.5]");
    size_t len;
    const uint8_t *want = enc(v, &len);
    ck_assert(!gsp_buf_pack_max(&b, v, len - 1)); /* one byte short, wherever it falls */
    ck_assert_uint_eq(b.len, 2);
    ck_assert(gsp_buf_pack_max(&b, v, len));
    ck_assert_uint_eq(b.len, 2 + len);
    ck_assert_mem_eq(b.data + 2, want, len);
    for (size_t max = 0; max < len; max++) {
        b.len = 0;
        ck_assert_msg(!gsp_buf_pack_max(&b, v, max) && b.len == 0, "fits in %zu", max);
    }
    gsp_buf_free(&b);
}
END_TEST

START_TEST(buf_append_consume)
{
    struct gsp_buf b = {0};
    gsp_buf_append(&b, "hello world", 11);
    ck_assert_uint_eq(b.len, 11);
    gsp_buf_consume(&b, 6);
    ck_assert_uint_eq(b.len, 5);
    ck_assert(memcmp(b.data, "world", 5) == 0);
    gsp_buf_reserve(&b, 100000);
    ck_assert_uint_ge(b.cap - b.len, 100000);
    ck_assert(memcmp(b.data, "world", 5) == 0);
    gsp_buf_consume(&b, 50);
    ck_assert_uint_eq(b.len, 0);
    gsp_buf_free(&b);
}
END_TEST

static Suite *protocol_suite(void)
{
    Suite *s = suite_create("protocol");
    TCase *tc;

    tc = tcase_create("framer");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, framer_whole_frame_done);
    tcase_add_test(tc, framer_scalar_frames);
    tcase_add_test(tc, framer_byte_by_byte);
    tcase_add_test(tc, framer_frames_back_to_back);
    tcase_add_test(tc, framer_resumes_after_more);
    tcase_add_test(tc, framer_flags_atoms);
    tcase_add_test(tc, framer_c1_is_invalid);
    tcase_add_test(tc, framer_array32_header_too_large_at_five_bytes);
    tcase_add_test(tc, framer_map32_header_too_large_at_five_bytes);
    tcase_add_test(tc, framer_str32_claiming_4gb_too_large);
    tcase_add_test(tc, framer_nested_huge_header_too_large);
    tcase_add_test(tc, framer_size_at_limit_ok_one_over_too_large);
    tcase_add_test(tc, framer_array_size_at_limit_ok_one_over_too_large);
    tcase_add_test(tc, framer_depth_32_ok);
    tcase_add_test(tc, framer_depth_32_empty_innermost_ok);
    tcase_add_test(tc, framer_depth_33_too_deep);
    tcase_add_test(tc, framer_maps_count_depth);
    tcase_add_test(tc, framer_siblings_do_not_add_depth);
    tcase_add_test(tc, framer_items_bounded_by_their_decoded_size);
    suite_add_tcase(s, tc);

    tc = tcase_create("envelope");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, envelope_request);
    tcase_add_test(tc, envelope_request_max_msgid);
    tcase_add_test(tc, request_read_in_one_pass);
    tcase_add_test(tc, request_read_leaves_too_many_items_to_the_framer);
    tcase_add_test(tc, envelope_response_result);
    tcase_add_test(tc, envelope_response_error);
    tcase_add_test(tc, envelope_notification);
    tcase_add_test(tc, envelope_bin_method_accepted);
    tcase_add_test(tc, envelope_wrong_length_request_has_msgid);
    tcase_add_test(tc, envelope_bad_method_or_params_has_msgid);
    tcase_add_test(tc, envelope_wrong_shapes);
    tcase_add_test(tc, envelope_unreadable_msgid);
    suite_add_tcase(s, tc);

    tc = tcase_create("cursor");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, cursor_uint_forms);
    tcase_add_test(tc, cursor_uint_rejects_negative_and_others);
    tcase_add_test(tc, cursor_int_forms_and_bool);
    tcase_add_test(tc, cursor_str_and_bin);
    tcase_add_test(tc, cursor_array_and_map);
    tcase_add_test(tc, cursor_nil);
    tcase_add_test(tc, cursor_span_steps_over_one_value);
    tcase_add_test(tc, cursor_truncated_values_rejected);
    suite_add_tcase(s, tc);

    tc = tcase_create("values");
    tcase_add_test(tc, decode_without_a_zone_only_lone_scalars);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, value_copy_is_deep_and_equal);
    tcase_add_test(tc, value_copy_ext_and_scalars);
    tcase_add_test(tc, value_equal_integers_by_value);
    tcase_add_test(tc, value_equal_str_and_bin_alike);
    tcase_add_test(tc, value_equal_structure);
    suite_add_tcase(s, tc);

    tc = tcase_create("names");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, name_valid_rules);
    tcase_add_test(tc, name_length_255_ok_256_not);
    tcase_add_test(tc, name_utf8_checked);
    tcase_add_test(tc, module_name_rules);
    tcase_add_test(tc, code_names);
    tcase_add_test(tc, socket_path_explicit_first);
    tcase_add_test(tc, socket_path_env_second);
    tcase_add_test(tc, socket_path_root_default);
    tcase_add_test(tc, socket_path_user_xdg);
    tcase_add_test(tc, socket_path_user_fallback);
    tcase_add_test(tc, socket_path_too_long);
    suite_add_tcase(s, tc);

    tc = tcase_create("packers");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, pack_request_round_trip);
    tcase_add_test(tc, pack_notify_round_trip);
    tcase_add_test(tc, pack_result_and_errors);
    tcase_add_test(tc, pack_and_read_responses_downs_and_call_replies);
    tcase_add_test(tc, read_downs_with_only_a_ref);
    tcase_add_test(tc, pack_error_long_detail_truncated_not_broken);
    tcase_add_test(tc, pack_encode_and_raw);
    tcase_add_test(tc, buf_append_consume);
    tcase_add_test(tc, buf_pack_matches_msgpack_c);
    tcase_add_test(tc, buf_pack_max_stops_at_the_limit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(protocol_suite());
}
