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

#define kind_name(k) callback_names[msg_callbacks[k]]

#define SELF(s) ((gs_server *)(s))

static const char *label(const struct server *s)
{
    return s->name ? s->name : "-";
}

void server_free(struct server *s)
{
    struct module *mod = s->mod; /* counted until now: its code stays mapped meanwhile */
    free(s->name);
    free(s->args);
    free(s->isolate);
    free(s);
    mod->servers--;
    module_release(mod);
}

const char *server_status_name(const struct server *s)
{
    static const char *const names[] = {[SERVER_STARTING] = "starting",
                                        [SERVER_RUNNING] = "running",
                                        [SERVER_HIBERNATING] = "hibernating",
                                        [SERVER_ENDED] = "ended"};
    if (s->suspended && (s->status == SERVER_RUNNING || s->status == SERVER_HIBERNATING))
        return "suspended";
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

struct server *server_start(struct module *mod, const char *name, size_t name_len, const void *args,
                            size_t args_len, int64_t init_timeout, uint64_t starter,
                            const char *isolate, char *err, size_t errlen)
{
    struct server *s = xcalloc(1, sizeof *s);
    s->id = registry_next_id();
    s->name = name ? xstrndup(name, name_len) : NULL;
    s->mod = mod;
    s->status = SERVER_STARTING;
    s->start_timeout = init_timeout;
    s->hibernate_after = -1;
    s->start_ms = s->stats.started_ms = now_ms();
    s->args = xmalloc(args_len ? args_len : 1);
    if (args_len)
        memcpy(s->args, args, args_len);
    s->args_len = args_len;
    s->isolate = isolate ? xstrndup(isolate, strlen(isolate)) : NULL;
    mailbox_init(&s->mbox);
    LIST_INIT(&s->waiters);
    LIST_INIT(&s->timers);
    LIST_INIT(&s->watchers);
    LIST_INIT(&s->watching);
    mod->servers++;
    if (isolate && !worker_place(s, isolate, err, errlen)) {
        mod->servers--;
        free(s->name);
        free(s->args);
        free(s->isolate);
        free(s);
        return NULL;
    }
    registry_add(s);
    s->starter = starter;
    struct waiter *w = waiter_find(starter);
    if (w)
        waiter_attach(w, s);
    server_post(s, MSG_INIT, starter, args, args_len);
    return s;
}

static void run(struct server *s, struct msg *m, struct gsp_span data, bool at_once);

/* The one way a message reaches s: queued, or handled at once (now), as
 * if it had passed through the mailbox. Either way it cancels s's timeout.
 * Inlined into its two callers: a call's path then has one frame less. */
static inline __attribute__((always_inline)) bool deliver(struct server *s, enum msg_kind kind,
                                                          uint64_t waiter, const void *data,
                                                          size_t len, bool now)
{
    if (s->status == SERVER_ENDED)
        return false;
    if (s->timeout)
        event_del(s->timeout);
    if (now) {
        struct msg m = {.kind = kind, .waiter = waiter, .len = (uint32_t)len};
        mailbox_pass(&s->mbox, &m);
        run(s, &m, (struct gsp_span){data, len}, true);
        return true;
    }
    mailbox_put(&s->mbox, msg_new(kind, waiter, data, len));
    sched_wake(s);
    return true;
}

bool server_post(struct server *s, enum msg_kind kind, uint64_t waiter, const void *data,
                 size_t len)
{
    if (kind == MSG_STOP && s->suspended)
        server_resume(s); /* a stop is ordered after what the mailbox holds */
    return deliver(s, kind, waiter, data, len, false);
}

static void timeout_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct server *s = arg;
    struct gsp_span m =
        s->timeout_msg ? (struct gsp_span){s->timeout_msg, s->timeout_msg_len} : enc_timeout;
    if (!LIST_EMPTY(&s->tracers))
        trace_emit(s, TRACE_TIMEOUT, m);
    server_post(s, MSG_INFO, 0, m.ptr, m.len);
}

/* What a server holds for its timeouts: released by hibernate and the end. */
static void timeouts_free(struct server *s)
{
    if (s->timeout)
        event_free(s->timeout);
    s->timeout = NULL;
    free(s->timeout_msg);
    s->timeout_msg = NULL;
    if (s->idle)
        event_free(s->idle);
    s->idle = NULL;
}

