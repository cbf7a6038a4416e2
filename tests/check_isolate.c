/*
 * check_isolate.c — isolated servers ("isolate": true or a group), end to
 * end through the socket: a worker process that crashes, blocks, outruns
 * its stop or its memory ends only its own servers, with the reasons the
 * protocol names; supervision brings them back in a fresh worker; and
 * everything a module does works the same inside a worker.
 */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static struct gsd *D;
static gsc *C;

static void setup(void)
{
    D = gsd_start();
    C = CLIENT(D);
}

static void teardown(void)
{
    client_close(&C);
    ck_assert_int_eq(gsd_stop(&D), 0);
}

/* ---- helpers ------------------------------------------------------------------ */

/* A server started in a worker: group NULL, one of its own. */
static uint64_t start_isolated(gsc *c, const char *module, const char *name,
                               const msgpack_object *args, const char *group)
{
    return START_OPTS(c, module, name, args,
                      group ? mp("{'isolate': %s}", group) : mp("{'isolate': true}"));
}

static const msgpack_object *info(gsc *c, const char *server)
{
    gsc_reply *r;
    return OK(gsc_info(c, server, &r), &r);
}

/* The pid of an isolated server's worker, checking info says isolated. */
static pid_t worker_of(gsc *c, const char *server)
{
    const msgpack_object *i = info(c, server);
    ck_assert_msg(mp_eq(mp_get(i, "isolated"), "true"), "%s not isolated: %s", server, mp_str(i));
    int64_t pid = MP_INT(mp_get(i, "worker"));
    ck_assert_int_gt(pid, 1);
    return (pid_t)pid;
}

static bool pid_gone(pid_t pid)
{
    return kill(pid, 0) < 0 && errno == ESRCH;
}

static uint64_t whereis(gsc *c, const char *name) /* 0: nobody */
{
    gsc_reply *r;
    const msgpack_object *v = OK(gsc_whereis(c, name, &r), &r);
    return v->type == MSGPACK_OBJECT_NIL ? 0 : (uint64_t)MP_INT(v);
}

/* A ref: a uint, which may be past INT64_MAX (a worker's refs are). */
static uint64_t ref_of(const msgpack_object *v)
{
    ck_assert_msg(v->type == MSGPACK_OBJECT_POSITIVE_INTEGER, "a ref expected, got %s", mp_str(v));
    return v->via.u64;
}

static uint64_t monitor(gsc *c, const char *server)
{
    gsc_reply *r;
    return (uint64_t)MP_INT(OK(gsc_monitor(c, server, &r), &r));
}

/* The next down is ref's, for server id, with the reason written as text. */
static void down_is(gsc *c, uint64_t ref, uint64_t id, const char *reason)
{
    gsc_down *d = DOWN(c, 3000);
    ck_assert_uint_eq(d->ref, ref);
    ck_assert_uint_eq(d->id, id);
    ck_assert_msg(mp_eq(&d->reason, reason), "down reason %s, want %s", mp_str(&d->reason), reason);
    gsc_down_destroy(&d);
}

static void pings(gsc *c)
{
    gsc_reply *r;
    ck_assert_mp_eq(OK(gsc_ping(c, &r), &r), "'pong'");
}

/* The first line of the daemon's log holding needle, or NULL (static). */
static const char *log_line(const struct gsd *d, const char *needle)
{
    static char line[2048];
    const char *log = file_read(d->log), *at = log ? strstr(log, needle) : NULL;
    if (at == NULL)
        return NULL;
    const char *start = at, *end = strchr(at, '\n');
    while (start > log && start[-1] != '\n')
        start--;
    size_t n = end ? (size_t)(end - start) : strlen(start);
    snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), start);
    return line;
}

/* Waits up to ms for a log line holding needle, and fails without one. */
#define LOG_LINE(d, ms, needle)                                                                    \
    ({                                                                                             \
        const char *log_line_ = NULL;                                                              \
        WAIT_UNTIL(ms, (log_line_ = log_line((d), (needle))) != NULL);                             \
        ck_assert_msg(log_line_ != NULL, "no log line with \"%s\"; log:\n%s", (needle),            \
                      file_read((d)->log));                                                        \
        log_line_;                                                                                 \
    })

/* The lines the daemon writes when a worker with servers dies. */
#define WORKER_DEATH "gsd error: worker "

/* A counter at 42 in the daemon ("c") and one in a worker of its own ("ic"). */
static void bystanders(gsc *c)
{
    START(c, "counter", "c", mp("42"));
    start_isolated(c, "counter", "ic", mp("42"), NULL);
}

static void bystanders_unharmed(gsc *c)
{
    ck_assert_mp_eq(CALL(c, "c", mp("'get'")), "42");
    ck_assert_mp_eq(CALL(c, "ic", mp("'get'")), "42");
}

/* ---- 1. a crash is contained -------------------------------------------------- */

static const char *const HOW[] = {"segv", "abort", "exit"};
/* The protocol: ["crashed", detail], detail the signal's name or
 * ["exit_status", n] ("Semantics every client can rely on", Exit reasons;
 * "Isolated servers": each server ends with ["crashed", detail]). */
static const char *const REASON[] = {"['crashed', 'SIGSEGV']", "['crashed', 'SIGABRT']",
                                     "['crashed', ['exit_status', 3]]"};
static const char *const DEATH[] = {"killed by SIGSEGV", "killed by SIGABRT",
                                    "exited with status 3"};
static const char *const CALLBACK[] = {"handle_call", "handle_cast", "init"};

