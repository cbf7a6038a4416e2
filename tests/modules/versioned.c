/*
 * versioned — a module built in several versions, for hot upgrade tests.
 *
 *   VSN=1 (default)  state: {n}
 *   VSN=2            state: {n, upgraded_from}; code_change refuses a
 *                    server whose n is negative (reason ["negative", n]) and
 *                    returns a bad result for n == 13
 *   BAD_ABI          version 3, but built for another ABI
 *   VSN=3 NO_CODE_CHANGE [STATE_VSN=2]
 *                    version 2's layout, no code_change; with STATE_VSN=2
 *                    it says so (and takes over version 2's servers), else
 *                    its state_vsn is its vsn, 3 (and it takes over none)
 *
 * args: the start value of n (default 0).
 *   call "get" -> n        call "vsn" -> the version
 *   call "from" -> (VSN 2) the version it was upgraded from, 0 if started on 2
 *   cast ["set", n]
 * A refused upgrade must leave no state behind: the sanitizer and valgrind
 * builds of the tests check that.
 */
#include <gsd/module.h>
#include <stdlib.h>

#ifndef VSN
#define VSN 1
#endif

struct v1 {
    int64_t n;
};
struct v2 {
    int64_t n;
    uint32_t from;
};
#if VSN >= 2
typedef struct v2 state_t;
#else
typedef struct v1 state_t;
#endif

static gs_result v_init(gs_server *self, const gs_value *args, void **state)
{
    (void)self;
    int64_t n = 0;
    if (!gs_is_nil(args) && !gs_get_int(args, &n))
        return gs_stop(gs_str("badarg"));
    state_t *s = calloc(1, sizeof *s);
    s->n = n;
    *state = s;
    return gs_ok();
}

static gs_result v_call(gs_server *self, const gs_value *req, gs_from from, void **state)
{
    (void)self, (void)from;
    state_t *s = *state;
    if (gs_is(req, "get"))
        return gs_reply(gs_int(s->n));
    if (gs_is(req, "vsn"))
        return gs_reply(gs_uint(VSN));
#if VSN >= 2
    if (gs_is(req, "from"))
        return gs_reply(gs_uint(s->from));
#endif
    return gs_reply(gs_str("unknown_call"));
}

static gs_result v_cast(gs_server *self, const gs_value *req, void **state)
{
    (void)self;
    state_t *s = *state;
    int64_t n;
    if (gs_is_tuple(req, "set", 2) && gs_get_int(gs_at(req, 1), &n))
        s->n = n;
    return gs_noreply();
}

static void v_terminate(gs_server *self, const gs_value *reason, void **state)
{
    (void)self, (void)reason;
    free(*state);
}

#if VSN >= 2 && !defined(NO_CODE_CHANGE)
static gs_result v_code_change(gs_server *self, uint32_t old_vsn, void **state,
                               const gs_value *extra)
{
    (void)extra;
    if (old_vsn >= 2)
        return gs_ok();
    const struct v1 *old = *state;
    if (old->n == 13) {
        gs_result zero = {0};
        return zero;
    }
    if (old->n < 0) {
        gs_value *why = gs_scratch_array(self, 2);
        why[0] = gs_str("negative");
        why[1] = gs_int(old->n);
        return gs_error(gs_array(why, 2));
    }
    struct v2 *s = calloc(1, sizeof *s);
    s->n = old->n;
    s->from = old_vsn;
    *state = s;
    return gs_ok();
}

static void v_free_state(gs_server *self, uint32_t vsn, void *state)
{
    (void)self, (void)vsn;
    free(state);
}
#endif

#ifdef BAD_ABI
__attribute__((visibility("hidden"))) const struct gs_api *gs_host;
__attribute__((visibility("default"))) const gs_module gs_module_info = {
    .abi = GS_ABI_VERSION + 1,
    .size = sizeof(gs_module),
    .api = &gs_host,
    .name = "versioned",
    .vsn = 3,
    .init = v_init,
    .handle_call = v_call,
    .handle_cast = v_cast,
    .terminate = v_terminate,
};
#elif defined(NO_CODE_CHANGE)
#ifndef STATE_VSN
#define STATE_VSN 0
#endif
GS_MODULE(.name = "versioned", .vsn = VSN, .init = v_init, .handle_call = v_call,
          .handle_cast = v_cast, .terminate = v_terminate, .state_vsn = STATE_VSN);
#elif VSN >= 2
GS_MODULE(.name = "versioned", .vsn = VSN, .init = v_init, .handle_call = v_call,
          .handle_cast = v_cast, .terminate = v_terminate, .code_change = v_code_change,
          .free_state = v_free_state);
#else
GS_MODULE(.name = "versioned", .vsn = VSN, .init = v_init, .handle_call = v_call,
          .handle_cast = v_cast, .terminate = v_terminate);
#endif
