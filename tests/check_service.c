/*
 * check_service.c — gsd as a service: the configuration file (errors with
 * file and line, servers declared at boot, SIGHUP), supervision (restart
 * policies, intensity, backoff, names kept) and authorization (admin
 * peers, the socket's mode and group, module file permissions, a live
 * socket kept). Every test starts its own daemons and cleans them up.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static struct gsd *D;          /* the test's daemon, if it started one */
static gsc *C;                 /* a client of it */
static char dir[PATH_MAX / 2]; /* the test's own files: configurations, copies */
static char conf[PATH_MAX];    /* DIR/gsd.conf */

static void setup(void)
{
    const char *root = getenv("GSD_TEST_ROOT");
    snprintf(dir, sizeof dir, "%s/svc-XXXXXX", root && *root ? root : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(conf, sizeof conf, "%s/gsd.conf", dir);
}

static void teardown(void)
{
    client_close(&C);
    if (D)
        ck_assert_int_eq(gsd_stop(&D), 0);
}

/* ---- helpers ------------------------------------------------------------------ */

/* Writes the configuration file (printf-style). */
__attribute__((format(printf, 1, 2))) static void write_conf(const char *fmt, ...)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.new", conf);
    FILE *f = fopen(tmp, "w");
    ck_assert_ptr_nonnull(f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
    ck_assert_int_eq(rename(tmp, conf), 0); /* a reload never reads half a file */
}

/* Starts the daemon on the configuration file, and a client. */
static void start_conf(void)
{
    D = gsd_start_with((const char *const[]){"-c", conf, NULL});
    C = CLIENT(D);
}

/* A path in the test's directory (one static buffer per call site). */
static const char *in_dir(const char *name)
{
    static char p[8][PATH_MAX + 64];
    static int i;
    i = (i + 1) % 8;
    snprintf(p[i], sizeof p[i], "%s/%s", dir, name);
    return p[i];
}

/* Starts any program, stdout and stderr collected by gsctl_wait. */
static struct proc *spawn(const char *const *argv)
{
    int out[2], err[2];
    ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(err, O_CLOEXEC), 0);
    pid_t parent = getpid(), pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int null = open("/dev/null", O_RDONLY);
        dup2(null, 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    struct proc *p = malloc(sizeof *p);
    *p = (struct proc){pid, out[0], err[0]};
    return p;
}

/* Runs gsd with these arguments until it exits (10 s at most); its status. */
static int run_gsd(const char *const *args, char **err)
{
    char bin[PATH_MAX];
    const char *argv[16] = {bin};
    snprintf(bin, sizeof bin, "%s/gsd", gsd_build());
    for (int i = 0; args[i] && i < 14; i++)
        argv[i + 1] = args[i];
    struct proc *p = spawn(argv);
    return gsctl_wait(&p, 10000, NULL, err);
}

static const msgpack_object *whereis(const char *name)
{
    gsc_reply *r;
    return OK(gsc_whereis(C, name, &r), &r);
}

static bool registered(const char *name)
{
    return whereis(name)->type != MSGPACK_OBJECT_NIL;
}

static uint64_t id_of(const char *name)
{
    return (uint64_t)MP_INT(whereis(name));
}

static const msgpack_object *info(const char *server)
{
    gsc_reply *r;
    return OK(gsc_info(C, server, &r), &r);
}

static void cast(const char *server, const msgpack_object *msg)
{
    gsc_reply *r;
    OK(gsc_cast(C, server, msg, &r), &r);
}

/* True once the daemon's log holds text. */
static bool logged(const char *text)
{
    const char *log = file_read(D->log);
    return log && strstr(log, text);
}

/* A name comes back under a new id (a restart); the new id. */
static uint64_t restarted(const char *name, uint64_t old_id)
{
    const msgpack_object *id = NULL; /* one whereis per look: the name may be free between */
    ck_assert_msg(WAIT_UNTIL(5000, (id = whereis(name))->type != MSGPACK_OBJECT_NIL &&
                                       (uint64_t)MP_INT(id) != old_id),
                  "%s was not restarted", name);
    return (uint64_t)MP_INT(id);
}

/* ---- the configuration file ---------------------------------------------------- */

START_TEST(missing_c_file_is_an_error)
{
    char *err;
    ck_assert_int_eq(run_gsd((const char *const[]){"-c", in_dir("absent.conf"), NULL}, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "absent.conf: cannot read"));
}
END_TEST

START_TEST(syntax_error_names_file_and_line)
{
    write_conf("log_level = \"info\";\n\nservers = ( { name = \"a\" module = } );\n");
    char *err;
    ck_assert_int_eq(run_gsd((const char *const[]){"-s", in_dir("s.sock"), "-c", conf, NULL}, &err),
                     2);
    char where[PATH_MAX + 16];
    snprintf(where, sizeof where, "%s:3: ", conf);
    ck_assert_msg(strstr(err, where), "no %s in: %s", where, err);
    ck_assert_ptr_nonnull(strstr(err, "refusing to start"));
    ck_assert_int_ne(access(in_dir("s.sock"), F_OK), 0); /* never listened */
}
END_TEST

START_TEST(every_bad_line_is_reported)
{
    write_conf("log_level = \"loud\";\n"                      /* 1 */
               "colour = 3;\n"                                /* 2 */
               "limits = { connections = -1; };\n"            /* 3 */
               "servers = (\n"                                /* 4 */
               "  { name = \"a\"; module = \"counter\"; },\n" /* 5 */
               "  { name = \"a\"; module = \"../evil\"; },\n" /* 6 */
               "  { name = \"b\"; module = \"probe\";\n"      /* 7 */
               "    restart = \"sometimes\"; }\n"             /* 8 */
               ");\n"
               "socket = { mode = \"0777x\"; group = \"no-such-group-here\"; };\n"); /* 10 */
    char *err;
    ck_assert_int_eq(run_gsd((const char *const[]){"-c", conf, NULL}, &err), 2);
    const char *want[] = {":1: log_level: must be",     ":2: colour: unknown key",
                          ":3: connections: must be",   ":6: name: \"a\" is declared twice",
                          ":6: module: must be a name", ":8: restart: must be \"permanent\"",
                          ":10: mode: must be octal",   ":10: group: no group named"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(err, want[i]), "no \"%s\" in:\n%s", want[i], err);
}
END_TEST

START_TEST(bad_args_json_is_refused)
{
    write_conf("servers = ( { name = \"a\"; module = \"counter\"; args_json = \"{1\"; } );\n");
    char *err;
    ck_assert_int_eq(run_gsd((const char *const[]){"-c", conf, NULL}, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, ":1: args_json: not JSON"));
}
END_TEST

START_TEST(declared_servers_start_in_file_order_and_stop_in_reverse)
{
    write_conf(
        "servers = (\n"
        "  { name = \"first\"; module = \"probe\"; args = { terminate_log = \"%1$s\"; }; },\n"
        "  { name = \"second\"; module = \"counter\"; args = 7; },\n"
        "  { name = \"third\"; module = \"probe\";\n"
        "    args_json = \"{\\\"terminate_log\\\": \\\"%1$s\\\"}\"; },\n"
        "  { name = \"fourth\"; module = \"stack\"; args = ( 1, \"two\", { k = true; } ); }\n"
        ");\n",
        in_dir("terminate.log"));
    start_conf();
    ck_assert(WAIT_UNTIL(5000, registered("fourth")));
    ck_assert_uint_lt(id_of("first"), id_of("second"));
    ck_assert_uint_lt(id_of("second"), id_of("third"));
    ck_assert_uint_lt(id_of("third"), id_of("fourth"));
    ck_assert_mp_eq(CALL(C, "second", mp("'get'")), "7"); /* the file's own values */
    ck_assert_mp_eq(CALL(C, "fourth", mp("'pop'")), "1");
    ck_assert_mp_eq(CALL(C, "fourth", mp("'pop'")), "'two'");
    ck_assert_mp_eq(CALL(C, "fourth", mp("'pop'")), "{'k': true}");
    ck_assert(WAIT_UNTIL(5000, logged("every declared server has started")));
    /* Shutdown: the last declared stops first. */
    client_close(&C);
    ck_assert_int_eq(gsd_wait_exit(D, SIGTERM, 5000), 0);
    ck_assert_str_eq(json_lines(in_dir("terminate.log")), "\"shutdown\"\n\"shutdown\"\n");
    const char *log = file_read(D->log);
    const char *order[] = {"(fourth, stack) ended", "(third, probe) ended",
                           "(second, counter) ended", "(first, probe) ended"};
    for (int i = 0; i < 4; i++) {
        const char *at = strstr(log, order[i]);
        ck_assert_msg(at, "no \"%s\" in:\n%s", order[i], log);
        log = at;
    }
}
END_TEST

START_TEST(the_example_file_is_valid)
{
    char example[PATH_MAX];
    snprintf(example, sizeof example, "%s/etc/gsd.conf", gsd_source());
    D = gsd_start_with((const char *const[]){"-c", example, NULL});
    C = CLIENT(D);
    ck_assert(WAIT_UNTIL(5000, registered("hits") && registered("sessions")));
    ck_assert_mp_eq(mp_get(info("sessions"), "restart"), "'transient'");
}
END_TEST

START_TEST(flags_override_the_file)
{
    /* The harness's -s and -M come first; the file's own would not work. */
    write_conf("socket = { path = \"%s\"; };\n"
               "module_dirs = [ \"/nonexistent\" ];\n"
               "servers = ( { name = \"c\"; module = \"counter\"; } );\n",
               in_dir("elsewhere.sock"));
    start_conf();
    ck_assert(WAIT_UNTIL(5000, registered("c")));
    ck_assert_int_ne(access(in_dir("elsewhere.sock"), F_OK), 0);
}
END_TEST

START_TEST(sighup_starts_the_new_and_stops_the_undeclared)
{
    write_conf("servers = ( { name = \"a\"; module = \"counter\"; },\n"
               "            { name = \"b\"; module = \"counter\"; args = 1; } );\n");
    start_conf();
    ck_assert(WAIT_UNTIL(5000, registered("b")));
    uint64_t a = id_of("a");
    CALL(C, "a", mp("'increment'"));
    write_conf("servers = ( { name = \"a\"; module = \"counter\"; },\n"
               "            { name = \"c\"; module = \"stack\"; } );\n"
               "limits = { slow_callback_ms = 250; };\n");
    kill(D->pid, SIGHUP);
    ck_assert(WAIT_UNTIL(5000, registered("c") && !registered("b")));
    ck_assert_uint_eq(id_of("a"), a); /* unchanged: left running, state and all */
    ck_assert_mp_eq(CALL(C, "a", mp("'get'")), "1");
    ck_assert_mp_eq(mp_get(info("a"), "slow_threshold_ms"), "250");
    /* Changed args: the server is started again from the new ones. */
    write_conf("servers = ( { name = \"a\"; module = \"counter\"; args = 40; },\n"
               "            { name = \"c\"; module = \"stack\"; } );\n");
    kill(D->pid, SIGHUP);
    restarted("a", a);
    ck_assert_mp_eq(CALL(C, "a", mp("'get'")), "40");
}
END_TEST

START_TEST(sighup_with_a_bad_file_keeps_the_running_configuration)
{
    write_conf("servers = ( { name = \"a\"; module = \"counter\"; } );\n");
    start_conf();
    ck_assert(WAIT_UNTIL(5000, registered("a")));
    write_conf("servers = ( { name = \"b\"; module = \"counter\"; restart = 3; } );\n");
    kill(D->pid, SIGHUP);
    ck_assert(WAIT_UNTIL(5000, logged("has errors: refused, the running configuration stays")));
    ck_assert(logged(":1: restart: must be a string"));
    ck_assert(registered("a"));
    ck_assert(!registered("b"));
    write_conf("servers = ( { name = \"b\"; module = \"counter\"; } );\n");
    kill(D->pid, SIGHUP);
    ck_assert(WAIT_UNTIL(5000, registered("b") && !registered("a")));
}
END_TEST

START_TEST(sighup_changes_the_log_level)
{
    write_conf("log_level = \"info\";\n");
    start_conf();
    ck_assert(!logged("debug: connection"));
    write_conf("log_level = \"debug\";\n");
    kill(D->pid, SIGHUP);
    ck_assert(WAIT_UNTIL(5000, logged("applied")));
    client_close(&C);
    C = CLIENT(D);
    ck_assert(WAIT_UNTIL(5000, logged("debug: connection")));
}
END_TEST

/* ---- many declared servers ------------------------------------------------------------ */

/* Enough that a configuration quadratic in the servers it declares (as it
 * was: a scan of the others per server) takes far longer than the tcase's
 * timeout to be ready and then to reload; linear, it takes well under a
 * second for each. */
#define MANY 50000

/* Declares MANY counters s0, s1, ..., server i on line i + 2, then extra. */
static void write_many(const char *extra)
{
    FILE *f = fopen(conf, "w");
    ck_assert_ptr_nonnull(f);
    fputs("servers = (\n", f);
    for (int i = 0; i < MANY; i++)
        fprintf(f, "  { name = \"s%d\"; module = \"counter\"; }%s\n", i,
                i + 1 < MANY || *extra ? "," : "");
    fprintf(f, "%s);\n", extra);
    ck_assert_int_eq(fclose(f), 0);
}

/* Checks that `which` lists MANY running servers s0, s1, ... in that
 * (start) order; their ids (free them). One assertion for them all: each
 * Check assertion that passes is a write to the test's log. */
static uint64_t *which_many(void)
{
    gsc_reply *r;
    const msgpack_object *all = OK(gsc_which(C, &r), &r);
    ck_assert_msg(all->type == MSGPACK_OBJECT_ARRAY && all->via.array.size == MANY,
                  "which: %u servers", all->type == MSGPACK_OBJECT_ARRAY ? all->via.array.size : 0);
    uint64_t *ids = malloc(MANY * sizeof *ids);
    uint32_t bad = MANY;
    for (uint32_t i = 0; i < MANY && bad == MANY; i++) {
        const msgpack_object *e = &all->via.array.ptr[i], *name = mp_get(e, "name"),
                             *status = mp_get(e, "status"), *id = mp_get(e, "id");
        char want[16];
        int n = snprintf(want, sizeof want, "s%u", i);
        if (name == NULL || name->type != MSGPACK_OBJECT_STR || name->via.str.size != (uint32_t)n ||
            memcmp(name->via.str.ptr, want, (size_t)n) != 0 || status == NULL ||
            status->type != MSGPACK_OBJECT_STR || status->via.str.size != 7 ||
            memcmp(status->via.str.ptr, "running", 7) != 0 || id == NULL ||
            id->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            bad = i;
        else
            ids[i] = id->via.u64;
    }
    ck_assert_msg(bad == MANY, "which[%u]: %s", bad, mp_str(&all->via.array.ptr[bad]));
    return ids;
}

START_TEST(many_declared_servers_are_ready_and_reload_unchanged)
{
    write_many("");
    start_conf();
    ck_assert(WAIT_UNTIL(15000, logged("every declared server has started (50000 running)")));
    uint64_t *before = which_many();
    kill(D->pid, SIGHUP);
    gsc_reply *r;
    OK(gsc_ping(C, &r), &r); /* the loop serves again */
    ck_assert(WAIT_UNTIL(5000, logged("applied: 50000 servers declared, 50000 running")));
    uint64_t *after = which_many();
    uint32_t i = 0;
    while (i < MANY && before[i] == after[i])
        i++;
    ck_assert_msg(i == MANY, "s%u: id %llu became %llu", i, (unsigned long long)before[i],
                  (unsigned long long)after[i]); /* none was started again */
    free(before);
    free(after);
}
END_TEST

START_TEST(a_name_declared_again_among_many_is_reported_at_its_line)
{
    /* Each later declaration once, against the first (lines MANY + 2, + 3). */
    write_many("  { name = \"s7\"; module = \"counter\"; },\n"
               "  { name = \"s7\"; module = \"stack\"; }\n");
    char *err;
    ck_assert_int_eq(run_gsd((const char *const[]){"-c", conf, NULL}, &err), 2);
    char want[2][64];
    for (int i = 0; i < 2; i++) {
        snprintf(want[i], sizeof want[i], ".conf:%d: name: \"s7\" is declared twice", MANY + 2 + i);
        const char *at = strstr(err, want[i]);
        ck_assert_msg(at, "no \"%s\" in:\n%s", want[i], err);
        ck_assert_msg(strstr(at + 1, want[i]) == NULL, "\"%s\" twice in:\n%s", want[i], err);
    }
}
END_TEST

/* ---- supervision ------------------------------------------------------------------ */

/* One declared probe "p" with this restart policy and extra keys. */
static void declare_probe(const char *restart, const char *extra)
{
    write_conf("servers = ( { name = \"p\"; module = \"probe\"; restart = \"%s\"; %s } );\n",
               restart, extra);
    start_conf();
    ck_assert(WAIT_UNTIL(5000, registered("p")));
}

START_TEST(permanent_is_restarted_after_any_end)
{
    declare_probe("permanent", "");
    uint64_t id = id_of("p");
    ck_assert_mp_eq(mp_get(info("p"), "restart"), "'permanent'");
    ck_assert_mp_eq(mp_get(info("p"), "restarts"), "0");
    cast("p", mp("['stop', 'normal']"));
    id = restarted("p", id);
    ck_assert_mp_eq(mp_get(info("p"), "restarts"), "1");
    cast("p", mp("['stop', 'boom']"));
    restarted("p", id);
    ck_assert_mp_eq(mp_get(info("p"), "restarts"), "2");
    ck_assert_mp_eq(CALL(C, "p", mp("['echo', 5]")), "5");
}
END_TEST

START_TEST(transient_is_restarted_only_after_an_abnormal_end)
{
    declare_probe("transient", "");
    uint64_t id = id_of("p");
    cast("p", mp("['stop', 'boom']"));
    id = restarted("p", id);
    cast("p", mp("['stop', ['shutdown', 'done']]"));
    ck_assert(WAIT_UNTIL(5000, logged("ended: [\"shutdown\", \"done\"]")));
    sleep_ms(200);
    ck_assert(!registered("p"));
}
END_TEST

START_TEST(temporary_is_never_restarted)
{
    declare_probe("temporary", "");
    cast("p", mp("['stop', 'boom']"));
    ck_assert(WAIT_UNTIL(5000, logged("ended: \"boom\"")));
    sleep_ms(200);
    ck_assert(!registered("p"));
}
END_TEST

START_TEST(an_admin_stop_is_not_undone)
{
    declare_probe("permanent", "");
    gsc_reply *r;
    OK(gsc_stop(C, "p", mp("'boom'"), 0, &r), &r);
    sleep_ms(200);
    ck_assert(!registered("p"));
    kill(D->pid, SIGHUP); /* a reload starts every declared server again */
    ck_assert(WAIT_UNTIL(5000, registered("p")));
}
END_TEST

START_TEST(start_option_restart_supervises)
{
    D = gsd_start();
    C = CLIENT(D);
    uint64_t t = START_OPTS(C, "probe", "t", NULL, mp("{'restart': 'transient'}"));
    uint64_t q = START_OPTS(C, "probe", "q", NULL, mp("{'restart': 'temporary'}"));
    ck_assert_mp_eq(mp_get(info("t"), "restart"), "'transient'");
    cast("t", mp("['stop', 'boom']"));
    restarted("t", t);
    ck_assert_mp_eq(mp_get(info("t"), "restarts"), "1");
    cast("q", mp("['stop', 'boom']"));
    ck_assert(WAIT_UNTIL(5000, !registered("q")));
    sleep_ms(200);
    ck_assert(!registered("q"));
    (void)q;
    /* A start whose init fails is answered so, and not kept up. */
    gsc_reply *r;
    ERR(gsc_start(C, "probe", "f", mp("{'init': 'stop', 'reason': 'no'}"),
                  mp("{'restart': 'permanent'}"), &r),
        &r, "init_stop");
    sleep_ms(200);
    ck_assert(!registered("f"));
    /* gsctl's flag reaches the same option. */
    char *out;
    ck_assert_int_eq(
        run_gsctl(D, &out, NULL, "start", "--restart", "permanent", "counter", "g", NULL), 0);
    ck_assert_mp_eq(mp_get(info("g"), "restart"), "'permanent'");
}
END_TEST

START_TEST(too_many_restarts_give_up)
{
    declare_probe("permanent", "intensity = 2; period_ms = 60000;");
    uint64_t id = id_of("p");
    for (int i = 0; i < 2; i++) {
        cast("p", mp("['stop', 'boom']"));
        id = restarted("p", id);
    }
    cast("p", mp("['stop', 'boom']"));
    ck_assert(WAIT_UNTIL(5000, logged("more than 2 restarts in 60000 ms; given up")));
    sleep_ms(200);
    ck_assert(!registered("p"));
    ck_assert(gsd_alive(D));
}
END_TEST

START_TEST(backoff_delays_the_restart_and_the_name_is_free_meanwhile)
{
    declare_probe("permanent", "backoff_ms = 400; backoff_max_ms = 800;");
    uint64_t id = id_of("p");
    int64_t t0 = now_ms();
    cast("p", mp("['stop', 'boom']"));
    ck_assert(WAIT_UNTIL(5000, !registered("p")));
    gsc_reply *r;
    ERR(gsc_call(C, "p", mp("['echo', 1]"), 0, &r), &r, "noproc");
    id = restarted("p", id);
    /* Bounds with slack: the loop's clock is coarse and cached per turn. */
    ck_assert_int_ge(now_ms() - t0, 350);
    /* The next one waits twice as long. */
    t0 = now_ms();
    cast("p", mp("['stop', 'boom']"));
    restarted("p", id);
    ck_assert_int_ge(now_ms() - t0, 700);
    ck_assert(logged("restart in 800 ms"));
}
END_TEST

START_TEST(an_init_that_ignores_is_not_restarted)
{
    write_conf("servers = ( { name = \"p\"; module = \"probe\"; args = { init = \"ignore\"; }; },\n"
               "            { name = \"c\"; module = \"counter\"; } );\n");
    start_conf();
    ck_assert(WAIT_UNTIL(5000, logged("every declared server has started")));
    sleep_ms(200);
    ck_assert(!registered("p"));
    ck_assert(!logged("restart"));
}
END_TEST

START_TEST(a_failing_init_counts_as_a_restart)
{
    write_conf("supervision = { intensity = 3; period_ms = 60000; };\n"
               "servers = ( { name = \"p\"; module = \"probe\";\n"
               "              args = { init = \"stop\"; reason = \"no_db\"; }; } );\n");
    start_conf();
    ck_assert(WAIT_UNTIL(5000, logged("given up after 3 restarts")));
    ck_assert(logged("every declared server has started")); /* settled: ready anyway */
    ck_assert(!registered("p"));
}
END_TEST

/* ---- authorization ------------------------------------------------------------------ */

static bool need_root(void)
{
    if (geteuid() == 0)
        return true;
    fprintf(stderr, "check_service: not root: skipping a test that needs another uid\n");
    return false;
}

/* Lets a non-root peer reach the daemon's socket and a copy of gsctl. */
static void open_to_others(void)
{
    ck_assert_int_eq(chmod(getenv("GSD_TEST_ROOT"), 0711), 0);
    ck_assert_int_eq(chmod(D->dir, 0711), 0);
    char cmd[2 * PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "cp %s/gsctl %s/gsctl", gsd_build(), D->dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(chmod(gsd_path(D, "gsctl"), 0755), 0);
}

/* Runs the copied gsctl as uid 65534 (nobody) with this primary group and
 * supplementary groups ("" for none); its exit status, stderr in *err. */
static int gsctl_as_nobody(const char *gid, const char *groups, char **err, const char *cmd,
                           const char *arg)
{
    char regid[64], grp[64];
    snprintf(regid, sizeof regid, "--regid=%s", gid);
    snprintf(grp, sizeof grp, "--groups=%s", groups);
    const char *argv[] = {"setpriv",
                          "--reuid=65534",
                          regid,
                          *groups ? grp : "--clear-groups",
                          gsd_path(D, "gsctl"),
                          "-s",
                          D->sock,
                          cmd,
                          arg,
                          NULL};
    struct proc *p = spawn(argv);
    return gsctl_wait(&p, 10000, NULL, err);
}

START_TEST(a_non_admin_peer_is_refused_admin_methods)
{
    if (!need_root())
        return;
    write_conf("socket = { mode = \"0666\"; };\n");
    start_conf();
    open_to_others();
    START(C, "counter", "c", NULL);
    char *err;
    ck_assert_int_eq(gsctl_as_nobody("65534", "", &err, "start", "counter"), 1);
    ck_assert_msg(strstr(err, "unauthorized"), "%s", err);
    ck_assert_int_eq(gsctl_as_nobody("65534", "", &err, "stop", "c"), 1);
    ck_assert_ptr_nonnull(strstr(err, "unauthorized"));
    ck_assert_int_eq(gsctl_as_nobody("65534", "", &err, "load", "stack"), 1);
    ck_assert_ptr_nonnull(strstr(err, "unauthorized"));
    ck_assert_int_eq(gsctl_as_nobody("65534", "", &err, "state", "c"), 1);
    ck_assert_ptr_nonnull(strstr(err, "unauthorized"));
    ck_assert_int_eq(gsctl_as_nobody("65534", "", &err, "info", "c"), 0);
    ck_assert(registered("c"));
}
END_TEST

START_TEST(configured_users_and_groups_are_admins)
{
    if (!need_root())
        return;
    write_conf("socket = { mode = \"0666\"; };\n"
               "admins = { users = [ \"nobody\" ]; groups = [ 4242, 4343 ]; };\n");
    start_conf();
    open_to_others();
    char *err;
    ck_assert_int_eq(gsctl_as_nobody("65534", "", &err, "load", "stack"), 0);
    /* Admins by group: uid nobody is dropped from the file by a reload. */
    write_conf("socket = { mode = \"0666\"; };\n"
               "admins = { groups = [ 4242, 4343 ]; };\n");
    kill(D->pid, SIGHUP);
    ck_assert(WAIT_UNTIL(5000, logged("applied")));
    ck_assert_int_eq(gsctl_as_nobody("65534", "", &err, "load", "stack"), 1);
    ck_assert_ptr_nonnull(strstr(err, "unauthorized"));
    ck_assert_int_eq(gsctl_as_nobody("4242", "", &err, "load", "stack"), 0);          /* primary */
    ck_assert_int_eq(gsctl_as_nobody("65534", "100,4343", &err, "load", "stack"), 0); /* extra */
    ck_assert_int_eq(gsctl_as_nobody("65534", "100", &err, "load", "stack"), 1);
}
END_TEST

/* In a child running as nobody, one connection: load before and after the
 * parent's reload. Returns 'o' (ok) or 'u' (unauthorized) for each. */
static void load_as_nobody_twice(char answers[2], void (*between)(void))
{
    int res[2], go[2];
    ck_assert_int_eq(pipe(res), 0);
    ck_assert_int_eq(pipe(go), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
            _exit(1);
        gsc *g = gsc_connect(D->sock);
        for (int i = 0; i < 2 && g; i++) {
            gsc_reply *r = NULL;
            int st = gsc_load(g, "stack", &r);
            char a = st == GSC_OK                                              ? 'o'
                     : st == GSC_ERROR && strcmp(r->code, "unauthorized") == 0 ? 'u'
                                                                               : '?';
            gsc_reply_destroy(&r);
            char c;
            if (write(res[1], &a, 1) != 1 || (i == 0 && read(go[0], &c, 1) != 1))
                _exit(1);
        }
        _exit(g ? 0 : 1);
    }
    close(res[1]);
    ck_assert_int_eq(read(res[0], &answers[0], 1), 1);
    between();
    ck_assert_int_eq(write(go[1], "", 1), 1);
    ck_assert_int_eq(read(res[0], &answers[1], 1), 1);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    close(res[0]);
    close(go[0]);
    close(go[1]);
}

static void reload_without_admins(void)
{
    write_conf("socket = { mode = \"0666\"; };\n");
    kill(D->pid, SIGHUP);
    ck_assert(WAIT_UNTIL(5000, logged("applied")));
}

START_TEST(a_reload_applies_to_open_connections)
{
    if (!need_root())
        return;
    write_conf("socket = { mode = \"0666\"; };\n"
               "admins = { users = [ 65534 ]; };\n");
    start_conf();
    open_to_others();
    char answers[2];
    load_as_nobody_twice(answers, reload_without_admins);
    ck_assert_int_eq(answers[0], 'o');
    ck_assert_int_eq(answers[1], 'u');
}
END_TEST

START_TEST(the_socket_has_the_configured_mode_and_group)
{
    if (!need_root())
        return;
    write_conf("socket = { mode = \"0600\"; group = 4242; };\n");
    start_conf();
    struct stat st;
    ck_assert_int_eq(stat(D->sock, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(st.st_gid, 4242);
    open_to_others();
    char *err;
    ck_assert_int_eq(gsctl_as_nobody("4242", "", &err, "info", "x"), 3); /* cannot connect */
}
END_TEST

START_TEST(the_default_socket_mode_is_0660)
{
    write_conf("# nothing\n");
    start_conf(); /* an empty file: every default */
    struct stat st;
    ck_assert_int_eq(stat(D->sock, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0660);
}
END_TEST

START_TEST(a_module_file_others_can_write_is_refused)
{
    char cmd[2 * PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "cp %s/modules/counter.so %s/modules/stack.so %s/", gsd_build(),
             gsd_build(), dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(chmod(in_dir("counter.so"), 0666), 0);
    ck_assert_int_eq(chmod(in_dir("stack.so"), 0664), 0);
    D = gsd_start_with((const char *const[]){"-M", dir, NULL}); /* the last -M wins */
    C = CLIENT(D);
    gsc_reply *r;
    const msgpack_object *why = ERR(gsc_load(C, "counter", &r), &r, "module");
    ck_assert_msg(strstr(mp_str(why), "counter.so: writable by others; refused"), "%s",
                  mp_str(why));
    why = ERR(gsc_start(C, "stack", NULL, NULL, NULL, &r), &r, "module");
    ck_assert_msg(strstr(mp_str(why), "writable by its group"), "%s", mp_str(why));
    ck_assert_int_eq(chmod(in_dir("counter.so"), 0644), 0);
    if (geteuid() == 0) { /* a file another user owns could be changed by that user */
        ck_assert_int_eq(chown(in_dir("counter.so"), 65534, 65534), 0);
        why = ERR(gsc_load(C, "counter", &r), &r, "module");
        ck_assert_msg(strstr(mp_str(why), "belongs to uid 65534"), "%s", mp_str(why));
        ck_assert_int_eq(chown(in_dir("counter.so"), 0, 0), 0);
    }
    OK(gsc_load(C, "counter", &r), &r);
}
END_TEST

START_TEST(a_live_socket_is_not_taken_over)
{
    D = gsd_start();
    C = CLIENT(D);
    char *err;
    ck_assert_int_eq(run_gsd((const char *const[]){"-s", D->sock, NULL}, &err), 1);
    ck_assert_msg(strstr(err, "another gsd is listening on"), "%s", err);
    gsc_reply *r;
    OK(gsc_ping(C, &r), &r); /* the first one still serves */
}
END_TEST

START_TEST(a_stale_socket_is_replaced)
{
    /* A socket file nobody listens on, as a crashed daemon leaves. */
    const char *sock = in_dir("stale.sock");
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", sock);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    close(fd);
    char bin[PATH_MAX];
    snprintf(bin, sizeof bin, "%s/gsd", gsd_build());
    struct proc *p = spawn((const char *const[]){bin, "-s", sock, NULL});
    gsc *g = NULL;
    ck_assert(WAIT_UNTIL(5000, (g = gsc_connect(sock)) != NULL));
    gsc_reply *r;
    OK(gsc_ping(g, &r), &r);
    gsc_close(&g);
    kill(p->pid, SIGTERM);
    char *err;
    ck_assert_int_eq(gsctl_wait(&p, 5000, NULL, &err), 0);
    ck_assert_msg(strstr(err, "listening on"), "%s", err);
}
END_TEST

/* At SIGTERM a server gets limits.shutdown_timeout_ms to handle its
 * mailbox; what it still holds then is dropped, and counted in the log. */
START_TEST(shutdown_timeout_drops_what_is_left_and_logs_it)
{
    write_conf("limits = { shutdown_timeout_ms = 100; };\n");
    start_conf();
    START(C, "forms", "f", NULL);
    struct raw *a = RAW_CONNECT(D);
    RAW_CASTS(a, "f", "['busy', 2]", 1000); /* about 2 s of work */
    ck_assert_int_eq(gsd_wait_exit(D, SIGTERM, 10000), 0);
    ck_assert_msg(logged("shutdown: 1 servers had not drained their mailboxes: ended, ") &&
                      logged("queued messages dropped"),
                  "no drop counted in:\n%s", file_read(D->log));
    raw_close(&a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("service");
    TCase *tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, missing_c_file_is_an_error);
    tcase_add_test(tc, syntax_error_names_file_and_line);
    tcase_add_test(tc, every_bad_line_is_reported);
    tcase_add_test(tc, bad_args_json_is_refused);
    tcase_add_test(tc, declared_servers_start_in_file_order_and_stop_in_reverse);
    tcase_add_test(tc, the_example_file_is_valid);
    tcase_add_test(tc, flags_override_the_file);
    tcase_add_test(tc, sighup_starts_the_new_and_stops_the_undeclared);
    tcase_add_test(tc, sighup_with_a_bad_file_keeps_the_running_configuration);
    tcase_add_test(tc, sighup_changes_the_log_level);
    tcase_add_test(tc, shutdown_timeout_drops_what_is_left_and_logs_it);
    suite_add_tcase(s, tc);

    tc = tcase_create("scale");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, many_declared_servers_are_ready_and_reload_unchanged);
    tcase_add_test(tc, a_name_declared_again_among_many_is_reported_at_its_line);
    suite_add_tcase(s, tc);

    tc = tcase_create("supervision");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, permanent_is_restarted_after_any_end);
    tcase_add_test(tc, transient_is_restarted_only_after_an_abnormal_end);
    tcase_add_test(tc, temporary_is_never_restarted);
    tcase_add_test(tc, an_admin_stop_is_not_undone);
    tcase_add_test(tc, start_option_restart_supervises);
    tcase_add_test(tc, too_many_restarts_give_up);
    tcase_add_test(tc, backoff_delays_the_restart_and_the_name_is_free_meanwhile);
    tcase_add_test(tc, a_failing_init_counts_as_a_restart);
    tcase_add_test(tc, an_init_that_ignores_is_not_restarted);
    suite_add_tcase(s, tc);

    tc = tcase_create("authorization");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, a_non_admin_peer_is_refused_admin_methods);
    tcase_add_test(tc, configured_users_and_groups_are_admins);
    tcase_add_test(tc, a_reload_applies_to_open_connections);
    tcase_add_test(tc, the_socket_has_the_configured_mode_and_group);
    tcase_add_test(tc, the_default_socket_mode_is_0660);
    tcase_add_test(tc, a_module_file_others_can_write_is_refused);
    tcase_add_test(tc, a_live_socket_is_not_taken_over);
    tcase_add_test(tc, a_stale_socket_is_replaced);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
