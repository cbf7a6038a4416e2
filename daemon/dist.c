/* dist.c — gsd as a hidden Erlang node (inbound): peers call, cast, send
 * to and monitor servers by registered name. ei runs only the handshake,
 * in a thread per connection; everything after it is framed on the loop. */
#include "gsd.h"

#include <arpa/inet.h>
#include <ei.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Flags stock ei does not advertise: without the monitor ones ERTS sends
 * no MONITOR_P, so a call to a missing server would hang until its timeout. */
#define DFLAG_DIST_MONITOR 0x08ull
#define DFLAG_DIST_MONITOR_NAME 0x20ull
#define DFLAG_ALIAS (0x8ull << 32)

#define HANDSHAKES_MAX 8    /* handshakes under way at once; more are refused */
#define HANDSHAKE_MS 5000   /* a peer that takes longer is dropped */
#define READ_BYTES 65536    /* read per pass, per node */
#define PASS_MSGS 64        /* messages handled per pass, per node */
#define OUT_MAX (64u << 20) /* unread output past which a peer is dropped */
#define HOLD_MS 5           /* retry of a node held by a full mailbox */

enum {
    OP_LINK = 1,
    OP_SEND = 2,
    OP_REG_SEND = 6,
    OP_REG_SEND_TT = 16,
    OP_MONITOR_P = 19,
    OP_DEMONITOR_P = 20,
    OP_MONITOR_P_EXIT = 21,
    OP_ALIAS_SEND = 33
};

struct node;

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
    uint64_t target;
    struct gsp_span pid, ref, name; /* in mem */
    uint8_t *mem;
    UT_hash_handle hh; /* node->mons, by ref bytes */
    LIST_ENTRY(dmon) link;
};

struct node {
    char name[MAXNODELEN + 1];
    int fd;
    struct event *rev, *wev, *tick, *flush, *resume;
    struct gsp_buf in, out;
    size_t out_off;
    int64_t heard_ms, said_ms;
    struct atom_set atoms; /* what it has sent: what may go back to it as atoms */
    struct pending *calls; /* by mref */
    LIST_HEAD(, pending) pending;
    uint32_t npending;
    struct dmon *mons; /* by ref */
    LIST_HEAD(, dmon) monitors;
    bool held, closing;
    size_t charged; /* its buffers, charged to the memory budget */
    LIST_ENTRY(node) link;
};

static ei_cnode ec;
static struct dist_config conf;
static int lfd = -1, epmd_fd = -1, hs_pipe[2] = {-1, -1};
static int hs_lfd = -1; /* lfd for the threads: set before the first, never changed */
static struct event *accept_ev, *hs_ev;
static unsigned handshakes;
static LIST_HEAD(, node) nodes = LIST_HEAD_INITIALIZER(nodes);
static unsigned nnodes;
static struct pending *calls; /* every pending call, by key */
static struct atom_set words; /* atoms the daemon sends of its own: exit reasons */
static uint8_t self_pid[MAXNODELEN + 32];
static size_t self_pid_len;
static struct gsp_buf conv; /* a message converted, reused */
static msgpack_zone *zone;

/* ---- the handshake, in a thread: ei's socket callbacks ------------------- */

static _Thread_local int hs_fd = -1;  /* the accepted socket this thread shakes hands on */
static _Thread_local bool hs_closed;  /* ei closed it */
static _Thread_local bool hs_patched; /* the 'N' message has its flags */
#define CTX_FD(ctx) ((int)(intptr_t)(ctx))

static int cb_socket(void **ctx, void *setup)
{
    (void)setup;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    *ctx = (void *)(intptr_t)fd;
    return 0;
}

static int cb_close(void *ctx)
{
    if (CTX_FD(ctx) == hs_fd)
        hs_closed = true;
    return close(CTX_FD(ctx)) < 0 ? errno : 0;
}

