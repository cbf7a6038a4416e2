/*
 * harness.h — what every test binary shares: a throwaway daemon, gsctl
 * runs, raw sockets that speak bytes, and msgpack values written as text.
 *
 * Every helper that checks something fails the current Check test at the
 * caller's line (the upper-case macros pass __FILE__ and __LINE__ along).
 * Everything a test starts is also cleaned up at exit, by PID, so a failing
 * test leaves no daemon behind.
 *
 * Values as text (mp, ck_assert_mp_eq, mp_str) use a small syntax:
 *     nil true false 12 -3 1.5 'str' b'bin' [1, 'a'] {'k': 'v'}
 * with '\'' and '\\' escaped by a backslash, \xNN for any byte, and
 * directives taking the next variadic argument:
 *     %d int   %l int64_t   %u uint64_t   %s const char * (a str)
 *     %b bool  %v const msgpack_object * (embedded as is)
 */
#ifndef GSD_TESTS_HARNESS_H
#define GSD_TESTS_HARNESS_H

#include <check.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "gsclient.h"
#include "gsp.h"

/* ---- the daemon ---------------------------------------------------------- */

struct gsd {
    pid_t pid;      /* the daemon's process */
    char dir[96];   /* its temporary directory, removed by gsd_stop */
    char sock[108]; /* DIR/gsd.sock (sun_path holds 108 bytes) */
    char log[128];  /* DIR/gsd.log, the daemon's stderr */
    bool exited;    /* reaped: status is its exit status */
    int status;
};

/* The build directory: $GSD_BUILD, else the one this binary sits in
 * (BUILD/tests/check_x). Static string. */
const char *gsd_build(void);
/* The source tree: $GSD_SOURCE (make check sets it), else the build
 * directory's parent (build/, build-san/). Static string. */
const char *gsd_source(void);

/* Starts $GSD_BUILD/gsd on a fresh socket with the module directories
 * BUILD/modules and BUILD/test-modules and an empty configuration
 * (-c /dev/null), plus the NULL-terminated extra arguments (extra may be
 * NULL; a later -M or -c wins), and waits up to 5 s until it accepts a
 * connection. Fails the test if it does not. Free with gsd_stop. */
struct gsd *gsd_start_with(const char *const *extra);
/* True when GSD_TEST_ISOLATE=1: every daemon started runs every server in a
 * worker of its own (make check runs the e2e suites so a second time). */
bool isolated_run(void);
#define gsd_start() gsd_start_with(NULL)
/* The same with the daemon's stderr on err_fd (a pipe, say) instead of its
 * log file; -1: the log file. */
struct gsd *gsd_start_stderr(const char *const *extra, int err_fd);

/* In the child just forked by parent to exec a daemon: dies with parent
 * (SIGKILL; at once if it is gone already), SIGPIPE back to its default,
 * stdin /dev/null, stdout the log file (created or truncated), stderr
 * err_fd (-1: the log file too). _exit(127) if a file does not open. */
void daemon_child_stdio(pid_t parent, const char *log, int err_fd);

/* SIGTERM, up to 5 s, then SIGKILL. Returns the exit status as a shell
 * shows it (128 + signal if killed), removes the directory, frees *d and
 * sets it to NULL. NULL is ignored (returns -1). */
int gsd_stop(struct gsd **d);

/* Sends sig (0: none) and waits up to wait_ms for the daemon to exit.
 * Returns its status as gsd_stop does, or -1 if it is still running. The
 * directory stays until gsd_stop. */
int gsd_wait_exit(struct gsd *d, int sig, int wait_ms);

/* True while the daemon process has not exited. */
bool gsd_alive(struct gsd *d);

/* A wait status as a shell shows it: the exit code, or 128 + the signal
 * (-1: neither). */
int shell_status(int st);

/* A path inside the daemon's directory (static buffer, one per call site
 * is safest: the next call overwrites it). */
const char *gsd_path(const struct gsd *d, const char *name);

/* ---- gsctl --------------------------------------------------------------- */

/* A running gsctl (or any command), its output collected by gsctl_wait. */
struct proc {
    pid_t pid;
    int out, err; /* read ends of its stdout and stderr */
};

/* Starts BUILD/gsctl with "-s SOCK" (no -s if sock is NULL) and argv (NULL
 * terminated), stdin from /dev/null. */