/* _i: how (segv, abort, exit) + 3 * where (call, cast, init). */
START_TEST(a_crash_ends_only_its_server)
{
    int how = _i % 3, where = _i / 3;
    bystanders(C);
    gsc_reply *r;
    uint64_t id;
    pid_t pid = 0;
    if (where < 2) {
        id = start_isolated(C, "probe", "p", NULL, NULL);
        pid = worker_of(C, "p");
        uint64_t ref = monitor(C, "p");
        const msgpack_object *req = mp("['crash', %s]", HOW[how]);
        if (where == 0) {
            const msgpack_object *why = ERR(gsc_call(C, "p", req, 5000, &r), &r, "exit");
            ck_assert_msg(mp_eq(why, REASON[how]), "call's exit %s, want %s", mp_str(why),
                          REASON[how]);
        } else
            OK(gsc_cast(C, "p", req, &r), &r);
        down_is(C, ref, id, REASON[how]);
        ck_assert(WAIT_UNTIL(1000, pid_gone(pid)));
    } else {
        id = whereis(C, "ic") + 1; /* ids are given in order */
        int64_t t0 = now_ms();
        /* bounded: an answer, not a hang (GSC_BROKEN after 3 s) */
        int st = gsc_request(
            C, "start",
            mp("['probe', 'p', {'init': 'crash', 'how': %s}, {'isolate': true}]", HOW[how]), 3000,
            &r);
        ck_assert_msg(st != GSC_BROKEN && now_ms() - t0 < 3000,
                      "start of a server whose init crashes: no answer within 3 s");
        const msgpack_object *why = ERR(st, &r, "exit");
        ck_assert_msg(mp_eq(why, REASON[how]), "start's exit %s, want %s", mp_str(why),
                      REASON[how]);
    }
    ck_assert_uint_eq(whereis(C, "p"), 0);
    pings(C);
    bystanders_unharmed(C);
    const char *line = LOG_LINE(
        D, 2000, fmt(" in %s of server %llu (p, probe)", CALLBACK[where], (unsigned long long)id));
    ck_assert_msg(strstr(line, WORKER_DEATH) && strstr(line, DEATH[how]) &&
                      strstr(line, fmt("its servers end: %llu (p)", (unsigned long long)id)),
                  "line: %s", line);
    if (pid)
        ck_assert_ptr_nonnull(strstr(line, fmt("(pid %d)", (int)pid)));
    ck_assert_int_eq(log_count(D, WORKER_DEATH), 1);
}
END_TEST

/* The smallest case: a worker killed from outside, and a monitor that
 * waits, with no other request to the daemon meanwhile. */
START_TEST(a_death_is_told_at_once_without_other_traffic)
{
    uint64_t id = start_isolated(C, "counter", "ic", mp("1"), NULL);
    pid_t pid = worker_of(C, "ic");
    uint64_t ref = monitor(C, "ic");
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    down_is(C, ref, id, "['crashed', 'SIGKILL']");
}
END_TEST

START_TEST(callers_queued_behind_a_crash_hear_it)
{
    /* A caller already queued behind the crashing call hears the same exit. */
    bystanders(C);
    uint64_t id = start_isolated(C, "probe", "p", NULL, NULL);
    struct raw *w = RAW_CONNECT(D);
    RAW_REQUEST(w, 1, "call", mp("['p', ['block', 200], 5000]"));
    RAW_REQUEST(w, 2, "call", mp("['p', ['crash', 'segv'], 5000]"));
    RAW_REQUEST(w, 3, "call", mp("['p', ['echo', 1], 5000]"));
    ck_assert_mp_eq(RAW_RECV(w, 3000), "[1, 1, nil, 'ok']");
    /* the two exits, in either order (responses need not keep msgid order) */
    uint32_t seen = 0;
    for (int i = 0; i < 2; i++) {
        const msgpack_object *m = RAW_RECV(w, 3000);
        ck_assert_mp_eq(mp_item(m, 2), "['exit', ['crashed', 'SIGSEGV']]");
        seen |= 1u << MP_INT(mp_item(m, 1));
    }
    ck_assert_uint_eq(seen, (1u << 2) | (1u << 3));
    raw_close(&w);
    ck_assert_uint_eq(whereis(C, "p"), 0);
    ck_assert_ptr_nonnull(strstr(LOG_LINE(D, 2000, WORKER_DEATH),
                                 fmt("its servers end: %llu (p)", (unsigned long long)id)));
    bystanders_unharmed(C);
}
END_TEST

/* ---- 2. worker groups ------------------------------------------------------- */

START_TEST(a_group_shares_a_worker_and_its_crash)
{
    uint64_t a = start_isolated(C, "probe", "a", NULL, "'g1'");
    uint64_t b = start_isolated(C, "counter", "b", mp("7"), "'g1'");
    start_isolated(C, "counter", "other", mp("42"), "'g2'");
    START(C, "counter", "c", mp("42"));
    pid_t pa = worker_of(C, "a"), pb = worker_of(C, "b"), po = worker_of(C, "other");
    ck_assert_int_eq(pa, pb);
    ck_assert_int_ne(pa, po);
    ck_assert_int_ne(pa, D->pid);
    uint64_t ref = monitor(C, "b");
    gsc_reply *r;
    ck_assert_mp_eq(ERR(gsc_call(C, "a", mp("['crash', 'segv']"), 5000, &r), &r, "exit"),
                    "['crashed', 'SIGSEGV']");
    down_is(C, ref, b, "['crashed', 'SIGSEGV']");
    ck_assert_uint_eq(whereis(C, "a"), 0);
    ck_assert_uint_eq(whereis(C, "b"), 0);
    ck_assert(WAIT_UNTIL(1000, pid_gone(pa)));
    ck_assert_mp_eq(CALL(C, "other", mp("'get'")), "42");
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "42");
    const char *line = LOG_LINE(D, 2000, WORKER_DEATH);
    ck_assert_msg(
        strstr(line, fmt("in handle_call of server %llu (a, probe)", (unsigned long long)a)) &&
            strstr(line, fmt("%llu (a)", (unsigned long long)a)) &&
            strstr(line, fmt("%llu (b)", (unsigned long long)b)) && strstr(line, "(other)") == NULL,
        "line: %s", line);
    ck_assert_int_eq(log_count(D, WORKER_DEATH), 1);
    /* The group lives on in a fresh worker. */
    start_isolated(C, "counter", "b", mp("1"), "'g1'");
    pid_t fresh = worker_of(C, "b");
    ck_assert_int_ne(fresh, pa);
    ck_assert_int_ne(fresh, po);
    ck_assert_mp_eq(CALL(C, "b", mp("'get'")), "1");
}
END_TEST

