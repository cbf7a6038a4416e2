/* conn.c — client connections: read what is there, frame it, dispatch
 * its complete messages in rounds, write the answers once per loop turn.
 *
 * Fairness: a connection is served in rounds of at most CONN_ROUND messages
 * and LOOP_SLICE_US of work. One that has more to do after its round stops
 * reading (its input stays bounded) and queues its next round behind every
 * other piece of client work already due: round robin, so a flood on some
 * connections delays another's request by a round of each, not by the
 * whole flood. While any connection has rounds queued the loop is busy,
 * and each round writes its answers at once instead of waiting for the end
 * of the pass.
 *
 * The limits a connection meets (limits.c): a message that stays
 * unfinished longer than partial_ms, or unfinished bytes of all
 * connections together over partial_bytes, cut the sender off; so does
 * output over output_bytes that the client does not read. A message for a
 * full mailbox is held, unread, with reading stopped (conn_hold), until the
 * mailbox has room. */
#include "gsd.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK 65536    /* bytes read in one go, at most */
#define READ_SMALL 4096     /* what a connection's buffer has room for until a read fills it */
#define HUP_CHECK_MS 1000   /* how often a half-closed peer is checked for a full close */
#define CONN_ROUND SCHED_PER_TURN /* messages served in one round of a connection */
#define SHED_MIN 65536 /* over the budget, a client with less unread output is not cut off */

static TAILQ_HEAD(, conn) flushq = TAILQ_HEAD_INITIALIZER(flushq);
static struct event *flusher; /* made active: flushes once this pass's reads are done */
static bool flush_due;        /* flusher is active */
static TAILQ_HEAD(, conn) conns = TAILQ_HEAD_INITIALIZER(conns);
static uint64_t last_id;
static unsigned nconns;
static uint64_t buffered; /* bytes of unfinished messages, all connections */
static unsigned nbacklog; /* connections with a round queued: the loop is busy */

static void conn_read(evutil_socket_t fd, short what, void *arg);
static void conn_write(evutil_socket_t fd, short what, void *arg);
static void conn_close(struct conn *c);
static void conn_resume(evutil_socket_t fd, short what, void *arg);
static void conn_trickle(evutil_socket_t fd, short what, void *arg);
static void conn_flush_pass(evutil_socket_t fd, short what, void *arg);

unsigned conn_count(void)
{
    return nconns;
}

void conn_foreach(void (*fn)(struct conn *c, void *arg), void *arg)
{
    struct conn *c;
    TAILQ_FOREACH(c, &conns, all_link)
        fn(c, arg);
}

struct conn *conn_by_id(uint64_t id)
{
    struct conn *c;
    TAILQ_FOREACH(c, &conns, all_link)
        if (c->id == id)
            return c;
    return NULL;
}

size_t conn_live_links(const struct conn *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->nlinks; i++)
        n += registry_by_id(c->links[i]) != NULL;
    return n;
}

/* The budget's charge for c follows its buffers' sizes. */
static void charge(struct conn *c)
{
    size_t now = sizeof *c + c->in.cap + c->out.cap;
    budget_used = budget_used - c->charged + now;
    c->charged = now;
}

void conn_new(int fd)
{
    if (flusher == NULL)
        flusher = event_new(loop_base, -1, 0, conn_flush_pass, NULL);
    struct conn *c = xcalloc(1, sizeof *c);
    c->id = ++last_id;
    c->fd = fd;
    c->since_ms = now_ms();
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        c->uid = cred.uid;
        c->gid = cred.gid;
        c->pid = cred.pid;
        c->admin = auth_admin(fd, cred.uid, cred.gid);
    }
    LIST_INIT(&c->waiters);
    LIST_INIT(&c->monitors);
    gsp_packer_init(&c->pk, &c->out);
    c->rev = event_new(loop_base, fd, EV_READ | EV_PERSIST, conn_read, c);
    c->wev = event_new(loop_base, fd, EV_WRITE | EV_PERSIST, conn_write, c);
    c->resume = evtimer_new(loop_base, conn_resume, c);
    c->trickle = loop_event(LOOP_PRIO_OWN, -1, 0, conn_trickle, c);
    charge(c);
    event_add(c->rev, NULL);
    TAILQ_INSERT_TAIL(&conns, c, all_link);
    nconns++;
    log_msg(LOG_DEBUG, "connection %llu: pid %d uid %d", (unsigned long long)c->id, (int)c->pid,
            (int)c->uid);
}