static int cb_listen(void *ctx, void *addr, int *len, int backlog)
{
    int fd = CTX_FD(ctx), one = 1;
    socklen_t l = (socklen_t)*len;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, addr, l) < 0 || listen(fd, backlog) < 0 || getsockname(fd, addr, &l) < 0)
        return errno;
    *len = (int)l;
    return 0;
}

/* The loop accepted the socket already: this hands it to ei. */
static int cb_accept(void **ctx, void *addr, int *len, unsigned tmo)
{
    (void)tmo;
    socklen_t l = (socklen_t)*len;
    if (hs_fd < 0 || getpeername(hs_fd, addr, &l) < 0)
        return hs_fd < 0 ? EINVAL : errno;
    *len = (int)l;
    *ctx = (void *)(intptr_t)hs_fd;
    return 0;
}

/* The full implementation: ei hands us its timeouts (ms). */
static int wait_for(int fd, short ev, unsigned tmo)
{
    struct pollfd p = {fd, ev, 0};
    int r;
    do
        r = poll(&p, 1, tmo == EI_SCLBK_INF_TMO ? -1 : (int)tmo);
    while (r < 0 && errno == EINTR);
    return r < 0 ? errno : r == 0 ? ETIMEDOUT : 0;
}

static int cb_connect(void *ctx, void *addr, int len, unsigned tmo)
{
    (void)tmo;
    return connect(CTX_FD(ctx), addr, (socklen_t)len) < 0 ? errno : 0;
}

/* Adds our flags to the challenge ('N', flags: 8 bytes big-endian) the
 * acceptor sends, after its 2-byte length. */
static int cb_write(void *ctx, const char *buf, ssize_t *len, unsigned tmo)
{
    char copy[512];
    if (CTX_FD(ctx) == hs_fd && !hs_patched && *len >= 11 && *len <= (ssize_t)sizeof copy &&
        buf[2] == 'N') {
        memcpy(copy, buf, (size_t)*len);
        uint64_t f = 0;
        for (int i = 0; i < 8; i++)
            f = f << 8 | (uint8_t)copy[3 + i];
        f |= DFLAG_DIST_MONITOR | DFLAG_DIST_MONITOR_NAME | DFLAG_ALIAS;
        for (int i = 7; i >= 0; i--, f >>= 8)
            copy[3 + i] = (char)(f & 0xff);
        buf = copy;
        hs_patched = true;
    }
    int e = wait_for(CTX_FD(ctx), POLLOUT, tmo);
    if (e)
        return e;
    ssize_t n = write(CTX_FD(ctx), buf, (size_t)*len);
    if (n < 0)
        return errno;
    *len = n;
    return 0;
}

static int cb_read(void *ctx, char *buf, ssize_t *len, unsigned tmo)
{
    int e = wait_for(CTX_FD(ctx), POLLIN, tmo);
    if (e)
        return e;
    ssize_t n = read(CTX_FD(ctx), buf, (size_t)*len);
    if (n < 0)
        return errno;
    *len = n;
    return 0;
}

static int cb_header_size(void *ctx, int *sz)
{
    (void)ctx;
    *sz = 2;
    return 0;
}

static int cb_complete(void *ctx)
{
    (void)ctx;
    return 0;
}

static int cb_get_fd(void *ctx, int *fd)
{
    *fd = CTX_FD(ctx);
    return 0;
}

static ei_socket_callbacks cbs = {.flags = EI_SCLBK_FLG_FULL_IMPL,
                                  .socket = cb_socket,
                                  .close = cb_close,
                                  .listen = cb_listen,
                                  .accept = cb_accept,
                                  .connect = cb_connect,
                                  .writev = NULL,
                                  .write = cb_write,
                                  .read = cb_read,
                                  .handshake_packet_header_size = cb_header_size,
                                  .connect_handshake_complete = cb_complete,
                                  .accept_handshake_complete = cb_complete,
                                  .get_fd = cb_get_fd};

/* What a handshake thread tells the loop: one write, under PIPE_BUF. */
struct hs_result {
    int fd; /* -1: failed */
    char name[MAXNODELEN + 1];
    char peer[INET_ADDRSTRLEN];
};

