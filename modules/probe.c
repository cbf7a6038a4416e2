/*
 * probe — a server that does whatever it is asked, for tests and for
 * trying out the daemon: fail at init, answer late, stop on demand,
 * monitor and call others, remember every message it is sent, and
 * misbehave on purpose (crash, block, hold memory).
 *
 * args: nil, or a map:
 *   {"init": "stop", "reason": r}  init stops with r: start fails with
 *                                  init_stop, detail r
 *   {"init": "ignore"}             init ignores: start answers ignore
 *   {"init": "crash", "how": h}    init crashes as ["crash", h] does (h
 *                                  "segv" when absent)
 *   {"terminate_log": path}        terminate appends its reason to path as
 *                                  one line of JSON
 *   {"continue": v}                init asks for handle_continue with v
 *
 *   call ["echo", v]                 -> v
 *   call ["reply_after", ms, v]      -> v, ms later, from a timer; the probe
 *                                       serves other messages meanwhile
 *   call ["stop", reason, reply]     -> reply, then the probe stops
 *   call ["stop_noreply", reason]    the probe stops; the caller gets exit
 *   call ["monitor", server]         -> the ref of a monitor on server
 *   call "infos"                     -> every message handle_info got,
 *                                       oldest first
 *   call ["crash", how]              the callback crashes: how is "segv"
 *                                    (a store through a null pointer),
 *                                    "abort" (abort()) or "exit" (exit(3))
 *   call ["block", ms]               -> "ok", after sleeping ms in the
 *                                       callback (it blocks the loop)
 *   call ["alloc", bytes]            -> the bytes now kept: the probe keeps
 *                                       that many more, written so that
 *                                       they are resident, until it ends
 *   call ["call", server, request, timeout]
 *                                    -> ["ok", reply], or ["error", code]
 *                                       (the reason, for an exit): the
 *                                       probe calls server (name, id or
 *                                       remote reference) with gs_call and
 *                                       answers when the reply comes;
 *                                       timeout is ms, or nil for none
 *   call ["tagged", tag, v]          -> {tag, v} for an Erlang caller: the
 *                                       tuple and the atom tag built with
 *                                       gs_erl_tuple and gs_atomn
 *   call ["continue", v]             -> "ok", and handle_continue runs with
 *                                       v, which records ["continue", v] in
 *                                       "infos" before any later message
 *   call ["timeout", ms, msg]        -> "ok", with a timeout of ms that
 *                                       delivers msg (gs_timeout_msg)
 *   call ["deadline", ms, msg]       -> "ok", with a deadline ms from now
 *                                       that delivers msg (gs_deadline)
 *   cast ["stop", reason]            the probe stops
 *   cast ["crash", how]              handle_cast crashes, as above
 *
 * "infos" holds raw sends, "timeout", ["down", ref, id, reason] from its
 * monitors: everything but the probe's own reply_after timers and the
 * replies to its calls. A call it does not know answers
 * ["error", ["unknown_call", request]]; other casts are logged and dropped.
 */
#include <errno.h>
#include <gsd/module.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct probe_pending {
    uint64_t id;     /* names it in its timer message, ["reply_after", id] */
    gs_from from;    /* the caller waiting for it */
    gs_value *value; /* owned copy of the reply */
};

struct probe_relay {
    uint64_t ref; /* of our gs_call, in its ["reply", ref, error, result] */
    gs_from from; /* the caller of ["call", ...] waiting for it */
};

struct probe_block { /* memory kept for ["alloc", bytes] */
    struct probe_block *next;
    char bytes[];
};

struct probe {
    char *terminate_log;           /* file terminate appends to, or NULL */
    gs_value **infos;              /* owned copies, oldest first */
    uint32_t ninfos;               /* infos in use */
    uint32_t infos_cap;            /* infos allocated */
    struct probe_pending *pending; /* reply_after calls not yet answered */
    uint32_t npending;             /* pending in use */
    uint32_t pending_cap;          /* pending allocated */
    uint64_t next_id;              /* id of the next reply_after */
    struct probe_relay *relays;    /* ["call", ...] calls not yet answered */
    uint32_t nrelays;              /* relays in use */
    uint32_t relays_cap;           /* relays allocated */
    struct probe_block *blocks;    /* what ["alloc", bytes] kept */
    uint64_t kept;                 /* their bytes, in all */
};

