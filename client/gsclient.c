/*
 * gsclient.c — libgsclient: the gsd client, asynchronous at its core.
 *
 * Requests are packed into the output buffer and registered by msgid (a
 * hash for matching responses, a min-heap of deadlines for timeouts, and,
 * until their first byte is written, a list in stream order, so that one
 * whose deadline passes unsent can be cut out of the buffer).
 * gsc_process reads and frames what arrived, completes the matching
 * requests, writes what it can, and expires what is overdue; nothing in it
 * blocks. The synchronous calls queue a request with a collecting callback
 * and drive the same machinery with poll() until it has completed.
 * Responses to unknown msgids (answers that came after their deadline) are
 * dropped; down notifications go to a handler or a queue; an error
 * notification is remembered to explain the close that follows it. Every
 * wire detail goes through protocol/gsp.h.
 */
#include "gsclient.h"
#include "gsp.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uthash.h>

#define GSC_READ_CHUNK 65536  /* bytes asked of each recv() */
#define GSC_READS_PER_TURN 16 /* recv()s per gsc_process: bounded work */
#define GSC_OUT_COMPACT 65536 /* sent bytes dropped from the buffer's front past this */
#define NO_SLOT ((size_t)-1)  /* a request without a deadline */

/* A request in flight. */
struct gsc_req {
    uint32_t msgid;     /* the key */
    long long deadline; /* monotonic ms; meaningful when slot != NO_SLOT */
    size_t slot;        /* index in the deadline heap, or NO_SLOT */
    gsc_done_fn *done;  /* completion, or NULL */
    void *arg;
    uint64_t pos; /* where its bytes start in the output stream */
    size_t len;   /* how many there are */
    bool unsent;  /* none written yet: it is in c->unsent */
    TAILQ_ENTRY(gsc_req) unsent_link;
    UT_hash_handle hh;
};

/* A queued down notification. */
struct gsc_down_node {
    gsc_down *down;
    struct gsc_down_node *next;
};

struct gsc {
    int fd;                /* the connection */
    bool broken;           /* no further requests: see errmsg */
    bool closing;          /* gsc_close ran inside a callback: free on the way out */
    int depth;             /* public calls on the stack that run callbacks */
    uint32_t next_msgid;   /* msgid of the next request */
    struct gsc_req *reqs;  /* in flight, by msgid */
    size_t inflight;       /* how many */
    struct gsc_req **heap; /* the ones with a deadline, earliest first */
    size_t nheap, heapcap;
    struct gsp_buf out; /* requests to send, from out_off on */
    size_t out_off;     /* bytes of `out` already sent */
    uint64_t out_base;  /* stream position of out.data[0] */
    uint64_t packing;   /* stream position of the request being packed */
    /* The requests none of whose bytes are sent yet, in stream order. */
    TAILQ_HEAD(, gsc_req) unsent;
    struct gsp_buf in;          /* bytes received, from offset `in_off` on */
    size_t in_off;              /* start of the next unread message in `in` */
    struct gsp_framer framer;   /* scans the message at in_off */
    struct gsp_limits limits;   /* what the daemon may send us */
    struct gsc_down_node *head; /* down notifications, oldest first */
    struct gsc_down_node *tail; /* the newest, where the next one goes */
    gsc_down_fn *on_down;       /* down handler, or NULL: queue them */
    void *down_arg;
    gsc_watch_fn *watch; /* an event-loop adapter, or NULL */
    void (*watch_release)(void *);
    void *watch_arg;
    char note[256];   /* the daemon's last error notification, or "" */
    char errmsg[512]; /* why the last call failed */
};

/* Allocates or ends the process. */
static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL)
        abort(); /* out of memory ends the process */
    return p;
}

/* Initialises a zone or ends the process. */
static void zone_init(msgpack_zone *z)
{
    if (!msgpack_zone_init(z, MSGPACK_ZONE_CHUNK_SIZE))
        abort(); /* out of memory ends the process */
}

/* Sets the human reason of the last failure. */
__attribute__((format(printf, 2, 3))) static void seterr(gsc *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
}

/* Milliseconds on the monotonic clock. */
static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the deadline heap ------------------------------------------------------ */

static void heap_set(gsc *c, size_t i, struct gsc_req *r)
{
    c->heap[i] = r;
    r->slot = i;
}

static void heap_up(gsc *c, size_t i)
{
    struct gsc_req *r = c->heap[i];
    while (i > 0 && c->heap[(i - 1) / 2]->deadline > r->deadline) {
        heap_set(c, i, c->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(c, i, r);
}

static void heap_down(gsc *c, size_t i)
{
    struct gsc_req *r = c->heap[i];
    for (;;) {
        size_t k = 2 * i + 1;
        if (k >= c->nheap)
            break;
        if (k + 1 < c->nheap && c->heap[k + 1]->deadline < c->heap[k]->deadline)
            k++;
        if (c->heap[k]->deadline >= r->deadline)
            break;
        heap_set(c, i, c->heap[k]);
        i = k;
    }
    heap_set(c, i, r);
}

static void heap_push(gsc *c, struct gsc_req *r)
{
    if (c->nheap == c->heapcap) {
        c->heapcap = c->heapcap ? 2 * c->heapcap : 64;
        c->heap = realloc(c->heap, c->heapcap * sizeof *c->heap);
        if (c->heap == NULL)
            abort(); /* out of memory ends the process */
    }
    heap_set(c, c->nheap++, r);
    heap_up(c, r->slot);
}

static void heap_remove(gsc *c, struct gsc_req *r)
{
    size_t i = r->slot;
    if (i == NO_SLOT)
        return;
    r->slot = NO_SLOT;
    struct gsc_req *last = c->heap[--c->nheap];
    if (i == c->nheap)
        return;
    heap_set(c, i, last);
    heap_up(c, i);
    heap_down(c, last->slot);
}

/* ---- life of a connection --------------------------------------------------- */

int gsc_socket_path(const char *path, char *out, size_t n)
{
    if (gsp_socket_path(path, out, n) < 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    const char *env = getenv("GSD_SOCKET");
    if ((path && *path) || (env && *env) || geteuid() == 0)
        return 0;
    /* A user whose own socket does not exist tries the system daemon's. */
    struct stat st;
    if (stat(out, &st) == 0 || (errno != ENOENT && errno != ENOTDIR) ||
        stat(GSC_SYSTEM_SOCKET, &st) != 0 || n < sizeof GSC_SYSTEM_SOCKET)
        return 0;
    memcpy(out, GSC_SYSTEM_SOCKET, sizeof GSC_SYSTEM_SOCKET);
    return 0;
}

/* Connects; without wait, a listen backlog that is full fails with EAGAIN
 * where a blocking connect would wait for the daemon to accept. */
static gsc *connect_to(const char *path, bool wait)
{
    char where[sizeof(((struct sockaddr_un *)0)->sun_path)];
    if (gsc_socket_path(path, where, sizeof where) < 0)
        return NULL;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (wait ? 0 : SOCK_NONBLOCK), 0);
    if (fd < 0)
        return NULL;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, where, strlen(where) + 1);
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0 ||
        (!wait && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)) {
        int e = errno == EINPROGRESS ? EAGAIN : errno; /* Unix sockets say EAGAIN */
        close(fd);
        errno = e;
        return NULL;
    }
    gsc *c = xcalloc(1, sizeof *c);
    c->fd = fd;
    c->next_msgid = 1;
    TAILQ_INIT(&c->unsent);
    c->limits.max_size = GSP_MAX_SIZE_DEFAULT;
    c->limits.max_depth = GSP_MAX_DEPTH_DEFAULT;
    return c;
}

gsc *gsc_connect(const char *path)
{
    return connect_to(path, true);
}

gsc *gsc_connect_nowait(const char *path)
{
    return connect_to(path, false);
}

/* Completes a request: unregisters it, then runs its callback. */
static void complete(gsc *c, struct gsc_req *r, int status, gsc_reply *reply)
{
    HASH_DEL(c->reqs, r);
    heap_remove(c, r);
    if (r->unsent)
        TAILQ_REMOVE(&c->unsent, r, unsent_link);
    c->inflight--;
    gsc_done_fn *done = r->done;
    void *arg = r->arg;
    uint32_t msgid = r->msgid;
    free(r);
    if (done)
        done(c, msgid, status, reply, arg);
    else
        gsc_reply_destroy(&reply);
}

/* Marks the connection unusable (the reason is already in errmsg) and
 * completes everything in flight, oldest first. */
static int broken(gsc *c)
{
    c->broken = true;
    while (c->reqs)
        complete(c, c->reqs, GSC_BROKEN, NULL); /* the hash iterates in insertion order */
    return GSC_BROKEN;
}

/* Frees everything; nothing may be in flight. */
static void destroy(gsc *c)
{
    if (c->watch_release)
        c->watch_release(c->watch_arg);
    close(c->fd);
    while (c->head) {
        struct gsc_down_node *n = c->head;
        c->head = n->next;
        gsc_down_destroy(&n->down);
        free(n);
    }
    free(c->heap);
    gsp_buf_free(&c->out);
    gsp_buf_free(&c->in);
    free(c);
}