static void *handshake(void *arg)
{
    struct hs_result r = {.fd = (int)(intptr_t)arg};
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    if (getpeername(r.fd, (struct sockaddr *)&a, &al) == 0)
        inet_ntop(AF_INET, &a.sin_addr, r.peer, sizeof r.peer);
    hs_fd = r.fd;
    ErlConnect conp;
    int fd = ei_accept_tmo(&ec, hs_lfd, &conp, HANDSHAKE_MS);
    if (fd < 0) {
        if (!hs_closed)
            close(r.fd);
        r.fd = -1;
    } else
        snprintf(r.name, sizeof r.name, "%s", conp.nodename);
    if (write(hs_pipe[1], &r, sizeof r) != (ssize_t)sizeof r && r.fd >= 0)
        close(r.fd); /* the daemon is going away */
    return NULL;
}

/* ---- sending ------------------------------------------------------------------- */

static void node_close(struct node *n, const char *why);

static void be32_put(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = v;
}

/* The budget follows what n's buffers hold. */
static void recharge(struct node *n)
{
    size_t now = n->in.cap + n->out.cap;
    budget_charge(now);
    budget_release(n->charged);
    n->charged = now;
}

static void want_flush(struct node *n)
{
    if (!n->closing)
        event_active(n->flush, EV_TIMEOUT, 1);
}

/* Queues 'p', control, payload (payload may be NULL); written by the flush. */
static void send_msg(struct node *n, const struct gsp_buf *ctl, const struct gsp_buf *payload)
{
    size_t len = 2 + ctl->len + (payload ? 1 + payload->len : 0);
    if (n->closing || len > UINT32_MAX)
        return;
    uint8_t hdr[6];
    be32_put(hdr, (uint32_t)len);
    hdr[4] = 'p';
    hdr[5] = 131;
    gsp_buf_append(&n->out, hdr, 6);
    gsp_buf_append(&n->out, ctl->data, ctl->len);
    if (payload) {
        uint8_t v = 131;
        gsp_buf_append(&n->out, &v, 1);
        gsp_buf_append(&n->out, payload->data, payload->len);
    }
    want_flush(n);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct node *n = arg;
    while (n->out_off < n->out.len) {
        ssize_t w = write(n->fd, n->out.data + n->out_off, n->out.len - n->out_off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (n->out.len - n->out_off > OUT_MAX) {
                node_close(n, "it does not read what it is sent");
                return;
            }
            event_add(n->wev, NULL);
            return;
        }
        if (w <= 0) {
            node_close(n, "write failed");
            return;
        }
        n->out_off += (size_t)w;
        n->said_ms = loop_clock_ms;
    }
    n->out.len = n->out_off = 0;
    if (n->out.cap > READ_BYTES * 4) /* let a burst's memory go */
        gsp_buf_free(&n->out);
    recharge(n);
}

static void send_tick(struct node *n)
{
    static const uint8_t tick[4];
    gsp_buf_append(&n->out, tick, 4);
    want_flush(n);
}

/* ---- calls and monitors ----------------------------------------------------------- */

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
    HASH_DEL(m->node->mons, m);
    LIST_REMOVE(m, link);
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
    send_msg(n, &ctl, NULL);
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

static void on_monitor(struct node *n, const struct gsp_span *el)
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
    m = xcalloc(1, sizeof *m);
    struct gsp_span in[3] = {pid, ref, proc}, out[3];
    m->mem = copy_spans(in, out, 3);
    m->pid = out[0], m->ref = out[1], m->name = out[2];
    m->node = n;
    m->target = s->id;
    budget_charge(sizeof *m + pid.len + ref.len + proc.len);
    HASH_ADD_KEYPTR(hh, n->mons, m->ref.ptr, m->ref.len, m);
    LIST_INSERT_HEAD(&n->monitors, m, link);
}

