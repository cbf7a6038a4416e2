/*
 * probe — a server that does whatever it is asked, for tests and for
 * trying out the daemon: fail at init, answer late, stop on demand,
 * monitor others, and remember every message it is sent.
 *
 * args: nil, or a map:
 *   {"init": "stop", "reason": r}  init stops with r: start fails with
 *                                  init_stop, detail r
 *   {"init": "ignore"}             init ignores: start answers ignore
 *   {"terminate_log": path}        terminate appends its reason to path as
 *                                  one line of JSON
 *
 *   call ["echo", v]                 -> v
 *   call ["reply_after", ms, v]      -> v, ms later, from a timer; the probe
 *                                       serves other messages meanwhile
 *   call ["stop", reason, reply]     -> reply, then the probe stops
 *   call ["stop_noreply", reason]    the probe stops; the caller gets exit
 *   call ["monitor", server]         -> the ref of a monitor on server
 *   call "infos"                     -> every message handle_info got,
 *                                       oldest first
 *   cast ["stop", reason]            the probe stops
 *
 * "infos" holds raw sends, "timeout", ["down", ref, id, reason] from its
 * monitors: everything but the probe's own reply_after timers. A call it
 * does not know answers ["error", ["unknown_call", request]]; other casts
 * are logged and dropped.
 */
#include <errno.h>
#include <gsd/module.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

struct probe_pending {
    uint64_t id;     /* names it in its timer message, ["reply_after", id] */
    gs_from from;    /* the caller waiting for it */
    gs_value *value; /* owned copy of the reply */
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
    return gs_ok();
}

static gs_result probe_call(gs_server *self, const gs_value *request, gs_from from, void **state)
{
    struct probe *p = *state;
    int64_t ms;

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
    return gs_reply(gs_error_reply(self, "unknown_call", *request));
}

static gs_result probe_cast(gs_server *self, const gs_value *request, void **state)
{
    (void)state;
    if (gs_is_tuple(request, "stop", 2))
        return gs_stop(*gs_at(request, 1));
    gs_log(self, GS_LOG_WARNING, "unknown cast ignored");
    return gs_noreply();
}

static gs_result probe_info(gs_server *self, const gs_value *msg, void **state)
{
    struct probe *p = *state;
    int64_t id;

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

    gs_value **infos = probe_grow(p->infos, p->ninfos, &p->infos_cap, sizeof *infos);
    if (infos == NULL)
        return gs_stop(gs_str("enomem"));
    p->infos = infos;
    p->infos[p->ninfos++] = gs_value_copy(msg);
    return gs_noreply();
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
    free(p->pending);
    free(p->infos);
    free(p->terminate_log);
    free(p);
    *state = NULL;
}

GS_MODULE(.name = "probe", .vsn = 1, .init = probe_init, .handle_call = probe_call,
          .handle_cast = probe_cast, .handle_info = probe_info, .terminate = probe_terminate);
