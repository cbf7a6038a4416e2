/* dist_in.c — what peers ask of gsd's servers, by registered name: a
 * '$gen_call' becomes a call with a WAIT_DIST waiter, answered to the
 * caller's alias (or pid); a '$gen_cast' a cast; anything else an info; a
 * monitor, a MONITOR_P_EXIT when the server ends (noproc at once when
 * there is none). Only registered names are reachable, and only these. */
#include "dist.h"

#include <stdlib.h>
#include <string.h>

/* A peer's call waiting on a server. */
struct pending {
    uint64_t key;    /* the waiter's ref */
    uint64_t waiter; /* the waiter's id */
    struct node *node;
    bool alias;                          /* tag is [alias|Mref]: answer with ALIAS_SEND to Mref */
    struct gsp_span pid, tag, mref, req; /* in mem: caller, tag, its ref, request (msgpack) */
    struct term_mark *marks;             /* the request's tuples and binaries */
    size_t nmarks;
    uint8_t *mem;
    UT_hash_handle hh;     /* all, by key */
    UT_hash_handle hh_ref; /* node->calls, by mref bytes */
    LIST_ENTRY(pending) link;
};

/* A peer's monitor of a server. */
struct dmon {
    struct node *node;
    struct watched *target;
    struct gsp_span pid, ref, name; /* in mem */
    uint8_t *mem;
    UT_hash_handle hh; /* node->mons, by ref bytes */
    LIST_ENTRY(dmon) link;
    LIST_ENTRY(dmon) target_link;
};

/* The peers' monitors of one server, all nodes together. */
struct watched {
    uint64_t id;
    LIST_HEAD(, dmon) mons;
    UT_hash_handle hh;
};

static struct pending *calls; /* every pending call, by key */
static struct watched *by_id; /* servers peers watch, by id */

static void pending_free(struct pending *pc)
{
    HASH_DEL(calls, pc);
    if (pc->mref.len)
        HASH_DELETE(hh_ref, pc->node->calls, pc);
    LIST_REMOVE(pc, link);
    pc->node->npending--;
    budget_release(sizeof *pc + pc->req.len + pc->pid.len + pc->tag.len);
    free(pc->marks);
    free(pc->mem);
    free(pc);
}

/* The caller has gone (demonitored, or its node): its waiter goes unanswered. */
static void pending_drop(struct pending *pc)
{
    struct waiter *w = waiter_find(pc->waiter);
    if (w) {
        if (w->server && w->server->hosted) /* gs_from_waiting turns false there too */
            worker_caller_gone(w->server, w->id);
        waiter_drop(w);
    }
    pending_free(pc);
}

static void dmon_free(struct dmon *m)
{
    m->node->nmons--;
    HASH_DEL(m->node->mons, m);
    LIST_REMOVE(m, link);
    LIST_REMOVE(m, target_link);
    if (LIST_EMPTY(&m->target->mons)) {
        HASH_DEL(by_id, m->target);
        free(m->target);
    }
    budget_release(sizeof *m + m->pid.len + m->ref.len + m->name.len);
    free(m->mem);
    free(m);
}

/* Copies spans into one block; each out[i] points into it. */
static uint8_t *copy_spans(const struct gsp_span *in, struct gsp_span *out, size_t k)
{
    size_t total = 0;
    for (size_t i = 0; i < k; i++)
        total += in[i].len;
    uint8_t *mem = xmalloc(total ? total : 1), *p = mem;
    for (size_t i = 0; i < k; i++) {
        if (in[i].len)
            memcpy(p, in[i].ptr, in[i].len);
        out[i] = (struct gsp_span){p, in[i].len};
        p += in[i].len;
    }
    return mem;
}

/* MONITOR_P_EXIT {21, FromProc, ToPid, Ref, Reason}: reason a term. */
static void send_monitor_exit(struct node *n, struct gsp_span proc, struct gsp_span pid,
                              struct gsp_span ref, const struct gsp_buf *reason)
{
    static struct gsp_buf ctl;
    ctl.len = 0;
    term_put_tuple(&ctl, 5);
    term_put_int(&ctl, OP_MONITOR_P_EXIT, false, 0);
    gsp_buf_append(&ctl, proc.ptr, proc.len);
    gsp_buf_append(&ctl, pid.ptr, pid.len);
    gsp_buf_append(&ctl, ref.ptr, ref.len);
    gsp_buf_append(&ctl, reason->data, reason->len);
    node_send(n, &ctl, NULL);
}