/* A public call that may run callbacks begins. */
static void enter(gsc *c)
{
    c->depth++;
}

/* ... and ends, returning r, or GSC_CLOSED if a callback closed c meanwhile:
 * then the outermost call frees c here, and no caller may touch it again. */
static int leave(gsc *c, int r)
{
    bool closed = c->closing;
    if (--c->depth == 0 && closed)
        destroy(c);
    return closed ? GSC_CLOSED : r;
}

void gsc_close(gsc **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    gsc *c = *cp;
    *cp = NULL;
    if (c->closing)
        return; /* already on its way out */
    c->closing = true;
    enter(c);
    if (!c->broken) {
        seterr(c, "connection closed");
        broken(c);
    }
    leave(c, 0);
}

const char *gsc_errmsg(const gsc *c)
{
    if (c == NULL)
        return "not connected";
    return c->errmsg[0] ? c->errmsg : "no error";
}

int gsc_fd(const gsc *c)
{
    return c ? c->fd : -1;
}

bool gsc_pending(const gsc *c)
{
    return c && (c->head != NULL || c->in_off < c->in.len);
}

size_t gsc_inflight(const gsc *c)
{
    return c ? c->inflight : 0;
}

short gsc_events(const gsc *c)
{
    if (c == NULL || c->broken)
        return 0;
    return c->out_off < c->out.len ? POLLIN | POLLOUT : POLLIN;
}