static void on_demonitor(struct node *n, const struct gsp_span *el)
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

static bool is_atom(const uint8_t **pp, const uint8_t *end, const char *want)
{
    uint8_t buf[512];
    const uint8_t *p = *pp, *name;
    size_t len;
    if (!term_atom(&p, end, buf, &name, &len) || len != strlen(want) || memcmp(name, want, len))
        return false;
    *pp = p;
    return true;
}

/* The payload of v as msgpack into conv; marks noted if asked. */
static bool convert(struct node *n, const uint8_t *p, const uint8_t *end, struct term_marks *marks)
{
    msgpack_packer pk;
    conv.len = 0;
    gsp_packer_init(&pk, &conv);
    if (!term_to_mp(&p, end, &conv, &pk, VALUE_DEPTH_MAX, &n->atoms, marks) || p != end)
        return false;
    return (!limits.message.max_size || conv.len <= limits.message.max_size) &&
           value_fits(conv.data, conv.len, GSP_WRAP_ERROR);
}

enum handled { DONE, HOLD, BAD };

/* REG_SEND to a name: a '$gen_call', a '$gen_cast' or anything (an info). */
static enum handled on_reg_send(struct node *n, struct gsp_span to, struct gsp_span msg)
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
        if (is_atom(&q, end, "$gen_call") && read_from(&q, end, &pid, &tag, &mref, &alias)) {
            if (limits.pending && n->npending >= limits.pending) {
                log_msg(LOG_WARN, "node %s: over %u pending calls: a call to %s dropped", n->name,
                        limits.pending, s->name);
                return DONE;
            }
            struct term_marks marks = {0};
            if (!convert(n, q, end, &marks)) {
                free(marks.v);
                return BAD;
            }
            struct pending *pc = xcalloc(1, sizeof *pc);
            struct gsp_span in[4] = {pid, tag, mref, {conv.data, conv.len}}, out[4];
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
        if (is_atom(&q, end, "$gen_cast")) {
            kind = MSG_CAST;
            p = q;
        }
    }
    if (!convert(n, p, end, NULL))
        return BAD;
    if (kind == MSG_CAST)
        counters.casts++;
    else
        counters.sends++;
    server_post(s, kind, 0, conv.data, conv.len);
    return DONE;
}

static enum handled handle(struct node *n, const uint8_t *p, size_t len)
{
    struct gsp_span ctl, msg, el[DIST_CONTROL_MAX];
    unsigned k;
    if (!dist_packet(p, len, &ctl, &msg))
        return BAD;
    /* Every atom the peer sends is one it has: what may go back as one. */
    const uint8_t *q = ctl.ptr;
    term_skip(&q, ctl.ptr + ctl.len, GSP_MAX_DEPTH_HARD, &n->atoms);
    switch (dist_control(ctl, el, &k)) {
    case OP_REG_SEND:
        return k == 4 ? on_reg_send(n, el[3], msg) : BAD;
    case OP_REG_SEND_TT:
        return k == 5 ? on_reg_send(n, el[3], msg) : BAD;
    case OP_MONITOR_P:
        if (k != 4)
            return BAD;
        on_monitor(n, el);
        return DONE;
    case OP_DEMONITOR_P:
        if (k != 4)
            return BAD;
        on_demonitor(n, el);
        return DONE;
    case -1:
        return BAD;
    default: /* to a pid or alias of ours (there are none), links, exits: nothing */
        return DONE;
    }
}

/* ---- reading ------------------------------------------------------------------------ */

static void hold(struct node *n)
{
    n->held = true;
    event_del(n->rev);
    loop_arm(n->resume, HOLD_MS);
}