static void noproc(struct node *n, struct gsp_span proc, struct gsp_span pid, struct gsp_span ref)
{
    static struct gsp_buf r;
    r.len = 0;
    term_put_atom(&r, "noproc", 6);
    send_monitor_exit(n, proc, pid, ref, &r);
}

/* The server named by an atom, if running. */
static struct server *by_atom(struct gsp_span atom)
{
    uint8_t buf[512];
    const uint8_t *p = atom.ptr, *name;
    size_t len;
    if (!term_atom(&p, atom.ptr + atom.len, buf, &name, &len) || len > GSP_NAME_MAX)
        return NULL;
    struct server *s = registry_by_name((const char *)name, len);
    return s && s->status != SERVER_ENDED ? s : NULL;
}

void in_monitor(struct node *n, const struct gsp_span *el)
{
    struct gsp_span pid = el[1], proc = el[2], ref = el[3];
    struct server *s = by_atom(proc);
    struct dmon *m;
    HASH_FIND(hh, n->mons, ref.ptr, ref.len, m);
    if (m != NULL) /* refs are unique: a peer that repeats one gets nothing more */
        return;
    if (s == NULL) {
        noproc(n, proc, pid, ref);
        return;
    }
    if (limits.monitors && n->nmons >= limits.monitors) { /* as a connection's limit */
        static struct gsp_buf r;
        r.len = 0;
        term_put_atom(&r, "system_limit", 12);
        log_msg(LOG_WARN, "node %s: over %u monitors: a monitor of %s refused", n->name,
                limits.monitors, s->name);
        send_monitor_exit(n, proc, pid, ref, &r);
        return;
    }
    n->nmons++;
    m = xcalloc(1, sizeof *m);
    struct gsp_span in[3] = {pid, ref, proc}, out[3];
    m->mem = copy_spans(in, out, 3);
    m->pid = out[0], m->ref = out[1], m->name = out[2];
    m->node = n;
    HASH_FIND(hh, by_id, &s->id, sizeof s->id, m->target);
    if (m->target == NULL) {
        m->target = xcalloc(1, sizeof *m->target);
        m->target->id = s->id;
        LIST_INIT(&m->target->mons);
        HASH_ADD(hh, by_id, id, sizeof m->target->id, m->target);
    }
    budget_charge(sizeof *m + pid.len + ref.len + proc.len);
    HASH_ADD_KEYPTR(hh, n->mons, m->ref.ptr, m->ref.len, m);
    LIST_INSERT_HEAD(&n->monitors, m, link);
    LIST_INSERT_HEAD(&m->target->mons, m, target_link);
}

void in_demonitor(struct node *n, const struct gsp_span *el)
{
    struct gsp_span ref = el[3];
    struct dmon *m;
    struct pending *pc;
    HASH_FIND(hh, n->mons, ref.ptr, ref.len, m);
    if (m)
        dmon_free(m);
    /* A call still waiting whose monitor goes: its caller gave up. */
    HASH_FIND(hh_ref, n->calls, ref.ptr, ref.len, pc);
    if (pc)
        pending_drop(pc);
}