int gsc_next_timeout(const gsc *c)
{
    if (c == NULL || c->nheap == 0)
        return -1;
    long long left = c->heap[0]->deadline - now_ms();
    return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

void gsc_on_down(gsc *c, gsc_down_fn *fn, void *arg)
{
    c->on_down = fn;
    c->down_arg = arg;
}

void gsc_set_watch(gsc *c, gsc_watch_fn *changed, void (*release)(void *arg), void *arg)
{
    if (c->watch_release)
        c->watch_release(c->watch_arg);
    c->watch = changed;
    c->watch_release = release;
    c->watch_arg = arg;
}

/* Tells the adapter, if any, that what c waits for may have changed. */
static void changed(gsc *c)
{
    if (c->watch && !c->closing)
        c->watch(c, c->watch_arg);
}

void gsc_reply_destroy(gsc_reply **r)
{
    if (r == NULL || *r == NULL)
        return;
    msgpack_zone_destroy(&(*r)->zone);
    free(*r);
    *r = NULL;
}

void gsc_down_destroy(gsc_down **d)
{
    if (d == NULL || *d == NULL)
        return;
    msgpack_zone_destroy(&(*d)->zone);
    free(*d);
    *d = NULL;
}

/* ---- input ------------------------------------------------------------------- */

/* Decodes a span into objects that live wholly in zone. msgpack-c's
 * decoder points strings into its input, so the bytes are copied into the
 * zone first: the receive buffer they came from moves on. */
static bool decode_into(msgpack_zone *z, const struct gsp_span *s, msgpack_object *out)
{
    uint8_t *copy = msgpack_zone_malloc_no_align(z, s->len ? s->len : 1);
    if (copy == NULL)
        abort(); /* out of memory ends the process */
    memcpy(copy, s->ptr, s->len);
    return gsp_decode(copy, s->len, z, out);
}

/* Copies n bytes into zone as a NUL-terminated string. */
static char *zone_strndup(msgpack_zone *z, const char *s, size_t n)
{
    char *p = msgpack_zone_malloc_no_align(z, n + 1);
    if (p == NULL)
        abort(); /* out of memory ends the process */
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* The reply a response carries, or NULL if it is malformed. */
static gsc_reply *take_response(const struct gsp_envelope *env)
{
    gsc_reply *r = xcalloc(1, sizeof *r);
    zone_init(&r->zone);
    r->result.type = MSGPACK_OBJECT_NIL;
    r->detail.type = MSGPACK_OBJECT_NIL;
    const char *code;
    uint32_t code_len;
    struct gsp_span detail;
    if (gsp_span_is_nil(env->error)) {
        if (!decode_into(&r->zone, &env->result, &r->result))
            goto bad;
    } else if (gsp_error_read(env->error, &code, &code_len, &detail)) {
        r->code = zone_strndup(&r->zone, code, code_len);
        if (!decode_into(&r->zone, &detail, &r->detail))
            goto bad;
    } else {
        /* The contract says [code, detail]; anything else still is an error. */
        r->code = "invalid_error";
        if (!decode_into(&r->zone, &env->error, &r->detail))
            goto bad;
    }
    return r;
bad:
    gsc_reply_destroy(&r);
    return NULL;
}

/* Hands a down notification, [ref, id, name or nil, reason], to the down
 * handler or queues it. Only the ref is required: it is what a watcher
 * matches on. */
static void take_down(gsc *c, const struct gsp_envelope *env)
{
    struct gsp_down in;
    if (!gsp_down_read(env, &in))
        return; /* nobody could tell whose it is */
    gsc_down *d = xcalloc(1, sizeof *d);
    zone_init(&d->zone);
    d->ref = in.ref;
    d->id = in.id;
    d->name.type = MSGPACK_OBJECT_NIL;
    d->reason.type = MSGPACK_OBJECT_NIL;
    if ((in.name.ptr && !decode_into(&d->zone, &in.name, &d->name)) ||
        (in.reason.ptr && !decode_into(&d->zone, &in.reason, &d->reason))) {
        gsc_down_destroy(&d);
        return;
    }
    if (c->on_down) {
        c->on_down(c, d, c->down_arg);
        return;
    }
    struct gsc_down_node *n = xcalloc(1, sizeof *n);
    n->down = d;
    if (c->tail)
        c->tail->next = n;
    else
        c->head = n;
    c->tail = n;
}

/* Remembers an error notification, [code, detail], to explain the close. */
static void take_error_note(gsc *c, const struct gsp_envelope *env)
{
    const char *code = "error";
    uint32_t code_len = 5;
    struct gsp_span detail = {NULL, 0};
    gsp_error_notify_read(env, &code, &code_len, &detail);
    int n = snprintf(c->note, sizeof c->note, "%.*s", (int)code_len, code);
    /* A string detail is shown; other details are left to debugging tools. */
    struct gsp_cursor d = {detail.ptr, detail.ptr + detail.len};
    const char *text;
    uint32_t len;
    if (detail.ptr && gsp_get_str(&d, &text, &len) && n > 0 && (size_t)n < sizeof c->note)
        snprintf(c->note + n, sizeof c->note - (size_t)n, ": %.*s", (int)len, text);
}

/* Acts on one complete message. */
static void dispatch(gsc *c, const uint8_t *frame, size_t len)
{
    struct gsp_envelope env;
    bool whole = gsp_envelope_read(frame, len, &env);
    if (env.type == GSP_RESPONSE && env.has_msgid) {
        struct gsc_req *r;
        HASH_FIND(hh, c->reqs, &env.msgid, sizeof env.msgid, r);
        if (r == NULL)
            return; /* stale: its deadline passed, nobody waits for it */
        gsc_reply *reply = whole ? take_response(&env) : NULL;
        if (reply == NULL) {
            /* Ignored, r would never complete: the daemon broke the contract. */
            seterr(c, "the daemon sent a malformed response to request %u", (unsigned)env.msgid);
            broken(c);
            return;
        }
        complete(c, r, reply->code ? GSC_ERROR : GSC_OK, reply);
    } else if (!whole) {
        return; /* wrong shape: nothing we can answer or use */
    } else if (env.type == GSP_NOTIFY) {
        if (gsp_method_is(&env, "down"))
            take_down(c, &env);
        else if (gsp_method_is(&env, "error"))
            take_error_note(c, &env);
    }
}

/* Handles every complete message buffered: 0, or GSC_BROKEN when the
 * daemon sent something unreadable. Callbacks may close c (then c->closing
 * is set and the rest waits for nobody) or read more themselves. */
static int pump(gsc *c)
{
    while (!c->broken && c->in_off < c->in.len) {
        const uint8_t *start = c->in.data + c->in_off;
        size_t frame_len;
        switch (gsp_framer_feed(&c->framer, start, c->in.len - c->in_off, &c->limits, &frame_len)) {
        case GSP_SCAN_DONE:
            c->in_off += frame_len;
            dispatch(c, start, frame_len);
            break;
        case GSP_SCAN_MORE:
            return 0;
        case GSP_SCAN_TOO_LARGE:
        case GSP_SCAN_TOO_DEEP:
            seterr(c, "the daemon sent a message over the size or depth limits");
            return broken(c);
        case GSP_SCAN_INVALID:
        default:
            seterr(c, "the daemon sent bytes that are not msgpack");
            return broken(c);
        }
    }
    return c->broken ? GSC_BROKEN : 0;
}

/* Reads what the socket has, a bounded amount, and handles it: 0, or
 * GSC_BROKEN. Never blocks. */
static int read_some(gsc *c)
{
    for (int i = 0; i < GSC_READS_PER_TURN && !c->broken; i++) {
        /* Drop the messages already handled before the buffer grows. */
        if (c->in_off > 0) {
            gsp_buf_consume(&c->in, c->in_off);
            c->in_off = 0;
        }
        gsp_buf_reserve(&c->in, GSC_READ_CHUNK);
        size_t room = c->in.cap - c->in.len;
        ssize_t n = recv(c->fd, c->in.data + c->in.len, room, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0) {
            seterr(c, "connection lost: %s%s%s", strerror(errno),
                   c->note[0] ? "; the daemon said " : "", c->note);
            return broken(c);
        }
        if (n == 0) {
            if (c->note[0])
                seterr(c, "connection closed by the daemon (%s)", c->note);
            else
                seterr(c, "connection closed by the daemon");
            return broken(c);
        }
        c->in.len += (size_t)n;
        if (pump(c) < 0)
            return GSC_BROKEN;
        if ((size_t)n < room)
            return 0; /* drained */
    }
    return c->broken ? GSC_BROKEN : 0;
}

/* ---- output ------------------------------------------------------------------ */

/* Writes what the socket takes of the output: 0, or GSC_BROKEN. Never
 * blocks. On a failure without may_break the bytes stay, for the next
 * turn to fail on. */
static int write_some(gsc *c, bool may_break)
{
    while (c->out_off < c->out.len) {
        /* MSG_NOSIGNAL: a closed peer gives EPIPE, never SIGPIPE. */
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0 && !may_break)
            return 0;
        if (n < 0) {
            seterr(c, "cannot send: %s", strerror(errno));
            c->out.len = c->out_off = 0;
            return broken(c);
        }
        c->out_off += (size_t)n;
    }
    struct gsc_req *r;
    while ((r = TAILQ_FIRST(&c->unsent)) != NULL && r->pos < c->out_base + c->out_off) {
        TAILQ_REMOVE(&c->unsent, r, unsent_link); /* begun: it can no longer be taken back */
        r->unsent = false;
    }
    if (c->out_off == c->out.len) {
        c->out_base += c->out.len;
        c->out.len = c->out_off = 0;
    } else if (c->out_off >= GSC_OUT_COMPACT) {
        gsp_buf_consume(&c->out, c->out_off);
        c->out_base += c->out_off;
        c->out_off = 0;
    }
    return 0;
}

/* Takes every request that is due by now and none of whose bytes were sent
 * out of the output, so that a request reported as timed out never reaches
 * the daemon. One pass over the unsent requests: the bytes after each one
 * taken out move down over it, and the positions of those kept follow. */
static void take_back(gsc *c, long long now)
{
    size_t rd = c->out_off, wr = c->out_off; /* the bytes from rd on belong at wr */
    struct gsc_req *r, *next;
    for (r = TAILQ_FIRST(&c->unsent); r != NULL; r = next) {
        next = TAILQ_NEXT(r, unsent_link);
        size_t at = (size_t)(r->pos - c->out_base);
        if (r->slot == NO_SLOT || r->deadline > now) {
            r->pos -= rd - wr;
            continue;
        }
        if (rd != wr)
            memmove(c->out.data + wr, c->out.data + rd, at - rd);
        wr += at - rd;
        rd = at + r->len;
        TAILQ_REMOVE(&c->unsent, r, unsent_link);
        r->unsent = false;
    }
    if (rd != wr) {
        memmove(c->out.data + wr, c->out.data + rd, c->out.len - rd);
        c->out.len -= rd - wr;
    }
}

/* Completes the requests whose deadline has passed. */
static void expire(gsc *c)
{
    long long now = now_ms();
    while (c->nheap > 0 && c->heap[0]->deadline <= now && !c->broken) {
        struct gsc_req *r = c->heap[0];
        if (r->unsent)
            take_back(c, now); /* r and every other one due and unsent */
        complete(c, r, GSC_TIMEOUT, NULL);
    }
}

/* One round of everything that can be done without blocking. */
static void turn(gsc *c)
{
    if (!c->broken && write_some(c, true) == 0 && read_some(c) == 0)
        expire(c);
    changed(c);
}

int gsc_process(gsc *c)
{
    if (c == NULL)
        return GSC_BROKEN;
    if (c->closing)
        return GSC_CLOSED;
    if (c->broken)
        return GSC_BROKEN;
    enter(c);
    turn(c);
    return leave(c, c->broken ? GSC_BROKEN : 0);
}

/* Polls and turns until done(c, ctx), c breaks, or deadline (-1: none)
 * passes: GSC_OK, GSC_BROKEN or GSC_TIMEOUT. Caller holds enter(). */
static int drive(gsc *c, bool (*done)(const gsc *, const void *), const void *ctx,
                 long long deadline)
{
    for (;;) {
        if (done(c, ctx))
            return GSC_OK;
        if (c->broken)
            return GSC_BROKEN;
        long long now = now_ms();
        if (deadline >= 0 && now >= deadline)
            return GSC_TIMEOUT;
        int wait = gsc_next_timeout(c);
        if (deadline >= 0) {
            long long left = deadline - now;
            if (wait < 0 || left < wait)
                wait = left > INT_MAX ? INT_MAX : (int)left;
        }
        struct pollfd pfd = {.fd = c->fd, .events = gsc_events(c)};
        if (poll(&pfd, 1, wait) < 0 && errno != EINTR) {
            seterr(c, "poll: %s", strerror(errno));
            broken(c);
            continue;
        }
        turn(c);
    }
}

static bool nothing_inflight(const gsc *c, const void *ctx)
{
    (void)ctx;
    return c->inflight == 0 || c->closing;
}

int gsc_run(gsc *c, int wait_ms)
{
    if (c == NULL)
        return GSC_BROKEN;
    if (c->closing)
        return GSC_CLOSED;
    enter(c);
    int r = drive(c, nothing_inflight, NULL, wait_ms < 0 ? -1 : now_ms() + wait_ms);
    return leave(c, c->broken ? GSC_BROKEN : r);
}

/* ---- requests ---------------------------------------------------------------- */

/* False for a missing or broken connection (errmsg still says why). */
static bool usable(const gsc *c)
{
    return c != NULL && !c->broken && !c->closing;
}

/* What a call refused by !usable(c) returns. */
static int refused(const gsc *c)
{
    return c && c->closing ? GSC_CLOSED : GSC_BROKEN;
}

/* Starts packing a request onto c->out; the caller packs its nparams
 * params next, then submits. Returns the request's msgid, or 0 if c cannot
 * send (then nothing is packed). */
static uint32_t begin(gsc *c, msgpack_packer *pk, const char *method, uint32_t nparams)
{
    if (!usable(c))
        return 0;
    uint32_t id;
    struct gsc_req *in_use;
    do { /* after 2^32 requests, skip an id still in flight */
        id = c->next_msgid++;
        if (c->next_msgid == 0)
            c->next_msgid = 1;
        HASH_FIND(hh, c->reqs, &id, sizeof id, in_use);
    } while (in_use);
    c->packing = c->out_base + c->out.len;
    gsp_packer_init(pk, &c->out);
    gsp_pack_request(pk, id, method, nparams);
    return id;
}

/* Registers the request just packed, tries to write it, and returns its
 * msgid (0 passes through: nothing was packed). */
static uint32_t submit(gsc *c, uint32_t msgid, int wait_ms, gsc_done_fn *done, void *arg)
{
    if (msgid == 0)
        return 0;
    struct gsc_req *r = xcalloc(1, sizeof *r);
    r->msgid = msgid;
    r->done = done;
    r->arg = arg;
    r->slot = NO_SLOT;
    r->pos = c->packing;
    r->len = (size_t)(c->out_base + c->out.len - r->pos);
    r->unsent = true;
    TAILQ_INSERT_TAIL(&c->unsent, r, unsent_link);
    HASH_ADD(hh, c->reqs, msgid, sizeof r->msgid, r);
    c->inflight++;
    if (wait_ms >= 0) {
        r->deadline = now_ms() + wait_ms;
        heap_push(c, r);
    }
    /* A failed write breaks c on the next turn, completing this request
     * there: never from inside the call that made it. */
    write_some(c, false);
    changed(c);
    return msgid;
}

/* What a synchronous call collects. */
struct sync_wait {
    bool done;
    int status;
    gsc_reply *reply;
};

static void sync_done(gsc *c, uint32_t msgid, int status, gsc_reply *reply, void *arg)
{
    (void)c, (void)msgid;
    struct sync_wait *w = arg;
    w->done = true;
    w->status = status;
    w->reply = reply;
}

static bool sync_finished(const gsc *c, const void *ctx)
{
    (void)c;
    return ((const struct sync_wait *)ctx)->done;
}

/* The synchronous side: submits the request just packed and drives c
 * until it completes. */
static int await(gsc *c, uint32_t msgid, int wait_ms, gsc_reply **out)
{
    *out = NULL;
    struct sync_wait w = {0};
    if (submit(c, msgid, wait_ms, sync_done, &w) == 0)
        return refused(c);
    enter(c);
    drive(c, sync_finished, &w, -1); /* the request's deadline bounds it */
    int r = w.status;
    if (r == GSC_TIMEOUT) {
        seterr(c, "timed out after %d ms waiting for a response", wait_ms);
        broken(c); /* the historical contract: a sync timeout ends c */
        r = GSC_BROKEN;
    }
    r = leave(c, r);
    if (r == GSC_CLOSED)
        gsc_reply_destroy(&w.reply); /* the caller hears only that c is gone */
    *out = w.reply;
    return r;
}

static bool written(const gsc *c, const void *ctx)
{
    (void)ctx;
    return c->out_off == c->out.len;
}

int gsc_notify(gsc *c, const char *method, const msgpack_object *params)
{
    return gsc_notify_wait(c, method, params, GSC_WAIT_DEFAULT_MS);
}

int gsc_notify_wait(gsc *c, const char *method, const msgpack_object *params, int wait_ms)
{
    if (!usable(c))
        return refused(c);
    if (method == NULL || (params && params->type != MSGPACK_OBJECT_ARRAY)) {
        seterr(c, "gsc_notify: params must be an array");
        errno = EINVAL;
        return GSC_BROKEN;
    }
    msgpack_packer pk;
    uint32_t n = params ? params->via.array.size : 0;
    gsp_packer_init(&pk, &c->out);
    gsp_pack_notify(&pk, method, n);
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_object(&pk, params->via.array.ptr[i]);
    enter(c);
    int r = drive(c, written, NULL, wait_ms < 0 ? -1 : now_ms() + wait_ms);
    if (r == GSC_TIMEOUT) {
        /* Part of it may be on the wire: only closing keeps the stream sane. */
        seterr(c, "could not send within %d ms: the daemon is not reading", wait_ms);
        broken(c);
    }
    return leave(c, r == GSC_OK ? 0 : GSC_BROKEN);
}

void gsc_pack_server(msgpack_packer *pk, const char *server)
{
    size_t len = strlen(server);
    const char *at = strchr(server, '@'), *host = at ? strchr(at + 1, '@') : NULL;
    if (at > server && host > at + 1 && host[1]) { /* NAME@ALIVE@HOST: [name, node] */
        msgpack_pack_array(pk, 2);
        gsp_pack_strn(pk, server, (size_t)(at - server));
        gsp_pack_str(pk, at + 1);
        return;
    }
    uint64_t id = 0;
    bool digits = len > 0;
    for (size_t i = 0; i < len && digits; i++) {
        unsigned d = (unsigned)(server[i] - '0');
        if (server[i] < '0' || server[i] > '9' || id > (UINT64_MAX - d) / 10)
            digits = false; /* not an id, or too big to be one: the daemon judges */
        else
            id = id * 10 + d;
    }
    if (digits)
        msgpack_pack_uint64(pk, id);
    else
        gsp_pack_strn(pk, server, len);
}

/* Packs a value the caller may leave NULL (nil). */
static void pack_opt(msgpack_packer *pk, const msgpack_object *v)
{
    if (v)
        msgpack_pack_object(pk, *v);
    else
        msgpack_pack_nil(pk);
}

/* Packs a call/stop timeout and returns how long to wait for the answer. */
static int pack_timeout(msgpack_packer *pk, int timeout_ms)
{
    if (timeout_ms < 0) {
        gsp_pack_str(pk, "infinity");
        return -1;
    }
    if (timeout_ms == 0) {
        msgpack_pack_nil(pk);
        return GSP_CALL_TIMEOUT_DEFAULT + GSC_GRACE_MS;
    }
    msgpack_pack_uint32(pk, (uint32_t)timeout_ms);
    return timeout_ms > INT_MAX - GSC_GRACE_MS ? -1 : timeout_ms + GSC_GRACE_MS;
}

/* ---- each method: a packer, shared by its synchronous and asynchronous call -- */

/* Each pack_* packs one request onto c->out and returns its msgid (0: c
 * cannot send) and, in *wait_ms, how long to wait for its answer. */

/* [] */
static uint32_t pack_simple(gsc *c, const char *method, int *wait_ms)
{
    msgpack_packer pk;
    *wait_ms = GSC_WAIT_DEFAULT_MS;
    return begin(c, &pk, method, 0);
}

/* [server] */
static uint32_t pack_server(gsc *c, const char *method, const char *server, int *wait_ms)
{
    msgpack_packer pk;
    *wait_ms = GSC_WAIT_DEFAULT_MS;
    uint32_t id = begin(c, &pk, method, 1);
    if (id)
        gsc_pack_server(&pk, server);
    return id;
}

/* [string] */
static uint32_t pack_string(gsc *c, const char *method, const char *s, int *wait_ms)
{
    msgpack_packer pk;
    *wait_ms = GSC_WAIT_DEFAULT_MS;
    uint32_t id = begin(c, &pk, method, 1);
    if (id)
        gsp_pack_str(&pk, s);
    return id;
}

/* Any method, params an array or NULL. */
static uint32_t pack_request(gsc *c, const char *method, const msgpack_object *params)
{
    if (usable(c) && (method == NULL || (params && params->type != MSGPACK_OBJECT_ARRAY))) {
        seterr(c, "gsc_request: params must be an array");
        errno = EINVAL;
        return 0;
    }
    msgpack_packer pk;
    uint32_t n = params ? params->via.array.size : 0;
    uint32_t id = begin(c, &pk, method, n);
    for (uint32_t i = 0; id && i < n; i++)
        msgpack_pack_object(&pk, params->via.array.ptr[i]);
    return id;
}

/* The init timeout named in start options, or -1. */
static long long start_timeout(const msgpack_object *options)
{
    if (options == NULL || options->type != MSGPACK_OBJECT_MAP)
        return -1;
    for (uint32_t i = 0; i < options->via.map.size; i++) {
        const msgpack_object *k = &options->via.map.ptr[i].key;
        const msgpack_object *v = &options->via.map.ptr[i].val;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 7 &&
            memcmp(k->via.str.ptr, "timeout", 7) == 0 && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            return v->via.u64 > INT_MAX ? INT_MAX : (long long)v->via.u64;
    }
    return -1;
}

/* start answers after init: how long to wait, at least as long as init may
 * take. */
static int start_wait(const msgpack_object *options)
{
    long long init = start_timeout(options);
    if (init >= 0 && init + GSC_GRACE_MS > GSC_WAIT_DEFAULT_MS)
        return init > INT_MAX - GSC_GRACE_MS ? -1 : (int)init + GSC_GRACE_MS;
    return GSC_WAIT_DEFAULT_MS;
}

static uint32_t pack_start(gsc *c, const char *module, const char *name, const msgpack_object *args,
                           const msgpack_object *options, int *wait_ms)
{
    *wait_ms = start_wait(options);
    msgpack_packer pk;
    uint32_t id = begin(c, &pk, "start", 4);
    if (id == 0)
        return 0;
    gsp_pack_str(&pk, module);
    if (name)
        gsp_pack_str(&pk, name);
    else
        msgpack_pack_nil(&pk);
    pack_opt(&pk, args);
    pack_opt(&pk, options);
    return id;
}

/* call and stop: [server, value, timeout]. */
static uint32_t pack_timed(gsc *c, const char *method, const char *server, const msgpack_object *v,
                           int timeout_ms, int *wait_ms)
{
    msgpack_packer pk;
    uint32_t id = begin(c, &pk, method, 3);
    if (id == 0)
        return 0;
    gsc_pack_server(&pk, server);
    pack_opt(&pk, v);
    *wait_ms = pack_timeout(&pk, timeout_ms);
    return id;
}

static uint32_t pack_call(gsc *c, const char *server, const msgpack_object *request, int timeout_ms,
                          int *wait_ms)
{
    return pack_timed(c, "call", server, request, timeout_ms, wait_ms);
}

/* cast and send: [server, value]. */
static uint32_t pack_deliver(gsc *c, const char *method, const char *server,
                             const msgpack_object *v, int *wait_ms)
{
    msgpack_packer pk;
    *wait_ms = GSC_WAIT_DEFAULT_MS;
    uint32_t id = begin(c, &pk, method, 2);
    if (id == 0)
        return 0;
    gsc_pack_server(&pk, server);
    pack_opt(&pk, v);
    return id;
}

static uint32_t pack_stop(gsc *c, const char *server, const msgpack_object *reason, int timeout_ms,
                          int *wait_ms)
{
    uint32_t id = pack_timed(c, "stop", server, reason, timeout_ms, wait_ms);
    if (timeout_ms == 0)
        *wait_ms = -1; /* nil: the daemon waits for terminate however long */
    return id;
}

/* [after_id, count] */
static uint32_t pack_which_page(gsc *c, uint64_t after_id, uint32_t count, int *wait_ms)
{
    msgpack_packer pk;
    *wait_ms = GSC_WAIT_DEFAULT_MS;
    uint32_t id = begin(c, &pk, "which", 2);
    if (id) {
        msgpack_pack_uint64(&pk, after_id);
        msgpack_pack_uint32(&pk, count);
    }
    return id;
}

static uint32_t pack_demonitor(gsc *c, uint64_t ref, int *wait_ms)
{
    msgpack_packer pk;
    *wait_ms = GSC_WAIT_DEFAULT_MS;
    uint32_t id = begin(c, &pk, "demonitor", 1);
    if (id)
        msgpack_pack_uint64(&pk, ref);
    return id;
}

int gsc_request(gsc *c, const char *method, const msgpack_object *params, int wait_ms,
                gsc_reply **out)
{
    *out = NULL;
    return await(c, pack_request(c, method, params), wait_ms, out);
}

uint32_t gsc_request_async(gsc *c, const char *method, const msgpack_object *params, int wait_ms,
                           gsc_done_fn *done, void *arg)
{
    return submit(c, pack_request(c, method, params), wait_ms, done, arg);
}

/* ---- requests from a format -------------------------------------------------- */

/*
 * The format language of gsclient.h ("Requests from a format"): JSON-like
 * values, bare words as strings, and printf directives standing for whole
 * values. One recursive parser builds msgpack objects in a zone; what an
 * argument holds is copied, never parsed.
 */
struct fmt {
    const char *start; /* the whole format, for messages */
    const char *p;     /* the next byte to read */
    va_list ap;        /* the arguments left */
    msgpack_zone *z;   /* where the value goes */
    const char *err;   /* the first error (in z), or NULL */
    unsigned depth;    /* arrays and maps open */
};

static void *fmt_alloc(struct fmt *f, size_t n, bool align)
{
    void *p = align ? msgpack_zone_malloc(f->z, n ? n : 1)
                    : msgpack_zone_malloc_no_align(f->z, n ? n : 1);
    if (p == NULL)
        abort(); /* out of memory ends the process */
    return p;
}

/* Records why the format is bad, at the byte being read; returns false. */
__attribute__((format(printf, 2, 3))) static bool fmt_fail(struct fmt *f, const char *why, ...)
{
    if (f->err)
        return false;
    char reason[256];
    va_list ap;
    va_start(ap, why);
    vsnprintf(reason, sizeof reason, why, ap);
    va_end(ap);
    size_t len = strlen(f->start);
    int shown = len > 80 ? 77 : (int)len; /* a long format is cut, with "..." */
    const char *fmt = "bad format at byte %zu of \"%.*s%s\": %s";
    size_t at = (size_t)(f->p - f->start);
    const char *more = len > 80 ? "..." : "";
    int n = snprintf(NULL, 0, fmt, at, shown, f->start, more, reason);
    char *msg = fmt_alloc(f, (size_t)n + 1, false);
    snprintf(msg, (size_t)n + 1, fmt, at, shown, f->start, more, reason);
    f->err = msg;
    return false;
}

/* A byte as a message shows it. */
static const char *fmt_byte(unsigned char c, char buf[8])
{
    if (c == '\0')
        return "the end";
    if (c > ' ' && c < 0x7f)
        snprintf(buf, 8, "'%c'", c);
    else
        snprintf(buf, 8, "0x%02x", c);
    return buf;
}

static bool fmt_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void fmt_skip(struct fmt *f)
{
    while (fmt_blank(*f->p))
        f->p++;
}

static bool word_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool word_byte(unsigned char c)
{
    return word_start(c) || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '@' || c == '/';
}

static bool digit(char c)
{
    return c >= '0' && c <= '9';
}

static void fmt_str(struct fmt *f, const char *s, size_t n, msgpack_object *o)
{
    char *p = fmt_alloc(f, n, false);
    if (n)
        memcpy(p, s, n);
    o->type = MSGPACK_OBJECT_STR;
    o->via.str.ptr = p;
    o->via.str.size = (uint32_t)n;
}

static void fmt_int(msgpack_object *o, long long v)
{
    if (v >= 0) {
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = (uint64_t)v;
    } else {
        o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o->via.i64 = (int64_t)v;
    }
}

static void fmt_uint(msgpack_object *o, unsigned long long v)
{
    o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    o->via.u64 = (uint64_t)v;
}

/* Copies a value the caller gave (%p) into the zone, wholly. */
static void copy_object(struct fmt *f, const msgpack_object *src, msgpack_object *dst)
{
    *dst = *src;
    switch (src->type) {
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN: /* str and bin share their layout */
        dst->via.str.ptr = fmt_alloc(f, src->via.str.size, false);
        if (src->via.str.size)
            memcpy((char *)dst->via.str.ptr, src->via.str.ptr, src->via.str.size);
        break;
    case MSGPACK_OBJECT_EXT:
        dst->via.ext.ptr = fmt_alloc(f, src->via.ext.size, false);
        if (src->via.ext.size)
            memcpy((char *)dst->via.ext.ptr, src->via.ext.ptr, src->via.ext.size);
        break;
    case MSGPACK_OBJECT_ARRAY: {
        uint32_t n = src->via.array.size;
        msgpack_object *items = fmt_alloc(f, n * sizeof *items, true);
        for (uint32_t i = 0; i < n; i++)
            copy_object(f, &src->via.array.ptr[i], &items[i]);
        dst->via.array.ptr = items;
        break;
    }
    case MSGPACK_OBJECT_MAP: {
        uint32_t n = src->via.map.size;
        msgpack_object_kv *kv = fmt_alloc(f, n * sizeof *kv, true);
        for (uint32_t i = 0; i < n; i++) {
            copy_object(f, &src->via.map.ptr[i].key, &kv[i].key);
            copy_object(f, &src->via.map.ptr[i].val, &kv[i].val);
        }
        dst->via.map.ptr = kv;
        break;
    }
    default:
        break;
    }
}

/* A directive: one value from the arguments. */
static bool parse_directive(struct fmt *f, msgpack_object *o)
{
    const char *d = f->p + 1, *q = d;
    if (*q == '%')
        return fmt_fail(f, "%%%% outside a string: write \"%%%%\" for a str holding '%%'");
    if (*q && strchr("-+ #0'", *q))
        return fmt_fail(f, "a flag ('%c') means nothing to a value", *q);
    if (digit(*q) || *q == '*')
        return fmt_fail(f, "a field width means nothing to a value");
    if (*q == '.') {
        if (q[1] != '*' || q[2] != 's')
            return fmt_fail(f, "only %%.*s takes a precision (int length, then the bytes)");
        int n = va_arg(f->ap, int);
        const char *s = va_arg(f->ap, const char *);
        if (n < 0 || (n > 0 && s == NULL))
            return fmt_fail(f, "%%.*s given length %d and %s", n, s ? "bytes" : "NULL");
        fmt_str(f, s, (size_t)n, o);
        f->p = q + 3;
        return true;
    }
    /* A length modifier, then the conversion. */
    enum { M_NONE, M_HH, M_H, M_L, M_LL, M_Z, M_J, M_T, M_BIG } m = M_NONE;
    if (q[0] == 'h' && q[1] == 'h')
        m = M_HH, q += 2;
    else if (q[0] == 'l' && q[1] == 'l')
        m = M_LL, q += 2;
    else if (*q == 'h')
        m = M_H, q++;
    else if (*q == 'l')
        m = M_L, q++;
    else if (*q == 'z')
        m = M_Z, q++;
    else if (*q == 'j')
        m = M_J, q++;
    else if (*q == 't')
        m = M_T, q++;
    else if (*q == 'L' || *q == 'q')
        m = M_BIG, q++;
    char conv = *q;
    int dlen = (int)(q - d) + 1; /* the directive, less its '%' */
    if (conv == 'd' || conv == 'i') {
        long long v;
        switch (m) {
        case M_NONE:
            v = va_arg(f->ap, int);
            break;
        case M_HH:
            v = (signed char)va_arg(f->ap, int);
            break;
        case M_H:
            v = (short)va_arg(f->ap, int);
            break;
        case M_L:
            v = va_arg(f->ap, long);
            break;
        case M_LL:
            v = va_arg(f->ap, long long);
            break;
        case M_Z:
            v = va_arg(f->ap, ssize_t);
            break;
        case M_J:
            v = va_arg(f->ap, intmax_t);
            break;
        case M_T:
            v = va_arg(f->ap, ptrdiff_t);
            break;
        default:
            return fmt_fail(f, "%%%.*s is not a directive of the format", dlen, d);
        }
        fmt_int(o, v);
    } else if (conv == 'u') {
        unsigned long long v;
        switch (m) {
        case M_NONE:
            v = va_arg(f->ap, unsigned);
            break;
        case M_HH:
            v = (unsigned char)va_arg(f->ap, unsigned);
            break;
        case M_H:
            v = (unsigned short)va_arg(f->ap, unsigned);
            break;
        case M_L:
            v = va_arg(f->ap, unsigned long);
            break;
        case M_LL:
            v = va_arg(f->ap, unsigned long long);
            break;
        case M_Z:
            v = va_arg(f->ap, size_t);
            break;
        case M_J:
            v = va_arg(f->ap, uintmax_t);
            break;
        case M_T:
            v = (unsigned long long)va_arg(f->ap, ptrdiff_t);
            break;
        default:
            return fmt_fail(f, "%%%.*s is not a directive of the format", dlen, d);
        }
        fmt_uint(o, v);
    } else if (conv && strchr("feEgGaAF", conv) && (m == M_NONE || m == M_L)) {
        o->type = MSGPACK_OBJECT_FLOAT64;
        o->via.f64 = va_arg(f->ap, double);
    } else if (conv == 's' && m == M_NONE) {
        const char *s = va_arg(f->ap, const char *);
        if (s)
            fmt_str(f, s, strlen(s), o);
        else
            o->type = MSGPACK_OBJECT_NIL;
    } else if (conv == 'p' && m == M_NONE) {
        const msgpack_object *v = va_arg(f->ap, const void *);
        if (v)
            copy_object(f, v, o);
        else
            o->type = MSGPACK_OBJECT_NIL;
    } else if (conv == '\0') {
        return fmt_fail(f, "a directive is cut short by the end of the format");
    } else {
        return fmt_fail(f,
                        "%%%.*s is not a directive of the format (%%s %%.*s %%d %%i %%u %%f "
                        "%%g %%e %%a %%p, integers with hh h l ll z j t)",
                        dlen, d);
    }
    f->p = q + 1;
    return true;
}

/* A number as JSON writes it: an integer, or a float64 with '.' or 'e'. */
static bool parse_number(struct fmt *f, msgpack_object *o)
{
    const char *s = f->p, *q = s;
    bool neg = *q == '-';
    q += neg;
    if (!digit(*q))
        return fmt_fail(f, "'-' must be followed by digits");
    while (digit(*q))
        q++;
    bool real = false;
    if (*q == '.') {
        real = true;
        if (!digit(*++q))
            return fmt_fail(f, "digits must follow the '.' of a number");
        while (digit(*q))
            q++;
    }
    if (*q == 'e' || *q == 'E') {
        real = true;
        q += q[1] == '+' || q[1] == '-' ? 2 : 1;
        if (!digit(*q))
            return fmt_fail(f, "digits must follow the exponent of a number");
        while (digit(*q))
            q++;
    }
    int len = (int)(q - s);
    if (real) {
        char *text = fmt_alloc(f, (size_t)len + 1, false);
        memcpy(text, s, (size_t)len);
        text[len] = '\0';
        /* JSON's '.', whatever the program's locale says */
        locale_t c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
        if (c_locale == (locale_t)0)
            abort(); /* out of memory ends the process */
        errno = 0;
        double v = strtod_l(text, NULL, c_locale);
        int e = errno;
        freelocale(c_locale);
        if (e == ERANGE && (v > 1 || v < -1))
            return fmt_fail(f, "%.*s is out of the range of a double", len, s);
        o->type = MSGPACK_OBJECT_FLOAT64;
        o->via.f64 = v;
    } else {
        uint64_t v = 0;
        for (const char *p = s + neg; p < q; p++) {
            unsigned dg = (unsigned)(*p - '0');
            if (v > (UINT64_MAX - dg) / 10)
                return fmt_fail(f, "%.*s is out of the range of 64-bit integers", len, s);
            v = v * 10 + dg;
        }
        if (!neg || v == 0) {
            fmt_uint(o, v);
        } else if (v > (uint64_t)INT64_MAX + 1) {
            return fmt_fail(f, "%.*s is out of the range of 64-bit integers", len, s);
        } else {
            o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
            o->via.i64 = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
        }
    }
    f->p = q;
    return true;
}

static int hex4(const char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = digit(c)               ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A "quoted" string with JSON's escapes. */
static bool parse_string(struct fmt *f, msgpack_object *o)
{
    const char *open = f->p, *end = open + 1;
    while (*end && *end != '"')
        end += end[0] == '\\' && end[1] ? 2 : 1;
    if (*end != '"')
        return fmt_fail(f, "the string that starts here is not closed by '\"'");
    /* Escapes only shrink: the text fits in its bytes in the format. */
    char *buf = fmt_alloc(f, (size_t)(end - open), false), *w = buf;
    f->p = open + 1;
    while (f->p < end) {
        unsigned char c = (unsigned char)*f->p;
        if (c == '%') {
            if (f->p[1] == '%') {
                *w++ = '%';
                f->p += 2;
                continue;
            }
            return fmt_fail(f, "a directive inside a \"string\": a directive is a whole value, "
                               "write it without quotes (%%s makes a str)");
        }
        if (c != '\\') {
            *w++ = (char)c;
            f->p++;
            continue;
        }
        static const char escapes[] = "\"\\/bfnrt", escaped[] = "\"\\/\b\f\n\r\t";
        char e = f->p[1];
        const char *simple = strchr(escapes, e);
        if (e && simple) {
            *w++ = escaped[simple - escapes];
            f->p += 2;
            continue;
        }
        if (e != 'u')
            return fmt_fail(f,
                            "\\%c is not an escape (JSON's: \\\" \\\\ \\/ \\b \\f \\n \\r \\t "
                            "\\uXXXX)",
                            e);
        long cp = hex4(f->p + 2);
        int used = 6;
        if (cp < 0)
            return fmt_fail(f, "\\u wants 4 hex digits");
        if (cp >= 0xdc00 && cp <= 0xdfff)
            return fmt_fail(f, "\\u%04lx is the second half of a surrogate pair, alone", cp);
        if (cp >= 0xd800 && cp <= 0xdbff) {
            int lo = f->p[6] == '\\' && f->p[7] == 'u' ? hex4(f->p + 8) : -1;
            if (lo < 0xdc00 || lo > 0xdfff)
                return fmt_fail(f, "\\u%04lx must be followed by the \\u of its low surrogate", cp);
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            used = 12;
        }
        if (cp < 0x80) {
            *w++ = (char)cp;
        } else if (cp < 0x800) {
            *w++ = (char)(0xc0 | cp >> 6);
            *w++ = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            *w++ = (char)(0xe0 | cp >> 12);
            *w++ = (char)(0x80 | (cp >> 6 & 0x3f));
            *w++ = (char)(0x80 | (cp & 0x3f));
        } else {
            *w++ = (char)(0xf0 | cp >> 18);
            *w++ = (char)(0x80 | (cp >> 12 & 0x3f));
            *w++ = (char)(0x80 | (cp >> 6 & 0x3f));
            *w++ = (char)(0x80 | (cp & 0x3f));
        }
        f->p += used;
    }
    f->p = end + 1;
    o->type = MSGPACK_OBJECT_STR;
    o->via.str.ptr = buf;
    o->via.str.size = (uint32_t)(w - buf);
    return true;
}

/* A bare word: null, true, false, or a str. */
static bool parse_word(struct fmt *f, msgpack_object *o)
{
    const char *s = f->p;
    while (word_byte((unsigned char)*f->p))
        f->p++;
    size_t n = (size_t)(f->p - s);
    if (n == 4 && memcmp(s, "null", 4) == 0) {
        o->type = MSGPACK_OBJECT_NIL;
    } else if ((n == 4 && memcmp(s, "true", 4) == 0) || (n == 5 && memcmp(s, "false", 5) == 0)) {
        o->type = MSGPACK_OBJECT_BOOLEAN;
        o->via.boolean = n == 4;
    } else {
        fmt_str(f, s, n, o);
    }
    return true;
}

/* A growing list of values, on the heap until its size is known. */
struct fmt_list {
    msgpack_object *v;
    size_t n, cap;
};

static msgpack_object *fmt_list_add(struct fmt_list *l)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (l->v == NULL)
            abort(); /* out of memory ends the process */
    }
    memset(&l->v[l->n], 0, sizeof l->v[l->n]);
    return &l->v[l->n++];
}

