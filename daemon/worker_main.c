/* worker_main.c — a worker process (gsd --worker): runs the callbacks of
 * the servers the daemon hosts in it, one message at a time, and asks the
 * daemon for every service (wlink.h). It holds no client socket, and it
 * holds no state of the daemon's but what it is sent. */
#include "gsd.h"
#include "wlink.h"

#include <dlfcn.h>
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A ref this server holds: a deferred call's caller, a timer, a monitor. */
enum wref_kind { REF_FROM, REF_TIMER, REF_CANCELLED, REF_MONITOR };
struct wref {
    uint64_t ref;
    enum wref_kind kind;
    int64_t deadline; /* REF_FROM: the caller's, -1 none */
    UT_hash_handle hh;
};

struct wserver {
    uint64_t sid;
    char *name;
    struct wmod *dl;       /* its code */
    const gs_module *desc; /* NULL: its module could not be loaded (why) */
    char why[200];
    void *state;
    bool running;  /* init returned ok: terminate runs at the end */
    bool stopping; /* a callback ended it: its next messages are not run */
    struct wref *refs;
    /* A reload under way: the new code and the state built on it. */
    struct wmod *next_dl;
    const gs_module *next_desc;
    void *next_state;
    uint32_t old_vsn;
    unsigned nfroms, froms_swept; /* deferred callers held, and after the last sweep */
    UT_hash_handle hh;
};

static struct wserver *hosted;
static uint64_t my_no;
static uint32_t ref_seq;
static struct wlink_mark *mark;
static struct gsp_buf out;
static msgpack_packer pk;
static int fdq[256]; /* module files received, not yet hosted */
static unsigned fdq_head, fdq_len;

/* The call being handled, answered or not (no hash entry for it unless
 * its callback defers the answer). */
static struct {
    uint64_t from;
    int64_t deadline;
    bool replied;
} cur;

#define W(self) ((struct wserver *)(self))

static _Noreturn void die(const char *what)
{
    fprintf(stderr, "gsd worker %llu: %s: %s\n", (unsigned long long)my_no, what, strerror(errno));
    exit(1);
}

