/* dist_term.c — Erlang's external term format and msgpack, both ways.
 * Every read is bounded by the end of its buffer (ei's decoders are not):
 * this is what a peer's bytes reach first. Uses nothing of the daemon's
 * but protocol/, so the fuzzer links it alone. */
#include "gsd.h"

#include <ei.h>
#include <stdlib.h>
#include <string.h>

/* ---- atom sets ---------------------------------------------------------- */

struct atom_entry {
    UT_hash_handle hh;
    uint8_t len;
    char name[];
};

bool atoms_has(const struct atom_set *set, const void *name, size_t len)
{
    struct atom_entry *e = NULL;
    if (set == NULL || len > 255)
        return false;
    if (len == 0)
        name = ""; /* an empty str's pointer may be NULL */
    HASH_FIND(hh, set->h, name, len, e);
    return e != NULL;
}

void atoms_add(struct atom_set *set, const void *name, size_t len)
{
    if (set == NULL || len > 255 || atoms_has(set, name, len))
        return;
    if (len == 0)
        name = "";
    if (set->n >= ATOMS_MAX || set->bytes + len > ATOMS_BYTES_MAX) {
        set->full = true;
        return;
    }
    struct atom_entry *e = malloc(sizeof *e + len + 1);
    if (e == NULL)
        abort();
    e->len = (uint8_t)len;
    memcpy(e->name, name, len);
    e->name[len] = 0;
    HASH_ADD_KEYPTR(hh, set->h, e->name, len, e);
    set->n++;
    set->bytes += len;
}

void atoms_free(struct atom_set *set)
{
    struct atom_entry *e, *t;
    HASH_ITER(hh, set->h, e, t)
    {
        HASH_DEL(set->h, e);
        free(e);
    }
    set->n = 0;
    set->bytes = 0;
    set->full = false;
}

/* ---- reading terms -------------------------------------------------------- */

static uint32_t be16(const uint8_t *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool have(const uint8_t *p, const uint8_t *end, size_t n)
{
    return (size_t)(end - p) >= n;
}

/* Latin-1 to UTF-8 into buf (room for 2 * n); its length. */
static size_t latin1_utf8(const uint8_t *s, size_t n, uint8_t *buf)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x80)
            buf[k++] = s[i];
        else {
            buf[k++] = 0xc0 | s[i] >> 6;
            buf[k++] = 0x80 | (s[i] & 0x3f);
        }
    }
    return k;
}

bool term_atom(const uint8_t **pp, const uint8_t *end, uint8_t buf[512], const uint8_t **name,
               size_t *len)
{
    const uint8_t *p = *pp;
    if (!have(p, end, 1))
        return false;
    uint8_t tag = *p++;
    size_t n;
    bool latin1 = tag == ERL_ATOM_EXT || tag == ERL_SMALL_ATOM_EXT;
    if (tag == ERL_SMALL_ATOM_UTF8_EXT || tag == ERL_SMALL_ATOM_EXT) {
        if (!have(p, end, 1))
            return false;
        n = *p++;
    } else if (tag == ERL_ATOM_UTF8_EXT || tag == ERL_ATOM_EXT) {
        if (!have(p, end, 2))
            return false;
        n = be16(p);
        p += 2;
    } else
        return false;
    if (!have(p, end, n) || n > 255 * 4)
        return false;
    if (latin1) {
        if (n > 255)
            return false;
        *len = latin1_utf8(p, n, buf);
        *name = buf;
    } else {
        *name = p;
        *len = n;
    }
    if (*len > 255 * 4)
        return false;
    *pp = p + n;
    return true;
}

/* Skips a pid, port or ref after its tag, its node atom added to seen. */
static bool skip_id(uint8_t tag, const uint8_t **pp, const uint8_t *end, struct atom_set *seen)
{
    uint8_t buf[512];
    const uint8_t *name, *p = *pp;
    size_t len, n = 0, words = 0;
    if (tag == ERL_NEW_REFERENCE_EXT || tag == ERL_NEWER_REFERENCE_EXT) {
        if (!have(p, end, 2))
            return false;
        words = be16(p);
        p += 2;
        if (words > 5)
            return false;
    }
    if (!term_atom(&p, end, buf, &name, &len))
        return false;
    atoms_add(seen, name, len);
    switch (tag) {
    case ERL_PID_EXT:
        n = 9;
        break;
    case ERL_NEW_PID_EXT:
        n = 12;
        break;
    case ERL_PORT_EXT:
        n = 5;
        break;
    case ERL_NEW_PORT_EXT:
        n = 8;
        break;
    case ERL_V4_PORT_EXT:
        n = 12;
        break;
    case ERL_REFERENCE_EXT:
        n = 5;
        break;
    case ERL_NEW_REFERENCE_EXT:
        n = 1 + 4 * words;
        break;
    case ERL_NEWER_REFERENCE_EXT:
        n = 4 + 4 * words;
        break;
    }
    if (!have(p, end, n))
        return false;
    *pp = p + n;
    return true;
}

