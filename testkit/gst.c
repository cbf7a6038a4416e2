/*
 * gst.c — the test harness for module authors (include/gsd/test.h).
 *
 * The daemon's own objects are linked in (all of daemon/ but main.c,
 * protocol/, common/json.c), set up as fuzz/fuzz_request.c sets them up:
 * one loop, the scheduler, the module directories, no workers. The test's
 * connection is one end of a socketpair, the other handed to conn_new: the
 * harness writes msgpack-rpc requests on its end and runs the loop
 * (EVLOOP_ONCE | EVLOOP_NONBLOCK) until it is idle, reading what comes
 * back: responses by msgid, and the down notifications of its monitors.
 *
 * Idle: a pass of the loop that ran nothing the harness can see (nothing
 * came back), left no event active and left no timer due at the virtual
 * time (vclock.c). Then nothing more can happen until the clock moves,
 * which only gst_advance does: to each due timer in turn.
 *
 * The inbox is a module built into the harness (module_add_builtin): its
 * servers keep what they get for the test to read.
 */
#include "gsd.h"
#include "json.h"
#include "vclock.h"

#include <gsd/test.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event_struct.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define IDLE_PASSES 2         /* quiet passes in a row that make the loop idle */
#define BUSY_PASSES 1000000UL /* passes without idling: a loop that never settles */

/* ---- bookkeeping ---------------------------------------------------------- */

enum pend_kind { P_PLAIN, P_START, P_AUTO_MONITOR };

struct pending {
    uint32_t msgid;
    enum pend_kind kind;
    bool answered;
    bool discard;   /* a synchronous request given up on: its answer is dropped */
    size_t started; /* P_START, P_AUTO_MONITOR: index in t->started */
    char *error;    /* the code, or NULL */
    char *value;    /* JSON */
};

/* A server the harness started, and how it ended. */
struct started {
    uint64_t id;
    char *name;   /* NULL: anonymous */
    uint64_t ref; /* the harness's monitor; 0 until known */
    bool unwrap;  /* the harness asked for the monitor: answer the id alone */
    char *reason; /* JSON once it has ended */
};

struct down {
    uint64_t ref;
    char *json;   /* [ref, id, name, reason] */
    char *reason; /* JSON */
    bool read;    /* gst_next_down gave it */
};

struct strq {
    char **v;
    size_t head, n, cap;
};

struct inbox {
    uint64_t id;
    char *name;
    struct strq q;
    bool ended;
};

struct gst {
    int fd; /* the test's end of the socketpair */
    msgpack_unpacker up;
    msgpack_zone zone; /* request values, reset per request */
    uint64_t bytes_in; /* read from the daemon: progress */
    uint32_t last_msgid;
    struct pending *pend;
    size_t npend, cappend;
    struct started *started;
    size_t nstarted, capstarted;
    struct down *downs;
    size_t ndowns, capdowns;
    struct inbox **inboxes;
    size_t ninboxes, capinboxes;
    char **held; /* every string returned to the test */
    size_t nheld, capheld;
    int64_t t0_ns; /* the virtual clock at gst_new */
    char dir[64];  /* the harness's own module directory */
};

static gst *current; /* one at a time: the daemon's state is global */

static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return p;
    *cap = *cap ? *cap * 2 : 8;
    return xrealloc(p, *cap * size);
}

static const char *hold(gst *t, char *s)
{
    if (s == NULL)
        return NULL;
    t->held = grow(t->held, &t->capheld, t->nheld, sizeof *t->held);
    t->held[t->nheld++] = s;
    return s;
}

static char *dup_str(const char *s)
{
    return s ? xstrndup(s, strlen(s)) : NULL;
}

static char *dump(const msgpack_object *v)
{
    char *s = json_mp_dump(v, 0);
    if (s == NULL)
        gsp_oom(0);
    return s;
}

static void q_push(struct strq *q, char *s)
{
    if (q->head + q->n == q->cap) {
        if (q->head > 0) {
            memmove(q->v, q->v + q->head, q->n * sizeof *q->v);
            q->head = 0;
        } else {
            q->cap = q->cap ? q->cap * 2 : 8;
            q->v = xrealloc(q->v, q->cap * sizeof *q->v);
        }
    }
    q->v[q->head + q->n++] = s;
}

static char *q_pop(struct strq *q)
{
    if (q->n == 0)
        return NULL;
    q->n--;
    return q->v[q->head++];
}

static void q_free(struct strq *q)
{
    for (size_t i = 0; i < q->n; i++)
        free(q->v[q->head + i]);
    free(q->v);
}

/* ---- failures ------------------------------------------------------------- */

static void default_failure(const char *file, int line, const char *message)
{
    fprintf(stderr, "%s:%d: %s\n", file, line, message);
    fflush(stderr);
    abort();
}

static gst_failure_fn failure_fn = default_failure;

gst_failure_fn gst_on_failure(gst_failure_fn fn)
{
    gst_failure_fn old = failure_fn;
    failure_fn = fn ? fn : default_failure;
    return old;
}

__attribute__((format(printf, 3, 4))) static void fail(const char *file, int line, const char *fmt,
                                                       ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    failure_fn(file, line, msg);
}

#define FAIL(...) fail(__FILE__, __LINE__, __VA_ARGS__)