msgpack_packer *conn_packer(struct conn *c)
{
    if (!c->dirty) {
        c->dirty = true;
        TAILQ_INSERT_TAIL(&flushq, c, flush_link);
    }
    return &c->pk;
}

void conn_add_link(struct conn *c, uint64_t server_id)
{
    if (c->nlinks == c->links_cap) { /* forget servers that have ended first */
        size_t live = 0;
        for (size_t i = 0; i < c->nlinks; i++)
            if (registry_by_id(c->links[i]))
                c->links[live++] = c->links[i];
        c->nlinks = live;
    }
    if (c->nlinks == c->links_cap) {
        c->links_cap = c->links_cap ? 2 * c->links_cap : 4;
        c->links = xrealloc(c->links, c->links_cap * sizeof *c->links);
    }
    c->links[c->nlinks++] = server_id;
}

/* [2, "error", [code, why]]: an error no request can carry. */
static void conn_notify_error(struct conn *c, enum gsp_code code, const char *why)
{
    gsp_pack_error_notify(conn_packer(c), code, why);
}

/* A bad stream: say why, stop reading, close once that is written. */
static void conn_fatal(struct conn *c, enum gsp_code code, const char *why)
{
    log_msg(LOG_WARN, "connection %llu (pid %d): %s: %s; closing", (unsigned long long)c->id,
            (int)c->pid, gsp_code_name(code), why);
    conn_notify_error(c, code, why);
    c->closing = true;
    event_del(c->rev);
}

/* A client that does not read what it is sent: nothing more is queued
 * for it, and it is closed at the next flush (its calls dropped, its
 * linked servers stopped), whatever is still queued for it dropped. */
static void conn_cut(struct conn *c, const char *why, uint64_t limit)
{
    log_msg(LOG_WARN,
            "connection %llu (pid %d) does not read its responses: %zu bytes queued, %s of "
            "%llu; closing",
            (unsigned long long)c->id, (int)c->pid, c->out.len - c->out_off, why,
            (unsigned long long)limit);
    c->closing = c->eof = true;
    event_del(c->rev);
}

bool conn_budget_room(struct conn *c, size_t n)
{
    charge(c); /* what this round has packed for c so far */
    return !limits.memory ||
           budget_used + gsp_buf_cap_for(&c->out, n) - c->out.cap <= limits.memory;
}

bool conn_room(struct conn *c, size_t n)
{
    if (c->closing)
        return false;
    if (!limits.output_bytes || c->out.len - c->out_off + n <= limits.output_bytes)
        return true;
    conn_cut(c, "over the limit", limits.output_bytes);
    conn_packer(c); /* closed at the next flush */
    return false;
}

/* Valid msgpack the daemon does not take, for why (of the wrong shape, or
 * holding an atom): answer, keep the connection. */
static void conn_badarg(struct conn *c, const struct gsp_envelope *env, const char *why)
{
    if (env->has_msgid && env->type == GSP_REQUEST)
        gsp_pack_error(conn_packer(c), env->msgid, GSP_BADARG, "%s", why);
    else
        conn_notify_error(c, GSP_BADARG, why);
}

static void trickle_stop(struct conn *c)
{
    if (c->trickling)
        event_del(c->trickle);
    c->trickling = false;
}

bool conn_hold(struct conn *c, struct server *s)
{
    if (!mailbox_full(&s->mbox))
        return false;
    c->blocked = &s->mbox;
    TAILQ_INSERT_TAIL(&s->mbox.blocked, c, blocked_link);
    event_del(c->rev);
    trickle_stop(c); /* the held bytes wait on the daemon, not on the client */
    return true;
}