START_TEST(a_group_worker_lasts_while_it_hosts_a_server)
{
    start_isolated(C, "counter", "a", mp("1"), "'g'");
    start_isolated(C, "counter", "b", mp("2"), "'g'");
    pid_t pid = worker_of(C, "a");
    gsc_reply *r;
    OK(gsc_stop(C, "a", NULL, 2000, &r), &r);
    ck_assert(!pid_gone(pid));
    ck_assert_int_eq(worker_of(C, "b"), pid);
    ck_assert_mp_eq(CALL(C, "b", mp("'get'")), "2");
    OK(gsc_stop(C, "b", NULL, 2000, &r), &r);
    ck_assert(WAIT_UNTIL(2000, pid_gone(pid)));      /* its last server gone, it ends */
    ck_assert_int_eq(log_count(D, WORKER_DEATH), 0); /* an end, not a death */
}
END_TEST

/* ---- 3. supervision ------------------------------------------------------------ */

START_TEST(a_permanent_server_comes_back_in_a_fresh_worker)
{
    START(C, "counter", "c", mp("42"));
    uint64_t id =
        START_OPTS(C, "counter", "pc", mp("5"), mp("{'isolate': true, 'restart': 'permanent'}"));
    ck_assert_mp_eq(CALL(C, "pc", mp("['add', 10]")), "15");
    pid_t pid = worker_of(C, "pc");
    uint64_t ref = monitor(C, "pc");
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    down_is(C, ref, id, "['crashed', 'SIGKILL']");
    uint64_t again = 0;
    ck_assert(WAIT_UNTIL(3000, (again = whereis(C, "pc")) != 0 && again != id));
    pid_t fresh = worker_of(C, "pc");
    ck_assert_int_ne(fresh, pid);
    ck_assert(pid_gone(pid));
    ck_assert_mp_eq(CALL(C, "pc", mp("'get'")), "5"); /* started again from its args */
    const msgpack_object *i = info(C, "pc");
    ck_assert_mp_eq(mp_get(i, "restarts"), "1");
    ck_assert_mp_eq(mp_get(i, "restart"), "'permanent'");
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "42");
    const char *line = LOG_LINE(D, 2000, WORKER_DEATH);
    ck_assert_msg(strstr(line, "killed by SIGKILL") &&
                      strstr(line, fmt("its servers end: %llu (pc)", (unsigned long long)id)),
                  "line: %s", line);
}
END_TEST

START_TEST(a_crash_loop_is_given_up_and_the_daemon_serves_on)
{
    START(C, "counter", "c", mp("42"));
    START_OPTS(C, "probe", "loop", NULL, mp("{'isolate': true, 'restart': 'permanent'}"));
    gsc_reply *r;
    int crashes = 0;
    uint64_t last = 0, now = 0;
    while (crashes < 10) {
        /* the next incarnation, or none for a while: given up */
        if (!WAIT_UNTIL(1000, (now = whereis(C, "loop")) != 0 && now != last))
            break;
        last = now;
        ck_assert_mp_eq(ERR(gsc_call(C, "loop", mp("['crash', 'segv']"), 5000, &r), &r, "exit"),
                        "['crashed', 'SIGSEGV']");
        crashes++;
    }
    ck_assert_int_eq(crashes, 4); /* the default intensity: 3 restarts in 5000 ms */
    ck_assert_uint_eq(whereis(C, "loop"), 0);
    LOG_LINE(D, 2000, "given up after 3 restarts");
    ck_assert_int_eq(log_count(D, WORKER_DEATH), 4);
    pings(C);
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "42");
    start_isolated(C, "counter", "ic", mp("42"), NULL); /* workers still start */
    ck_assert_mp_eq(CALL(C, "ic", mp("'get'")), "42");
}
END_TEST

/* ---- 4. a blocking callback ---------------------------------------------------- */

START_TEST(a_blocking_callback_delays_only_its_worker)
{
    bystanders(C);
    start_isolated(C, "probe", "b", NULL, NULL);
    struct raw *w = RAW_CONNECT(D);
    RAW_REQUEST(w, 1, "call", mp("['b', ['block', 2000], 5000]"));
    sleep_ms(50); /* it is blocking now */
    int64_t t0 = now_ms();
    for (int i = 0; i < 20; i++) {
        const char *servers[] = {"c", "ic"};
        for (int k = 0; k < 2; k++) {
            int64_t t = now_ms();
            ck_assert_mp_eq(OK_CALL_T(C, servers[k], mp("'get'"), 1000), "42");
            ck_assert_msg(now_ms() - t < 100, "call %d to %s took %lld ms", i, servers[k],
                          (long long)(now_ms() - t));
        }
    }
    pings(C);
    ck_assert_ptr_null(raw_recv(w, 0)); /* all of that while b blocked */
    ck_assert_int_lt(now_ms() - t0, 1900);
    gsc_reply *r;
    int64_t t = now_ms();
    ERR(gsc_call(C, "b", mp("['echo', 1]"), 200, &r), &r, "timeout");
    int64_t took = now_ms() - t;
    ck_assert_msg(took >= 200 && took <= 600, "timeout after %lld ms", (long long)took);
    ck_assert_mp_eq(RAW_RECV(w, 3000), "[1, 1, nil, 'ok']");
    raw_close(&w);
    ck_assert_mp_eq(CALL(C, "b", mp("['echo', 2]")), "2"); /* it serves on */
}
END_TEST