static void set_timeout(struct server *s, const gs_result *r)
{
    int64_t ms = r->timeout_at ? r->timeout_ms - now_ms() : r->timeout_ms;
    free(s->timeout_msg);
    s->timeout_msg = NULL;
    if (r->has_timeout_msg) {
        struct gsp_span m = server_encode(s, &r->timeout_msg, "timeout_msg_too_large");
        s->timeout_msg = xmalloc(m.len);
        memcpy(s->timeout_msg, m.ptr, m.len);
        s->timeout_msg_len = m.len;
    }
    if (s->timeout == NULL)
        s->timeout = loop_event(LOOP_PRIO_OWN, -1, 0, timeout_fire, s);
    loop_arm(s->timeout, ms < 0 ? 0 : ms > INT32_MAX ? INT32_MAX : ms);
}

/* hibernate_after: the idle timer is armed once and, when it fires early
 * (the server has been busy since), armed again for the rest, so a busy
 * server pays no timer per message. */
static void idle_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct server *s = arg;
    int64_t rest = s->active_ms + s->hibernate_after - now_ms();
    if (s->status != SERVER_RUNNING || s->suspended || !STAILQ_EMPTY(&s->mbox.q) || s->nsent)
        return; /* its next callback arms it again */
    if (s->timeout && evtimer_pending(s->timeout, NULL))
        return; /* a timeout it asked for comes first, as in OTP */
    if (rest > 0)
        loop_arm(s->idle, rest);
    else
        server_post(s, MSG_HIBERNATE, 0, enc_nil.ptr, enc_nil.len);
}

static void idle_arm(struct server *s)
{
    s->active_ms = loop_clock_ms;
    if (s->idle == NULL)
        s->idle = loop_event(LOOP_PRIO_OWN, -1, 0, idle_fire, s);
    if (!evtimer_pending(s->idle, NULL))
        loop_arm(s->idle, s->hibernate_after);
}

/* A result asked for handle_continue: next, before any other message. An
 * isolated server's worker runs it at once, itself (messages behind it may
 * already be on their way there): server_worker_result expects its result
 * next, whether or not the server has ended meanwhile. */
static void continue_next(struct server *s, const gs_value *term)
{
    if (s->worker)
        return;
    struct gsp_span t = server_encode(s, term, "continue_too_large");
    mailbox_put_first(&s->mbox, msg_new(MSG_CONTINUE, 0, t.ptr, t.len));
    sched_wake(s);
}

/* Continue, hibernate or a timeout, as a callback asked (in that order),
 * else hibernate_after's idle timer. Hibernating releases what the daemon
 * holds for the server (its timeout events), then lets the module shrink
 * its state; the status shows it until the next message. */
static void after_callback(struct server *s, const gs_result *r)
{
    bool idle = STAILQ_EMPTY(&s->mbox.q) && s->nsent == 0;
    if (result_continues(r)) {
        continue_next(s, &r->cont);
    } else if (r->hibernate) {
        timeouts_free(s);
        s->status = SERVER_HIBERNATING;
        registry_changed(); /* which shows the status */
        if (s->mod->desc->hibernate && !s->worker) { /* a worker runs it itself */
            running_enter(s, CB_HIBERNATE);
            s->mod->desc->hibernate(SELF(s), &s->state);
            running_leave();
        }
    } else if (r->timeout_ms >= 0 && idle) {
        set_timeout(s, r);
    } else if (s->hibernate_after >= 0 && r->timeout_ms < 0) {
        idle_arm(s);
    }
}

static bool clean_exit(const gs_value *reason)
{
    return gs_is(reason, "normal") || gs_is(reason, "shutdown") ||
           gs_is_tuple(reason, "shutdown", 2);
}

/* The starter of a server that never got to run init hears why. */
static void answer_starter(struct server *s, struct gsp_span reason)
{
    struct waiter *w = waiter_find(s->starter);
    s->starter = 0;
    if (w == NULL)
        return;
    waiter_detach(w);
    if (shutting_down)
        waiter_error_str(w, GSP_SHUTTING_DOWN, "the daemon is shutting down");
    else
        waiter_error(w, GSP_EXIT, reason);
}

