/* dist.c — gsd as a hidden Erlang node: its connections to other nodes,
 * accepted or made on demand. ei runs only the handshake, in a thread per
 * connection; everything after it is framed on the loop: ticks, and each
 * message handed to dist_in.c (peers' requests) or dist_out.c (answers to
 * ours). */
#include "dist.h"

#include <arpa/inet.h>
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

#define HANDSHAKES_MAX 8                 /* handshakes under way at once; more are refused */
#define HANDSHAKE_MS 5000                /* a peer that takes longer is dropped */
#define READ_BYTES 65536                 /* read per pass, per node */
#define PASS_MSGS 64                     /* messages handled per pass, per node */
#define OUT_MAX (64u << 20)              /* unread output past which a peer is dropped */
#define HOLD_MS 5                        /* retry of a node held by a full mailbox */
#define CONNECT_MS (HANDSHAKE_MS + 2000) /* a connection asked for: epmd, connect, handshake */

static ei_cnode ec;
static struct dist_config conf;
static int lfd = -1, epmd_fd = -1, hs_pipe[2] = {-1, -1};
static int hs_lfd = -1; /* lfd for the threads: set before the first, never changed */
static struct event *accept_ev, *hs_ev;
static unsigned handshakes;
static LIST_HEAD(node_list, node) nodes = LIST_HEAD_INITIALIZER(nodes);
static struct node_list closed = LIST_HEAD_INITIALIZER(closed); /* closed, not yet freed */
static unsigned nnodes;
static uint64_t last_attempt;
static struct atom_set words; /* atoms the daemon sends of its own: exit reasons */
static struct gsp_buf conv;   /* a message converted, reused */
static msgpack_zone *zone;
struct dist_self self;

/* ---- the handshake, in a thread: ei's socket callbacks ------------------- */

static _Thread_local int hs_fd = -1;  /* the socket this thread shakes hands on */
static _Thread_local bool hs_closed;  /* ei closed it */
static _Thread_local bool hs_patched; /* the 'N' message has its flags */
static _Thread_local bool hs_accepting;
static _Thread_local bool hs_nok; /* the status was nok: a simultaneous connect */
static _Thread_local uint8_t hs_first[2 + 15 + MAXNODELEN]; /* the first message read */
static _Thread_local size_t hs_first_len;

/* The nodes we connect to or have connected to (a connect under way, or
 * its connection up), for two nodes connecting to each other at once: the
 * acceptor with the greater name refuses the other's connection (status
 * nok) and its own goes on, as Erlang's dist_util does. Handshake threads
 * read it; the loop alone changes it. */
/* Names handshake threads read and the loop alone changes. */
struct name_set {
    pthread_mutex_t mu;
    char (*v)[MAXNODELEN + 1];
    size_t n, cap;
};
static struct name_set ours = {.mu = PTHREAD_MUTEX_INITIALIZER};
/* Nodes whose connect to us has been answered ok, not yet through: a
 * connect of ours would race it, so it is waited for instead. */
static struct name_set theirs = {.mu = PTHREAD_MUTEX_INITIALIZER};

static ssize_t names_find(const struct name_set *set, const char *name)
{
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->v[i], name) == 0)
            return (ssize_t)i;
    return -1;
}

static bool names_has(struct name_set *set, const char *name)
{
    pthread_mutex_lock(&set->mu);
    bool has = names_find(set, name) >= 0;
    pthread_mutex_unlock(&set->mu);
    return has;
}

static void names_set(struct name_set *set, const char *name, bool on)
{
    pthread_mutex_lock(&set->mu);
    ssize_t i = names_find(set, name);
    if (on && i < 0) {
        if (set->n == set->cap) {
            set->cap = set->cap ? 2 * set->cap : 8;
            set->v = xrealloc(set->v, set->cap * sizeof *set->v);
        }
        snprintf(set->v[set->n++], sizeof set->v[0], "%s", name);
    } else if (!on && i >= 0)
        memcpy(set->v[i], set->v[--set->n], sizeof set->v[0]);
    pthread_mutex_unlock(&set->mu);
}

static void names_free(struct name_set *set)
{
    pthread_mutex_lock(&set->mu);
    free(set->v);
    set->v = NULL;
    set->n = set->cap = 0;
    pthread_mutex_unlock(&set->mu);
}

static bool first_complete(void)
{
    return hs_first_len >= 2 && hs_first_len >= 2 + (size_t)(hs_first[0] << 8 | hs_first[1]);
}