/* ---- 5. a stop that outruns its timeout ------------------------------------------- */

START_TEST(terminate_outrunning_the_stop_kills_the_worker)
{
    bystanders(C);
    uint64_t id = start_isolated(C, "rogue", "x", mp("{'terminate_ms': 3000}"), NULL);
    pid_t pid = worker_of(C, "x");
    uint64_t ref = monitor(C, "x");
    gsc_reply *r;
    int64_t t0 = now_ms();
    int st = gsc_stop(C, "x", NULL, 300, &r);
    int64_t took = now_ms() - t0;
    ERR(st, &r, "timeout");
    ck_assert_msg(took >= 250 && took < 1000, "stop answered after %lld ms", (long long)took);
    ck_assert(WAIT_UNTIL(1000, pid_gone(pid)));
    down_is(C, ref, id, "'killed'");
    ck_assert_uint_eq(whereis(C, "x"), 0);
    pings(C);
    bystanders_unharmed(C);
    const char *line = LOG_LINE(D, 2000, WORKER_DEATH);
    ck_assert_msg(strstr(line, "killed: terminate of server") && strstr(line, "outran its timeout"),
                  "line: %s", line);
    START(C, "rogue", "x", NULL); /* the name is free */
}
END_TEST

START_TEST(terminate_outrunning_the_shutdown_timeout_kills_the_worker)
{
    /* A stop with no timeout: limits.shutdown_timeout_ms bounds terminate. */
    const char *root = getenv("GSD_TEST_ROOT");
    char dir[256], conf[300];
    snprintf(dir, sizeof dir, "%s/iso-XXXXXX", root && *root ? root : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(conf, sizeof conf, "%s/gsd.conf", dir);
    FILE *f = fopen(conf, "w");
    ck_assert_ptr_nonnull(f);
    fputs("limits = { shutdown_timeout_ms = 300; };\n", f);
    fclose(f);
    struct gsd *d = gsd_start_with((const char *const[]){"-c", conf, NULL});
    gsc *c = CLIENT(d);
    uint64_t id = start_isolated(c, "rogue", "x", mp("{'terminate_ms': 3000}"), NULL);
    pid_t pid = worker_of(c, "x");
    uint64_t ref = monitor(c, "x");
    gsc_reply *r = NULL;
    int64_t t0 = now_ms();
    /* nil timeout: as long as terminate takes; bounded here (GSC_BROKEN after 3 s) */
    int st = gsc_request(c, "stop", mp("['x', nil, nil]"), 3000, &r);
    int64_t took = now_ms() - t0;
    ck_assert_msg(st == GSC_OK || st == GSC_ERROR, "stop with a nil timeout: no answer within 3 s");
    ck_assert_msg(took >= 250 && took < 1500, "stop answered after %lld ms", (long long)took);
    gsc_reply_destroy(&r);
    ck_assert(WAIT_UNTIL(1000, pid_gone(pid)));
    down_is(c, ref, id, "'killed'");
    pings(c);
    /* And at SIGTERM: the daemon does not wait out a slow terminate. */
    start_isolated(c, "rogue", "y", mp("{'terminate_ms': 20000}"), NULL);
    pid_t slow = worker_of(c, "y");
    client_close(&c);
    t0 = now_ms();
    ck_assert_int_eq(gsd_wait_exit(d, SIGTERM, 5000), 0);
    ck_assert_int_lt(now_ms() - t0, 3000);
    ck_assert(WAIT_UNTIL(1000, pid_gone(slow)));
    gsd_stop(&d);
    unlink(conf);
    rmdir(dir);
}
END_TEST

/* A reload while a server of the module runs terminate in a shared
 * worker: the ended one takes no part (it is not switched under its
 * worker's feet), and its group mate moves, in the same worker. */
START_TEST(a_reload_during_a_terminate_leaves_the_worker_whole)
{
    start_isolated(C, "rogue", "r1", mp("{'terminate_ms': 1000}"), "'g'");
    start_isolated(C, "rogue", "r2", NULL, "'g'");
    pid_t pid = worker_of(C, "r2");
    struct raw *a = RAW_CONNECT(D);
    RAW_REQUEST(a, 1, "stop", mp("['r1', nil, 5000]"));
    sleep_ms(100); /* r1 is in terminate now */
    gsc_reply *r;
    const msgpack_object *m = OK(gsc_reload(C, "rogue", &r), &r);
    ck_assert_mp_eq(mp_get(m, "upgraded"), "1");
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 1, nil, nil]");
    ck_assert_mp_eq(CALL(C, "r2", mp("'x'")), "'ok'");
    ck_assert_int_eq(worker_of(C, "r2"), pid);
    ck_assert_int_eq(log_count(D, "killed by") + log_count(D, "exited with status"), 0);
    raw_close(&a);
}
END_TEST