/* items, grown if full to hold n + 1 of size bytes; NULL if out of memory. */
static void *probe_grow(void *items, uint32_t n, uint32_t *cap, size_t size)
{
    uint32_t grown = *cap ? 2 * *cap : 8;

    if (n < *cap)
        return items;
    if ((items = realloc(items, grown * size)) != NULL)
        *cap = grown;
    return items;
}

/* Writes s as a JSON string: quotes and backslashes escaped, control
 * characters as \u00XX, other bytes (UTF-8) as they are. */
static void probe_json_string(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* Writes v as compact JSON. A map key that is not a string becomes the
 * string of its JSON text; what JSON cannot hold (ext, NaN) is null. */
static void probe_json(FILE *f, const gs_value *v)
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
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (isfinite(v->via.f64))
            fprintf(f, "%.17g", v->via.f64);
        else
            fputs("null", f);
        break;
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN:
        probe_json_string(f, v->via.str.ptr, v->via.str.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        fputc('[', f);
        for (uint32_t i = 0; i < v->via.array.size; i++) {
            if (i > 0)
                fputc(',', f);
            probe_json(f, &v->via.array.ptr[i]);
        }
        fputc(']', f);
        break;
    case MSGPACK_OBJECT_MAP:
        fputc('{', f);
        for (uint32_t i = 0; i < v->via.map.size; i++) {
            const gs_value *key = &v->via.map.ptr[i].key;
            char *text = NULL;
            size_t n = 0;
            FILE *m;
            if (i > 0)
                fputc(',', f);
            if (key->type == MSGPACK_OBJECT_STR || key->type == MSGPACK_OBJECT_BIN) {
                probe_json(f, key);
            } else if ((m = open_memstream(&text, &n)) != NULL) {
                probe_json(m, key);
                fclose(m);
                probe_json_string(f, text, n);
            }
            free(text);
            fputc(':', f);
            probe_json(f, &v->via.map.ptr[i].val);
        }
        fputc('}', f);
        break;
    default: /* nil, ext */
        fputs("null", f);
        break;
    }
}

/* A store through a null pointer. Both volatiles keep it a real store: the
 * compiler cannot prove the pointer null, so it can neither drop the
 * store nor turn it into a trap instruction (SIGILL). The sanitizers are
 * off here so that it is a plain SIGSEGV in their builds too. */
__attribute__((noinline, no_sanitize("address", "undefined"))) static void probe_segv(void)
{
    volatile int *volatile nowhere = NULL;
    *nowhere = 1;
}

/* Crashes as how says; returns only if how is none of "segv", "abort",
 * "exit". */
static void probe_crash(const gs_value *how)
{
    if (gs_is(how, "segv"))
        probe_segv();
    else if (gs_is(how, "abort"))
        abort();
    else if (gs_is(how, "exit"))
        exit(3);
}

/* Sleeps ms, whatever signals arrive meanwhile. */
static void probe_block(int64_t ms)
{
    struct timespec left = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000};
    while (nanosleep(&left, &left) < 0 && errno == EINTR)
        continue;
}

static gs_result probe_init(gs_server *self, const gs_value *args, void **state)
{
    const gs_value *mode = gs_map_get(args, "init");
    const gs_value *log = gs_map_get(args, "terminate_log");
    struct probe *p;

    if (mode && gs_is(mode, "stop")) {
        const gs_value *reason = gs_map_get(args, "reason");
        return gs_stop(reason ? *reason : gs_str("stop")); /* reason lives in args */
    }
    if (mode && gs_is(mode, "ignore"))
        return gs_ignore();
    if (mode && gs_is(mode, "crash")) {
        const gs_value *how = gs_map_get(args, "how");
        if (how == NULL)
            probe_segv();
        probe_crash(how);
        return gs_stop(gs_tuple(self, 2, gs_str("badarg"), *args)); /* an unknown how */
    }
    if (!gs_is_nil(args) &&
        (args->type != MSGPACK_OBJECT_MAP || (log && log->type != MSGPACK_OBJECT_STR))) {
        return gs_stop(gs_tuple(self, 2, gs_str("badarg"), *args));
    }
    if ((p = calloc(1, sizeof *p)) == NULL)
        return gs_stop(gs_str("enomem"));
    if (log && (p->terminate_log = strndup(log->via.str.ptr, log->via.str.size)) == NULL) {
        free(p); /* terminate will not run after a failed init */
        return gs_stop(gs_str("enomem"));
    }
    *state = p;
    const gs_value *cont = gs_map_get(args, "continue");
    return cont ? gs_continue(gs_ok(), *cont) : gs_ok(); /* cont lives in args */
}

