/*
 * gsclient.h — libgsclient, the C client of the gsd daemon.
 *
 * One gsc is one connection to one daemon. Every request can be made two
 * ways, over one implementation:
 *
 *   synchronous   gsc_call(c, ..., &reply) sends the request and waits for
 *                 its response, with a timeout;
 *   asynchronous  gsc_call_async(c, ..., done, arg) queues the request and
 *                 returns its msgid at once; done(c, msgid, status, reply,
 *                 arg) runs later, from gsc_process (or from a synchronous
 *                 call, gsc_run or gsc_next_down, which drive the same
 *                 machinery). Many requests may be in flight on one
 *                 connection; they complete in whatever order the daemon
 *                 answers them, each at the latest at its own deadline.
 *
 *     gsc *c = gsc_connect(NULL);               // the usual socket
 *     msgpack_object req = {.type = MSGPACK_OBJECT_STR,
 *                           .via.str = {.size = 3, .ptr = "get"}};
 *     gsc_reply *r;
 *     if (gsc_call(c, "counter", &req, 5000, &r) == GSC_OK) use(r->result);
 *     gsc_reply_destroy(&r);
 *     gsc_close(&c);
 *
 * or, with the request written as a format (see "Requests from a format"):
 *
 *     if (gsc_command(c, &r, "call counter [add, %d]", n) == GSC_OK) ...
 *
 * Every synchronous request function returns:
 *     GSC_OK      the daemon answered a result: (*out)->result
 *     GSC_ERROR   the daemon answered an error: (*out)->code, (*out)->detail
 *     GSC_BROKEN  no answer: cannot send, connection lost or no response
 *                 in time; gsc_errmsg() says why and the gsc is unusable
 *                 (gsc_close it) -- except for a request refused before
 *                 sending as malformed (a bad format, bad raw params):
 *                 then errno is EINVAL and the gsc is still usable
 *     GSC_CLOSED  a callback closed c during the call: c is freed
 * On GSC_OK and GSC_ERROR *out is a reply you own: gsc_reply_destroy() it.
 * Otherwise *out is NULL.
 *
 * An asynchronous completion gets one of GSC_OK, GSC_ERROR (reply as
 * above, yours), GSC_TIMEOUT (no response by the request's deadline; the
 * connection stays usable and a late response is dropped) or GSC_BROKEN
 * (the connection broke or was closed, or the daemon answered something
 * that is not a response; gsc_errmsg() says why). Every
 * request accepted (non-zero msgid) completes exactly once, even when the
 * daemon dies: no callback is left hanging.
 *
 * What a timed-out request did. If none of its bytes had been written by
 * its deadline (the daemon was not reading), it is taken out of the output
 * and never reaches the daemon. Otherwise the daemon has it, or part of
 * it, and may still carry it out: a cast may be delivered, a stop may
 * still stop its server. A GSC_TIMEOUT therefore means "no answer", not
 * "not done".
 *
 * Closing from a callback. A callback (a request's done, a gsc_on_down
 * handler) may gsc_close(c). c is then freed when the library call that ran
 * the callback returns (gsc_process, gsc_run, gsc_next_down, gsc_notify or
 * a synchronous request), and that call returns GSC_CLOSED: c is gone, so
 * do not touch it again through any pointer, not even with gsc_errmsg or
 * gsc_close. No other status means that; after any other status c is still
 * yours to gsc_close.
 *
 * Running the asynchronous side, pick one:
 *   - your own poll loop: poll gsc_fd() for gsc_events(), with a timeout of
 *     gsc_next_timeout(), then call gsc_process();
 *   - libevent: gsc_event_attach(c, base) from "gsclient-event.h", a small
 *     header-only adapter over the calls above. libgsclient itself does not
 *     link libevent; only programs that include that header do;
 *   - neither: gsc_run(c, ms) waits until nothing is in flight.
 *
 * Servers are named as on the command line: a string of decimal digits is
 * an id, anything else a name. Values are msgpack-c objects; the library
 * only reads the ones you pass (they stay yours, and may be freed as soon
 * as the function returns: requests are encoded at once).
 *
 * A gsc is not thread-safe: use one per thread.
 */
#ifndef GSD_CLIENT_H
#define GSD_CLIENT_H

#include <msgpack.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gsc gsc;

enum gsc_status {
    GSC_OK = 0,
    GSC_ERROR = 1,
    GSC_BROKEN = -1,
    GSC_TIMEOUT = -2,
    GSC_CLOSED = -3, /* c was closed by a callback during the call, and is freed */
};

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

