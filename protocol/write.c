/* write.c — packing messages into growable buffers. */
#include "gsp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t gsp_buf_cap_for(const struct gsp_buf *b, size_t more)
{
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < more)
        cap *= 2;
    return cap;
}

void gsp_buf_grow(struct gsp_buf *b, size_t more)
{
    size_t cap = gsp_buf_cap_for(b, more);
    uint8_t *data = realloc(b->data, cap);
    if (data == NULL)
        gsp_oom(cap);
    b->data = data;
    b->cap = cap;
}

void gsp_buf_append(struct gsp_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return; /* msgpack-c writes an empty str's body as (NULL, 0) */
    gsp_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void gsp_buf_consume(struct gsp_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void gsp_buf_free(struct gsp_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static int buf_write(void *data, const char *p, size_t n)
{
    gsp_buf_append(data, p, n);
    return 0;
}

void gsp_packer_init(msgpack_packer *pk, struct gsp_buf *b)
{
    msgpack_packer_init(pk, b, buf_write);
}

/* ---- direct encoding: the bytes msgpack-c's packer writes, without a
 * callback per fragment --------------------------------------------------- */

static size_t put_be(uint8_t *p, uint8_t tag, uint64_t v, int n)
{
    p[0] = tag;
    for (int i = 0; i < n; i++)
        p[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    return 1 + (size_t)n;
}

static size_t put_uint(uint8_t *p, uint64_t v)
{
    if (v < 128) {
        p[0] = (uint8_t)v;
        return 1;
    }
    if (v < 256)
        return put_be(p, 0xcc, v, 1);
    if (v < 65536)
        return put_be(p, 0xcd, v, 2);
    if (v <= UINT32_MAX)
        return put_be(p, 0xce, v, 4);
    return put_be(p, 0xcf, v, 8);
}

static size_t put_int(uint8_t *p, int64_t v)
{
    if (v >= -32) {
        if (v >= 0)
            return put_uint(p, (uint64_t)v);
        p[0] = (uint8_t)(int8_t)v;
        return 1;
    }
    if (v >= -128)
        return put_be(p, 0xd0, (uint64_t)v, 1);
    if (v >= -32768)
        return put_be(p, 0xd1, (uint64_t)v, 2);
    if (v >= INT32_MIN)
        return put_be(p, 0xd2, (uint64_t)v, 4);
    return put_be(p, 0xd3, (uint64_t)v, 8);
}

/* A str, bin, array or map header: the fix form (if the type has one and n
 * fits), else the 8-bit (str, bin), 16-bit or 32-bit length form. */
static size_t put_head(uint8_t *p, uint8_t fix, uint32_t fix_max, uint8_t f8, uint8_t f16,
                       uint32_t n)
{
    if (fix && n <= fix_max) {
        p[0] = (uint8_t)(fix | n);
        return 1;
    }
    if (f8 && n < 256)
        return put_be(p, f8, n, 1);
    if (n < 65536)
        return put_be(p, f16, n, 2);
    return put_be(p, (uint8_t)(f16 + 1), n, 4);
}

/* gsp_buf_pack, false as soon as b->len passes end (it is within end on
 * entry) before a str, bin or ext body or a container's items: what would
 * pass it is not copied. A scalar may pass it by its few bytes: the caller
 * checks the total once. */
static bool pack(struct gsp_buf *b, const msgpack_object *v, size_t end)
{
    gsp_buf_reserve(b, 9);
    uint8_t *p = b->data + b->len;
    switch (v->type) {
    case MSGPACK_OBJECT_NIL:
        p[0] = 0xc0;
        b->len++;
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        p[0] = v->via.boolean ? 0xc3 : 0xc2;
        b->len++;
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        b->len += put_uint(p, v->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        b->len += put_int(p, v->via.i64);
        break;
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN: {
        bool str = v->type == MSGPACK_OBJECT_STR;
        uint32_t n = v->via.str.size;
        b->len += str ? put_head(p, 0xa0, 31, 0xd9, 0xda, n) : put_head(p, 0, 0, 0xc4, 0xc5, n);
        if (b->len > end || n > end - b->len)
            return false;
        gsp_buf_append(b, v->via.str.ptr, n);
        break;
    }
    case MSGPACK_OBJECT_ARRAY:
        b->len += put_head(p, 0x90, 15, 0, 0xdc, v->via.array.size);
        if (b->len > end)
            return false;
        for (uint32_t i = 0; i < v->via.array.size; i++)
            if (!pack(b, &v->via.array.ptr[i], end))
                return false;
        break;
    case MSGPACK_OBJECT_MAP:
        b->len += put_head(p, 0x80, 15, 0, 0xde, v->via.map.size);
        if (b->len > end)
            return false;
        for (uint32_t i = 0; i < v->via.map.size; i++)
            if (!pack(b, &v->via.map.ptr[i].key, end) || !pack(b, &v->via.map.ptr[i].val, end))
                return false;
        break;
    default: { /* floats, exts: as msgpack-c packs them */
        if (v->type == MSGPACK_OBJECT_EXT && (b->len > end || v->via.ext.size > end - b->len))
            return false;
        msgpack_packer pk;
        gsp_packer_init(&pk, b);
        msgpack_pack_object(&pk, *v);
    }
    }
    return true;
}

void gsp_buf_pack(struct gsp_buf *b, const msgpack_object *v)
{
    pack(b, v, SIZE_MAX);
}

bool gsp_buf_pack_max(struct gsp_buf *b, const msgpack_object *v, size_t max)
{
    size_t at = b->len;
    if (pack(b, v, max < SIZE_MAX - at ? at + max : SIZE_MAX) && b->len - at <= max)
        return true;
    b->len = at;
    return false;
}

void gsp_pack_raw(msgpack_packer *pk, const void *p, size_t n)
{
    pk->callback(pk->data, p, n);
}

void gsp_pack_strn(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void gsp_pack_str(msgpack_packer *pk, const char *s)
{
    gsp_pack_strn(pk, s, strlen(s));
}

void gsp_pack_request(msgpack_packer *pk, uint32_t msgid, const char *method, uint32_t nparams)
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, GSP_REQUEST);
    msgpack_pack_uint32(pk, msgid);
    gsp_pack_str(pk, method);
    msgpack_pack_array(pk, nparams);
}

void gsp_pack_notify(msgpack_packer *pk, const char *method, uint32_t nparams)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint8(pk, GSP_NOTIFY);
    gsp_pack_str(pk, method);
    msgpack_pack_array(pk, nparams);
}

void gsp_pack_result(msgpack_packer *pk, uint32_t msgid)
{
    if (pk->callback == buf_write) { /* into a gsp_buf: the bytes at once */
        struct gsp_buf *b = pk->data;
        gsp_buf_reserve(b, 8);
        uint8_t *p = b->data + b->len;
        p[0] = 0x94;
        p[1] = GSP_RESPONSE;
        size_t n = put_uint(p + 2, msgid);
        p[2 + n] = 0xc0;
        b->len += 3 + n;
        return;
    }
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, GSP_RESPONSE);
    msgpack_pack_uint32(pk, msgid);
    msgpack_pack_nil(pk);
}

uint64_t gsp_errors_packed[GSP_CODE_COUNT];

void gsp_pack_error_begin(msgpack_packer *pk, uint32_t msgid, enum gsp_code code)
{
    if ((unsigned)code < GSP_CODE_COUNT)
        gsp_errors_packed[code]++;
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, GSP_RESPONSE);
    msgpack_pack_uint32(pk, msgid);
    msgpack_pack_array(pk, 2);
    gsp_pack_str(pk, gsp_code_name(code));
}

void gsp_pack_error_end(msgpack_packer *pk)
{
    msgpack_pack_nil(pk);
}

void gsp_pack_error(msgpack_packer *pk, uint32_t msgid, enum gsp_code code, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    gsp_pack_error_begin(pk, msgid, code);
    gsp_pack_strn(pk, text, n < 0 ? 0 : (size_t)n >= sizeof text ? sizeof text - 1 : (size_t)n);
    gsp_pack_error_end(pk);
}

void gsp_pack_response(msgpack_packer *pk, uint32_t msgid, enum gsp_code code, const void *v,
                       size_t len)
{
    if (code == GSP_OK) {
        gsp_pack_result(pk, msgid);
        gsp_pack_raw(pk, v, len);
        return;
    }
    gsp_pack_error_begin(pk, msgid, code);
    gsp_pack_raw(pk, v, len);
    gsp_pack_error_end(pk);
}

void gsp_pack_error_notify(msgpack_packer *pk, enum gsp_code code, const char *detail)
{
    gsp_pack_notify(pk, "error", 2);
    gsp_pack_str(pk, gsp_code_name(code));
    gsp_pack_str(pk, detail);
}

void gsp_pack_down(msgpack_packer *pk, uint64_t ref, uint64_t id, const char *name, size_t name_len,
                   const void *reason, size_t len)
{
    gsp_pack_notify(pk, "down", 4);
    msgpack_pack_uint64(pk, ref);
    msgpack_pack_uint64(pk, id);
    if (name)
        gsp_pack_strn(pk, name, name_len);
    else
        msgpack_pack_nil(pk);
    gsp_pack_raw(pk, reason, len);
}

void gsp_pack_down_info(msgpack_packer *pk, uint64_t ref, uint64_t id, const void *reason,
                        size_t len)
{
    msgpack_pack_array(pk, 4);
    gsp_pack_str(pk, "down");
    msgpack_pack_uint64(pk, ref);
    msgpack_pack_uint64(pk, id);
    gsp_pack_raw(pk, reason, len);
}

void gsp_pack_call_reply(msgpack_packer *pk, uint64_t ref, enum gsp_code code, const void *v,
                         size_t len)
{
    msgpack_pack_array(pk, 4);
    gsp_pack_str(pk, "reply");
    msgpack_pack_uint64(pk, ref);
    if (code == GSP_OK) {
        msgpack_pack_nil(pk);
        gsp_pack_raw(pk, v, len);
        return;
    }
    msgpack_pack_array(pk, 2);
    gsp_pack_str(pk, gsp_code_name(code));
    gsp_pack_raw(pk, v, len);
    msgpack_pack_nil(pk);
}

uint8_t *gsp_encode(const msgpack_object *obj, size_t *len)
{
    struct gsp_buf b = {0};
    gsp_buf_pack(&b, obj);
    *len = b.len;
    return b.data;
}
