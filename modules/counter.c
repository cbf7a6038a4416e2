/*
 * counter — an integer that clients read, increment, add to and reset.
 *
 * args: the start value, an integer (default 0).
 *
 *   call "get"          -> n
 *   call "increment"    -> n + 1
 *   call ["add", k]     -> n + k (k may be negative)
 *   call "vsn"          -> the version of this code: 1, or 2 built with
 *                          -DCOUNTER_VSN=2 (build/modules/upgrade/counter.so)
 *   call "changes"      -> (version 2) how many times n changed since the
 *                          upgrade or start
 *   cast "increment"
 *   cast ["add", k]
 *   cast "reset"        n becomes 0
 *
 * A call it does not know answers ["error", ["unknown_call", request]]; a
 * sum that would leave int64 answers ["error", ["overflow", request]] and
 * leaves n as it was. Casts it cannot serve are logged and dropped.
 * get_state shows n.
 *
 * Version 2 is the worked example of a hot upgrade: its state gains a
 * field, and code_change builds the new layout from version 1's.
 */
#include <gsd/module.h>
#include <stdlib.h>

#ifndef COUNTER_VSN
#define COUNTER_VSN 1
#endif

struct counter_v1 {
    int64_t n; /* the count */
};

#if COUNTER_VSN == 1
#define counter counter_v1
#else
struct counter {
    int64_t n;        /* the count */
    uint64_t changes; /* how many times n changed */
};
#endif

/* Adds k to the count; false (count unchanged) if the sum would overflow. */
static bool counter_add(struct counter *c, int64_t k)
{
    int64_t sum;

    if (__builtin_add_overflow(c->n, k, &sum)) /* it stores the wrapped sum */
        return false;
    c->n = sum;
#if COUNTER_VSN >= 2
    c->changes++;
#endif
    return true;
}

/* The k a request adds: 1 for "increment", k for ["add", k]. */
static bool counter_delta(const gs_value *request, int64_t *k)
{
    if (gs_is(request, "increment")) {
        *k = 1;
        return true;
    }
    return gs_is_tuple(request, "add", 2) && gs_get_int(gs_at(request, 1), k);
}

static gs_result counter_init(gs_server *self, const gs_value *args, void **state)
{
    struct counter *c;
    int64_t n = 0;

    if (!gs_is_nil(args) && !gs_get_int(args, &n)) {
        return gs_stop(gs_tuple(self, 2, gs_str("badarg"), *args)); /* args outlives the result */
    }
    if ((c = calloc(1, sizeof *c)) == NULL)
        return gs_stop(gs_str("enomem"));
    c->n = n;
    *state = c;
    return gs_ok();
}

static gs_result counter_call(gs_server *self, const gs_value *request, gs_from from, void **state)
{
    struct counter *c = *state;
    int64_t k;

    (void)from; /* every answer is immediate: no need to keep the caller */
    if (gs_is(request, "get"))
        return gs_reply(gs_int(c->n));
    if (gs_is(request, "vsn"))
        return gs_reply(gs_uint(COUNTER_VSN));
#if COUNTER_VSN >= 2
    if (gs_is(request, "changes"))
        return gs_reply(gs_uint(c->changes));
#endif
    if (counter_delta(request, &k)) {
        if (!counter_add(c, k))
            return gs_reply(gs_error_reply(self, "overflow", *request));
        return gs_reply(gs_int(c->n));
    }
    return gs_reply(gs_error_reply(self, "unknown_call", *request));
}

static gs_result counter_cast(gs_server *self, const gs_value *request, void **state)
{
    struct counter *c = *state;
    int64_t k;

    if (gs_is(request, "reset")) {
        c->n = 0;
#if COUNTER_VSN >= 2
        c->changes++;
#endif
    } else if (!counter_delta(request, &k))
        gs_log(self, GS_LOG_WARNING, "unknown cast ignored");
    else if (!counter_add(c, k))
        gs_log(self, GS_LOG_WARNING, "add %lld would overflow: ignored", (long long)k);
    return gs_noreply();
}

static void counter_terminate(gs_server *self, const gs_value *reason, void **state)
{
    (void)self;
    (void)reason;
    free(*state);
    *state = NULL;
}

static gs_value counter_format_state(gs_server *self, void *state)
{
    (void)self;
    return gs_int(((struct counter *)state)->n);
}

#if COUNTER_VSN >= 2
/* Runs in this code for each running counter on reload. Version 1's state
 * is left as it is: if another server refuses, this one keeps it. */
static gs_result counter_code_change(gs_server *self, uint32_t old_vsn, void **state,
                                     const gs_value *extra)
{
    (void)self;
    (void)extra;
    if (old_vsn == COUNTER_VSN)
        return gs_ok(); /* the same layout: keep the state */
    if (old_vsn != 1)
        return gs_error(gs_str("unknown_vsn"));
    const struct counter_v1 *old = *state;
    struct counter *c = calloc(1, sizeof *c);
    if (c == NULL)
        return gs_error(gs_str("enomem"));
    c->n = old->n;
    *state = c;
    return gs_ok();
}

/* Both layouts are one malloc'd block. */
static void counter_free_state(gs_server *self, uint32_t vsn, void *state)
{
    (void)self;
    (void)vsn;
    free(state);
}
#endif

GS_MODULE(.name = "counter", .vsn = COUNTER_VSN, .init = counter_init, .handle_call = counter_call,
          .handle_cast = counter_cast, .terminate = counter_terminate,
          .format_state = counter_format_state
#if COUNTER_VSN >= 2
          ,
          .code_change = counter_code_change, .free_state = counter_free_state
#endif
);