/* The system daemon's socket, where root's clients look for it and where a
 * user's client falls back to when the user's own socket does not exist. */
#define GSC_SYSTEM_SOCKET "/run/gsd/gsd.sock"

/*
 * The socket gsc_connect(path) connects to, written to out (n bytes):
 *   1. path itself, if it is neither NULL nor "";
 *   2. else $GSD_SOCKET, if set and not empty;
 *   3. else, for root, GSC_SYSTEM_SOCKET;
 *   4. else the user's own socket, $XDG_RUNTIME_DIR/gsd.sock
 *      (/tmp/gsd-$UID/gsd.sock when XDG_RUNTIME_DIR is unset) -- unless
 *      that does not exist and GSC_SYSTEM_SOCKET does: then that one.
 * Only existence is looked at (stat): an own socket that exists but whose
 * daemon is gone is still the answer. Returns 0, or -1 with errno
 * ENAMETOOLONG if the path does not fit in n bytes or in a sockaddr_un.
 */
int gsc_socket_path(const char *path, char *out, size_t n);

/* Connects to the socket at path, or (path NULL) to the one the usual
 * resolution finds (gsc_socket_path). Returns NULL
 * and sets errno on failure. gsc_connect may block: while the daemon's
 * listen backlog is full (a daemon that is stopped or overwhelmed does not
 * accept) it waits, with no bound, for room. gsc_connect_nowait never
 * waits: it fails with EAGAIN then. Use it from an event loop. */
gsc *gsc_connect(const char *path);
gsc *gsc_connect_nowait(const char *path);

/* Closes the connection and frees c; sets *c to NULL. NULL is ignored.
 * Every request still in flight completes first, with GSC_BROKEN. From a
 * callback c is freed later, when the library call that ran the callback
 * returns GSC_CLOSED (see "Closing from a callback" above); other pointers
 * to c must be forgotten by then. */
void gsc_close(gsc **c);

/* Why the last call failed, for humans. Valid until the next call on c. */
const char *gsc_errmsg(const gsc *c);

/* The socket descriptor. For down notifications alone: downs that arrived
 * during a request are already read off it, so check gsc_pending (or call
 * gsc_next_down(c, 0)) before you poll. */
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

/* Sends a notification (no response, ever) and waits until it, and what
 * was queued on c before it, is written: up to GSC_WAIT_DEFAULT_MS, or
 * wait_ms (-1: forever) for gsc_notify_wait. Returns 0, GSC_BROKEN or
 * GSC_CLOSED. A daemon that does not read it in time (it has stopped
 * reading) breaks c: GSC_BROKEN, as part of the message may have been
 * written and the stream cannot be resumed. */
int gsc_notify(gsc *c, const char *method, const msgpack_object *params);
int gsc_notify_wait(gsc *c, const char *method, const msgpack_object *params, int wait_ms);

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
/* Result: every running server, as an array of maps {id, name, module,
 * status} in id (= start) order, in one response however many there are
 * (100,000 servers make about 5 MB): gsc_which_page where there may be
 * many. */
int gsc_which(gsc *c, gsc_reply **out);
/*
 * One page of the same list: at most count servers whose id is greater
 * than after_id (0: from the first), in id order. The next page is asked
 * with the last id of this one; a page shorter than count is the last.
 * Each page is read when it is asked for: a server started meanwhile is
 * seen if its id comes after the page being read (ids only grow), one
 * that ended is not; none is listed twice. Returns as every request does;
 * on GSC_OK (*out)->result is the array, *out yours to destroy.
 */
int gsc_which_page(gsc *c, uint64_t after_id, uint32_t count, gsc_reply **out);
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
 * none came in time, GSC_BROKEN or GSC_CLOSED. Downs go to a gsc_on_down
 * handler instead, when one is set.
 */
int gsc_next_down(gsc *c, int wait_ms, gsc_down **out);

/* Packs a server reference as the wire wants it: all digits a uint id;
 * NAME@ALIVE@HOST a remote reference [name, node], split at the first '@'
 * (cache@gsd@db1: the name cache on node gsd@db1); anything else a name,
 * a@b included. */
void gsc_pack_server(msgpack_packer *pk, const char *server);

/* ---- requests from a format ------------------------------------ */