static void write_all(void)
{
    size_t off = 0;
    while (off < out.len) {
        ssize_t n = write(WLINK_FD_SOCK, out.data + off, out.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            exit(0); /* the daemon has gone: so do we */
        off += (size_t)n;
    }
    out.len = 0;
    if (out.cap > (1u << 20))
        gsp_buf_free(&out);
}

static msgpack_packer *frame(enum wlink_op op, uint64_t sid, uint32_t n)
{
    msgpack_pack_array(&pk, n);
    msgpack_pack_uint32(&pk, op);
    msgpack_pack_uint64(&pk, sid);
    return &pk;
}

/* Packs v, or false (and packs nothing) if it is over the message limits. */
static bool pack_value(const gs_value *v)
{
    size_t len;
    const uint8_t *p = value_encode(v, &len);
    if (p == NULL)
        return false;
    gsp_pack_raw(&pk, p, len);
    return true;
}

/* A value a callback handed over: over the limits, the string `instead`,
 * and a log line once the frame it is in is complete (note_flush). */
static const char *noted;
static void pack_or(const gs_value *v, const char *instead)
{
    if (pack_value(v))
        return;
    gsp_pack_str(&pk, instead);
    noted = instead;
}

static void note_flush(uint64_t sid)
{
    if (noted == NULL)
        return;
    char line[160];
    int n = snprintf(line, sizeof line, "a value over the message limits became \"%s\"", noted);
    noted = NULL;
    frame(WL_LOG, sid, 4);
    msgpack_pack_int(&pk, LOG_ERR);
    gsp_pack_strn(&pk, line, (size_t)n);
}

static int64_t clock_last; /* as the last callback ended */
static int64_t clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- refs -------------------------------------------------------------- */

static struct wref *ref_find(struct wserver *ws, uint64_t ref)
{
    struct wref *r;
    HASH_FIND(hh, ws->refs, &ref, sizeof ref, r);
    return r;
}

static void ref_drop(struct wserver *ws, struct wref *r)
{
    if (r->kind == REF_FROM)
        ws->nfroms--;
    HASH_DEL(ws->refs, r);
    free(r);
}

static bool expired(int64_t deadline)
{
    return deadline >= 0 && now_ms() >= deadline;
}

/* Callers that gave up are forgotten once they are as many as were held
 * at the last sweep: amortised O(1) per deferred call. */
static void sweep(struct wserver *ws)
{
    if (ws->nfroms < 2 * ws->froms_swept + 64)
        return;
    struct wref *r, *tmp;
    HASH_ITER(hh, ws->refs, r, tmp)
    {
        if (r->kind == REF_FROM && expired(r->deadline))
            ref_drop(ws, r);
    }
    ws->froms_swept = ws->nfroms;
}

static void ref_add(struct wserver *ws, uint64_t ref, enum wref_kind kind, int64_t deadline)
{
    struct wref *r = xcalloc(1, sizeof *r);
    r->ref = ref;
    r->kind = kind;
    r->deadline = deadline;
    HASH_ADD(hh, ws->refs, ref, sizeof r->ref, r);
    if (kind == REF_FROM) {
        ws->nfroms++;
        sweep(ws);
    }
}

static uint64_t new_ref(void)
{
    return wlink_ref(my_no, ++ref_seq);
}

/* ---- the services (struct gs_api) -------------------------------------- */

static void w_log(gs_server *self, int level, const char *fmt, va_list ap)
{
    char line[900];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    frame(WL_LOG, W(self)->sid, 4);
    msgpack_pack_int(&pk, level);
    gsp_pack_strn(&pk, line, n < 0 ? 0 : (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static uint64_t w_self_id(gs_server *self)
{
    return W(self)->sid;
}

static const char *w_self_name(gs_server *self)
{
    return W(self)->name;
}

/* The deadline of a caller still waiting; false if it is not. Takes the
 * caller's entry away when take is set (it is being answered). */
static bool waiting(struct wserver *ws, gs_from from, int64_t *deadline, bool take)
{
    if (from.id == cur.from && !cur.replied) {
        *deadline = cur.deadline;
        if (take)
            cur.replied = true;
        return !expired(cur.deadline);
    }
    struct wref *r = ref_find(ws, from.id);
    if (r == NULL || r->kind != REF_FROM)
        return false;
    *deadline = r->deadline;
    bool live = !expired(r->deadline);
    if (take || !live)
        ref_drop(ws, r);
    return live;
}

static int w_reply(gs_server *self, gs_from from, gs_value reply)
{
    int64_t deadline;
    if (!waiting(W(self), from, &deadline, true))
        return -1;
    frame(WL_REPLY, W(self)->sid, 4);
    msgpack_pack_uint64(&pk, from.id);
    pack_or(&reply, "reply_too_large");
    note_flush(W(self)->sid);
    return 0;
}

static int64_t w_from_deadline(gs_server *self, gs_from from)
{
    int64_t deadline;
    if (!waiting(W(self), from, &deadline, false))
        return 0;
    if (deadline < 0)
        return GS_INFINITY;
    int64_t left = deadline - now_ms();
    return left > 0 ? left : 0;
}

static bool w_from_waiting(gs_server *self, gs_from from)
{
    int64_t deadline;
    return waiting(W(self), from, &deadline, false);
}

/* A frame of a request with values: rolled back if a value is over the
 * limits, so that nothing is sent and the service fails as in the daemon. */
static size_t mark_at;
static void begin(void)
{
    mark_at = out.len;
}
static void rollback(void)
{
    out.len = mark_at;
}

static uint64_t w_timer_start(gs_server *self, uint64_t ms, gs_value msg)
{
    uint64_t ref = new_ref();
    begin();
    frame(WL_TIMER, W(self)->sid, 5);
    msgpack_pack_uint64(&pk, ref);
    msgpack_pack_uint64(&pk, ms);
    if (!pack_value(&msg)) {
        rollback();
        return 0;
    }
    ref_add(W(self), ref, REF_TIMER, -1);
    return ref;
}

static int w_timer_cancel(gs_server *self, uint64_t ref)
{
    struct wref *r = ref_find(W(self), ref);
    if (r == NULL || r->kind != REF_TIMER)
        return -1;
    r->kind = REF_CANCELLED; /* its message, if already on its way, is dropped */
    frame(WL_CANCEL, W(self)->sid, 3);
    msgpack_pack_uint64(&pk, ref);
    return 0;
}

static int post(gs_server *self, enum wlink_op op, gs_value server, gs_value v)
{
    begin();
    frame(op, W(self)->sid, 4);
    if (!pack_value(&server) || !pack_value(&v)) {
        rollback();
        return -1;
    }
    return 0;
}

static int w_cast(gs_server *self, gs_value server, gs_value request)
{
    return post(self, WL_CAST, server, request);
}

static int w_send(gs_server *self, gs_value server, gs_value msg)
{
    return post(self, WL_SEND, server, msg);
}

static uint64_t w_call(gs_server *self, gs_value server, gs_value request, int64_t timeout_ms)
{
    uint64_t ref = new_ref();
    begin();
    frame(WL_CALL, W(self)->sid, 6);
    msgpack_pack_uint64(&pk, ref);
    if (!pack_value(&server) || !pack_value(&request)) {
        /* The daemon answers it as it answers a call over the limits. */
        rollback();
        frame(WL_CALL, W(self)->sid, 6);
        msgpack_pack_uint64(&pk, ref);
        msgpack_pack_nil(&pk);
        msgpack_pack_nil(&pk);
    }
    msgpack_pack_int64(&pk, timeout_ms);
    return ref;
}

static uint64_t w_monitor(gs_server *self, gs_value server)
{
    uint64_t ref = new_ref();
    begin();
    frame(WL_MONITOR, W(self)->sid, 4);
    msgpack_pack_uint64(&pk, ref);
    if (!pack_value(&server)) {
        rollback();
        gs_value none = gs_nil(); /* no such server: its down comes at once */
        frame(WL_MONITOR, W(self)->sid, 4);
        msgpack_pack_uint64(&pk, ref);
        pack_value(&none);
    }
    ref_add(W(self), ref, REF_MONITOR, -1);
    return ref;
}

static int w_demonitor(gs_server *self, uint64_t ref)
{
    struct wref *r = ref_find(W(self), ref);
    if (r == NULL || r->kind != REF_MONITOR)
        return -1;
    ref_drop(W(self), r);
    frame(WL_DEMONITOR, W(self)->sid, 3);
    msgpack_pack_uint64(&pk, ref);
    return 0;
}

static const struct gs_api worker_api = {
    .size = sizeof(struct gs_api),
    .log = w_log,
    .self_id = w_self_id,
    .self_name = w_self_name,
    .reply = w_reply,
    .from_deadline = w_from_deadline,
    .from_waiting = w_from_waiting,
    .timer_start = w_timer_start,
    .timer_cancel = w_timer_cancel,
    .cast = w_cast,
    .send = w_send,
    .call = w_call,
    .monitor = w_monitor,
    .demonitor = w_demonitor,
    .scratch_alloc = api_scratch_alloc,
    .value_copy = api_value_copy,
    .value_free = api_value_free,
    .value_equal = api_value_equal,
    .now = api_now,
};

/* ---- hosting ----------------------------------------------------------- */

static struct wserver *find(uint64_t sid)
{
    struct wserver *ws;
    HASH_FIND(hh, hosted, &sid, sizeof sid, ws);
    return ws;
}

/* A module's code, loaded once per version however many servers run it.
 * Its file stays open while it is mapped: dlopen knows a loaded object by
 * its /proc/self/fd name first, and a closed descriptor's number (so its
 * name) comes back for the next file. */
struct wmod {
    dev_t dev;
    ino_t ino;
    int fd;
    void *dl;
    const gs_module *desc;
    unsigned refs;
    struct wmod *next;
};
static struct wmod *wmods;

static void wmod_release(struct wmod *m)
{
    if (m == NULL || --m->refs)
        return;
    struct wmod **p = &wmods;
    while (*p != m)
        p = &(*p)->next;
    *p = m->next;
    dlclose(m->dl);
    close(m->fd);
    free(m);
}

/* The module file the daemon passed next, loaded; NULL with why if not. */
static const gs_module *load_next(struct wmod **out, char *why, size_t n)
{
    *out = NULL;
    if (fdq_len == 0) {
        snprintf(why, n, "its module's file did not arrive");
        return NULL;
    }
    int fd = fdq[fdq_head];
    fdq_head = (fdq_head + 1) % (sizeof fdq / sizeof fdq[0]);
    fdq_len--;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(why, n, "fstat: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    struct wmod *m;
    for (m = wmods; m; m = m->next)
        if (m->dev == st.st_dev && m->ino == st.st_ino)
            break;
    if (m) {
        close(fd);
        m->refs++;
        *out = m;
        return m->desc;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    const gs_module *desc = dl ? dlsym(dl, GS_MODULE_SYMBOL) : NULL;
    if (desc == NULL) {
        snprintf(why, n, "%s", dl ? "no " GS_MODULE_SYMBOL : dlerror());
        if (dl)
            dlclose(dl);
        close(fd);
        return NULL;
    }
    *desc->api = &worker_api;
    m = xcalloc(1, sizeof *m);
    *m = (struct wmod){st.st_dev, st.st_ino, fd, dl, desc, 1, wmods};
    wmods = m;
    *out = m;
    return desc;
}

static void do_host(uint64_t sid, const gs_value *name)
{
    struct wserver *ws = xcalloc(1, sizeof *ws);
    ws->sid = sid;
    const char *s;
    uint32_t len;
    if (gs_get_str(name, &s, &len))
        ws->name = xstrndup(s, len);
    HASH_ADD(hh, hosted, sid, sizeof ws->sid, ws);
    ws->desc = load_next(&ws->dl, ws->why, sizeof ws->why);
}

static void set_mark(uint64_t sid, enum callback cb)
{
    mark->sid = sid;
    mark->cb = cb;
}

/* Downs for this server's monitors end them: the ref is forgotten. */
static void saw_info(struct wserver *ws, const gs_value *v)
{
    const gs_value *ref = gs_at(v, 1);
    uint64_t r;
    struct wref *e;
    if (gs_is_tuple(v, "down", 4) && gs_get_uint(ref, &r) && (e = ref_find(ws, r)) &&
        e->kind == REF_MONITOR)
        ref_drop(ws, e);
}

/* As the daemon logs a message no handle_info takes. */
static void unexpected(struct wserver *ws, const gs_value *v)
{
    char text[128], line[200];
    int n = snprintf(line, sizeof line, "unexpected message ignored: %s",
                     value_text(text, sizeof text, v));
    frame(WL_LOG, ws->sid, 4);
    msgpack_pack_int(&pk, LOG_WARN);
    gsp_pack_strn(&pk, line, n < 0 ? 0 : (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* One callback and its RESULT; true, with *cont set, if the result asks
 * for handle_continue, which runs next (the daemon expects its result). */
static bool run_callback(struct wserver *ws, uint64_t kind, uint64_t from, int64_t deadline,
                         uint64_t tref, const gs_value *v, gs_value *cont)
{
    const gs_module *d = ws->desc;
    gs_result r = gs_noreply();
    int64_t took = 0;
    if (kind == MSG_INFO && tref) {
        struct wref *t = ref_find(ws, tref);
        bool cancelled = t && t->kind == REF_CANCELLED;
        if (t)
            ref_drop(ws, t);
        if (cancelled)
            goto result; /* gs_timer_cancel said it would not come */
    }
    if (kind == MSG_INFO)
        saw_info(ws, v);
    cur.from = kind == MSG_CALL ? from : 0;
    cur.deadline = deadline;
    cur.replied = false;
    int64_t t0 = clock_us();
    set_mark(ws->sid, msg_callbacks[kind]);
    if (d == NULL) {
        gs_value why[2] = {gs_str("module"), gs_str(ws->why)};
        r = gs_stop(gs_array(why, 2));
    } else {
        if (kind == MSG_STATE && d->format_state) {
            r = gs_reply(d->format_state((gs_server *)ws, ws->state));
            r.has_reply = true;
        } else if (kind != MSG_STATE && !module_run(d, (gs_server *)ws, (enum msg_kind)kind, v,
                                                    (gs_from){from}, &ws->state, &r))
            unexpected(ws, v);
    }
    set_mark(ws->sid, CB_NONE);
    clock_last = clock_us();
    took = clock_last - t0;
    if (kind != MSG_STATE) {
        bool allowed = result_allowed((enum msg_kind)kind, &r);
        if (!allowed || r.action == GS_STOP || (kind == MSG_INIT && r.action != GS_OK))
            ws->stopping = true;
        if (kind == MSG_INIT && r.action == GS_OK && allowed)
            ws->running = true;
        if (kind == MSG_CALL && !cur.replied && allowed && r.action == GS_NOREPLY)
            ref_add(ws, from, REF_FROM, deadline); /* answered later, with gs_reply_to */
        if (allowed && !ws->stopping && result_continues(&r))
            *cont = r.cont;
        else if (allowed && r.hibernate && !ws->stopping && d && d->hibernate) {
            set_mark(ws->sid, CB_HIBERNATE);
            d->hibernate((gs_server *)ws, &ws->state);
            set_mark(ws->sid, CB_NONE);
        }
    }
    cur.from = 0;
result:;
    bool reply = r.action == GS_REPLY || (r.action == GS_STOP && r.has_reply);
    bool more = kind != MSG_STATE && result_allowed((enum msg_kind)kind, &r) && !ws->stopping &&
                result_continues(&r);
    bool tmsg = r.has_timeout_msg && !more && !r.hibernate && r.timeout_ms >= 0;
    /* Fixed-width where it can be, in three writes for the usual result
     * (head, reply, tail) rather than nine. */
    uint8_t head[13] = {0x99, WL_RESULT}, *h = wlink_put_int(head + 2, (int64_t)ws->sid);
    uint8_t tail[24], *t = tail; /* tail: at most 21 */
    *h++ = (uint8_t)r.action;    /* a positive fixint: actions are few */
    *h++ = (r.has_reply ? WL_HAS_REPLY : 0) | (r.hibernate ? WL_HIBERNATE : 0) |
           (more ? WL_CONTINUE : 0) | (tmsg ? WL_TIMEOUT_MSG : 0) |
           (r.timeout_at ? WL_TIMEOUT_AT : 0);
    gsp_pack_raw(&pk, head, (size_t)(h - head));
    if (reply)
        pack_or(&r.reply, kind == MSG_STATE ? "state_too_large" : "reply_too_large");
    else
        *t++ = 0xc0;
    if (r.action == GS_STOP) {
        gsp_pack_raw(&pk, tail, (size_t)(t - tail));
        t = tail;
        pack_or(&r.reason, "reason_too_large");
    } else
        *t++ = 0xc0;
    t = wlink_put_int(t, r.timeout_ms);
    if (tmsg) {
        gsp_pack_raw(&pk, tail, (size_t)(t - tail));
        t = tail;
        pack_or(&r.timeout_msg, "timeout_msg_too_large");
    } else
        *t++ = 0xc0;
    t = wlink_put_int(t, took);
    gsp_pack_raw(&pk, tail, (size_t)(t - tail));
    note_flush(ws->sid);
    return more;
}

static void do_run(struct wserver *ws, uint64_t kind, uint64_t from, int64_t deadline,
                   uint64_t tref, const gs_value *v)
{
    if (ws->stopping || kind >= MSG_KINDS || kind == MSG_STOP || kind == MSG_CONTINUE)
        return; /* the daemon has ended it, or is about to: no result is due */
    gs_value term, next;
    /* A continue runs at once, before any other frame is read, as the
     * daemon expects (server_worker_result). term lives in the scratch, or
     * the module's memory, until the frame is done. */
    if (!run_callback(ws, kind, from, deadline, tref, v, &term))
        return;
    while (run_callback(ws, MSG_CONTINUE, 0, -1, 0, &term, &next))
        term = next;
}

/* The new state on the new code, beside the old (upgrade.c's convert, in
 * the worker). */
static void do_upgrade(struct wserver *ws, uint64_t old_vsn)
{
    char why[200];
    ws->old_vsn = (uint32_t)old_vsn;
    ws->next_desc = load_next(&ws->next_dl, why, sizeof why);
    gs_value reason = gs_nil();
    gs_value detail[2] = {gs_str("module"), gs_str(why)};
    bool ok = ws->next_desc != NULL;
    if (!ok)
        reason = gs_array(detail, 2);
    ws->next_state = ws->state;
    gs_value vsns[3] = {gs_str("no_code_change"), gs_uint(ws->old_vsn), gs_nil()};
    if (ok && ws->running && !ws->next_desc->code_change &&
        desc_state_vsn(ws->next_desc) != desc_state_vsn(ws->desc)) {
        ok = false; /* it would read one layout as another */
        vsns[2] = gs_uint(ws->next_desc->vsn);
        reason = gs_array(vsns, 3);
    } else if (ok && ws->running && ws->next_desc->code_change) {
        gs_value extra = gs_nil();
        set_mark(ws->sid, CB_CODE_CHANGE);
        gs_result r =
            ws->next_desc->code_change((gs_server *)ws, ws->old_vsn, &ws->next_state, &extra);
        set_mark(ws->sid, CB_NONE);
        if (r.action != GS_OK) {
            ok = false;
            reason = r.action == GS_ERROR ? r.reason : gs_str("bad_return_value");
            ws->next_state = ws->state; /* whatever it built, it freed */
        }
    }
    frame(WL_PREPARED, ws->sid, 4);
    if (ok)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    pack_or(&reason, "reason_too_large");
    note_flush(ws->sid);
    if (!ok && ws->next_dl) {
        wmod_release(ws->next_dl);
        ws->next_dl = NULL;
    }
}

static void do_switch(struct wserver *ws, bool commit)
{
    if (ws->next_dl == NULL)
        return; /* refused here already */
    const gs_module *to = ws->next_desc;
    set_mark(ws->sid, CB_FREE_STATE);
    if (commit) {
        if (ws->next_state != ws->state)
            to->free_state((gs_server *)ws, ws->old_vsn, ws->state);
        ws->state = ws->next_state;
        wmod_release(ws->dl);
        ws->dl = ws->next_dl;
        ws->desc = to;
    } else {
        if (ws->next_state != ws->state)
            to->free_state((gs_server *)ws, to->vsn, ws->next_state);
        wmod_release(ws->next_dl);
    }
    set_mark(ws->sid, CB_NONE);
    ws->next_dl = NULL;
    ws->next_desc = NULL;
}

static void do_end(struct wserver *ws, const gs_value *reason)
{
    if (ws->next_dl) /* a reload was under way: its new state goes, before terminate frees the old
                      */
        do_switch(ws, false);
    if (ws->running && ws->desc && ws->desc->terminate) {
        set_mark(ws->sid, CB_TERMINATE);
        ws->desc->terminate((gs_server *)ws, reason, &ws->state);
        set_mark(ws->sid, CB_NONE);
    }
    frame(WL_ENDED, ws->sid, 2);
    struct wref *r, *tmp;
    HASH_ITER(hh, ws->refs, r, tmp)
    {
        HASH_DEL(ws->refs, r);
        free(r);
    }
    HASH_DEL(hosted, ws);
    wmod_release(ws->dl);
    free(ws->name);
    free(ws);
}

/* A RUN, the frame of nearly every message: read in place, only its value
 * decoded. */
static bool run_frame(struct gsp_cursor *c, uint32_t n, struct wserver *ws)
{
    uint64_t kind, from, tref;
    int64_t deadline;
    struct gsp_span vs;
    gs_value v;
    if (ws == NULL || n != 7 || !gsp_get_uint(c, &kind) || !gsp_get_uint(c, &from) ||
        !gsp_get_int(c, &deadline) || !gsp_get_uint(c, &tref) || !gsp_get_span(c, &vs) ||
        !scratch_decode(vs, &v))
        return false;
    do_run(ws, kind, from, deadline, tref, &v);
    scratch_reset();
    return true;
}

static void handle(const uint8_t *p, size_t len)
{
    struct gsp_cursor c = {p, p + len};
    uint32_t n;
    uint64_t op0, sid0;
    if (gsp_get_array(&c, &n) && gsp_get_uint(&c, &op0) && gsp_get_uint(&c, &sid0) &&
        op0 == WL_RUN) {
        if (!run_frame(&c, n, find(sid0))) {
            errno = EPROTO;
            die("a RUN frame from the daemon");
        }
        return;
    }
    gs_value f;
    uint64_t op, sid, kind, from;
    if (!gsp_decode(p, len, scratch_zone(), &f) || f.type != MSGPACK_OBJECT_ARRAY ||
        f.via.array.size < 3 || !gs_get_uint(&f.via.array.ptr[0], &op) ||
        !gs_get_uint(&f.via.array.ptr[1], &sid)) {
        errno = EPROTO;
        die("a frame from the daemon");
    }
    const gs_value *a = f.via.array.ptr;
    struct wserver *ws = find(sid);
    if (op == WL_HOST && ws == NULL)
        do_host(sid, &a[2]);
    else if (op == WL_END && ws)
        do_end(ws, &a[2]);
    else if (op == WL_UPGRADE && ws && gs_get_uint(&a[2], &kind))
        do_upgrade(ws, kind);
    else if (op == WL_SWITCH && ws && a[2].type == MSGPACK_OBJECT_BOOLEAN)
        do_switch(ws, a[2].via.boolean);
    else if (op == WL_GONE && ws && gs_get_uint(&a[2], &from)) {
        struct wref *r = ref_find(ws, from);
        if (r && r->kind == REF_FROM)
            ref_drop(ws, r);
    } else if (op == WL_GONE || op == WL_UPGRADE || op == WL_SWITCH)
        ;                  /* ended meanwhile */
    else if (op == WL_END) /* never hosted (its init never came): nothing to end */
        frame(WL_ENDED, sid, 2);
    else {
        errno = EPROTO;
        die("an unexpected frame from the daemon");
    }
    scratch_reset();
}

/* ---- the loop ---------------------------------------------------------- */

/* Reads what the daemon sent, and any module files with it; false at EOF. */
static bool receive(struct gsp_buf *in)
{
    gsp_buf_reserve(in, 64u << 10);
    struct iovec iov = {in->data + in->len, in->cap - in->len};
    union {
        char buf[CMSG_SPACE(sizeof(int) * 64)];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    /* Asleep in poll, not in recvmsg: the daemon reading what this wrote
     * wakes a reader sleeping on the socket for nothing (one more context
     * switch a call). */
    struct pollfd pfd = {WLINK_FD_SOCK, POLLIN, 0};
    while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
        ;
    ssize_t n;
    while ((n = recvmsg(WLINK_FD_SOCK, &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        die("reading from the daemon");
    if (mh.msg_flags & MSG_CTRUNC) { /* a module file lost: the next would be another's */
        errno = EMFILE;
        die("receiving module files");
    }
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        unsigned nfd = (unsigned)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (unsigned i = 0; i < nfd; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
            if (fdq_len == sizeof fdq / sizeof fdq[0]) {
                errno = EMFILE;
                die("module files");
            }
            fdq[(fdq_head + fdq_len++) % (sizeof fdq / sizeof fdq[0])] = fd;
        }
    }
    in->len += (size_t)n;
    return n > 0;
}

/* The configured user, where it is another than the daemon's. */
static void drop_privileges(uid_t uid, gid_t gid)
{
    if (gid != (gid_t)-1 && gid != getgid() && (setgroups(0, NULL) < 0 || setgid(gid) < 0))
        die("setgid");
    if (uid != (uid_t)-1 && uid != getuid() && setuid(uid) < 0)
        die("setuid");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        die("no_new_privs");
}

int worker_main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "gsd --worker is started by the daemon, not by hand\n");
        return 2;
    }
    my_no = strtoull(argv[2], NULL, 10);
    /* A signal to the daemon's process group (Ctrl-C, systemd's stop) is
     * the daemon's to handle: it stops these servers in order. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    pid_t daemon = (pid_t)strtol(argv[3], NULL, 10);
    /* Dies with the daemon, even if the daemon died before this ran. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != daemon)
        return 1;
    drop_privileges((uid_t)strtol(argv[4], NULL, 10), (gid_t)strtol(argv[5], NULL, 10));
    limits.message.max_size = strtoull(argv[6], NULL, 10);
    limits.message.max_depth = (unsigned)strtoul(argv[7], NULL, 10);
    mark = mmap(NULL, sizeof *mark, PROT_READ | PROT_WRITE, MAP_SHARED, WLINK_FD_MARK, 0);
    if (mark == MAP_FAILED)
        die("mapping the mark");
    close(WLINK_FD_MARK);
    gsp_packer_init(&pk, &out);
    struct gsp_buf in = {0};
    struct gsp_framer framer = {0};
    /* The daemon's frames are trusted, and its limits may grow at a reload. */
    struct gsp_limits lim = {SIZE_MAX / 4, GSP_MAX_DEPTH_HARD};
    while (receive(&in)) {
        size_t off = 0, flen;
        int64_t batch = clock_last = clock_us();
        for (;;) {
            enum gsp_scan r = gsp_framer_feed(&framer, in.data + off, in.len - off, &lim, &flen);
            if (r == GSP_SCAN_MORE)
                break;
            if (r != GSP_SCAN_DONE) {
                errno = EPROTO;
                die("framing what the daemon sent");
            }
            handle(in.data + off, flen);
            off += flen;
            /* Results are written a batch at a time, but none waits long
             * behind a slow callback. */
            if (out.len && clock_last - batch > 1000) {
                write_all();
                batch = clock_last;
            }
        }
        gsp_buf_consume(&in, off);
        if (out.len)
            write_all();
    }
    return 0;
}