struct proc *gsctl_spawn(const char *sock, const char *const *argv);
/* Waits up to wait_ms for it to end, collecting stdout and stderr (malloc'd
 * strings, yours; NULL pointers to skip). Returns its exit status, 128 +
 * signal if killed, or -1 if it had to be killed for running too long. */
int gsctl_wait(struct proc **p, int wait_ms, char **out, char **err);

/* Runs gsctl -s d->sock ARGS... NULL, bounded by 10 s. */
int run_gsctl(const struct gsd *d, char **out, char **err, ...) __attribute__((sentinel));

/* Runs cmd with /bin/sh (bound it yourself, e.g. with timeout(1)) and
 * returns its stdout (kept until the test ends); *status gets its exit
 * status as pclose reports it. */
char *shell_output(const char *cmd, int *status);
/* printf into one of 16 rotating buffers, for arguments built on the fly:
 * the 17th call reuses the first's. */
__attribute__((format(printf, 1, 2))) const char *fmt(const char *f, ...);
/* How many times needle is in g's log. */
int log_count(const struct gsd *g, const char *needle);

/* ---- raw sockets ----------------------------------------------------------- */

/* A stream socket connected to the unix socket at path (close-on-exec), or
 * -1 with errno set. Checks nothing: usable outside a test too. */
int connect_to(const char *path);

/* A connection spoken to byte by byte, with its own input framing. */
struct raw {
    int fd;
    struct gsp_buf in;    /* bytes read, not yet returned as a frame */
    struct gsp_framer fr; /* framing state over `in` */
    msgpack_zone *zone;   /* holds every value raw_recv returned */
};

#define RAW_CONNECT(d) raw_connect_at(__FILE__, __LINE__, (d)->sock)
struct raw *raw_connect_at(const char *file, int line, const char *sock);
void raw_close(struct raw **r);

/* Writes all n bytes (fails the test if it cannot). */
#define RAW_WRITE(r, p, n) raw_write_at(__FILE__, __LINE__, (r), (p), (n))
void raw_write_at(const char *file, int line, struct raw *r, const void *p, size_t n);

/* Packs a request [0, msgid, method, params] and writes it; params is an
 * array value (usually from mp). */
#define RAW_REQUEST(r, msgid, method, params)                                                      \
    raw_request_at(__FILE__, __LINE__, (r), (msgid), (method), (params))
void raw_request_at(const char *file, int line, struct raw *r, uint32_t msgid, const char *method,
                    const msgpack_object *params);
/* The same as a notification [2, method, params]. */
#define RAW_NOTIFY(r, method, params) raw_notify_at(__FILE__, __LINE__, (r), (method), (params))
void raw_notify_at(const char *file, int line, struct raw *r, const char *method,
                   const msgpack_object *params);

/* Reads one message within wait_ms. Returns it (valid until raw_close), or
 * NULL on timeout or EOF; fails the test on bytes that do not frame. */
const msgpack_object *raw_recv(struct raw *r, int wait_ms);
/* The same, failing the test when nothing comes. */
#define RAW_RECV(r, wait_ms) raw_recv_at(__FILE__, __LINE__, (r), (wait_ms))
const msgpack_object *raw_recv_at(const char *file, int line, struct raw *r, int wait_ms);

/* n casts to server in one write, msgids 1 to n, the i-th (from 0) made of
 * req_fmt with i for its %d if it has one (as mp reads it); then waits for
 * each to be answered nil (failing the test otherwise). */
#define RAW_CASTS(r, server, req_fmt, n)                                                           \
    raw_casts_at(__FILE__, __LINE__, (r), (server), (req_fmt), (n))
void raw_casts_at(const char *file, int line, struct raw *r, const char *server,
                  const char *req_fmt, int n);

/* Reads and counts the messages r has been sent so far (none waited for). */
int raw_drain(struct raw *r);

/* True if the peer closes within wait_ms with nothing more to read. */
bool raw_eof(struct raw *r, int wait_ms);

/* ---- values as text ---------------------------------------------------------- */

/* Parses text (see the top) into a value living until the process ends. */
#define mp(...) mp_at(__FILE__, __LINE__, __VA_ARGS__)
const msgpack_object *mp_at(const char *file, int line, const char *fmt, ...);

/* The value as text in the same syntax (static buffer, rotates over 8). */
const char *mp_str(const msgpack_object *v);

/* Fails unless v equals the value written as text (gsp_value_equal). */
#define ck_assert_mp_eq(v, ...) mp_assert_eq(__FILE__, __LINE__, #v, (v), __VA_ARGS__)
void mp_assert_eq(const char *file, int line, const char *expr, const msgpack_object *v,
                  const char *fmt, ...);