/* The list as an array whose items live in the zone; frees the list. */
static void fmt_list_array(struct fmt *f, struct fmt_list *l, msgpack_object *o)
{
    msgpack_object *items = fmt_alloc(f, l->n * sizeof *items, true);
    if (l->n)
        memcpy(items, l->v, l->n * sizeof *items);
    o->type = MSGPACK_OBJECT_ARRAY;
    o->via.array.ptr = items;
    o->via.array.size = (uint32_t)l->n;
    free(l->v);
    *l = (struct fmt_list){0};
}

static bool parse_value(struct fmt *f, msgpack_object *o);

/* [v, ...] or {k: v, ...}. */
static bool parse_container(struct fmt *f, msgpack_object *o)
{
    bool map = *f->p == '{';
    char close = map ? '}' : ']';
    if (f->depth >= GSP_MAX_DEPTH_DEFAULT)
        return fmt_fail(f, "arrays and maps nested deeper than %u", GSP_MAX_DEPTH_DEFAULT);
    f->depth++;
    f->p++;
    struct fmt_list l = {0};
    bool ok = true;
    fmt_skip(f);
    if (*f->p == close) {
        f->p++;
    } else {
        for (;;) {
            if (!(ok = parse_value(f, fmt_list_add(&l))))
                break;
            fmt_skip(f);
            if (map) {
                if (*f->p != ':') {
                    char b[8];
                    ok = fmt_fail(f, "':' must follow a map's key, not %s", fmt_byte(*f->p, b));
                    break;
                }
                f->p++;
                if (!(ok = parse_value(f, fmt_list_add(&l))))
                    break;
                fmt_skip(f);
            }
            if (*f->p == ',') {
                f->p++;
                continue;
            }
            if (*f->p == close) {
                f->p++;
                break;
            }
            char b[8];
            ok = fmt_fail(f, "',' or '%c' must follow an item, not %s", close, fmt_byte(*f->p, b));
            break;
        }
    }
    f->depth--;
    if (!ok) {
        free(l.v);
        return false;
    }
    if (!map) {
        fmt_list_array(f, &l, o);
        return true;
    }
    size_t n = l.n / 2;
    msgpack_object_kv *kv = fmt_alloc(f, n * sizeof *kv, true);
    for (size_t i = 0; i < n; i++) {
        kv[i].key = l.v[2 * i];
        kv[i].val = l.v[2 * i + 1];
    }
    free(l.v);
    o->type = MSGPACK_OBJECT_MAP;
    o->via.map.ptr = kv;
    o->via.map.size = (uint32_t)n;
    return true;
}

