/*
 * cache — a key/value store whose entries may expire.
 *
 * args: nil, or a map; its optional "cleanup_ms" (default 1000) is how
 * often a timer sweeps out expired entries. Keys and values are any values.
 *
 *   cast ["put", key, value]          store value under key, for good
 *   cast ["put", key, value, ttl_ms]  ... for ttl_ms milliseconds
 *   call ["get", key]                 -> the value, or nil (a miss) if it
 *                                        is absent or has expired
 *   cast ["delete", key]
 *   cast "clear"
 *   call "stats"                      -> {"size": live entries, "hits": n,
 *                                         "misses": n}
 *
 * An expired entry reads as nil at once; the sweep only frees its memory.
 * A call it does not know answers ["error", ["unknown_call", request]];
 * other casts and messages are logged and dropped.
 */
#include <gsd/module.h>
#include <stdlib.h>
#include <time.h>

#define CACHE_CLEANUP_MS 1000

struct cache_entry {
    gs_value *key;   /* owned copy */
    gs_value *value; /* owned copy */
    int64_t expires; /* cache_now() from which it is gone; INT64_MAX: never */
};

struct cache {
    struct cache_entry *entries; /* in no order */
    uint32_t n;                  /* entries in use */
    uint32_t cap;                /* entries allocated */
    uint64_t hits;               /* gets that found a live entry */
    uint64_t misses;             /* gets that did not */
    uint64_t cleanup_ms;         /* sweep period */
    uint64_t timer;              /* the pending sweep timer's ref */
};

/* Milliseconds on the monotonic clock, which wall-clock changes do not move. */
static int64_t cache_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct cache_entry *cache_find(struct cache *c, const gs_value *key)
{
    for (uint32_t i = 0; i < c->n; i++)
        if (gs_value_equal(c->entries[i].key, key))
            return &c->entries[i];
    return NULL;
}

/* Frees entry e and moves the last entry into its slot. */
static void cache_remove(struct cache *c, struct cache_entry *e)
{
    gs_value_free(e->key);
    gs_value_free(e->value);
    *e = c->entries[--c->n];
}

/* Stores a copy of value under key until expires; -1 if out of memory. */
static int cache_put(struct cache *c, const gs_value *key, const gs_value *value, int64_t expires)
{
    struct cache_entry *e = cache_find(c, key);

    if (e == NULL) {
        if (c->n == c->cap) {
            uint32_t cap = c->cap ? 2 * c->cap : 16;
            struct cache_entry *entries = realloc(c->entries, cap * sizeof *entries);
            if (entries == NULL)
                return -1;
            c->entries = entries;
            c->cap = cap;
        }
        e = &c->entries[c->n++];
        e->key = gs_value_copy(key);
    } else {
        gs_value_free(e->value);
    }
    e->value = gs_value_copy(value);
    e->expires = expires;
    return 0;
}

/* Removes every entry that has expired by now (all of them if now is INT64_MAX). */
static void cache_sweep(struct cache *c, int64_t now)
{
    /* Backwards, so the entry cache_remove moves into slot i was seen already. */
    for (uint32_t i = c->n; i-- > 0;)
        if (c->entries[i].expires <= now)
            cache_remove(c, &c->entries[i]);
}

static gs_result cache_init(gs_server *self, const gs_value *args, void **state)
{
    const gs_value *ms = gs_map_get(args, "cleanup_ms");
    int64_t cleanup_ms = CACHE_CLEANUP_MS;
    struct cache *c;

    if ((!gs_is_nil(args) && args->type != MSGPACK_OBJECT_MAP) ||
        (ms && (!gs_get_int(ms, &cleanup_ms) || cleanup_ms <= 0))) {
        return gs_stop(gs_tuple(self, 2, gs_str("badarg"), *args));
    }
    if ((c = calloc(1, sizeof *c)) == NULL)
        return gs_stop(gs_str("enomem"));
    c->cleanup_ms = (uint64_t)cleanup_ms;
    c->timer = gs_timer_start(self, c->cleanup_ms, gs_str("sweep"));
    *state = c;
    return gs_ok();
}

static gs_result cache_call(gs_server *self, const gs_value *request, gs_from from, void **state)
{
    struct cache *c = *state;
    int64_t now = cache_now();

    (void)from;
    if (gs_is_tuple(request, "get", 2)) {
        struct cache_entry *e = cache_find(c, gs_at(request, 1));
        if (e && e->expires > now) {
            c->hits++;
            return gs_reply(*e->value); /* ours until a later callback replaces it */
        }
        if (e)
            cache_remove(c, e);
        c->misses++;
        return gs_reply(gs_nil());
    }
    if (gs_is(request, "stats")) {
        gs_pair *stats = gs_scratch_pairs(self, 3);
        uint32_t live = 0;
        for (uint32_t i = 0; i < c->n; i++)
            live += c->entries[i].expires > now;
        stats[0].key = gs_str("size");
        stats[0].val = gs_uint(live);
        stats[1].key = gs_str("hits");
        stats[1].val = gs_uint(c->hits);
        stats[2].key = gs_str("misses");
        stats[2].val = gs_uint(c->misses);
        return gs_reply(gs_map(stats, 3));
    }
    return gs_reply(gs_error_reply(self, "unknown_call", *request));
}

static gs_result cache_cast(gs_server *self, const gs_value *request, void **state)
{
    struct cache *c = *state;
    struct cache_entry *e;
    int64_t ttl;

    if (gs_is_tuple(request, "put", 3)) {
        if (cache_put(c, gs_at(request, 1), gs_at(request, 2), INT64_MAX) != 0)
            return gs_stop(gs_str("enomem"));
    } else if (gs_is_tuple(request, "put", 4) && gs_get_int(gs_at(request, 3), &ttl) && ttl >= 0) {
        int64_t now = cache_now();
        int64_t expires = ttl < INT64_MAX - now ? now + ttl : INT64_MAX;
        if (cache_put(c, gs_at(request, 1), gs_at(request, 2), expires) != 0)
            return gs_stop(gs_str("enomem"));
    } else if (gs_is_tuple(request, "delete", 2)) {
        if ((e = cache_find(c, gs_at(request, 1))) != NULL)
            cache_remove(c, e);
    } else if (gs_is(request, "clear")) {
        cache_sweep(c, INT64_MAX);
    } else {
        gs_log(self, GS_LOG_WARNING, "unknown cast ignored");
    }
    return gs_noreply();
}

static gs_result cache_info(gs_server *self, const gs_value *msg, void **state)
{
    struct cache *c = *state;

    if (!gs_is(msg, "sweep")) {
        gs_log(self, GS_LOG_WARNING, "unknown message ignored");
        return gs_noreply();
    }
    /* Cancel first: a "sweep" someone sent by hand must not start a second
     * timer chain. Cancelling the timer that just fired is a no-op. */
    gs_timer_cancel(self, c->timer);
    cache_sweep(c, cache_now());
    c->timer = gs_timer_start(self, c->cleanup_ms, gs_str("sweep"));
    return gs_noreply();
}

static void cache_terminate(gs_server *self, const gs_value *reason, void **state)
{
    struct cache *c = *state;

    (void)self; /* the sweep timer ends with the server */
    (void)reason;
    cache_sweep(c, INT64_MAX);
    free(c->entries);
    free(c);
    *state = NULL;
}

GS_MODULE(.name = "cache", .vsn = 1, .init = cache_init, .handle_call = cache_call,
          .handle_cast = cache_cast, .handle_info = cache_info, .terminate = cache_terminate);