/* What an isolated server's end keeps while its terminate runs in the worker. */
static void keep_end(struct server *s, struct gsp_span reason, const struct farewell *bye)
{
    s->end_reason = memcpy(xmalloc(reason.len), reason.ptr, reason.len);
    s->end_reason_len = reason.len;
    if (bye) {
        s->end_bye = xmalloc(sizeof *bye + bye->reply.len);
        s->end_bye->waiter = bye->waiter;
        s->end_bye->reply = bye->reply;
        if (bye->reply.ptr)
            s->end_bye->reply.ptr =
                memcpy((uint8_t *)(s->end_bye + 1), bye->reply.ptr, bye->reply.len);
    }
}

static void finish(struct server *s, struct gsp_span reason, const struct farewell *bye);

void server_end(struct server *s, struct gsp_span reason, const struct farewell *bye)
{
    if (s->status == SERVER_ENDED)
        return;
    bool init_ran = s->status != SERVER_STARTING;
    gs_value why0 = gs_nil();
    if (!scratch_decode(reason, &why0) || !clean_exit(&why0))
        crash_report(s, reason,
                     init_ran && !s->worker && (running.cb == CB_NONE || running.server == s));
    /* Ended before terminate runs: whatever terminate sends to itself is
     * refused, and no one can queue for it any more. The farewell's caller
     * is detached first, so terminate cannot answer it in its place. */
    s->status = SERVER_ENDED;
    registry_changed();
    sched_forget(s);
    struct waiter *w = bye ? waiter_find(bye->waiter) : NULL;
    if (w)
        waiter_detach(w);
    if (!init_ran)
        answer_starter(s, reason);
    if (s->hosted && worker_alive(s->worker) && !init_ran) {
        worker_end(s, reason, -1); /* its worker lets it go; there is no terminate to wait for */
    } else if (s->hosted && worker_alive(s->worker)) {
        /* terminate runs in the worker; the rest once it has: by the stop's
         * deadline, or limits.shutdown_ms (0: none), else the worker is killed. */
        int64_t ms = w && w->deadline >= 0 ? w->deadline - now_ms()
                     : limits.shutdown_ms  ? (int64_t)limits.shutdown_ms
                                           : -1;
        worker_end(s, reason, w && w->deadline >= 0 && ms < 0 ? 0 : ms);
        keep_end(s, reason, bye);
        return;
    } else if (init_ran && !s->worker && s->mod->desc->terminate) {
        gs_value why = gs_nil();
        scratch_decode(reason, &why);
        int64_t t0 = loop_clock_tick(), t0_us = loop_clock_us;
        running_enter(s, CB_TERMINATE);
        s->mod->desc->terminate(SELF(s), &why, &s->state);
        running_leave();
        int64_t took = loop_clock_tick() - t0;
        if (took >= slow_callback_ms) {
            log_msg(LOG_WARN, "server %llu (%s): terminate took %lld ms", (unsigned long long)s->id,
                    label(s), (long long)took);
            slowlog_record(s, CB_TERMINATE, loop_clock_us - t0_us, reason);
        }
    }
    finish(s, reason, bye);
}

void server_end_finish(struct server *s)
{
    struct gsp_span reason = {s->end_reason, s->end_reason_len};
    finish(s, reason, s->end_bye);
    free(s->end_reason);
    free(s->end_bye);
    s->end_reason = NULL;
    s->end_bye = NULL;
}

/* The end, once terminate has run (or could not). */
static void finish(struct server *s, struct gsp_span reason, const struct farewell *bye)
{
    gs_value why = gs_nil();
    scratch_decode(reason, &why);
    struct waiter *w;
    /* The caller told goodbye hears it before any monitor hears the down. */
    if (bye && (w = waiter_find(bye->waiter)) != NULL)
        waiter_answer(w, GSP_OK, NULL, bye->reply, s);
    if (!LIST_EMPTY(&s->tracers))
        trace_server_ended(s, reason);
    upgrade_server_ended(s);
    if (s->worker)
        worker_forget(s);
    registry_remove(s);
    timeouts_free(s);
    stimer_clear(s);
    waiter_exit_all(s, reason);
    mailbox_clear(&s->mbox);
    monitor_server_ended(s, reason);
    if (dist_hooks)
        dist_hooks->server_ended(s, reason);
    char text[256];
    log_msg(clean_exit(&why) ? LOG_INFO : LOG_WARN, "server %llu (%s, %s) ended: %s",
            (unsigned long long)s->id, label(s), s->mod->name, value_text(text, sizeof text, &why));
    supervise_ended(s, reason, !clean_exit(&why)); /* a restart sees the name free */
    supervise_name_freed(s->name);
    shutdown_server_ended();
    /* Freed once whatever ran it has returned to the loop. */
    sched_reap(s);
}

