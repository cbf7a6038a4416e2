/*
 * gsclient.c — libgsclient: a blocking client of the gsd daemon.
 *
 * One request at a time: send it, then read and frame whatever arrives
 * until its response does. On the way, down notifications are queued for
 * gsc_next_down(), responses to other msgids are stale and dropped, and an
 * error notification is remembered to explain the close that follows it.
 * Every wire detail goes through protocol/gsp.h.
 */
#include "gsclient.h"
#include "gsp.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define GSC_READ_CHUNK 65536 /* bytes asked of each recv() */

/* A queued down notification. */
struct gsc_down_node {
    gsc_down *down;
    struct gsc_down_node *next;
};

struct gsc {
    int fd;                     /* the connection */
    bool broken;                /* no further requests: see errmsg */
    uint32_t next_msgid;        /* msgid of the next request */
    bool awaiting;              /* a request is waiting for msgid `want` */
    uint32_t want;              /* msgid of the awaited response */
    gsc_reply *reply;           /* its response, once read */
    struct gsp_buf out;         /* the request being sent */
    struct gsp_buf in;          /* bytes received, from offset `in_off` on */
    size_t in_off;              /* start of the next unread message in `in` */
    struct gsp_framer framer;   /* scans the message at in_off */
    struct gsp_limits limits;   /* what the daemon may send us */
    struct gsc_down_node *head; /* down notifications, oldest first */
    struct gsc_down_node *tail; /* the newest, where the next one goes */
    char note[256];             /* the daemon's last error notification, or "" */
    char errmsg[512];           /* why the last call failed */
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

/* Marks the connection unusable; the reason is already in errmsg. */
static int broken(gsc *c)
{
    c->broken = true;
    return GSC_BROKEN;
}

/* Milliseconds on the monotonic clock. */
static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

gsc *gsc_connect(const char *path)
{
    char where[sizeof(((struct sockaddr_un *)0)->sun_path)];
    if (gsp_socket_path(path, where, sizeof where) < 0) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, where, strlen(where) + 1);
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    gsc *c = xcalloc(1, sizeof *c);
    c->fd = fd;
    c->next_msgid = 1;
    c->limits.max_size = GSP_MAX_SIZE_DEFAULT;
    c->limits.max_depth = GSP_MAX_DEPTH_DEFAULT;
    return c;
}