/* Up to PASS_MSGS whole messages from what has been read. */
static void process(struct node *n)
{
    size_t at = 0;
    unsigned done = 0;
    loop_clock_tick();
    while (!n->closing && done < PASS_MSGS && n->in.len - at >= 4) {
        const uint8_t *p = n->in.data + at;
        uint32_t len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (len == 0) { /* a tick: answered, as ei does */
            at += 4;
            send_tick(n);
            continue;
        }
        if (limits.message.max_size && len > limits.message.max_size + 64) {
            log_msg(LOG_WARN, "node %s: a message of %u bytes, over the limit of %llu", n->name,
                    len, (unsigned long long)limits.message.max_size);
            node_close(n, "message over the size limit");
            return;
        }
        if (n->in.len - at - 4 < len)
            break;
        enum handled h = handle(n, p + 4, len);
        if (h == HOLD) {
            hold(n);
            break;
        }
        if (h == BAD) {
            log_msg(LOG_WARN, "node %s: a distribution message that does not parse", n->name);
            node_close(n, "protocol error");
            return;
        }
        at += 4 + len;
        done++;
    }
    scratch_reset();
    if (n->closing)
        return;
    gsp_buf_consume(&n->in, at);
    if (n->in.len == 0 && n->in.cap > READ_BYTES * 4)
        gsp_buf_free(&n->in);
    recharge(n);
    if (!n->held && done == PASS_MSGS && n->in.len >= 4)
        event_active(n->resume, EV_TIMEOUT, 1); /* the rest after everyone else's turn */
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct node *n = arg;
    gsp_buf_reserve(&n->in, READ_BYTES);
    ssize_t r = read(fd, n->in.data + n->in.len, READ_BYTES);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        node_close(n, r == 0 ? "it closed the connection" : strerror(errno));
        return;
    }
    n->in.len += (size_t)r;
    n->heard_ms = now_ms();
    process(n);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct node *n = arg;
    if (n->held) {
        n->held = false;
        event_add(n->rev, NULL);
    }
    process(n);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct node *n = arg;
    int64_t now = now_ms();
    if (now - n->heard_ms > (int64_t)conf.tick_ms) {
        node_close(n, "no tick in time");
        return;
    }
    if (now - n->said_ms >= (int64_t)conf.tick_ms / 4)
        send_tick(n);
}

/* Frees n on a loop event of its own: the caller may still hold it. */
static void node_free(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct node *n = arg;
    budget_release(n->charged);
    gsp_buf_free(&n->in);
    gsp_buf_free(&n->out);
    atoms_free(&n->atoms);
    event_free(n->flush);
    free(n);
}

static void node_close(struct node *n, const char *why)
{
    if (n->closing)
        return;
    n->closing = true;
    log_msg(LOG_INFO, "node %s disconnected: %s", n->name, why);
    struct pending *pc;
    while ((pc = LIST_FIRST(&n->pending)) != NULL)
        pending_drop(pc);
    struct dmon *m;
    while ((m = LIST_FIRST(&n->monitors)) != NULL)
        dmon_free(m);
    LIST_REMOVE(n, link);
    nnodes--;
    event_free(n->rev);
    event_free(n->wev);
    event_free(n->tick);
    event_free(n->resume);
    close(n->fd);
    event_del(n->flush);
    event_assign(n->flush, loop_base, -1, 0, node_free, n);
    event_active(n->flush, EV_TIMEOUT, 1);
}