/* The connecting node's name, from the first message an acceptor reads:
 * 'N' (flags 8, creation 4, length 2, name) or 'n' (version 2, flags 4,
 * name). */
static bool first_name(char *name, size_t size)
{
    if (!first_complete())
        return false;
    size_t body = (size_t)(hs_first[0] << 8 | hs_first[1]), at, len; /* not what came after */
    const uint8_t *m = hs_first + 2;
    if (body < 1)
        return false;
    if (m[0] == 'N' && body >= 15)
        at = 15, len = (size_t)(m[13] << 8 | m[14]);
    else if (m[0] == 'n' && body >= 7)
        at = 7, len = body - 7;
    else
        return false;
    if (at + len > body || len >= size)
        return false;
    memcpy(name, m + at, len);
    name[len] = 0;
    return true;
}
#define CTX_FD(ctx) ((int)(intptr_t)(ctx))

static int cb_socket(void **ctx, void *setup)
{
    (void)setup;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    *ctx = (void *)(intptr_t)fd;
    hs_fd = fd; /* a connecting thread's: the one it shakes hands on */
    hs_first_len = 0;
    hs_patched = false;
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
    char name[MAXNODELEN + 1];
    if (CTX_FD(ctx) == hs_fd && hs_accepting && *len == 5 && memcmp(buf + 2, "sok", 3) == 0 &&
        first_name(name, sizeof name) && strcmp(self.name, name) > 0 && names_has(&ours, name)) {
        static const char nok[] = {0, 4, 's', 'n', 'o', 'k'}; /* ours goes on */
        hs_nok = true;
        if (wait_for(CTX_FD(ctx), POLLOUT, tmo) == 0 && write(CTX_FD(ctx), nok, sizeof nok) < 0)
            return errno;
        return ECONNREFUSED;
    }
    if (CTX_FD(ctx) == hs_fd && hs_accepting && *len == 5 && memcmp(buf + 2, "sok", 3) == 0 &&
        first_name(name, sizeof name))
        names_set(&theirs, name, true); /* until the loop hears how it ended */
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
    if (CTX_FD(ctx) == hs_fd && !first_complete()) { /* kept: the name, or the status */
        size_t k =
            (size_t)n < sizeof hs_first - hs_first_len ? (size_t)n : sizeof hs_first - hs_first_len;
        memcpy(hs_first + hs_first_len, buf, k);
        hs_first_len += k;
    }
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
    bool nok;         /* failed as a simultaneous connect: the other connection goes on */
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
    hs_accepting = true;
    ErlConnect conp;
    int fd = ei_accept_tmo(&ec, hs_lfd, &conp, HANDSHAKE_MS);
    if (fd < 0) {
        if (!hs_closed)
            close(r.fd);
        r.fd = -1;
        r.nok = hs_nok;
        first_name(r.name, sizeof r.name);
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
        r.nok = first_complete() && hs_first_len == 6 && memcmp(hs_first + 2, "snok", 4) == 0;
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

static void arm_tick(struct node *n);

/* node_close from a loop event of n's own: those it answers hear it now. */
static void node_lost(struct node *n, const char *why)
{
    node_close(n, why);
    conn_flush_all();
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

/* Written by the flush. */
void node_send(struct node *n, const struct gsp_buf *ctl, const struct gsp_buf *payload)
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
                node_lost(n, "it does not read what it is sent");
                return;
            }
            event_add(n->wev, NULL);
            return;
        }
        if (w <= 0) {
            node_lost(n, "write failed");
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

bool node_convert(struct node *n, const uint8_t *p, const uint8_t *end, struct term_marks *marks,
                  struct gsp_span *out)
{
    msgpack_packer pk;
    conv.len = 0;
    gsp_packer_init(&pk, &conv);
    if (!term_to_mp(&p, end, &conv, &pk, VALUE_DEPTH_MAX, &n->atoms, marks) || p != end)
        return false;
    *out = (struct gsp_span){conv.data, conv.len};
    return (!limits.message.max_size || conv.len <= limits.message.max_size) &&
           value_fits(conv.data, conv.len, GSP_WRAP_ERROR);
}

struct term_ctx node_ctx(const struct node *n, bool with_words, bool made_atoms)
{
    return (struct term_ctx){.atoms = &n->atoms,
                             .words = with_words ? &words : NULL,
                             .self = self.name,
                             .self_len = self.name_len,
                             .made_atoms = made_atoms};
}

msgpack_zone *dist_zone(void)
{
    msgpack_zone_clear(zone);
    return zone;
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
        return k == 4 ? in_reg_send(n, el[3], msg) : BAD;
    case OP_REG_SEND_TT:
        return k == 5 ? in_reg_send(n, el[3], msg) : BAD;
    case OP_MONITOR_P:
        if (k != 4)
            return BAD;
        in_monitor(n, el);
        return DONE;
    case OP_DEMONITOR_P:
        if (k != 4)
            return BAD;
        in_demonitor(n, el);
        return DONE;
    case OP_SEND:
    case OP_SEND_SENDER:
    case OP_ALIAS_SEND:
        return k == 3 ? out_send(n, msg) : BAD;
    case OP_SEND_TT:
    case OP_SEND_SENDER_TT:
    case OP_ALIAS_SEND_TT:
        return k == 4 ? out_send(n, msg) : BAD;
    case OP_MONITOR_P_EXIT:
        return k == 5 ? out_monitor_exit(n, el[3], el[4]) : BAD;
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
        uint32_t len = be32_get(p);
        if (len == 0) { /* a tick: answered, as ei does */
            at += 4;
            send_tick(n);
            continue;
        }
        if (limits.message.max_size && len > limits.message.max_size + 64) {
            log_msg(LOG_WARN, "node %s: a message of %u bytes, over the limit of %llu", n->name,
                    len, (unsigned long long)limits.message.max_size);
            node_close(n, "message over the size limit");
            break;
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
            break;
        }
        at += 4 + len;
        done++;
    }
    scratch_reset();
    conn_flush_all(); /* replies to our calls, or what losing n answered */
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
        node_lost(n, r == 0 ? "it closed the connection" : strerror(errno));
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
        node_lost(n, "no tick in time");
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
    LIST_REMOVE(n, link);
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

void node_close(struct node *n, const char *why)
{
    if (n->closing)
        return;
    n->closing = true;
    bool up = n->fd >= 0;
    if (up) {
        log_msg(LOG_INFO, "node %s disconnected: %s", n->name, why);
        nnodes--;
        if (n->outbound)
            names_set(&ours, n->name, false);
    } else
        log_msg(LOG_WARN, "node %s cannot be reached: %s", n->name, why);
    LIST_REMOVE(n, link);
    LIST_INSERT_HEAD(&closed, n, link);
    in_lost(n);
    out_lost(n, up, why);
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
    if (outbound)
        names_set(&ours, n->name, true);
    n->heard_ms = n->said_ms = now_ms();
    free_event(&n->connect_timer);
    n->rev = loop_event(LOOP_PRIO_CLIENT, fd, EV_READ | EV_PERSIST, on_read, n);
    n->wev = loop_event(LOOP_PRIO_CLIENT, fd, EV_WRITE, on_flush, n);
    n->tick = loop_event(LOOP_PRIO_OWN, -1, EV_PERSIST, on_tick, n);
    event_add(n->rev, NULL);
    arm_tick(n);
    nnodes++;
    log_msg(LOG_INFO, "node %s connected (%s)", n->name,
            outbound ? "we connected" : "it connected");
    out_connected(n);
    if (n->out.len)
        want_flush(n);
}

/* A second connection to a connected node: one the handshake's nok did not
 * settle (the other end's connect was done before ours reached it). Both
 * ends keep the one the node with the greater name opened, as the nok
 * would have; a peer that connects again (it restarted) replaces its old
 * connection. */
static void node_again(struct node *n, int fd, bool outbound)
{
    const char *by_new = outbound ? self.name : n->name;
    const char *by_old = n->outbound ? self.name : n->name;
    if (outbound == n->outbound ? !outbound : strcmp(by_new, by_old) > 0) {
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

struct node *node_for(const struct remote *to, const char **why)
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
    char name[MAXNODELEN + 1];
    snprintf(name, sizeof name, "%.*s", (int)to->node_len, to->node);
    if (names_has(&theirs, name)) { /* it is connecting to us: wait for that */
        n = node_make(to->node, to->node_len);
        n->connect_timer = loop_event(LOOP_PRIO_OWN, -1, 0, on_connect_timeout, n);
        loop_arm(n->connect_timer, CONNECT_MS);
        return n;
    }
    if (handshakes >= HANDSHAKES_MAX) {
        *why = "too many handshakes under way; try again";
        return NULL;
    }
    struct hs_result *a = xcalloc(1, sizeof *a);
    a->attempt = ++last_attempt;
    snprintf(a->name, sizeof a->name, "%.*s", (int)to->node_len, to->node);
    if (names_has(&ours, a->name)) { /* an attempt given up on, its thread still running */
        free(a);
        *why = "an earlier attempt is still under way; try again";
        return NULL;
    }
    names_set(&ours, a->name, true); /* before the thread can answer to it */
    if (!spawn(connect_to, a)) {
        names_set(&ours, a->name, false);
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
        struct node *n = node_named(r.name, strlen(r.name));
        if (r.fd < 0 && r.nok) /* a simultaneous connect: the other connection goes on */
            log_msg(LOG_INFO, "node %s: connecting to each other at once: %s", r.name,
                    r.attempt ? "its connection goes on" : "ours goes on");
        else if (r.fd < 0 && r.attempt) {
            if (n && n->attempt == r.attempt && n->fd < 0)
                node_close(n, r.why);
        } else if (r.fd < 0) {
            log_msg(LOG_WARN,
                    "distribution: handshake from %s failed (a wrong cookie, or too slow)", r.peer);
            if (n && n->attempt == 0 && n->fd < 0) /* it waited for this one */
                node_close(n, "its connection to us failed");
        }
        else if (n && n->fd >= 0)
            node_again(n, r.fd, r.attempt != 0);
        else
            node_attach(n ? n : node_make(r.name, strlen(r.name)), r.fd, r.attempt != 0);
        if (!r.attempt)
            names_set(&theirs, r.name, false);
        /* Still ours only if the connection we made is the one kept. */
        if (r.attempt && !((n = node_named(r.name, strlen(r.name))) && n->fd >= 0 && n->outbound))
            names_set(&ours, r.name, false);
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
    return len == self.name_len && memcmp(node, self.name, len) == 0;
}

static const struct dist_hooks hooks = {.answer = in_answer,
                                        .server_ended = in_server_ended,
                                        .nodes = nodes_pack,
                                        .count = nodes_count,
                                        .is_self = is_self,
                                        .call = out_call,
                                        .post = out_post,
                                        .monitor = out_monitor,
                                        .unwatch = out_unwatch,
                                        .call_gone = out_call_gone};

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
    if (dist_hooks && b->node && b->tick_ms != conf.tick_ms) {
        conf.tick_ms = b->tick_ms;
        struct node *n;
        LIST_FOREACH(n, &nodes, link)
            if (n->tick)
                arm_tick(n);
        log_msg(LOG_INFO, "distribution: tick %u ms", conf.tick_ms);
    }
    return (a->node == NULL) == (b->node == NULL) &&
           (a->node == NULL ||
            (strcmp(a->node, b->node) == 0 && strcmp(a->cookie_file, b->cookie_file) == 0 &&
             strcmp(a->listen, b->listen) == 0 && a->port == b->port));
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
    self.creation = ((unsigned)time(NULL) ^ (unsigned)getpid() << 16) | 4;
    if (ei_init() != 0 || ei_connect_xinit_ussi(&ec, host, alive, cfg->node, &addr, cookie,
                                                self.creation, &cbs, sizeof cbs, NULL) < 0) {
        memset(cookie, 0, sizeof cookie);
        log_msg(LOG_ERR, "distribution: ei could not be set up for %s", cfg->node);
        return -1;
    }
    memset(cookie, 0, sizeof cookie);
    self.name = ei_thisnodename(&ec);
    self.name_len = strlen(self.name);
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
    be32_put(num + 8, self.creation);
    gsp_buf_append(&b, num, 12);
    memcpy(self.pid, b.data, b.len);
    self.pid_len = b.len;
    gsp_buf_free(&b);
    static const char *const reason_words[] = {
        "normal",           "shutdown",     "killed",      "noproc",  "noconnection",
        "calling_self",     "crashed",      "exit_status", "restart", "timeout",
        "bad_return_value", "system_limit", NULL};
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
    while ((n = LIST_FIRST(&nodes)) != NULL)
        node_close(n, "the daemon is stopping");
    while ((n = LIST_FIRST(&closed)) != NULL) {
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
    names_free(&ours); /* a handshake still under way may look: under their locks */
    names_free(&theirs);
    gsp_buf_free(&conv);
    msgpack_zone_free(zone);
    zone = NULL;
    dist_hooks = NULL;
}