/* One value, and what may follow it: a blank, a separator or the end. */
static bool parse_value(struct fmt *f, msgpack_object *o)
{
    o->type = MSGPACK_OBJECT_NIL;
    fmt_skip(f);
    unsigned char c = (unsigned char)*f->p;
    char b[8];
    bool ok;
    if (c == '[' || c == '{')
        ok = parse_container(f, o);
    else if (c == '"')
        ok = parse_string(f, o);
    else if (c == '%')
        ok = parse_directive(f, o);
    else if (c == '-' || digit((char)c))
        ok = parse_number(f, o);
    else if (word_start(c))
        ok = parse_word(f, o);
    else if (c == '\0' || c == ',' || c == ']' || c == '}' || c == ':')
        return fmt_fail(f, "a value is missing before %s", fmt_byte(c, b));
    else
        return fmt_fail(f, "%s cannot start a value", fmt_byte(c, b));
    c = (unsigned char)*f->p;
    if (ok && !(c == '\0' || fmt_blank((char)c) || strchr(",]}:", c)))
        return fmt_fail(f, "%s right after a value (values are separated by blanks, ',' or ':')",
                        fmt_byte(c, b));
    return ok;
}

/* fmt as exactly one value: NULL, or why not (in z). */
static const char *build(msgpack_zone *z, msgpack_object *out, const char *fmt, va_list ap)
{
    struct fmt f = {.start = fmt ? fmt : "", .z = z};
    f.p = f.start;
    va_copy(f.ap, ap);
    if (parse_value(&f, out)) {
        fmt_skip(&f);
        if (*f.p)
            fmt_fail(&f, "more after the value (the format is one value: put several in [])");
    }
    va_end(f.ap);
    if (f.err)
        out->type = MSGPACK_OBJECT_NIL;
    return f.err;
}

