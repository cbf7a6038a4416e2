/* head.h — reading one msgpack header; private to protocol/. */
#ifndef GSD_PROTOCOL_HEAD_H
#define GSD_PROTOCOL_HEAD_H

#include <stddef.h>
#include <stdint.h>

struct gsp_head {
    size_t size;    /* bytes of the header itself */
    uint64_t body;  /* bytes after the header (scalars, str, bin, ext) */
    uint64_t items; /* values that follow as children (arrays, maps: 2 per entry) */
    int container;  /* 1 for arrays and maps */
    int ext;        /* 1 for ext: its type is the body's first byte */
};

/* The n-byte big-endian number at p. */
static inline uint64_t gsp_be(const uint8_t *p, int n)
{
    /* The sizes a msgid or a length takes, each one load (and a byte swap). */
    if (n == 4)
        return (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
    if (n == 2)
        return (uint64_t)p[0] << 8 | p[1];
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Reads the header at p[0..avail): 1 done, 0 needs more bytes, -1 not msgpack. */
int gsp_head_read(const uint8_t *p, size_t avail, struct gsp_head *h);

/* The same, with the one-byte forms that make up most messages (fixint,
 * nil, bool, fixstr, fixarray) read inline. */
static inline int gsp_head(const uint8_t *p, size_t avail, struct gsp_head *h)
{
    if (avail == 0)
        return 0;
    uint8_t b = p[0];
    h->size = 1;
    h->body = h->items = 0;
    h->container = h->ext = 0;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return 1;
    if (b >= 0xa0 && b <= 0xbf) {
        h->body = b & 0x1f;
        return 1;
    }
    if (b >= 0x90 && b <= 0x9f) {
        h->container = 1;
        h->items = b & 0x0f;
        return 1;
    }
    return gsp_head_read(p, avail, h);
}

#endif