struct gsp_span server_instead(const struct server *s, const char *instead)
{
    log_msg(LOG_ERR, "server %llu (%s): a value over the message limits became \"%s\"",
            (unsigned long long)s->id, label(s), instead);
    gs_value alt = gs_str(instead);
    struct gsp_span v;
    v.ptr = api_encode(&alt, &v.len);
    return v;
}

struct gsp_span server_encode(struct server *s, const gs_value *v, const char *instead)
{
    struct gsp_span e;
    e.ptr = api_encode(v, &e.len);
    return e.ptr ? e : server_instead(s, instead);
}

/* start with "monitor": [id, ref], and the monitor in place as the
 * starter reads it (a client one: a server's start takes no options). */
static void answer_monitored(struct server *s, struct waiter *w)
{
    gs_value pair[2] = {gs_uint(s->id), gs_uint(s->start_monitor)}, a = gs_array(pair, 2);
    struct conn *c = w->kind == WAIT_CONN ? w->conn : NULL;
    waiter_answer(w, GSP_OK, &a, (struct gsp_span){0}, NULL);
    if (c)
        monitor_add(s->start_monitor, c, NULL, &pair[0]);
}

/* init's result: the starter learns the id, or why there is none. */
static void init_result(struct server *s, const gs_result *r)
{
    struct waiter *w = waiter_find(s->starter);
    s->starter = 0;
    if (w)
        waiter_detach(w);
    if (r->action == GS_OK) {
        s->status = SERVER_RUNNING;
        registry_changed();
        int64_t took = now_ms() - s->start_ms;
        if (s->start_timeout >= 0 && took > s->start_timeout) {
            if (w)
                waiter_error_str(w, GSP_TIMEOUT, "init took too long");
            gs_value why = gs_str("timeout");
            server_end(s, server_encode(s, &why, "timeout"), NULL);
            return;
        }
        if (w && s->start_monitor)
            answer_monitored(s, w);
        else if (w)
            waiter_result_uint(w, s->id);
        supervise_started(s);
        after_callback(s, r);
        return;
    }
    /* Ignore ends the server as normal; stop with its reason. Either way
     * terminate does not run, and the starter hears after the end. */
    gs_value normal = gs_str("normal");
    struct gsp_span reason =
        server_encode(s, r->action == GS_IGNORE ? &normal : &r->reason, "reason_too_large");
    server_end(s, reason, NULL);
    if (w == NULL)
        return;
    if (r->action == GS_IGNORE)
        waiter_error(w, GSP_IGNORE, enc_nil);
    else
        waiter_error(w, GSP_INIT_STOP, reason);
}

/* The one place a callback's result is read. Anything a callback may not
 * return becomes a stop with reason "bad_return_value", as in OTP. */
static void server_result(struct server *s, struct msg *m, struct gsp_span data, gs_result *r)
{
    if (!result_allowed(m->kind, r)) {
        static const char *const actions[] = {"a zeroed result", "gs_ok()",   "gs_reply()",
                                              "gs_noreply()",    "gs_stop()", "gs_ignore()",
                                              "gs_error()"};
        unsigned a = (unsigned)r->action;
        char other[32];
        snprintf(other, sizeof other, "an unknown action (%u)", a);
        log_msg(LOG_ERR, "server %llu (%s): %s returned %s%s, which it may not: stopped",
                (unsigned long long)s->id, label(s), kind_name(m->kind),
                a < sizeof actions / sizeof actions[0] ? actions[a] : other,
                r->action == GS_STOP ? " with a reply" : "");
        *r = gs_stop(gs_str("bad_return_value"));
    }
    if (m->kind == MSG_INIT) {
        if (r->action != GS_OK)
            crash_note(s, CB_INIT, data, m->waiter);
        init_result(s, r);
        return;
    }
    if (r->action == GS_STOP) {
        crash_note(s, msg_callbacks[m->kind], data, m->kind == MSG_CALL ? m->waiter : 0);
        /* Both are encoded before terminate can free what they point into;
         * the caller gets its reply after terminate (a reply over the
         * limits, ptr NULL, as waiter_answer says). */
        struct gsp_span reason = server_encode(s, &r->reason, "reason_too_large");
        struct farewell bye = {m->waiter, {NULL, 0}};
        if (r->has_reply)
            bye.reply.ptr = api_encode(&r->reply, &bye.reply.len);
        if (r->has_reply && !LIST_EMPTY(&s->tracers) && bye.reply.ptr)
            trace_emit(s, TRACE_REPLY, bye.reply);
        server_end(s, reason, r->has_reply ? &bye : NULL);
        return;
    }
    if (r->action == GS_REPLY) {
        struct waiter *w = waiter_find(m->waiter);
        if (__builtin_expect(!LIST_EMPTY(&s->tracers), 0))
            trace_emit_value(s, TRACE_REPLY, &r->reply);
        if (w)
            waiter_reply(w, &r->reply, s);
    }
    after_callback(s, r);
}

