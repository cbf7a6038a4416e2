/*
 * server.c — a server's life: start, one message at a time, end.
 *
 *   start ─▶ [init] ─ok─▶ running ◀──────────────┐
 *              │ stop/ignore       │ next message │ reply / noreply
 *              ▼                   ▼              │ (timeout, hibernate)
 *        (no terminate)      handle_call/cast/info┘
 *                                  │ stop, a stop request, a linked
 *                                  ▼ connection closing, shutdown
 *                            server_end: terminate, then every waiting
 *                            caller gets ["exit", reason], every monitor
 *                            its down, and the name is free again.
 *
 * Every callback result is read by server_result(); every end goes
 * through server_end().
 */
#include "gsd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t slow_callback_ms = 100;

static const char *const kind_names[] = {
    [MSG_INIT] = "init", [MSG_CALL] = "handle_call", [MSG_CAST] = "handle_cast",
    [MSG_INFO] = "handle_info", [MSG_STOP] = "terminate", [MSG_STATE] = "format_state"};

#define SELF(s) ((gs_server *)(s))

static const char *label(const struct server *s)
{
    return s->name ? s->name : "-";
}

void server_ref(struct server *s)
{
    s->refs++;
}

void server_unref(struct server *s)
{
    if (--s->refs > 0)
        return;
    free(s->name);
    free(s);
}

const char *server_status_name(const struct server *s)
{
    static const char *const names[] = {[SERVER_STARTING] = "starting",
                                        [SERVER_RUNNING] = "running",
                                        [SERVER_HIBERNATING] = "hibernating",
                                        [SERVER_ENDED] = "ended"};
    return names[s->status];
}

struct server *server_lookup(const gs_value *ref)
{
    if (ref->type == MSGPACK_OBJECT_STR || ref->type == MSGPACK_OBJECT_BIN)
        return registry_by_name(ref->via.str.ptr, ref->via.str.size);
    if (ref->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return registry_by_id(ref->via.u64);
    return NULL;
}

struct server *server_start(struct module *mod, const char *name, size_t name_len,
                            const void *args, size_t args_len, int64_t init_timeout,
                            uint64_t starter)
{
    struct server *s = xcalloc(1, sizeof *s);
    s->id = registry_next_id();
    s->name = name ? xstrndup(name, name_len) : NULL;
    s->mod = mod;
    s->status = SERVER_STARTING;
    s->refs = 1; /* the registry's */
    s->start_timeout = init_timeout;
    s->start_ms = s->stats.started_ms = now_ms();
    mailbox_init(&s->mbox);
    LIST_INIT(&s->waiters);
    LIST_INIT(&s->timers);
    LIST_INIT(&s->watchers);
    LIST_INIT(&s->watching);
    mod->servers++;
    registry_add(s);
    struct waiter *w = waiter_find(starter);
    if (w)
        waiter_attach(w, s);
    server_post(s, MSG_INIT, starter, args, args_len);
    return s;
}

bool server_post(struct server *s, enum msg_kind kind, uint64_t waiter, const void *data,
                 size_t len)
{
    if (s->status == SERVER_ENDED)
        return false;
    mailbox_put(&s->mbox, msg_new(kind, waiter, data, len));
    if (s->timeout)
        event_del(s->timeout); /* a message arrived: no timeout */
    sched_wake(s);
    return true;
}

static void timeout_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    static const uint8_t msg[] = {0xa7, 't', 'i', 'm', 'e', 'o', 'u', 't'};
    server_post(arg, MSG_INFO, 0, msg, sizeof msg);
}

/* Timeout and hibernate, as a callback asked. Hibernating releases what the
 * daemon holds for the server (its timeout event), then lets the module
 * shrink its state; the status shows it until the next message. */
static void after_callback(struct server *s, const gs_result *r)
{
    if (r->hibernate) {
        if (s->timeout)
            event_free(s->timeout);
        s->timeout = NULL;
        s->status = SERVER_HIBERNATING;
        if (s->mod->desc->hibernate)
            s->mod->desc->hibernate(SELF(s), &s->state);
    } else if (r->timeout_ms >= 0 && STAILQ_EMPTY(&s->mbox.q)) {
        if (s->timeout == NULL)
            s->timeout = evtimer_new(loop_base, timeout_fire, s);
        loop_arm(s->timeout, r->timeout_ms);
    }
}