/*
 * One line builds and sends a request, as hiredis's redisCommand does:
 *
 *     gsc_command(c, &r, "call %s [add, %d]", name, 5);
 *     gsc_command(c, &r, "start counter %s %d {restart: transient}", name, 0);
 *     gsc_command(c, &r, "call %llu get 200", (unsigned long long)id);  // timeout 200 ms
 *
 * The format is the method's name, then its params, separated by blanks:
 * each param is one value written in a JSON-like language, and a
 * printf-style directive stands for a value taken from the arguments.
 *
 * Values:
 *   null true false           nil and bools
 *   12  -3  1.5  2e10         integers (int64 or uint64; out of range is an
 *                             error), and float64 when a '.' or exponent is
 *                             written
 *   "text"                    a str, with JSON's escapes (\" \\ \/ \b \f \n
 *                             \r \t \uXXXX); other bytes are taken as they are;
 *                             %% in it is one '%'
 *   word                      a str too: a bare word starts with a letter, '_'
 *                             or a non-ASCII byte and goes on with those, digits
 *                             and . - @ / (so: call counter get)
 *   [v, ...]                  an array
 *   {k: v, ...}               a map; keys are values too ({name: "x", 1: 2})
 * Directives (each is one whole value, never part of a word or a "string"):
 *   %s                        const char *: a str (NULL: nil; GCC warns
 *                             about a literal NULL: write null instead)
 *   %.*s                      int len, const char *p: a str of exactly len
 *                             bytes of p, NULs included
 *   %d %i %u                  int, unsigned: an integer; with the length
 *                             modifiers hh h l ll z j t (%lld, %zu, %" PRIu64 ")
 *   %f %e %g %a (any case)    double: a float64
 *   %p                        const msgpack_object *: that value, copied
 *                             (NULL: nil): a bin, an ext, a bool chosen at run
 *                             time, anything built beforehand
 * The compiler checks the arguments against the directives (format
 * attribute). Under -Wpedantic it wants %p's argument cast to (void *).
 *
 * No injection: what an argument holds is never parsed. %s makes a str
 * whatever its text ("[1]" or "\", 2" included), an integer directive an
 * integer. Note that %s is always a str: a server id goes in as an
 * integer (%llu), not as digits in a %s.
 *
 * A bad format (a directive not above, a flag or width such as %5d, a
 * directive inside a quoted string, a value missing or unterminated,
 * nesting deeper than 32) is refused before anything is sent: the message
 * says what and at which byte of the format.
 *
 * Params that the protocol lets be nil at the end of a method's params
 * may be left out, and are sent as nil: call's timeout; stop's reason and
 * timeout; start's name, args and options; slowlog's count. So "call
 * counter get" is call ["counter", "get", nil].
 *
 * gsc_command: sends the request and waits as the call of that name
 * would: a call's timeout param (the third) plus GSC_GRACE_MS ("infinity":
 * forever; absent or nil: the daemon's default 5000 + GSC_GRACE_MS), a
 * stop's likewise (absent or nil: forever), a start's init "timeout"
 * option, else GSC_WAIT_DEFAULT_MS. Returns as every synchronous request
 * does; a bad format returns GSC_BROKEN with errno EINVAL, gsc_errmsg()
 * saying why, and c still usable (nothing was sent).
 *
 * gsc_command_async: the same queued; returns the msgid, or 0 (a bad
 * format, or c cannot send: gsc_errmsg says which; done never runs).
 *
 * gsc_build: builds one value (the format is exactly one value) into
 * *out, for the calls that take a msgpack_object (gsc_call_async,
 * gsc_multi_call, ...). Everything *out refers to is allocated in zone,
 * which you own (msgpack_zone_init / msgpack_zone_destroy): nothing of
 * fmt or of the arguments is referred to. Returns NULL on success; on a
 * bad format, a message (allocated in zone, so valid until it is
 * destroyed) and *out is nil.
 *
 * zone and out must not be NULL. gsc_build keeps no state: any thread may
 * call it, each with a zone of its own.
 *
 * The v-forms take a va_list, as vprintf does, for functions of yours
 * that pass their own arguments on.
 */
#if defined(__GNUC__) || defined(__clang__)
#define GSC_FORMAT(fmt_at, args_at) __attribute__((format(printf, fmt_at, args_at)))
#else
#define GSC_FORMAT(fmt_at, args_at)
#endif
int gsc_command(gsc *c, gsc_reply **out, const char *fmt, ...) GSC_FORMAT(3, 4);
int gsc_vcommand(gsc *c, gsc_reply **out, const char *fmt, va_list ap) GSC_FORMAT(3, 0);
const char *gsc_build(msgpack_zone *zone, msgpack_object *out, const char *fmt, ...)
    GSC_FORMAT(3, 4);