bool term_is_atom(const uint8_t **pp, const uint8_t *end, const char *want)
{
    uint8_t buf[512];
    const uint8_t *p = *pp, *name;
    size_t len;
    if (!term_atom(&p, end, buf, &name, &len) || len != strlen(want) || memcmp(name, want, len))
        return false;
    *pp = p;
    return true;
}

/* A tuple's, list's or map's header at *pp: how many terms follow (a
 * map's keys and values both; a list's not counting its tail), checked
 * against the bytes left, since every term takes one at least. */
static bool container_head(const uint8_t **pp, const uint8_t *end, uint64_t *n)
{
    const uint8_t *p = *pp;
    size_t head = *p == ERL_SMALL_TUPLE_EXT ? 2 : 5;
    if (!have(p, end, head))
        return false;
    *n = head == 2 ? p[1] : be32(p + 1);
    if (*p == ERL_MAP_EXT)
        *n *= 2;
    *pp = p + head;
    return *n <= (uint64_t)(end - *pp);
}

bool term_skip(const uint8_t **pp, const uint8_t *end, unsigned depth, struct atom_set *seen)
{
    const uint8_t *p = *pp;
    uint8_t buf[512];
    const uint8_t *name;
    size_t len;
    if (depth == 0 || !have(p, end, 1))
        return false;
    uint8_t tag = *p;
    uint64_t n, i;
    switch (tag) {
    case ERL_SMALL_INTEGER_EXT:
        n = 2;
        break;
    case ERL_INTEGER_EXT:
        n = 5;
        break;
    case NEW_FLOAT_EXT:
        n = 9;
        break;
    case ERL_FLOAT_EXT:
        n = 32;
        break;
    case ERL_ATOM_EXT:
    case ERL_SMALL_ATOM_EXT:
    case ERL_ATOM_UTF8_EXT:
    case ERL_SMALL_ATOM_UTF8_EXT:
        if (!term_atom(&p, end, buf, &name, &len))
            return false;
        atoms_add(seen, name, len);
        *pp = p;
        return true;
    case ERL_NIL_EXT:
        n = 1;
        break;
    case ERL_STRING_EXT:
        if (!have(p, end, 3))
            return false;
        n = 3 + be16(p + 1);
        break;
    case ERL_BINARY_EXT:
        if (!have(p, end, 5))
            return false;
        n = 5 + (uint64_t)be32(p + 1);
        break;
    case ERL_BIT_BINARY_EXT:
        if (!have(p, end, 6) || p[5] == 0 || p[5] > 8 || be32(p + 1) == 0)
            return false;
        n = 6 + (uint64_t)be32(p + 1);
        break;
    case ERL_SMALL_BIG_EXT:
        if (!have(p, end, 3) || p[2] > 1)
            return false;
        n = 3 + (uint64_t)p[1];
        break;
    case ERL_LARGE_BIG_EXT:
        if (!have(p, end, 6) || p[5] > 1)
            return false;
        n = 6 + (uint64_t)be32(p + 1);
        break;
    case ERL_NEW_FUN_EXT: /* Size counts itself; its atoms are read, as a pid's */
        if (!have(p, end, 5) || be32(p + 1) < 4 + 1 + 16 + 4 + 4)
            return false;
        n = 1 + (uint64_t)be32(p + 1);
        if (!have(p, end, n))
            return false;
        {
            const uint8_t *q = p + 1 + 4 + 1 + 16 + 4, *fe = p + n;
            uint32_t nfree = be32(q);
            q += 4;
            if (!term_skip(&q, fe, depth - 1, seen) || !term_skip(&q, fe, depth - 1, seen) ||
                !term_skip(&q, fe, depth - 1, seen) || !term_skip(&q, fe, depth - 1, seen))
                return false; /* module, old index, old uniq, pid */
            for (i = 0; i < nfree; i++)
                if (!term_skip(&q, fe, depth - 1, seen))
                    return false;
            if (q != fe)
                return false;
        }
        break;
    case ERL_EXPORT_EXT:
        p++;
        if (!term_skip(&p, end, depth - 1, seen) || !term_skip(&p, end, depth - 1, seen) ||
            !term_skip(&p, end, depth - 1, seen))
            return false;
        *pp = p;
        return true;
    case ERL_PID_EXT:
    case ERL_NEW_PID_EXT:
    case ERL_PORT_EXT:
    case ERL_NEW_PORT_EXT:
    case ERL_V4_PORT_EXT:
    case ERL_REFERENCE_EXT:
    case ERL_NEW_REFERENCE_EXT:
    case ERL_NEWER_REFERENCE_EXT:
        p++;
        if (!skip_id(tag, &p, end, seen))
            return false;
        *pp = p;
        return true;
    case ERL_SMALL_TUPLE_EXT:
    case ERL_LARGE_TUPLE_EXT:
    case ERL_LIST_EXT:
    case ERL_MAP_EXT:
        if (!container_head(&p, end, &n))
            return false;
        if (tag == ERL_LIST_EXT)
            n += 1; /* the tail */
        if (n > (uint64_t)(end - p))
            return false;
        for (i = 0; i < n; i++)
            if (!term_skip(&p, end, depth - 1, seen))
                return false;
        *pp = p;
        return true;
    default:
        return false;
    }
    if (!have(p, end, n))
        return false;
    *pp = p + n;
    return true;
}

