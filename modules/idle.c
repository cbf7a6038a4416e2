/*
 * idle — counts the times it was left alone for too long.
 *
 * args: the idle timeout in milliseconds, an integer >= 0.
 *
 *   call "ping"        -> "pong"
 *   call "idle_count"  -> how many timeouts have fired
 *
 * Every callback returns a *_timeout(ms) result: when ms pass with no
 * message, the daemon delivers "timeout" to handle_info. Any message
 * (this one included, via its result) starts the wait again, so the
 * timeout fires once per quiet period of ms, not once in total.
 * A call it does not know answers ["error", ["unknown_call", request]];
 * other casts and messages are logged and dropped.
 */
#include <gsd/module.h>
#include <stdlib.h>

struct idle {
    int64_t ms;     /* the idle timeout */
    uint64_t count; /* timeouts fired so far */
};

static gs_result idle_init(gs_server *self, const gs_value *args, void **state)
{
    struct idle *d;
    int64_t ms;

    if (!gs_get_int(args, &ms) || ms < 0) {
        return gs_stop(gs_tuple(self, 2, gs_str("badarg"), *args));
    }
    if ((d = malloc(sizeof *d)) == NULL)
        return gs_stop(gs_str("enomem"));
    d->ms = ms;
    d->count = 0;
    *state = d;
    return gs_ok_timeout(ms);
}

static gs_result idle_call(gs_server *self, const gs_value *request, gs_from from, void **state)
{
    struct idle *d = *state;

    (void)from;
    if (gs_is(request, "ping"))
        return gs_reply_timeout(gs_str("pong"), d->ms);
    if (gs_is(request, "idle_count"))
        return gs_reply_timeout(gs_uint(d->count), d->ms);
    return gs_reply_timeout(gs_error_reply(self, "unknown_call", *request), d->ms);
}

static gs_result idle_cast(gs_server *self, const gs_value *request, void **state)
{
    struct idle *d = *state;

    (void)request;
    gs_log(self, GS_LOG_WARNING, "unknown cast ignored");
    return gs_noreply_timeout(d->ms);
}

static gs_result idle_info(gs_server *self, const gs_value *msg, void **state)
{
    struct idle *d = *state;

    if (gs_is(msg, "timeout"))
        d->count++;
    else
        gs_log(self, GS_LOG_WARNING, "unknown message ignored");
    return gs_noreply_timeout(d->ms); /* wait again: a plain noreply would not */
}

static void idle_terminate(gs_server *self, const gs_value *reason, void **state)
{
    (void)self;
    (void)reason;
    free(*state);
    *state = NULL;
}

GS_MODULE(.name = "idle", .vsn = 1, .init = idle_init, .handle_call = idle_call,
          .handle_cast = idle_cast, .handle_info = idle_info, .terminate = idle_terminate);
