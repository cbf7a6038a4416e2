/*
 * gsd/test.h — a test harness for gsd modules: your module's servers run
 * in your test program, with virtual time.
 *
 *     cc -o mymod_test mymod_test.c $(pkg-config --cflags --libs gsd-test check)
 *
 * The harness is the daemon itself, linked into the test program: the
 * same dispatch, mailboxes, scheduler, monitors, timers, reloads and
 * module loading as gsd, without a socket file and without a daemon
 * process. The test talks to it over a socketpair in the wire protocol,
 * synchronously: each request runs the daemon's loop until the answer has
 * arrived and nothing more can happen without time passing. So a start,
 * call, cast, send, stop or reload behaves exactly as through gsd's socket.
 *
 *     gst *t = gst_new(NULL);                       modules from $GSD_TEST_MODULES
 *     gst_start_ok(t, "counter", "c", "41");
 *     gst_assert_value(gst_call(t, "c", "increment"), "42");
 *     gst_free(t);
 *
 * VIRTUAL TIME. The library defines clock_gettime: the monotonic clocks
 * (CLOCK_MONOTONIC, _COARSE, _RAW and CLOCK_BOOTTIME) of the whole test
 * program, the modules it loads included, read a virtual clock from the
 * first gst_new on. It stands still: a 10 s timer fires only when the test
 * calls gst_advance(t, 10000), and then at once, without sleeping. Other
 * clocks (CLOCK_REALTIME, time(), gettimeofday) are the real ones. A call
 * or stop never times out unless the test advances the clock past its
 * timeout.
 *
 * VALUES are JSON text, as for gsctl: text that is valid JSON is that
 * value ("42", "[\"add\", 5]", "{\"cleanup_ms\": 100}", "null"); any other
 * text is the string itself, so "get" and "\"get\"" are both the string
 * get, except text that begins with '[', '{' or '"', which must be valid
 * JSON (else the request is not sent and fails with error "json"). NULL
 * stands for nil. What the harness returns (replies, infos, downs) is
 * compact JSON printed from the msgpack value (common/json.h's mapping:
 * a bin prints as its text, or base64 if it is not UTF-8).
 *
 * SERVERS are named as gsctl names them: a string of decimal digits is an
 * id ("3"), anything else a name ("c").
 *
 * OWNERSHIP. Every string the harness returns (in a gst_result, from
 * gst_next_info, gst_exit_reason, ...) belongs to the harness and stays
 * valid until gst_free (or gst_forget). Never free one.
 *
 * FAILURES. The *_ok forms and the gst_assert_* macros report a failure
 * through the failure hook (gst_on_failure) with the file and line of the
 * test; the default hook prints "FILE:LINE: message" on stderr and calls
 * abort(). Under Check, set a hook that calls ck_abort_msg() (see
 * docs/modules.md, "Testing a module").
 *
 * UNSAFE: one harness per process at a time (gst_new fails while another
 * lives; one after gst_free is fine); one thread; never call the harness
 * from a module's callback. A module that crashes crashes the test
 * program (run tests in Check's fork mode, the default, to keep going).
 */
#ifndef GSD_TEST_H
#define GSD_TEST_H

#include <gsd/module.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gst gst; /* one in-process daemon and the test's connection to it */

/* ---- lifecycle ---------------------------------------------------------- */

/*
 * A fresh daemon whose module directories are module_dirs (colon
 * separated, as gsd -M), or $GSD_TEST_MODULES when NULL, or "." when that
 * is unset too. A private directory of the harness comes first (see
 * gst_upgrade). The daemon's log goes to stderr at the level of
 * $GSD_TEST_LOG (a syslog level, 0-7; default 4: warnings and errors).
 * Never NULL: a failure is reported through the failure hook.
 */
gst *gst_new(const char *module_dirs);

/* Stops every server (terminate runs, reason "shutdown"), frees everything
 * the harness holds and returns the strings it gave out. NULL is ignored. */
void gst_free(gst *t);

/* Frees the strings the harness has returned so far, for a test that
 * makes very many requests. Every one of them is invalid afterwards. */
void gst_forget(gst *t);

/* The daemon's log level from now on (syslog levels; 0 silences it). */
void gst_set_log_level(gst *t, int level);

/* ---- results ------------------------------------------------------------ */

/*
 * What a request got. error is NULL on success, and value is then the
 * result as JSON. On failure error is the error code and value its detail
 * as JSON: the daemon's codes ("noproc", "exit", "timeout", "badarg",
 * "module", "init_stop", "already_started", "code_change", "unsupported",
 * ...; see the protocol) and the harness's own:
 *   "json"      the value text is not valid JSON; nothing was sent
 *   "no_reply"  no answer, and nothing more can happen until time passes
 *               (a synchronous request only; use gst_call_async and
 *               gst_advance for a reply that waits on a timer)
 * Both strings belong to the harness (see OWNERSHIP).
 */
