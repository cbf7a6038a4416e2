/*
 * gsmulti.c — one request to the same server name on several daemons:
 * GenServer's multi_call and abcast over libgsclient's asynchronous calls.
 *
 * Every daemon gets its request at once, on its own connection; one poll
 * loop drives them all, and one overall deadline (which is also each
 * request's own) ends the wait, so a daemon that hangs costs no more than
 * the timeout and a daemon that is down costs nothing.
 */
#include "gsclient.h"
#include "gsp.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MULTI_PENDING 2 /* a status no completion has: still waiting */

/* Allocates or ends the process. */
static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (p == NULL)
        abort(); /* out of memory ends the process */
    return p;
}

/* Milliseconds on the monotonic clock. */
static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One daemon's request completed. */
static void multi_done(gsc *c, uint32_t msgid, int status, gsc_reply *reply, void *arg)
{
    (void)msgid;
    gsc_multi_reply *d = arg;
    d->status = status;
    d->reply = reply;
    if (status == GSC_TIMEOUT)
        snprintf(d->errmsg, sizeof d->errmsg, "no answer in time");
    else if (status == GSC_BROKEN)
        snprintf(d->errmsg, sizeof d->errmsg, "%s", gsc_errmsg(c));
}

/* Sends the request to every daemon, then waits for them all. */
static size_t multi(bool call, const char *const *sockets, size_t n, const char *server,
                    const msgpack_object *request, int timeout_ms, gsc_multi **out)
{
    gsc_multi *m = xcalloc(1, sizeof *m);
    m->n = n;
    m->daemon = xcalloc(n, sizeof *m->daemon);
    gsc **conn = xcalloc(n, sizeof *conn);
    struct pollfd *pfd = xcalloc(n, sizeof *pfd);
    /* The daemon's call timeout and ours are the same instant: whichever
     * says "timeout" first, the answer is the same. */
    int wait_ms = timeout_ms == 0 ? GSP_CALL_TIMEOUT_DEFAULT : timeout_ms;
    for (size_t i = 0; i < n; i++) {
        gsc_multi_reply *d = &m->daemon[i];
        d->socket = strdup(sockets[i]);
        if (d->socket == NULL)
            abort(); /* out of memory ends the process */
        d->status = MULTI_PENDING;
        /* A blocking connect would wait on a full backlog, past our timeout. */
        conn[i] = gsc_connect_nowait(sockets[i]);
        if (conn[i] == NULL) {
            d->status = GSC_BROKEN;
            snprintf(d->errmsg, sizeof d->errmsg, "connect %s: %s", sockets[i],
                     errno == EAGAIN ? "the daemon's listen backlog is full" : strerror(errno));
            continue;
        }
        uint32_t id;
        if (call)
            id = gsc_call_async(conn[i], server, request, timeout_ms, multi_done, d);
        else
            id = gsc_cast_async(conn[i], server, request, multi_done, d);
        if (id == 0) {
            d->status = GSC_BROKEN;
            snprintf(d->errmsg, sizeof d->errmsg, "%s", gsc_errmsg(conn[i]));
        }
    }
    /* Our deadline, not the requests' own (a call's has the grace added). */
    long long deadline = wait_ms < 0 ? -1 : now_ms() + wait_ms;
    for (;;) {
        size_t np = 0;
        for (size_t i = 0; i < n; i++) {
            if (m->daemon[i].status != MULTI_PENDING)
                continue;
            pfd[np].fd = gsc_fd(conn[i]);
            pfd[np].events = gsc_events(conn[i]);
            np++;
        }
        if (np == 0)
            break;
        long long now = now_ms();
        if (deadline >= 0 && now >= deadline)
            break;
        long long left = deadline < 0 ? -1 : deadline - now;
        poll(pfd, np, left < 0 ? -1 : left > INT_MAX ? INT_MAX : (int)left);
        for (size_t i = 0; i < n; i++)
            if (m->daemon[i].status == MULTI_PENDING)
                gsc_process(conn[i]);
    }
    for (size_t i = 0; i < n; i++) {
        gsc_multi_reply *d = &m->daemon[i];
        if (d->status == MULTI_PENDING) {
            /* The request is still in flight: closing completes it, then
             * this says what really happened. */
            gsc_close(&conn[i]);
            d->status = GSC_TIMEOUT;
            snprintf(d->errmsg, sizeof d->errmsg, "no answer within %d ms", wait_ms);
        }
        gsc_close(&conn[i]);
        if (d->status != GSC_OK)
            m->nbad++;
    }
    free(pfd);
    free(conn);
    *out = m;
    return m->nbad;
}

size_t gsc_multi_call(const char *const *sockets, size_t n, const char *server,
                      const msgpack_object *request, int timeout_ms, gsc_multi **out)
{
    return multi(true, sockets, n, server, request, timeout_ms, out);
}

size_t gsc_abcast(const char *const *sockets, size_t n, const char *server,
                  const msgpack_object *request, int timeout_ms, gsc_multi **out)
{
    return multi(false, sockets, n, server, request, timeout_ms, out);
}

void gsc_multi_destroy(gsc_multi **mp)
{
    if (mp == NULL || *mp == NULL)
        return;
    gsc_multi *m = *mp;
    for (size_t i = 0; i < m->n; i++) {
        free(m->daemon[i].socket);
        gsc_reply_destroy(&m->daemon[i].reply);
    }
    free(m->daemon);
    free(m);
    *mp = NULL;
}