/* ---- the loop and the clock ---------------------------------------------- */

static int64_t now_us(void)
{
    return vclock_ns() / 1000;
}

static int earliest_cb(const struct event_base *b, const struct event *ev, void *arg)
{
    (void)b;
    int64_t *best = arg;
    if (!(ev->ev_evcallback.evcb_flags & EVLIST_TIMEOUT))
        return 0;
    /* libevent's monotonic time, which is the virtual clock; the high
     * bits of tv_usec mark a common timeout's queue. */
    int64_t at = (int64_t)ev->ev_timeout.tv_sec * 1000000 + (ev->ev_timeout.tv_usec & 0xfffff);
    if (*best < 0 || at < *best)
        *best = at;
    return 0;
}

/* When the next timer is due, in virtual µs; -1 if none is pending. */
static int64_t earliest_timer(void)
{
    int64_t best = -1;
    event_base_foreach_event(loop_base, earliest_cb, &best);
    return best;
}

static void read_all(gst *t);

/* One pass of the loop, then whatever came back. True if it did anything
 * the harness can see, or left something to do. */
static bool pass(gst *t)
{
    uint64_t before = t->bytes_in;
    event_base_loop(loop_base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    read_all(t);
    if (t->bytes_in != before)
        return true;
    if (event_base_get_num_events(loop_base, EVENT_BASE_COUNT_ACTIVE) > 0)
        return true;
    int64_t next = earliest_timer();
    return next >= 0 && next <= now_us();
}

/* Runs the loop until it is idle, or reports that it never is. */
static bool settle(gst *t, bool report)
{
    unsigned quiet = 0;
    for (unsigned long n = 0; quiet < IDLE_PASSES; n++) {
        if (n == BUSY_PASSES) {
            if (report)
                FAIL("gst: the daemon never goes idle (a timer of 0 ms re-armed forever?)");
            return false;
        }
        quiet = pass(t) ? 0 : quiet + 1;
    }
    return true;
}

static void run_idle(gst *t)
{
    settle(t, true);
}

void gst_run(gst *t)
{
    run_idle(t);
}

void gst_advance(gst *t, int64_t ms)
{
    if (ms < 0) {
        FAIL("gst_advance: %lld ms: time only goes forward", (long long)ms);
        return;
    }
    int64_t target = now_us() + ms * 1000;
    run_idle(t);
    for (;;) {
        int64_t next = earliest_timer();
        if (next < 0 || next > target)
            break;
        if (next > now_us())
            vclock_set_ns(next * 1000);
        run_idle(t);
    }
    vclock_set_ns(target * 1000);
    run_idle(t);
}

int64_t gst_now(gst *t)
{
    return (vclock_ns() - t->t0_ns) / 1000000;
}

int64_t gst_next_timer(gst *t)
{
    run_idle(t);
    int64_t next = earliest_timer();
    if (next < 0)
        return -1;
    int64_t left = next - now_us();
    return left <= 0 ? 0 : (left + 999) / 1000;
}

/* ---- the wire -------------------------------------------------------------- */

static struct pending *find_pending(gst *t, uint32_t msgid)
{
    for (size_t i = 0; i < t->npend; i++)
        if (t->pend[i].msgid == msgid)
            return &t->pend[i];
    return NULL;
}

static void drop_pending(gst *t, struct pending *p)
{
    free(p->error);
    free(p->value);
    *p = t->pend[--t->npend];
}

static struct pending *new_pending(gst *t, enum pend_kind kind)
{
    t->pend = grow(t->pend, &t->cappend, t->npend, sizeof *t->pend);
    struct pending *p = &t->pend[t->npend++];
    memset(p, 0, sizeof *p);
    if (++t->last_msgid == 0)
        ++t->last_msgid;
    p->msgid = t->last_msgid;
    p->kind = kind;
    return p;
}

static void write_all(gst *t, const char *data, size_t len)
{
    size_t off = 0;
    unsigned long spins = 0;
    while (off < len) {
        ssize_t w = write(t->fd, data + off, len - off);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            FAIL("gst: writing to the daemon: %s", strerror(errno));
            return;
        }
        if (!pass(t) && ++spins > BUSY_PASSES) { /* the daemon reads no more */
            FAIL("gst: the daemon stopped reading the test's requests");
            return;
        }
    }
}