const char *gsc_vbuild(msgpack_zone *zone, msgpack_object *out, const char *fmt, va_list ap)
    GSC_FORMAT(3, 0);

/* ---- asynchronous requests ------------------------------------- */

/*
 * A request's completion. status: GSC_OK, GSC_ERROR, GSC_TIMEOUT or
 * GSC_BROKEN. reply is yours (gsc_reply_destroy it, or keep it) on GSC_OK
 * and GSC_ERROR, NULL otherwise. The callback may make new asynchronous
 * requests and may gsc_close(c) (see "Closing from a callback"); it should
 * not make synchronous ones (they work, but block your loop).
 */
typedef void gsc_done_fn(gsc *c, uint32_t msgid, int status, gsc_reply *reply, void *arg);

/*
 * Each queues its request, tries to write it without blocking, and returns
 * its msgid (never 0), or 0 if c cannot send (broken, closed, or a bad
 * argument; then done is never called and gsc_errmsg says why). done may
 * be NULL: the answer is then read and dropped. Arguments are those of the
 * synchronous call of the same name; the request's deadline is the time
 * that call would wait (e.g. a call's timeout + GSC_GRACE_MS).
 */
uint32_t gsc_request_async(gsc *c, const char *method, const msgpack_object *params, int wait_ms,
                           gsc_done_fn *done, void *arg);
uint32_t gsc_ping_async(gsc *c, gsc_done_fn *done, void *arg);
uint32_t gsc_version_async(gsc *c, gsc_done_fn *done, void *arg);
uint32_t gsc_start_async(gsc *c, const char *module, const char *name, const msgpack_object *args,
                         const msgpack_object *options, gsc_done_fn *done, void *arg);
uint32_t gsc_call_async(gsc *c, const char *server, const msgpack_object *request, int timeout_ms,
                        gsc_done_fn *done, void *arg);
uint32_t gsc_cast_async(gsc *c, const char *server, const msgpack_object *request,
                        gsc_done_fn *done, void *arg);
uint32_t gsc_send_async(gsc *c, const char *server, const msgpack_object *msg, gsc_done_fn *done,
                        void *arg);
uint32_t gsc_stop_async(gsc *c, const char *server, const msgpack_object *reason, int timeout_ms,
                        gsc_done_fn *done, void *arg);
uint32_t gsc_whereis_async(gsc *c, const char *name, gsc_done_fn *done, void *arg);
uint32_t gsc_which_async(gsc *c, gsc_done_fn *done, void *arg);
uint32_t gsc_which_page_async(gsc *c, uint64_t after_id, uint32_t count, gsc_done_fn *done,
                              void *arg);
uint32_t gsc_info_async(gsc *c, const char *server, gsc_done_fn *done, void *arg);
uint32_t gsc_get_state_async(gsc *c, const char *server, gsc_done_fn *done, void *arg);
uint32_t gsc_modules_async(gsc *c, gsc_done_fn *done, void *arg);
uint32_t gsc_load_async(gsc *c, const char *module, gsc_done_fn *done, void *arg);
uint32_t gsc_reload_async(gsc *c, const char *module, gsc_done_fn *done, void *arg);
uint32_t gsc_monitor_async(gsc *c, const char *server, gsc_done_fn *done, void *arg);
uint32_t gsc_demonitor_async(gsc *c, uint64_t ref, gsc_done_fn *done, void *arg);

/* gsc_command queued: see "Requests from a format" above. */
uint32_t gsc_command_async(gsc *c, gsc_done_fn *done, void *arg, const char *fmt, ...)
    GSC_FORMAT(4, 5);
uint32_t gsc_vcommand_async(gsc *c, gsc_done_fn *done, void *arg, const char *fmt, va_list ap)
    GSC_FORMAT(4, 0);

/* Requests accepted and not completed yet. */
size_t gsc_inflight(const gsc *c);

/*
 * Reads what the socket has (a bounded amount per call), writes what is
 * queued and can be written, and completes the requests whose deadline has
 * passed, running their callbacks. Never blocks. Returns 0, GSC_BROKEN
 * once the connection is broken (every request in flight has then been
 * completed with GSC_BROKEN), or GSC_CLOSED if a callback closed c (c is
 * gone).
 */
int gsc_process(gsc *c);

/* What to poll gsc_fd() for: POLLIN, plus POLLOUT while requests wait to
 * be written; 0 once c is broken. */
short gsc_events(const gsc *c);

