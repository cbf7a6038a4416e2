/* waiter.c — callers waiting for an answer: a client's call, start or stop,
 * or a server's gs_call. A waiter exists exactly as long as someone waits:
 * answering, timing out and the caller leaving all free it, so a module
 * answering a gs_from late finds nothing and its reply is a no-op. */
#include "gsd.h"

#include <stdlib.h>
#include <string.h>

/*
 * Waiters are found by id in a table indexed by the id's low bits: an id
 * is handed out only if its slot is free, so a lookup is one load and one
 * compare, and ids still never repeat. The table doubles when half full
 * (ids distinct modulo a size stay distinct modulo its double).
 *
 * Deadlines live in a list and a binary min-heap, with one libevent timer
 * armed for the earliest: creating and answering a call touches no
 * libevent state, and a timer that fires early (its waiter answered) just
 * re-arms. The list takes every deadline no earlier than its last, which
 * calls of one timeout (nearly all: the default) always are, in O(1) each
 * way, and stays sorted; the heap takes the rest.
 *
 * A client's call is usually answered by its callback in the read that
 * brought it (server_call): its waiter is an ordinary one whose deadline
 * is watched only if it outlives that read (waiter_watch), so a call
 * answered at once never touches the heap.
 */
static struct waiter **table;
static uint64_t mask; /* table size - 1; the size is a power of two */
static uint64_t count, last_id;
static uint64_t grow_at; /* the count at which the table doubles; 0 before there is one */

static struct waiter **heap;
static uint32_t heap_len, heap_cap;
static TAILQ_HEAD(deadlines, waiter) in_order = TAILQ_HEAD_INITIALIZER(in_order);
#define IN_ORDER (UINT32_MAX - 1) /* heap_at of a waiter in that list */
static struct event *expiry;
static struct event *expiry_more;     /* deadlines left due after a batch: client work */
static int64_t armed_for = INT64_MAX; /* the deadline expiry is armed for */

static struct waiter *spare; /* freed waiters kept for reuse, linked by conn_link */
static unsigned nspare;
#define SPARE_MAX 1024

static void waiter_expire(evutil_socket_t fd, short what, void *arg);

/* Out of line: waiter_init's usual path then saves no registers. */
static __attribute__((noinline)) void table_grow(void)
{
    uint64_t size = table ? 2 * (mask + 1) : 1024;
    struct waiter **t = xcalloc(size, sizeof *t);
    for (uint64_t i = 0; table && i <= mask; i++)
        if (table[i])
            t[table[i]->id & (size - 1)] = table[i];
    free(table);
    table = t;
    mask = size - 1;
    grow_at = size / 2;
}

static bool earlier(uint32_t a, uint32_t b)
{
    return heap[a]->deadline < heap[b]->deadline;
}

static void heap_set(uint32_t i, struct waiter *w)
{
    heap[i] = w;
    w->heap_at = i;
}

static void heap_swap(uint32_t a, uint32_t b)
{
    struct waiter *w = heap[a];
    heap_set(a, heap[b]);
    heap_set(b, w);
}

static void heap_up(uint32_t i)
{
    while (i > 0 && earlier(i, (i - 1) / 2)) {
        heap_swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < heap_len && earlier(l, m))
            m = l;
        if (r < heap_len && earlier(r, m))
            m = r;
        if (m == i)
            return;
        heap_swap(i, m);
        i = m;
    }
}

/* Out of line, as table_grow: most waiters are dropped before they are armed. */
static __attribute__((noinline)) void heap_take(struct waiter *w)
{
    uint32_t i = w->heap_at;
    w->heap_at = UINT32_MAX;
    if (--heap_len == i)
        return;
    heap_set(i, heap[heap_len]);
    heap_up(i);
    heap_down(heap[i]->heap_at);
}

static void unwatch(struct waiter *w)
{
    if (w->heap_at == IN_ORDER) {
        TAILQ_REMOVE(&in_order, w, deadline_link);
        w->heap_at = UINT32_MAX;
    } else if (w->heap_at != UINT32_MAX)
        heap_take(w);
}

/* The waiter whose deadline comes first, or NULL. */
static struct waiter *earliest(void)
{
    struct waiter *l = TAILQ_FIRST(&in_order), *h = heap_len ? heap[0] : NULL;
    return l == NULL ? h : h == NULL || l->deadline <= h->deadline ? l : h;
}

/* Arms the one timer for the earliest deadline, unless it already fires
 * no later than that. */
static void arm(void)
{
    struct waiter *e = earliest();
    if (e == NULL || e->deadline >= armed_for)
        return;
    if (expiry == NULL)
        expiry = loop_event(LOOP_PRIO_OWN, -1, 0, waiter_expire, NULL);
    armed_for = e->deadline;
    int64_t ms = armed_for - loop_clock_tick();
    loop_arm(expiry, ms > 0 ? ms : 0);
}

