/* dist.c — gsd as a hidden Erlang node. Inbound, peers call, cast, send
 * to and monitor servers by registered name; outbound, clients and servers
 * reach names on other nodes ([name, node]), connecting on demand. ei runs
 * only the handshake, in a thread per connection; everything after it is
 * framed on the loop. */
#include "gsd.h"

#include <arpa/inet.h>
#include <ei.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
#define CONNECT_MS (HANDSHAKE_MS + 2000) /* a connection asked for: epmd, connect, handshake */

enum {
    OP_LINK = 1,
    OP_SEND = 2,
    OP_REG_SEND = 6,
    OP_SEND_TT = 12,
    OP_REG_SEND_TT = 16,
    OP_MONITOR_P = 19,
    OP_DEMONITOR_P = 20,
    OP_MONITOR_P_EXIT = 21,
    OP_SEND_SENDER = 22,
    OP_SEND_SENDER_TT = 23,
    OP_ALIAS_SEND = 33,
    OP_ALIAS_SEND_TT = 34
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

/* A call or monitor of ours on a name on another node: both are an Erlang
 * monitor of {Name, Node} under a ref of ours (a call's tag too). */
struct watch {
    uint64_t key;   /* a call's waiter id, or a monitor's ref (monitor.c's) */
    uint64_t ref;   /* our ref's number */
    uint64_t asker; /* a client's monitor: its waiter, answered once connected */
    bool call;
    struct node *node;
    uint8_t *name; /* the name, as an atom term */
    size_t name_len;
    UT_hash_handle hh;     /* outcalls or outmons, by key */
    UT_hash_handle hh_ref; /* node->watches, by ref */
    LIST_ENTRY(watch) link;
};

struct node {
    char name[MAXNODELEN + 1];
    int fd;           /* -1 while connecting */
    bool outbound;    /* we connected (else the peer did) */
    uint64_t attempt; /* connecting: the attempt a thread reports on */
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
    uint32_t nmons;
    struct watch *watches; /* ours on it, by ref */
    LIST_HEAD(, watch) watching;
    uint64_t *askers; /* connecting: clients' casts and sends, answered nil once connected */
    size_t naskers;
    struct event *connect_timer;
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
static struct watch *outcalls, *outmons; /* ours, by key */
static uint64_t last_ref, last_attempt;
static struct atom_set words; /* atoms the daemon sends of its own: exit reasons */
static unsigned creation; /* ours, this run's */
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
    hs_fd = fd; /* a connecting thread's: the one it shakes hands on */
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

/* A connect bounded by tmo: non-blocking, then back to blocking for ei. */
static int cb_connect(void *ctx, void *addr, int len, unsigned tmo)
{
    int fd = CTX_FD(ctx), fl = fcntl(fd, F_GETFL), e = 0;
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    if (connect(fd, addr, (socklen_t)len) < 0) {
        e = errno == EINPROGRESS ? wait_for(fd, POLLOUT, tmo) : errno;
        socklen_t el = sizeof e;
        if (e == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
            e = errno;
    }
    fcntl(fd, F_SETFL, fl);
    return e;
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
    int fd;           /* -1: failed */
    uint64_t attempt; /* a connection we asked for; 0: one we accepted */
    char name[MAXNODELEN + 1];
    char peer[INET_ADDRSTRLEN];
    char why[64]; /* a failed connect's */
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

/* Connects to the node named in arg (a struct hs_result, freed here): epmd,
 * connect and handshake, each bounded by ei's timeout. */
static void *connect_to(void *arg)
{
    struct hs_result r = *(struct hs_result *)arg;
    free(arg);
    r.fd = ei_connect_tmo(&ec, r.name, HANDSHAKE_MS);
    if (r.fd < 0) {
        r.fd = -1;
        snprintf(r.why, sizeof r.why, "%s",
                 erl_errno == ETIMEDOUT ? "no answer in time"
                 : erl_errno == EIO     ? "not found by epmd, refused, or a wrong cookie"
                                        : strerror(erl_errno));
    }
    if (write(hs_pipe[1], &r, sizeof r) != (ssize_t)sizeof r && r.fd >= 0)
        close(r.fd);
    return NULL;
}

/* A short detached thread for fn; false if none could be had. */
static bool spawn(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 256 << 10);
    int e = pthread_create(&t, &at, fn, arg);
    pthread_attr_destroy(&at);
    if (e != 0) {
        log_msg(LOG_WARN, "distribution: no thread for a handshake: %s", strerror(e));
        return false;
    }
    handshakes++;
    return true;
}

/* ---- sending ------------------------------------------------------------------- */

static void node_close(struct node *n, const char *why);
static void arm_tick(struct node *n);

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
    if (n->fd < 0) /* held until connected: charged now */
        recharge(n);
    want_flush(n);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct node *n = arg;
    if (n->fd < 0) /* connecting: it goes once connected */
        return;
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
    m->node->nmons--;
    HASH_DEL(m->node->mons, m);
    LIST_REMOVE(m, link);
    budget_release(sizeof *m + m->pid.len + m->ref.len + m->name.len);
    free(m->mem);
    free(m);
}

/* ---- ours: calls and monitors on names on other nodes ------------------------------------ */

/* A ref of ours, NEWER_REFERENCE_EXT: our node, creation and k. */
static void put_ref(struct gsp_buf *b, uint64_t k)
{
    uint8_t head[3] = {ERL_NEWER_REFERENCE_EXT, 0, 3}, w[16];
    gsp_buf_append(b, head, 3);
    term_put_atom(b, ec.thisnodename, strlen(ec.thisnodename));
    be32_put(w, creation);
    be32_put(w + 4, (uint32_t)(k & 0x3ffff));
    be32_put(w + 8, (uint32_t)(k >> 18));
    be32_put(w + 12, (uint32_t)(k >> 50));
    gsp_buf_append(b, w, 16);
}

static uint32_t be32_get(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The k of a ref put_ref made; 0 if t is not one. */
static uint64_t ref_of_ours(struct gsp_span t)
{
    uint8_t buf[512];
    const uint8_t *p = t.ptr, *end = t.ptr + t.len, *name;
    size_t len;
    if (t.len < 3 || p[0] != ERL_NEWER_REFERENCE_EXT || p[1] != 0 || p[2] != 3)
        return 0;
    p += 3;
    if (!term_atom(&p, end, buf, &name, &len) || len != strlen(ec.thisnodename) ||
        memcmp(name, ec.thisnodename, len) != 0 || end - p != 16 || be32_get(p) != creation)
        return 0;
    return (uint64_t)(be32_get(p + 4) & 0x3ffff) | (uint64_t)be32_get(p + 8) << 18 |
           (uint64_t)be32_get(p + 12) << 50;
}

/* {Op, OurPid, Name, Ref}: MONITOR_P or DEMONITOR_P of x's name. */
static void send_monitor(struct node *n, int op, const struct watch *x)
{
    static struct gsp_buf ctl;
    ctl.len = 0;
    term_put_tuple(&ctl, 4);
    term_put_int(&ctl, op, false, 0);
    gsp_buf_append(&ctl, self_pid, self_pid_len);
    term_put_atom(&ctl, x->name, x->name_len);
    put_ref(&ctl, x->ref);
    send_msg(n, &ctl, NULL);
}

/* REG_SEND {6, OurPid, '', Name} of msg. */
static void send_reg(struct node *n, const struct remote *to, const struct gsp_buf *msg)
{
    static struct gsp_buf ctl;
    ctl.len = 0;
    term_put_tuple(&ctl, 4);
    term_put_int(&ctl, OP_REG_SEND, false, 0);
    gsp_buf_append(&ctl, self_pid, self_pid_len);
    term_put_atom(&ctl, "", 0);
    term_put_atom(&ctl, to->name, to->name_len);
    send_msg(n, &ctl, msg);
}

/* A monitor of to's name on n under ref, sent: a call's (key: its
 * waiter) or a monitor's (key: monitor.c's ref). */
static struct watch *watch_new(struct node *n, const struct remote *to, uint64_t key, bool call,
                               uint64_t ref)
{
    struct watch *x = xcalloc(1, sizeof *x + to->name_len);
    x->key = key;
    x->ref = ref;
    x->call = call;
    x->node = n;
    x->name = (uint8_t *)(x + 1);
    x->name_len = to->name_len;
    memcpy(x->name, to->name, to->name_len);
    if (call)
        HASH_ADD(hh, outcalls, key, sizeof x->key, x);
    else
        HASH_ADD(hh, outmons, key, sizeof x->key, x);
    HASH_ADD(hh_ref, n->watches, ref, sizeof x->ref, x);
    LIST_INSERT_HEAD(&n->watching, x, link);
    budget_charge(sizeof *x + x->name_len);
    send_monitor(n, OP_MONITOR_P, x);
    return x;
}

static void watch_free(struct watch *x)
{
    if (x->call)
        HASH_DEL(outcalls, x);
    else
        HASH_DEL(outmons, x);
    HASH_DELETE(hh_ref, x->node->watches, x);
    LIST_REMOVE(x, link);
    budget_release(sizeof *x + x->name_len);
    free(x);
}

/* Ours has gone (answered, timed out, demonitored): the node forgets it. */
static void watch_end(struct watch *x)
{
    if (x && !x->node->closing)
        send_monitor(x->node, OP_DEMONITOR_P, x);
    if (x)
        watch_free(x);
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

/* A message to our pid or an alias: the reply {Ref, Reply} to a call of
 * ours, or nothing. */
static enum handled on_send(struct node *n, struct gsp_span msg)
{
    if (msg.ptr == NULL)
        return BAD;
    const uint8_t *p = msg.ptr, *end = msg.ptr + msg.len, *q;
    if (msg.len < 2 || p[0] != ERL_SMALL_TUPLE_EXT || p[1] != 2)
        return DONE;
    q = p += 2;
    if (!term_skip(&q, end, GSP_MAX_DEPTH_HARD, NULL))
        return BAD;
    uint64_t ref = ref_of_ours((struct gsp_span){p, (size_t)(q - p)});
    struct watch *x = NULL;
    if (ref)
        HASH_FIND(hh_ref, n->watches, &ref, sizeof ref, x);
    if (x == NULL || !x->call)
        return DONE; /* late: its caller gave up */
    struct waiter *w = waiter_find(x->key);
    watch_end(x);
    if (w == NULL)
        return DONE;
    if (convert(n, q, end, NULL))
        waiter_result(w, (struct gsp_span){conv.data, conv.len});
    else
        waiter_error_str(w, GSP_TOO_LARGE, "the reply is over the message limits, or malformed");
    return DONE;
}

/* MONITOR_P_EXIT to a call or monitor of ours: its name is not there
 * (noproc) or has ended. */
static enum handled on_monitor_exit(struct node *n, struct gsp_span ref_term, struct gsp_span reason)
{
    static const uint8_t unreadable[] = "°reason_too_large";
    uint64_t ref = ref_of_ours(ref_term);
    struct watch *x = NULL;
    if (ref)
        HASH_FIND(hh_ref, n->watches, &ref, sizeof ref, x);
    if (x == NULL)
        return DONE;
    const uint8_t *p = reason.ptr;
    bool noproc = is_atom(&p, reason.ptr + reason.len, "noproc");
    struct gsp_span r = {unreadable, sizeof unreadable - 1};
    if (convert(n, reason.ptr, reason.ptr + reason.len, NULL))
        r = (struct gsp_span){conv.data, conv.len};
    uint64_t key = x->key;
    bool call = x->call;
    char name[GSP_NAME_MAX + 1];
    size_t len = x->name_len;
    memcpy(name, x->name, len);
    watch_free(x);
    struct waiter *w = call ? waiter_find(key) : NULL;
    if (w && noproc) {
        char text[GSP_NAME_MAX + MAXNODELEN + 64];
        snprintf(text, sizeof text, "no process is registered as %.*s on %s", (int)len, name,
                 n->name);
        waiter_error_str(w, GSP_NOPROC, text);
    } else if (w)
        waiter_error(w, GSP_EXIT, r);
    else if (!call)
        monitor_remote_down(key, name, len, r);
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
    case OP_SEND:
    case OP_SEND_SENDER:
    case OP_ALIAS_SEND:
        return k == 3 ? on_send(n, msg) : BAD;
    case OP_SEND_TT:
    case OP_SEND_SENDER_TT:
    case OP_ALIAS_SEND_TT:
        return k == 4 ? on_send(n, msg) : BAD;
    case OP_MONITOR_P_EXIT:
        return k == 5 ? on_monitor_exit(n, el[3], el[4]) : BAD;
    case -1:
        return BAD;
    default: /* links, exits, group leaders: nothing */
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
    conn_flush_all(); /* replies to our calls */
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
    free(n->askers);
    free(n);
}

static void free_event(struct event **ev)
{
    if (*ev)
        event_free(*ev);
    *ev = NULL;
}

/* "node N cannot be reached: why", for nodedown answers. */
static const char *unreachable(const char *node, size_t len, const char *why)
{
    static char text[MAXNODELEN + 128];
    snprintf(text, sizeof text, "node %.*s cannot be reached: %s", (int)len, node, why);
    return text;
}

/* n's watches, as its connection is lost (up) or never made: calls hear
 * ["exit", "noconnection"] or nodedown, monitors their down
 * "noconnection", a client's monitor not yet answered nodedown. */
static void watches_lost(struct node *n, bool up, const char *why)
{
    static const uint8_t noconnection[] = "\xac"
                                          "noconnection";
    const struct gsp_span reason = {noconnection, sizeof noconnection - 1};
    struct watch *x;
    while ((x = LIST_FIRST(&n->watching)) != NULL) {
        uint64_t key = x->key, asker = x->asker;
        bool call = x->call;
        char name[GSP_NAME_MAX + 1];
        size_t len = x->name_len;
        memcpy(name, x->name, len);
        watch_free(x); /* first: what follows finds it gone */
        struct waiter *w = waiter_find(call ? key : asker);
        if (call && w && up)
            waiter_error(w, GSP_EXIT, reason);
        else if (call && w)
            waiter_error_str(w, GSP_NODEDOWN, unreachable(n->name, strlen(n->name), why));
        else if (!call && asker) {
            monitor_remote_down(key, NULL, 0, (struct gsp_span){0});
            if (w)
                waiter_error_str(w, GSP_NODEDOWN, unreachable(n->name, strlen(n->name), why));
        } else if (!call)
            monitor_remote_down(key, name, len, reason);
    }
}

static void node_close(struct node *n, const char *why)
{
    if (n->closing)
        return;
    n->closing = true;
    bool up = n->fd >= 0;
    if (up) {
        log_msg(LOG_INFO, "node %s disconnected: %s", n->name, why);
        nnodes--;
    } else
        log_msg(LOG_WARN, "node %s cannot be reached: %s", n->name, why);
    LIST_REMOVE(n, link);
    struct pending *pc;
    while ((pc = LIST_FIRST(&n->pending)) != NULL)
        pending_drop(pc);
    struct dmon *m;
    while ((m = LIST_FIRST(&n->monitors)) != NULL)
        dmon_free(m);
    watches_lost(n, up, why);
    for (size_t i = 0; i < n->naskers; i++) {
        struct waiter *w = waiter_find(n->askers[i]);
        if (w)
            waiter_error_str(w, GSP_NODEDOWN, unreachable(n->name, strlen(n->name), why));
    }
    n->naskers = 0;
    free_event(&n->rev);
    free_event(&n->wev);
    free_event(&n->tick);
    free_event(&n->resume);
    free_event(&n->connect_timer);
    if (up)
        close(n->fd);
    event_del(n->flush);
    event_assign(n->flush, loop_base, -1, 0, node_free, n);
    event_active(n->flush, EV_TIMEOUT, 1);
}

static struct node *node_named(const char *name, size_t len)
{
    struct node *n;
    LIST_FOREACH(n, &nodes, link)
    if (strlen(n->name) == len && memcmp(n->name, name, len) == 0)
        return n;
    return NULL;
}

/* A node not yet connected (fd -1): what is sent to it waits in out. */
static struct node *node_make(const char *name, size_t len)
{
    struct node *n = xcalloc(1, sizeof *n);
    snprintf(n->name, sizeof n->name, "%.*s", (int)len, name);
    n->fd = -1;
    LIST_INIT(&n->pending);
    LIST_INIT(&n->monitors);
    LIST_INIT(&n->watching);
    n->flush = loop_event(LOOP_PRIO_CLIENT, -1, 0, on_flush, n);
    n->resume = loop_event(LOOP_PRIO_CLIENT, -1, 0, on_resume, n);
    LIST_INSERT_HEAD(&nodes, n, link);
    return n;
}

/* n is connected on fd: what waited for it goes out, and those who asked
 * hear so. */
static void node_attach(struct node *n, int fd, bool outbound)
{
    int one = 1; /* as Erlang does: a small reply must not wait out a delayed ACK (40 ms) */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    n->fd = fd;
    n->outbound = outbound;
    n->heard_ms = n->said_ms = now_ms();
    free_event(&n->connect_timer);
    n->rev = loop_event(LOOP_PRIO_CLIENT, fd, EV_READ | EV_PERSIST, on_read, n);
    n->wev = loop_event(LOOP_PRIO_CLIENT, fd, EV_WRITE, on_flush, n);
    n->tick = loop_event(LOOP_PRIO_OWN, -1, EV_PERSIST, on_tick, n);
    event_add(n->rev, NULL);
    arm_tick(n);
    nnodes++;
    log_msg(LOG_INFO, "node %s connected (%s)", n->name, outbound ? "we connected" : "it connected");
    for (size_t i = 0; i < n->naskers; i++) {
        struct waiter *w = waiter_find(n->askers[i]);
        if (w)
            waiter_result(w, enc_nil);
    }
    n->naskers = 0;
    struct watch *x;
    LIST_FOREACH(x, &n->watching, link)
    {
        struct waiter *w = x->asker ? waiter_find(x->asker) : NULL;
        if (w)
            waiter_result_uint(w, x->key);
        x->asker = 0;
    }
    if (n->out.len)
        want_flush(n);
}

/* A second connection to a connected node. Both ends keep the one the node
 * with the smaller name opened, so that two nodes connecting to each other
 * at once keep the same one; a peer that connects again (it restarted)
 * replaces its old connection. */
static void node_again(struct node *n, int fd, bool outbound)
{
    const char *by_new = outbound ? ec.thisnodename : n->name;
    const char *by_old = n->outbound ? ec.thisnodename : n->name;
    if (outbound == n->outbound ? !outbound : strcmp(by_new, by_old) < 0) {
        char name[MAXNODELEN + 1];
        snprintf(name, sizeof name, "%s", n->name);
        node_close(n, "it connected again");
        node_attach(node_make(name, strlen(name)), fd, outbound);
    } else
        close(fd);
}

static void on_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    node_close(arg, "no connection in time");
    conn_flush_all();
}

/* The node `to` names, connected or connecting; NULL, with why, if a
 * connection cannot be asked for now. */
static struct node *node_for(const struct remote *to, const char **why)
{
    struct node *n = node_named(to->node, to->node_len);
    if (n && n->out.len - n->out_off > OUT_MAX) {
        *why = "more than 64 MiB already waits to be sent to it";
        return NULL;
    }
    if (n)
        return n;
    if (shutting_down) {
        *why = "the daemon is shutting down";
        return NULL;
    }
    if (handshakes >= HANDSHAKES_MAX) {
        *why = "too many handshakes under way; try again";
        return NULL;
    }
    struct hs_result *a = xcalloc(1, sizeof *a);
    a->attempt = ++last_attempt;
    snprintf(a->name, sizeof a->name, "%.*s", (int)to->node_len, to->node);
    if (!spawn(connect_to, a)) {
        free(a);
        *why = "no thread for a handshake";
        return NULL;
    }
    n = node_make(to->node, to->node_len);
    n->attempt = last_attempt;
    n->connect_timer = loop_event(LOOP_PRIO_OWN, -1, 0, on_connect_timeout, n);
    loop_arm(n->connect_timer, CONNECT_MS);
    log_msg(LOG_INFO, "node %s: connecting", n->name);
    return n;
}

/* ---- accepting and connecting --------------------------------------------------------- */

static void on_handshake(evutil_socket_t fd, short what, void *arg)
{
    (void)what, (void)arg;
    struct hs_result r;
    while (read(fd, &r, sizeof r) == (ssize_t)sizeof r) {
        handshakes--;
        r.name[sizeof r.name - 1] = r.why[sizeof r.why - 1] = 0;
        struct node *n = r.fd >= 0 || r.attempt ? node_named(r.name, strlen(r.name)) : NULL;
        if (r.attempt && (n == NULL || n->attempt != r.attempt)) { /* given up on */
            if (r.fd >= 0)
                close(r.fd);
        } else if (r.fd < 0 && r.attempt) {
            if (n->fd < 0)
                node_close(n, r.why);
        } else if (r.fd < 0)
            log_msg(LOG_WARN,
                    "distribution: handshake from %s failed (a wrong cookie, or too slow)", r.peer);
        else if (n && n->fd >= 0)
            node_again(n, r.fd, r.attempt != 0);
        else
            node_attach(n ? n : node_make(r.name, strlen(r.name)), r.fd, r.attempt != 0);
    }
    conn_flush_all();
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what, (void)arg;
    for (int i = 0; i < 16; i++) {
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            return;
        if (handshakes >= HANDSHAKES_MAX || shutting_down) {
            log_msg(LOG_WARN, "distribution: %u handshakes under way: a connection refused",
                    handshakes);
            close(c);
        } else if (!spawn(handshake, (void *)(intptr_t)c))
            close(c);
    }
}

/* What a value going to n may become (mp_to_term): its atoms and, for the
 * daemon's own values, words; a module's GS_EXT_ATOMs where made_atoms. */
static struct term_ctx ctx_for(const struct node *n, const struct atom_set *with, bool made_atoms)
{
    return (struct term_ctx){.atoms = &n->atoms,
                             .words = with,
                             .self = ec.thisnodename,
                             .self_len = strlen(ec.thisnodename),
                             .made_atoms = made_atoms};
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
            struct term_ctx ctx = ctx_for(n, &words, true);
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
    struct term_ctx ctx = ctx_for(n, &words, true);
    ctx.tuples = tuples, ctx.ntuples = nt;
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
    if (n->fd >= 0)
        msgpack_pack_str_with_body(pk, n->name, strlen(n->name));
}

static unsigned nodes_count(void)
{
    return nnodes;
}

static bool is_self(const char *node, size_t len)
{
    return len == strlen(ec.thisnodename) && memcmp(node, ec.thisnodename, len) == 0;
}

/* v (msgpack) as a term for n, appended to out. */
static bool term_for(const struct node *n, struct gsp_span v, bool module, struct gsp_buf *out)
{
    msgpack_object o;
    msgpack_zone_clear(zone);
    if (!gsp_decode(v.ptr, v.len, zone, &o))
        return false;
    struct term_ctx ctx = ctx_for(n, NULL, module);
    return mp_to_term(&o, out, &ctx, GSP_MAX_DEPTH_HARD + 1);
}

static void nodedown(struct waiter *w, const struct remote *to, const char *why)
{
    waiter_error_str(w, GSP_NODEDOWN, unreachable(to->node, to->node_len, why));
}

/* {'$gen_call', {OurPid, Ref}, Req} after a monitor of the name under the
 * same ref, as gen:call does: a name not there answers noproc at once. */
static void h_call(const struct remote *to, struct gsp_span req, bool module, struct waiter *w)
{
    static struct gsp_buf msg;
    const char *why = NULL;
    struct node *n = node_for(to, &why);
    if (n == NULL) {
        nodedown(w, to, why);
        return;
    }
    uint64_t ref = ++last_ref;
    msg.len = 0;
    term_put_tuple(&msg, 3);
    term_put_atom(&msg, "$gen_call", 9);
    term_put_tuple(&msg, 2);
    gsp_buf_append(&msg, self_pid, self_pid_len);
    put_ref(&msg, ref);
    if (!term_for(n, req, module, &msg)) {
        waiter_error_str(w, GSP_BADARG, "the request cannot be written as an Erlang term");
        return;
    }
    watch_new(n, to, w->id, true, ref);
    send_reg(n, to, &msg);
}

static bool h_post(const struct remote *to, enum msg_kind kind, struct gsp_span m, bool module,
                   struct waiter *w)
{
    static struct gsp_buf msg;
    const char *why = NULL;
    struct node *n = node_for(to, &why);
    if (n == NULL) {
        if (w)
            nodedown(w, to, why);
        return false;
    }
    msg.len = 0;
    if (kind == MSG_CAST) {
        term_put_tuple(&msg, 2);
        term_put_atom(&msg, "$gen_cast", 9);
    }
    if (!term_for(n, m, module, &msg)) {
        if (w)
            waiter_error_str(w, GSP_BADARG, "the message cannot be written as an Erlang term");
        return false;
    }
    send_reg(n, to, &msg);
    if (w && n->fd >= 0)
        waiter_result(w, enc_nil);
    else if (w) { /* answered once connected */
        n->askers = xrealloc(n->askers, (n->naskers + 1) * sizeof *n->askers);
        n->askers[n->naskers++] = w->id;
    }
    return true;
}

static void h_monitor(const struct remote *to, uint64_t mref, struct waiter *w)
{
    static const uint8_t noconnection[] = "\xac"
                                          "noconnection";
    const char *why = NULL;
    struct node *n = node_for(to, &why);
    if (n == NULL && w) {
        monitor_remote_down(mref, NULL, 0, (struct gsp_span){0});
        nodedown(w, to, why);
    } else if (n == NULL)
        monitor_remote_down(mref, to->name, to->name_len,
                            (struct gsp_span){noconnection, sizeof noconnection - 1});
    else {
        struct watch *x = watch_new(n, to, mref, false, ++last_ref);
        if (w && n->fd >= 0)
            waiter_result_uint(w, mref);
        else if (w)
            x->asker = w->id;
    }
}

static void h_unwatch(uint64_t mref)
{
    struct watch *x;
    HASH_FIND(hh, outmons, &mref, sizeof mref, x);
    watch_end(x);
}

static void h_call_gone(uint64_t waiter)
{
    struct watch *x;
    HASH_FIND(hh, outcalls, &waiter, sizeof waiter, x);
    watch_end(x);
}

static const struct dist_hooks hooks = {answer,  server_ended, nodes_pack, nodes_count,
                                        is_self, h_call,       h_post,     h_monitor,
                                        h_unwatch, h_call_gone};

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

static void arm_tick(struct node *n)
{
    struct timeval tv = {conf.tick_ms / 4000, (conf.tick_ms / 4 % 1000) * 1000};
    event_add(n->tick, &tv);
}

bool dist_reload(const struct dist_config *a, const struct dist_config *b)
{
    bool same = (a->node == NULL) == (b->node == NULL) &&
                (a->node == NULL ||
                 (strcmp(a->node, b->node) == 0 && strcmp(a->cookie_file, b->cookie_file) == 0 &&
                  strcmp(a->listen, b->listen) == 0 && a->port == b->port));
    if (same && dist_hooks && b->node && b->tick_ms != conf.tick_ms) {
        conf.tick_ms = b->tick_ms;
        struct node *n;
        LIST_FOREACH(n, &nodes, link)
        if (n->tick)
            arm_tick(n);
        log_msg(LOG_INFO, "distribution: tick %u ms", conf.tick_ms);
    }
    return same;
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
    creation = ((unsigned)time(NULL) ^ (unsigned)getpid() << 16) | 4;
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
        "crashed", "exit_status", "restart", "timeout", "bad_return_value", "system_limit", NULL};
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
