/* waiter.c — callers waiting for an answer: a client's call, start or stop,
 * or a server's gs_call. A waiter exists exactly as long as someone waits:
 * answering, timing out and the caller leaving all free it, so a module
 * answering a gs_from late finds nothing and its reply is a no-op. */
#include "gsd.h"

#include <stdlib.h>
#include <string.h>

static struct waiter *all;
static uint64_t last_id;

static void waiter_timeout(evutil_socket_t fd, short what, void *arg);

static struct waiter *waiter_new(enum waiter_kind kind, int64_t timeout_ms)
{
    struct waiter *w = xcalloc(1, sizeof *w);
    w->id = ++last_id;
    w->kind = kind;
    w->deadline = -1;
    if (timeout_ms > INT32_MAX)
        timeout_ms = INT32_MAX; /* about 24 days; keeps the deadline's sum in range */
    if (timeout_ms >= 0) {
        w->deadline = now_ms() + timeout_ms;
        w->timer = evtimer_new(loop_base, waiter_timeout, w);
        loop_arm(w->timer, timeout_ms);
    }
    HASH_ADD(hh, all, id, sizeof w->id, w);
    return w;
}

struct waiter *waiter_for_conn(struct conn *c, uint32_t msgid, int64_t timeout_ms)
{
    struct waiter *w = waiter_new(WAIT_CONN, timeout_ms);
    w->conn = c;
    w->msgid = msgid;
    LIST_INSERT_HEAD(&c->waiters, w, conn_link);
    c->pending++;
    return w;
}

struct waiter *waiter_for_server(uint64_t caller, uint64_t ref, int64_t timeout_ms)
{
    struct waiter *w = waiter_new(WAIT_SERVER, timeout_ms);
    w->caller = caller;
    w->ref = ref;
    return w;
}

struct waiter *waiter_find(uint64_t id)
{
    struct waiter *w = NULL;
    if (id)
        HASH_FIND(hh, all, &id, sizeof id, w);
    return w;
}

void waiter_attach(struct waiter *w, struct server *s)
{
    waiter_detach(w);
    w->server = s;
    LIST_INSERT_HEAD(&s->waiters, w, server_link);
}

void waiter_detach(struct waiter *w)
{
    if (w->server)
        LIST_REMOVE(w, server_link);
    w->server = NULL;
}

void waiter_drop(struct waiter *w)
{
    waiter_detach(w);
    if (w->kind == WAIT_CONN && w->conn) {
        LIST_REMOVE(w, conn_link);
        w->conn->pending--;
    }
    if (w->timer)
        event_free(w->timer);
    HASH_DEL(all, w);
    free(w);
}

/* The answer to a server's gs_call arrives in its handle_info as
 * ["reply", ref, error, result], the shape of a wire response. */
static void to_server(struct waiter *w, enum gsp_code code, const void *v, size_t len)
{
    struct server *caller = registry_by_id(w->caller);
    if (caller == NULL)
        return;
    struct gsp_buf b = {0};
    msgpack_packer pk;
    gsp_packer_init(&pk, &b);
    msgpack_pack_array(&pk, 4);
    gsp_pack_str(&pk, "reply");
    msgpack_pack_uint64(&pk, w->ref);
    if (code == GSP_OK) {
        msgpack_pack_nil(&pk);
        gsp_pack_raw(&pk, v, len);
    } else {
        msgpack_pack_array(&pk, 2);
        gsp_pack_str(&pk, gsp_code_name(code));
        gsp_pack_raw(&pk, v, len);
        msgpack_pack_nil(&pk);
    }
    server_post(caller, MSG_INFO, 0, b.data, b.len);
    gsp_buf_free(&b);
}

static void answer(struct waiter *w, enum gsp_code code, const void *v, size_t len)
{
    /* A reply a client could not read (too big, or too deep once wrapped in
     * a response) becomes a too_large error instead. */
    static const uint8_t too_large[] = "\xbdreply over the message limits";
    if (w->kind == WAIT_CONN && !value_fits(v, len, code == GSP_OK ? 1 : 2)) {
        code = GSP_TOO_LARGE;
        v = too_large;
        len = sizeof too_large - 1;
    }
    if (w->kind == WAIT_SERVER)
        to_server(w, code, v, len);
    else if (w->conn) {
        msgpack_packer *pk = conn_packer(w->conn);
        if (code == GSP_OK)
            gsp_pack_result(pk, w->msgid);
        else
            gsp_pack_error_begin(pk, w->msgid, code);
        gsp_pack_raw(pk, v, len);
        if (code != GSP_OK)
            gsp_pack_error_end(pk);
    }
    waiter_drop(w);
}

void waiter_result(struct waiter *w, const void *value, size_t len)
{
    answer(w, GSP_OK, value, len);
}

void waiter_result_uint(struct waiter *w, uint64_t v)
{
    struct gsp_buf b = {0};
    msgpack_packer pk;
    gsp_packer_init(&pk, &b);
    msgpack_pack_uint64(&pk, v);
    answer(w, GSP_OK, b.data, b.len);
    gsp_buf_free(&b);
}

void waiter_error(struct waiter *w, enum gsp_code code, const void *detail, size_t len)
{
    answer(w, code, detail, len);
}

void waiter_error_str(struct waiter *w, enum gsp_code code, const char *detail)
{
    struct gsp_buf b = {0};
    msgpack_packer pk;
    gsp_packer_init(&pk, &b);
    gsp_pack_str(&pk, detail);
    answer(w, code, b.data, b.len);
    gsp_buf_free(&b);
}

void waiter_exit_all(struct server *s, const void *reason, size_t len)
{
    struct waiter *w;
    while ((w = LIST_FIRST(&s->waiters)) != NULL)
        waiter_error(w, GSP_EXIT, reason, len);
}

static void waiter_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    waiter_error_str(arg, GSP_TIMEOUT, "no reply in time");
    conn_flush_all();
}