void conn_unblock(struct conn *c)
{
    TAILQ_REMOVE(&c->blocked->blocked, c, blocked_link);
    c->blocked = NULL;
    loop_arm(c->resume, 0); /* not from here: a server's callback may be running */
}

/* The daemon's count of unfinished input follows c's. A held or
 * backlogged connection's bytes are the daemon's to dispatch, not the
 * client's to finish. */
static void count_input(struct conn *c)
{
    size_t n = c->blocked || c->backlog ? 0 : c->in.len;
    buffered = buffered - c->counted + n;
    c->counted = n;
}

/* Serves one whole message; true if it is done with (not held). */
static bool conn_message(struct conn *c, const struct gsp_envelope *env, bool ok)
{
    if (ok && env->type != GSP_RESPONSE)
        method_dispatch(c, env);
    else
        conn_badarg(c, env, "expected [0, msgid, method, params] or [2, method, params]");
    return !c->blocked; /* else it is read again when there is room */
}

/* c has more to do after its round: it stops reading until its next
 * round, queued behind the client work already waiting. */
static void backlog_set(struct conn *c, bool more)
{
    if (more == c->backlog)
        return;
    c->backlog = more;
    if (more) {
        nbacklog++;
        event_del(c->rev);
        event_active(c->resume, EV_TIMEOUT, 1);
    } else
        nbacklog--;
}

/* One round: the messages buffered, up to CONN_ROUND of them or the first
 * that ends past LOOP_SLICE_US (the clock moves after each callback and
 * each method but call). */
static void conn_parse(struct conn *c)
{
    size_t off = 0, len;
    struct gsp_envelope env;
    sched_round_begin(); /* its requests take their deadlines from the clock it reads */
    unsigned served = 0;
    backlog_set(c, false);
    while (!c->closing && !c->blocked && off < c->in.len) {
        if (served++ == CONN_ROUND || sched_round_over()) {
            backlog_set(c, true);
            break;
        }
        const uint8_t *p = c->in.data + off;
        /* The usual request is read in one pass. Anything else is framed
         * first; a message that has not all arrived is framed on from
         * where the framer stopped, never read again from its start. */
        if (c->framer.pos == 0 && gsp_request_read(p, c->in.len - off, &limits.message, &env, &len)) {
            if (conn_message(c, &env, true))
                off += len;
            continue;
        }
        switch (gsp_framer_feed(&c->framer, p, c->in.len - off, &limits.message, &len)) {
        case GSP_SCAN_MORE:
            goto done;
        case GSP_SCAN_INVALID:
            conn_fatal(c, GSP_PROTOCOL, "not msgpack");
            goto done;
        case GSP_SCAN_TOO_LARGE:
            conn_fatal(c, GSP_TOO_LARGE, "message over the size limit");
            goto done;
        case GSP_SCAN_TOO_DEEP:
            conn_fatal(c, GSP_TOO_LARGE, "message nested too deep");
            goto done;
        case GSP_SCAN_DONE: {
            bool ok = gsp_envelope_read(p, len, &env);
            /* An atom (ext GSP_EXT_ATOM) only a module makes, so that no
             * client's data fills an Erlang peer's atom table. */
            if (c->framer.atom)
                conn_badarg(c, &env, "ext type 22 is an atom, which only a module makes (gs_atom)");
            if (c->framer.atom || conn_message(c, &env, ok))
                off += len;
            break;
        }
        }
    }
done:
    gsp_buf_consume(&c->in, off);
    /* An empty buffer larger than READ_SMALL is given back unless its
     * client streams (its last read filled what it had room for) and it
     * is no larger than two reads: an idle client holds little of the
     * budget, whatever it sent once. */
    if (c->in.len == 0 && c->in.cap > READ_SMALL && (!c->read_full || c->in.cap > 2 * READ_CHUNK))
        gsp_buf_free(&c->in);
    count_input(c);
    charge(c);
    /* A message that is still unfinished gets partial_ms from when the
     * previous one was done (or from when it started, if it is the first). */
    if (c->in.len == 0 || c->blocked || c->backlog || c->closing)
        trickle_stop(c);
    else if (limits.partial_ms && (off > 0 || !c->trickling)) {
        loop_arm(c->trickle, limits.partial_ms);
        c->trickling = true;
    }
}