/* fmt as "METHOD PARAM...": the method in *method and the params array in
 * *params, both in z; NULL, or why not (in z). */
static const char *build_command(msgpack_zone *z, const char *fmt, va_list ap, const char **method,
                                 msgpack_object *params)
{
    struct fmt f = {.start = fmt ? fmt : "", .z = z};
    f.p = f.start;
    va_copy(f.ap, ap);
    struct fmt_list l = {0};
    char b[8];
    fmt_skip(&f);
    const char *name = f.p;
    while (word_byte((unsigned char)*f.p))
        f.p++;
    size_t n = (size_t)(f.p - name);
    if (n == 0 || !word_start((unsigned char)*name)) {
        f.p = name;
        fmt_fail(&f, "the format starts with the method's name (a word), not %s",
                 fmt_byte((unsigned char)*name, b));
    } else if (*f.p && !fmt_blank(*f.p)) {
        fmt_fail(&f, "%s right after the method's name", fmt_byte((unsigned char)*f.p, b));
    } else {
        char *m = fmt_alloc(&f, n + 1, false);
        memcpy(m, name, n);
        m[n] = '\0';
        *method = m;
        for (fmt_skip(&f); *f.p && parse_value(&f, fmt_list_add(&l)); fmt_skip(&f))
            ;
    }
    va_end(f.ap);
    if (f.err) {
        free(l.v);
        return f.err;
    }
    struct fmt fz = {.z = z};
    fmt_list_array(&fz, &l, params);
    return NULL;
}