/* Keeps an owned copy of msg in "infos"; false if out of memory. */
static bool probe_record(struct probe *p, const gs_value *msg)
{
    gs_value **infos = probe_grow(p->infos, p->ninfos, &p->infos_cap, sizeof *infos);
    if (infos == NULL)
        return false;
    p->infos = infos;
    p->infos[p->ninfos++] = gs_value_copy(msg);
    return true;
}

/* ["alloc", bytes]: keeps bytes more, touched so that they count in RSS. */
static gs_result probe_alloc(gs_server *self, struct probe *p, uint64_t n)
{
    struct probe_block *b = n < SIZE_MAX - sizeof *b ? malloc(sizeof *b + n) : NULL;
    if (b == NULL)
        return gs_reply(gs_error_reply(self, "enomem", gs_uint(n)));
    memset(b->bytes, 0xa5, n);
    b->next = p->blocks;
    p->blocks = b;
    p->kept += n;
    return gs_reply(gs_uint(p->kept));
}

/* Element i of v, nil if there is none. */
static gs_value probe_item(const gs_value *v, uint32_t i)
{
    const gs_value *e = gs_at(v, i);
    return e ? *e : gs_nil();
}

/* ["call", server, request, timeout]: the reply comes to probe_info. */
static gs_result probe_relay(gs_server *self, struct probe *p, const gs_value *request,
                             gs_from from)
{
    const gs_value *t = gs_at(request, 3);
    int64_t ms = GS_INFINITY;
    if (!gs_is_nil(t) && !gs_is(t, "infinity") && (!gs_get_int(t, &ms) || ms < 0))
        return gs_reply(gs_error_reply(self, "unknown_call", *request));
    struct probe_relay *r = probe_grow(p->relays, p->nrelays, &p->relays_cap, sizeof *r);
    if (r == NULL)
        return gs_stop(gs_str("enomem"));
    p->relays = r;
    r = &p->relays[p->nrelays++];
    r->from = from;
    r->ref = gs_call(self, *gs_at(request, 1), *gs_at(request, 2), ms); /* copied now */
    return gs_noreply();
}

static gs_result probe_call(gs_server *self, const gs_value *request, gs_from from, void **state)
{
    struct probe *p = *state;
    int64_t ms;
    uint64_t n;

    if (gs_is_tuple(request, "echo", 2))
        return gs_reply(*gs_at(request, 1)); /* the request outlives our result */
    if (gs_is_tuple(request, "reply_after", 3) && gs_get_int(gs_at(request, 1), &ms) && ms >= 0) {
        struct probe_pending *q = probe_grow(p->pending, p->npending, &p->pending_cap, sizeof *q);
        if (q == NULL)
            return gs_stop(gs_str("enomem"));
        p->pending = q;
        q = &p->pending[p->npending++];
        q->id = ++p->next_id;
        q->from = from; /* kept by value, answered later with gs_reply_to */
        q->value = gs_value_copy(gs_at(request, 2));
        gs_value msg[2] = {gs_str("reply_after"), gs_uint(q->id)};
        gs_timer_start(self, (uint64_t)ms, gs_array(msg, 2)); /* msg is copied now */
        return gs_noreply();
    }
    if (gs_is_tuple(request, "stop", 3))
        return gs_stop_reply(*gs_at(request, 1), *gs_at(request, 2));
    if (gs_is_tuple(request, "stop_noreply", 2))
        return gs_stop(*gs_at(request, 1));
    if (gs_is_tuple(request, "monitor", 2))
        return gs_reply(gs_uint(gs_monitor(self, *gs_at(request, 1))));
    if (gs_is(request, "infos")) {
        gs_value *infos = gs_scratch_array(self, p->ninfos);
        for (uint32_t i = 0; i < p->ninfos; i++)
            infos[i] = *p->infos[i];
        return gs_reply(gs_array(infos, p->ninfos));
    }
    if (gs_is_tuple(request, "crash", 2))
        probe_crash(gs_at(request, 1)); /* returns for an unknown how only */
    if (gs_is_tuple(request, "block", 2) && gs_get_int(gs_at(request, 1), &ms) && ms >= 0) {
        probe_block(ms);
        return gs_reply(gs_str("ok"));
    }
    if (gs_is_tuple(request, "alloc", 2) && gs_get_uint(gs_at(request, 1), &n))
        return probe_alloc(self, p, n);
    if (gs_is_tuple(request, "call", 4))
        return probe_relay(self, p, request, from);
    if (gs_is_tuple(request, "continue", 2))
        return gs_continue(gs_reply(gs_str("ok")), *gs_at(request, 1));
    if (gs_is_tuple(request, "tagged", 3) && gs_at(request, 1)->type == MSGPACK_OBJECT_STR) {
        const gs_value *tag = gs_at(request, 1); /* the request outlives our result */
        return gs_reply(gs_erl_tuple(self, 2, gs_atomn(tag->via.str.ptr, tag->via.str.size),
                                     *gs_at(request, 2)));
    }
    if (gs_is_tuple(request, "timeout", 3) && gs_get_int(gs_at(request, 1), &ms))
        return gs_timeout_msg(gs_reply(gs_str("ok")), ms, *gs_at(request, 2));
    if (gs_is_tuple(request, "deadline", 3) && gs_get_int(gs_at(request, 1), &ms))
        return gs_deadline(gs_reply(gs_str("ok")), gs_now(self) + ms, *gs_at(request, 2));
    return gs_reply(gs_error_reply(self, "unknown_call", *request));
}

