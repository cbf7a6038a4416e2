/*
 * forms — a test module that returns, on request, every result form a
 * callback may return, and uses every service the daemon offers.
 *
 * args: nil, or a map:
 *   "init": "ok" (default) | "ok_timeout" | "ok_hibernate" | "stop" |
 *           "ignore" | "slow" (busy-waits "ms" first) | "bad" (a zeroed
 *           gs_result)
 *   "ms": for ok_timeout and slow;  "reason": for stop
 *   "log": a file that terminate appends its reason to, one JSON line
 *
 * handle_call:
 *   ["reply", v]               -> v
 *   ["reply_timeout", v, ms]   -> v, then "timeout" after ms of quiet
 *   ["reply_hibernate", v]     -> v, and hibernate
 *   ["reply_continue", v, t]   -> v, and continue with t: forms has no
 *                              handle_continue, so it stops then
 *                              ("undef_handle_continue")
 *   "noreply"                  keeps the caller for a later "release"
 *   ["noreply_timeout", ms]    keeps the caller; answers it "timed_out"
 *                              when the "timeout" comes
 *   "noreply_hibernate"        keeps the caller, hibernates
 *   ["stop_reply", reason, v]  -> v, after terminate(reason)
 *   ["stop", reason]           stops; the caller gets exit
 *   "bad"                      a zeroed gs_result
 *   ["release", v]             -> gs_reply_to(kept caller, v): 0 or -1
 *   "deadline"                 -> gs_from_deadline of this call
 *   ["watch", ms]              keeps the caller; ms later, from a timer,
 *                              records gs_from_waiting and gs_from_deadline
 *                              and answers it with the waiting flag
 *   "watched"                  -> [waiting, reply_to result, deadline]
 *                                 as recorded by the last watch (nil before)
 *   ["timer", ms, msg]         -> gs_timer_start ref
 *   ["cancel", ref]            -> gs_timer_cancel result
 *   ["cast_to", srv, req]      -> gs_cast result
 *   ["send_to", srv, msg]      -> gs_send result
 *   ["call_to", srv, req, ms]  -> gs_call ref (ms nil: infinity); the
 *                                 answer lands in infos
 *   ["monitor", srv]           -> gs_monitor ref; downs land in infos
 *   ["demonitor", ref]         -> gs_demonitor result
 *   "self"                     -> [gs_self, gs_self_name or nil]
 *   "infos"                    -> every other message handle_info got
 *   "casts"                    -> every other request handle_cast got
 *   "timeouts"                 -> how many "timeout" messages came
 *   ["busy", ms]               -> "done", after blocking the loop ms
 *   ["stop_reply_kept", reason, v]  keeps the caller too, then
 *                              gs_stop_reply(reason, v): terminate tries
 *                              to answer it "from_terminate" as well
 *   ["deep_reply", n]          -> n arrays nested in one another
 *   ["deep_reply_to", n]       the same, sent with gs_reply_to; noreply
 *   ["deep_stop_reply", n]     the same, with a stop ("normal")
 *   ["deep_send", srv, n]      -> gs_send result for n nested arrays
 *   ["reply_to_id", id, v]     -> gs_reply_to result for a from of that id
 * terminate answers a kept caller "from_terminate".
 * handle_cast: ["note", v] appends v to the log; ["cast_to", srv, req]
 *   casts req on; ["release", v];
 *   ["noreply_timeout", ms]; "noreply_hibernate"; ["stop", reason]; "bad";
 *   ["busy", ms]; anything else is kept in "casts".
 * handle_info: "timeout" is counted; ["release", v]; ["noreply_timeout",
 *   ms]; "noreply_hibernate"; ["stop", reason]; "bad"; anything else is
 *   kept in "infos".
 * get_state: {"timeouts": n, "casts": n}.
 */
#include <gsd/module.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct list {
    gs_value **v; /* owned copies, oldest first */
    uint32_t n, cap;
};

struct forms {
    char *log;              /* terminate's file, or NULL */
    gs_from pending;        /* a kept caller (id 0: none) */
    bool reply_on_timeout;  /* answer pending "timed_out" on "timeout" */
    uint64_t timeouts;      /* "timeout" messages seen */
    struct list infos;      /* other handle_info messages */
    struct list casts;      /* other casts */
    gs_from watched;        /* the caller of the last watch */
    bool have_watch;        /* a watch has fired */
    bool watch_waiting;     /* gs_from_waiting when it fired */
    int watch_rc;           /* gs_reply_to's result when it fired */
    int64_t watch_deadline; /* gs_from_deadline when it fired */
};

/* Where terminate reports if it runs for a server whose init failed
 * (it must not): the log named in that init's args. */
static char failed_init_log[512];