static bool utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0)
            k = 1, cp = c & 0x1f;
        else if ((c & 0xf0) == 0xe0)
            k = 2, cp = c & 0x0f;
        else if ((c & 0xf8) == 0xf0)
            k = 3, cp = c & 0x07;
        else
            return false;
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

static void mark(struct term_marks *m, enum term_mark_kind kind, size_t off, size_t len)
{
    if (m == NULL)
        return;
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 8;
        m->v = realloc(m->v, m->cap * sizeof *m->v);
        if (m->v == NULL)
            abort();
    }
    m->v[m->n++] = (struct term_mark){kind, (uint32_t)off, (uint32_t)len};
}

static void pack_ext(msgpack_packer *pk, int8_t type, const uint8_t *p, size_t n)
{
    msgpack_pack_ext(pk, n, type);
    msgpack_pack_ext_body(pk, p, n);
}

/* A big integer's digits (little-endian bytes) into an int64 if it fits. */
static bool big_fits(const uint8_t *d, size_t n, bool neg, msgpack_packer *pk)
{
    while (n > 0 && d[n - 1] == 0)
        n--;
    if (n > 8)
        return false;
    uint64_t u = 0;
    for (size_t i = n; i-- > 0;)
        u = u << 8 | d[i];
    if (!neg)
        msgpack_pack_uint64(pk, u);
    else if (u <= (uint64_t)INT64_MAX + 1)
        msgpack_pack_int64(pk, u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u);
    else
        return false;
    return true;
}