/* Map lookup by string key; NULL if v is not a map or has no such key. */
const msgpack_object *mp_get(const msgpack_object *v, const char *key);
/* Element i of an array, or NULL. */
const msgpack_object *mp_item(const msgpack_object *v, uint32_t i);
/* True if v equals the value written as text. */
bool mp_eq(const msgpack_object *v, const char *fmt, ...);
/* Reads an integer, failing the test if v is not one. */
#define MP_INT(v) mp_int_at(__FILE__, __LINE__, (v))
int64_t mp_int_at(const char *file, int line, const msgpack_object *v);

/* ---- libgsclient ----------------------------------------------------------- */

#define CLIENT(d) client_at(__FILE__, __LINE__, (d))
gsc *client_at(const char *file, int line, const struct gsd *d);
/* Closes a client from CLIENT() before exit. */
void client_close(gsc **c);

/* The next down notification within wait_ms; yours: gsc_down_destroy it. */
#define DOWN(c, wait_ms) down_at(__FILE__, __LINE__, (c), (wait_ms))
gsc_down *down_at(const char *file, int line, gsc *c, int wait_ms);

/* Checks a request's outcome: OK(status, &reply) wants GSC_OK and returns
 * the result; ERR(status, &reply, code) wants GSC_ERROR with that code and
 * returns the detail. The reply is kept until exit (no need to free). */
#define OK(st, r) ok_at(__FILE__, __LINE__, #st, (st), (r))
#define ERR(st, r, code) err_at(__FILE__, __LINE__, #st, (st), (r), (code))
const msgpack_object *ok_at(const char *file, int line, const char *expr, int st, gsc_reply **r);
const msgpack_object *err_at(const char *file, int line, const char *expr, int st, gsc_reply **r,
                             const char *code);

/* The common requests, checked: the result of a call, a started id. */
#define CALL(c, server, req) OK_CALL_T(c, server, req, 0)
#define OK_CALL_T(c, server, req, t) call_at(__FILE__, __LINE__, (c), (server), (req), (t))
const msgpack_object *call_at(const char *file, int line, gsc *c, const char *server,
                              const msgpack_object *req, int timeout_ms);
#define START(c, module, name, args)                                                               \
    start_at(__FILE__, __LINE__, (c), (module), (name), (args), NULL)
#define START_OPTS(c, module, name, args, opts)                                                    \
    start_at(__FILE__, __LINE__, (c), (module), (name), (args), (opts))
uint64_t start_at(const char *file, int line, gsc *c, const char *module, const char *name,
                  const msgpack_object *args, const msgpack_object *opts);

/* The decimal text of an id, for APIs that take a server as a string
 * (static buffer, rotates over 8). */
const char *id_str(uint64_t id);

/* ---- files and time ---------------------------------------------------------- */

/* The whole file, or NULL if it cannot be read. The harness frees it when
 * the test ends, as it does json_lines' and json_squeeze's results. */
char *file_read(const char *path);
/* The lines of a file of JSON lines with the blanks outside strings
 * removed, joined by '\n' ("" for a missing or empty file). */
char *json_lines(const char *path);
/* s with whitespace outside JSON strings removed. */
char *json_squeeze(const char *s);
/* Lines in s (count of '\n'). */
int line_count(const char *s);

int64_t now_ms(void); /* CLOCK_MONOTONIC */
void sleep_ms(int ms);

/* Polls cond every 10 ms for up to ms; evaluates to its last value. */
#define WAIT_UNTIL(ms, cond)                                                                       \
    ({                                                                                             \
        int64_t wait_until_end_ = now_ms() + (ms);                                                 \
        bool wait_until_ok_;                                                                       \
        while (!(wait_until_ok_ = (cond)) && now_ms() < wait_until_end_)                           \
            sleep_ms(10);                                                                          \
        wait_until_ok_;                                                                            \
    })

/* For a suite whose workers crash on purpose: no core files, and under
 * AddressSanitizer a worker's SIGSEGV kills it as it does a worker built
 * without it (ASan would turn it into exit(1)). Workers inherit both. */
void let_workers_crash(void);

/* Runs a suite in Check's fork mode and returns the exit status for main.
 * Daemon directories go under one temporary root, removed at the end
 * (kept, and named on stderr, if GSD_TEST_KEEP is set). */
int run_suite(Suite *s);

#endif /* GSD_TESTS_HARNESS_H */
