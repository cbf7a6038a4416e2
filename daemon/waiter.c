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
 * Deadlines live in one binary min-heap with one libevent timer, armed for
 * the earliest: creating and answering a call touches no libevent state,
 * and a timer that fires early (its waiter answered) just re-arms.
 *
 * A client's call handled in the read that brought it is usually answered
 * by its own callback. Its waiter is `at_once`: in the table, so its
 * gs_from finds it, but in no list, its deadline unwatched and not counted
 * as pending. Nothing else should reach it meanwhile: inside a read no
 * timer fires, no connection closes (waiter_conn_closed would drop it) and
 * a server ends only through a callback's result, where waiter_exit_all
 * looks for it. waiter_keep makes it an ordinary waiter if it outlives
 * server_call.
 */
static struct waiter **table;
static uint64_t mask; /* table size - 1; the size is a power of two */
static uint64_t count, last_id;
static uint64_t grow_at; /* the count at which the table doubles; 0 before there is one */

static struct waiter **heap;
static uint32_t heap_len, heap_cap;
static struct event *expiry;
static int64_t armed_for = INT64_MAX; /* the deadline expiry is armed for */

static struct waiter at_once = {.heap_at = UINT32_MAX}; /* id 0 when there is none */

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

static void heap_remove(struct waiter *w)
{
    if (w->heap_at != UINT32_MAX)
        heap_take(w);
}

/* Arms the one timer for the earliest deadline, unless it already fires
 * no later than that. */
static void arm(void)
{
    if (heap_len == 0 || heap[0]->deadline >= armed_for)
        return;
    if (expiry == NULL)
        expiry = evtimer_new(loop_base, waiter_expire, NULL);
    armed_for = heap[0]->deadline;
    int64_t ms = armed_for - now_coarse_ms();
    loop_arm(expiry, ms > 0 ? ms : 0);
}

static void waiter_arm(struct waiter *w)
{
    if (w->deadline < 0 || w->heap_at != UINT32_MAX)
        return;
    if (heap_len == heap_cap) {
        heap_cap = heap_cap ? 2 * heap_cap : 1024;
        heap = xrealloc(heap, heap_cap * sizeof *heap);
    }
    heap_set(heap_len++, w);
    heap_up(w->heap_at);
    arm();
}

/* A fresh id for w, its slot in the table taken. */
static uint64_t waiter_enter(struct waiter *w)
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

/* timeout_ms from now; -1 never. The coarse clock is never ahead of the
 * fine one: a deadline is never later than asked, and the expiry check
 * uses the fine one. */
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
    waiter_keep(); /* a no-op: m_call keeps or answers each before the next */
    /* Only what an ordinary waiter of a call reads is set; its heap_at
     * stays UINT32_MAX. */
    struct waiter *w = &at_once;
    w->id = waiter_enter(w);
    w->kind = WAIT_CONN;
    w->deadline = deadline(coarse_last_ms, timeout_ms); /* read by conn_parse */
    w->conn = c;
    w->msgid = msgid;
    w->call = true;
    w->server = s;
    return w;
}

void waiter_keep(void)
{
    if (at_once.id == 0)
        return;
    struct waiter *w = waiter_alloc();
    *w = at_once;
    table[w->id & mask] = w;
    at_once.id = 0;
    conn_link(w, w->conn);
    if (w->server)
        LIST_INSERT_HEAD(&w->server->waiters, w, server_link);
    waiter_arm(w);
}

struct waiter *waiter_for_conn(struct conn *c, uint32_t msgid, int64_t timeout_ms)
{
    struct waiter *w = waiter_alloc();
    waiter_init(w, WAIT_CONN, coarse_last_ms, timeout_ms); /* read by conn_parse */
    w->msgid = msgid;
    conn_link(w, c);
    waiter_arm(w);
    return w;
}