bool term_to_mp(const uint8_t **pp, const uint8_t *end, struct gsp_buf *out, msgpack_packer *pk,
                unsigned depth, struct atom_set *seen, struct term_marks *marks)
{
    const uint8_t *p = *pp, *start = p;
    uint8_t buf[512];
    const uint8_t *name;
    size_t len, at = out->len;
    if (depth == 0 || !have(p, end, 1))
        return false;
    uint8_t tag = *p;
    uint64_t n, i;
    switch (tag) {
    case ERL_SMALL_INTEGER_EXT:
        if (!have(p, end, 2))
            return false;
        msgpack_pack_uint64(pk, p[1]);
        p += 2;
        break;
    case ERL_INTEGER_EXT:
        if (!have(p, end, 5))
            return false;
        msgpack_pack_int64(pk, (int32_t)be32(p + 1));
        p += 5;
        break;
    case NEW_FLOAT_EXT: {
        if (!have(p, end, 9))
            return false;
        uint64_t u = (uint64_t)be32(p + 1) << 32 | be32(p + 5);
        double d;
        memcpy(&d, &u, sizeof d);
        msgpack_pack_double(pk, d);
        p += 9;
        break;
    }
    case ERL_ATOM_EXT:
    case ERL_SMALL_ATOM_EXT:
    case ERL_ATOM_UTF8_EXT:
    case ERL_SMALL_ATOM_UTF8_EXT:
        if (!term_atom(&p, end, buf, &name, &len))
            return false;
        if (len == 4 && memcmp(name, "true", 4) == 0)
            msgpack_pack_true(pk);
        else if (len == 5 && memcmp(name, "false", 5) == 0)
            msgpack_pack_false(pk);
        else if (len == 3 && memcmp(name, "nil", 3) == 0)
            msgpack_pack_nil(pk);
        else {
            if (!utf8_valid(name, len))
                return false;
            atoms_add(seen, name, len);
            msgpack_pack_str_with_body(pk, name, len);
        }
        break;
    case ERL_BINARY_EXT:
        if (!have(p, end, 5) || !have(p + 5, end, be32(p + 1)))
            return false;
        n = be32(p + 1);
        if (utf8_valid(p + 5, n))
            msgpack_pack_str_with_body(pk, p + 5, n);
        else
            msgpack_pack_bin_with_body(pk, p + 5, n);
        p += 5 + n;
        mark(marks, TERM_MARK_BINARY, at, out->len - at);
        break;
    case ERL_NIL_EXT:
        msgpack_pack_array(pk, 0);
        p++;
        break;
    case ERL_STRING_EXT: /* a list of bytes */
        if (!have(p, end, 3) || !have(p + 3, end, be16(p + 1)))
            return false;
        n = be16(p + 1);
        msgpack_pack_array(pk, n);
        for (i = 0; i < n; i++)
            msgpack_pack_uint64(pk, p[3 + i]);
        p += 3 + n;
        break;
    case ERL_SMALL_TUPLE_EXT:
    case ERL_LARGE_TUPLE_EXT:
    case ERL_MAP_EXT:
        if (!container_head(&p, end, &n))
            return false;
        if (tag == ERL_MAP_EXT)
            msgpack_pack_map(pk, n / 2);
        else
            msgpack_pack_array(pk, n);
        for (i = 0; i < n; i++)
            if (!term_to_mp(&p, end, out, pk, depth - 1, seen, marks))
                return false;
        if (tag != ERL_MAP_EXT)
            mark(marks, TERM_MARK_TUPLE, at, out->len - at);
        break;
    case ERL_LIST_EXT: {
        if (!have(p, end, 5))
            return false;
        n = be32(p + 1);
        if (n > (uint64_t)(end - p))
            return false;
        /* A proper list is an array; an improper one is a term as it came. */
        const uint8_t *q = p + 5;
        for (i = 0; i < n; i++)
            if (!term_skip(&q, end, depth - 1, NULL))
                return false;
        if (!have(q, end, 1))
            return false;
        if (*q != ERL_NIL_EXT) {
            if (!term_skip(&q, end, depth - 1, seen))
                return false;
            q = p;
            if (!term_skip(&q, end, depth, seen))
                return false;
            pack_ext(pk, DIST_EXT_TERM, p, (size_t)(q - p));
            p = q;
            break;
        }
        p += 5;
        msgpack_pack_array(pk, n);
        for (i = 0; i < n; i++)
            if (!term_to_mp(&p, end, out, pk, depth - 1, seen, marks))
                return false;
        p++; /* the nil */
        break;
    }
    case ERL_SMALL_BIG_EXT:
    case ERL_LARGE_BIG_EXT: {
        const uint8_t *q = p;
        if (!term_skip(&q, end, depth, seen))
            return false;
        size_t hdr = tag == ERL_SMALL_BIG_EXT ? 3 : 6;
        if (!big_fits(p + hdr, (size_t)(q - p) - hdr, p[hdr - 1] == 1, pk))
            pack_ext(pk, DIST_EXT_INT, p, (size_t)(q - p));
        p = q;
        break;
    }
    default: {
        const uint8_t *q = p;
        if (!term_skip(&q, end, depth, seen))
            return false;
        int8_t type = DIST_EXT_TERM;
        if (tag == ERL_PID_EXT || tag == ERL_NEW_PID_EXT)
            type = DIST_EXT_PID;
        else if (tag == ERL_REFERENCE_EXT || tag == ERL_NEW_REFERENCE_EXT ||
                 tag == ERL_NEWER_REFERENCE_EXT)
            type = DIST_EXT_REF;
        else if (tag == ERL_PORT_EXT || tag == ERL_NEW_PORT_EXT || tag == ERL_V4_PORT_EXT)
            type = DIST_EXT_PORT;
        else if (tag == ERL_NEW_FUN_EXT || tag == ERL_EXPORT_EXT)
            type = DIST_EXT_FUN;
        pack_ext(pk, type, p, (size_t)(q - p));
        p = q;
        break;
    }
    }
    (void)start;
    *pp = p;
    return true;
}