static void node_new(int fd, const char *name)
{
    struct node *old;
    LIST_FOREACH(old, &nodes, link)
    {
        if (strcmp(old->name, name) == 0) {
            node_close(old, "it connected again");
            break;
        }
    }
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    struct node *n = xcalloc(1, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", name);
    n->fd = fd;
    n->heard_ms = n->said_ms = now_ms();
    LIST_INIT(&n->pending);
    LIST_INIT(&n->monitors);
    n->rev = loop_event(LOOP_PRIO_CLIENT, fd, EV_READ | EV_PERSIST, on_read, n);
    n->wev = loop_event(LOOP_PRIO_CLIENT, fd, EV_WRITE, on_flush, n);
    n->flush = loop_event(LOOP_PRIO_CLIENT, -1, 0, on_flush, n);
    n->resume = loop_event(LOOP_PRIO_CLIENT, -1, 0, on_resume, n);
    n->tick = loop_event(LOOP_PRIO_OWN, -1, EV_PERSIST, on_tick, n);
    event_add(n->rev, NULL);
    struct timeval tv = {conf.tick_ms / 4000, (conf.tick_ms / 4 % 1000) * 1000};
    event_add(n->tick, &tv);
    LIST_INSERT_HEAD(&nodes, n, link);
    nnodes++;
    log_msg(LOG_INFO, "node %s connected", n->name);
}

/* ---- accepting ------------------------------------------------------------------------ */

static void on_handshake(evutil_socket_t fd, short what, void *arg)
{
    (void)what, (void)arg;
    struct hs_result r;
    while (read(fd, &r, sizeof r) == (ssize_t)sizeof r) {
        handshakes--;
        r.name[sizeof r.name - 1] = 0;
        if (r.fd < 0)
            log_msg(LOG_WARN,
                    "distribution: handshake from %s failed (a wrong cookie, or too slow)", r.peer);
        else
            node_new(r.fd, r.name);
    }
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what, (void)arg;
    for (int i = 0; i < 16; i++) {
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            return;
        pthread_t t;
        pthread_attr_t at;
        if (handshakes >= HANDSHAKES_MAX || shutting_down) {
            log_msg(LOG_WARN, "distribution: %u handshakes under way: a connection refused",
                    handshakes);
            close(c);
            continue;
        }
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&at, 256 << 10);
        if (pthread_create(&t, &at, handshake, (void *)(intptr_t)c) != 0) {
            log_msg(LOG_WARN, "distribution: no thread for a handshake: %s", strerror(errno));
            close(c);
        } else
            handshakes++;
        pthread_attr_destroy(&at);
    }
}

/* ---- the core's hooks ------------------------------------------------------------------- */

static void answer(uint64_t key, enum gsp_code code, struct gsp_span v)
{
    struct pending *pc;
    HASH_FIND(hh, calls, &key, sizeof key, pc);
    if (pc == NULL)
        return;
    struct node *n = pc->node;
    /* An error (the server ended) goes unsent: the caller's monitor tells it. */
    if (code == GSP_OK && v.ptr && !n->closing) {
        msgpack_zone_clear(zone);
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
            struct term_ctx ctx = {&n->atoms, &words, tuples,          bins,
                                   nt,        nb,     ec.thisnodename, strlen(ec.thisnodename)};
            static struct gsp_buf ctl, msg;
            msg.len = 0;
            term_put_tuple(&msg, 2);
            gsp_buf_append(&msg, pc->tag.ptr, pc->tag.len);
            if (mp_to_term(&reply, &msg, &ctx, GSP_MAX_DEPTH_HARD + 1)) {
                ctl.len = 0;
                term_put_tuple(&ctl, 3);
                if (pc->alias) {
                    term_put_int(&ctl, OP_ALIAS_SEND, false, 0);
                    gsp_buf_append(&ctl, self_pid, self_pid_len);
                    gsp_buf_append(&ctl, pc->mref.ptr, pc->mref.len);
                } else {
                    term_put_int(&ctl, OP_SEND, false, 0);
                    term_put_atom(&ctl, "", 0);
                    gsp_buf_append(&ctl, pc->pid.ptr, pc->pid.len);
                }
                send_msg(n, &ctl, &msg);
            }
        }
    }
    pending_free(pc);
}