/* Reads {Pid, Tag} of a '$gen_call'; Tag [alias|Mref] or a ref. */
static bool read_from(const uint8_t **pp, const uint8_t *end, struct gsp_span *pid,
                      struct gsp_span *tag, struct gsp_span *mref, bool *alias)
{
    const uint8_t *p = *pp, *q;
    if (end - p < 2 || p[0] != ERL_SMALL_TUPLE_EXT || p[1] != 2)
        return false;
    p += 2;
    q = p;
    if (!term_skip(&q, end, GSP_MAX_DEPTH_HARD, NULL))
        return false;
    *pid = (struct gsp_span){p, (size_t)(q - p)};
    p = q;
    if (!term_skip(&q, end, GSP_MAX_DEPTH_HARD, NULL))
        return false;
    *tag = (struct gsp_span){p, (size_t)(q - p)};
    *alias = false;
    *mref = (struct gsp_span){NULL, 0};
    uint8_t buf[512];
    const uint8_t *name, *r = p + 5;
    size_t len;
    if (*p == ERL_LIST_EXT && q - p > 5 && p[1] == 0 && p[2] == 0 && p[3] == 0 && p[4] == 1 &&
        term_atom(&r, q, buf, &name, &len) && len == 5 && memcmp(name, "alias", 5) == 0 &&
        (*r == ERL_NEWER_REFERENCE_EXT || *r == ERL_NEW_REFERENCE_EXT)) {
        *alias = true;
        *mref = (struct gsp_span){r, (size_t)(q - r)};
    } else if (*p == ERL_NEWER_REFERENCE_EXT || *p == ERL_NEW_REFERENCE_EXT)
        *mref = *tag;
    *pp = q;
    return true;
}

/* REG_SEND to a name: a '$gen_call', a '$gen_cast' or anything (an info). */
enum handled in_reg_send(struct node *n, struct gsp_span to, struct gsp_span msg)
{
    struct server *s = by_atom(to);
    if (msg.ptr == NULL)
        return BAD;
    if (s == NULL || shutting_down) /* as Erlang does: a send to no one is dropped */
        return DONE;
    if (mailbox_full(&s->mbox))
        return HOLD;
    const uint8_t *p = msg.ptr, *end = msg.ptr + msg.len;
    struct gsp_span pid, tag, mref;
    bool alias;
    if (end - p > 2 && p[0] == ERL_SMALL_TUPLE_EXT && p[1] == 3) {
        const uint8_t *q = p + 2;
        if (term_is_atom(&q, end, "$gen_call") && read_from(&q, end, &pid, &tag, &mref, &alias)) {
            if (limits.pending && n->npending >= limits.pending) {
                log_msg(LOG_WARN, "node %s: over %u pending calls: a call to %s dropped", n->name,
                        limits.pending, s->name);
                return DONE;
            }
            struct term_marks marks = {0};
            struct gsp_span req;
            if (!node_convert(n, q, end, &marks, &req)) {
                free(marks.v);
                return BAD;
            }
            struct pending *pc = xcalloc(1, sizeof *pc);
            struct gsp_span in[4] = {pid, tag, mref, req}, out[4];
            pc->mem = copy_spans(in, out, 4);
            pc->pid = out[0], pc->tag = out[1], pc->mref = out[2], pc->req = out[3];
            pc->marks = marks.v;
            pc->nmarks = marks.n;
            pc->alias = alias;
            pc->node = n;
            pc->key = next_ref();
            budget_charge(sizeof *pc + pc->req.len + pc->pid.len + pc->tag.len);
            HASH_ADD(hh, calls, key, sizeof pc->key, pc);
            if (pc->mref.len)
                HASH_ADD_KEYPTR(hh_ref, n->calls, pc->mref.ptr, pc->mref.len, pc);
            LIST_INSERT_HEAD(&n->pending, pc, link);
            n->npending++;
            struct waiter *w = waiter_for_dist(pc->key, s);
            pc->waiter = w->id;
            counters.calls++;
            if (!server_post(s, MSG_CALL, w->id, pc->req.ptr, pc->req.len))
                pending_drop(pc);
            return DONE;
        }
    }
    enum msg_kind kind = MSG_INFO;
    if (end - p > 2 && p[0] == ERL_SMALL_TUPLE_EXT && p[1] == 2) {
        const uint8_t *q = p + 2;
        if (term_is_atom(&q, end, "$gen_cast")) {
            kind = MSG_CAST;
            p = q;
        }
    }
    struct gsp_span m;
    if (!node_convert(n, p, end, NULL, &m))
        return BAD;
    if (kind == MSG_CAST)
        counters.casts++;
    else
        counters.sends++;
    server_post(s, kind, 0, m.ptr, m.len);
    return DONE;
}

