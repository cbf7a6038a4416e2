/* slowlog.c — the slowest recent callbacks, as Redis's SLOWLOG keeps them:
 * a ring of the last limits.slowlog_len callbacks that took at least
 * slow_callback_ms, each with what it handled. Only a slow callback
 * records (server.c's tally, on its slow branch): a fast one pays nothing
 * here. Memory: at most slowlog_len entries of at most
 * slowlog_message_bytes of message each, plus the names. */
#include "gsd.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct entry {
    int64_t at_ms; /* Unix time */
    int64_t duration_us;
    uint64_t id;
    enum callback cb;
    char *name;       /* NULL: anonymous */
    char *module;     /* in the same block as name and message */
    uint8_t *message; /* encoded: the value, or a str of its text, cut */
    size_t message_len;
};

static struct entry *ring;
static uint32_t cap;   /* entries ring has room for: limits.slowlog_len as last seen */
static uint32_t head;  /* where the next one goes */
static uint32_t count; /* entries kept */

static void entry_clear(struct entry *e)
{
    free(e->module); /* the block */
    memset(e, 0, sizeof *e);
}

/* The i-th newest (0: the newest). */
static struct entry *newest(uint32_t i)
{
    return &ring[(head + cap - 1 - i) % cap];
}

/* Follows limits.slowlog_len (a reload may change it), keeping the newest. */
static void resize(uint32_t n)
{
    struct entry *next = n ? xcalloc(n, sizeof *next) : NULL;
    uint32_t keep = count < n ? count : n;
    for (uint32_t i = 0; i < count; i++) {
        struct entry *e = newest(i);
        if (i < keep)
            next[keep - 1 - i] = *e; /* oldest first */
        else
            entry_clear(e);
    }
    free(ring);
    ring = next;
    cap = n;
    count = keep;
    head = n ? keep % n : 0;
}

/* The message as kept: the value if it fits, else its text cut. */
static uint8_t *keep_message(struct gsp_span msg, size_t *len, char *to)
{
    size_t max = limits.slowlog_message_bytes;
    if (msg.len == 0) {
        to[0] = (char)0xc0; /* nil */
        *len = 1;
        return (uint8_t *)to;
    }
    if (msg.len <= max) {
        memcpy(to, msg.ptr, msg.len);
        *len = msg.len;
        return (uint8_t *)to;
    }
    /* A str of the text: a header of 5 bytes, max - 5 of text at most. */
    size_t room = max > 16 ? max - 5 : 11;
    char *text = xmalloc(room + 1);
    gs_value v = gs_nil();
    if (scratch_decode(msg, &v))
        value_text(text, room + 1, &v);
    else
        strcpy(text, "(undecodable)");
    size_t n = strlen(text);
    if (n + 3 > room) { /* cut: says so */
        n = room - 3;
        memcpy(text + n, "...", 3);
        n += 3;
    }
    struct gsp_buf b = {0};
    msgpack_packer pk;
    gsp_packer_init(&pk, &b);
    gsp_pack_strn(&pk, text, n);
    free(text);
    memcpy(to, b.data, b.len);
    *len = b.len;
    gsp_buf_free(&b);
    return (uint8_t *)to;
}

void slowlog_record(const struct server *s, enum callback cb, int64_t took_us, struct gsp_span msg)
{
    if (limits.slowlog_len != cap)
        resize(limits.slowlog_len);
    if (cap == 0)
        return;
    struct entry *e = &ring[head];
    entry_clear(e);
    size_t mlen = strlen(s->mod->name) + 1, nlen = s->name ? strlen(s->name) + 1 : 0;
    size_t room = limits.slowlog_message_bytes + 16; /* a cut text's header and its "..." */
    char *block = xmalloc(mlen + nlen + room);
    e->module = memcpy(block, s->mod->name, mlen);
    e->name = s->name ? memcpy(block + mlen, s->name, nlen) : NULL;
    e->message = keep_message(msg, &e->message_len, block + mlen + nlen);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    e->at_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    e->duration_us = took_us;
    e->id = s->id;
    e->cb = cb;
    head = (head + 1) % cap;
    if (count < cap)
        count++;
}

static uint32_t shown(uint64_t n)
{
    if (limits.slowlog_len != cap)
        resize(limits.slowlog_len);
    return n < count ? (uint32_t)n : count;
}

size_t slowlog_size(uint64_t n)
{
    uint32_t k = shown(n);
    size_t total = 8;
    for (uint32_t i = 0; i < k; i++) {
        struct entry *e = newest(i);
        total += 128 + strlen(e->module) + (e->name ? strlen(e->name) : 0) + e->message_len;
    }
    return total;
}

static void kv_int(msgpack_packer *pk, const char *k, int64_t v)
{
    gsp_pack_str(pk, k);
    msgpack_pack_int64(pk, v);
}

void slowlog_pack(msgpack_packer *pk, uint64_t n)
{
    uint32_t k = shown(n);
    msgpack_pack_array(pk, k);
    for (uint32_t i = 0; i < k; i++) {
        struct entry *e = newest(i);
        msgpack_pack_map(pk, 7);
        kv_int(pk, "at_ms", e->at_ms);
        kv_int(pk, "duration_us", e->duration_us);
        gsp_pack_str(pk, "id");
        msgpack_pack_uint64(pk, e->id);
        gsp_pack_str(pk, "name");
        if (e->name)
            gsp_pack_str(pk, e->name);
        else
            msgpack_pack_nil(pk);
        gsp_pack_str(pk, "module");
        gsp_pack_str(pk, e->module);
        gsp_pack_str(pk, "callback");
        gsp_pack_str(pk, callback_names[e->cb]);
        gsp_pack_str(pk, "message");
        gsp_pack_raw(pk, e->message, e->message_len);
    }
}

void slowlog_reset(void)
{
    for (uint32_t i = 0; i < cap; i++)
        entry_clear(&ring[i]);
    head = count = 0;
}

void slowlog_free(void)
{
    slowlog_reset();
    free(ring);
    ring = NULL;
    cap = 0;
}
