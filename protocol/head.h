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
};

/* The n-byte big-endian number at p. */
static inline uint64_t gsp_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Reads the header at p[0..avail): 1 done, 0 needs more bytes, -1 not msgpack. */
int gsp_head_read(const uint8_t *p, size_t avail, struct gsp_head *h);

#endif
