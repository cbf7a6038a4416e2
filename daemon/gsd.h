/*
 * gsd.h — the daemon's internal header, one banner per file.
 *
 * The shape of the daemon:
 *
 *   listen.c ──accept──▶ conn.c ──frames──▶ method.c ──▶ server.c
 *                          ▲                               │ mailbox.c
 *                          │ responses                     ▼
 *                        waiter.c ◀──replies── callbacks ◀─ sched.c
 *
 * One libevent loop runs everything (loop.c). A connection reads what is
 * available, frames it (protocol/), and hands each complete message to its
 * method. Messages for a server are copied, still encoded, into its mailbox;
 * the scheduler gives each runnable server a bounded number of messages per
 * loop turn and decodes each one just before its callback. A call to a
 * running server skips the copy: it is handled in the read that brought it,
 * after what the server has queued (server_call), a branch of the one way
 * a message reaches a server. Every way a server ends goes through
 * server_end(), and an ended server is freed by a loop event of its own
 * (sched_reap), never under a callback or caller that still holds it;
 * every callback result is read by one function in server.c. Callers
 * waiting for an answer (a call, a start, a stop) are waiters: they exist
 * exactly as long as someone waits, and one function answers them all
 * (waiter_answer). What goes on the wire is packed and read by protocol/.
 */
#ifndef GSD_DAEMON_H
#define GSD_DAEMON_H

#include <event2/event.h>
#include <gsd/module.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <uthash.h>

#include "gsp.h"

#define GSD_VERSION "0.1.0"
#ifndef GSD_MODULE_DIR
#define GSD_MODULE_DIR "/usr/local/lib/gsd/modules"
#endif

struct conn;
struct server;
struct sup_child;
struct trace;
struct waiter;

/* ---- log.c ------------------------------------------------------------- */
/* One line per event on stderr, safe whatever a client or a module puts in
 * it. The formatted text is escaped (log_escape), so it can neither split
 * nor forge a line. Lines are rate-limited per call site (the format
 * pointer) and level: a burst of 10, then one per 500 ms; the next line of
 * that key that passes ends with "(N similar lines suppressed)". A reader
 * that stops reading never blocks the loop: stderr that is a pipe gets an
 * O_NONBLOCK open file description of its own on the first line, a socket
 * (the journal) is sent to with MSG_DONTWAIT; a line with no room is
 * dropped, and the next that gets through is preceded by "N log lines
 * dropped: the log reader is not reading". Files and terminals are written
 * as before. Each line is one write, under PIPE_BUF. */
enum { LOG_ERR = 3, LOG_WARN = 4, LOG_INFO = 6, LOG_DEBUG = 7 };
extern int log_level; /* lines above it are dropped */
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *fmt, va_list ap);
/* log_msg, rate-limited under key instead of fmt: for a call site that
 * logs for many (a module's gs_log, one key per module). */