typedef struct gst_result {
    const char *error;
    const char *value;
} gst_result;

/* ---- requests ----------------------------------------------------------- */

/*
 * Starts a server of module (loading it on first use), named name (NULL:
 * anonymous), with args (JSON; NULL: nil) and options (a JSON map as the
 * protocol's start takes: "link", "timeout", "restart", "mailbox_limit",
 * "hibernate_after", ...; NULL: none). Returns once init has answered:
 * value is the server's id. The harness monitors every server it starts,
 * so gst_exit_reason can tell how it ended.
 */
gst_result gst_start(gst *t, const char *module, const char *name, const char *args,
                     const char *options);

/* call [server, request, nil]: the reply, or noproc, exit (detail: the
 * reason), ... The call's timeout is the protocol's default, 5000 ms of
 * virtual time, which passes only in gst_advance. */
gst_result gst_call(gst *t, const char *server, const char *request);
/* The same with a timeout in ms (GST_INFINITY: none). */
#define GST_INFINITY (-1)
gst_result gst_call_timeout(gst *t, const char *server, const char *request, int64_t timeout_ms);

/* cast and send: value "null" once the message is in the server's mailbox;
 * the harness has run the loop until idle, so it has been handled too. */
gst_result gst_cast(gst *t, const char *server, const char *request);
gst_result gst_send(gst *t, const char *server, const char *message);

/* stop [server, reason (NULL: "normal"), nil]: "null" once terminate has
 * returned. */
gst_result gst_stop(gst *t, const char *server, const char *reason);

/* info and get_state of a server (get_state: what format_state shows). */
gst_result gst_info(gst *t, const char *server);
gst_result gst_state(gst *t, const char *server);

/* load and reload of a module by name, from the module directories. */
gst_result gst_load(gst *t, const char *module);
gst_result gst_reload(gst *t, const char *module);

/*
 * A hot upgrade: copies the shared object at path into the harness's own
 * module directory (searched first) as MODULE.so, then reloads module:
 * every server of it moves to the new code through code_change, or none
 * does (error "code_change"). Servers started afterwards run it too. Error
 * "module" (nothing was reloaded) if path cannot be read.
 */
gst_result gst_upgrade(gst *t, const char *module, const char *path);

/* Any method, params a JSON array: gst_request(t, "which", "[]"). */
gst_result gst_request(gst *t, const char *method, const char *params);

/* ---- answers that wait on time ----------------------------------------- */

/*
 * A call sent now and answered later: returns a handle (never 0) at once,
 * after running the loop until idle. gst_answer(t, handle) runs the loop
 * until idle and gives the answer, or error "no_reply" while there is none
 * yet: advance the clock and ask again. A handle is answered once; a
 * handle already answered, or unknown, gives error "badarg".
 *
 *     uint32_t h = gst_call_async(t, "p", "[\"reply_after\", 1000, 7]", GST_INFINITY);
 *     gst_assert_error(gst_answer(t, h), "no_reply");
 *     gst_advance(t, 1000);
 *     gst_assert_value(gst_answer(t, h), "7");
 *
 * timeout_ms as gst_call_timeout; GST_DEFAULT for the protocol's 5000 ms.
 */
#define GST_DEFAULT (-2)
uint32_t gst_call_async(gst *t, const char *server, const char *request, int64_t timeout_ms);
uint32_t gst_request_async(gst *t, const char *method, const char *params);
gst_result gst_answer(gst *t, uint32_t handle);

/* ---- virtual time ------------------------------------------------------- */

/*
 * Moves the clock ms milliseconds forward: step by step to each timer that
 * falls due within them, in order, running the loop until idle at each
 * step (so a timer that re-arms itself fires as many times as it would in
 * ms of real time), then to the end. Every timer counts: gs_timer_start's,
 * idle timeouts, call and stop timeouts, supervision's restart delays.
 * Returns at once: nothing sleeps.
 */
void gst_advance(gst *t, int64_t ms);
/* Milliseconds of virtual time since gst_new. */
int64_t gst_now(gst *t);
/* Milliseconds until the next timer is due, or -1 if none is pending. */
int64_t gst_next_timer(gst *t);
/* Runs the loop until nothing more can happen without time passing (every
 * request does this itself). */
void gst_run(gst *t);

/* ---- what servers send the test ----------------------------------------- */

/*
 * Starts an inbox: a server, built into the harness, registered as name
 * (NULL: anonymous), that stands for the test. Servers reach it as any
 * other, with gs_send, gs_cast, gs_call (by name or by the id returned;
 * 0 and a failure reported if it cannot start) and monitors. It keeps what
 * it gets, in order, as JSON:
 *   a message (gs_send, a timer's)   the message itself
 *   a cast                           ["$gen_cast", request]
 *   a call                           ["$gen_call", tag, request]: answer it
 *                                    with gst_inbox_reply, or let it time out
 */