/* get_state, in mailbox order (as sys:get_state): what format_state shows. */
static void handle_state(struct server *s, struct msg *m)
{
    if (s->mod->desc->format_state == NULL) {
        struct waiter *w = waiter_find(m->waiter);
        if (w)
            waiter_error_str(w, GSP_UNSUPPORTED, "the module has no format_state");
        return;
    }
    running_enter(s, CB_FORMAT_STATE);
    gs_value v = s->mod->desc->format_state(SELF(s), s->state);
    running_leave();
    struct gsp_span shown = server_encode(s, &v, "state_too_large");
    struct waiter *w = waiter_find(m->waiter); /* after: format_state ran module code */
    if (w)
        waiter_result(w, shown);
}

/* A message that cannot be decoded (a module sent a value msgpack-c cannot
 * read back): its caller hears badarg, and a server cannot start on it. */
static void undecodable(struct server *s, struct msg *m)
{
    log_msg(LOG_ERR, "server %llu (%s): undecodable %s message dropped", (unsigned long long)s->id,
            label(s), kind_name(m->kind));
    struct waiter *w = m->kind == MSG_INFO ? NULL : waiter_find(m->waiter);
    if (w)
        waiter_error_str(w, GSP_BADARG, "undecodable message");
    if (m->kind == MSG_INIT) {
        gs_value why = gs_str("badarg");
        server_end(s, server_encode(s, &why, "badarg"), NULL);
    }
}

/* Runs the callback a message is for; false if it ran none that returns a
 * result (a stop or get_state, handled here). data: the message's. */
static bool dispatch(struct server *s, struct msg *m, struct gsp_span data, const gs_value *v,
                     gs_result *r)
{
    switch (m->kind) {
    case MSG_STOP: {
        struct farewell bye = {m->waiter, enc_nil}; /* a stop's answer: ok, nil */
        crash_note(s, CB_NONE, data, m->waiter);
        server_end(s, data, &bye);
        return false;
    }
    case MSG_STATE:
        handle_state(s, m);
        return false;
    default:
        if (module_run(s->mod->desc, SELF(s), m->kind, v, (gs_from){m->waiter}, &s->state, r))
            return true;
        char text[128];
        log_msg(LOG_WARN, "server %llu (%s): unexpected message ignored: %s",
                (unsigned long long)s->id, label(s), value_text(text, sizeof text, v));
        *r = gs_noreply();
        return true;
    }
}

/* A message is being handled: s is no longer hibernating. */
static void awake(struct server *s)
{
    if (s->status == SERVER_HIBERNATING) {
        s->status = SERVER_RUNNING;
        registry_changed();
    }
}

/* A callback for a message of that kind (data: its payload) has run,
 * took_us long: counted, and logged and kept in the slowlog if slow
 * (terminate is by server_end). */
static void tally(struct server *s, enum msg_kind kind, int64_t took_us, struct gsp_span data)
{
    hist_observe(&s->mod->hist[kind], took_us > 0 ? (uint64_t)took_us : 0); /* metrics.c */
    metrics_handled[kind]++;
    s->stats.calls += kind == MSG_CALL;
    s->stats.casts += kind == MSG_CAST;
    s->stats.infos += kind == MSG_INFO;
    if (took_us >= slow_callback_ms * 1000 && kind != MSG_STOP) {
        s->stats.slow++;
        log_msg(LOG_WARN, "server %llu (%s, %s): %s took %lld ms", (unsigned long long)s->id,
                label(s), s->mod->name, kind_name(kind), (long long)(took_us / 1000));
        slowlog_record(s, msg_callbacks[kind], took_us, data);
    }
}