const char *gsc_vbuild(msgpack_zone *zone, msgpack_object *out, const char *fmt, va_list ap)
{
    return build(zone, out, fmt, ap);
}

const char *gsc_build(msgpack_zone *zone, msgpack_object *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *err = build(zone, out, fmt, ap);
    va_end(ap);
    return err;
}

/* The params a method lets be nil at their end, as the calls above send
 * them: a command may leave them out. */
static const struct {
    const char *method;
    uint32_t least, all; /* from least params given on, nils up to all */
} nil_tails[] = {
    {"call", 2, 3},  /* timeout */
    {"stop", 1, 3},  /* reason, timeout */
    {"start", 1, 4}, /* name, args, options */
    {"slowlog", 0, 1},
};

/* Adds the nils a command left out at the end of its params. */
static void fill_nil_tail(msgpack_zone *z, const char *method, msgpack_object *params)
{
    uint32_t n = params->via.array.size;
    for (size_t i = 0; i < sizeof nil_tails / sizeof nil_tails[0]; i++) {
        if (strcmp(method, nil_tails[i].method) != 0 || n < nil_tails[i].least ||
            n >= nil_tails[i].all)
            continue;
        msgpack_object *items = msgpack_zone_malloc(z, nil_tails[i].all * sizeof *items);
        if (items == NULL)
            abort(); /* out of memory ends the process */
        if (n)
            memcpy(items, params->via.array.ptr, n * sizeof *items);
        for (uint32_t k = n; k < nil_tails[i].all; k++)
            items[k] = (msgpack_object){.type = MSGPACK_OBJECT_NIL};
        params->via.array.ptr = items;
        params->via.array.size = nil_tails[i].all;
    }
}