START_TEST(a_clean_stop_runs_terminate_in_the_worker)
{
    const char *log = gsd_path(D, "terminate.log");
    start_isolated(C, "probe", "p", mp("{'terminate_log': %s}", log), NULL);
    pid_t pid = worker_of(C, "p");
    gsc_reply *r;
    OK(gsc_stop(C, "p", mp("['shutdown', 'bye']"), 2000, &r), &r);
    ck_assert_str_eq(json_lines(log), "[\"shutdown\",\"bye\"]\n");
    ck_assert(WAIT_UNTIL(2000, pid_gone(pid))); /* its one server gone, it ends */
    ck_assert_int_eq(log_count(D, WORKER_DEATH), 0);
}
END_TEST

/* ---- 6. everything a module does ------------------------------------------------- */

START_TEST(info_shows_the_worker)
{
    START(C, "counter", "c", mp("42"));
    start_isolated(C, "counter", "ic", mp("42"), NULL);
    const msgpack_object *i = info(C, "c");
    ck_assert_mp_eq(mp_get(i, "isolated"), "false");
    ck_assert_mp_eq(mp_get(i, "worker"), "nil");
    pid_t pid = worker_of(C, "ic");
    ck_assert_int_eq(kill(pid, 0), 0);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    const char *cmd = file_read(path);
    ck_assert_ptr_nonnull(cmd);
    ck_assert_str_eq(cmd, "gsd-worker"); /* argv[0], up to its NUL */
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    const char *stat = file_read(path);
    ck_assert_ptr_nonnull(stat);
    int ppid = -1;
    ck_assert_int_eq(sscanf(strrchr(stat, ')') + 1, " %*c %d", &ppid), 1);
    ck_assert_int_eq(ppid, D->pid);
}
END_TEST

START_TEST(calls_casts_sends_and_timers_work_isolated)
{
    START(C, "counter", "c", mp("42"));
    start_isolated(C, "probe", "p", NULL, NULL);
    gsc_reply *r;
    ck_assert_mp_eq(CALL(C, "p", mp("['echo', {'a': [1, 'x', nil, b'\\x00']}]")),
                    "{'a': [1, 'x', nil, b'\\x00']}");
    OK(gsc_send(C, "p", mp("['hello', 1]"), &r), &r);
    OK(gsc_cast(C, "p", mp("'whatever'"), &r), &r); /* logged and dropped */
    ck_assert_mp_eq(CALL(C, "p", mp("'infos'")), "[['hello', 1]]");
    LOG_LINE(D, 2000, "(p, probe): unknown cast ignored");
    /* A reply deferred to a timer; the probe serves others meanwhile. */
    struct raw *w = RAW_CONNECT(D);
    RAW_REQUEST(w, 7, "call", mp("['p', ['reply_after', 300, 'late'], 5000]"));
    sleep_ms(20);
    int64_t t0 = now_ms();
    ck_assert_mp_eq(CALL(C, "p", mp("['echo', 2]")), "2");
    ck_assert_int_lt(now_ms() - t0, 200);
    ck_assert_ptr_null(raw_recv(w, 0));
    ck_assert_mp_eq(RAW_RECV(w, 2000), "[1, 7, nil, 'late']");
    ck_assert_int_ge(now_ms() - t0, 250);
    raw_close(&w);
    /* A stop on request, with its reply. */
    uint64_t ref = monitor(C, "p");
    uint64_t id = whereis(C, "p");
    ck_assert_mp_eq(CALL(C, "p", mp("['stop', 'done', 'bye']")), "'bye'");
    down_is(C, ref, id, "'done'");
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "42");
}
END_TEST

START_TEST(monitors_from_a_worker_see_downs)
{
    START(C, "counter", "t", mp("1"));
    start_isolated(C, "probe", "victim", NULL, NULL);
    start_isolated(C, "probe", "p", NULL, NULL);
    uint64_t t = whereis(C, "t"), v = whereis(C, "victim");
    uint64_t r1 = ref_of(CALL(C, "p", mp("['monitor', 't']")));
    uint64_t r2 = ref_of(CALL(C, "p", mp("['monitor', 'victim']")));
    uint64_t r3 = ref_of(CALL(C, "p", mp("['monitor', 'nobody']")));
    ck_assert_uint_ne(r1, r2);
    gsc_reply *r;
    OK(gsc_stop(C, "t", NULL, 2000, &r), &r);
    ERR(gsc_call(C, "victim", mp("['crash', 'abort']"), 5000, &r), &r, "exit");
    const char *want = fmt("[['down', %llu, 0, 'noproc'], ['down', %llu, %llu, 'normal'], "
                           "['down', %llu, %llu, ['crashed', 'SIGABRT']]]",
                           (unsigned long long)r3, (unsigned long long)r1, (unsigned long long)t,
                           (unsigned long long)r2, (unsigned long long)v);
    /* The noproc down's id: whatever the daemon gives for a name that is no one. */
    const msgpack_object *infos = NULL;
    WAIT_UNTIL(2000, (infos = CALL(C, "p", mp("'infos'")))->via.array.size == 3);
    ck_assert_msg(infos->via.array.size == 3, "infos %s, want %s", mp_str(infos), want);
    ck_assert_mp_eq(mp_item(infos, 1), "['down', %u, %u, 'normal']", r1, t);
    ck_assert_mp_eq(mp_item(infos, 2), "['down', %u, %u, ['crashed', 'SIGABRT']]", r2, v);
    const msgpack_object *first = mp_item(infos, 0);
    ck_assert_mp_eq(mp_item(first, 0), "'down'");
    ck_assert_mp_eq(mp_item(first, 1), "%u", r3);
    ck_assert_mp_eq(mp_item(first, 3), "'noproc'");
}
END_TEST

