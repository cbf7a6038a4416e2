/* write.c — packing messages into growable buffers. */
#include "gsp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gsp_buf_reserve(struct gsp_buf *b, size_t more)
{
    if (b->cap - b->len >= more)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < more)
        cap *= 2;
    b->data = realloc(b->data, cap);
    if (b->data == NULL)
        abort(); /* out of memory ends the process */
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
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, GSP_RESPONSE);
    msgpack_pack_uint32(pk, msgid);
    msgpack_pack_nil(pk);
}

void gsp_pack_error_begin(msgpack_packer *pk, uint32_t msgid, enum gsp_code code)
{
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

uint8_t *gsp_encode(const msgpack_object *obj, size_t *len)
{
    struct gsp_buf b = {0};
    msgpack_packer pk;
    gsp_packer_init(&pk, &b);
    msgpack_pack_object(&pk, *obj);
    *len = b.len;
    return b.data;
}