static void waiter_arm(struct waiter *w)
{
    if (w->deadline < 0 || w->heap_at != UINT32_MAX)
        return;
    struct waiter *last = TAILQ_LAST(&in_order, deadlines);
    if (last == NULL || w->deadline >= last->deadline) {
        TAILQ_INSERT_TAIL(&in_order, w, deadline_link);
        w->heap_at = IN_ORDER;
        if (last == NULL) /* else the timer fires no later than last's */
            arm();
        return;
    }
    if (heap_len == heap_cap) {
        heap_cap = heap_cap ? 2 * heap_cap : 1024;
        heap = xrealloc(heap, heap_cap * sizeof *heap);
    }
    heap_set(heap_len++, w);
    heap_up(w->heap_at);
    arm();
}

/* A fresh id for w, its slot in the table taken. */
static inline uint64_t waiter_enter(struct waiter *w)
{
    if (count >= grow_at)
        table_grow();
    uint64_t id;
    do
        id = ++last_id;
    while (table[id & mask] != NULL);
    table[id & mask] = w;
    count++;
    return id;
}

/* timeout_ms from now (the loop's clock, never ahead of now_ms()); -1
 * never. */
static int64_t deadline(int64_t now, int64_t timeout_ms)
{
    if (timeout_ms > INT32_MAX)
        timeout_ms = INT32_MAX; /* about 24 days; keeps the sum in range */
    return timeout_ms >= 0 ? now + timeout_ms : -1;
}

/* Gives w an id and its deadline, watched once armed. */
static void waiter_init(struct waiter *w, enum waiter_kind kind, int64_t now, int64_t timeout_ms)
{
    *w = (struct waiter){.id = waiter_enter(w),
                         .kind = kind,
                         .deadline = deadline(now, timeout_ms),
                         .heap_at = UINT32_MAX};
}

static struct waiter *waiter_alloc(void)
{
    budget_charge(sizeof(struct waiter));
    struct waiter *w = spare;
    if (w == NULL)
        return xmalloc(sizeof *w);
    spare = LIST_NEXT(w, conn_link);
    nspare--;
    return w;
}

static void conn_link(struct waiter *w, struct conn *c)
{
    w->conn = c;
    LIST_INSERT_HEAD(&c->waiters, w, conn_link);
    c->pending++;
}

struct waiter *waiter_for_call(struct conn *c, uint32_t msgid, int64_t timeout_ms,
                               struct server *s)
{
    /* What waiter_init and waiter_attach do, field by field: a waiter of a
     * client's call reads no other field (caller and ref are a server's). */
    struct waiter *w = waiter_alloc();
    w->id = waiter_enter(w);
    w->kind = WAIT_CONN;
    w->msgid = msgid;
    w->deadline = deadline(loop_clock_ms, timeout_ms);
    w->call = true;
    w->remote = false;
    w->heap_at = UINT32_MAX;
    conn_link(w, c);
    w->server = s;
    LIST_INSERT_HEAD(&s->waiters, w, server_link);
    return w;
}

void waiter_watch(uint64_t id)
{
    struct waiter *w = table[id & mask]; /* waiter_find, knowing there is a table */
    if (w && w->id == id)
        waiter_arm(w);
}

struct waiter *waiter_for_conn(struct conn *c, uint32_t msgid, int64_t timeout_ms)
{
    struct waiter *w = waiter_alloc();
    waiter_init(w, WAIT_CONN, loop_clock_ms, timeout_ms);
    w->msgid = msgid;
    conn_link(w, c);
    waiter_arm(w);
    return w;
}

struct waiter *waiter_for_server(uint64_t caller, uint64_t ref, int64_t timeout_ms)
{
    struct waiter *w = waiter_alloc();
    waiter_init(w, WAIT_SERVER, loop_clock_tick(), timeout_ms); /* from inside a callback */
    w->caller = caller;
    w->ref = ref;
    waiter_arm(w);
    return w;
}

const struct dist_hooks *dist_hooks;

struct waiter *waiter_for_dist(uint64_t key, struct server *s)
{
    struct waiter *w = waiter_alloc();
    waiter_init(w, WAIT_DIST, loop_clock_ms, -1);
    w->ref = key;
    w->call = true;
    waiter_attach(w, s);
    return w;
}

struct waiter *waiter_find(uint64_t id)
{
    /* No waiter has id 0: whatever sits in slot 0 does not match it. */
    struct waiter *w = table ? table[id & mask] : NULL;
    return w && w->id == id ? w : NULL;
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
    if (__builtin_expect(w->remote, 0) && dist_hooks)
        dist_hooks->call_gone(w->id);
    table[w->id & mask] = NULL;
    count--;
    if (w->server)
        LIST_REMOVE(w, server_link);
    if (w->conn) { /* WAIT_CONN */
        LIST_REMOVE(w, conn_link);
        w->conn->pending--;
    }
    unwatch(w);
    budget_release(sizeof *w);
    if (nspare < SPARE_MAX) {
        w->conn_link.le_next = spare;
        spare = w;
        nspare++;
    } else
        free(w);
}

/* A client's result, a module's value packed in place; false, with nothing
 * packed, if the value is over the limits. A reply its client has no room
 * for is taken back: the client is cut off (conn_room). */