START_TEST(calls_from_a_worker_reach_every_server)
{
    START(C, "counter", "c", mp("42"));
    start_isolated(C, "counter", "ic", mp("43"), NULL);
    start_isolated(C, "counter", "gc", mp("44"), "'g'");
    start_isolated(C, "probe", "p", NULL, "'g'");
    start_isolated(C, "probe", "q", NULL, NULL);
    ck_assert_mp_eq(CALL(C, "p", mp("['call', 'c', 'get', 1000]")), "['ok', 42]");
    ck_assert_mp_eq(CALL(C, "p", mp("['call', 'ic', 'get', 1000]")), "['ok', 43]");
    ck_assert_mp_eq(CALL(C, "p", mp("['call', 'gc', 'get', 1000]")),
                    "['ok', 44]"); /* same worker */
    ck_assert_mp_eq(CALL(C, "p", mp("['call', %u, 'get', 1000]", whereis(C, "ic"))), "['ok', 43]");
    ck_assert_mp_eq(CALL(C, "p", mp("['call', 'nobody', 'get', 1000]")), "['error', 'noproc']");
    ck_assert_mp_eq(CALL(C, "p", mp("['call', 'q', ['reply_after', 2000, 1], 50]")),
                    "['error', 'timeout']");
    ck_assert_mp_eq(CALL(C, "p", mp("['call', 'q', ['stop_noreply', 'boom'], nil]")),
                    "['error', 'boom']");
    ck_assert_mp_eq(CALL(C, "p", mp("'infos'")), "[]"); /* the replies are not infos */
    /* A call chain through three workers and the daemon. */
    start_isolated(C, "probe", "r", NULL, NULL);
    ck_assert_mp_eq(CALL(C, "r", mp("['call', 'p', ['call', 'ic', ['add', 1], 1000], 2000]")),
                    "['ok', ['ok', 44]]");
}
END_TEST

/* The protocol: "A server whose callback calls itself (by name or id)
 * gets that [calling_self] at once, as GenServer does, never after the
 * call's timeout." */
START_TEST(a_call_to_itself_answers_calling_self_at_once)
{
    uint64_t id = start_isolated(C, "probe", "p", NULL, NULL);
    int64_t t0 = now_ms();
    const msgpack_object *by_name = CALL(C, "p", mp("['call', 'p', ['echo', 1], 3000]"));
    ck_assert_int_lt(now_ms() - t0, 500); /* not a hang, not the call's timeout */
    t0 = now_ms();
    const msgpack_object *by_id = CALL(C, "p", mp("['call', %u, ['echo', 1], 3000]", id));
    ck_assert_int_lt(now_ms() - t0, 500);
    ck_assert_msg(mp_eq(by_name, "['error', 'calling_self']"), "by name: %s", mp_str(by_name));
    ck_assert_msg(mp_eq(by_id, "['error', 'calling_self']"), "by id: %s", mp_str(by_id));
}
END_TEST

START_TEST(get_state_is_the_modules_format_state)
{
    START(C, "counter", "c", mp("42"));
    start_isolated(C, "counter", "ic", mp("42"), NULL);
    gsc_reply *r1, *r2;
    const msgpack_object *in = OK(gsc_get_state(C, "c", &r1), &r1);
    const msgpack_object *out = OK(gsc_get_state(C, "ic", &r2), &r2);
    ck_assert_msg(mp_eq(out, "%v", in), "isolated %s, in the daemon %s", mp_str(out), mp_str(in));
    ck_assert_str_ne(mp_str(out), "nil");
}
END_TEST

START_TEST(return_forms_work_isolated)
{
    uint64_t id = start_isolated(C, "forms", "f", NULL, NULL);
    ck_assert_mp_eq(CALL(C, "f", mp("['reply', [1, 2]]")), "[1, 2]");
    ck_assert_mp_eq(CALL(C, "f", mp("'self'")), "[%u, 'f']", id);
    /* hibernate: info says so until the next message */
    ck_assert_mp_eq(CALL(C, "f", mp("['reply_hibernate', 'z']")), "'z'");
    ck_assert(WAIT_UNTIL(1000, mp_eq(mp_get(info(C, "f"), "status"), "'hibernating'")));
    ck_assert_mp_eq(CALL(C, "f", mp("['reply', 3]")), "3");
    ck_assert_mp_eq(mp_get(info(C, "f"), "status"), "'running'");
    /* a reply with a timeout: the timeout comes after the quiet */
    ck_assert_mp_eq(CALL(C, "f", mp("['reply_timeout', 'v', 50]")), "'v'");
    sleep_ms(200); /* quiet: a call meanwhile would put the timeout off */
    ck_assert_mp_eq(CALL(C, "f", mp("'timeouts'")), "1");
    /* a kept caller answered later with gs_reply_to */
    struct raw *w = RAW_CONNECT(D);
    RAW_REQUEST(w, 1, "call", mp("['f', 'noreply', 5000]"));
    sleep_ms(50);
    ck_assert_ptr_null(raw_recv(w, 0));
    ck_assert_mp_eq(CALL(C, "f", mp("['release', 'r']")), "0");
    ck_assert_mp_eq(RAW_RECV(w, 2000), "[1, 1, nil, 'r']");
    raw_close(&w);
    /* a timer's message lands in handle_info */
    CALL(C, "f", mp("['timer', 30, 'tick']"));
    ck_assert(WAIT_UNTIL(2000, mp_eq(CALL(C, "f", mp("'infos'")), "['tick']")));
    /* a cast and a send on, from the worker */
    START(C, "counter", "c", mp("0"));
    ck_assert_mp_eq(CALL(C, "f", mp("['cast_to', 'c', 'increment']")), "0");
    ck_assert(WAIT_UNTIL(1000, mp_eq(CALL(C, "c", mp("'get'")), "1")));
    /* stop with a reply: the caller hears it, then the monitor the down */
    uint64_t ref = monitor(C, "f");
    ck_assert_mp_eq(CALL(C, "f", mp("['stop_reply', 'normal', 'bye']")), "'bye'");
    down_is(C, ref, id, "'normal'");
    /* a bad return is a stop with bad_return_value, as in the daemon */
    id = start_isolated(C, "forms", "f", NULL, NULL);
    ref = monitor(C, "f");
    gsc_reply *r;
    ERR(gsc_call(C, "f", mp("'bad'"), 2000, &r), &r, "exit");
    down_is(C, ref, id, "'bad_return_value'");
    ck_assert_int_eq(log_count(D, WORKER_DEATH), 0);
}
END_TEST

