/* scratch.c — memory that lives for one callback: the scratch arena modules
 * build replies in, and the zone one message is decoded into. */
#include "gsd.h"

#include <stdlib.h>

struct chunk {
    struct chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

/* A chunk larger than this is not kept between callbacks: one large reply
 * must not keep its memory for good. */
#define KEEP_MAX (1u << 20)

static struct chunk *chunks; /* newest first; the oldest is kept on reset */
static msgpack_zone *zone;
static bool lent; /* memory or the zone handed out since the last reset */

void *scratch_alloc(size_t n)
{
    lent = true;
    n = (n + 15) & ~(size_t)15;
    if (chunks == NULL || chunks->size - chunks->used < n) {
        size_t size = n > 16384 ? n : 16384;
        struct chunk *c = xmalloc(sizeof *c + size);
        c->size = size;
        c->used = 0;
        c->next = chunks;
        chunks = c;
    }
    void *p = chunks->data + chunks->used;
    chunks->used += n;
    return p;
}

void scratch_reset(void)
{
    if (!lent) /* nothing to give back: reset already */
        return;
    lent = false;
    while (chunks && chunks->next) {
        struct chunk *c = chunks;
        chunks = c->next;
        free(c);
    }
    if (chunks && chunks->size > KEEP_MAX) {
        free(chunks);
        chunks = NULL;
    }
    if (chunks)
        chunks->used = 0;
    if (zone && !msgpack_zone_is_empty(zone)) /* most messages decode without it */
        msgpack_zone_clear(zone);
}

msgpack_zone *scratch_zone(void)
{
    if (zone == NULL && (zone = msgpack_zone_new(8192)) == NULL)
        gsp_oom(sizeof(msgpack_zone) + 8192);
    lent = true;
    return zone;
}

bool scratch_decode(struct gsp_span v, msgpack_object *out)
{
    return gsp_decode(v.ptr, v.len, NULL, out) || gsp_decode(v.ptr, v.len, scratch_zone(), out);
}

void scratch_free(void)
{
    scratch_reset();
    free(chunks);
    chunks = NULL;
    if (zone)
        msgpack_zone_free(zone);
    zone = NULL;
}