/* ---- writing terms --------------------------------------------------------- */

static void put8(struct gsp_buf *b, uint8_t v)
{
    gsp_buf_append(b, &v, 1);
}

static void put32(struct gsp_buf *b, uint32_t v)
{
    uint8_t x[4] = {v >> 24, v >> 16, v >> 8, v};
    gsp_buf_append(b, x, 4);
}

void term_put_atom(struct gsp_buf *b, const void *name, size_t len)
{
    if (len < 256) {
        put8(b, ERL_SMALL_ATOM_UTF8_EXT);
        put8(b, (uint8_t)len);
    } else {
        uint8_t x[3] = {ERL_ATOM_UTF8_EXT, len >> 8, len};
        gsp_buf_append(b, x, 3);
    }
    gsp_buf_append(b, name, len);
}

void term_put_tuple(struct gsp_buf *b, uint32_t arity)
{
    if (arity < 256) {
        put8(b, ERL_SMALL_TUPLE_EXT);
        put8(b, (uint8_t)arity);
    } else {
        put8(b, ERL_LARGE_TUPLE_EXT);
        put32(b, arity);
    }
}

void term_put_int(struct gsp_buf *b, int64_t v, bool is_unsigned, uint64_t u)
{
    if (!is_unsigned && v >= 0)
        is_unsigned = true, u = (uint64_t)v;
    if (is_unsigned && u < 256) {
        put8(b, ERL_SMALL_INTEGER_EXT);
        put8(b, (uint8_t)u);
        return;
    }
    if ((is_unsigned && u <= INT32_MAX) || (!is_unsigned && v >= INT32_MIN)) {
        put8(b, ERL_INTEGER_EXT);
        put32(b, is_unsigned ? (uint32_t)u : (uint32_t)(int32_t)v);
        return;
    }
    bool neg = !is_unsigned;
    uint64_t mag = neg ? (v == INT64_MIN ? (uint64_t)INT64_MAX + 1 : (uint64_t)-v) : u;
    uint8_t d[8];
    size_t n = 0;
    while (mag) {
        d[n++] = mag & 0xff;
        mag >>= 8;
    }
    put8(b, ERL_SMALL_BIG_EXT);
    put8(b, (uint8_t)n);
    put8(b, neg);
    gsp_buf_append(b, d, n);
}

static void put_binary(struct gsp_buf *b, const void *p, size_t n)
{
    put8(b, ERL_BINARY_EXT);
    put32(b, (uint32_t)n);
    gsp_buf_append(b, p, n);
}

static bool in_list(const msgpack_object *list, size_t n, const msgpack_object *v)
{
    for (size_t i = 0; i < n; i++)
        if (gsp_value_equal(&list[i], v))
            return true;
    return false;
}

/* The atoms an opaque term holds are all known: sending it creates none. */
static bool atoms_known(const struct term_ctx *ctx, const uint8_t *p, size_t n)
{
    struct atom_set found = {0};
    const uint8_t *q = p;
    bool ok = term_skip(&q, p + n, GSP_MAX_DEPTH_HARD, &found) && q == p + n && !found.full;
    struct atom_entry *e, *t;
    HASH_ITER(hh, found.h, e, t)
    {
        if (!atoms_has(ctx->atoms, e->name, e->len) &&
            !(ctx->self_len == e->len && memcmp(ctx->self, e->name, e->len) == 0))
            ok = false;
    }
    atoms_free(&found);
    return ok;
}