void gsc_close(gsc **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    gsc *c = *cp;
    close(c->fd);
    gsc_reply_destroy(&c->reply);
    while (c->head) {
        struct gsc_down_node *n = c->head;
        c->head = n->next;
        gsc_down_destroy(&n->down);
        free(n);
    }
    gsp_buf_free(&c->out);
    gsp_buf_free(&c->in);
    free(c);
    *cp = NULL;
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

/* Builds the reply for the awaited response; false if it is malformed. */
static bool take_response(gsc *c, const struct gsp_envelope *env)
{
    gsc_reply *r = xcalloc(1, sizeof *r);
    zone_init(&r->zone);
    r->result.type = MSGPACK_OBJECT_NIL;
    r->detail.type = MSGPACK_OBJECT_NIL;
    msgpack_object err;
    if (!decode_into(&r->zone, &env->error, &err))
        goto bad;
    if (err.type == MSGPACK_OBJECT_NIL) {
        if (!decode_into(&r->zone, &env->result, &r->result))
            goto bad;
    } else {
        /* The contract says [code, detail]; anything else still is an error. */
        const msgpack_object *code = NULL;
        if (err.type == MSGPACK_OBJECT_ARRAY && err.via.array.size >= 1)
            code = &err.via.array.ptr[0];
        if (code && (code->type == MSGPACK_OBJECT_STR || code->type == MSGPACK_OBJECT_BIN)) {
            r->code = zone_strndup(&r->zone, code->via.str.ptr, code->via.str.size);
            if (err.via.array.size >= 2)
                r->detail = err.via.array.ptr[1];
        } else {
            r->code = "invalid_error";
            r->detail = err;
        }
    }
    c->reply = r;
    return true;
bad:
    gsc_reply_destroy(&r);
    return false;
}

/* Queues a down notification: [ref, id, name or nil, reason]. Only the
 * ref is required: it is what a watcher matches on. */
static void take_down(gsc *c, const struct gsp_envelope *env)
{
    struct gsp_cursor p = env->params;
    struct gsp_span name = {NULL, 0}, reason = {NULL, 0}, skip;
    uint64_t ref, id = 0;
    if (env->nparams < 1 || !gsp_get_uint(&p, &ref))
        return; /* nobody could tell whose it is */
    if (env->nparams >= 2 && !gsp_get_uint(&p, &id))
        gsp_get_span(&p, &skip); /* not an id (nil?): id stays 0 */
    if (env->nparams >= 3)
        gsp_get_span(&p, &name);
    if (env->nparams >= 4)
        gsp_get_span(&p, &reason);
    gsc_down *d = xcalloc(1, sizeof *d);
    zone_init(&d->zone);
    d->ref = ref;
    d->id = id;
    d->name.type = MSGPACK_OBJECT_NIL;
    d->reason.type = MSGPACK_OBJECT_NIL;
    if ((name.ptr && !decode_into(&d->zone, &name, &d->name)) ||
        (reason.ptr && !decode_into(&d->zone, &reason, &d->reason))) {
        gsc_down_destroy(&d);
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
    struct gsp_cursor p = env->params;
    struct gsp_span code = {NULL, 0}, detail = {NULL, 0};
    if (env->nparams >= 1)
        gsp_get_span(&p, &code);
    if (env->nparams >= 2)
        gsp_get_span(&p, &detail);
    msgpack_zone z;
    zone_init(&z);
    msgpack_object o;
    int n = 0;
    if (code.ptr && decode_into(&z, &code, &o) && o.type == MSGPACK_OBJECT_STR)
        n = snprintf(c->note, sizeof c->note, "%.*s", (int)o.via.str.size, o.via.str.ptr);
    else
        n = snprintf(c->note, sizeof c->note, "error");
    /* A string detail is shown; other details are left to debugging tools. */
    if (detail.ptr && decode_into(&z, &detail, &o) && o.type == MSGPACK_OBJECT_STR && n > 0 &&
        (size_t)n < sizeof c->note) {
        snprintf(c->note + n, sizeof c->note - (size_t)n, ": %.*s", (int)o.via.str.size,
                 o.via.str.ptr);
    }
    msgpack_zone_destroy(&z);
}

/* Acts on one complete message. */
static void dispatch(gsc *c, const uint8_t *frame, size_t len)
{
    struct gsp_envelope env;
    if (!gsp_envelope_read(frame, len, &env))
        return; /* wrong shape: nothing we can answer or use */
    if (env.type == GSP_RESPONSE) {
        if (c->awaiting && env.msgid == c->want && c->reply == NULL) {
            if (take_response(c, &env))
                c->awaiting = false;
        }
        /* else stale: the answer to a request nobody waits for any more */
    } else if (env.type == GSP_NOTIFY) {
        if (gsp_method_is(&env, "down"))
            take_down(c, &env);
        else if (gsp_method_is(&env, "error"))
            take_error_note(c, &env);
    }
}

/* Handles the next buffered message: 1 handled one, 0 needs more bytes,
 * GSC_BROKEN the daemon sent something unreadable. */
static int pump_one(gsc *c)
{
    const uint8_t *start = c->in.data + c->in_off;
    size_t avail = c->in.len - c->in_off;
    if (avail == 0)
        return 0;
    size_t frame_len;
    switch (gsp_framer_feed(&c->framer, start, avail, &c->limits, &frame_len)) {
    case GSP_SCAN_DONE:
        c->in_off += frame_len;
        dispatch(c, start, frame_len);
        return 1;
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

/* Reads what the socket has into the input buffer: 1 read some, 0 the
 * deadline passed, GSC_BROKEN closed or failed. deadline < 0: none. */
static int fill(gsc *c, long long deadline)
{
    /* Drop the messages already handled before the buffer grows. */
    if (c->in_off > 0) {
        gsp_buf_consume(&c->in, c->in_off);
        c->in_off = 0;
    }
    for (;;) {
        int timeout = -1;
        if (deadline >= 0) {
            long long left = deadline - now_ms();
            timeout = left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
        }
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int r = poll(&pfd, 1, timeout);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            seterr(c, "poll: %s", strerror(errno));
            return broken(c);
        }
        if (r == 0) {
            if (deadline >= 0 && now_ms() >= deadline)
                return 0;
            continue;
        }
        gsp_buf_reserve(&c->in, GSC_READ_CHUNK);
        ssize_t n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
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
        return 1;
    }
}

/* Reads until done(c) or the wait runs out: GSC_OK, GSC_ERROR (time ran
 * out, errmsg says so, nothing broken yet) or GSC_BROKEN. */
static int wait_for(gsc *c, bool (*done)(const gsc *), int wait_ms)
{
    long long deadline = wait_ms < 0 ? -1 : now_ms() + wait_ms;
    for (;;) {
        int r = 0;
        while (!done(c) && (r = pump_one(c)) == 1)
            ;
        if (done(c))
            return GSC_OK;
        if (r == GSC_BROKEN)
            return GSC_BROKEN;
        r = fill(c, deadline);
        if (r == GSC_BROKEN)
            return GSC_BROKEN;
        if (r == 0) {
            seterr(c, "timed out after %d ms waiting for a response", wait_ms);
            return GSC_ERROR;
        }
    }
}

static bool have_reply(const gsc *c)
{
    return c->reply != NULL;
}

static bool have_down(const gsc *c)
{
    return c->head != NULL;
}

/* Writes the whole output buffer: 0, or GSC_BROKEN. */
static int flush(gsc *c)
{
    size_t off = 0;
    while (off < c->out.len) {
        /* MSG_NOSIGNAL: a closed peer gives EPIPE, never SIGPIPE. */
        ssize_t n = send(c->fd, c->out.data + off, c->out.len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
            poll(&pfd, 1, -1);
            continue;
        }
        if (n < 0) {
            seterr(c, "cannot send: %s", strerror(errno));
            c->out.len = 0;
            return broken(c);
        }
        off += (size_t)n;
    }
    c->out.len = 0;
    return 0;
}

/* False for a missing or broken connection (errmsg still says why). */
static bool usable(const gsc *c)
{
    return c != NULL && !c->broken;
}

/* Starts packing a request into c->out; the caller packs its nparams
 * params next. Sets *out to NULL and returns the request's msgid, or 0 if
 * c cannot send (then nothing is packed). */
static uint32_t begin_request(gsc *c, gsc_reply **out, msgpack_packer *pk, const char *method,
                              uint32_t nparams)
{
    *out = NULL;
    if (!usable(c))
        return 0;
    uint32_t id = c->next_msgid++;
    if (c->next_msgid == 0)
        c->next_msgid = 1;
    c->out.len = 0;
    gsp_packer_init(pk, &c->out);
    gsp_pack_request(pk, id, method, nparams);
    return id;
}

/* Sends the request packed in c->out and waits for its response. */
static int finish_request(gsc *c, uint32_t msgid, int wait_ms, gsc_reply **out)
{
    *out = NULL;
    if (flush(c) < 0)
        return GSC_BROKEN;
    c->awaiting = true;
    c->want = msgid;
    int r = wait_for(c, have_reply, wait_ms);
    c->awaiting = false;
    if (r != GSC_OK) {
        /* A late answer would be unmatched: this connection is done. */
        return broken(c);
    }
    *out = c->reply;
    c->reply = NULL;
    return (*out)->code ? GSC_ERROR : GSC_OK;
}

int gsc_request(gsc *c, const char *method, const msgpack_object *params, int wait_ms,
                gsc_reply **out)
{
    *out = NULL;
    if (usable(c) && (method == NULL || (params && params->type != MSGPACK_OBJECT_ARRAY))) {
        seterr(c, "gsc_request: params must be an array");
        errno = EINVAL;
        return GSC_BROKEN;
    }
    msgpack_packer pk;
    uint32_t n = params ? params->via.array.size : 0;
    uint32_t id = begin_request(c, out, &pk, method, n);
    if (id == 0)
        return GSC_BROKEN;
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_object(&pk, params->via.array.ptr[i]);
    return finish_request(c, id, wait_ms, out);
}

int gsc_notify(gsc *c, const char *method, const msgpack_object *params)
{
    if (!usable(c))
        return GSC_BROKEN;
    if (method == NULL || (params && params->type != MSGPACK_OBJECT_ARRAY)) {
        seterr(c, "gsc_notify: params must be an array");
        errno = EINVAL;
        return GSC_BROKEN;
    }
    msgpack_packer pk;
    uint32_t n = params ? params->via.array.size : 0;
    c->out.len = 0;
    gsp_packer_init(&pk, &c->out);
    gsp_pack_notify(&pk, method, n);
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_object(&pk, params->via.array.ptr[i]);
    return flush(c) < 0 ? GSC_BROKEN : 0;
}

void gsc_pack_server(msgpack_packer *pk, const char *server)
{
    size_t len = strlen(server);
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

/* A request with no params. */
static int simple(gsc *c, const char *method, gsc_reply **out)
{
    return gsc_request(c, method, NULL, GSC_WAIT_DEFAULT_MS, out);
}

/* A request whose one param is a server reference. */
static int on_server(gsc *c, const char *method, const char *server, gsc_reply **out)
{
    msgpack_packer pk;
    uint32_t id = begin_request(c, out, &pk, method, 1);
    if (id == 0)
        return GSC_BROKEN;
    gsc_pack_server(&pk, server);
    return finish_request(c, id, GSC_WAIT_DEFAULT_MS, out);
}

/* A request whose one param is a string. */
static int on_string(gsc *c, const char *method, const char *s, gsc_reply **out)
{
    msgpack_packer pk;
    uint32_t id = begin_request(c, out, &pk, method, 1);
    if (id == 0)
        return GSC_BROKEN;
    gsp_pack_str(&pk, s);
    return finish_request(c, id, GSC_WAIT_DEFAULT_MS, out);
}

int gsc_ping(gsc *c, gsc_reply **out)
{
    return simple(c, "ping", out);
}

int gsc_version(gsc *c, gsc_reply **out)
{
    return simple(c, "version", out);
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

int gsc_start(gsc *c, const char *module, const char *name, const msgpack_object *args,
              const msgpack_object *options, gsc_reply **out)
{
    /* start answers after init: wait at least as long as init may take. */
    long long init = start_timeout(options);
    int wait_ms = GSC_WAIT_DEFAULT_MS;
    if (init >= 0 && init + GSC_GRACE_MS > wait_ms)
        wait_ms = init > INT_MAX - GSC_GRACE_MS ? -1 : (int)init + GSC_GRACE_MS;
    msgpack_packer pk;
    uint32_t id = begin_request(c, out, &pk, "start", 4);
    if (id == 0)
        return GSC_BROKEN;
    gsp_pack_str(&pk, module);
    if (name)
        gsp_pack_str(&pk, name);
    else
        msgpack_pack_nil(&pk);
    pack_opt(&pk, args);
    pack_opt(&pk, options);
    return finish_request(c, id, wait_ms, out);
}

int gsc_call(gsc *c, const char *server, const msgpack_object *request, int timeout_ms,
             gsc_reply **out)
{
    msgpack_packer pk;
    uint32_t id = begin_request(c, out, &pk, "call", 3);
    if (id == 0)
        return GSC_BROKEN;
    gsc_pack_server(&pk, server);
    pack_opt(&pk, request);
    int wait_ms = pack_timeout(&pk, timeout_ms);
    return finish_request(c, id, wait_ms, out);
}

/* cast and send: [server, value]. */
static int deliver(gsc *c, const char *method, const char *server, const msgpack_object *v,
                   gsc_reply **out)
{
    msgpack_packer pk;
    uint32_t id = begin_request(c, out, &pk, method, 2);
    if (id == 0)
        return GSC_BROKEN;
    gsc_pack_server(&pk, server);
    pack_opt(&pk, v);
    return finish_request(c, id, GSC_WAIT_DEFAULT_MS, out);
}

int gsc_cast(gsc *c, const char *server, const msgpack_object *request, gsc_reply **out)
{
    return deliver(c, "cast", server, request, out);
}

int gsc_send(gsc *c, const char *server, const msgpack_object *msg, gsc_reply **out)
{
    return deliver(c, "send", server, msg, out);
}

int gsc_stop(gsc *c, const char *server, const msgpack_object *reason, int timeout_ms,
             gsc_reply **out)
{
    msgpack_packer pk;
    uint32_t id = begin_request(c, out, &pk, "stop", 3);
    if (id == 0)
        return GSC_BROKEN;
    gsc_pack_server(&pk, server);
    pack_opt(&pk, reason);
    int wait_ms = pack_timeout(&pk, timeout_ms);
    if (timeout_ms == 0)
        wait_ms = -1; /* nil: the daemon waits for terminate however long */
    return finish_request(c, id, wait_ms, out);
}

int gsc_whereis(gsc *c, const char *name, gsc_reply **out)
{
    return on_string(c, "whereis", name, out);
}

int gsc_which(gsc *c, gsc_reply **out)
{
    return simple(c, "which", out);
}

int gsc_info(gsc *c, const char *server, gsc_reply **out)
{
    return on_server(c, "info", server, out);
}

int gsc_get_state(gsc *c, const char *server, gsc_reply **out)
{
    return on_server(c, "get_state", server, out);
}

int gsc_modules(gsc *c, gsc_reply **out)
{
    return simple(c, "modules", out);
}

int gsc_load(gsc *c, const char *module, gsc_reply **out)
{
    return on_string(c, "load", module, out);
}

int gsc_reload(gsc *c, const char *module, gsc_reply **out)
{
    return on_string(c, "reload", module, out);
}

int gsc_monitor(gsc *c, const char *server, gsc_reply **out)
{
    return on_server(c, "monitor", server, out);
}

int gsc_demonitor(gsc *c, uint64_t ref, gsc_reply **out)
{
    msgpack_packer pk;
    uint32_t id = begin_request(c, out, &pk, "demonitor", 1);
    if (id == 0)
        return GSC_BROKEN;
    msgpack_pack_uint64(&pk, ref);
    return finish_request(c, id, GSC_WAIT_DEFAULT_MS, out);
}

int gsc_next_down(gsc *c, int wait_ms, gsc_down **out)
{
    *out = NULL;
    if (c == NULL)
        return GSC_BROKEN;
    /* Downs that arrived before a break are still delivered. */
    if (!c->head) {
        if (c->broken)
            return GSC_BROKEN;
        int r = wait_for(c, have_down, wait_ms);
        if (r == GSC_ERROR)
            seterr(c, "no down notification within %d ms", wait_ms);
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