void in_answer(uint64_t key, enum gsp_code code, struct gsp_span v)
{
    struct pending *pc;
    HASH_FIND(hh, calls, &key, sizeof key, pc);
    if (pc == NULL)
        return;
    struct node *n = pc->node;
    /* An error (the server ended) goes unsent: the caller's monitor tells it. */
    if (code == GSP_OK && v.ptr && !n->closing) {
        msgpack_zone *zone = dist_zone();
        msgpack_object reply, *tuples = NULL, *bins = NULL;
        size_t nt = 0, nb = 0;
        if (gsp_decode(v.ptr, v.len, zone, &reply)) {
            if (pc->nmarks) {
                tuples = msgpack_zone_malloc(zone, pc->nmarks * sizeof *tuples);
                bins = msgpack_zone_malloc(zone, pc->nmarks * sizeof *bins);
            }
            for (size_t i = 0; tuples && bins && i < pc->nmarks; i++) {
                struct term_mark *mk = &pc->marks[i];
                msgpack_object o;
                if (gsp_decode(pc->req.ptr + mk->off, mk->len, zone, &o)) {
                    if (mk->kind == TERM_MARK_TUPLE)
                        tuples[nt++] = o;
                    else
                        bins[nb++] = o;
                }
            }
            struct term_ctx ctx = node_ctx(n, true, true);
            ctx.tuples = tuples, ctx.ntuples = nt;
            ctx.binaries = bins, ctx.nbinaries = nb;
            static struct gsp_buf ctl, msg;
            msg.len = 0;
            term_put_tuple(&msg, 2);
            gsp_buf_append(&msg, pc->tag.ptr, pc->tag.len);
            if (mp_to_term(&reply, &msg, &ctx, GSP_MAX_DEPTH_HARD + 1)) {
                ctl.len = 0;
                term_put_tuple(&ctl, 3);
                if (pc->alias) {
                    term_put_int(&ctl, OP_ALIAS_SEND, false, 0);
                    gsp_buf_append(&ctl, self.pid, self.pid_len);
                    gsp_buf_append(&ctl, pc->mref.ptr, pc->mref.len);
                } else {
                    term_put_int(&ctl, OP_SEND, false, 0);
                    term_put_atom(&ctl, "", 0);
                    gsp_buf_append(&ctl, pc->pid.ptr, pc->pid.len);
                }
                node_send(n, &ctl, &msg);
            }
        }
    }
    pending_free(pc);
}

/* An exit reason as Erlang spells it: its words atoms, an array a tuple. */
static void reason_term(const struct node *n, struct gsp_span reason, struct gsp_buf *out)
{
    msgpack_object r = {0};
    msgpack_zone *zone = dist_zone();
    out->len = 0;
    if (!gsp_decode(reason.ptr, reason.len, zone, &r)) {
        term_put_atom(out, "normal", 6);
        return;
    }
    msgpack_object tuples[2] = {r, r};
    size_t nt = r.type == MSGPACK_OBJECT_ARRAY ? 1 : 0;
    if (nt && r.via.array.size == 2 && r.via.array.ptr[1].type == MSGPACK_OBJECT_ARRAY)
        tuples[nt++] = r.via.array.ptr[1];
    struct term_ctx ctx = node_ctx(n, true, true);
    ctx.tuples = tuples, ctx.ntuples = nt;
    if (!mp_to_term(&r, out, &ctx, GSP_MAX_DEPTH_HARD + 1)) {
        out->len = 0;
        term_put_atom(out, "normal", 6);
    }
}

void in_server_ended(struct server *s, struct gsp_span reason)
{
    static struct gsp_buf r;
    struct watched *w;
    HASH_FIND(hh, by_id, &s->id, sizeof s->id, w);
    for (bool last = w == NULL; !last;) {
        struct dmon *m = LIST_FIRST(&w->mons);
        last = LIST_NEXT(m, target_link) == NULL; /* then dmon_free frees w */
        reason_term(m->node, reason, &r);         /* as that node may see it: its atoms */
        send_monitor_exit(m->node, m->name, m->pid, m->ref, &r);
        dmon_free(m);
    }
}

void in_lost(struct node *n)
{
    struct pending *pc;
    while ((pc = LIST_FIRST(&n->pending)) != NULL)
        pending_drop(pc);
    struct dmon *m;
    while ((m = LIST_FIRST(&n->monitors)) != NULL)
        dmon_free(m);
}