/* An exit reason as Erlang spells it: its words atoms, an array a tuple. */
static void reason_term(const struct node *n, struct gsp_span reason, struct gsp_buf *out)
{
    msgpack_object r = {0};
    msgpack_zone_clear(zone);
    out->len = 0;
    if (!gsp_decode(reason.ptr, reason.len, zone, &r)) {
        term_put_atom(out, "normal", 6);
        return;
    }
    msgpack_object tuples[2] = {r, r};
    size_t nt = r.type == MSGPACK_OBJECT_ARRAY ? 1 : 0;
    if (nt && r.via.array.size == 2 && r.via.array.ptr[1].type == MSGPACK_OBJECT_ARRAY)
        tuples[nt++] = r.via.array.ptr[1];
    struct term_ctx ctx = {&n->atoms, &words, tuples,          NULL,
                           nt,        0,      ec.thisnodename, strlen(ec.thisnodename)};
    if (!mp_to_term(&r, out, &ctx, GSP_MAX_DEPTH_HARD + 1)) {
        out->len = 0;
        term_put_atom(out, "normal", 6);
    }
}

static void server_ended(struct server *s, struct gsp_span reason)
{
    static struct gsp_buf r;
    struct node *n;
    LIST_FOREACH(n, &nodes, link)
    {
        struct dmon *m, *t;
        bool made = false; /* the reason as this node may see it: its atoms */
        for (m = LIST_FIRST(&n->monitors); m; m = t) {
            t = LIST_NEXT(m, link);
            if (m->target != s->id)
                continue;
            if (!made) {
                reason_term(n, reason, &r);
                made = true;
            }
            send_monitor_exit(n, m->name, m->pid, m->ref, &r);
            dmon_free(m);
        }
    }
}

static void nodes_pack(msgpack_packer *pk)
{
    struct node *n;
    msgpack_pack_array(pk, nnodes);
    LIST_FOREACH(n, &nodes, link)
    msgpack_pack_str_with_body(pk, n->name, strlen(n->name));
}

static unsigned nodes_count(void)
{
    return nnodes;
}

static const struct dist_hooks hooks = {answer, server_ended, nodes_pack, nodes_count};

/* ---- start and stop --------------------------------------------------------------------- */

/* The cookie, from a file no one else may read. */
static int read_cookie(const char *path, char *out, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        log_msg(LOG_ERR, "distribution: cookie file %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077)) {
        log_msg(LOG_ERR,
                "distribution: cookie file %s must be a file owned by uid %d that no one else "
                "may read or write (mode 0600 or 0400; it is %04o, owner %d)",
                path, (int)geteuid(), (unsigned)(st.st_mode & 07777), (int)st.st_uid);
        close(fd);
        return -1;
    }
    ssize_t r = read(fd, out, size - 1);
    close(fd);
    if (r < 0)
        r = 0;
    while (r > 0 && (out[r - 1] == '\n' || out[r - 1] == '\r' || out[r - 1] == ' '))
        r--;
    out[r] = 0;
    for (ssize_t i = 0; i < r; i++)
        if (out[i] < 0x21 || out[i] > 0x7e)
            r = 0;
    if (r == 0) {
        log_msg(LOG_ERR,
                "distribution: cookie file %s is empty or not one line of printable "
                "ASCII",
                path);
        return -1;
    }
    return 0;
}

bool dist_config_same(const struct dist_config *a, const struct dist_config *b)
{
    return (a->node == NULL) == (b->node == NULL) &&
           (a->node == NULL ||
            (strcmp(a->node, b->node) == 0 && strcmp(a->cookie_file, b->cookie_file) == 0 &&
             strcmp(a->listen, b->listen) == 0 && a->port == b->port && a->tick_ms == b->tick_ms));
}