START_TEST(init_stop_and_ignore_answer_as_in_the_daemon)
{
    gsc_reply *r;
    ck_assert_mp_eq(ERR(gsc_start(C, "probe", "p", mp("{'init': 'stop', 'reason': 'nope'}"),
                                  mp("{'isolate': true}"), &r),
                        &r, "init_stop"),
                    "'nope'");
    ERR(gsc_start(C, "probe", "p", mp("{'init': 'ignore'}"), mp("{'isolate': true}"), &r), &r,
        "ignore");
    ck_assert_uint_eq(whereis(C, "p"), 0);
    start_isolated(C, "probe", "p", NULL, NULL);
    ck_assert_mp_eq(CALL(C, "p", mp("['echo', 1]")), "1");
    ck_assert_int_eq(log_count(D, WORKER_DEATH), 0);
}
END_TEST

/* ---- 7-8. configuration -------------------------------------------------------- */

static char conf_dir[256], conf[300];

static struct gsd *start_conf(const char *text)
{
    const char *root = getenv("GSD_TEST_ROOT");
    snprintf(conf_dir, sizeof conf_dir, "%s/iso-XXXXXX", root && *root ? root : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(conf_dir));
    snprintf(conf, sizeof conf, "%s/gsd.conf", conf_dir);
    FILE *f = fopen(conf, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return gsd_start_with((const char *const[]){"-c", conf, NULL});
}

static void conf_done(struct gsd **d, gsc **c)
{
    client_close(c);
    ck_assert_int_eq(gsd_stop(d), 0);
    unlink(conf);
    rmdir(conf_dir);
}

/* A server in the daemon that ends while a reload of its module waits for
 * a worker (a SIGHUP no longer declares it): the state its terminate freed
 * is not freed again (stack's terminate frees it; stack has no free_state). */
START_TEST(a_server_ending_during_a_reload_is_left_out)
{
    struct gsd *d = start_conf("servers = ( { name = \"s2\"; module = \"stack\"; } );\n");
    gsc *c = CLIENT(d);
    start_isolated(c, "stack", "s1", NULL, "'g'");
    start_isolated(c, "probe", "p", NULL, "'g'");
    struct raw *a = RAW_CONNECT(d);
    RAW_REQUEST(a, 1, "call", mp("['p', ['block', 1000], 5000]"));
    RAW_REQUEST(a, 2, "reload", mp("['stack']")); /* waits for the worker, busy in that call */
    sleep_ms(200);
    FILE *f = fopen(conf, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f); /* s2 is no longer declared */
    kill(d->pid, SIGHUP);
    for (int i = 0; i < 2; i++) {
        const msgpack_object *m = RAW_RECV(a, 5000);
        ck_assert_msg(mp_eq(mp_item(m, 2), "nil"), "the call or the reload: %s", mp_str(m));
    }
    ck_assert(WAIT_UNTIL(2000, whereis(c, "s2") == 0));
    pings(c);
    ck_assert_mp_eq(CALL(c, "s1", mp("'size'")), "0");
    raw_close(&a);
    conf_done(&d, &c);
}
END_TEST

START_TEST(a_worker_over_its_memory_limit_is_killed)
{
    struct gsd *d = start_conf("workers = { memory = 67108864; };\n"); /* 64 MiB */
    gsc *c = CLIENT(d);
    START(c, "counter", "c", mp("42"));
    start_isolated(c, "counter", "ic", mp("42"), NULL);
    uint64_t id = start_isolated(c, "probe", "hog", NULL, NULL);
    pid_t pid = worker_of(c, "hog");
    uint64_t ref = monitor(c, "hog");
    gsc_reply *r = NULL;
    int64_t total = 0, step = 16 << 20;
    int st = GSC_OK;
    while (total < (200 << 20) &&
           (st = gsc_call(c, "hog", mp("['alloc', %d]", (int)step), 5000, &r)) == GSC_OK) {
        total = MP_INT(&r->result);
        gsc_reply_destroy(&r);
        sleep_ms(150); /* the limit is checked every 100 ms */
    }
    ck_assert_msg(total < (200 << 20), "hog holds %lld bytes, not killed", (long long)total);
    ck_assert_int_ge(total, 48 << 20);
    /* killed during a call (its caller hears why) or between two (gone) */
    ck_assert_int_eq(st, GSC_ERROR);
    if (strcmp(r->code, "noproc") == 0)
        gsc_reply_destroy(&r);
    else
        ck_assert_mp_eq(ERR(st, &r, "exit"), "'killed'");
    down_is(c, ref, id, "'killed'");
    ck_assert(WAIT_UNTIL(1000, pid_gone(pid)));
    const char *line = LOG_LINE(d, 2000, WORKER_DEATH);
    ck_assert_msg(strstr(line, "memory") && strstr(line, "over the limit") &&
                      strstr(line, fmt("its servers end: %llu (hog)", (unsigned long long)id)),
                  "line: %s", line);
    pings(c);
    bystanders_unharmed(c);
    conf_done(&d, &c);
}
END_TEST

START_TEST(a_declared_isolated_server_crashing_in_init_is_given_up)
{
    struct gsd *d = start_conf(
        "servers = (\n"
        "  { name = \"c\"; module = \"counter\"; args = 42; },\n"
        "  { name = \"boom\"; module = \"probe\"; args_json = \"{\\\"init\\\":\\\"crash\\\"}\";\n"
        "    restart = \"permanent\"; intensity = 2; period_ms = 1000; isolate = true; }\n"
        ");\n");
    gsc *c = CLIENT(d);
    pings(c);
    LOG_LINE(d, 5000,
             "server boom (probe): more than 2 restarts in 1000 ms; given up after 2 restarts");
    ck_assert_uint_eq(whereis(c, "boom"), 0);
    ck_assert_int_eq(log_count(d, WORKER_DEATH), 3); /* the first start and 2 restarts */
    ck_assert_int_eq(log_count(d, "killed by SIGSEGV in init of server "), 3);
    ck_assert_int_eq(log_count(d, "(boom, probe), handling"), 3);
    LOG_LINE(d, 2000, "every declared server has started");
    pings(c);
    ck_assert_mp_eq(CALL(c, "c", mp("'get'")), "42");
    sleep_ms(300);
    ck_assert_uint_eq(whereis(c, "boom"), 0); /* it stays given up */
    conf_done(&d, &c);
}
END_TEST

START_TEST(declared_servers_are_isolated_as_configured)
{
    struct gsd *d =
        start_conf("isolate = { probe = true; };\n"
                   "servers = (\n"
                   "  { name = \"c\"; module = \"counter\"; args = 42; },\n"
                   "  { name = \"own\"; module = \"counter\"; args = 1; isolate = true; },\n"
                   "  { name = \"g1\"; module = \"counter\"; args = 2; isolate = \"g\"; },\n"
                   "  { name = \"g2\"; module = \"stack\"; isolate = \"g\"; },\n"
                   "  { name = \"p\"; module = \"probe\"; }\n"
                   ");\n");
    gsc *c = CLIENT(d);
    ck_assert(WAIT_UNTIL(3000, whereis(c, "p") != 0));
    ck_assert_mp_eq(mp_get(info(c, "c"), "isolated"), "false");
    pid_t own = worker_of(c, "own"), g1 = worker_of(c, "g1"), g2 = worker_of(c, "g2"),
          p = worker_of(c, "p"); /* the module's default */
    ck_assert_int_eq(g1, g2);
    ck_assert_int_ne(own, g1);
    ck_assert_int_ne(p, g1);
    ck_assert_int_ne(p, own);
    ck_assert_mp_eq(CALL(c, "own", mp("'get'")), "1");
    ck_assert_mp_eq(CALL(c, "g1", mp("'get'")), "2");
    ck_assert_mp_eq(CALL(c, "p", mp("['echo', 5]")), "5");
    /* a declared isolated server is supervised like any other */
    uint64_t was = whereis(c, "own");
    ck_assert_int_eq(kill(own, SIGKILL), 0);
    uint64_t now = 0;
    ck_assert(WAIT_UNTIL(3000, (now = whereis(c, "own")) != 0 && now != was));
    ck_assert_int_ne(worker_of(c, "own"), own);
    ck_assert_mp_eq(CALL(c, "own", mp("'get'")), "1");
    ck_assert_mp_eq(CALL(c, "c", mp("'get'")), "42");
    conf_done(&d, &c);
}
END_TEST

static Suite *isolate_suite(void)
{
    Suite *s = suite_create("isolate");
    TCase *tc = tcase_create("crashes");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, a_crash_ends_only_its_server, 0, 9);
    tcase_add_test(tc, a_death_is_told_at_once_without_other_traffic);
    tcase_add_test(tc, callers_queued_behind_a_crash_hear_it);
    tcase_add_test(tc, a_group_shares_a_worker_and_its_crash);
    tcase_add_test(tc, a_group_worker_lasts_while_it_hosts_a_server);
    tcase_add_test(tc, a_permanent_server_comes_back_in_a_fresh_worker);
    tcase_add_test(tc, a_crash_loop_is_given_up_and_the_daemon_serves_on);
    suite_add_tcase(s, tc);
    tc = tcase_create("blocking");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, a_blocking_callback_delays_only_its_worker);
    tcase_add_test(tc, terminate_outrunning_the_stop_kills_the_worker);
    tcase_add_test(tc, a_clean_stop_runs_terminate_in_the_worker);
    tcase_add_test(tc, a_reload_during_a_terminate_leaves_the_worker_whole);
    tcase_add_test(tc, a_server_ending_during_a_reload_is_left_out);
    suite_add_tcase(s, tc);
    tc = tcase_create("shutdown");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, terminate_outrunning_the_shutdown_timeout_kills_the_worker);
    suite_add_tcase(s, tc);
    tc = tcase_create("module api");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, info_shows_the_worker);
    tcase_add_test(tc, calls_casts_sends_and_timers_work_isolated);
    tcase_add_test(tc, monitors_from_a_worker_see_downs);
    tcase_add_test(tc, calls_from_a_worker_reach_every_server);
    tcase_add_test(tc, a_call_to_itself_answers_calling_self_at_once);
    tcase_add_test(tc, get_state_is_the_modules_format_state);
    tcase_add_test(tc, return_forms_work_isolated);
    tcase_add_test(tc, init_stop_and_ignore_answer_as_in_the_daemon);
    suite_add_tcase(s, tc);
    tc = tcase_create("configuration");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, a_worker_over_its_memory_limit_is_killed);
    tcase_add_test(tc, a_declared_isolated_server_crashing_in_init_is_given_up);
    tcase_add_test(tc, declared_servers_are_isolated_as_configured);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    let_workers_crash();
    return run_suite(isolate_suite());
}