static void list_add(struct list *l, const gs_value *v)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (l->v == NULL)
            abort();
    }
    l->v[l->n++] = gs_value_copy(v);
}

static void list_free(struct list *l)
{
    for (uint32_t i = 0; i < l->n; i++)
        gs_value_free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static gs_value list_value(gs_server *self, const struct list *l)
{
    gs_value *a = gs_scratch_array(self, l->n);
    for (uint32_t i = 0; i < l->n; i++)
        a[i] = *l->v[i];
    return gs_array(a, l->n);
}

static void json(FILE *f, const gs_value *v)
{
    switch (v->type) {
    case MSGPACK_OBJECT_BOOLEAN:
        fputs(v->via.boolean ? "true" : "false", f);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        fprintf(f, "%" PRIu64, v->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        fprintf(f, "%" PRId64, v->via.i64);
        break;
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN:
        fputc('"', f);
        for (uint32_t i = 0; i < v->via.str.size; i++) {
            unsigned char c = (unsigned char)v->via.str.ptr[i];
            if (c == '"' || c == '\\')
                fprintf(f, "\\%c", c);
            else if (c < 0x20)
                fprintf(f, "\\u%04x", c);
            else
                fputc(c, f);
        }
        fputc('"', f);
        break;
    case MSGPACK_OBJECT_ARRAY:
        fputc('[', f);
        for (uint32_t i = 0; i < v->via.array.size; i++) {
            if (i)
                fputc(',', f);
            json(f, &v->via.array.ptr[i]);
        }
        fputc(']', f);
        break;
    case MSGPACK_OBJECT_MAP:
        fputc('{', f);
        for (uint32_t i = 0; i < v->via.map.size; i++) {
            if (i)
                fputc(',', f);
            json(f, &v->via.map.ptr[i].key);
            fputc(':', f);
            json(f, &v->via.map.ptr[i].val);
        }
        fputc('}', f);
        break;
    default:
        fputs("null", f);
        break;
    }
}

/* Appends v to path as one line of JSON. */
static void log_line(const char *path, const gs_value *v)
{
    FILE *f = path ? fopen(path, "a") : NULL;
    if (f == NULL)
        return;
    json(f, v);
    fputc('\n', f);
    fclose(f);
}

/* At least ms: the difference taken in ns, as a difference of ms rounded
 * toward zero could end it up to 1 ms early. */
static void busy_wait(int64_t ms)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do
        clock_gettime(CLOCK_MONOTONIC, &b);
    while ((b.tv_sec - a.tv_sec) * 1000000000 + (b.tv_nsec - a.tv_nsec) < ms * 1000000);
}

static gs_result bad_result(void)
{
    gs_result r;
    memset(&r, 0, sizeof r);
    return r;
}

static int64_t int_or(const gs_value *v, int64_t dflt)
{
    int64_t n;
    return gs_get_int(v, &n) ? n : dflt;
}

static void forms_free(struct forms *f)
{
    list_free(&f->infos);
    list_free(&f->casts);
    free(f->log);
    free(f);
}

static gs_result forms_init(gs_server *self, const gs_value *args, void **state)
{
    const gs_value *mode = gs_map_get(args, "init");
    const gs_value *log = gs_map_get(args, "log");
    int64_t ms = int_or(gs_map_get(args, "ms"), 0);
    struct forms *f = calloc(1, sizeof *f);

    (void)self;
    if (f == NULL)
        return gs_stop(gs_str("enomem"));
    if (log && log->type == MSGPACK_OBJECT_STR)
        f->log = strndup(log->via.str.ptr, log->via.str.size);
    *state = f;
    if (mode == NULL || gs_is(mode, "ok"))
        return gs_ok();
    if (gs_is(mode, "ok_timeout"))
        return gs_ok_timeout(ms);
    if (gs_is(mode, "ok_hibernate"))
        return gs_ok_hibernate();
    if (gs_is(mode, "slow")) {
        busy_wait(ms);
        return gs_ok();
    }
    /* The failures: no terminate will run, so free the state now. */
    snprintf(failed_init_log, sizeof failed_init_log, "%s", f->log ? f->log : "");
    forms_free(f);
    *state = NULL;
    if (gs_is(mode, "stop")) {
        const gs_value *reason = gs_map_get(args, "reason");
        return gs_stop(reason ? *reason : gs_str("init_said_stop")); /* lives in args */
    }
    if (gs_is(mode, "ignore"))
        return gs_ignore();
    return bad_result();
}

/* ["error", "unknown_call"] */
static gs_value unknown(gs_server *self)
{
    gs_value *e = gs_scratch_array(self, 2);
    e[0] = gs_str("error");
    e[1] = gs_str("unknown_call");
    return gs_array(e, 2);
}

static int release(gs_server *self, struct forms *f, gs_value v)
{
    int rc = gs_reply_to(self, f->pending, v);
    f->pending.id = 0;
    return rc;
}

/* n arrays nested in one another, innermost empty, in the scratch arena. */
static gs_value deep(gs_server *self, int64_t n)
{
    gs_value v = n > 0 ? gs_array(NULL, 0) : gs_nil();
    for (int64_t i = 1; i < n; i++) {
        gs_value *item = gs_scratch_array(self, 1);
        item[0] = v;
        v = gs_array(item, 1);
    }
    return v;
}

static gs_result forms_call(gs_server *self, const gs_value *req, gs_from from, void **state)
{
    struct forms *f = *state;
    const gs_value *a1 = gs_at(req, 1), *a2 = gs_at(req, 2), *a3 = gs_at(req, 3);

    if (gs_is_tuple(req, "stop_reply_kept", 3)) {
        f->pending = from;
        return gs_stop_reply(*a1, *a2);
    }
    if (gs_is_tuple(req, "deep_reply", 2))
        return gs_reply(deep(self, int_or(a1, 0)));
    if (gs_is_tuple(req, "deep_reply_to", 2)) {
        gs_reply_to(self, from, deep(self, int_or(a1, 0)));
        return gs_noreply();
    }
    if (gs_is_tuple(req, "deep_stop_reply", 2))
        return gs_stop_reply(gs_str("normal"), deep(self, int_or(a1, 0)));
    if (gs_is_tuple(req, "deep_send", 3))
        return gs_reply(gs_int(gs_send(self, *a1, deep(self, int_or(a2, 0)))));
    if (gs_is_tuple(req, "reply_to_id", 3))
        return gs_reply(gs_int(gs_reply_to(self, (gs_from){(uint64_t)int_or(a1, 0)}, *a2)));

    if (gs_is_tuple(req, "reply", 2))
        return gs_reply(*a1);
    if (gs_is_tuple(req, "reply_continue", 3)) /* no handle_continue: it stops */
        return gs_continue(gs_reply(*a1), *a2);
    if (gs_is_tuple(req, "reply_timeout", 3))
        return gs_reply_timeout(*a1, int_or(a2, 0));
    if (gs_is_tuple(req, "reply_hibernate", 2))
        return gs_reply_hibernate(*a1);
    if (gs_is(req, "noreply")) {
        f->pending = from;
        return gs_noreply();
    }
    if (gs_is_tuple(req, "noreply_timeout", 2)) {
        f->pending = from;
        f->reply_on_timeout = true;
        return gs_noreply_timeout(int_or(a1, 0));
    }
    if (gs_is(req, "noreply_hibernate")) {
        f->pending = from;
        return gs_noreply_hibernate();
    }
    if (gs_is_tuple(req, "stop_reply", 3))
        return gs_stop_reply(*a1, *a2);
    if (gs_is_tuple(req, "stop", 2))
        return gs_stop(*a1);
    if (gs_is(req, "bad"))
        return bad_result();
    if (gs_is_tuple(req, "release", 2))
        return gs_reply(gs_int(release(self, f, *a1)));
    if (gs_is(req, "deadline"))
        return gs_reply(gs_int(gs_from_deadline(self, from)));
    if (gs_is_tuple(req, "watch", 2)) {
        gs_value msg = gs_str("watch_fire");
        f->watched = from;
        gs_timer_start(self, (uint64_t)int_or(a1, 0), gs_array(&msg, 1));
        return gs_noreply();
    }
    if (gs_is(req, "watched")) {
        if (!f->have_watch)
            return gs_reply(gs_nil());
        gs_value *w = gs_scratch_array(self, 3);
        w[0] = gs_bool(f->watch_waiting);
        w[1] = gs_int(f->watch_rc);
        w[2] = gs_int(f->watch_deadline);
        return gs_reply(gs_array(w, 3));
    }
    if (gs_is_tuple(req, "timer", 3))
        return gs_reply(gs_uint(gs_timer_start(self, (uint64_t)int_or(a1, 0), *a2)));
    if (gs_is_tuple(req, "cancel", 2))
        return gs_reply(gs_int(gs_timer_cancel(self, (uint64_t)int_or(a1, 0))));
    if (gs_is_tuple(req, "cast_to", 3))
        return gs_reply(gs_int(gs_cast(self, *a1, *a2)));
    if (gs_is_tuple(req, "send_to", 3))
        return gs_reply(gs_int(gs_send(self, *a1, *a2)));
    if (gs_is_tuple(req, "call_to", 4))
        return gs_reply(gs_uint(gs_call(self, *a1, *a2, int_or(a3, GS_INFINITY))));
    if (gs_is_tuple(req, "monitor", 2))
        return gs_reply(gs_uint(gs_monitor(self, *a1)));
    if (gs_is_tuple(req, "demonitor", 2))
        return gs_reply(gs_int(gs_demonitor(self, (uint64_t)int_or(a1, 0))));
    if (gs_is(req, "self")) {
        gs_value *s = gs_scratch_array(self, 2);
        const char *name = gs_self_name(self);
        s[0] = gs_uint(gs_self(self));
        s[1] = name ? gs_str(name) : gs_nil(); /* valid while the server lives */
        return gs_reply(gs_array(s, 2));
    }
    if (gs_is(req, "infos"))
        return gs_reply(list_value(self, &f->infos));
    if (gs_is(req, "casts"))
        return gs_reply(list_value(self, &f->casts));
    if (gs_is(req, "timeouts"))
        return gs_reply(gs_uint(f->timeouts));
    if (gs_is_tuple(req, "busy", 2)) {
        busy_wait(int_or(a1, 0));
        return gs_reply(gs_str("done"));
    }
    return gs_reply(unknown(self));
}

/* The results casts and infos share; false if msg is none of them. */
static bool common(gs_server *self, struct forms *f, const gs_value *msg, gs_result *r)
{
    const gs_value *a1 = gs_at(msg, 1);

    if (gs_is_tuple(msg, "release", 2)) {
        release(self, f, *a1);
        *r = gs_noreply();
    } else if (gs_is_tuple(msg, "noreply_timeout", 2)) {
        *r = gs_noreply_timeout(int_or(a1, 0));
    } else if (gs_is(msg, "noreply_hibernate")) {
        *r = gs_noreply_hibernate();
    } else if (gs_is_tuple(msg, "stop", 2)) {
        *r = gs_stop(*a1);
    } else if (gs_is(msg, "bad")) {
        *r = bad_result();
    } else if (gs_is_tuple(msg, "busy", 2)) {
        busy_wait(int_or(a1, 0));
        *r = gs_noreply();
    } else {
        return false;
    }
    return true;
}

static gs_result forms_cast(gs_server *self, const gs_value *req, void **state)
{
    struct forms *f = *state;
    gs_result r;

    if (gs_is_tuple(req, "note", 2)) {
        log_line(f->log, gs_at(req, 1));
        return gs_noreply();
    }
    if (gs_is_tuple(req, "cast_to", 3)) {
        gs_cast(self, *gs_at(req, 1), *gs_at(req, 2));
        return gs_noreply();
    }
    if (common(self, f, req, &r))
        return r;
    list_add(&f->casts, req);
    return gs_noreply();
}

static gs_result forms_info(gs_server *self, const gs_value *msg, void **state)
{
    struct forms *f = *state;
    gs_result r;

    if (gs_is(msg, "timeout")) {
        f->timeouts++;
        if (f->reply_on_timeout) {
            f->reply_on_timeout = false;
            release(self, f, gs_str("timed_out"));
        }
        return gs_noreply();
    }
    if (gs_is_tuple(msg, "watch_fire", 1)) {
        f->have_watch = true;
        f->watch_waiting = gs_from_waiting(self, f->watched);
        f->watch_deadline = gs_from_deadline(self, f->watched);
        f->watch_rc = gs_reply_to(self, f->watched, gs_bool(f->watch_waiting));
        return gs_noreply();
    }
    if (common(self, f, msg, &r))
        return r;
    list_add(&f->infos, msg);
    return gs_noreply();
}

static void forms_terminate(gs_server *self, const gs_value *reason, void **state)
{
    struct forms *f = *state;

    (void)self;
    if (f == NULL) { /* init failed: terminate must not have been called */
        gs_value v = gs_str("terminate_after_failed_init");
        log_line(failed_init_log[0] ? failed_init_log : NULL, &v);
        return;
    }
    log_line(f->log, reason);
    if (f->pending.id)
        release(self, f, gs_str("from_terminate"));
    forms_free(f);
    *state = NULL;
}

static gs_value forms_format_state(gs_server *self, void *state)
{
    struct forms *f = state;
    gs_pair *p = gs_scratch_pairs(self, 2);
    p[0].key = gs_str("timeouts");
    p[0].val = gs_uint(f->timeouts);
    p[1].key = gs_str("casts");
    p[1].val = gs_uint(f->casts.n);
    return gs_map(p, 2);
}

GS_MODULE(.name = "forms", .vsn = 3, .init = forms_init, .handle_call = forms_call,
          .handle_cast = forms_cast, .handle_info = forms_info, .terminate = forms_terminate,
          .format_state = forms_format_state);