/* Sends [0, msgid, method, params]. */
static void send_request(gst *t, struct pending *p, const char *method,
                         const msgpack_object *params, uint32_t n)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, p->msgid);
    msgpack_pack_str_with_body(&pk, method, strlen(method));
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_object(&pk, params[i]);
    write_all(t, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static struct started *started_new(gst *t, uint64_t id, const char *name, size_t name_len)
{
    t->started = grow(t->started, &t->capstarted, t->nstarted, sizeof *t->started);
    struct started *s = &t->started[t->nstarted++];
    memset(s, 0, sizeof *s);
    s->id = id;
    s->name = name ? xstrndup(name, name_len) : NULL;
    return s;
}

/* A start's answer: [id, ref] when the harness asked for the monitor, an
 * id when the daemon knows no such option (then the monitor follows). */
static void start_answered(gst *t, struct pending *p, const msgpack_object *result)
{
    struct started *s = &t->started[p->started];
    const msgpack_object *idv = result;
    if (result->type == MSGPACK_OBJECT_ARRAY && result->via.array.size == 2) {
        idv = &result->via.array.ptr[0];
        if (result->via.array.ptr[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            s->ref = result->via.array.ptr[1].via.u64;
    }
    if (idv->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        s->id = idv->via.u64;
    p->value = dump(s->unwrap ? idv : result);
    if (s->ref == 0 && s->id != 0) {
        /* No monitor option: one by id, at once. A server that ends in the
         * loop pass that answered its start is missed (its reason then
         * reads "noproc"). */
        struct pending *m = new_pending(t, P_AUTO_MONITOR);
        size_t idx = p->started;
        m->started = idx;
        msgpack_object id = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = s->id};
        send_request(t, m, "monitor", &id, 1);
    }
}

static void on_response(gst *t, const msgpack_object *a)
{
    if (a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[1].via.u64 > UINT32_MAX)
        return;
    struct pending *p = find_pending(t, (uint32_t)a[1].via.u64);
    if (p == NULL)
        return;
    if (p->discard) {
        drop_pending(t, p);
        return;
    }
    const msgpack_object *err = &a[2], *result = &a[3];
    if (err->type != MSGPACK_OBJECT_NIL) {
        const msgpack_object *code = err, *detail = NULL;
        if (err->type == MSGPACK_OBJECT_ARRAY && err->via.array.size == 2) {
            code = &err->via.array.ptr[0];
            detail = &err->via.array.ptr[1];
        }
        p->error = code->type == MSGPACK_OBJECT_STR
                       ? xstrndup(code->via.str.ptr, code->via.str.size)
                       : dump(code);
        msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
        p->value = dump(detail ? detail : &nil);
    } else if (p->kind == P_START) {
        start_answered(t, p, result);
    } else {
        if (p->kind == P_AUTO_MONITOR && result->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            t->started[p->started].ref = result->via.u64;
        p->value = dump(result);
    }
    p->answered = true;
    if (p->kind == P_AUTO_MONITOR) /* nobody reads it */
        drop_pending(t, p);
}

/* [2, "down", [ref, id, name, reason]] */
static void on_notification(gst *t, const msgpack_object *a)
{
    const msgpack_object *params = &a[2];
    if (!gs_is(&a[1], "down") || params->type != MSGPACK_OBJECT_ARRAY ||
        params->via.array.size != 4 ||
        params->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return;
    uint64_t ref = params->via.array.ptr[0].via.u64;
    const msgpack_object *reason = &params->via.array.ptr[3];
    bool test_own = true;
    for (size_t i = 0; i < t->nstarted; i++) {
        struct started *s = &t->started[i];
        if (s->ref == ref && s->reason == NULL) {
            s->reason = dump(reason);
            test_own = !s->unwrap; /* the test asked for this monitor itself */
        }
    }
    if (!test_own)
        return;
    t->downs = grow(t->downs, &t->capdowns, t->ndowns, sizeof *t->downs);
    struct down *d = &t->downs[t->ndowns++];
    d->ref = ref;
    d->json = dump(params);
    d->reason = dump(reason);
    d->read = false;
}

static void read_all(gst *t)
{
    for (;;) {
        if (msgpack_unpacker_buffer_capacity(&t->up) < 65536 &&
            !msgpack_unpacker_reserve_buffer(&t->up, 65536))
            gsp_oom(65536);
        ssize_t n =
            read(t->fd, msgpack_unpacker_buffer(&t->up), msgpack_unpacker_buffer_capacity(&t->up));
        if (n <= 0)
            break;
        msgpack_unpacker_buffer_consumed(&t->up, (size_t)n);
        t->bytes_in += (uint64_t)n;
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    msgpack_unpack_return r;
    while ((r = msgpack_unpacker_next(&t->up, &u)) == MSGPACK_UNPACK_SUCCESS) {
        const msgpack_object *o = &u.data;
        if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 3)
            continue;
        const msgpack_object *a = o->via.array.ptr;
        if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            continue;
        if (a[0].via.u64 == 1 && o->via.array.size == 4)
            on_response(t, a);
        else if (a[0].via.u64 == 2)
            on_notification(t, a);
    }
    msgpack_unpacked_destroy(&u);
    if (r == MSGPACK_UNPACK_PARSE_ERROR)
        FAIL("gst: the daemon sent bytes that are not msgpack");
}

/* ---- values ---------------------------------------------------------------- */

/* Text as a request value: JSON, or else the string itself; but text that
 * begins as JSON does must be JSON. NULL is nil. False with *why set. */
static bool parse_value(gst *t, const char *text, msgpack_object *out, char *why, size_t whylen)
{
    if (text == NULL) {
        memset(out, 0, sizeof *out);
        out->type = MSGPACK_OBJECT_NIL;
        return true;
    }
    return json_mp_arg(text, &t->zone, out, why, whylen); /* gsctl's rule (json.h) */
}

/* A server reference: all digits an id, else a name. */
static msgpack_object server_ref(const char *s)
{
    msgpack_object o;
    memset(&o, 0, sizeof o);
    if (s == NULL)
        s = "";
    bool digits = *s != '\0';
    for (const char *p = s; *p; p++)
        digits = digits && isdigit((unsigned char)*p);
    if (digits) {
        o.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o.via.u64 = strtoull(s, NULL, 10);
    } else {
        o.type = MSGPACK_OBJECT_STR;
        o.via.str.ptr = s;
        o.via.str.size = (uint32_t)strlen(s);
    }
    return o;
}

static msgpack_object str_obj(const char *s)
{
    msgpack_object o;
    memset(&o, 0, sizeof o);
    o.type = MSGPACK_OBJECT_STR;
    o.via.str.ptr = s;
    o.via.str.size = (uint32_t)strlen(s);
    return o;
}

static msgpack_object timeout_obj(int64_t ms)
{
    msgpack_object o;
    memset(&o, 0, sizeof o);
    if (ms == GST_INFINITY)
        return str_obj("infinity");
    if (ms < 0) {
        o.type = MSGPACK_OBJECT_NIL;
    } else {
        o.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o.via.u64 = (uint64_t)ms;
    }
    return o;
}

static gst_result result_of(gst *t, const char *error, char *value)
{
    gst_result r = {.error = error ? hold(t, dup_str(error)) : NULL, .value = hold(t, value)};
    return r;
}

static gst_result json_error(gst *t, const char *why)
{
    msgpack_object s = str_obj(why);
    return result_of(t, "json", dump(&s));
}

/* A pending answered with a harness error, sent nowhere. */
static uint32_t pending_error(gst *t, const char *code, const char *why)
{
    struct pending *p = new_pending(t, P_PLAIN);
    msgpack_object s = str_obj(why);
    p->error = dup_str(code);
    p->value = dump(&s);
    p->answered = true;
    return p->msgid;
}

/* Takes p's answer: the result is the test's, p is gone. */
static gst_result take(gst *t, struct pending *p)
{
    gst_result r = {.error = hold(t, p->error), .value = hold(t, p->value)};
    p->error = p->value = NULL;
    drop_pending(t, p);
    return r;
}

/* Waits for p until the loop is idle. */
static gst_result await(gst *t, uint32_t msgid, const char *method)
{
    run_idle(t);
    struct pending *p = find_pending(t, msgid);
    if (p == NULL)
        return result_of(t, "badarg", dup_str("\"no such request\""));
    if (p->answered)
        return take(t, p);
    p->discard = true;
    char why[160];
    snprintf(why, sizeof why,
             "%s: no answer, and nothing more can happen until time passes "
             "(gst_call_async and gst_advance)",
             method);
    msgpack_object s = str_obj(why);
    return result_of(t, "no_reply", dump(&s));
}

static gst_result request(gst *t, const char *method, const msgpack_object *params, uint32_t n)
{
    struct pending *p = new_pending(t, P_PLAIN);
    uint32_t id = p->msgid;
    send_request(t, p, method, params, n);
    return await(t, id, method);
}

/* ---- the methods ------------------------------------------------------------ */

static bool begin(gst *t)
{
    if (t == NULL || t != current) {
        FAIL("gst: not a live harness");
        return false;
    }
    msgpack_zone_clear(&t->zone);
    return true;
}

#define WHY 512

gst_result gst_start(gst *t, const char *module, const char *name, const char *args,
                     const char *options)
{
    gst_result none = {"badarg", "null"};
    if (!begin(t))
        return none;
    char why[WHY];
    msgpack_object params[4];
    params[0] = str_obj(module ? module : "");
    memset(&params[1], 0, sizeof params[1]);
    params[1].type = MSGPACK_OBJECT_NIL;
    if (name)
        params[1] = str_obj(name);
    if (!parse_value(t, args, &params[2], why, sizeof why) ||
        !parse_value(t, options, &params[3], why, sizeof why))
        return json_error(t, why);
    /* The harness's monitor, in place as init answers: "monitor": true. */
    bool unwrap = false;
    msgpack_object *o = &params[3];
    if (o->type == MSGPACK_OBJECT_NIL ||
        (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 0) ||
        (o->type == MSGPACK_OBJECT_MAP && gs_map_get(o, "monitor") == NULL)) {
        uint32_t n = o->type == MSGPACK_OBJECT_MAP ? o->via.map.size : 0;
        msgpack_object_kv *kv = msgpack_zone_malloc(&t->zone, (n + 1) * sizeof *kv);
        if (kv == NULL)
            gsp_oom(0);
        for (uint32_t i = 0; i < n; i++)
            kv[i] = o->via.map.ptr[i];
        kv[n].key = str_obj("monitor");
        memset(&kv[n].val, 0, sizeof kv[n].val);
        kv[n].val.type = MSGPACK_OBJECT_BOOLEAN;
        kv[n].val.via.boolean = true;
        o->type = MSGPACK_OBJECT_MAP;
        o->via.map.ptr = kv;
        o->via.map.size = n + 1;
        unwrap = true;
    }
    struct started *s = started_new(t, 0, name, name ? strlen(name) : 0);
    s->unwrap = unwrap;
    struct pending *p = new_pending(t, P_START);
    p->started = t->nstarted - 1;
    uint32_t id = p->msgid;
    send_request(t, p, "start", params, 4);
    return await(t, id, "start");
}

gst_result gst_call_timeout(gst *t, const char *server, const char *req, int64_t timeout_ms)
{
    gst_result none = {"badarg", "null"};
    if (!begin(t))
        return none;
    char why[WHY];
    msgpack_object params[3] = {server_ref(server)};
    if (!parse_value(t, req, &params[1], why, sizeof why))
        return json_error(t, why);
    params[2] = timeout_obj(timeout_ms);
    return request(t, "call", params, 3);
}

gst_result gst_call(gst *t, const char *server, const char *req)
{
    return gst_call_timeout(t, server, req, GST_DEFAULT);
}

static gst_result two(gst *t, const char *method, const char *server, const char *value,
                      bool with_timeout)
{
    gst_result none = {"badarg", "null"};
    if (!begin(t))
        return none;
    char why[WHY];
    msgpack_object params[3] = {server_ref(server)};
    if (!parse_value(t, value, &params[1], why, sizeof why))
        return json_error(t, why);
    params[2] = timeout_obj(GST_DEFAULT);
    return request(t, method, params, with_timeout ? 3 : 2);
}

gst_result gst_cast(gst *t, const char *server, const char *req)
{
    return two(t, "cast", server, req, false);
}

gst_result gst_send(gst *t, const char *server, const char *msg)
{
    return two(t, "send", server, msg, false);
}

gst_result gst_stop(gst *t, const char *server, const char *reason)
{
    return two(t, "stop", server, reason, true);
}

static gst_result one(gst *t, const char *method, msgpack_object v)
{
    gst_result none = {"badarg", "null"};
    if (!begin(t))
        return none;
    return request(t, method, &v, 1);
}

gst_result gst_info(gst *t, const char *server)
{
    return one(t, "info", server_ref(server));
}

gst_result gst_state(gst *t, const char *server)
{
    return one(t, "get_state", server_ref(server));
}

gst_result gst_load(gst *t, const char *module)
{
    return one(t, "load", str_obj(module ? module : ""));
}

gst_result gst_reload(gst *t, const char *module)
{
    return one(t, "reload", str_obj(module ? module : ""));
}

gst_result gst_upgrade(gst *t, const char *module, const char *path)
{
    gst_result none = {"badarg", "null"};
    if (!begin(t))
        return none;
    char dst[sizeof t->dir + 300], tmp[sizeof dst + 8], why[WHY];
    if (module == NULL || !gsp_module_name_valid(module, strlen(module)) || strlen(module) > 255) {
        msgpack_object s = str_obj("invalid module name");
        return result_of(t, "module", dump(&s));
    }
    snprintf(dst, sizeof dst, "%s/%s.so", t->dir, module);
    snprintf(tmp, sizeof tmp, "%s.new", dst);
    int in = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    int out = in < 0 ? -1 : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = out >= 0;
    char buf[65536];
    ssize_t n;
    while (ok && (n = read(in, buf, sizeof buf)) != 0) {
        if (n < 0) {
            ok = errno == EINTR;
            continue;
        }
        for (ssize_t off = 0, w; ok && off<n; off += w> 0 ? w : 0)
            ok = (w = write(out, buf + off, (size_t)(n - off))) > 0 || errno == EINTR;
    }
    snprintf(why, sizeof why, "%s: %s", path ? path : "(null)", strerror(errno));
    if (out >= 0 && (fchmod(out, 0644) < 0 || close(out) < 0))
        ok = false;
    if (in >= 0)
        close(in);
    /* Renamed into place whole: the daemon never sees half a file. */
    if (!ok || rename(tmp, dst) < 0) {
        unlink(tmp);
        msgpack_object s = str_obj(why);
        return result_of(t, "module", dump(&s));
    }
    gst_result r = one(t, "reload", str_obj(module));
    if (r.error)
        unlink(dst); /* refused: it must not shadow the code that runs */
    return r;
}

gst_result gst_request(gst *t, const char *method, const char *params)
{
    gst_result none = {"badarg", "null"};
    if (!begin(t))
        return none;
    char why[WHY];
    msgpack_object p;
    if (!parse_value(t, params ? params : "[]", &p, why, sizeof why))
        return json_error(t, why);
    if (p.type != MSGPACK_OBJECT_ARRAY) {
        msgpack_object s = str_obj("params must be a JSON array");
        return result_of(t, "json", dump(&s));
    }
    return request(t, method ? method : "", p.via.array.ptr, p.via.array.size);
}

uint32_t gst_request_async(gst *t, const char *method, const char *params)
{
    if (!begin(t))
        return 0;
    char why[WHY];
    msgpack_object p;
    if (!parse_value(t, params ? params : "[]", &p, why, sizeof why))
        return pending_error(t, "json", why);
    if (p.type != MSGPACK_OBJECT_ARRAY)
        return pending_error(t, "json", "params must be a JSON array");
    struct pending *q = new_pending(t, P_PLAIN);
    uint32_t id = q->msgid;
    send_request(t, q, method ? method : "", p.via.array.ptr, p.via.array.size);
    run_idle(t);
    return id;
}

uint32_t gst_call_async(gst *t, const char *server, const char *req, int64_t timeout_ms)
{
    if (!begin(t))
        return 0;
    char why[WHY];
    msgpack_object params[3] = {server_ref(server)};
    if (!parse_value(t, req, &params[1], why, sizeof why))
        return pending_error(t, "json", why);
    params[2] = timeout_obj(timeout_ms);
    struct pending *q = new_pending(t, P_PLAIN);
    uint32_t id = q->msgid;
    send_request(t, q, "call", params, 3);
    run_idle(t);
    return id;
}

gst_result gst_answer(gst *t, uint32_t handle)
{
    gst_result none = {"badarg", "null"};
    if (!begin(t))
        return none;
    run_idle(t);
    struct pending *p = handle ? find_pending(t, handle) : NULL;
    if (p == NULL || p->discard || p->kind != P_PLAIN)
        return result_of(t, "badarg", dup_str("\"no such handle, or answered already\""));
    if (!p->answered) {
        msgpack_object s = str_obj("not answered yet: advance the clock and ask again");
        return result_of(t, "no_reply", dump(&s));
    }
    return take(t, p);
}

/* ---- monitors --------------------------------------------------------------- */

uint64_t gst_monitor(gst *t, const char *server)
{
    gst_result r = one(t, "monitor", server_ref(server));
    if (r.error) {
        FAIL("gst_monitor %s: %s %s", server, r.error, r.value);
        return 0;
    }
    return strtoull(r.value, NULL, 10);
}

const char *gst_next_down(gst *t)
{
    run_idle(t);
    for (size_t i = 0; i < t->ndowns; i++)
        if (!t->downs[i].read) {
            t->downs[i].read = true;
            return hold(t, dup_str(t->downs[i].json));
        }
    return NULL;
}

const char *gst_down_reason(gst *t, uint64_t ref)
{
    run_idle(t);
    for (size_t i = 0; i < t->ndowns; i++)
        if (t->downs[i].ref == ref)
            return hold(t, dup_str(t->downs[i].reason));
    return NULL;
}

static bool is_id(const char *s, uint64_t *id)
{
    msgpack_object o = server_ref(s);
    *id = o.via.u64;
    return o.type == MSGPACK_OBJECT_POSITIVE_INTEGER;
}

const char *gst_exit_reason(gst *t, const char *server)
{
    run_idle(t);
    uint64_t id;
    bool by_id = is_id(server, &id);
    for (size_t i = t->nstarted; i-- > 0;) {
        struct started *s = &t->started[i];
        if (s->id == 0)
            continue; /* its start failed */
        if (by_id ? s->id == id : s->name && server && strcmp(s->name, server) == 0)
            return s->reason ? hold(t, dup_str(s->reason)) : NULL;
    }
    return NULL;
}

bool gst_alive(gst *t, const char *server)
{
    run_idle(t);
    msgpack_object ref = server_ref(server);
    struct server *s = server_lookup(&ref);
    return s != NULL && s->status != SERVER_ENDED;
}

/* ---- the inbox -------------------------------------------------------------- */

static const struct gs_api *inbox_api;

static void inbox_keep(gs_server *self, void **state, const char *tag, const gs_value *tagval,
                       const gs_value *v)
{
    (void)self;
    struct inbox *b = *state;
    if (tag == NULL) {
        q_push(&b->q, dump(v));
        return;
    }
    gs_value items[3] = {gs_str(tag)};
    uint32_t n = 1;
    if (tagval)
        items[n++] = *tagval;
    items[n++] = *v;
    gs_value a = gs_array(items, n);
    q_push(&b->q, dump(&a));
}

static gs_result inbox_init(gs_server *self, const gs_value *args, void **state)
{
    (void)args;
    if (current == NULL)
        return gs_stop(gs_str("no harness"));
    gst *t = current;
    struct inbox *b = xcalloc(1, sizeof *b);
    b->id = inbox_api->self_id(self);
    b->name = dup_str(inbox_api->self_name(self));
    t->inboxes = grow(t->inboxes, &t->capinboxes, t->ninboxes, sizeof *t->inboxes);
    t->inboxes[t->ninboxes++] = b;
    *state = b;
    return gs_ok();
}

static gs_result inbox_call(gs_server *self, const gs_value *req, gs_from from, void **state)
{
    uint64_t tag;
    if (gs_is_tuple(req, "$gst_reply", 3) && gs_get_uint(gs_at(req, 1), &tag)) {
        gs_from to = {tag};
        return gs_reply(gs_bool(inbox_api->reply(self, to, *gs_at(req, 2)) == 0));
    }
    gs_value tagv = gs_uint(from.id);
    inbox_keep(self, state, "$gen_call", &tagv, req);
    return gs_noreply();
}

static gs_result inbox_cast(gs_server *self, const gs_value *req, void **state)
{
    inbox_keep(self, state, "$gen_cast", NULL, req);
    return gs_noreply();
}

static gs_result inbox_info(gs_server *self, const gs_value *msg, void **state)
{
    inbox_keep(self, state, NULL, NULL, msg);
    return gs_noreply();
}

static void inbox_terminate(gs_server *self, const gs_value *reason, void **state)
{
    (void)self, (void)reason;
    struct inbox *b = *state;
    b->ended = true; /* the harness keeps what it holds */
}

static const gs_module inbox_module = {
    .abi = GS_ABI_VERSION,
    .size = sizeof(gs_module),
    .api = &inbox_api,
    .name = "gst-inbox",
    .vsn = 1,
    .init = inbox_init,
    .handle_call = inbox_call,
    .handle_cast = inbox_cast,
    .handle_info = inbox_info,
    .terminate = inbox_terminate,
};

uint64_t gst_inbox(gst *t, const char *name)
{
    gst_result r = gst_start(t, "gst-inbox", name, NULL, NULL);
    if (r.error) {
        FAIL("gst_inbox %s: %s %s", name ? name : "(anonymous)", r.error, r.value);
        return 0;
    }
    return strtoull(r.value, NULL, 10);
}

static struct inbox *find_inbox(gst *t, const char *which)
{
    uint64_t id;
    bool by_id = is_id(which, &id);
    for (size_t i = t->ninboxes; i-- > 0;) {
        struct inbox *b = t->inboxes[i];
        if (by_id ? b->id == id : b->name && which && strcmp(b->name, which) == 0)
            return b;
    }
    return NULL;
}

const char *gst_next_info(gst *t, const char *inbox)
{
    run_idle(t);
    struct inbox *b = find_inbox(t, inbox);
    if (b == NULL) {
        FAIL("gst_next_info: no inbox %s", inbox ? inbox : "(null)");
        return NULL;
    }
    return hold(t, q_pop(&b->q));
}

size_t gst_info_count(gst *t, const char *inbox)
{
    run_idle(t);
    struct inbox *b = find_inbox(t, inbox);
    return b ? b->q.n : 0;
}

bool gst_inbox_reply(gst *t, const char *inbox, uint64_t tag, const char *reply)
{
    if (!begin(t))
        return false;
    struct inbox *b = find_inbox(t, inbox);
    char why[WHY];
    msgpack_object v;
    if (b == NULL || !parse_value(t, reply, &v, why, sizeof why)) {
        FAIL("gst_inbox_reply: %s", b == NULL ? "no such inbox" : why);
        return false;
    }
    msgpack_object items[3] = {
        str_obj("$gst_reply"), {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = tag}, v};
    msgpack_object params[3] = {{.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = b->id},
                                {.type = MSGPACK_OBJECT_ARRAY, .via.array = {3, items}},
                                timeout_obj(GST_DEFAULT)};
    gst_result r = request(t, "call", params, 3);
    return r.error == NULL && strcmp(r.value, "true") == 0;
}

/* ---- modules ------------------------------------------------------------------ */

bool gst_add_module(gst *t, const gs_module *desc)
{
    if (!begin(t))
        return false;
    char err[512];
    if (desc == NULL || module_add_builtin(desc, err, sizeof err) == NULL) {
        FAIL("gst_add_module: %s", desc ? err : "no descriptor");
        return false;
    }
    return true;
}

/* ---- lifecycle ------------------------------------------------------------------ */

static int env_level(void)
{
    const char *s = getenv("GSD_TEST_LOG");
    if (s == NULL || *s == '\0')
        return LOG_WARN;
    return atoi(s);
}

gst *gst_new(const char *module_dirs)
{
    if (current) {
        FAIL("gst_new: another harness is live (one at a time: gst_free it first)");
        return current;
    }
    vclock_start();
    gst *t = xcalloc(1, sizeof *t);
    t->t0_ns = vclock_ns();
    snprintf(t->dir, sizeof t->dir, "%s/gst-modules-XXXXXX",
             getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (strlen(t->dir) + 1 >= sizeof t->dir)
        snprintf(t->dir, sizeof t->dir, "/tmp/gst-modules-XXXXXX");
    if (mkdtemp(t->dir) == NULL) {
        FAIL("gst_new: mkdtemp %s: %s", t->dir, strerror(errno));
        t->dir[0] = '\0';
    } else
        chmod(t->dir, 0755);
    if (module_dirs == NULL)
        module_dirs = getenv("GSD_TEST_MODULES");
    if (module_dirs == NULL || *module_dirs == '\0')
        module_dirs = ".";
    size_t len = strlen(t->dir) + strlen(module_dirs) + 2;
    char *dirs = xmalloc(len);
    snprintf(dirs, len, "%s:%s", t->dir, module_dirs);

    signal(SIGPIPE, SIG_IGN);
    log_level = env_level();
    limits_init();
    shutting_down = false;
    loop_init();
    sched_init();
    module_set_dirs(dirs);
    free(dirs);
    workers_enabled = false; /* a worker would be this test program again */
    msgpack_zone_init(&t->zone, 4096);
    msgpack_unpacker_init(&t->up, 65536);
    current = t;

    char err[512];
    if (module_add_builtin(&inbox_module, err, sizeof err) == NULL)
        FAIL("gst_new: %s", err);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
        FAIL("gst_new: socketpair: %s", strerror(errno));
        return t;
    }
    t->fd = sv[1];
    conn_new(sv[0]);
    run_idle(t);
    return t;
}

static void end_one(struct server *s, void *arg)
{
    (void)arg;
    if (s->status != SERVER_ENDED)
        server_end(s, enc_shutdown, NULL);
    scratch_reset();
}

void gst_forget(gst *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nheld; i++)
        free(t->held[i]);
    t->nheld = 0;
}

void gst_set_log_level(gst *t, int level)
{
    (void)t;
    log_level = level;
}

/* The harness's module directory and what gst_upgrade put in it. */
static void remove_dir(const char *dir)
{
    if (*dir == '\0')
        return;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[sizeof((gst *)0)->dir + 300];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

void gst_free(gst *t)
{
    if (t == NULL)
        return;
    if (t != current) {
        FAIL("gst_free: not the live harness");
        return;
    }
    shutting_down = true; /* no restarts */
    registry_foreach(true, end_one, NULL);
    settle(t, false);
    close(t->fd);
    for (int i = 0; i < 4; i++)
        event_base_loop(loop_base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    conn_close_all();
    registry_foreach(true, end_one, NULL);
    for (int i = 0; i < 4; i++)
        event_base_loop(loop_base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    shutdown_free();
    waiter_free_events();
    supervise_free();
    sched_free();
    scratch_free();
    module_unload_all();
    loop_free();
    shutting_down = false;
    remove_dir(t->dir);

    msgpack_unpacker_destroy(&t->up);
    msgpack_zone_destroy(&t->zone);
    for (size_t i = 0; i < t->npend; i++) {
        free(t->pend[i].error);
        free(t->pend[i].value);
    }
    free(t->pend);
    for (size_t i = 0; i < t->nstarted; i++) {
        free(t->started[i].name);
        free(t->started[i].reason);
    }
    free(t->started);
    for (size_t i = 0; i < t->ndowns; i++) {
        free(t->downs[i].json);
        free(t->downs[i].reason);
    }
    free(t->downs);
    for (size_t i = 0; i < t->ninboxes; i++) {
        q_free(&t->inboxes[i]->q);
        free(t->inboxes[i]->name);
        free(t->inboxes[i]);
    }
    free(t->inboxes);
    gst_forget(t);
    free(t->held);
    free(t);
    current = NULL;
}

/* ---- assertions ------------------------------------------------------------------ */

/* Text as a JSON value, read as requests are: NULL if it is not one. */
static json_t *as_json(const char *text)
{
    if (text == NULL)
        return NULL;
    json_error_t err;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (j)
        return j;
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '[' || *p == '{' || *p == '"')
        return NULL;
    return json_string(text);
}

bool gst_json_equal(const char *actual, const char *expected)
{
    if (actual == NULL || expected == NULL)
        return actual == expected;
    json_t *a = as_json(actual), *b = as_json(expected);
    bool eq = a && b && json_equal(a, b);
    json_decref(a);
    json_decref(b);
    return eq;
}

bool gst_check_value(const char *file, int line, gst_result r, const char *expected)
{
    if (r.error) {
        fail(file, line, "expected %s, got error %s: %s", expected, r.error, r.value);
        return false;
    }
    if (!gst_json_equal(r.value, expected)) {
        fail(file, line, "expected %s, got %s", expected, r.value);
        return false;
    }
    return true;
}

bool gst_check_error(const char *file, int line, gst_result r, const char *code, const char *detail)
{
    if (r.error == NULL || strcmp(r.error, code) != 0) {
        fail(file, line, "expected error %s, got %s %s", code,
             r.error ? r.error : "success:", r.value ? r.value : "");
        return false;
    }
    if (detail && !gst_json_equal(r.value, detail)) {
        fail(file, line, "expected error %s with detail %s, got detail %s", code, detail, r.value);
        return false;
    }
    return true;
}

bool gst_check_info(const char *file, int line, gst *t, const char *inbox, const char *expected)
{
    run_idle(t);
    if (find_inbox(t, inbox) == NULL) {
        fail(file, line, "no inbox %s", inbox ? inbox : "(null)");
        return false;
    }
    const char *got = gst_next_info(t, inbox);
    if (expected == NULL && got != NULL) {
        fail(file, line, "expected no message in %s, got %s", inbox, got);
        return false;
    }
    if (expected && got == NULL) {
        fail(file, line, "expected %s in %s, got nothing", expected, inbox);
        return false;
    }
    if (expected && !gst_json_equal(got, expected)) {
        fail(file, line, "expected %s in %s, got %s", expected, inbox, got);
        return false;
    }
    return true;
}

bool gst_check_exit(const char *file, int line, gst *t, const char *server, const char *reason)
{
    const char *got = gst_exit_reason(t, server);
    if (reason == NULL && got != NULL) {
        fail(file, line, "expected %s running, it ended: %s", server, got);
        return false;
    }
    if (reason && got == NULL) {
        fail(file, line, "expected %s ended with %s, it %s", server, reason,
             gst_alive(t, server) ? "runs" : "is not known to the harness");
        return false;
    }
    if (reason && !gst_json_equal(got, reason)) {
        fail(file, line, "expected %s ended with %s, got %s", server, reason, got);
        return false;
    }
    return true;
}

uint64_t gst_start_ok_at(const char *file, int line, gst *t, const char *module, const char *name,
                         const char *args, const char *options)
{
    gst_result r = gst_start(t, module, name, args, options);
    if (r.error) {
        fail(file, line, "start %s %s: %s %s", module, name ? name : "(anonymous)", r.error,
             r.value);
        return 0;
    }
    return strtoull(r.value, NULL, 10);
}

const char *gst_call_ok_at(const char *file, int line, gst *t, const char *server,
                           const char *request)
{
    gst_result r = gst_call(t, server, request);
    if (r.error) {
        fail(file, line, "call %s %s: %s %s", server, request, r.error, r.value);
        return NULL;
    }
    return r.value;
}