static void conn_trickle(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct conn *c = arg;
    c->trickling = false;
    char why[96];
    snprintf(why, sizeof why, "message unfinished after %u ms", limits.partial_ms);
    conn_fatal(c, GSP_TIMEOUT, why);
    conn_flush_all();
}

/* c's next round, or the mailbox that held c up has room: dispatch what
 * is buffered, then read again unless it is held or has more to do. */
static void conn_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct conn *c = arg;
    if (c->blocked || c->closing)
        return;
    conn_parse(c);
    if (!c->blocked && !c->backlog && !c->closing && !c->eof)
        event_add(c->rev, NULL);
    conn_packer(c);
    conn_flush_all();
}

/* True if the peer closed both directions or failed. A peer that only shut
 * its sending side is not gone: POLLHUP is set only for a full close. */
static bool peer_gone(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR));
}

/* A half-closed peer may still close fully: then its calls have no reader. */
static void conn_hup_check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct conn *c = arg;
    if (!peer_gone(c->fd))
        return;
    c->closing = true;
    conn_packer(c);
    conn_flush_all();
}

static void conn_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct conn *c = arg;
    /* An idle or light client keeps a small buffer (charged to the budget
     * as allocated); one whose reads fill it gets READ_CHUNK. */
    gsp_buf_reserve(&c->in, c->read_full ? READ_CHUNK : READ_SMALL);
    size_t room = c->in.cap - c->in.len < READ_CHUNK ? c->in.cap - c->in.len : READ_CHUNK;
    ssize_t n = read(fd, c->in.data + c->in.len, room);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        /* A peer that only shut its sending side still reads what it asked
         * for; one that closed or failed has gone. */
        c->eof = true;
        event_del(c->rev);
        if (n < 0 || peer_gone(fd))
            c->closing = true;
        else if (!LIST_EMPTY(&c->waiters)) {
            struct timeval every = {HUP_CHECK_MS / 1000, (HUP_CHECK_MS % 1000) * 1000};
            c->hup = event_new(loop_base, -1, EV_PERSIST, conn_hup_check, c);
            event_add(c->hup, &every);
        }
    } else {
        c->read_full = (size_t)n == room;
        c->in.len += (size_t)n;
        conn_parse(c);
        if (limits.partial_bytes && buffered > limits.partial_bytes && c->in.len && !c->blocked &&
            !c->backlog && !c->closing) {
            char why[128];
            snprintf(why, sizeof why,
                     "unfinished messages of all clients over the daemon's limit of %llu bytes",
                     (unsigned long long)limits.partial_bytes);
            conn_fatal(c, GSP_TOO_LARGE, why);
        }
    }
    conn_packer(c); /* flush, or close if nothing is left to answer */
    /* Once every read of this loop pass is served (an event made active now
     * runs after those already active): a client with several connections
     * is woken once per pass with all its answers, rather than as each
     * read is served. The last read of a pass flushes at once, and so does
     * every read while the loop is busy: the pass may not end for a while. */
    if (nbacklog || event_base_get_num_events(loop_base, EVENT_BASE_COUNT_ACTIVE) == 0)
        conn_flush_all();
    else if (!flush_due) {
        flush_due = true;
        event_active(flusher, EV_READ, 0);
    }
}

static void conn_flush_pass(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    flush_due = false;
    conn_flush_all();
}