uint64_t gst_inbox(gst *t, const char *name);
/* The oldest message the inbox (its name, or its id as a string) holds,
 * removed; NULL if none (after running the loop until idle). */
const char *gst_next_info(gst *t, const char *inbox);
/* How many it holds. */
size_t gst_info_count(gst *t, const char *inbox);
/* Answers the call of that tag (a ["$gen_call", tag, request]) with reply
 * (JSON). True if its caller was still waiting. */
bool gst_inbox_reply(gst *t, const char *inbox, uint64_t tag, const char *reply);

/* ---- downs and exit reasons --------------------------------------------- */

/* Monitors a server: returns the ref (0 and a failure reported on error).
 * Its down comes to gst_next_down ("noproc" at once if it is not running). */
uint64_t gst_monitor(gst *t, const char *server);
/* The oldest down of the test's monitors not yet read, as JSON
 * [ref, id, name, reason]; NULL if none. */
const char *gst_next_down(gst *t);
/* The reason of the down of monitor ref, as JSON; NULL if none yet. */
const char *gst_down_reason(gst *t, uint64_t ref);
/* How a server the harness started ended: its exit reason as JSON
 * ("\"normal\"", "[\"shutdown\",1]", "\"bad_return_value\"", ...), NULL
 * while it runs (or if the harness did not start it). server is the name
 * or id it was started with; a name means its latest server. */
const char *gst_exit_reason(gst *t, const char *server);
/* True if a server with that name or id is running (the loop run first). */
bool gst_alive(gst *t, const char *server);

/* ---- modules linked into the test --------------------------------------- */

/* Makes a module whose descriptor is in the test program (declared with
 * GS_MODULE in a file linked into it rather than built as a .so) startable
 * under its .name. Checked as a file's descriptor is; false and a failure
 * reported if it is refused. One GS_MODULE per program: it defines fixed
 * symbols. */
bool gst_add_module(gst *t, const gs_module *desc);

/* ---- assertions --------------------------------------------------------- */

/* True if two JSON texts are the same value (objects compared without
 * regard to key order; 1 and 1.0 differ). expected is read as requests
 * are, so "pong" means the string pong. NULL equals only NULL. */
bool gst_json_equal(const char *actual, const char *expected);

typedef void (*gst_failure_fn)(const char *file, int line, const char *message);
/* Replaces the failure hook (NULL: the default); returns the old one. The
 * hook may return (the harness then goes on as it can) or not. */
gst_failure_fn gst_on_failure(gst_failure_fn fn);

/* Fails unless r succeeded with the value expected (JSON). */
#define gst_assert_value(r, expected) gst_check_value(__FILE__, __LINE__, (r), (expected))
/* Fails unless r failed with that code (and, for the _detail form, that
 * detail, JSON). */
#define gst_assert_error(r, code) gst_check_error(__FILE__, __LINE__, (r), (code), NULL)
#define gst_assert_error_detail(r, code, detail)                                                   \
    gst_check_error(__FILE__, __LINE__, (r), (code), (detail))
/* Fails unless the inbox's next message is expected (it is removed). */
#define gst_assert_info(t, inbox, expected)                                                        \
    gst_check_info(__FILE__, __LINE__, (t), (inbox), (expected))
/* Fails unless the inbox holds nothing. */
#define gst_assert_no_info(t, inbox) gst_check_info(__FILE__, __LINE__, (t), (inbox), NULL)
/* Fails unless the server the harness started has ended with that reason
 * (JSON); NULL: unless it is still running. */
#define gst_assert_exit(t, server, reason)                                                         \
    gst_check_exit(__FILE__, __LINE__, (t), (server), (reason))

/* gst_start that must succeed: the id (0 after a failure is reported). */
#define gst_start_ok(t, module, name, args)                                                        \
    gst_start_ok_at(__FILE__, __LINE__, (t), (module), (name), (args), NULL)
/* gst_call that must succeed: the reply, JSON (NULL after a failure). */
#define gst_call_ok(t, server, request) gst_call_ok_at(__FILE__, __LINE__, (t), (server), (request))

/* What the macros call. */
bool gst_check_value(const char *file, int line, gst_result r, const char *expected);
bool gst_check_error(const char *file, int line, gst_result r, const char *code,
                     const char *detail);
bool gst_check_info(const char *file, int line, gst *t, const char *inbox, const char *expected);
bool gst_check_exit(const char *file, int line, gst *t, const char *server, const char *reason);
uint64_t gst_start_ok_at(const char *file, int line, gst *t, const char *module, const char *name,
                         const char *args, const char *options);
const char *gst_call_ok_at(const char *file, int line, gst *t, const char *server,
                           const char *request);

#ifdef __cplusplus
}
#endif
#endif /* GSD_TEST_H */
