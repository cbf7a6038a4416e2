/* frame.c — find where a message ends, check its limits, allocate nothing. */
#include "gsp.h"
#include "head.h"

#include <string.h>

int gsp_head_read(const uint8_t *p, size_t avail, struct gsp_head *h)
{
    if (avail < 1)
        return 0;
    uint8_t b = p[0];
    memset(h, 0, sizeof *h);
    h->size = 1;
    if (b <= 0x7f || b >= 0xe0 || (b >= 0xc0 && b <= 0xc3 && b != 0xc1))
        return 1; /* fixint, nil, bool */
    if (b <= 0x8f || (b >= 0x90 && b <= 0x9f)) {
        h->container = 1;
        h->items = (uint64_t)(b & 0x0f) * (b <= 0x8f ? 2 : 1);
        return 1;
    }
    if (b <= 0xbf) {
        h->body = b & 0x1f; /* fixstr */
        return 1;
    }
    int len_bytes = 0, ext = 0;
    switch (b) {
    case 0xc1:
        return -1;
    case 0xc4:
    case 0xd9:
        len_bytes = 1;
        break;
    case 0xc5:
    case 0xda:
        len_bytes = 2;
        break;
    case 0xc6:
    case 0xdb:
        len_bytes = 4;
        break;
    case 0xc7:
        len_bytes = 1;
        ext = 1;
        break;
    case 0xc8:
        len_bytes = 2;
        ext = 1;
        break;
    case 0xc9:
        len_bytes = 4;
        ext = 1;
        break;
    case 0xca:
        h->body = 4;
        return 1;
    case 0xcb:
        h->body = 8;
        return 1;
    case 0xcc:
    case 0xd0:
        h->body = 1;
        return 1;
    case 0xcd:
    case 0xd1:
        h->body = 2;
        return 1;
    case 0xce:
    case 0xd2:
        h->body = 4;
        return 1;
    case 0xcf:
    case 0xd3:
        h->body = 8;
        return 1;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        h->body = 1 + (1u << (b - 0xd4)); /* fixext: type byte + 1, 2, 4, 8 or 16 bytes */
        h->ext = 1;
        return 1;
    case 0xdc:
    case 0xde:
        len_bytes = 2;
        h->container = 1;
        break;
    case 0xdd:
    case 0xdf:
        len_bytes = 4;
        h->container = 1;
        break;
    default:
        return -1;
    }
    if (avail < (size_t)(1 + len_bytes))
        return 0;
    uint64_t n = gsp_be(p + 1, len_bytes);
    h->size = 1 + (size_t)len_bytes;
    if (h->container)
        h->items = n * (b == 0xde || b == 0xdf ? 2 : 1);
    else
        h->body = n + (uint64_t)ext; /* ext: the type byte follows the length */
    h->ext = ext;
    return 1;
}

void gsp_framer_reset(struct gsp_framer *f)
{
    f->pos = 0;
    f->items = 0;
    f->depth = 0;
}

enum gsp_scan gsp_framer_feed(struct gsp_framer *f, const uint8_t *buf, size_t len,
                              const struct gsp_limits *lim, size_t *frame_len)
{
    if (f->pos == 0)
        f->atom = false;
    for (;;) {
        struct gsp_head h;
        int r = gsp_head(buf + f->pos, len - f->pos, &h);
        if (r < 0)
            return GSP_SCAN_INVALID;
        if (r == 0)
            return f->pos >= lim->max_size ? GSP_SCAN_TOO_LARGE : GSP_SCAN_MORE;
        /* Every child takes at least one byte, so a count can be judged
         * against the size limit before its bytes arrive. */
        uint64_t end = (uint64_t)f->pos + h.size + h.body + h.items;
        if (end > lim->max_size)
            return GSP_SCAN_TOO_LARGE;
        if (h.container) {
            if (f->depth + 1 > lim->max_depth || f->depth + 1 > GSP_MAX_DEPTH_HARD)
                return GSP_SCAN_TOO_DEEP;
            /* Each item decodes into an object: the count is judged as
             * bytes are, before the items arrive. */
            if (f->items + h.items > gsp_max_items(lim))
                return GSP_SCAN_TOO_LARGE;
            f->items += h.items;
            f->pos += h.size;
            if (h.items > 0) {
                f->left[++f->depth] = h.items;
                continue;
            }
        } else {
            if (end > len)
                return GSP_SCAN_MORE;
            if (h.ext && buf[f->pos + h.size] == GSP_EXT_ATOM)
                f->atom = true;
            f->pos = (size_t)end;
        }
        /* A value is complete: close every container it completes. */
        while (f->depth > 0 && --f->left[f->depth] == 0)
            f->depth--;
        if (f->depth == 0) {
            *frame_len = f->pos;
            gsp_framer_reset(f);
            return GSP_SCAN_DONE;
        }
    }
}