/* Writes what is buffered; closes a connection that is finished. */
static void conn_flush(struct conn *c)
{
again:
    while (c->out_off < c->out.len) {
        ssize_t n = write(c->fd, c->out.data + c->out_off, c->out.len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN && !c->closing &&
                   (!limits.output_bytes || c->out.len - c->out_off <= limits.output_bytes)) {
            /* Drop what is written once it is half the buffer: a client
             * that always lags keeps the buffer within twice its backlog,
             * and a large answer is not moved at every short write. */
            if (c->out_off * 2 >= c->out.len) {
                gsp_buf_consume(&c->out, c->out_off);
                c->out_off = 0;
            }
            charge(c);
            event_add(c->wev, NULL);
            c->awaiting_write = true;
            return;
        } else {
            /* The peer has gone, or does not read what it asked for: give up. */
            if (n < 0 && errno == EAGAIN && !c->closing)
                conn_cut(c, "over the limit", limits.output_bytes);
            c->eof = c->closing = true;
            break;
        }
    }
    c->out.len = c->out_off = 0;
    if (!LIST_EMPTY(&c->traces) && !c->closing && trace_conn_drained(c))
        goto again;              /* the trace events it dropped, counted, now that there is room */
    if (c->out.cap > READ_SMALL) /* written: an idle client holds little of the budget */
        gsp_buf_free(&c->out);
    charge(c);
    if (c->awaiting_write)
        event_del(c->wev);
    c->awaiting_write = false;
    if (c->closing || (c->eof && LIST_EMPTY(&c->waiters)))
        conn_close(c);
}

static void conn_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct conn *c = arg;
    if (c->dirty) {
        TAILQ_REMOVE(&flushq, c, flush_link);
        c->dirty = false;
    }
    conn_flush(c);
}

static size_t unread(const struct conn *c)
{
    return c->out.len - c->out_off;
}

/* Over the memory budget: the clients holding the most unread output are
 * cut off, the most first, until the daemon is under it again or no
 * client holds much. What is left over it is answered overloaded
 * (method.c). */
static void shed(void)
{
    while (budget_over()) {
        struct conn *c, *worst = NULL;
        TAILQ_FOREACH(c, &conns, all_link)
            if (!c->closing && (worst == NULL || unread(c) > unread(worst)))
                worst = c;
        if (worst == NULL || unread(worst) < SHED_MIN)
            return;
        conn_cut(worst, "the daemon over its memory budget", limits.memory);
        conn_close(worst);
    }
}

void conn_flush_all(void)
{
    struct conn *c;
    while ((c = TAILQ_FIRST(&flushq)) != NULL) {
        TAILQ_REMOVE(&flushq, c, flush_link);
        c->dirty = false;
        conn_flush(c);
    }
    if (budget_check())
        shed();
}

static void conn_close(struct conn *c)
{
    log_msg(LOG_DEBUG, "connection %llu closed", (unsigned long long)c->id);
    waiter_conn_closed(c);
    monitor_conn_closed(c);
    trace_conn_closed(c);
    for (size_t i = 0; i < c->nlinks; i++) {
        struct server *s = registry_by_id(c->links[i]);
        if (s)
            server_post(s, MSG_STOP, 0, enc_shutdown.ptr, enc_shutdown.len);
    }
    if (c->dirty)
        TAILQ_REMOVE(&flushq, c, flush_link);
    if (c->blocked)
        TAILQ_REMOVE(&c->blocked->blocked, c, blocked_link);
    backlog_set(c, false);
    TAILQ_REMOVE(&conns, c, all_link);
    nconns--;
    event_free(c->rev);
    event_free(c->wev);
    event_free(c->resume);
    event_free(c->trickle);
    if (c->hup)
        event_free(c->hup);
    close(c->fd);
    gsp_buf_free(&c->in);
    count_input(c);
    gsp_buf_free(&c->out);
    budget_release(c->charged);
    free(c->links);
    free(c);
}

void conn_close_all(void)
{
    conn_flush_all();
    while (!TAILQ_EMPTY(&conns))
        conn_close(TAILQ_FIRST(&conns));
    if (flusher)
        event_free(flusher);
    flusher = NULL;
    flush_due = false;
}