static gs_result probe_cast(gs_server *self, const gs_value *request, void **state)
{
    (void)state;
    if (gs_is_tuple(request, "stop", 2))
        return gs_stop(*gs_at(request, 1));
    if (gs_is_tuple(request, "crash", 2))
        probe_crash(gs_at(request, 1)); /* returns for an unknown how only */
    gs_log(self, GS_LOG_WARNING, "unknown cast ignored");
    return gs_noreply();
}

static gs_result probe_info(gs_server *self, const gs_value *msg, void **state)
{
    struct probe *p = *state;
    int64_t id;
    uint64_t ref;

    /* One of our reply_after timers: answer its caller, and forget it. */
    if (gs_is_tuple(msg, "reply_after", 2) && gs_get_int(gs_at(msg, 1), &id)) {
        for (struct probe_pending *q = p->pending; q < p->pending + p->npending; q++) {
            if (q->id == (uint64_t)id) {
                gs_reply_to(self, q->from, *q->value); /* encoded now */
                gs_value_free(q->value);
                *q = p->pending[--p->npending];
                return gs_noreply();
            }
        }
    }
    /* The reply to one of our calls: ["ok", reply], or ["error", code], the
     * reason standing for the code of an exit. */
    if (gs_is_tuple(msg, "reply", 4) && gs_get_uint(gs_at(msg, 1), &ref)) {
        for (struct probe_relay *r = p->relays; r < p->relays + p->nrelays; r++) {
            if (r->ref == ref) {
                const gs_value *error = gs_at(msg, 2);
                gs_value answer[2] = {gs_str("ok"), probe_item(msg, 3)};
                if (!gs_is_nil(error)) {
                    answer[0] = gs_str("error");
                    answer[1] = probe_item(error, gs_is(gs_at(error, 0), "exit") ? 1 : 0);
                }
                gs_reply_to(self, r->from, gs_array(answer, 2)); /* encoded now */
                *r = p->relays[--p->nrelays];
                return gs_noreply();
            }
        }
    }

    return probe_record(p, msg) ? gs_noreply() : gs_stop(gs_str("enomem"));
}

static gs_result probe_continue(gs_server *self, const gs_value *term, void **state)
{
    gs_value entry = gs_tuple(self, 2, gs_str("continue"), *term);
    return probe_record(*state, &entry) ? gs_noreply() : gs_stop(gs_str("enomem"));
}

static void probe_terminate(gs_server *self, const gs_value *reason, void **state)
{
    struct probe *p = *state;
    FILE *f;

    if (p->terminate_log) {
        if ((f = fopen(p->terminate_log, "a")) != NULL) {
            probe_json(f, reason);
            fputc('\n', f);
        }
        if (f == NULL || fclose(f) != 0)
            gs_log(self, GS_LOG_WARNING, "%s: %s", p->terminate_log, strerror(errno));
    }
    /* Callers still waiting on reply_after get ["exit", reason] from the daemon. */
    for (uint32_t i = 0; i < p->npending; i++)
        gs_value_free(p->pending[i].value);
    for (uint32_t i = 0; i < p->ninfos; i++)
        gs_value_free(p->infos[i]);
    for (struct probe_block *b = p->blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(p->relays); /* their callers, too, get ["exit", reason] */
    free(p->pending);
    free(p->infos);
    free(p->terminate_log);
    free(p);
    *state = NULL;
}

GS_MODULE(.name = "probe", .vsn = 1, .init = probe_init, .handle_call = probe_call,
          .handle_cast = probe_cast, .handle_info = probe_info, .terminate = probe_terminate,
          .handle_continue = probe_continue);
