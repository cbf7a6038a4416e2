/*
 * gsclient.h — libgsclient, the C client of the gsd daemon.
 *
 * One gsc is one connection to one daemon. Calls are synchronous: each
 * sends one request and waits for its response, with a timeout. Down
 * notifications that arrive meanwhile are kept for gsc_next_down().
 *
 *     gsc *c = gsc_connect(NULL);               // the usual socket
 *     msgpack_object req = {.type = MSGPACK_OBJECT_STR,
 *                           .via.str = {.size = 3, .ptr = "get"}};
 *     gsc_reply *r;
 *     if (gsc_call(c, "counter", &req, 5000, &r) == GSC_OK) use(r->result);
 *     gsc_reply_destroy(&r);
 *     gsc_close(&c);
 *
 * Every request function returns:
 *     GSC_OK      the daemon answered a result: (*out)->result
 *     GSC_ERROR   the daemon answered an error: (*out)->code, (*out)->detail
 *     GSC_BROKEN  no answer: cannot send, connection lost or no response
 *                 in time; gsc_errmsg() says why and the gsc is unusable
 * On GSC_OK and GSC_ERROR *out is a reply you own: gsc_reply_destroy() it.
 * On GSC_BROKEN *out is NULL.
 *
 * Servers are named as on the command line: a string of decimal digits is
 * an id, anything else a name. Values are msgpack-c objects; the library
 * only reads the ones you pass (they stay yours).
 *
 * A gsc is not thread-safe: use one per thread.
 */
#ifndef GSD_CLIENT_H
#define GSD_CLIENT_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gsc gsc;

enum gsc_status { GSC_OK = 0, GSC_ERROR = 1, GSC_BROKEN = -1 };

/* A daemon's answer. Everything in it lives in its zone: freed together. */
typedef struct gsc_reply {
    msgpack_object result; /* GSC_OK: the result (nil when there is none) */
    const char *code;      /* GSC_ERROR: the error code ("noproc", ...), else NULL */
    msgpack_object detail; /* GSC_ERROR: the detail */
    msgpack_zone zone;     /* owns result, code and detail */
} gsc_reply;

/* A down notification from a monitor. */
typedef struct gsc_down {
    uint64_t ref;          /* the monitor's ref */
    uint64_t id;           /* the server that ended */
    msgpack_object name;   /* its name, or nil */
    msgpack_object reason; /* why it ended */
    msgpack_zone zone;     /* owns name and reason */
} gsc_down;

/* Connects to the socket at path, or (path NULL) to the one the usual
 * resolution finds (GSD_SOCKET, then the per-user default). Returns NULL
 * and sets errno on failure. */
gsc *gsc_connect(const char *path);

/* Closes the connection and frees c; sets *c to NULL. NULL is ignored. */
void gsc_close(gsc **c);

/* Why the last call failed, for humans. Valid until the next call on c. */
const char *gsc_errmsg(const gsc *c);

/* The socket descriptor, to poll on for down notifications. Downs that
 * arrived during a request are already read off it: check gsc_pending (or
 * call gsc_next_down(c, 0)) before you poll. */
int gsc_fd(const gsc *c);

/* True if a down notification, or bytes of one, are already buffered. */
bool gsc_pending(const gsc *c);

/* Frees a reply and sets *r to NULL. NULL is ignored. */
void gsc_reply_destroy(gsc_reply **r);
void gsc_down_destroy(gsc_down **d);

/*
 * Sends any method: params must be an array (NULL means []). wait_ms bounds
 * the wait for the response (-1: forever). All the calls below are this.
 */
int gsc_request(gsc *c, const char *method, const msgpack_object *params, int wait_ms,
                gsc_reply **out);

/* Sends a notification (no response, ever). Returns 0 or GSC_BROKEN. */
int gsc_notify(gsc *c, const char *method, const msgpack_object *params);

/* How long the library waits beyond a call's own timeout for its answer. */
#define GSC_GRACE_MS 2000
/* How long requests that do not name a timeout wait for their response. */
#define GSC_WAIT_DEFAULT_MS 30000

int gsc_ping(gsc *c, gsc_reply **out);
int gsc_version(gsc *c, gsc_reply **out);
/* name NULL: anonymous; args, options NULL: nil. Result: the id. */
int gsc_start(gsc *c, const char *module, const char *name, const msgpack_object *args,
              const msgpack_object *options, gsc_reply **out);
/* timeout_ms: -1 for "infinity", 0 for the daemon's default (5000). */
int gsc_call(gsc *c, const char *server, const msgpack_object *request, int timeout_ms,
             gsc_reply **out);
int gsc_cast(gsc *c, const char *server, const msgpack_object *request, gsc_reply **out);
int gsc_send(gsc *c, const char *server, const msgpack_object *msg, gsc_reply **out);
/* reason NULL: "normal". timeout_ms: -1 or 0 wait as long as terminate
 * takes (0 sends nil, which the daemon reads as "infinity" for stop); n
 * gives up after n ms. */
int gsc_stop(gsc *c, const char *server, const msgpack_object *reason, int timeout_ms,
             gsc_reply **out);
int gsc_whereis(gsc *c, const char *name, gsc_reply **out);
int gsc_which(gsc *c, gsc_reply **out);
int gsc_info(gsc *c, const char *server, gsc_reply **out);
int gsc_get_state(gsc *c, const char *server, gsc_reply **out);
int gsc_modules(gsc *c, gsc_reply **out);
int gsc_load(gsc *c, const char *module, gsc_reply **out);
int gsc_reload(gsc *c, const char *module, gsc_reply **out);
/* Result: the monitor's ref (uint). */
int gsc_monitor(gsc *c, const char *server, gsc_reply **out);
int gsc_demonitor(gsc *c, uint64_t ref, gsc_reply **out);

/*
 * Waits up to wait_ms (-1: forever) for the next down notification. Returns
 * GSC_OK with *out set (yours to destroy), GSC_ERROR with *out NULL when
 * none came in time, or GSC_BROKEN.
 */
int gsc_next_down(gsc *c, int wait_ms, gsc_down **out);

/* Packs a server reference as the wire wants it (uint id or str name). */
void gsc_pack_server(msgpack_packer *pk, const char *server);

#ifdef __cplusplus
}
#endif
#endif /* GSD_CLIENT_H */