/* Handles one message: m says what it is and who waits, data is its
 * payload (in m, or where the call arrived). A call run at once starts its
 * callback's clock from loop_clock_ms, which its read set; the end of each
 * callback sets it again, so it stays recent. */
static void run(struct server *s, struct msg *m, struct gsp_span data, bool at_once)
{
    awake(s);
    gs_value v = gs_nil();
    bool has_value = m->kind != MSG_STOP && m->kind != MSG_STATE;
    if (has_value && !scratch_decode(data, &v)) {
        undecodable(s, m);
    } else {
        if (!at_once)
            loop_clock_tick();
        int64_t t0 = loop_clock_us;
        gs_result r;
        trace_msg(s, m->kind, data);
        running_enter(s, msg_callbacks[m->kind]);
        bool ran = dispatch(s, m, data, &v, &r);
        running_leave();
        loop_clock_tick();
        tally(s, m->kind, loop_clock_us - t0, data);
        if (ran)
            server_result(s, m, data, &r);
    }
    scratch_reset();
}

void server_run_one(struct server *s)
{
    if (s->worker) {
        worker_feed(s);
        return;
    }
    struct msg *m = mailbox_take(&s->mbox);
    if (m == NULL)
        return;
    run(s, m, (struct gsp_span){m->data, m->len}, false);
    msg_free(m);
}

/* May run a callback here and now: never an isolated server's. */
static bool may_run(const struct server *s)
{
    return (s->status == SERVER_RUNNING || s->status == SERVER_HIBERNATING) && !s->worker &&
           !s->upgrading && !s->suspended;
}

bool server_has_work(const struct server *s)
{
    if (s->upgrading || (s->suspended && s->status != SERVER_STARTING))
        return false; /* a suspended server's init still runs, as OTP's does */
    return s->worker ? worker_can_take(s) : !STAILQ_EMPTY(&s->mbox.q);
}

void server_suspend(struct server *s)
{
    if (s->suspended || s->status == SERVER_ENDED)
        return;
    s->suspended = true;
    registry_changed(); /* which shows the status */
}

void server_resume(struct server *s)
{
    if (!s->suspended)
        return;
    s->suspended = false;
    registry_changed();
    if (s->status != SERVER_ENDED && server_has_work(s))
        sched_wake(s);
}

void server_worker_result(struct server *s, gs_result *r, int64_t took_us)
{
    struct msg *m = STAILQ_FIRST(&s->sent);
    STAILQ_REMOVE_HEAD(&s->sent, link);
    s->nsent--;
    s->sent_bytes -= m->len;
    if (r->has_continue) { /* the worker runs handle_continue next: its result comes next */
        struct msg *next = msg_new(MSG_CONTINUE, 0, NULL, 0);
        STAILQ_INSERT_HEAD(&s->sent, next, link);
        s->nsent++;
    }
    if (s->status != SERVER_ENDED) {
        awake(s);
        struct gsp_span data = {m->data, m->len};
        tally(s, m->kind, took_us, data);
        struct waiter *w;
        if (m->kind != MSG_STATE)
            server_result(s, m, data, r);
        else if ((w = waiter_find(m->waiter)) == NULL)
            ;
        else if (!r->has_reply)
            waiter_error_str(w, GSP_UNSUPPORTED, "the module has no format_state");
        else
            waiter_result(w, server_encode(s, &r->reply, "state_too_large"));
    }
    msg_free(m);
    if (s->status != SERVER_ENDED && server_has_work(s))
        sched_wake(s);
}

void server_call(struct server *s, uint64_t waiter, const void *data, size_t len)
{
    /* One message at a time and in order: what is queued goes first. A
     * server that has fallen behind so catches up as calls arrive, rather
     * than staying behind as long as they do. A queued stop may end s:
     * it stays allocated until the loop reaps it, and deliver refuses. */
    while (may_run(s) && !STAILQ_EMPTY(&s->mbox.q) && sched_run_now())
        server_run_one(s);
    bool now = may_run(s) && STAILQ_EMPTY(&s->mbox.q) && sched_run_now();
    deliver(s, MSG_CALL, waiter, data, len, now);
    if (s->worker && server_has_work(s)) /* to the worker in this pass's write */
        worker_feed(s);
}
