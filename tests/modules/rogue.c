/*
 * rogue — a module whose init and terminate misbehave, on request.
 *
 * args: a map, all optional:
 *   "init": "nonsense"   init returns an action that does not exist
 *   "init_ms": n         init sleeps n ms first
 *   "terminate_ms": n    terminate sleeps n ms
 *
 *   call anything -> "ok"
 */
#include <gsd/module.h>
#include <stdlib.h>
#include <time.h>

static void nap(int64_t ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static gs_result rogue_init(gs_server *self, const gs_value *args, void **state)
{
    (void)self;
    int64_t ms = 0, *t = malloc(sizeof *t);
    if (t == NULL)
        return gs_stop(gs_str("enomem"));
    *t = 0;
    gs_get_int(gs_map_get(args, "terminate_ms"), t);
    *state = t;
    if (gs_get_int(gs_map_get(args, "init_ms"), &ms))
        nap(ms);
    if (gs_is(gs_map_get(args, "init"), "nonsense")) {
        free(t);
        return gs_result_of((gs_action)77);
    }
    return gs_ok();
}

static gs_result rogue_call(gs_server *self, const gs_value *req, gs_from from, void **state)
{
    (void)self, (void)req, (void)from, (void)state;
    return gs_reply(gs_str("ok"));
}

static void rogue_terminate(gs_server *self, const gs_value *reason, void **state)
{
    (void)self, (void)reason;
    int64_t *t = *state;
    nap(*t);
    free(t);
}

GS_MODULE(.name = "rogue", .vsn = 1, .init = rogue_init, .handle_call = rogue_call,
          .terminate = rogue_terminate);
