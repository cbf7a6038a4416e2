/* registry.c — every live server, by id and by name, and what `which`
 * shows of them. */
#include "gsd.h"

#include <stdlib.h>
#include <string.h>

static struct server *by_id, *by_name;
TAILQ_HEAD(registry_order, server);
static struct registry_order in_order = TAILQ_HEAD_INITIALIZER(in_order); /* start order */
static uint64_t last_id;
/* The server last found by name: most calls name the one the call before
 * named. Forgotten when it leaves the registry. */
static struct server *last_found;
static size_t last_found_len;
/* What `which` shows changes with each generation (registry_changed). */
static uint64_t generation = 1;
/* The encoded `which []` result, of generation which_gen (0: none), from
 * which_all.data + which_head on. */
static struct gsp_buf which_all;
static uint64_t which_gen;
static size_t which_head;

uint64_t registry_next_id(void)
{
    return ++last_id;
}

void registry_changed(void)
{
    generation++;
}

void registry_add(struct server *s)
{
    generation++;
    HASH_ADD(hh_id, by_id, id, sizeof s->id, s);
    TAILQ_INSERT_TAIL(&in_order, s, reg_link);
    if (s->name)
        HASH_ADD_KEYPTR(hh_name, by_name, s->name, strlen(s->name), s);
}

void registry_remove(struct server *s)
{
    if (s == last_found)
        last_found = NULL;
    HASH_DELETE(hh_id, by_id, s);
    TAILQ_REMOVE(&in_order, s, reg_link);
    if (s->name)
        HASH_DELETE(hh_name, by_name, s);
    generation++;
    if (TAILQ_EMPTY(&in_order)) { /* nothing left to list: at exit, every server has ended */
        gsp_buf_free(&which_all);
        which_gen = 0;
    }
}

struct server *registry_by_id(uint64_t id)
{
    struct server *s;
    HASH_FIND(hh_id, by_id, &id, sizeof id, s);
    return s;
}

struct server *registry_by_name(const char *name, size_t len)
{
    struct server *s = last_found;
    if (s && len == last_found_len && memcmp(s->name, name, len) == 0)
        return s;
    HASH_FIND(hh_name, by_name, name, len, s);
    if (s) {
        last_found = s;
        last_found_len = len;
    }
    return s;
}

unsigned registry_count(void)
{
    return HASH_CNT(hh_id, by_id);
}

void registry_foreach(bool reverse, void (*fn)(struct server *s, void *arg), void *arg)
{
    /* A snapshot, so that fn may end servers (they are freed only once the
     * loop gets back control: sched_reap). */
    unsigned n = registry_count(), i = 0;
    struct server **all = xmalloc(n * sizeof *all), *s;
    TAILQ_FOREACH(s, &in_order, reg_link)
    all[i++] = s;
    for (i = 0; i < n; i++) {
        struct server *x = all[reverse ? n - 1 - i : i];
        if (x->status != SERVER_ENDED)
            fn(x, arg);
    }
    free(all);
}

static msgpack_object str_obj(const char *s)
{
    return (msgpack_object){.type = MSGPACK_OBJECT_STR, .via.str = {(uint32_t)strlen(s), s}};
}

/* One entry of `which`, {id, name, module, status}, pointing into s: kv
 * holds its pairs. Nothing that changes without registry_changed (the
 * mailbox's length changes with every message: info has it). */
static msgpack_object which_entry(const struct server *s, msgpack_object_kv kv[4])
{
    kv[0].key = str_obj("id");
    kv[0].val = (msgpack_object){.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = s->id};
    kv[1].key = str_obj("name");
    kv[1].val = s->name ? str_obj(s->name) : (msgpack_object){.type = MSGPACK_OBJECT_NIL};
    kv[2].key = str_obj("module");
    kv[2].val = str_obj(s->mod->name);
    kv[3].key = str_obj("status");
    kv[3].val = str_obj(server_status_name(s));
    return (msgpack_object){.type = MSGPACK_OBJECT_MAP, .via.map = {4, kv}};
}

/* Appends the entries of the live servers from `from` on, at most count
 * of them, to b; returns how many. Memory bound (a server and its name
 * are two misses each), so what the next two need is fetched meanwhile. */
static uint32_t which_entries(struct gsp_buf *b, struct server *from, uint64_t count)
{
    uint32_t n = 0;
    msgpack_object_kv kv[4];
    for (struct server *s = from; s && n < count && n < UINT32_MAX; s = TAILQ_NEXT(s, reg_link)) {
        struct server *next = TAILQ_NEXT(s, reg_link);
        if (next) {
            __builtin_prefetch(next->name);
            __builtin_prefetch(TAILQ_NEXT(next, reg_link));
        }
        if (s->status != SERVER_ENDED) { /* one waits here while it terminates */
            msgpack_object e = which_entry(s, kv);
            gsp_buf_pack(b, &e);
            n++;
        }
    }
    return n;
}

/* The entries of which_entries, appended to b as one array: its header,
 * as short as its length allows, is written once they are, in the 5
 * bytes left before them. Returns how many of those 5 are left over, at
 * the start. */
static size_t which_array(struct gsp_buf *b, struct server *from, uint64_t count)
{
    gsp_buf_reserve(b, 5);
    size_t at = b->len;
    b->len += 5;
    uint32_t n = which_entries(b, from, count);
    uint8_t *p = b->data + at;
    if (n < 16) {
        p[4] = (uint8_t)(0x90 | n);
        return 4;
    }
    if (n < 65536) {
        p[2] = 0xdc, p[3] = (uint8_t)(n >> 8), p[4] = (uint8_t)n;
        return 2;
    }
    p[0] = 0xdd, p[1] = (uint8_t)(n >> 24), p[2] = (uint8_t)(n >> 16);
    p[3] = (uint8_t)(n >> 8), p[4] = (uint8_t)n;
    return 0;
}

struct gsp_span registry_which(void)
{
    static const uint8_t none[] = {0x90}; /* [] */
    if (TAILQ_EMPTY(&in_order)) /* held only while there are servers: none is left at exit */
        return (struct gsp_span){none, sizeof none};
    if (which_gen != generation) {
        /* The buffer is reused, unless far larger than the last result. */
        if (which_all.cap > 4 * which_all.len + 65536)
            gsp_buf_free(&which_all);
        which_all.len = 0;
        which_head = which_array(&which_all, TAILQ_FIRST(&in_order), UINT32_MAX);
        which_gen = generation;
    }
    return (struct gsp_span){which_all.data + which_head, which_all.len - which_head};
}

void registry_which_page(struct gsp_buf *out, uint64_t after, uint64_t count)
{
    struct server *first = TAILQ_FIRST(&in_order), *last = TAILQ_LAST(&in_order, registry_order);
    struct server *from = after ? registry_by_id(after) : NULL;
    if (from) { /* the usual case: after is the last id of the page before */
        from = TAILQ_NEXT(from, reg_link);
    } else if (first && after < first->id) {
        from = first;
    } else if (last && after < last->id) {
        /* It has ended: a walk (ids grow in start order), from the end
         * its id is nearer to. */
        if (after - first->id < last->id - after)
            for (from = first; from->id <= after; from = TAILQ_NEXT(from, reg_link))
                ;
        else
            for (struct server *s = last; s && s->id > after;
                 s = TAILQ_PREV(s, registry_order, reg_link))
                from = s;
    }
    size_t at = out->len, gap = which_array(out, from, count);
    memmove(out->data + at, out->data + at + gap, out->len - at - gap); /* a page: cheap */
    out->len -= gap;
}