static bool pack_result(struct waiter *w, const gs_value *v)
{
    if (w->conn->closing) /* cut off, or failed: nothing more is queued for it */
        return true;
    struct gsp_buf *out = &w->conn->out;
    size_t mark = out->len;
    gsp_pack_result(conn_packer(w->conn), w->msgid);
    size_t at = out->len;
    /* What api_encode checks: the value is within the message limits. */
    if (!gsp_buf_pack_max(out, v, limits.message.max_size) ||
        !value_fits(out->data + at, out->len - at, GSP_WRAP_ERROR)) {
        out->len = mark;
        return false;
    }
    if (limits.output_bytes && out->len - w->conn->out_off > limits.output_bytes) {
        size_t n = out->len - mark;
        out->len = mark;
        conn_room(w->conn, n); /* no room: cuts it off */
    }
    return true;
}

/* waiter_answer's every other case: encoded values, a module's value for
 * a server or over the limits. Out of line, so that the usual reply's path
 * needs no stack frame. */
static __attribute__((noinline)) void answer_encoded(struct waiter *w, enum gsp_code code,
                                                     const gs_value *v, struct gsp_span enc,
                                                     const struct server *by)
{
    static const uint8_t too_large[] = "\xbdreply over the message limits";
    if (v)
        enc.ptr = value_encode(v, &enc.len);
    if (enc.ptr == NULL && by)
        enc = server_instead(by, "reply_too_large");
    else if (enc.ptr == NULL ||
             (w->kind == WAIT_CONN &&
              !value_fits(enc.ptr, enc.len, code == GSP_OK ? GSP_WRAP_RESULT : GSP_WRAP_ERROR))) {
        code = GSP_TOO_LARGE;
        enc = (struct gsp_span){too_large, sizeof too_large - 1};
    }
    if (w->kind == WAIT_DIST) {
        if (dist_hooks)
            dist_hooks->answer(w->ref, code, enc);
    } else if (w->kind == WAIT_SERVER) {
        struct server *caller = registry_by_id(w->caller);
        if (caller) {
            static struct gsp_buf b; /* reused: packing allocates only to grow it */
            msgpack_packer pk;
            b.len = 0;
            gsp_packer_init(&pk, &b);
            gsp_pack_call_reply(&pk, w->ref, code, enc.ptr, enc.len);
            server_post(caller, MSG_INFO, 0, b.data, b.len);
        }
    } else if (conn_room(w->conn, enc.len + 32)) /* [1, msgid, error, result] around it */
        gsp_pack_response(conn_packer(w->conn), w->msgid, code, enc.ptr, enc.len);
    waiter_drop(w);
}

void waiter_answer(struct waiter *w, enum gsp_code code, const gs_value *v, struct gsp_span enc,
                   const struct server *by)
{
    if (v && code == GSP_OK && w->kind == WAIT_CONN && pack_result(w, v))
        waiter_drop(w); /* the usual reply: packed in place, encoded once */
    else
        answer_encoded(w, code, v, enc, by);
}

void waiter_result_uint(struct waiter *w, uint64_t v)
{
    gs_value u = gs_uint(v);
    waiter_answer(w, GSP_OK, &u, (struct gsp_span){0}, NULL);
}

void waiter_error_str(struct waiter *w, enum gsp_code code, const char *detail)
{
    gs_value s = gs_str(detail);
    waiter_answer(w, code, &s, (struct gsp_span){0}, NULL);
}

void waiter_conn_closed(struct conn *c)
{
    struct waiter *w;
    while ((w = LIST_FIRST(&c->waiters)) != NULL) {
        if (w->call && w->server && w->server->hosted) /* its gs_from_waiting turns false */
            worker_caller_gone(w->server, w->id);
        waiter_drop(w);
    }
}

void waiter_exit_all(struct server *s, struct gsp_span reason)
{
    struct waiter *w;
    while ((w = LIST_FIRST(&s->waiters)) != NULL)
        waiter_error(w, GSP_EXIT, reason);
}

/* Up to EXPIRE_MAX waiters past their deadline hear timeout. If more are
 * due, the next batch is client work, in turn with the rest (a million
 * calls timing out together do not hold up everyone else); otherwise the
 * timer is armed for the next deadline. */
#define EXPIRE_MAX 4096
static void waiter_expire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    armed_for = INT64_MAX;
    int64_t now = now_ms();
    struct waiter *e;
    for (int n = 0; n < EXPIRE_MAX && (e = earliest()) != NULL && e->deadline <= now; n++)
        waiter_error_str(e, GSP_TIMEOUT, "no reply in time");
    if ((e = earliest()) != NULL && e->deadline <= now) {
        if (expiry_more == NULL)
            expiry_more = event_new(loop_base, -1, 0, waiter_expire, NULL);
        event_active(expiry_more, EV_TIMEOUT, 1);
    } else
        arm();
    conn_flush_all();
}

void waiter_free_events(void)
{
    if (expiry)
        event_free(expiry);
    if (expiry_more)
        event_free(expiry_more);
    expiry = expiry_more = NULL;
    armed_for = INT64_MAX;
}
