/*
 * ratelimit — a token bucket per key: the module-author exercise of
 * docs/modules.md, written from the installed header alone.
 *
 * args: {"rate": tokens per second, "burst": most tokens a key holds}
 *   call ["take", key]  -> ["ok", tokens left], or ["error", ["limited", ms]]
 *                          with the ms until a token is back
 *   call ["peek", key]  -> tokens key holds now
 *   cast "reset"        every key full again
 * A refill timer tops the buckets up every 100 ms and forgets full ones.
 *
 * Built twice: version 1, and with -DRATELIMIT_V2 version 2, whose state
 * also counts the takes refused ("denied" in get_state); its code_change
 * carries every bucket over.
 */
#include <gsd/module.h>
#include <stdlib.h>
#include <uthash.h>

#ifdef RATELIMIT_V2
#define VSN 2
#else
#define VSN 1
#endif
#define REFILL_MS 100

struct bucket {
    UT_hash_handle hh;
    double tokens;
    size_t len;
    char key[];
};

struct limiter {
    double rate, burst;
    struct bucket *buckets;
#ifdef RATELIMIT_V2
    uint64_t denied; /* new in version 2 */
#endif
};

static struct bucket *bucket(struct limiter *l, const char *key, uint32_t len)
{
    struct bucket *b;
    HASH_FIND(hh, l->buckets, key, len, b);
    if (b == NULL && (b = malloc(sizeof *b + len)) != NULL) {
        b->tokens = l->burst;
        b->len = len;
        memcpy(b->key, key, len);
        HASH_ADD_KEYPTR(hh, l->buckets, b->key, b->len, b);
    }
    return b;
}

static void forget_all(struct limiter *l)
{
    struct bucket *b, *tmp;
    HASH_ITER(hh, l->buckets, b, tmp)
    {
        HASH_DEL(l->buckets, b);
        free(b);
    }
}

static gs_result rl_init(gs_server *self, const gs_value *args, void **state)
{
    struct limiter *l = calloc(1, sizeof *l);
    if (l == NULL)
        return gs_stop(gs_str("enomem"));
    if (!gs_get_float(gs_map_get(args, "rate"), &l->rate) ||
        !gs_get_float(gs_map_get(args, "burst"), &l->burst) || l->rate <= 0 || l->burst < 1) {
        free(l);
        return gs_stop(gs_tuple(self, 2, gs_str("badarg"), *args));
    }
    *state = l;
    gs_timer_start(self, REFILL_MS, gs_str("refill"));
    return gs_ok();
}

static gs_result rl_call(gs_server *self, const gs_value *req, gs_from from, void **state)
{
    (void)from;
    struct limiter *l = *state;
    const char *key;
    uint32_t len;
    if (!gs_get_str(gs_at(req, 1), &key, &len))
        return gs_reply(gs_error_reply(self, "unknown_call", *req));
    struct bucket *b = bucket(l, key, len);
    if (b == NULL)
        return gs_stop(gs_str("enomem"));
    if (gs_is_tuple(req, "peek", 2))
        return gs_reply(gs_int((int64_t)b->tokens));
    if (!gs_is_tuple(req, "take", 2))
        return gs_reply(gs_error_reply(self, "unknown_call", *req));
    if (b->tokens < 1) {
#ifdef RATELIMIT_V2
        l->denied++;
#endif
        int64_t ms = (int64_t)((1 - b->tokens) / l->rate * 1000) + 1;
        return gs_reply(gs_error_reply(self, "limited", gs_int(ms)));
    }
    b->tokens -= 1;
    return gs_reply(gs_tuple(self, 2, gs_str("ok"), gs_int((int64_t)b->tokens)));
}

static gs_result rl_cast(gs_server *self, const gs_value *req, void **state)
{
    (void)self;
    if (gs_is(req, "reset"))
        forget_all(*state);
    return gs_noreply();
}

static gs_result rl_info(gs_server *self, const gs_value *msg, void **state)
{
    struct limiter *l = *state;
    struct bucket *b, *tmp;
    if (!gs_is(msg, "refill"))
        return gs_noreply();
    HASH_ITER(hh, l->buckets, b, tmp)
    {
        b->tokens += l->rate * REFILL_MS / 1000;
        if (b->tokens >= l->burst) { /* a full bucket is one not yet made */
            HASH_DEL(l->buckets, b);
            free(b);
        }
    }
    gs_timer_start(self, REFILL_MS, gs_str("refill"));
    return gs_noreply();
}

static void rl_terminate(gs_server *self, const gs_value *reason, void **state)
{
    (void)self, (void)reason;
    forget_all(*state);
    free(*state);
}

static gs_value rl_format(gs_server *self, void *state)
{
    struct limiter *l = state;
    gs_pair *p = gs_scratch_pairs(self, 4);
    p[0] = gs_kv("rate", gs_float(l->rate));
    p[1] = gs_kv("burst", gs_float(l->burst));
    p[2] = gs_kv("keys", gs_uint(HASH_COUNT(l->buckets)));
#ifdef RATELIMIT_V2
    p[3] = gs_kv("denied", gs_uint(l->denied));
#endif
    return gs_map(p, VSN == 2 ? 4 : 3);
}

#ifdef RATELIMIT_V2
/* Version 1's state, as it was: the new one takes its buckets over. */
struct limiter_v1 {
    double rate, burst;
    struct bucket *buckets;
};

static gs_result rl_code_change(gs_server *self, uint32_t old_vsn, void **state,
                                const gs_value *extra)
{
    (void)self, (void)extra;
    if (old_vsn != 1)
        return gs_error(gs_str("unknown_vsn"));
    struct limiter_v1 *old = *state;
    struct limiter *l = calloc(1, sizeof *l);
    if (l == NULL)
        return gs_error(gs_str("enomem"));
    l->rate = old->rate;
    l->burst = old->burst;
    l->buckets = old->buckets; /* shared: free_state frees the old struct alone */
    *state = l;
    return gs_ok();
}

/* After a reload, the old v1 struct (its buckets are the new state's now);
 * after a refused one, the v2 struct built (its buckets are still v1's). */
static void rl_free_state(gs_server *self, uint32_t vsn, void *state)
{
    (void)self, (void)vsn;
    free(state);
}
#endif

GS_MODULE(.name = "ratelimit", .vsn = VSN, .init = rl_init, .handle_call = rl_call,
          .handle_cast = rl_cast, .handle_info = rl_info, .terminate = rl_terminate,
          .format_state = rl_format
#ifdef RATELIMIT_V2
          ,
          .code_change = rl_code_change, .free_state = rl_free_state
#endif
);