/* Milliseconds until the earliest deadline of a request in flight (0 if
 * one has passed), or -1 if none has a deadline: the poll timeout. */
int gsc_next_timeout(const gsc *c);

/* Drives c (polls, then gsc_process) until no request is in flight or
 * wait_ms (-1: forever) has passed. Returns GSC_OK, GSC_TIMEOUT (requests
 * still in flight), GSC_BROKEN (c is broken: everything that was in flight
 * has completed) or GSC_CLOSED (a callback closed c). Do not call it from a
 * callback. */
int gsc_run(gsc *c, int wait_ms);

/*
 * Down notifications as callbacks: from now on each down is handed to fn
 * (the down is yours: gsc_down_destroy it) instead of being queued for
 * gsc_next_down. fn NULL goes back to queueing. Downs already queued stay
 * queued. fn runs from gsc_process and the calls that drive c.
 */
typedef void gsc_down_fn(gsc *c, gsc_down *down, void *arg);
void gsc_on_down(gsc *c, gsc_down_fn *fn, void *arg);

/*
 * For event-loop adapters: changed(c, arg) runs whenever what c waits for
 * may have changed (after a request is queued and after gsc_process), so
 * the adapter can re-read gsc_events() and gsc_next_timeout(). release(arg)
 * runs once, when c is closed or another watch replaces this one. One
 * watch per connection; gsc_event_attach uses it.
 */
typedef void gsc_watch_fn(gsc *c, void *arg);
void gsc_set_watch(gsc *c, gsc_watch_fn *changed, void (*release)(void *arg), void *arg);

/* ---- one request to several daemons ----------------------------- */

/* One daemon's outcome. */
typedef struct gsc_multi_reply {
    char *socket;     /* the socket path, as given */
    int status;       /* GSC_OK, GSC_ERROR, GSC_TIMEOUT or GSC_BROKEN (incl. cannot connect) */
    gsc_reply *reply; /* GSC_OK and GSC_ERROR: the answer, else NULL */
    char errmsg[256]; /* GSC_TIMEOUT and GSC_BROKEN: why, for humans */
} gsc_multi_reply;

/* The outcomes, one per socket in the order given. Owns everything. */
typedef struct gsc_multi {
    size_t n;                /* daemons asked */
    gsc_multi_reply *daemon; /* n outcomes */
    size_t nbad;             /* how many are not GSC_OK: the "bad nodes" */
} gsc_multi;

/*
 * GenServer.multi_call: sends the same call to the server `server` on each
 * of the n daemons (gsc_connect_nowait to each socket), concurrently, and waits
 * for every answer within one overall timeout_ms (0: the daemon default,
 * 5000; -1: forever), which is also the call timeout each daemon applies.
 * Daemons that cannot be reached, answer an error (say noproc) or do not
 * answer in time are the bad ones. Returns nbad (0: every daemon replied);
 * *out is yours: gsc_multi_destroy it.
 */
size_t gsc_multi_call(const char *const *sockets, size_t n, const char *server,
                      const msgpack_object *request, int timeout_ms, gsc_multi **out);

/* GenServer.abcast, checked: casts request to `server` on each daemon and
 * reports which ones accepted it into a mailbox, within timeout_ms (as
 * above). Returns nbad; *out as above. */
size_t gsc_abcast(const char *const *sockets, size_t n, const char *server,
                  const msgpack_object *request, int timeout_ms, gsc_multi **out);

void gsc_multi_destroy(gsc_multi **m);

/* ---- for language bindings -------------------------------------- */

/*
 * Values as msgpack bytes, for bindings that have their own msgpack (the
 * Python package uses these through ctypes).
 *
 * gsc_request_raw: gsc_request with params given as the encoding of one
 * msgpack array (len bytes, copied). Not an array, or not exactly one
 * value: GSC_BROKEN with errno EINVAL, c still usable.
 *
 * gsc_reply_value: the result (GSC_OK) or the detail (GSC_ERROR) of r,
 * encoded; gsc_down_value: [ref, id, name, reason] encoded. Both return a
 * buffer of *len bytes to free with gsc_free. gsc_reply_code: r->code.
 */
int gsc_request_raw(gsc *c, const char *method, const void *params, size_t len, int wait_ms,
                    gsc_reply **out);
void *gsc_reply_value(const gsc_reply *r, size_t *len);
const char *gsc_reply_code(const gsc_reply *r);
void *gsc_down_value(const gsc_down *d, size_t *len);
void gsc_free(void *p);

#ifdef __cplusplus
}
#endif
#endif /* GSD_CLIENT_H */
