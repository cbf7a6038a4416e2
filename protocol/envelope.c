/* envelope.c — read a framed message in place: its envelope and spans. */
#include "gsp.h"
#include "head.h"

#include <stdlib.h>
#include <string.h>

static struct gsp_span enc_nil_span(void)
{
    static const uint8_t nil = 0xc0;
    return (struct gsp_span){&nil, 1};
}

static bool head(const struct gsp_cursor *c, struct gsp_head *h)
{
    return gsp_head(c->p, (size_t)(c->end - c->p), h) == 1 &&
           h->size + h->body <= (uint64_t)(c->end - c->p);
}

static bool get_container(struct gsp_cursor *c, uint32_t *n, bool map)
{
    struct gsp_head h;
    uint8_t b = c->p < c->end ? *c->p : 0;
    bool is_map = (b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf;
    if (!head(c, &h) || !h.container || is_map != map)
        return false;
    *n = (uint32_t)(map ? h.items / 2 : h.items);
    c->p += h.size;
    return true;
}

bool gsp_get_array(struct gsp_cursor *c, uint32_t *n)
{
    return get_container(c, n, false);
}

bool gsp_get_map(struct gsp_cursor *c, uint32_t *n)
{
    return get_container(c, n, true);
}

bool gsp_get_uint(struct gsp_cursor *c, uint64_t *v)
{
    struct gsp_head h;
    if (!head(c, &h))
        return false;
    uint8_t b = *c->p;
    uint64_t x;
    if (b <= 0x7f)
        x = b;
    else if (b >= 0xcc && b <= 0xcf)
        x = gsp_be(c->p + 1, (int)h.body);
    else if (b >= 0xd0 && b <= 0xd3) {
        int n = (int)h.body;
        x = gsp_be(c->p + 1, n);
        if (x >> (8 * n - 1)) /* negative */
            return false;
    } else
        return false;
    *v = x;
    c->p += h.size + h.body;
    return true;
}

bool gsp_get_int(struct gsp_cursor *c, int64_t *v)
{
    struct gsp_head h;
    if (!head(c, &h))
        return false;
    uint8_t b = *c->p;
    int64_t x;
    if (b <= 0x7f || b >= 0xe0)
        x = (int8_t)b;
    else if (b >= 0xcc && b <= 0xcf) {
        uint64_t u = gsp_be(c->p + 1, (int)h.body);
        if (u > INT64_MAX)
            return false;
        x = (int64_t)u;
    } else if (b >= 0xd0 && b <= 0xd3) {
        int n = (int)h.body;
        uint64_t u = gsp_be(c->p + 1, n);
        if (n < 8 && (u >> (8 * n - 1))) /* sign-extend */
            u |= ~0ull << (8 * n);
        x = (int64_t)u;
    } else
        return false;
    *v = x;
    c->p += h.size + h.body;
    return true;
}

bool gsp_get_bool(struct gsp_cursor *c, bool *v)
{
    if (c->p >= c->end || (*c->p != 0xc2 && *c->p != 0xc3))
        return false;
    *v = *c->p++ == 0xc3;
    return true;
}

/* Any str or bin but a fixstr; kept out of line, so that the fixstr's
 * path saves no registers. */
static __attribute__((noinline)) bool get_str_any(struct gsp_cursor *c, const char **s,
                                                  uint32_t *len)
{
    struct gsp_head h;
    if (!head(c, &h))
        return false;
    uint8_t b = *c->p;
    if (!((b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb) || (b >= 0xc4 && b <= 0xc6)))
        return false;
    *s = (const char *)c->p + h.size;
    *len = (uint32_t)h.body;
    c->p += h.size + h.body;
    return true;
}

bool gsp_get_str(struct gsp_cursor *c, const char **s, uint32_t *len)
{
    const uint8_t *p = c->p;
    if (p < c->end && (*p & 0xe0) == 0xa0) { /* a fixstr, the usual */
        uint32_t n = *p & 0x1f;
        if (n >= (size_t)(c->end - p))
            return false;
        *s = (const char *)p + 1;
        *len = n;
        c->p = p + 1 + n;
        return true;
    }
    return get_str_any(c, s, len);
}

bool gsp_is_nil(const struct gsp_cursor *c)
{
    return c->p < c->end && *c->p == 0xc0;
}

bool gsp_get_nil(struct gsp_cursor *c)
{
    if (!gsp_is_nil(c))
        return false;
    c->p++;
    return true;
}

/* Any value but a fixstr; out of line, as get_str_any. */
static __attribute__((noinline)) bool get_span_any(struct gsp_cursor *c, struct gsp_span *out)
{
    const uint8_t *p = c->p;
    uint64_t due = 1; /* values still to step over */
    while (due > 0) {
        struct gsp_cursor at = {p, c->end};
        struct gsp_head h;
        if (!head(&at, &h))
            return false;
        p += h.size + h.body;
        due += h.items - 1;
    }
    out->ptr = c->p;
    out->len = (size_t)(p - c->p);
    c->p = p;
    return true;
}

bool gsp_get_span(struct gsp_cursor *c, struct gsp_span *out)
{
    const uint8_t *p = c->p;
    if (p < c->end && (*p & 0xe0) == 0xa0 && (size_t)(*p & 0x1f) < (size_t)(c->end - p)) {
        out->ptr = p; /* a fixstr, the usual */
        out->len = 1 + (*p & 0x1f);
        c->p = p + out->len;
        return true;
    }
    return get_span_any(c, out);
}

bool gsp_envelope_read(const uint8_t *frame, size_t len, struct gsp_envelope *env)
{
    struct gsp_cursor c = {frame, frame + len};
    uint32_t n;
    uint64_t type, msgid;
    memset(env, 0, sizeof *env);
    if (!gsp_get_array(&c, &n) || n < 1 || !gsp_get_uint(&c, &type))
        return false;
    env->type = (enum gsp_type)type;
    if (type == GSP_REQUEST || type == GSP_RESPONSE) {
        if (n < 2 || !gsp_get_uint(&c, &msgid) || msgid > UINT32_MAX)
            return false;
        env->has_msgid = true; /* the rest may be bad, but can be answered */
        env->msgid = (uint32_t)msgid;
        if (n != 4)
            return false;
        if (type == GSP_RESPONSE)
            return gsp_get_span(&c, &env->error) && gsp_get_span(&c, &env->result);
    } else if (type != GSP_NOTIFY || n != 3)
        return false;
    if (!gsp_get_str(&c, &env->method, &env->method_len) || !gsp_get_array(&c, &env->nparams))
        return false;
    env->params = c;
    return true;
}

/* Steps over one complete value at p, with containers nested at most
 * `depth` deep; NULL if it does not end before end, is not msgpack or
 * nests deeper. Every child takes a byte at least, so a count larger than
 * what is left fails at once. */
static const uint8_t *skip(const uint8_t *p, const uint8_t *end, unsigned depth)
{
    struct gsp_head h;
    if (gsp_head(p, (size_t)(end - p), &h) != 1)
        return NULL;
    p += h.size;
    if (h.ext && h.body <= (uint64_t)(end - p) && *p == GSP_EXT_ATOM)
        return NULL; /* the framer's to flag */
    if (!h.container)
        return h.body <= (uint64_t)(end - p) ? p + h.body : NULL;
    if (depth == 0 || h.items > (uint64_t)(end - p))
        return NULL;
    for (uint64_t i = 0; i < h.items; i++)
        if ((p = skip(p, end, depth - 1)) == NULL)
            return NULL;
    return p;
}

/* skip, with the one-byte forms most params take read inline. */
static inline const uint8_t *skip_param(const uint8_t *p, const uint8_t *end, unsigned depth)
{
    uint8_t b = p < end ? *p : 0xc1;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return p + 1;
    if ((b & 0xe0) == 0xa0) /* fixstr */
        return (size_t)(b & 0x1f) < (size_t)(end - p) ? p + 1 + (b & 0x1f) : NULL;
    return skip(p, end, depth);
}

bool gsp_request_read(const uint8_t *buf, size_t avail, const struct gsp_limits *lim,
                      struct gsp_envelope *env, size_t *frame_len)
{
    /* A message longer than max_size cannot end before end: the framer
     * says too_large. Nor can one longer than gsp_max_items bytes, so
     * that every message read here has fewer items than that (each takes
     * a byte): the framer judges longer ones. The envelope and params take
     * two levels. */
    size_t most = lim->max_size < gsp_max_items(lim) ? lim->max_size : (size_t)gsp_max_items(lim);
    const uint8_t *p = buf, *end = buf + (avail < most ? avail : most);
    unsigned depth = lim->max_depth < GSP_MAX_DEPTH_HARD ? lim->max_depth : GSP_MAX_DEPTH_HARD;
    if (end - p < 4 || depth < 2)
        return false;
    env->msgid = 0;
    if (p[0] == 0x94 && p[1] == GSP_REQUEST) {
        uint8_t b = p[2];
        int n = b <= 0x7f ? 0 : b == 0xcc ? 1 : b == 0xcd ? 2 : b == 0xce ? 4 : -1;
        if (n < 0 || end - p < 4 + n)
            return false;
        env->msgid = n ? (uint32_t)gsp_be(p + 3, n) : b;
        p += 3 + n;
    } else if (p[0] == 0x93 && p[1] == GSP_NOTIFY)
        p += 2;
    else
        return false;
    if ((p[0] & 0xe0) != 0xa0 || end - p < 2 + (p[0] & 0x1f))
        return false;
    env->method = (const char *)p + 1;
    env->method_len = p[0] & 0x1f;
    p += 1 + env->method_len;
    if ((p[0] & 0xf0) != 0x90)
        return false;
    env->nparams = *p++ & 0x0f;
    const uint8_t *params = p;
    for (uint32_t i = 0; i < env->nparams; i++)
        if ((p = skip_param(p, end, depth - 2)) == NULL)
            return false;
    env->type = buf[1] == GSP_REQUEST ? GSP_REQUEST : GSP_NOTIFY;
    env->has_msgid = env->type == GSP_REQUEST;
    env->params = (struct gsp_cursor){params, p};
    env->error = env->result = (struct gsp_span){NULL, 0};
    *frame_len = (size_t)(p - buf);
    return true;
}

bool gsp_method_is(const struct gsp_envelope *env, const char *name)
{
    size_t n = strlen(name);
    return env->method_len == n && memcmp(env->method, name, n) == 0;
}

/* [code, detail] from c, past its array header of n items. */
static bool code_detail(struct gsp_cursor *c, uint32_t n, const char **code, uint32_t *code_len,
                        struct gsp_span *detail)
{
    if (n < 1 || !gsp_get_str(c, code, code_len))
        return false;
    *detail = enc_nil_span();
    if (n >= 2)
        gsp_get_span(c, detail);
    return true;
}

bool gsp_error_read(struct gsp_span error, const char **code, uint32_t *code_len,
                    struct gsp_span *detail)
{
    struct gsp_cursor c = {error.ptr, error.ptr + error.len};
    uint32_t n;
    return gsp_get_array(&c, &n) && code_detail(&c, n, code, code_len, detail);
}

bool gsp_error_notify_read(const struct gsp_envelope *env, const char **code, uint32_t *code_len,
                           struct gsp_span *detail)
{
    struct gsp_cursor c = env->params;
    return code_detail(&c, env->nparams, code, code_len, detail);
}

bool gsp_down_read(const struct gsp_envelope *env, struct gsp_down *d)
{
    struct gsp_cursor p = env->params;
    struct gsp_span skip;
    memset(d, 0, sizeof *d);
    if (env->nparams < 1 || !gsp_get_uint(&p, &d->ref))
        return false;
    if (env->nparams >= 2 && !gsp_get_uint(&p, &d->id))
        gsp_get_span(&p, &skip); /* not an id (nil?): id stays 0 */
    if (env->nparams >= 3)
        gsp_get_span(&p, &d->name);
    if (env->nparams >= 4)
        gsp_get_span(&p, &d->reason);
    return true;
}

/* Here, with the decoder, as every program that reads messages links this
 * file (gsbench no other that allocates). */
void (*gsp_oom_hook)(size_t n);

void gsp_oom(size_t n)
{
    if (gsp_oom_hook)
        gsp_oom_hook(n);
    abort();
}

bool gsp_decode(const uint8_t *ptr, size_t len, msgpack_zone *zone, msgpack_object *out)
{
    /* The usual lone scalars need no unpacker and no zone. */
    uint8_t b = len ? ptr[0] : 0;
    if (len == 1 && (b <= 0x7f || b >= 0xe0)) {
        if (b <= 0x7f) {
            out->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
            out->via.u64 = b;
        } else {
            out->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
            out->via.i64 = (int8_t)b;
        }
        return true;
    }
    if (len == 1 && b == 0xc0) {
        out->type = MSGPACK_OBJECT_NIL;
        return true;
    }
    if (len >= 1 && b >= 0xa0 && b <= 0xbf && len == 1 + (size_t)(b & 0x1f)) {
        out->type = MSGPACK_OBJECT_STR;
        out->via.str.ptr = (const char *)ptr + 1;
        out->via.str.size = b & 0x1f;
        return true;
    }
    if (zone == NULL)
        return false;
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack((const char *)ptr, len, &off, zone, out);
    if (r == MSGPACK_UNPACK_NOMEM_ERROR) /* the zone could not grow: at most this much */
        gsp_oom(len * sizeof(msgpack_object));
    return r == MSGPACK_UNPACK_SUCCESS && off == len;
}