void log_keyed(int level, const void *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* src[0..n) into dst, each control byte (< 0x20, 0x7f) as \n, \r, \t or
 * \xNN and a backslash as \\; as many whole escapes as fit in size - 1
 * bytes, then terminated. Returns the length written. */
size_t log_escape(char *dst, size_t size, const char *src, size_t n);
/* Logs, for every call site whose lines are being suppressed, how many
 * were: where a flood may have ended for good (after reading the
 * configuration, at exit). */
void log_flush(void);

/* ---- util.c ------------------------------------------------------------ */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrndup(const char *s, size_t n);
int64_t now_ms(void); /* monotonic milliseconds */
/* The loop's clock: the monotonic clock as loop_clock_tick() last read it,
 * for no cost. The loop ticks it as each round of a connection begins
 * (conn_parse), after each method but call and as each callback ends
 * (server.c), so it is never more than one callback old: the deadlines of
 * a round's requests, the start of the callbacks it runs at once and the
 * round's time slice read it. (The fine clock, not the coarse one: a
 * slice of LOOP_SLICE_US needs better than the coarse clock's 4 ms.) */
extern int64_t loop_clock_ms;
extern int64_t loop_clock_us;  /* the same reading, in microseconds: for time slices */
int64_t loop_clock_tick(void); /* reads the clock into both; returns loop_clock_ms */
uint64_t next_ref(void); /* refs for timers, monitors and calls: never 0, never reused */
/* v as text for a log line or an error, cut to fit buf; always terminated
 * (msgpack_object_print_buffer alone leaves buf unterminated for some
 * values). Returns buf. */
const char *value_text(char *buf, size_t size, const msgpack_object *v);
/* Values the daemon sends often, encoded once. */
extern const struct gsp_span enc_nil, enc_normal, enc_shutdown, enc_noproc, enc_timeout,
    enc_noconnection;
/* Values a module hands over may nest this deep: room for the two levels a
 * response or a ["reply", ref, [code, detail], nil] wraps around them. */
#define VALUE_DEPTH_MAX (GSP_MAX_DEPTH_HARD - GSP_WRAP_ERROR)
/* True if an encoded value, wrapped `wrapping` (GSP_WRAP_*) levels deep, is
 * within what a client and msgpack-c can read. p must hold one well-formed value (one
 * the daemon encoded, or a span of a framed message). */
bool value_fits(const void *p, size_t len, unsigned wrapping);

/* ---- fault.c: what a crash leaves behind ----------------------------- */
/* Module callbacks, by the module API's names (callback_names). */
enum callback {
    CB_NONE,
    CB_INIT,
    CB_HANDLE_CALL,
    CB_HANDLE_CAST,
    CB_HANDLE_INFO,
    CB_TERMINATE,
    CB_FORMAT_STATE,
    CB_CODE_CHANGE,
    CB_HIBERNATE,
    CB_FREE_STATE,
    CB_HANDLE_CONTINUE,
    CB_COUNT
};
extern const char *const callback_names[CB_COUNT]; /* "init", "handle_call", ...; "-" for none */
/* The module code running at this moment: set around every callback, read
 * by the fatal-signal handler for its one line. Callbacks never nest. */
struct running {
    const struct server *server;
    enum callback cb;
};
extern volatile struct running running;
static inline void running_enter(const struct server *s, enum callback cb)
{
    running.server = s;
    running.cb = cb;
}
static inline void running_leave(void)
{
    running.cb = CB_NONE;
    running.server = NULL;
}
/* Installs the handlers that write that line: for a fatal signal (then
 * the daemon dies of it), and for exit() called by a module (then the
 * daemon ends with status 70, EX_SOFTWARE). First thing in main. */
void fault_init(void);
/* The exit that follows is the daemon's own, whatever its status. */
void fault_exiting(void);

/* ---- limits.c ---------------------------------------------------------- */
/* Every configurable limit, in one place. Defaults are set in limits.c; the
 * configuration file may change them, and a reload applies them to what
 * comes next (a connection already open keeps working). 0 means none. */
struct limits {
    struct gsp_limits message; /* size and depth of one message */
    uint32_t connections;      /* client connections open at once */
    uint32_t pending;          /* requests awaiting an answer, per connection */
    uint32_t timers;           /* pending gs_timer_start timers, per server */
    uint32_t mailbox;          /* messages queued per server, unless its start says otherwise */
    uint64_t mailbox_bytes;    /* bytes queued per server */
    uint64_t partial_bytes;    /* bytes of unfinished messages, all connections together */
    uint32_t partial_ms;       /* age of an unfinished message before its sender is cut off */
    uint64_t output_bytes;     /* bytes queued for a client that does not read them */
    uint32_t shutdown_ms;      /* at SIGTERM, time the servers get to drain their mailboxes */
    uint64_t memory;           /* bytes held for clients, all together (budget.c) */
    uint32_t monitors;         /* monitors per connection */
    uint32_t slowlog_len;      /* slow callbacks the slowlog keeps (slowlog.c) */
    uint32_t slowlog_message_bytes; /* each one's message, cut to this */
};
extern struct limits limits;
/* Sets the defaults that depend on the machine (memory); before the
 * configuration is read. */
void limits_init(void);

/* ---- budget.c ---------------------------------------------------------- */
/* The memory the daemon holds because clients asked: connections' input
 * and output buffers, messages in mailboxes, waiters, monitors. Each holder
 * charges what it allocates and releases what it frees. Over limits.memory,
 * new requests are answered overloaded and the connections holding the
 * most unread output are cut off (conn_flush_all); a message's decoded
 * form is bounded on its own, per message (the framer). */
#define BUDGET_MIN (256ull << 20) /* the least default budget */
extern uint64_t budget_used;
extern uint64_t overloaded_answers; /* requests answered overloaded */
static inline void budget_charge(size_t n)
{
    budget_used += n;
}
static inline void budget_release(size_t n)
{
    budget_used -= n;
}
static inline bool budget_over(void)
{
    return limits.memory && budget_used > limits.memory;
}
/* A quarter of the machine's memory, at least BUDGET_MIN. */
uint64_t budget_default(void);
/* budget_over(), and a log line each time that changes. */
bool budget_check(void);

/* ---- loop.c ------------------------------------------------------------ */
/* The loop's two priorities: the daemon's own timers run first in every
 * pass; client work (the default for event_new: connections' rounds,
 * scheduler turns, accepts, flushes) after them, in the order it became
 * due (round robin), a pass of it bounded in time, so that none of it can
 * starve a timer. */
enum { LOOP_PRIO_OWN = 0, LOOP_PRIO_CLIENT = 1, LOOP_PRIOS };
/* A bound on the time a piece of client work takes before it yields (a
 * connection's round, a scheduler turn): it stops at the first message
 * that ends past it (loop_clock_us). */
#define LOOP_SLICE_US 1000
extern struct event_base *loop_base;
extern bool shutting_down; /* SIGTERM/SIGINT seen: servers are being stopped */
void loop_init(void);
void loop_free(void);
/* Arms (or re-arms) a timer event for ms milliseconds. */
void loop_arm(struct event *ev, int64_t ms);
/* event_new at priority prio (LOOP_PRIO_*); never NULL. */
struct event *loop_event(int prio, evutil_socket_t fd, short what, event_callback_fn fn, void *arg);

/* ---- scratch.c --------------------------------------------------------- */
void *scratch_alloc(size_t n); /* valid until scratch_reset() */
void scratch_reset(void);
void scratch_free(void);
msgpack_zone *scratch_zone(void); /* for decoding one message; reset too */
/* Decodes a framed value (gsp_decode), in the zone if it needs one. */
bool scratch_decode(struct gsp_span v, msgpack_object *out);

/* ---- mailbox.c --------------------------------------------------------- */
/* CONTINUE: a result's gs_continue term, first in the mailbox; HIBERNATE:
 * hibernate_after's idle time ran out (no callback of its own: the server
 * hibernates as if its last callback had asked). */
enum msg_kind {
    MSG_INIT,
    MSG_CALL,
    MSG_CAST,
    MSG_INFO,
    MSG_STOP,
    MSG_STATE,
    MSG_CONTINUE,
    MSG_HIBERNATE,
    MSG_KINDS
};

/* The callback each kind of message is for (fault.c). */
extern const enum callback msg_callbacks[MSG_KINDS];

/* One message, still encoded. Allocated with its payload in one block. */
struct msg {
    STAILQ_ENTRY(msg) link;
    enum msg_kind kind;
    uint64_t waiter; /* MSG_INIT, MSG_CALL, MSG_STOP, MSG_STATE: who waits; 0 none;
                      * MSG_INFO: the ref of the gs_timer_start that sent it, or 0 */
    uint32_t len;    /* bytes of data */
    uint8_t data[];  /* args, request, message or reason, as msgpack */
};

/* Flow control: a mailbox at its limit (limit messages or
 * limits.mailbox_bytes) takes no more from clients; each connection with a
 * message for it stops reading (it is `blocked` here) until the mailbox has
 * drained to half its limit. Messages from inside the daemon (other
 * servers, timers, replies, downs) are always accepted: the loop cannot
 * wait, and refusing them would lose what a server was promised. */
struct mailbox {
    STAILQ_HEAD(, msg) q;
    uint32_t len;                /* messages queued */
    uint32_t len_high;           /* high-water mark of len */
    uint64_t bytes;              /* payload bytes queued */
    uint64_t bytes_high;         /* high-water mark of bytes */
    uint32_t limit;              /* messages from clients; 0 none */
    TAILQ_HEAD(, conn) blocked;  /* connections waiting for room */
};

struct msg *msg_new(enum msg_kind kind, uint64_t waiter, const void *data, size_t len);
void msg_free(struct msg *m); /* small ones are kept for the next msg_new */
void mailbox_init(struct mailbox *mb); /* limit: limits.mailbox */
void mailbox_put(struct mailbox *mb, struct msg *m);
void mailbox_put_first(struct mailbox *mb, struct msg *m); /* ahead of all: a continue */
/* m was handled as it arrived, never queued (server_call): counted in the
 * high-water marks as a mailbox holding it alone. */
void mailbox_pass(struct mailbox *mb, const struct msg *m);
struct msg *mailbox_take(struct mailbox *mb); /* NULL when empty; may unblock connections */
void mailbox_clear(struct mailbox *mb);       /* unblocks every connection */
bool mailbox_full(const struct mailbox *mb);

/* ---- metrics.c: the Prometheus text exposition ------------------------ */
/* A callback duration histogram, in slots by log2 of the microseconds:
 * slot k counts durations in (2^(k-1), 2^k] µs (slot 0: up to 1 µs), the
 * last slot everything longer. An observation is an index and two adds. */
#define HIST_SLOTS 26
struct hist {
    uint64_t n[HIST_SLOTS];
    uint64_t sum_us;
};
static inline void hist_observe(struct hist *h, uint64_t us)
{
    unsigned k = us <= 1 ? 0 : 64 - (unsigned)__builtin_clzll(us - 1);
    h->n[k < HIST_SLOTS ? k : HIST_SLOTS - 1]++;
    h->sum_us += us;
}
/* Messages handled by callbacks, by kind (server.c's tally). The rest of
 * what the exposition shows is read where it is kept: `stats`'s counters
 * (stats.c), error answers by code (gsp_errors_packed), the registry. */
extern uint64_t metrics_handled[MSG_KINDS];
struct module;
void metrics_init(void); /* at start: uptime counts from here */
/* Appends the exposition (text format 0.0.4) to b. */
void metrics_text(struct gsp_buf *b);
/* A reload installs `to` in from's place: from's histograms go on in to's. */
void metrics_carry(struct module *to, const struct module *from);
/* "HOST:PORT" or "[V6]:PORT", checked; the host copied into host. */
bool metrics_parse_listen(const char *s, char *host, size_t hostlen, uint16_t *port);
/* Serves GET /metrics over HTTP on the loop (evhttp), other paths 404; 0,
 * or -1 logged (an address that does not parse or bind). */
int metrics_http_open(const char *listen);
void metrics_http_close(void);

/* ---- module.c ---------------------------------------------------------- */
/* One loaded version of a module's code. The current version of each name
 * is in the table; a version replaced by a reload is unloaded as soon as no
 * server runs it. */
struct module {
    char *name;            /* as in the file name */
    char *path;            /* where it was loaded from */
    void *dl;              /* dlopen handle of the private copy */
    int fd;                /* the private copy (a memory file), open while mapped */
    const gs_module *desc; /* the module's exported descriptor */
    unsigned servers;      /* servers on this code, ended ones until freed (sched_reap) */
    bool current;          /* in the table: what starts and loads get */
    UT_hash_handle hh;     /* in the table, by name */
    struct hist hist[MSG_KINDS]; /* its callbacks' durations, by message kind (metrics.c) */
    unsigned census[4];          /* metrics.c's count of its servers by status, while it counts */
};

void module_set_dirs(const char *colon_list);
/* The current version of that name, loading it if needed; NULL with a
 * reason in err (for a `module` error) on failure. */
struct module *module_get(const char *name, char *err, size_t errlen);
/* The current version, or NULL; never loads. */
struct module *module_find(const char *name);
/* Loads the file's current contents as a new version, not yet current;
 * NULL with a reason in err. Give it to module_install or module_release. */
struct module *module_open(const char *name, char *err, size_t errlen);
/* Makes m the current version of its name, releasing the one it replaces. */
void module_install(struct module *m);
/* Installs a module whose code is linked into this program (the test
 * harness's), checked as a file's descriptor is; never unloaded but by
 * module_unload_all. NULL with a reason in err. */
struct module *module_add_builtin(const gs_module *desc, char *err, size_t errlen);
/* Unloads m if it is not current and no server runs it. */
void module_release(struct module *m);
/* The version of m's state layout: its descriptor's state_vsn, or vsn. */
uint32_t module_state_vsn(const struct module *m);
uint32_t desc_state_vsn(const gs_module *d); /* the same, of a descriptor */
/* Runs d's callback for a message of kind MSG_INIT, MSG_CALL, MSG_CAST,
 * MSG_INFO or MSG_CONTINUE, wherever the server runs (the daemon, a
 * worker): one without handle_call, handle_cast or handle_continue stops
 * ("undef_handle_call", ...). MSG_HIBERNATE runs nothing: its result asks
 * to hibernate, which the host does as for any result. False, with *r
 * untouched, for a message no handle_info takes: the caller logs it. */
bool module_run(const gs_module *d, gs_server *self, enum msg_kind kind, const gs_value *v,
                gs_from from, void **state, gs_result *r);
void module_foreach(void (*fn)(struct module *m, void *arg), void *arg);
unsigned module_count(void);
void module_unload_all(void);

/* ---- server.c ---------------------------------------------------------- */
enum server_status { SERVER_STARTING, SERVER_RUNNING, SERVER_HIBERNATING, SERVER_ENDED };

struct server_stats {
    uint64_t calls, casts, infos; /* messages handled by kind */
    uint64_t slow;                /* callbacks slower than the threshold */
    int64_t started_ms;           /* now_ms() at start */
};

struct server {
    uint64_t id;        /* never reused */
    char *name;         /* NULL when anonymous */
    struct module *mod; /* the code it runs */
    void *state;        /* the module's */
    enum server_status status;
    struct mailbox mbox;
    struct server_stats stats;
    bool runnable; /* in the run queue */
    TAILQ_ENTRY(server) run_link; /* in the run queue; once ended, in the reaper's */
    TAILQ_ENTRY(server) reg_link;  /* in the registry, in start order */
    struct event *timeout;         /* a callback's timeout, allocated on first use */
    uint8_t *timeout_msg;          /* what it delivers (gs_timeout_msg), or NULL: "timeout" */
    size_t timeout_msg_len;
    int64_t hibernate_after;       /* ms idle before it hibernates; -1 never */
    int64_t active_ms;             /* when its last callback ended, for that */
    struct event *idle;            /* hibernate_after's timer, allocated on first use */
    bool suspended;                /* between suspend and resume: its mailbox is held */
    int64_t start_timeout;         /* ms allowed for init, -1 for none */
    int64_t start_ms;              /* when start was asked, for that limit */
    uint64_t starter;              /* the waiter of start, until init has answered it */
    uint64_t start_monitor;        /* start's "monitor": the ref its answer carries, or 0 */
    LIST_HEAD(, waiter) waiters;   /* callers waiting on it */
    LIST_HEAD(, stimer) timers;    /* its pending gs_timer_start timers */
    uint32_t ntimers;              /* how many; limits.timers */
    bool timers_logged;            /* the timer limit was logged, until it has room again */
    LIST_HEAD(, monitor) watchers; /* monitors on it */
    LIST_HEAD(, monitor) watching; /* monitors it holds on others */
    struct sup_child *sup;         /* its supervision (supervise.c), or NULL */
    /* What it was started with, for info and restart: its args (encoded,
     * copied by server_start), its placement as asked (NULL in the daemon,
     * "" a worker of its own, a group), its mailbox_limit option (0 none)
     * and the connection its "link" tied it to (0 none). */
    uint8_t *args;
    size_t args_len;
    char *isolate;
    uint32_t mailbox_limit;
    uint64_t link_conn;
    /* Isolated (worker.c): the worker its callbacks run in, or NULL. */
    struct worker *worker;
    STAILQ_HEAD(, msg) sent; /* handed to the worker, in order, their results due */
    uint32_t nsent;
    uint64_t sent_bytes;
    bool hosted;         /* the worker holds it (its init was sent): it must end there */
    bool upgrading;      /* in a reload under way: no message until it switches code */
    bool upgrade_asked;  /* ... and its worker's answer is awaited */
    uint8_t *end_reason; /* while terminate runs in the worker: the reason, and */
    size_t end_reason_len;
    struct farewell *end_bye;       /* the farewell, answered after it */
    struct event *end_timer;        /* the worker is killed if terminate outruns this */
    LIST_ENTRY(server) worker_link; /* in worker->servers */
    LIST_HEAD(, trace) tracers;     /* connections tracing it (trace.c); empty: untraced */
    UT_hash_handle hh_id, hh_name;
};

extern int64_t slow_callback_ms; /* threshold for the slow-callback log */

/* Creates and registers a server (the name must be free) and queues its
 * init; the waiter `starter` hears the id, or why there is none. isolate:
 * NULL runs it in the daemon, "" in a worker of its own, a group name in
 * that group's worker; NULL with the reason in err if no worker could
 * start (nothing was registered, starter untouched). */
struct server *server_start(struct module *mod, const char *name, size_t name_len, const void *args,
                            size_t args_len, int64_t init_timeout, uint64_t starter,
                            const char *isolate, char *err, size_t errlen);
/* Queues a message; false if the server has ended. */
bool server_post(struct server *s, enum msg_kind kind, uint64_t waiter, const void *data,
                 size_t len);
/* suspend and resume (sys:suspend/resume): a suspended server takes no
 * message from its mailbox (but its init) until resumed; a stop resumes
 * it, to be handled after what the mailbox holds. An isolated server's
 * messages already handed to its worker are handled meanwhile. */
void server_suspend(struct server *s);
void server_resume(struct server *s);
/* Handles the next message in the mailbox; the scheduler calls it. */
void server_run_one(struct server *s);
/* Encodes a value a callback returned, in scratch memory, before anything
 * can change it; one over the limits becomes the string `instead`, and is
 * logged. */
struct gsp_span server_encode(struct server *s, const gs_value *v, const char *instead);
/* What stands for a value of s's over the limits: the string `instead`,
 * encoded in scratch memory; logged. */
struct gsp_span server_instead(const struct server *s, const char *instead);
/* A call from a client, in the round that reads it: the messages queued
 * before it are handled first, then the call itself, without a copy, when
 * s is running and the round may still run callbacks (sched_run_now);
 * otherwise it is queued like any message. Either way it goes the one way
 * a message reaches a server (server_post's), with the same accounting.
 * s may have ended when this returns (still allocated until the loop reaps
 * it); the waiter is then answered as for any call to a server that ends.
 * data is only read during the call. */
void server_call(struct server *s, uint64_t waiter, const void *data, size_t len);
/* An answer due to one caller once terminate has run: to a stop (ok, nil),
 * or to a call whose callback returned stop with a reply (encoded by
 * api_encode; ptr NULL if it was over the limits: see waiter_answer). */
struct farewell {
    uint64_t waiter;
    struct gsp_span reply;
};
/* The one way a server ends: terminate (if init ran), the farewell (may be
 * NULL), ["exit", reason] to every other waiter, downs to monitors; the name
 * is free again. reason is encoded msgpack. */
void server_end(struct server *s, struct gsp_span reason, const struct farewell *bye);
/* The second half of server_end for a server whose terminate ran in its
 * worker (or could not: the worker died): the farewell, the exits, the
 * downs, the name freed, supervision told. */
void server_end_finish(struct server *s);
/* A callback's result from s's worker, for the oldest message sent to it:
 * read as server_result reads an in-process one. took_us: its run time. */
void server_worker_result(struct server *s, gs_result *r, int64_t took_us);
/* s has mail it can handle now: its mailbox is not empty and, when it is
 * isolated, its worker can take more. */
bool server_has_work(const struct server *s);
/* May a callback for a message of that kind return r? Anything else is a
 * stop with reason "bad_return_value", as in OTP (server.c), and a worker
 * reads it the same way. */
static inline bool result_allowed(enum msg_kind kind, const gs_result *r)
{
    switch (r->action) {
    case GS_OK:
    case GS_IGNORE:
        return kind == MSG_INIT;
    case GS_REPLY:
        return kind == MSG_CALL;
    case GS_NOREPLY:
        return kind != MSG_INIT;
    case GS_STOP:
        return !r->has_reply || kind == MSG_CALL;
    default:
        return false;
    }
}
/* An allowed result that goes on asks for handle_continue (its timeout
 * and hibernate are then not read). */
static inline bool result_continues(const gs_result *r)
{
    return r->has_continue &&
           (r->action == GS_OK || r->action == GS_REPLY || r->action == GS_NOREPLY);
}
/* Frees an ended server (sched.c's reaper, never anyone else). */
void server_free(struct server *s);
const char *server_status_name(const struct server *s);
/* Resolves a server reference value (str name, uint id). */
struct server *server_lookup(const gs_value *ref);

/* ---- remote.c: references to names on other nodes ---------------------- */
/* [name, node]: a name registered on another node of the cluster. */
struct remote {
    const char *name, *node;
    uint32_t name_len, node_len;
};
/* True if *v is a remote reference, read into *to (pointing into v). One
 * whose node is this daemon's own is a local name: *v becomes that name,
 * and the answer is false. */
bool remote_ref(gs_value *v, struct remote *to);
/* What call, cast, send and monitor do with one. module: the value is a
 * module's, whose atoms (gs_atom) may become atoms; a client's never do.
 * w: who is answered, as for a local server, or `nodedown` when the node
 * cannot be reached. remote_post's w (a client's; NULL for a module's)
 * hears nil once the node has the message; without w it returns false if
 * the message cannot even be queued. remote_monitor's w (a client's)
 * hears the ref once the node is reached; a module's monitor (w NULL) gets
 * its down, "noconnection", instead. */
void remote_call(const struct remote *to, struct gsp_span req, bool module, struct waiter *w);
bool remote_post(const struct remote *to, enum msg_kind kind, struct gsp_span msg, bool module,
                 struct waiter *w);
void remote_monitor(const struct remote *to, uint64_t mref, struct waiter *w);

/* ---- worker.c: isolated servers' processes ---------------------------- */
/* A worker is a process (gsd --worker) that runs the callbacks of the
 * servers placed in it; the daemon keeps everything else (names, mailboxes,
 * waiters, monitors, timers) and talks to it over a socketpair in frames
 * of its own (wlink.h), written once per loop pass. A worker hosting a
 * group's servers lives as long as it hosts one; a worker of one server
 * ends with it. A worker that dies ends each of its servers with
 * ["crashed", SIGNAL] or ["crashed", ["exit_status", n]] ("killed" when the daemon
 * killed it), one log line naming the callback it was running. */
/* What one server may have handed its worker ahead of the results: enough
 * to batch a pipelined load (a deep window is what makes isolation cheap
 * under load), and within bytes a mailbox would hold. */
#define WORKER_WINDOW 1024
#define WORKER_WINDOW_BYTES (1u << 20)
struct worker_settings {
    uint64_t memory; /* RSS in bytes past which a worker is killed; 0 none */
    uid_t uid;       /* run as this user ((uid_t)-1: the daemon's) */
    gid_t gid;
};
extern struct worker_settings worker_settings;
/* False in a program that links the daemon but is not it (the fuzzer): a
 * worker is this program run again. */
extern bool workers_enabled;
/* Where a module's servers run when their start or declaration does not
 * say: group as child_spec's isolate (NULL: in the daemon). */
struct isolate_default {
    char *module;
    char *group;
};
/* The configuration's settings and each module's default placement
 * (copied); the placement for module. */
void worker_configure(const struct worker_settings *ws, const struct isolate_default *d, size_t n);
const char *worker_default_for(const char *module);
/* Places s in a worker: group NULL or "" its own, else the group's (started
 * when it has none). False with a reason in err if no worker could start. */
bool worker_place(struct server *s, const char *group, char *err, size_t errlen);
/* Hands s's next messages, in mailbox order, to its worker, within
 * WORKER_WINDOW; a stop waits until every earlier message has its result,
 * then ends s here (server_end). */
void worker_feed(struct server *s);
bool worker_can_take(const struct server *s);
/* Asks s's worker to run terminate with reason (encoded) and let s go;
 * ms: how long terminate may take before the worker is killed. */
void worker_end(struct server *s, struct gsp_span reason, int64_t ms);
/* A reload: asks s's worker (s is hosted) for s's state on the code `to`
 * (its answer: upgrade_answered); false if the worker cannot be asked.
 * Then worker_switch tells it to keep the new code or to go back. */
bool worker_upgrade(struct server *s, struct module *to);
void worker_switch(struct server *s, bool commit);
/* The caller of a call to s (its gs_from id) has gone: its worker forgets it. */
void worker_caller_gone(struct server *s, uint64_t from);
/* s has ended for good: the worker holds nothing of it any more. */
void worker_forget(struct server *s);
bool worker_alive(const struct worker *w);
pid_t worker_pid(const struct worker *w);
unsigned worker_count(void);
/* Kills every worker and waits for them (at exit). */
void worker_free_all(void);
/* Opens the daemon's own executable, for the workers it starts: at start,
 * once descriptors 0-2 are taken (else it could take one of them). */
void worker_init(void);
/* The process side: `gsd --worker ...` runs this instead of the daemon. */
int worker_main(int argc, char **argv);

/* ---- upgrade.c --------------------------------------------------------- */
/* Moves every server running `from` (NULL: none runs it) to `to`, each
 * state converted by to's code_change, all or none, and answers the
 * waiter: {name, vsn, path, upgraded}, or code_change {id, name, reason}
 * for the first server that refused. Installs or releases `to`. Isolated
 * servers are converted in their workers: the answer may come later.
 * False (nothing done) while another reload is under way. */
bool upgrade_start(struct module *from, struct module *to, uint64_t waiter);
/* A worker's answer for s: its new state is built (ok), or why not. */
void upgrade_answered(struct server *s, bool ok, const gs_value *why);
/* s, part of the reload under way, has ended (server.c's finish). */
void upgrade_server_ended(struct server *s);

/* ---- registry.c -------------------------------------------------------- */
uint64_t registry_next_id(void);
void registry_add(struct server *s);
void registry_remove(struct server *s);
struct server *registry_by_id(uint64_t id);
struct server *registry_by_name(const char *name, size_t len);
unsigned registry_count(void);
/* Every live server, in start order (ids ascending) or reverse. */
void registry_foreach(bool reverse, void (*fn)(struct server *s, void *arg), void *arg);
/* Something `which` shows of a server changed (its status); registry_add
 * and registry_remove count as changes themselves. One increment: call it
 * wherever s->status is set. */
void registry_changed(void);
/* The `which []` result, encoded: an array of {id, name, module, status},
 * one per live server, in start (= id) order. Built on the first ask after
 * a change and reused until the next, so that asking again costs nothing
 * however many servers there are; one result is held, freed when the
 * registry empties (so at exit). Valid until the registry next changes. */
struct gsp_span registry_which(void);
/* Appends the `which [after, count]` result to out: the same entries, for
 * at most count live servers whose id is greater than after, in id order.
 * Where to start is found in O(1) when after is 0 or the id of a server
 * still registered (the last of the page before, as a rule); any other
 * after costs a walk to it from the end of the registry its id is nearer
 * to. Then O(count). */
void registry_which_page(struct gsp_buf *out, uint64_t after, uint64_t count);

/* ---- sched.c ----------------------------------------------------------- */
#define SCHED_PER_SERVER 8 /* messages one server handles before the next gets a go */
#define SCHED_PER_TURN 256 /* messages handled in one loop turn, all servers together */
void sched_init(void);
void sched_free(void);
void sched_wake(struct server *s); /* s has mail: give it turns */
/* A connection's round (conn_parse) is bounded as a turn is: its time
 * slice (LOOP_SLICE_US) starts at sched_round_begin, which also reads the
 * loop's clock, and sched_round_over says when it has passed. Messages it
 * handles at once, outside a turn (server_call: the call and what its
 * server had queued before it), take one each from sched_run_now: false
 * once SCHED_PER_TURN have run in the round or its slice has passed. */
void sched_round_begin(void);
bool sched_round_over(void);
bool sched_run_now(void);
void sched_forget(struct server *s);
/* s has ended: it is freed (server_free) by a loop event of its own, once
 * whatever ran it has returned to the loop, so no callback, method or
 * caller that still holds it ever sees it freed; until then it stays
 * readable, SERVER_ENDED, and refuses mail. sched_free frees what is left. */
void sched_reap(struct server *s);

/* ---- waiter.c ---------------------------------------------------------- */
enum waiter_kind { WAIT_CONN, WAIT_SERVER, WAIT_DIST };

struct waiter {
    uint64_t id; /* gs_from.id */
    enum waiter_kind kind;
    struct conn *conn;     /* WAIT_CONN: the caller */
    uint32_t msgid;        /* WAIT_CONN: its request */
    uint64_t caller;       /* WAIT_SERVER: the calling server's id */
    uint64_t ref;          /* WAIT_SERVER: the ref gs_call returned; WAIT_DIST: dist.c's key */
    int64_t deadline;      /* now_ms() when the caller gives up; -1 never */
    bool call;             /* a call: the module may answer it with gs_reply_to */
    bool remote;           /* waits on another node: dist.c hears when it goes */
    uint32_t heap_at;      /* its place in the deadline heap; UINT32_MAX if none */
    TAILQ_ENTRY(waiter) deadline_link; /* or in the list in deadline order (waiter.c) */
    struct server *server; /* the server it waits on, if attached */
    LIST_ENTRY(waiter) conn_link;
    LIST_ENTRY(waiter) server_link;
};

/* A client's request, answered later; its deadline counts from
 * loop_clock_ms and is watched at once. */
struct waiter *waiter_for_conn(struct conn *c, uint32_t msgid, int64_t timeout_ms);
/* A client's call to s, attached to it, its deadline not yet watched: a
 * call is usually answered by its callback before the read that brought
 * it ends (server_call), and then never touches the deadline heap. The
 * method calls waiter_watch(id) once server_call has returned. */
struct waiter *waiter_for_call(struct conn *c, uint32_t msgid, int64_t timeout_ms,
                               struct server *s);
/* Watches the deadline of the waiter with that id, if it still waits. */
void waiter_watch(uint64_t id);
struct waiter *waiter_for_server(uint64_t caller, uint64_t ref, int64_t timeout_ms);
/* A distribution peer's call to s, attached to it, with no deadline (the
 * peer keeps its own); answered through dist_hooks->answer(key, ...). */
struct waiter *waiter_for_dist(uint64_t key, struct server *s);
struct waiter *waiter_find(uint64_t id);
void waiter_attach(struct waiter *w, struct server *s);
void waiter_detach(struct waiter *w);
/*
 * The one way a waiter is answered; it is freed. code GSP_OK answers with
 * a result, any other with an error and its detail. The value is either a
 * module's, v, packed straight into a client's output where it can be, or
 * one already encoded, enc, when v is NULL (enc.ptr NULL: a module's value
 * that api_encode found over the limits, as a stop's reply may be).
 *
 * The too-large policy, for a reply returned, sent with gs_reply_to or
 * given with a stop alike (module.h's promise): a module's value over the
 * message limits becomes the result "reply_too_large", logged as by's, the
 * server that gave it (by is NULL for the daemon's own values). Any other
 * value a client cannot read (the daemon's own, or one encoded before a
 * reload lowered the limits) becomes a too_large error.
 */
void waiter_answer(struct waiter *w, enum gsp_code code, const gs_value *v, struct gsp_span enc,
                   const struct server *by);
static inline void waiter_reply(struct waiter *w, const gs_value *v, const struct server *by)
{
    waiter_answer(w, GSP_OK, v, (struct gsp_span){0}, by);
}
static inline void waiter_result(struct waiter *w, struct gsp_span v)
{
    waiter_answer(w, GSP_OK, NULL, v, NULL);
}
static inline void waiter_error(struct waiter *w, enum gsp_code code, struct gsp_span detail)
{
    waiter_answer(w, code, NULL, detail, NULL);
}
void waiter_result_uint(struct waiter *w, uint64_t v);
void waiter_error_str(struct waiter *w, enum gsp_code code, const char *detail);
/* Frees it unanswered (its caller has gone). */
void waiter_drop(struct waiter *w);
/* Drops every waiter of c, unanswered (it has closed). */
void waiter_conn_closed(struct conn *c);
/* Answers every waiter of s with ["exit", reason]. */
void waiter_exit_all(struct server *s, struct gsp_span reason);
/* Frees the deadline timer's events, before the loop they belong to is
 * freed (once every waiter has gone): the test harness's loops come and go. */
void waiter_free_events(void);

/* ---- monitor.c --------------------------------------------------------- */
struct monitor {
    uint64_t ref;
    uint64_t target;       /* the watched server's id (0: none existed, or remote) */
    bool remote;           /* on a name on another node: dist.c watches it */
    struct conn *conn;     /* the watcher: a connection, or */
    struct server *server; /* a server */
    LIST_ENTRY(monitor) target_link;
    LIST_ENTRY(monitor) watcher_link;
    UT_hash_handle hh;
};

/* The watcher (a connection or a server) watches target's server under
 * ref. If it is not running, the "noproc" down is delivered at once: a
 * connection must have been sent its response to monitor first. */
void monitor_add(uint64_t ref, struct conn *c, struct server *watcher, const gs_value *target);
/* The same for a remote reference (monitor_add takes one too); w: a
 * client's answer, as remote_monitor says. */
void monitor_add_remote(uint64_t ref, struct conn *c, struct server *watcher,
                        const struct remote *to, struct waiter *w);
bool monitor_remove(uint64_t ref, struct conn *c, struct server *watcher);
/* A remote monitor's down: dist.c has forgotten it. reason.ptr NULL: none
 * is delivered (a client's monitor answered nodedown). */
void monitor_remote_down(uint64_t ref, const char *name, size_t name_len, struct gsp_span reason);
/* A remote monitor whose node cannot be reached: a client's, not yet
 * answered (w), hears nodedown with detail and is forgotten; a module's
 * (w NULL) gets its down, "noconnection", as in Erlang. */
void monitor_unreachable(uint64_t ref, const char *name, size_t name_len, struct waiter *w,
                         const char *detail);
/* s has ended: deliver every down, drop the monitors s held. */
void monitor_server_ended(struct server *s, struct gsp_span reason);
void monitor_conn_closed(struct conn *c);

/* ---- stimer.c: timers of gs_timer_start -------------------------------- */
/* ref: 0 for a new one (next_ref), or the one an isolated server's worker chose. */
uint64_t stimer_start(struct server *s, int64_t ms, const void *msg, size_t len, uint64_t ref);
int stimer_cancel(struct server *s, uint64_t ref);
void stimer_clear(struct server *s);

/* ---- api.c: the table handed to modules -------------------------------- */
extern const struct gs_api gsd_api;
/* Encodes a value a module handed over, in scratch memory; NULL if it is
 * over the limits of VALUE_DEPTH_MAX and the message size. */
const uint8_t *api_encode(const gs_value *v, size_t *len);
/* The same, in a buffer valid until the next value_encode: for what is
 * copied at once (a message posted, a response packed). */
const uint8_t *value_encode(const gs_value *v, size_t *len);
/* gs_call and gs_log as an isolated server's worker asks for them: the ref
 * is the one the worker chose, the line formatted there. */
void api_call_as(struct server *s, uint64_t ref, const gs_value *server, const gs_value *request,
                 int64_t timeout_ms);
void api_log_line(struct server *s, int level, const char *text, size_t len);
/* The services that are the same wherever a server runs (a worker's table
 * has them too). */
void *api_scratch_alloc(gs_server *self, size_t n);
gs_value *api_value_copy(const gs_value *v);
void api_value_free(gs_value *v);
bool api_value_equal(const gs_value *a, const gs_value *b);
int64_t api_now(gs_server *self);

/* ---- conn.c ------------------------------------------------------------ */
struct conn {
    uint64_t id; /* for logs */
    int fd;
    uid_t uid; /* the peer's credentials */
    gid_t gid;
    pid_t pid;
    bool admin;   /* was an admin peer when it connected (method.c asks auth_admin anew) */
    bool closing; /* sent a fatal error: close once flushed */
    bool dirty;   /* has output waiting for the flush */
    bool eof;     /* the peer closed its side: close once answered */
    struct event *rev, *wev;
    struct event *hup; /* after a half-close: checks that the peer is still there */
    struct gsp_framer framer;
    struct gsp_buf in;             /* bytes read, not yet dispatched */
    struct gsp_buf out;            /* bytes to write */
    size_t out_off;                /* bytes of out already written */
    msgpack_packer pk;             /* packs into out */
    LIST_HEAD(, waiter) waiters;   /* its requests still waiting */
    LIST_HEAD(, monitor) monitors; /* its monitors */
    LIST_HEAD(, trace) traces;     /* the servers it traces (trace.c) */
    uint64_t *links;               /* servers to stop when it closes */
    size_t nlinks, links_cap;
    uint32_t pending;               /* waiters: limits.pending */
    uint32_t nmonitors;             /* monitors: limits.monitors */
    size_t charged;                 /* bytes charged to the budget: itself and its buffers */
    size_t counted;                 /* bytes of in counted in the daemon's partial bytes */
    struct mailbox *blocked;        /* full, holding up this connection's next message */
    TAILQ_ENTRY(conn) blocked_link; /* in blocked->blocked */
    struct event *resume;           /* runs the held messages once there is room */
    struct event *trickle;          /* fires when a message stays unfinished too long */
    bool trickling;                 /* trickle is armed (saves libevent a del per read) */
    bool backlog;                   /* has messages left after its round: resume is queued */
    bool awaiting_write;            /* wev is added: a write was short */
    bool read_full;                 /* its last read filled the room it had */
    TAILQ_ENTRY(conn) flush_link;
    TAILQ_ENTRY(conn) all_link;
    int64_t since_ms; /* now_ms() when it connected */
};

void conn_new(int fd);
unsigned conn_count(void);
/* For a method about to post a client's message to s: true if s's mailbox
 * is full, and then c stops reading and the message stays unread, to be
 * dispatched again once the mailbox has room (the method must have changed
 * nothing yet). */
bool conn_hold(struct conn *c, struct server *s);
/* The mailbox mb has room again: c resumes on its next loop turn. */
void conn_unblock(struct conn *c);
/* The connection's packer, marking it for the next flush. */
msgpack_packer *conn_packer(struct conn *c);
/* For an answer of n bytes c asked for (a large one: which): true if
 * queuing it keeps the daemon within its memory budget, counting what c's
 * output buffer grows by. */
bool conn_budget_room(struct conn *c, size_t n);
/* Before queuing n more bytes of output that c did not just ask for (a
 * down, a reply): true if they fit within limits.output_bytes of unread
 * output. Otherwise c does not read what it is sent: it is cut off, and
 * nothing more is queued for it. */
bool conn_room(struct conn *c, size_t n);
void conn_flush_all(void);
void conn_close_all(void);
void conn_add_link(struct conn *c, uint64_t server_id);
/* Every open connection, oldest first; the one with that id, or NULL. */
void conn_foreach(void (*fn)(struct conn *c, void *arg), void *arg);
struct conn *conn_by_id(uint64_t id);
/* Servers c's links still tie to it (those running). */
size_t conn_live_links(const struct conn *c);

/* ---- listen.c ---------------------------------------------------------- */
/* The socket file's mode and group (-1: the daemon's), for listen_open:
 * the file is never more open than that, not even for an instant. */
void listen_set_access(mode_t mode, gid_t group);
/* Listens on the socket systemd passed (LISTEN_FDS, LISTEN_PID: fd 3) if
 * there is one, else binds path. 0, or -1 logged. */
int listen_open(const char *path);
/* Stops listening; removes the socket file only if this process made it. */
void listen_close(void);

/* ---- notify.c: systemd's notify protocol, without libsystemd ------------ */
/* Reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID (and removes them from
 * the environment) and, under a watchdog, starts the heartbeat: WATCHDOG=1
 * from a loop timer at half the interval. Without NOTIFY_SOCKET every
 * notify_* call does nothing. After loop_init. */
void notify_init(void);
/* READY=1: the daemon serves. Call it once everything that must run at
 * start is running (the socket listens, every server the configuration
 * declares has started): systemd holds back units ordered after gsd until
 * then. From then on STATUS= follows the server count, looked at once a
 * second. A second call does nothing. */
void notify_ready(void);
/* WATCHDOG=1 now, under a watchdog: before and after the one long piece
 * of work the loop does at once (reading and applying a configuration of
 * many servers at SIGHUP), so that its length alone is the gap. */
void notify_watchdog(void);
/* STOPPING=1: shutdown has begun. */
void notify_stopping(void);
void notify_free(void);

/* ---- shutdown.c --------------------------------------------------------- */
/* SIGTERM: sets shutting_down and stops the servers one at a time, the
 * last started first, each after its mailbox; leaves the loop once none
 * is left, or after limits.shutdown_ms (then ends the rest at once, the
 * messages they held counted in the log). */
void shutdown_begin(void);
/* A second signal: ends every server now, and leaves the loop. */
void shutdown_now(void);
/* server_end's hook: during shutdown, the next server is stopped. */
void shutdown_server_ended(void);
void shutdown_free(void);

/* ---- stats.c: the operator's view (stats, clients) ---------------------- */
/* Daemon-wide counts since start. Error answers are counted by code where
 * every one is packed (gsp_errors_packed, protocol/write.c). */
struct counters {
    uint64_t calls, casts, sends; /* messages clients gave servers, by method */
    uint64_t crashes;             /* servers that ended abnormally */
    uint64_t restarts;            /* servers started again by supervision */
};
extern struct counters counters;
void stats_init(void);                 /* at start: uptime counts from here */
uint64_t stats_rss(void);              /* the daemon's resident memory, bytes; 0 unknown */
void stats_pack(msgpack_packer *pk);   /* the `stats` map */
void clients_pack(msgpack_packer *pk); /* the `clients` array */

/* ---- method.c ---------------------------------------------------------- */
/* Serves one framed message from c (request or notification). */
void method_dispatch(struct conn *c, const struct gsp_envelope *env);
extern uint64_t dropped_notifications; /* casts/sends to nobody, ignored */

/* ---- auth.c ------------------------------------------------------------ */
/* The configured admin uids and groups (copied), beside root and the
 * daemon's own uid, who always are. */
void auth_set(const uid_t *uids, size_t nuids, const gid_t *gids, size_t ngids);
void auth_free(void);
/* True if the peer on fd (uid, gid from SO_PEERCRED) is an admin: root,
 * the daemon's uid, a configured uid, or a member (primary or
 * supplementary group, SO_PEERGROUPS) of a configured group. */
bool auth_admin(int fd, uid_t uid, gid_t gid);

/* ---- supervise.c --------------------------------------------------------- */
/* OTP's restart policies: permanent is always restarted, transient only
 * after an abnormal end (not "normal", "shutdown" or ["shutdown", _]),
 * temporary never. */
enum restart { RESTART_TEMPORARY, RESTART_TRANSIENT, RESTART_PERMANENT };

struct intensity {
    uint32_t max_restarts;   /* more restarts than this ... */
    uint32_t period_ms;      /* ... within this window: the server is given up */
    uint32_t backoff_ms;     /* delay before a restart, doubling per restart; 0 none */
    uint32_t backoff_max_ms; /* the delay's cap */
};
extern struct intensity intensity_default; /* 3 in 5000 ms, no delay; the configuration's */

/* What a server is started from, kept to start it again. */
struct child_spec {
    char *module;
    char *name; /* NULL: anonymous (only from `start`) */
    uint8_t *args;
    size_t args_len;        /* encoded msgpack */
    int64_t init_timeout;   /* ms for init; -1 none */
    uint32_t mailbox_limit; /* 0: limits.mailbox */
    int64_t hibernate_after; /* ms idle before it hibernates; -1 never */
    char *isolate;          /* NULL: in the daemon; "": a worker of its own; a group */
    enum restart restart;
    struct intensity intensity;
};

enum restart restart_from_name(const char *s, size_t len, bool *ok);
const char *restart_name(enum restart r);
/* Puts s, just started by `start` with restart permanent or transient,
 * under supervision (spec is copied). */
void supervise_adopt(struct server *s, const struct child_spec *spec);
/* An admin's stop is on its way to s: it is not restarted when it ends
 * (a declared server comes back at the next reload). */
void supervise_stop_asked(struct server *s);
/* server.c's hooks: s answered init ok; s has ended (server_end, after the
 * name is free), abnormally or not. */
void supervise_started(struct server *s);
void supervise_ended(struct server *s, struct gsp_span reason, bool abnormal);
/* server.c's hook, after supervise_ended: the name is free again. A
 * declared server waiting for it (its predecessor's terminate ran in a
 * worker) starts now. */
void supervise_name_freed(const char *name);
/* For info: times s's supervision restarted it, and its policy. */
unsigned supervise_restarts(const struct server *s);
/* For info: the exit reason (encoded) of the server s replaced, when
 * supervision or a restart started s in its place; {NULL, 0} otherwise. */
struct gsp_span supervise_last_exit(const struct server *s);
/* An admin's restart: once s has ended (the caller stops it with reason
 * "restart"), it is started again at once from what it was started with
 * (its child's spec when supervised: supervision does not also restart
 * it), linked to the same connection; the waiter hears the new id, as a
 * start's does, or why not. False (nothing done) while a restart of s is
 * already under way. */
bool supervise_restart(struct server *s, uint64_t waiter);
enum restart supervise_policy(const struct server *s);
/* Makes the declared servers those of specs, in that (file) order: starts
 * the new ones in order, stops the undeclared in reverse order, starts
 * again declared ones that are not running, and restarts one whose module,
 * args, init timeout or mailbox limit changed. specs are copied. */
void supervise_configure(const struct child_spec *specs, size_t n);
/* True once every server declared at start-up has answered its first init
 * ok, or has been given up on (a failing temporary one, or out of
 * restarts); true at once when none were declared. */
bool supervise_all_started(void);
/* Calls fn(arg) once, on the loop, when supervise_all_started() becomes
 * true (at once if it is already): the moment to tell a service manager
 * the daemon is ready. One callback; a second call replaces the first. */
void supervise_on_ready(void (*fn)(void *arg), void *arg);
/* Frees every supervision record and pending restart (at exit). */
void supervise_free(void);

/* ---- slowlog.c: the slowest recent callbacks --------------------------- */
/* A ring of the last limits.slowlog_len callbacks that took at least
 * slow_callback_ms (tally's slow branch records; nothing else pays), each
 * with the message it handled: the value itself when its encoding is at
 * most limits.slowlog_message_bytes, else a str of its text cut to that
 * size and ending in "...". A reload that changes the length keeps the
 * newest. msg: the message, encoded (len 0: none, shown as nil). */
void slowlog_record(const struct server *s, enum callback cb, int64_t took_us, struct gsp_span msg);
/* The `slowlog` answer, newest first, at most n entries; a bound on its
 * size in bytes, for room_for. */
void slowlog_pack(msgpack_packer *pk, uint64_t n);
size_t slowlog_size(uint64_t n);
void slowlog_reset(void);
void slowlog_free(void);

/* ---- trace.c: `trace` notifications ------------------------------------ */
/* A connection that traces a server gets [2, "trace", [id, name, event,
 * data]] for each of its events. Never at the server's cost: an event that
 * would take the tracer's unread output past TRACE_OUT_BYTES (at most half
 * of limits.output_bytes, so it is never cut off for it) is dropped and
 * counted, and the count goes out as a "dropped" event once there is room
 * (before the next event, or when its output has drained: conn_flush). An
 * untraced server pays one branch per event (the inline wrappers). */
#define TRACE_OUT_BYTES (256u << 10)
enum trace_event { TRACE_CALL, TRACE_CAST, TRACE_INFO, TRACE_REPLY, TRACE_TIMEOUT };
/* c traces s (on) or no longer does; idempotent. */
void trace_set(struct conn *c, struct server *s, bool on);
void trace_emit(struct server *s, enum trace_event ev, struct gsp_span data);
void trace_emit_value(struct server *s, enum trace_event ev, const gs_value *v);
/* The message of that kind s is about to handle (call, cast, info). */
void trace_emit_msg(struct server *s, enum msg_kind kind, struct gsp_span data);
/* s ends: "stop" with the reason to each tracer, and tracing ends. */
void trace_server_ended(struct server *s, struct gsp_span reason);
void trace_conn_closed(struct conn *c);
/* c's output has drained: the "dropped" counts go out. True if any was
 * packed (then there is output to write again). */
bool trace_conn_drained(struct conn *c);
static inline void trace_msg(struct server *s, enum msg_kind kind, struct gsp_span data)
{
    if (__builtin_expect(!LIST_EMPTY(&s->tracers), 0))
        trace_emit_msg(s, kind, data);
}

/* ---- crash.c: crash reports ---------------------------------------------- */
/* What the message being handled was, noted by the paths that may end a
 * server abnormally (a callback's stop, a stop request, a worker's crash),
 * for the report that follows: s, the callback, the message (encoded, valid
 * until the report) and the waiter of a call or stop (0 none). */
void crash_note(const struct server *s, enum callback cb, struct gsp_span msg, uint64_t waiter);
/* s ends abnormally with reason (encoded): one structured record, its
 * state shown by format_state when state_safe (its module's code may run:
 * in the daemon, init has answered ok, terminate has not run). Under
 * journald (JOURNAL_STREAM) sent over the journal's native protocol to
 * $GSD_JOURNAL_SOCKET or /run/systemd/journal/socket; elsewhere, or if
 * that fails, one escaped log line. */
void crash_report(struct server *s, struct gsp_span reason, bool state_safe);

/* ---- dist_term.c: Erlang's external term format <-> msgpack ------------- */
/* What came from Erlang goes back exactly as it came. msgpack sees an atom
 * as a str (true, false and nil as msgpack's own), a tuple or a proper list
 * as an array, a binary as a str when it is UTF-8 (else a bin), a map as a
 * map, an integer as an int when it fits in 64 bits, a float as a float64;
 * everything else is an ext of one of these types holding the term's own
 * bytes (external format, no version byte). Going back, an ext of these
 * types is its bytes again, an array is a tuple where the request being
 * answered held an equal tuple (else a list), and a str is an atom only
 * where the peer has sent an atom of that name (so no data ever makes a new
 * atom on a peer) and the request did not hold it as a binary. */
enum {
    DIST_EXT_INT = 0x10,
    DIST_EXT_PID,
    DIST_EXT_REF,
    DIST_EXT_PORT,
    DIST_EXT_FUN,
    DIST_EXT_TERM
};
#define ATOMS_MAX 65536            /* atoms kept per peer ... */
#define ATOMS_BYTES_MAX (1u << 20) /* ... and their bytes: past either, no more are */
struct atom_entry;
struct atom_set {
    struct atom_entry *h;
    unsigned n;
    size_t bytes;
    bool full; /* an atom was not kept */
};
bool atoms_has(const struct atom_set *set, const void *name, size_t len);
void atoms_add(struct atom_set *set, const void *name, size_t len);
void atoms_free(struct atom_set *set);
/* Where term_to_mp wrote each tuple and binary (offsets into its out). */
enum term_mark_kind { TERM_MARK_TUPLE, TERM_MARK_BINARY };
struct term_mark {
    enum term_mark_kind kind;
    uint32_t off, len;
};
struct term_marks {
    struct term_mark *v;
    size_t n, cap;
};
/* Reads an atom at *pp (any of its four tags) as UTF-8, latin-1 ones
 * converted into buf; advances *pp. */
bool term_atom(const uint8_t **pp, const uint8_t *end, uint8_t buf[512], const uint8_t **name,
               size_t *len);
/* True, *pp advanced past it, if the term at *pp is the atom want. */
bool term_is_atom(const uint8_t **pp, const uint8_t *end, const char *want);
/* Checks one term at *pp, never reading past end, nested at most depth
 * deep; adds each atom it holds to seen (may be NULL); advances *pp. */
bool term_skip(const uint8_t **pp, const uint8_t *end, unsigned depth, struct atom_set *seen);
/* One term at *pp as msgpack, packed by pk into out; atoms to seen, tuples
 * and binaries noted in marks (both may be NULL). False for a malformed
 * term or one nested deeper than depth. */
bool term_to_mp(const uint8_t **pp, const uint8_t *end, struct gsp_buf *out, msgpack_packer *pk,
                unsigned depth, struct atom_set *seen, struct term_marks *marks);
/* What a value going back to a peer may become. */
struct term_ctx {
    const struct atom_set *atoms;            /* the peer's atoms */
    const struct atom_set *words;            /* atoms the daemon may always send (exit reasons) */
    const msgpack_object *tuples, *binaries; /* the request's, as term_marks found them */
    size_t ntuples, nbinaries;
    const char *self; /* our node's name: a pid of ours holds it */
    size_t self_len;
    bool made_atoms; /* a module's value: its GS_EXT_ATOMs become atoms */
};
/* v as a term appended to b (no version byte); false if deeper than depth. */
bool mp_to_term(const msgpack_object *v, struct gsp_buf *b, const struct term_ctx *ctx,
                unsigned depth);
/* A distribution packet (after its 4-byte length): 'p', the control
 * message and the payload (none: msg->ptr NULL), each after its version
 * byte; the control message is checked, the payload is not. */
bool dist_packet(const uint8_t *p, size_t len, struct gsp_span *ctl, struct gsp_span *msg);
/* A control message {Op, ...}: its op (-1: not one) and its elements'
 * spans (el[0] is the op), each checked. */
#define DIST_CONTROL_MAX 6
int dist_control(struct gsp_span ctl, struct gsp_span el[DIST_CONTROL_MAX], unsigned *n);
void term_put_atom(struct gsp_buf *b, const void *name, size_t len);
void term_put_tuple(struct gsp_buf *b, uint32_t arity);
void term_put_int(struct gsp_buf *b, int64_t v, bool is_unsigned, uint64_t u);

/* ---- dist*.c: gsd as a hidden Erlang node --------------------------------- */
/* With a distribution section, gsd accepts Erlang nodes and connects to
 * them on demand (ei's handshake, run in a short-lived thread per
 * connection so that it never blocks the loop), and reads each connected
 * node on the loop. Inbound (dist_in.c), peers call, cast, send to and
 * monitor servers by registered name: a gen_server call becomes a call
 * with a waiter of kind WAIT_DIST. Outbound (dist_out.c), remote
 * references [name, node] from clients and modules (remote.c) become
 * calls, messages and monitors of that name. A node that goes away takes
 * its peers' calls (dropped: gs_from_waiting turns false) and monitors
 * with it, and ours hear noconnection. dist.h says more. */
struct dist_config {
    char *node;        /* "alive@host"; NULL: no distribution */
    char *cookie_file; /* readable by the daemon's user alone */
    char *listen;      /* IPv4 address the listener binds; default 127.0.0.1 */
    uint16_t port;     /* 0: any free port (published to epmd) */
    uint32_t tick_ms;  /* net_ticktime in ms: a silent peer is dropped after it */
};
/* Joins the cluster (listens, publishes to epmd); 0, or -1 logged. */
int dist_start(const struct dist_config *cfg);
/* Disconnects every node, stops listening, unpublishes. */
void dist_stop(void);
/* A reload from a to b: tick_ms takes effect now; false if anything else
 * changed, which takes effect at the next start. */
bool dist_reload(const struct dist_config *a, const struct dist_config *b);
/* The core's ways into dist.c, NULL without distribution (defined in
 * waiter.c): so that only the daemon's own program links ei. */
struct dist_hooks {
    /* A WAIT_DIST waiter is answered (its ref: the pending call's key). */
    void (*answer)(uint64_t key, enum gsp_code code, struct gsp_span v);
    /* s has ended: its distribution monitors hear it. */
    void (*server_ended)(struct server *s, struct gsp_span reason);
    /* The `nodes` result; how many nodes are connected (stats). */
    void (*nodes)(msgpack_packer *pk);
    unsigned (*count)(void);
    /* Remote references (remote.c's, which says what each does). */
    bool (*is_self)(const char *node, size_t len);
    void (*call)(const struct remote *to, struct gsp_span req, bool module, struct waiter *w);
    bool (*post)(const struct remote *to, enum msg_kind kind, struct gsp_span msg, bool module,
                 struct waiter *w);
    void (*monitor)(const struct remote *to, uint64_t mref, struct waiter *w);
    /* A remote monitor has gone (demonitored, or its watcher); a remote
     * call's waiter has gone (answered, timed out, or its caller). */
    void (*unwatch)(uint64_t mref);
    void (*call_gone)(uint64_t waiter);
};
extern const struct dist_hooks *dist_hooks;

/* ---- config.c ------------------------------------------------------------ */
#ifndef GSD_CONFIG_FILE
#define GSD_CONFIG_FILE "/etc/gsd/gsd.conf"
#endif

/* One configuration file, read. Everything it does not set has its default. */
struct config {
    char *socket;       /* path; NULL: gsp_socket_path's default */
    mode_t socket_mode; /* 0660 */
    gid_t socket_group; /* (gid_t)-1: the daemon's */
    char *module_dirs;  /* colon-separated; NULL: GSD_MODULE_DIR */
    int log_level;
    struct limits limits;
    int64_t slow_callback_ms;
    uid_t *admin_uids;
    size_t nadmin_uids;
    gid_t *admin_gids;
    size_t nadmin_gids;
    struct intensity intensity; /* the default for every supervised server */
    struct child_spec *servers; /* declared, in file order */
    size_t nservers;
    struct worker_settings workers;
    struct isolate_default *isolate; /* each module's default placement: isolate = { ... } */
    size_t nisolate;
    char *metrics_listen;    /* metrics.listen, "HOST:PORT": /metrics over HTTP; NULL none */
    struct dist_config dist; /* distribution = { ... }; dist.node NULL: none */
};

/* Reads path into *cfg. A missing file is an error only if must_exist;
 * otherwise it gives the defaults. Every bad line is logged as
 * "FILE:LINE: what is wrong"; on any, returns -1 with the first in err and
 * *cfg holds nothing to free. On success the caller frees cfg with
 * config_free. Reads the user and group databases (names in admins and
 * socket.group): for start-up and reloads only. */
int config_load(const char *path, bool must_exist, struct config *cfg, char *err, size_t errlen);
void config_free(struct config *cfg);

#endif /* GSD_DAEMON_H */