static bool clean_exit(const gs_value *reason)
{
    return gs_is(reason, "normal") || gs_is(reason, "shutdown") ||
           gs_is_tuple(reason, "shutdown", 2);
}

void server_end(struct server *s, const void *reason, size_t len)
{
    if (s->status == SERVER_ENDED)
        return;
    bool init_ran = s->status != SERVER_STARTING;
    gs_value why = gs_nil();
    gsp_decode(reason, len, scratch_zone(), &why);
    server_ref(s);
    /* Ended before terminate runs: whatever terminate sends to itself is
     * refused, and no one can queue for it any more. */
    s->status = SERVER_ENDED;
    sched_forget(s);
    if (init_ran && s->mod->desc->terminate) {
        int64_t t0 = now_ms();
        s->mod->desc->terminate(SELF(s), &why, &s->state);
        int64_t took = now_ms() - t0;
        if (took >= slow_callback_ms)
            log_msg(LOG_WARN, "server %llu (%s): terminate took %lld ms",
                    (unsigned long long)s->id, label(s), (long long)took);
    }
    registry_remove(s);
    if (s->timeout)
        event_free(s->timeout);
    s->timeout = NULL;
    stimer_clear(s);
    waiter_exit_all(s, reason, len);
    mailbox_clear(&s->mbox);
    monitor_server_ended(s, reason, len);
    s->mod->servers--;
    char text[256];
    msgpack_object_print_buffer(text, sizeof text, why);
    log_msg(clean_exit(&why) ? LOG_INFO : LOG_WARN, "server %llu (%s, %s) ended: %s",
            (unsigned long long)s->id, label(s), s->mod->name, text);
    server_unref(s); /* the registry's */
    server_unref(s);
}

/* Encodes a value a callback returned, before anything can change it. */
static const uint8_t *encode(const gs_value *v, size_t *len)
{
    return api_encode(v, len);
}

static void end_with(struct server *s, const char *reason)
{
    size_t len;
    gs_value v = gs_str(reason);
    const uint8_t *p = encode(&v, &len);
    server_end(s, p, len);
}

/* init's result: the starter learns the id, or why there is none. */
static void init_result(struct server *s, uint64_t starter, gs_result r)
{
    struct waiter *w = waiter_find(starter);
    size_t len;
    if (r.action == GS_OK) {
        s->status = SERVER_RUNNING;
        int64_t took = now_ms() - s->start_ms;
        if (s->start_timeout >= 0 && took > s->start_timeout) {
            if (w) {
                waiter_detach(w);
                waiter_error_str(w, GSP_TIMEOUT, "init took too long");
            }
            end_with(s, "timeout");
            return;
        }
        if (w)
            waiter_result_uint(w, s->id);
        after_callback(s, &r);
        return;
    }
    if (w)
        waiter_detach(w);
    if (r.action == GS_IGNORE) {
        end_with(s, "normal");
        if (w)
            waiter_error(w, GSP_IGNORE, "\xc0", 1);
        return;
    }
    const uint8_t *reason = encode(&r.reason, &len);
    server_end(s, reason, len);
    if (w)
        waiter_error(w, GSP_INIT_STOP, reason, len);
}

/* The one place a callback's result is read. Anything a callback may not
 * return becomes a stop with reason "bad_return_value", as in OTP. */
