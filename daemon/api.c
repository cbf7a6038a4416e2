/* api.c — the services a module's callbacks may use (struct gs_api). */
#include "gsd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(self) ((struct server *)(self))

static struct gsp_buf enc; /* reused: packing allocates only to grow it */

const uint8_t *value_encode(const gs_value *v, size_t *len)
{
    /* Packing stops once past the size limit: a huge value costs no more. */
    enc.len = 0;
    bool fits = gsp_buf_pack_max(&enc, v, limits.message.max_size) &&
                value_fits(enc.data, enc.len, GSP_WRAP_ERROR); /* within VALUE_DEPTH_MAX */
    *len = enc.len;
    if (enc.cap <= (1u << 20))
        return fits ? enc.data : NULL;
    /* A large buffer is not kept: its value moves to scratch memory, given
     * back when the callback ends. */
    uint8_t *p = fits ? memcpy(scratch_alloc(enc.len), enc.data, enc.len) : NULL;
    gsp_buf_free(&enc);
    return p;
}

const uint8_t *api_encode(const gs_value *v, size_t *len)
{
    const uint8_t *b = value_encode(v, len);
    if (b == NULL || b != enc.data) /* over the limits, or in scratch memory already */
        return b;
    uint8_t *p = scratch_alloc(*len);
    memcpy(p, b, *len);
    return p;
}

void api_log_line(struct server *s, int level, const char *text, size_t len)
{
    level = level < LOG_ERR ? LOG_ERR : level > LOG_DEBUG ? LOG_DEBUG : level;
    /* Each module rate-limited on its own: a noisy one hides no other's. */
    log_keyed(level, s->mod->desc, "server %llu (%s, %s): %.*s", (unsigned long long)s->id,
              s->name ? s->name : "-", s->mod->name, (int)len, text);
}

static void api_log(gs_server *self, int level, const char *fmt, va_list ap)
{
    char line[900];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    api_log_line(S(self), level, line,
                 n < 0                     ? 0
                 : (size_t)n < sizeof line ? (size_t)n
                                           : sizeof line - 1);
}

static uint64_t api_self_id(gs_server *self)
{
    return S(self)->id;
}

static const char *api_self_name(gs_server *self)
{
    return S(self)->name;
}

/* Only a call to this server can be answered: not a start, a stop or a
 * get_state, and not a caller the daemon is answering itself. */
static struct waiter *caller(gs_server *self, gs_from from)
{
    struct waiter *w = waiter_find(from.id);
    return w && w->call && w->server == S(self) ? w : NULL;
}

static int api_reply(gs_server *self, gs_from from, gs_value reply)
{
    struct waiter *w = caller(self, from);
    if (w == NULL)
        return -1;
    if (!LIST_EMPTY(&S(self)->tracers))
        trace_emit_value(S(self), TRACE_REPLY, &reply);
    waiter_reply(w, &reply, S(self));
    return 0;
}

static int64_t api_from_deadline(gs_server *self, gs_from from)
{
    struct waiter *w = caller(self, from);
    if (w == NULL)
        return 0;
    if (w->deadline < 0)
        return GS_INFINITY;
    int64_t left = w->deadline - now_ms();
    return left > 0 ? left : 0;
}

static bool api_from_waiting(gs_server *self, gs_from from)
{
    return caller(self, from) != NULL;
}

static uint64_t api_timer_start(gs_server *self, uint64_t ms, gs_value msg)
{
    size_t len;
    const uint8_t *p = api_encode(&msg, &len);
    if (p == NULL)
        return 0;
    return stimer_start(S(self), ms > INT32_MAX ? INT32_MAX : (int64_t)ms, p, len, 0);
}

static int api_timer_cancel(gs_server *self, uint64_t ref)
{
    return stimer_cancel(S(self), ref);
}

static int post(gs_value server, enum msg_kind kind, gs_value v)
{
    struct remote to;
    bool far = remote_ref(&server, &to);
    struct server *target = far ? NULL : server_lookup(&server);
    if (target == NULL && !far)
        return -1;
    size_t len;
    const uint8_t *p = value_encode(&v, &len);
    if (p && far)
        return remote_post(&to, kind, (struct gsp_span){p, len}, true, NULL) ? 0 : -1;
    return p && server_post(target, kind, 0, p, len) ? 0 : -1;
}

static int api_cast(gs_server *self, gs_value server, gs_value request)
{
    (void)self;
    return post(server, MSG_CAST, request);
}

static int api_send(gs_server *self, gs_value server, gs_value msg)
{
    (void)self;
    return post(server, MSG_INFO, msg);
}

void api_call_as(struct server *s, uint64_t ref, const gs_value *server, const gs_value *request,
                 int64_t timeout_ms)
{
    struct waiter *w = waiter_for_server(s->id, ref, timeout_ms < 0 ? -1 : timeout_ms);
    gs_value t = *server;
    struct remote to;
    bool far = remote_ref(&t, &to);
    struct server *target = far ? NULL : server_lookup(&t);
    size_t len;
    const uint8_t *p = api_encode(request, &len);
    if (far && p) {
        remote_call(&to, (struct gsp_span){p, len}, true, w);
        return;
    }
    if (target == NULL && !far) {
        waiter_error_str(w, GSP_NOPROC, "no such server");
        return;
    }
    if (target == s) { /* it would wait for itself: GenServer's calling_self, at once */
        static const uint8_t calling_self[] = "\xac"
                                              "calling_self";
        waiter_error(w, GSP_EXIT, (struct gsp_span){calling_self, sizeof calling_self - 1});
        return;
    }
    if (p == NULL) {
        waiter_error_str(w, GSP_TOO_LARGE, "request over the message limits");
        return;
    }
    w->call = true;
    waiter_attach(w, target);
    server_post(target, MSG_CALL, w->id, p, len);
}

static uint64_t api_call(gs_server *self, gs_value server, gs_value request, int64_t timeout_ms)
{
    uint64_t ref = next_ref();
    api_call_as(S(self), ref, &server, &request, timeout_ms);
    return ref;
}

static uint64_t api_monitor(gs_server *self, gs_value server)
{
    uint64_t ref = next_ref();
    monitor_add(ref, NULL, S(self), &server);
    return ref;
}

static int api_demonitor(gs_server *self, uint64_t ref)
{
    return monitor_remove(ref, NULL, S(self)) ? 0 : -1;
}

void *api_scratch_alloc(gs_server *self, size_t n)
{
    (void)self;
    return scratch_alloc(n);
}

gs_value *api_value_copy(const gs_value *v)
{
    return gsp_value_copy(v);
}

void api_value_free(gs_value *v)
{
    free(v);
}

bool api_value_equal(const gs_value *a, const gs_value *b)
{
    return gsp_value_equal(a, b);
}

int64_t api_now(gs_server *self)
{
    (void)self;
    return now_ms();
}

const struct gs_api gsd_api = {
    .size = sizeof(struct gs_api),
    .log = api_log,
    .self_id = api_self_id,
    .self_name = api_self_name,
    .reply = api_reply,
    .from_deadline = api_from_deadline,
    .from_waiting = api_from_waiting,
    .timer_start = api_timer_start,
    .timer_cancel = api_timer_cancel,
    .cast = api_cast,
    .send = api_send,
    .call = api_call,
    .monitor = api_monitor,
    .demonitor = api_demonitor,
    .scratch_alloc = api_scratch_alloc,
    .value_copy = api_value_copy,
    .value_free = api_value_free,
    .value_equal = api_value_equal,
    .now = api_now,
};