bool mp_to_term(const msgpack_object *v, struct gsp_buf *b, const struct term_ctx *ctx,
                unsigned depth)
{
    if (depth == 0)
        return false;
    switch (v->type) {
    case MSGPACK_OBJECT_NIL:
        term_put_atom(b, "nil", 3);
        return true;
    case MSGPACK_OBJECT_BOOLEAN:
        if (v->via.boolean)
            term_put_atom(b, "true", 4);
        else
            term_put_atom(b, "false", 5);
        return true;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        term_put_int(b, 0, true, v->via.u64);
        return true;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        term_put_int(b, v->via.i64, false, 0);
        return true;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: {
        uint64_t u;
        double d = v->via.f64;
        memcpy(&u, &d, sizeof u);
        put8(b, NEW_FLOAT_EXT);
        put32(b, (uint32_t)(u >> 32));
        put32(b, (uint32_t)u);
        return true;
    }
    case MSGPACK_OBJECT_STR: {
        const char *s = v->via.str.ptr;
        size_t n = v->via.str.size;
        /* An atom only if the peer has one of that name, and the request
         * it answers did not hold it as a binary. */
        if (n <= 255 && (atoms_has(ctx->atoms, s, n) || atoms_has(ctx->words, s, n)) &&
            !in_list(ctx->binaries, ctx->nbinaries, v))
            term_put_atom(b, s, n);
        else
            put_binary(b, s, n);
        return true;
    }
    case MSGPACK_OBJECT_BIN:
        put_binary(b, v->via.bin.ptr, v->via.bin.size);
        return true;
    case MSGPACK_OBJECT_ARRAY: {
        uint32_t n = v->via.array.size;
        const msgpack_object *first = n ? &v->via.array.ptr[0] : NULL;
        if (first && first->type == MSGPACK_OBJECT_EXT && first->via.ext.type == GS_EXT_TUPLE &&
            first->via.ext.size == 0) { /* gs_erl_tuple's */
            term_put_tuple(b, n - 1);
            for (uint32_t i = 1; i < n; i++)
                if (!mp_to_term(&v->via.array.ptr[i], b, ctx, depth - 1))
                    return false;
            return true;
        }
        bool tuple = in_list(ctx->tuples, ctx->ntuples, v);
        if (tuple)
            term_put_tuple(b, n);
        else if (n == 0) {
            put8(b, ERL_NIL_EXT);
            return true;
        } else {
            put8(b, ERL_LIST_EXT);
            put32(b, n);
        }
        for (uint32_t i = 0; i < n; i++)
            if (!mp_to_term(&v->via.array.ptr[i], b, ctx, depth - 1))
                return false;
        if (!tuple)
            put8(b, ERL_NIL_EXT);
        return true;
    }
    case MSGPACK_OBJECT_MAP:
        put8(b, ERL_MAP_EXT);
        put32(b, v->via.map.size);
        for (uint32_t i = 0; i < v->via.map.size; i++)
            if (!mp_to_term(&v->via.map.ptr[i].key, b, ctx, depth - 1) ||
                !mp_to_term(&v->via.map.ptr[i].val, b, ctx, depth - 1))
                return false;
        return true;
    case MSGPACK_OBJECT_EXT: {
        const uint8_t *p = (const uint8_t *)v->via.ext.ptr;
        size_t n = v->via.ext.size;
        if (v->via.ext.type == GS_EXT_ATOM && ctx->made_atoms && n <= 255 && utf8_valid(p, n))
            term_put_atom(b, p, n); /* a module built it: gs_atom */
        else if (v->via.ext.type >= DIST_EXT_INT && v->via.ext.type <= DIST_EXT_TERM &&
                 atoms_known(ctx, p, n))
            gsp_buf_append(b, p, n);
        else
            put_binary(b, p, n); /* not one of ours, or would make atoms: its bytes */
        return true;
    }
    default:
        return false;
    }
}

/* ---- packets ---------------------------------------------------------------- */

bool dist_packet(const uint8_t *p, size_t len, struct gsp_span *ctl, struct gsp_span *msg)
{
    const uint8_t *end = p + len, *q;
    if (len < 3 || p[0] != 'p' || p[1] != 131)
        return false;
    p += 2;
    q = p;
    if (!term_skip(&q, end, GSP_MAX_DEPTH_HARD, NULL))
        return false;
    *ctl = (struct gsp_span){p, (size_t)(q - p)};
    if (q == end) {
        *msg = (struct gsp_span){NULL, 0};
        return true;
    }
    if (q[0] != 131 || end - q < 2)
        return false;
    *msg = (struct gsp_span){q + 1, (size_t)(end - q - 1)};
    return true;
}

int dist_control(struct gsp_span ctl, struct gsp_span el[DIST_CONTROL_MAX], unsigned *n)
{
    const uint8_t *p = ctl.ptr, *end = ctl.ptr + ctl.len;
    if (ctl.len < 4 || p[0] != ERL_SMALL_TUPLE_EXT || p[1] < 1 || p[1] > DIST_CONTROL_MAX ||
        p[2] != ERL_SMALL_INTEGER_EXT)
        return -1;
    *n = p[1];
    int op = p[3];
    p += 2;
    for (unsigned i = 0; i < *n; i++) {
        const uint8_t *q = p;
        if (!term_skip(&q, end, GSP_MAX_DEPTH_HARD, NULL))
            return -1;
        el[i] = (struct gsp_span){p, (size_t)(q - p)};
        p = q;
    }
    return p == end ? op : -1;
}
