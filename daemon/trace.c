/* trace.c — `trace`: a connection watches one server's traffic, as OTP's
 * sys:trace or Redis's MONITOR, as [2, "trace", [id, name, event, data]]
 * notifications.
 *
 * The traced server never waits for its tracer and never grows the
 * daemon's memory for it: an event that would take the tracer's unread
 * output past its cap is dropped and counted, at the cost of a compare,
 * and the count goes out as a "dropped" event once there is room again.
 * An untraced server pays one branch per event (its empty tracer list). */
#include "gsd.h"

#include <stdlib.h>
#include <string.h>

struct trace {
    struct server *server;
    struct conn *conn;
    uint64_t dropped; /* events not sent since the last "dropped" went out */
    LIST_ENTRY(trace) server_link;
    LIST_ENTRY(trace) conn_link;
};

static const char *const event_names[] = {[TRACE_CALL] = "call",
                                          [TRACE_CAST] = "cast",
                                          [TRACE_INFO] = "info",
                                          [TRACE_REPLY] = "reply",
                                          [TRACE_TIMEOUT] = "timeout"};

/* What c's unread output may hold for its traces. */
static size_t cap(void)
{
    size_t half = limits.output_bytes ? (size_t)(limits.output_bytes / 2) : TRACE_OUT_BYTES;
    return half < TRACE_OUT_BYTES ? half : TRACE_OUT_BYTES;
}

static bool room(const struct conn *c, size_t n)
{
    return !c->closing && c->out.len - c->out_off + n <= cap();
}

/* [2, "trace", [id, name, event, data]]; data packed by the caller. */
static void pack_head(msgpack_packer *pk, const struct server *s, const char *event)
{
    gsp_pack_notify(pk, "trace", 4);
    msgpack_pack_uint64(pk, s->id);
    if (s->name)
        gsp_pack_str(pk, s->name);
    else
        msgpack_pack_nil(pk);
    gsp_pack_str(pk, event);
}

/* An event's bytes beyond its data: the name and the framing. */
static size_t overhead(const struct server *s)
{
    return 48 + (s->name ? strlen(s->name) : 0);
}

/* The dropped count, if there is one and room for it. pk: c's packer,
 * marked or not by the caller. */
static bool pack_dropped(struct trace *t, msgpack_packer *pk)
{
    if (t->dropped == 0 || !room(t->conn, overhead(t->server) + 9))
        return false;
    pack_head(pk, t->server, "dropped");
    msgpack_pack_uint64(pk, t->dropped);
    t->dropped = 0;
    return true;
}

/* One event of t's server, data encoded (ptr NULL: packed from v). */
static void emit(struct trace *t, const char *event, struct gsp_span data, const gs_value *v)
{
    struct conn *c = t->conn;
    size_t n = overhead(t->server) + (t->dropped ? overhead(t->server) + 9 : 0) + data.len;
    if (!room(c, n)) {
        t->dropped++;
        return;
    }
    msgpack_packer *pk = conn_packer(c);
    pack_dropped(t, pk);
    pack_head(pk, t->server, event);
    if (data.ptr)
        gsp_pack_raw(pk, data.ptr, data.len);
    else
        msgpack_pack_object(pk, *v);
}

void trace_emit(struct server *s, enum trace_event ev, struct gsp_span data)
{
    struct trace *t;
    LIST_FOREACH(t, &s->tracers, server_link)
    emit(t, event_names[ev], data, NULL);
}

void trace_emit_value(struct server *s, enum trace_event ev, const gs_value *v)
{
    struct gsp_span data;
    data.ptr = value_encode(v, &data.len); /* its size, for the room; NULL over the limits */
    if (data.ptr == NULL) {
        gs_value alt = gs_str("reply_too_large");
        data.ptr = value_encode(&alt, &data.len);
    }
    trace_emit(s, ev, data);
}

void trace_emit_msg(struct server *s, enum msg_kind kind, struct gsp_span data)
{
    if (data.len == 0)
        data = enc_nil;
    if (kind == MSG_CALL)
        trace_emit(s, TRACE_CALL, data);
    else if (kind == MSG_CAST)
        trace_emit(s, TRACE_CAST, data);
    else if (kind == MSG_INFO)
        trace_emit(s, TRACE_INFO, data);
}

static void trace_free(struct trace *t)
{
    LIST_REMOVE(t, server_link);
    LIST_REMOVE(t, conn_link);
    budget_release(sizeof *t);
    free(t);
}

void trace_set(struct conn *c, struct server *s, bool on)
{
    struct trace *t;
    LIST_FOREACH(t, &c->traces, conn_link)
    if (t->server == s)
        break;
    if (on && t == NULL) {
        t = xcalloc(1, sizeof *t);
        budget_charge(sizeof *t);
        t->server = s;
        t->conn = c;
        LIST_INSERT_HEAD(&s->tracers, t, server_link);
        LIST_INSERT_HEAD(&c->traces, t, conn_link);
    } else if (!on && t) {
        pack_dropped(t, conn_packer(c));
        trace_free(t);
    }
}

void trace_server_ended(struct server *s, struct gsp_span reason)
{
    struct trace *t;
    while ((t = LIST_FIRST(&s->tracers)) != NULL) {
        emit(t, "stop", reason, NULL);
        trace_free(t);
    }
}

void trace_conn_closed(struct conn *c)
{
    struct trace *t;
    while ((t = LIST_FIRST(&c->traces)) != NULL)
        trace_free(t);
}

bool trace_conn_drained(struct conn *c)
{
    bool any = false;
    struct trace *t;
    LIST_FOREACH(t, &c->traces, conn_link)
    any |= pack_dropped(t, &c->pk);
    return any;
}