int dist_start(const struct dist_config *cfg)
{
    char cookie[EI_MAX_COOKIE_SIZE + 1], alive[MAXNODELEN + 1], host[MAXNODELEN + 1];
    const char *at = strchr(cfg->node, '@');
    struct in_addr addr;
    if (read_cookie(cfg->cookie_file, cookie, sizeof cookie) < 0)
        return -1;
    snprintf(alive, sizeof alive, "%.*s", (int)(at - cfg->node), cfg->node);
    snprintf(host, sizeof host, "%s", at + 1);
    inet_pton(AF_INET, cfg->listen, &addr);
    conf = *cfg;
    /* A fresh creation each start: pids and refs of an earlier run are not ours. */
    unsigned creation = ((unsigned)time(NULL) ^ (unsigned)getpid() << 16) | 4;
    if (ei_init() != 0 || ei_connect_xinit_ussi(&ec, host, alive, cfg->node, &addr, cookie,
                                                creation, &cbs, sizeof cbs, NULL) < 0) {
        memset(cookie, 0, sizeof cookie);
        log_msg(LOG_ERR, "distribution: ei could not be set up for %s", cfg->node);
        return -1;
    }
    memset(cookie, 0, sizeof cookie);
    int port = cfg->port;
    lfd = ei_xlisten(&ec, &addr, &port, 16);
    if (lfd < 0) {
        log_msg(LOG_ERR, "distribution: cannot listen on %s:%u: %s", cfg->listen, cfg->port,
                strerror(errno));
        return -1;
    }
    epmd_fd = ei_publish(&ec, port);
    if (epmd_fd < 0) {
        log_msg(LOG_ERR,
                "distribution: cannot publish %s to epmd (is epmd running? "
                "ERL_EPMD_PORT?)",
                cfg->node);
        close(lfd);
        lfd = -1;
        return -1;
    }
    fcntl(epmd_fd, F_SETFD, FD_CLOEXEC);
    fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
    hs_lfd = lfd;
    if (pipe2(hs_pipe, O_CLOEXEC) < 0) {
        log_msg(LOG_ERR, "distribution: pipe: %s", strerror(errno));
        return -1;
    }
    fcntl(hs_pipe[0], F_SETFL, O_NONBLOCK);
    /* Our pid, the sender of every reply: NEW_PID_EXT of our node. */
    struct gsp_buf b = {0};
    uint8_t tag = ERL_NEW_PID_EXT, num[12] = {0};
    gsp_buf_append(&b, &tag, 1);
    term_put_atom(&b, cfg->node, strlen(cfg->node));
    num[8] = creation >> 24, num[9] = creation >> 16, num[10] = creation >> 8, num[11] = creation;
    gsp_buf_append(&b, num, 12);
    memcpy(self_pid, b.data, b.len);
    self_pid_len = b.len;
    gsp_buf_free(&b);
    static const char *const reason_words[] = {
        "normal",  "shutdown",    "killed",  "noproc",  "noconnection",     "calling_self",
        "crashed", "exit_status", "restart", "timeout", "bad_return_value", NULL};
    for (size_t i = 0; reason_words[i]; i++)
        atoms_add(&words, reason_words[i], strlen(reason_words[i]));
    zone = msgpack_zone_new(8192);
    accept_ev = loop_event(LOOP_PRIO_CLIENT, lfd, EV_READ | EV_PERSIST, on_accept, NULL);
    hs_ev = loop_event(LOOP_PRIO_OWN, hs_pipe[0], EV_READ | EV_PERSIST, on_handshake, NULL);
    event_add(accept_ev, NULL);
    event_add(hs_ev, NULL);
    dist_hooks = &hooks;
    log_msg(LOG_INFO, "distribution: node %s listening on %s:%d (hidden), tick %u ms", cfg->node,
            cfg->listen, port, cfg->tick_ms);
    return 0;
}

void dist_stop(void)
{
    if (dist_hooks == NULL)
        return;
    struct node *n;
    while ((n = LIST_FIRST(&nodes)) != NULL) {
        node_close(n, "the daemon is stopping");
        event_del(n->flush); /* nothing holds it now: freed at once */
        node_free(-1, 0, n);
    }
    event_free(accept_ev);
    event_free(hs_ev);
    close(lfd);
    close(epmd_fd); /* epmd forgets us */
    /* A handshake still under way finds no one to tell (EPIPE); the write
     * end stays open, so that its number is never someone else's. */
    close(hs_pipe[0]);
    lfd = epmd_fd = hs_pipe[0] = -1;
    atoms_free(&words);
    gsp_buf_free(&conv);
    msgpack_zone_free(zone);
    zone = NULL;
    dist_hooks = NULL;
}