static void server_result(struct server *s, struct msg *m, gs_result r)
{
    bool ok;
    switch (r.action) {
    case GS_OK:
        ok = m->kind == MSG_INIT;
        break;
    case GS_IGNORE:
        ok = m->kind == MSG_INIT;
        break;
    case GS_REPLY:
        ok = m->kind == MSG_CALL;
        break;
    case GS_NOREPLY:
        ok = m->kind != MSG_INIT;
        break;
    case GS_STOP:
        ok = !r.has_reply || m->kind == MSG_CALL;
        break;
    default:
        ok = false;
    }
    if (!ok) {
        log_msg(LOG_ERR, "server %llu (%s): %s returned a bad value (action %d)",
                (unsigned long long)s->id, label(s), kind_names[m->kind], (int)r.action);
        r = gs_stop(gs_str("bad_return_value"));
    }
    if (m->kind == MSG_INIT) {
        init_result(s, m->waiter, r);
        return;
    }
    if (r.action == GS_STOP) {
        /* Both values are encoded before terminate can free what they
         * point into; the caller gets its reply after terminate. */
        size_t rlen, plen = 0;
        const uint8_t *reason = encode(&r.reason, &rlen);
        const uint8_t *reply = r.has_reply ? encode(&r.reply, &plen) : NULL;
        struct waiter *w = r.has_reply ? waiter_find(m->waiter) : NULL;
        if (w)
            waiter_detach(w);
        server_end(s, reason, rlen);
        if (w)
            waiter_result(w, reply, plen);
        return;
    }
    if (r.action == GS_REPLY) {
        struct waiter *w = waiter_find(m->waiter);
        if (w) {
            size_t len;
            const uint8_t *p = encode(&r.reply, &len);
            waiter_result(w, p, len);
        }
    }
    after_callback(s, &r);
}

/* A stop request: terminate, then the requester hears nil. */
static void handle_stop(struct server *s, struct msg *m)
{
    struct waiter *w = waiter_find(m->waiter);
    if (w)
        waiter_detach(w);
    server_end(s, m->data, m->len);
    if (w)
        waiter_result(w, "\xc0", 1);
}

/* get_state, in mailbox order (as sys:get_state): what format_state shows. */
static void handle_state(struct server *s, struct msg *m)
{
    struct waiter *w = waiter_find(m->waiter);
    if (w == NULL)
        return;
    if (s->mod->desc->format_state == NULL) {
        waiter_error_str(w, GSP_UNSUPPORTED, "the module has no format_state");
        return;
    }
    gs_value v = s->mod->desc->format_state(SELF(s), s->state);
    size_t len;
    const uint8_t *p = encode(&v, &len);
    waiter_result(w, p, len);
}

void server_run_one(struct server *s)
{
    struct msg *m = mailbox_take(&s->mbox);
    if (m == NULL)
        return;
    const gs_module *d = s->mod->desc;
    gs_value v;
    if (!gsp_decode(m->data, m->len, scratch_zone(), &v)) {
        log_msg(LOG_ERR, "server %llu (%s): undecodable message dropped",
                (unsigned long long)s->id, label(s));
        free(m);
        return;
    }
    if (s->status == SERVER_HIBERNATING)
        s->status = SERVER_RUNNING;
    server_ref(s);
    int64_t t0 = now_ms();
    gs_result r = gs_noreply();
    bool done = false;
    switch (m->kind) {
    case MSG_INIT:
        r = d->init(SELF(s), &v, &s->state);
        break;
    case MSG_CALL:
        s->stats.calls++;
        if (d->handle_call)
            r = d->handle_call(SELF(s), &v, (gs_from){m->waiter}, &s->state);
        else
            r = gs_stop(gs_str("undef_handle_call"));
        break;
    case MSG_CAST:
        s->stats.casts++;
        if (d->handle_cast)
            r = d->handle_cast(SELF(s), &v, &s->state);
        else
            r = gs_stop(gs_str("undef_handle_cast"));
        break;
    case MSG_INFO:
        s->stats.infos++;
        if (d->handle_info)
            r = d->handle_info(SELF(s), &v, &s->state);
        else {
            char text[128];
            msgpack_object_print_buffer(text, sizeof text, v);
            log_msg(LOG_WARN, "server %llu (%s): unexpected message ignored: %s",
                    (unsigned long long)s->id, label(s), text);
        }
        break;
    case MSG_STOP:
        handle_stop(s, m);
        done = true;
        break;
    case MSG_STATE:
        handle_state(s, m);
        done = true;
        break;
    }
    int64_t took = now_ms() - t0;
    if (took >= slow_callback_ms && m->kind != MSG_STOP) {
        s->stats.slow++;
        log_msg(LOG_WARN, "server %llu (%s, %s): %s took %lld ms", (unsigned long long)s->id,
                label(s), s->mod->name, kind_names[m->kind], (long long)took);
    }
    if (!done)
        server_result(s, m, r);
    free(m);
    scratch_reset();
    server_unref(s);
}