struct waiter *waiter_for_server(uint64_t caller, uint64_t ref, int64_t timeout_ms)
{
    struct waiter *w = waiter_alloc();
    waiter_init(w, WAIT_SERVER, now_coarse_ms(), timeout_ms);
    w->caller = caller;
    w->ref = ref;
    waiter_arm(w);
    return w;
}

struct waiter *waiter_find(uint64_t id)
{
    struct waiter *w = table && id ? table[id & mask] : NULL;
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
    if (w->server && w != &at_once)
        LIST_REMOVE(w, server_link);
    w->server = NULL;
}

void waiter_drop(struct waiter *w)
{
    table[w->id & mask] = NULL;
    count--;
    if (w == &at_once) {
        at_once.id = 0;
        at_once.server = NULL;
        return;
    }
    waiter_detach(w);
    if (w->kind == WAIT_CONN && w->conn) {
        LIST_REMOVE(w, conn_link);
        w->conn->pending--;
    }
    heap_remove(w);
    if (nspare < SPARE_MAX) {
        w->conn_link.le_next = spare;
        spare = w;
        nspare++;
    } else
        free(w);
}

/* The answer to a server's gs_call arrives in its handle_info as
 * ["reply", ref, error, result], the shape of a wire response. */
static void to_server(struct waiter *w, enum gsp_code code, const void *v, size_t len)
{
    struct server *caller = registry_by_id(w->caller);
    if (caller == NULL)
        return;
    static struct gsp_buf b; /* reused: packing allocates only to grow it */
    msgpack_packer pk;
    b.len = 0;
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

bool waiter_reply(struct waiter *w, const gs_value *v)
{
    if (w->kind != WAIT_CONN || w->conn == NULL)
        return false;
    struct gsp_buf *out = &w->conn->out;
    size_t mark = out->len;
    gsp_pack_result(conn_packer(w->conn), w->msgid);
    size_t at = out->len;
    gsp_buf_pack(out, v);
    /* What api_encode and answer() check, at once: the value nests within
     * VALUE_DEPTH_MAX, so it also fits in the one level of a response. */
    if (!value_fits(out->data + at, out->len - at, GSP_MAX_DEPTH_HARD - VALUE_DEPTH_MAX)) {
        out->len = mark;
        return false;
    }
    waiter_drop(w);
    return true;
}

void waiter_result_uint(struct waiter *w, uint64_t v)
{
    static struct gsp_buf b; /* reused; answer() copies what it sends */
    msgpack_packer pk;
    b.len = 0;
    gsp_packer_init(&pk, &b);
    msgpack_pack_uint64(&pk, v);
    answer(w, GSP_OK, b.data, b.len);
}

void waiter_error(struct waiter *w, enum gsp_code code, const void *detail, size_t len)
{
    answer(w, code, detail, len);
}

void waiter_error_str(struct waiter *w, enum gsp_code code, const char *detail)
{
    static struct gsp_buf b; /* reused; answer() copies what it sends */
    msgpack_packer pk;
    b.len = 0;
    gsp_packer_init(&pk, &b);
    gsp_pack_str(&pk, detail);
    answer(w, code, b.data, b.len);
}

void waiter_conn_closed(struct conn *c)
{
    struct waiter *w;
    if (at_once.id && at_once.conn == c)
        waiter_drop(&at_once);
    while ((w = LIST_FIRST(&c->waiters)) != NULL)
        waiter_drop(w);
}

void waiter_exit_all(struct server *s, const void *reason, size_t len)
{
    struct waiter *w;
    if (at_once.id && at_once.server == s)
        waiter_error(&at_once, GSP_EXIT, reason, len);
    while ((w = LIST_FIRST(&s->waiters)) != NULL)
        waiter_error(w, GSP_EXIT, reason, len);
}

/* Every waiter past its deadline hears timeout; then the timer is armed
 * for the next one. */
static void waiter_expire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    armed_for = INT64_MAX;
    int64_t now = now_ms();
    while (heap_len > 0 && heap[0]->deadline <= now)
        waiter_error_str(heap[0], GSP_TIMEOUT, "no reply in time");
    arm();
    conn_flush_all();
}