/* How long a command waits for its answer: as the call of its name would. */
static int command_wait(const char *method, const msgpack_object *params)
{
    const msgpack_object *p = params->via.array.ptr;
    uint32_t n = params->via.array.size;
    bool call = strcmp(method, "call") == 0;
    if (call || strcmp(method, "stop") == 0) {
        const msgpack_object *t = n >= 3 ? &p[2] : NULL;
        if (t == NULL || t->type == MSGPACK_OBJECT_NIL)
            return call ? GSP_CALL_TIMEOUT_DEFAULT + GSC_GRACE_MS : -1;
        if (t->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            return t->via.u64 > (uint64_t)(INT_MAX - GSC_GRACE_MS) ? -1
                                                                   : (int)t->via.u64 + GSC_GRACE_MS;
        if (t->type == MSGPACK_OBJECT_STR && t->via.str.size == 8 &&
            memcmp(t->via.str.ptr, "infinity", 8) == 0)
            return -1;
        return GSC_WAIT_DEFAULT_MS; /* not a timeout: the daemon answers badarg */
    }
    if (strcmp(method, "start") == 0)
        return start_wait(n >= 4 ? &p[3] : NULL);
    return GSC_WAIT_DEFAULT_MS;
}

/* Packs the request a command format describes: its msgid, or 0 (a bad
 * format: errno EINVAL and errmsg say why; or c cannot send). */
static uint32_t pack_command(gsc *c, const char *fmt, va_list ap, int *wait_ms)
{
    *wait_ms = GSC_WAIT_DEFAULT_MS;
    if (!usable(c))
        return 0;
    msgpack_zone z;
    zone_init(&z);
    const char *method = NULL;
    msgpack_object params;
    const char *err = build_command(&z, fmt, ap, &method, &params);
    uint32_t id = 0;
    if (err) {
        seterr(c, "gsc_command: %s", err);
        errno = EINVAL;
    } else {
        fill_nil_tail(&z, method, &params);
        *wait_ms = command_wait(method, &params);
        id = pack_request(c, method, &params);
    }
    msgpack_zone_destroy(&z);
    return id;
}

int gsc_vcommand(gsc *c, gsc_reply **out, const char *fmt, va_list ap)
{
    int wait_ms = 0;
    uint32_t id = pack_command(c, fmt, ap, &wait_ms);
    if (id == 0 && usable(c)) {
        *out = NULL;
        return GSC_BROKEN; /* a bad format; c lives on */
    }
    return await(c, id, wait_ms, out);
}

int gsc_command(gsc *c, gsc_reply **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = gsc_vcommand(c, out, fmt, ap);
    va_end(ap);
    return r;
}

uint32_t gsc_vcommand_async(gsc *c, gsc_done_fn *done, void *arg, const char *fmt, va_list ap)
{
    int wait_ms = 0;
    uint32_t id = pack_command(c, fmt, ap, &wait_ms);
    return submit(c, id, wait_ms, done, arg);
}

uint32_t gsc_command_async(gsc *c, gsc_done_fn *done, void *arg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    uint32_t id = gsc_vcommand_async(c, done, arg, fmt, ap);
    va_end(ap);
    return id;
}

/* The public pairs: SYNC waits for the request packed by `pack`, ASYNC
 * queues it. Each expands to the one line that differs. */
#define SYNC(pack)                                                                                 \
    int wait_ms = 0;                                                                               \
    uint32_t id = (pack);                                                                          \
    return await(c, id, wait_ms, out)
#define ASYNC(pack)                                                                                \
    int wait_ms = 0;                                                                               \
    uint32_t id = (pack);                                                                          \
    return submit(c, id, wait_ms, done, arg)

int gsc_ping(gsc *c, gsc_reply **out)
{
    SYNC(pack_simple(c, "ping", &wait_ms));
}
uint32_t gsc_ping_async(gsc *c, gsc_done_fn *done, void *arg)
{
    ASYNC(pack_simple(c, "ping", &wait_ms));
}

int gsc_version(gsc *c, gsc_reply **out)
{
    SYNC(pack_simple(c, "version", &wait_ms));
}
uint32_t gsc_version_async(gsc *c, gsc_done_fn *done, void *arg)
{
    ASYNC(pack_simple(c, "version", &wait_ms));
}

int gsc_start(gsc *c, const char *module, const char *name, const msgpack_object *args,
              const msgpack_object *options, gsc_reply **out)
{
    SYNC(pack_start(c, module, name, args, options, &wait_ms));
}
uint32_t gsc_start_async(gsc *c, const char *module, const char *name, const msgpack_object *args,
                         const msgpack_object *options, gsc_done_fn *done, void *arg)
{
    ASYNC(pack_start(c, module, name, args, options, &wait_ms));
}

int gsc_call(gsc *c, const char *server, const msgpack_object *request, int timeout_ms,
             gsc_reply **out)
{
    SYNC(pack_call(c, server, request, timeout_ms, &wait_ms));
}
uint32_t gsc_call_async(gsc *c, const char *server, const msgpack_object *request, int timeout_ms,
                        gsc_done_fn *done, void *arg)
{
    ASYNC(pack_call(c, server, request, timeout_ms, &wait_ms));
}

int gsc_cast(gsc *c, const char *server, const msgpack_object *request, gsc_reply **out)
{
    SYNC(pack_deliver(c, "cast", server, request, &wait_ms));
}
uint32_t gsc_cast_async(gsc *c, const char *server, const msgpack_object *request,
                        gsc_done_fn *done, void *arg)
{
    ASYNC(pack_deliver(c, "cast", server, request, &wait_ms));
}

int gsc_send(gsc *c, const char *server, const msgpack_object *msg, gsc_reply **out)
{
    SYNC(pack_deliver(c, "send", server, msg, &wait_ms));
}
uint32_t gsc_send_async(gsc *c, const char *server, const msgpack_object *msg, gsc_done_fn *done,
                        void *arg)
{
    ASYNC(pack_deliver(c, "send", server, msg, &wait_ms));
}

int gsc_stop(gsc *c, const char *server, const msgpack_object *reason, int timeout_ms,
             gsc_reply **out)
{
    SYNC(pack_stop(c, server, reason, timeout_ms, &wait_ms));
}
uint32_t gsc_stop_async(gsc *c, const char *server, const msgpack_object *reason, int timeout_ms,
                        gsc_done_fn *done, void *arg)
{
    ASYNC(pack_stop(c, server, reason, timeout_ms, &wait_ms));
}

int gsc_whereis(gsc *c, const char *name, gsc_reply **out)
{
    SYNC(pack_string(c, "whereis", name, &wait_ms));
}
uint32_t gsc_whereis_async(gsc *c, const char *name, gsc_done_fn *done, void *arg)
{
    ASYNC(pack_string(c, "whereis", name, &wait_ms));
}

int gsc_which(gsc *c, gsc_reply **out)
{
    SYNC(pack_simple(c, "which", &wait_ms));
}
uint32_t gsc_which_async(gsc *c, gsc_done_fn *done, void *arg)
{
    ASYNC(pack_simple(c, "which", &wait_ms));
}

int gsc_which_page(gsc *c, uint64_t after_id, uint32_t count, gsc_reply **out)
{
    SYNC(pack_which_page(c, after_id, count, &wait_ms));
}
uint32_t gsc_which_page_async(gsc *c, uint64_t after_id, uint32_t count, gsc_done_fn *done,
                              void *arg)
{
    ASYNC(pack_which_page(c, after_id, count, &wait_ms));
}

int gsc_info(gsc *c, const char *server, gsc_reply **out)
{
    SYNC(pack_server(c, "info", server, &wait_ms));
}
uint32_t gsc_info_async(gsc *c, const char *server, gsc_done_fn *done, void *arg)
{
    ASYNC(pack_server(c, "info", server, &wait_ms));
}

int gsc_get_state(gsc *c, const char *server, gsc_reply **out)
{
    SYNC(pack_server(c, "get_state", server, &wait_ms));
}
uint32_t gsc_get_state_async(gsc *c, const char *server, gsc_done_fn *done, void *arg)
{
    ASYNC(pack_server(c, "get_state", server, &wait_ms));
}

int gsc_modules(gsc *c, gsc_reply **out)
{
    SYNC(pack_simple(c, "modules", &wait_ms));
}
uint32_t gsc_modules_async(gsc *c, gsc_done_fn *done, void *arg)
{
    ASYNC(pack_simple(c, "modules", &wait_ms));
}

int gsc_load(gsc *c, const char *module, gsc_reply **out)
{
    SYNC(pack_string(c, "load", module, &wait_ms));
}
uint32_t gsc_load_async(gsc *c, const char *module, gsc_done_fn *done, void *arg)
{
    ASYNC(pack_string(c, "load", module, &wait_ms));
}

int gsc_reload(gsc *c, const char *module, gsc_reply **out)
{
    SYNC(pack_string(c, "reload", module, &wait_ms));
}
uint32_t gsc_reload_async(gsc *c, const char *module, gsc_done_fn *done, void *arg)
{
    ASYNC(pack_string(c, "reload", module, &wait_ms));
}

int gsc_monitor(gsc *c, const char *server, gsc_reply **out)
{
    SYNC(pack_server(c, "monitor", server, &wait_ms));
}
uint32_t gsc_monitor_async(gsc *c, const char *server, gsc_done_fn *done, void *arg)
{
    ASYNC(pack_server(c, "monitor", server, &wait_ms));
}

int gsc_demonitor(gsc *c, uint64_t ref, gsc_reply **out)
{
    SYNC(pack_demonitor(c, ref, &wait_ms));
}
uint32_t gsc_demonitor_async(gsc *c, uint64_t ref, gsc_done_fn *done, void *arg)
{
    ASYNC(pack_demonitor(c, ref, &wait_ms));
}

/* ---- downs ------------------------------------------------------------------- */

static bool have_down(const gsc *c, const void *ctx)
{
    (void)ctx;
    return c->head != NULL;
}

int gsc_next_down(gsc *c, int wait_ms, gsc_down **out)
{
    *out = NULL;
    if (c == NULL)
        return GSC_BROKEN;
    if (c->closing)
        return GSC_CLOSED;
    /* Downs that arrived before a break are still delivered. */
    if (!c->head) {
        if (c->broken)
            return GSC_BROKEN;
        enter(c);
        int r = drive(c, have_down, NULL, wait_ms < 0 ? -1 : now_ms() + wait_ms);
        if (r == GSC_TIMEOUT) {
            seterr(c, "no down notification within %d ms", wait_ms);
            r = GSC_ERROR;
        }
        r = leave(c, r);
        if (r != GSC_OK)
            return r;
    }
    struct gsc_down_node *n = c->head;
    c->head = n->next;
    if (c->head == NULL)
        c->tail = NULL;
    *out = n->down;
    free(n);
    return GSC_OK;
}

/* ---- for bindings -------------------------------------------------------------- */

int gsc_request_raw(gsc *c, const char *method, const void *params, size_t len, int wait_ms,
                    gsc_reply **out)
{
    *out = NULL;
    if (!usable(c))
        return refused(c);
    struct gsp_framer f = {0};
    size_t frame_len = 0;
    msgpack_zone z;
    zone_init(&z);
    msgpack_object obj;
    int r = GSC_BROKEN;
    if (gsp_framer_feed(&f, params, len, &c->limits, &frame_len) != GSP_SCAN_DONE ||
        frame_len != len || !gsp_decode(params, len, &z, &obj) ||
        obj.type != MSGPACK_OBJECT_ARRAY) {
        seterr(c, "gsc_request_raw: params must be one msgpack array");
        errno = EINVAL;
    } else {
        r = gsc_request(c, method, &obj, wait_ms, out);
    }
    msgpack_zone_destroy(&z);
    return r;
}

void *gsc_reply_value(const gsc_reply *r, size_t *len)
{
    return gsp_encode(r->code ? &r->detail : &r->result, len);
}

const char *gsc_reply_code(const gsc_reply *r)
{
    return r->code;
}

void *gsc_down_value(const gsc_down *d, size_t *len)
{
    msgpack_object item[4] = {
        {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = d->ref},
        {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = d->id},
        d->name,
        d->reason,
    };
    msgpack_object all = {.type = MSGPACK_OBJECT_ARRAY, .via.array = {4, item}};
    return gsp_encode(&all, len);
}

void gsc_free(void *p)
{
    free(p);
}
