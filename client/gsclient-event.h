/*
 * gsclient-event.h — runs a libgsclient connection inside your libevent
 * loop. Header-only on purpose: libgsclient does not link libevent, so
 * programs that never include this header do not need it; a program that
 * does links with -levent itself.
 *
 *     struct event_base *base = event_base_new();
 *     gsc *c = gsc_connect(NULL);
 *     gsc_event_attach(c, base);
 *     gsc_call_async(c, "counter", &req, 1000, on_reply, NULL);
 *     event_base_dispatch(base);   // on_reply runs from here
 *     gsc_close(&c);               // detaches and frees the adapter
 *
 * Callbacks of c run from the base's loop. The adapter reads when the
 * socket is readable, writes while requests wait to be written, and wakes
 * at the earliest request deadline; each wake-up is one gsc_process, so
 * every turn does bounded work. Once c breaks its events are removed, so
 * a base with nothing else to do returns from event_base_dispatch.
 * gsc_close(&c), also from a callback, detaches and frees the adapter;
 * close c before freeing the base. Not thread-safe, as gsc is not.
 */
#ifndef GSD_CLIENT_EVENT_H
#define GSD_CLIENT_EVENT_H

#include "gsclient.h"

#include <event2/event.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>

/* The adapter's state: three events on one connection. */
struct gsc_event_link {
    gsc *c;
    struct event_base *base;
    struct event *rd; /* persistent: the socket is readable */
    struct event *wr; /* one-shot: armed while output waits */
    struct event *tm; /* one-shot: the earliest request deadline */
    bool busy;        /* inside gsc_event_fire_: free there, not in release */
    bool closed;      /* c was closed while busy */
};

static inline void gsc_event_free_(struct gsc_event_link *l)
{
    event_free(l->rd);
    event_free(l->wr);
    event_free(l->tm);
    free(l);
}

/* Something happened: let the connection act on it. */
static inline void gsc_event_fire_(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct gsc_event_link *l = arg;
    l->busy = true;
    gsc_process(l->c); /* a callback may close c: release then leaves l to us */
    l->busy = false;
    if (l->closed)
        gsc_event_free_(l);
}

/* Re-arms the events after what c waits for changed. */
static inline void gsc_event_changed_(gsc *c, void *arg)
{
    struct gsc_event_link *l = arg;
    short ev = gsc_events(c);
    if (ev == 0) {
        event_del(l->rd);
        event_del(l->wr);
        event_del(l->tm);
        return;
    }
    if (ev & POLLOUT)
        event_add(l->wr, NULL);
    else
        event_del(l->wr);
    int ms = gsc_next_timeout(c);
    if (ms >= 0) {
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        event_add(l->tm, &tv);
    } else {
        event_del(l->tm);
    }
}

/* c is closing: free the events now, or, if this runs under our own
 * event callback, as soon as that callback is done with them. */
static inline void gsc_event_release_(void *arg)
{
    struct gsc_event_link *l = arg;
    if (l->busy) {
        event_del(l->rd);
        event_del(l->wr);
        event_del(l->tm);
        l->closed = true;
        return;
    }
    gsc_event_free_(l);
}

/*
 * Drives c from base until c is closed. Returns 0, or -1 if libevent could
 * not make the events (nothing is attached then). Replaces any other watch
 * set on c (gsc_set_watch).
 */
static inline int gsc_event_attach(gsc *c, struct event_base *base)
{
    struct gsc_event_link *l = calloc(1, sizeof *l);
    if (l == NULL)
        return -1;
    l->c = c;
    l->base = base;
    int fd = gsc_fd(c);
    l->rd = event_new(base, fd, EV_READ | EV_PERSIST, gsc_event_fire_, l);
    l->wr = event_new(base, fd, EV_WRITE, gsc_event_fire_, l);
    l->tm = evtimer_new(base, gsc_event_fire_, l);
    if (l->rd == NULL || l->wr == NULL || l->tm == NULL || event_add(l->rd, NULL) < 0) {
        if (l->rd)
            event_free(l->rd);
        if (l->wr)
            event_free(l->wr);
        if (l->tm)
            event_free(l->tm);
        free(l);
        return -1;
    }
    gsc_set_watch(c, gsc_event_changed_, gsc_event_release_, l);
    gsc_event_changed_(c, l);
    return 0;
}

#endif /* GSD_CLIENT_EVENT_H */
