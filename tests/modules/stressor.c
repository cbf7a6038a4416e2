/*
 * stressor — the server `make stress` (tests/stress.c) aims its attacks at:
 * slow callbacks, a large state, calls that are never answered, and a count
 * of the casts it handled, written out when it ends.
 *
 * args: nil, or a map {"count_file": path}: terminate writes
 *       "casts N reason R\n" to path (truncating it), N the casts handled.
 *
 *   call ["block", ms]     -> "ok", after sleeping ms in the callback
 *   call ["alloc", bytes]  -> the state's size, grown by bytes (touched, so
 *                             it is resident); get_state shows it as a bin
 *   call ["echo", v]       -> v
 *   call "hold"            never answered: the caller waits for its timeout
 *                          (the daemon holds the call, the module nothing)
 *   call "held"            -> how many "hold" calls it has seen
 *   call "casts"           -> how many casts it has handled
 *   cast ["work", us]      sleeps us microseconds, counted
 *   cast anything else     counted
 *
 * No handle_info: a raw send is logged by the daemon and ignored.
 */
#include <gsd/module.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct stressor {
    char *count_file; /* terminate writes the count here, or NULL */
    uint64_t casts;   /* casts handled */
    uint64_t held;    /* "hold" calls seen */
    char *big;        /* the state grown by "alloc" */
    size_t big_len;
};

static void stressor_sleep_us(int64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static gs_result stressor_init(gs_server *self, const gs_value *args, void **state)
{
    const gs_value *file = gs_map_get(args, "count_file");
    struct stressor *s;

    (void)self;
    if (file && file->type != MSGPACK_OBJECT_STR)
        return gs_stop(gs_str("badarg"));
    if ((s = calloc(1, sizeof *s)) == NULL)
        return gs_stop(gs_str("enomem"));
    if (file && (s->count_file = strndup(file->via.str.ptr, file->via.str.size)) == NULL) {
        free(s);
        return gs_stop(gs_str("enomem"));
    }
    *state = s;
    return gs_ok();
}

static gs_result stressor_call(gs_server *self, const gs_value *request, gs_from from, void **state)
{
    struct stressor *s = *state;
    int64_t n;

    (void)self;
    (void)from; /* "hold" forgets its caller: the daemon times it out */
    if (gs_is_tuple(request, "block", 2) && gs_get_int(gs_at(request, 1), &n) && n >= 0) {
        stressor_sleep_us(n * 1000);
        return gs_reply(gs_str("ok"));
    }
    if (gs_is_tuple(request, "alloc", 2) && gs_get_int(gs_at(request, 1), &n) && n >= 0) {
        char *big = realloc(s->big, s->big_len + (size_t)n);
        if (big == NULL && s->big_len + (size_t)n > 0)
            return gs_reply(gs_str("enomem"));
        memset(big + s->big_len, 0x5a, (size_t)n); /* resident, not just reserved */
        s->big = big;
        s->big_len += (size_t)n;
        return gs_reply(gs_uint(s->big_len));
    }
    if (gs_is_tuple(request, "echo", 2))
        return gs_reply(*gs_at(request, 1));
    if (gs_is(request, "hold")) {
        s->held++;
        return gs_noreply();
    }
    if (gs_is(request, "held"))
        return gs_reply(gs_uint(s->held));
    if (gs_is(request, "casts"))
        return gs_reply(gs_uint(s->casts));
    return gs_reply(gs_str("unknown_call"));
}

static gs_result stressor_cast(gs_server *self, const gs_value *request, void **state)
{
    struct stressor *s = *state;
    int64_t us;

    (void)self;
    if (gs_is_tuple(request, "work", 2) && gs_get_int(gs_at(request, 1), &us) && us > 0)
        stressor_sleep_us(us);
    s->casts++;
    return gs_noreply();
}

static void stressor_terminate(gs_server *self, const gs_value *reason, void **state)
{
    struct stressor *s = *state;
    FILE *f;

    if (s->count_file && (f = fopen(s->count_file, "w")) != NULL) {
        fprintf(f, "casts %llu reason %.*s\n", (unsigned long long)s->casts,
                reason->type == MSGPACK_OBJECT_STR ? (int)reason->via.str.size : 1,
                reason->type == MSGPACK_OBJECT_STR ? reason->via.str.ptr : "?");
        if (fclose(f) != 0)
            gs_log(self, GS_LOG_WARNING, "%s: could not write the count", s->count_file);
    }
    free(s->count_file);
    free(s->big);
    free(s);
    *state = NULL;
}

static gs_value stressor_format_state(gs_server *self, void *state)
{
    struct stressor *s = state;
    gs_value v = {.type = MSGPACK_OBJECT_BIN};

    (void)self;
    v.via.bin.ptr = s->big;
    v.via.bin.size = (uint32_t)s->big_len;
    return v;
}

GS_MODULE(.name = "stressor", .vsn = 1, .init = stressor_init, .handle_call = stressor_call,
          .handle_cast = stressor_cast, .terminate = stressor_terminate,
          .format_state = stressor_format_state);
