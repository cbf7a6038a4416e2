/*
 * check_fault.c — clients and modules that misbehave, and a daemon that
 * dies: everyone else is served, nothing leaks into the next client.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
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

static bool whereis_nil(gsc *c, const char *name)
{
    gsc_reply *r;
    return OK(gsc_whereis(c, name, &r), &r)->type == MSGPACK_OBJECT_NIL;
}

static void still_serving(void)
{
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "%d", 0);
}

START_TEST(disconnect_mid_call)
{
    START(C, "probe", "p", NULL);
    START(C, "counter", "c", NULL);
    struct raw *r = RAW_CONNECT(D);
    RAW_REQUEST(r, 1, "call", mp("['p', ['reply_after', 200, 'late'], nil]"));
    sleep_ms(20);
    raw_close(&r);
    sleep_ms(300); /* the reply comes with nobody to read it */
    ck_assert_mp_eq(CALL(C, "p", mp("['echo', 1]")), "1");
    still_serving();
}
END_TEST

START_TEST(disconnect_mid_message)
{
    START(C, "counter", "c", NULL);
    for (int i = 0; i < 20; i++) {
        struct raw *r = RAW_CONNECT(D);
        /* [0, 1, "call", ["c", "increment", nil]], cut after i bytes */
        const char full[] = "\x94\x00\x01\xa4"
                            "call"
                            "\x93\xa1"
                            "c"
                            "\xa9"
                            "increment"
                            "\xc0";
        RAW_WRITE(r, full, (size_t)i % (sizeof full - 2) + 1);
        raw_close(&r);
    }
    still_serving();
}
END_TEST

START_TEST(disconnect_mid_pipeline)
{
    START(C, "counter", "c", NULL);
    struct raw *r = RAW_CONNECT(D);
    for (uint32_t i = 0; i < 2000; i++) {
        RAW_NOTIFY(r, "cast", mp("['c', 'increment']"));
        RAW_REQUEST(r, i, "call", mp("['c', 'get', nil]"));
    }
    raw_close(&r); /* 2000 answers nobody reads */
    /* What the daemon read before it found the client gone was served;
     * the rest went with the connection. */
    int64_t n = -1, m;
    while ((m = MP_INT(CALL(C, "c", mp("'get'")))) != n) {
        n = m;
        sleep_ms(50);
    }
    ck_assert_int_gt(n, 0);
    ck_assert_int_le(n, 2000);
}
END_TEST

START_TEST(a_thousand_connections_at_once)
{
    enum { N = 1000 };
    struct raw **r = calloc(N, sizeof *r);
    for (int i = 0; i < N; i++)
        r[i] = RAW_CONNECT(D);
    for (int i = 0; i < N; i++)
        RAW_REQUEST(r[i], (uint32_t)i, "ping", mp("[]"));
    for (int i = 0; i < N; i++)
        ck_assert_mp_eq(RAW_RECV(r[i], 10000), "[1, %d, nil, 'pong']", i);
    for (int i = 0; i < N; i++)
        raw_close(&r[i]);
    free(r);
    START(C, "counter", "c", NULL);
    still_serving();
}
END_TEST

START_TEST(init_returning_nonsense_fails_the_start)
{
    gsc_reply *r;
    ck_assert_mp_eq(
        ERR(gsc_start(C, "rogue", "x", mp("{'init': 'nonsense'}"), NULL, &r), &r, "init_stop"),
        "'bad_return_value'");
    START(C, "counter", "c", NULL);
    still_serving();
}
END_TEST

START_TEST(init_sleeping_past_its_timeout)
{
    gsc_reply *r;
    ERR(gsc_start(C, "rogue", "x", mp("{'init_ms': 300}"), mp("{'timeout': 50}"), &r), &r,
        "timeout");
    START(C, "counter", "c", NULL);
    still_serving();
    START(C, "rogue", "x", NULL); /* the name was freed */
}
END_TEST

START_TEST(terminate_sleeping_past_the_stop_timeout)
{
    START(C, "rogue", "x", mp("{'terminate_ms': 500}"));
    START(C, "counter", "c", NULL);
    gsc_reply *r;
    int st = gsc_stop(C, "x", NULL, 50, &r);
    /* terminate holds the loop: the stop is answered once it returns (its
     * timer could not fire meanwhile), or timeout if that came first. */
    ck_assert(st == GSC_OK || (st == GSC_ERROR && strcmp(r->code, "timeout") == 0));
    gsc_reply_destroy(&r);
    still_serving();
    ck_assert(WAIT_UNTIL(5000, whereis_nil(C, "x")));
}
END_TEST

/* The daemon on an explicit socket path, started by hand (the harness
 * gives every daemon a fresh path); its stderr goes to log (or nowhere). */
static pid_t spawn_on(const char *sock, const char *log)
{
    char bin[512], mods[512];
    snprintf(bin, sizeof bin, "%s/gsd", gsd_build());
    snprintf(mods, sizeof mods, "%s/modules", gsd_build());
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_RDWR);
        int err = log ? open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644) : null;
        dup2(null, 0), dup2(null, 1), dup2(err, 2);
        execl(bin, bin, "-s", sock, "-M", mods, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Exit status within ms, or -1 (then it is killed). */
static int exit_status(pid_t pid, int ms)
{
    int st;
    for (int t = 0; t < ms; t += 10) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

static bool answers_ping(const char *sock)
{
    gsc *c = gsc_connect(sock);
    if (c == NULL)
        return false;
    gsc_reply *r = NULL;
    bool ok = gsc_ping(c, &r) == GSC_OK;
    gsc_reply_destroy(&r);
    gsc_close(&c);
    return ok;
}

/* A tmpfs of our own at a fresh directory, in a mount namespace of this
 * test process (and the daemons it starts) only. NULL if this machine
 * does not let us mount. */
static const char *private_tmpfs(bool read_only)
{
    static char dir[128];
    const char *root = getenv("GSD_TEST_ROOT");
    snprintf(dir, sizeof dir, "%s/mnt-XXXXXX", root && *root ? root : "/tmp");
    if (mkdtemp(dir) == NULL || unshare(CLONE_NEWNS) < 0 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        mount("tmpfs", dir, "tmpfs", read_only ? MS_RDONLY : 0, "size=1m,mode=0755") < 0) {
        fprintf(stderr, "fault: cannot mount a tmpfs here (%s): read-only test skipped\n",
                strerror(errno));
        return NULL;
    }
    return dir;
}

/* Started with descriptors 0-2 closed: /dev/null stands in for them, so
 * none of the daemon's own files (its socket, its log) becomes one. */
START_TEST(closed_standard_descriptors_are_filled)
{
    char dir[] = "/tmp/gsd-fds-XXXXXX", sock[108], bin[512], mods[512];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(sock, sizeof sock, "%s/gsd.sock", dir);
    snprintf(bin, sizeof bin, "%s/gsd", gsd_build());
    snprintf(mods, sizeof mods, "%s/modules", gsd_build());
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(0), close(1), close(2);
        execl(bin, bin, "-s", sock, "-M", mods, (char *)NULL);
        _exit(127);
    }
    ck_assert(WAIT_UNTIL(5000, answers_ping(sock)));
    for (int fd = 0; fd < 3; fd++) {
        char link[64], target[256] = "";
        snprintf(link, sizeof link, "/proc/%d/fd/%d", (int)pid, fd);
        ck_assert_int_gt(readlink(link, target, sizeof target - 1), 0);
        ck_assert_str_eq(target, "/dev/null");
    }
    kill(pid, SIGTERM);
    ck_assert_int_eq(exit_status(pid, 5000), 0);
    rmdir(dir);
}
END_TEST

START_TEST(read_only_socket_directory_fails_clearly)
{
    const char *dir = private_tmpfs(true);
    if (dir == NULL)
        return;
    char sock[108], log[160];
    snprintf(log, sizeof log, "%s.log", dir);
    snprintf(sock, sizeof sock, "%s/gsd.sock", dir);
    ck_assert_int_eq(exit_status(spawn_on(sock, log), 5000), 1);
    ck_assert_ptr_nonnull(strstr(file_read(log), "Read-only file system"));
    snprintf(sock, sizeof sock, "%s/sub/gsd.sock", dir);
    ck_assert_int_eq(exit_status(spawn_on(sock, log), 5000), 1);
    ck_assert_ptr_nonnull(strstr(file_read(log), "cannot make socket directory"));
    umount2(dir, MNT_DETACH);
}
END_TEST

START_TEST(socket_directory_turning_read_only_keeps_serving)
{
    const char *dir = private_tmpfs(false);
    if (dir == NULL)
        return;
    char sock[108];
    snprintf(sock, sizeof sock, "%s/gsd.sock", dir);
    pid_t pid = spawn_on(sock, NULL);
    ck_assert(WAIT_UNTIL(5000, answers_ping(sock)));
    ck_assert_int_eq(mount(NULL, dir, NULL, MS_REMOUNT | MS_RDONLY, NULL), 0);
    ck_assert(answers_ping(sock));
    kill(pid, SIGTERM); /* cannot remove its socket file: still a clean exit */
    ck_assert_int_eq(exit_status(pid, 5000), 0);
    umount2(dir, MNT_DETACH);
}
END_TEST

START_TEST(kill_9_then_restart_on_the_same_path)
{
    struct gsd *d = gsd_start();
    char sock[108];
    snprintf(sock, sizeof sock, "%s", d->sock);
    ck_assert_int_eq(gsd_wait_exit(d, SIGKILL, 5000), 128 + SIGKILL);
    pid_t pid = spawn_on(sock, NULL); /* takes over the stale socket file */
    gsc *c = NULL;
    ck_assert(WAIT_UNTIL(5000, (c = gsc_connect(sock)) != NULL));
    gsc_reply *r;
    ck_assert_mp_eq(OK(gsc_ping(c, &r), &r), "'pong'");
    gsc_close(&c);
    kill(pid, SIGTERM);
    ck_assert_int_eq(exit_status(pid, 5000), 0);
    gsd_stop(&d);
}
END_TEST

/* ---- the probe's misbehaviours that leave the daemon running ------------- */

START_TEST(probe_block_answers_after_sleeping)
{
    START(C, "probe", "p", NULL);
    int64_t t0 = now_ms();
    ck_assert_mp_eq(OK_CALL_T(C, "p", mp("['block', 200]"), 5000), "'ok'");
    ck_assert_int_ge(now_ms() - t0, 200);
}
END_TEST

START_TEST(probe_alloc_answers_the_running_total)
{
    START(C, "probe", "p", NULL);
    ck_assert_mp_eq(CALL(C, "p", mp("['alloc', 1000]")), "1000");
    ck_assert_mp_eq(CALL(C, "p", mp("['alloc', 4194304]")), "4195304");
    ck_assert_mp_eq(CALL(C, "p", mp("['alloc', 0]")), "4195304");
    gsc_reply *r;
    OK(gsc_stop(C, "p", NULL, 5000, &r), &r); /* terminate frees what it kept */
}
END_TEST

START_TEST(probe_call_answers_ok_or_error)
{
    START(C, "counter", "other", mp("7"));
    START(C, "probe", "p", NULL);
    START(C, "probe", "q", NULL);
    ck_assert_mp_eq(CALL(C, "p", mp("['call', 'other', 'get', 1000]")), "['ok', 7]");
    ck_assert_mp_eq(CALL(C, "p", mp("['call', 'nobody', 'get', 1000]")), "['error', 'noproc']");
    ck_assert_mp_eq(CALL(C, "p", mp("['call', 'q', ['reply_after', 2000, 1], 50]")),
                    "['error', 'timeout']");
    /* An exit answers its reason rather than the code. */
    ck_assert_mp_eq(CALL(C, "p", mp("['call', 'q', ['stop_noreply', 'boom'], nil]")),
                    "['error', 'boom']");
    ck_assert_mp_eq(CALL(C, "p", mp("'infos'")), "[]"); /* the replies are not infos */
}
END_TEST

/* ---- a module that ends the daemon ---------------------------------------- */

/* A daemon for a test that crashes it: no core file left behind. */
static struct gsd *crash_daemon(void)
{
    setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0}); /* the daemon inherits it */
    return gsd_start();
}

/* Asks probe `name` for ["crash", how] as a call or a cast; the daemon's
 * exit status within 5 s (-1 if it still runs). */
static int crash(struct gsd *d, gsc *c, const char *name, const char *how, bool cast)
{
    gsc_reply *r = NULL;
    const msgpack_object *req = mp("['crash', %s]", how);
    if (cast)
        gsc_cast(c, name, req, &r); /* answered, or cut off by the crash */
    else
        gsc_call(c, name, req, 5000, &r);
    gsc_reply_destroy(&r);
    return gsd_wait_exit(d, 0, 5000);
}

/* The daemon's log has exactly one "gsd: " line of its own, and it is
 * the one written as fmt. */
static void one_line(const struct gsd *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void one_line(const struct gsd *d, const char *fmt, ...)
{
    char want[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(want, sizeof want, fmt, ap);
    va_end(ap);
    const char *log = file_read(d->log), *at;
    ck_assert_ptr_nonnull(log);
    ck_assert_msg((at = strstr(log, "\ngsd: ")) != NULL, "no line; log:\n%s", log);
    ck_assert_msg(strncmp(at + 1, want, strlen(want)) == 0 && at[1 + strlen(want)] == '\n',
                  "want \"%s\" in:\n%s", want, log);
    ck_assert_ptr_null(strstr(at + 1, "\ngsd: "));
}

/* The daemon has gone: close what pointed at it. */
static void gone(struct gsd **d, gsc **c)
{
    client_close(c);
    gsd_stop(d);
}

START_TEST(segv_in_handle_call_names_the_server)
{
    struct gsd *d = crash_daemon();
    gsc *c = CLIENT(d);
    uint64_t id = START(c, "probe", "crashy", NULL);
    ck_assert_int_eq(crash(d, c, "crashy", "segv", false), 128 + SIGSEGV);
    one_line(d, "gsd: fatal SIGSEGV in handle_call of server %llu (crashy, module probe)",
             (unsigned long long)id);
    gone(&d, &c);
}
END_TEST

START_TEST(abort_in_handle_call_names_the_server)
{
    struct gsd *d = crash_daemon();
    gsc *c = CLIENT(d);
    uint64_t id = START(c, "probe", "crashy", NULL);
    ck_assert_int_eq(crash(d, c, "crashy", "abort", false), 128 + SIGABRT);
    one_line(d, "gsd: fatal SIGABRT in handle_call of server %llu (crashy, module probe)",
             (unsigned long long)id);
    gone(&d, &c);
}
END_TEST

START_TEST(segv_in_handle_cast_names_handle_cast)
{
    struct gsd *d = crash_daemon();
    gsc *c = CLIENT(d);
    START(c, "counter", "bystander", NULL);
    uint64_t id = START(c, "probe", "crashy", NULL);
    ck_assert_int_eq(crash(d, c, "crashy", "segv", true), 128 + SIGSEGV);
    one_line(d, "gsd: fatal SIGSEGV in handle_cast of server %llu (crashy, module probe)",
             (unsigned long long)id);
    gone(&d, &c);
}
END_TEST

START_TEST(segv_in_init_names_init)
{
    struct gsd *d = crash_daemon();
    gsc *c = CLIENT(d);
    uint64_t before = START(c, "counter", "bystander", NULL);
    gsc_reply *r = NULL;
    gsc_start(c, "probe", "early", mp("{'init': 'crash'}"), NULL, &r); /* how: segv */
    gsc_reply_destroy(&r);
    ck_assert_int_eq(gsd_wait_exit(d, 0, 5000), 128 + SIGSEGV);
    one_line(d, "gsd: fatal SIGSEGV in init of server %llu (early, module probe)",
             (unsigned long long)before + 1);
    gone(&d, &c);
}
END_TEST

START_TEST(a_fatal_signal_outside_callbacks_says_so)
{
    struct gsd *d = crash_daemon();
    ck_assert_int_eq(gsd_wait_exit(d, SIGSEGV, 5000), 128 + SIGSEGV);
    one_line(d, "gsd: fatal SIGSEGV outside any module callback");
    gsd_stop(&d);
}
END_TEST

START_TEST(exit_in_a_callback_ends_the_daemon_with_70)
{
    struct gsd *d = crash_daemon();
    gsc *c = CLIENT(d);
    uint64_t id = START(c, "probe", "quitter", NULL);
    ck_assert_int_eq(crash(d, c, "quitter", "exit", false), 70);
    one_line(d,
             "gsd: a module called exit(3) in handle_call of server %llu (quitter, module "
             "probe): the daemon ends",
             (unsigned long long)id);
    gone(&d, &c);
}
END_TEST

/* The daemon's own ends keep their statuses: help, bad flags, a bad file. */
START_TEST(orderly_exits_keep_their_status)
{
    const char *cases[][2] = {{"-h", "0"}, {"-Z", "2"}, {"-c /nonexistent/gsd.conf", "2"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cmd[1024];
        int st;
        snprintf(cmd, sizeof cmd, "timeout 10 %s/gsd %s 2>&1", gsd_build(), cases[i][0]);
        const char *out = shell_output(cmd, &st);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == atoi(cases[i][1]), "%s: status %d",
                      cases[i][0], st);
        ck_assert_ptr_null(strstr(out, "the daemon ends"));
    }
}
END_TEST

/* ---- module files cut short ------------------------------------------------- */

/* A module directory of the test's own, under the suite's temporary root. */
static const char *module_dir(void)
{
    static char dir[128];
    const char *root = getenv("GSD_TEST_ROOT");
    snprintf(dir, sizeof dir, "%s/mods-XXXXXX", root && *root ? root : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    chmod(dir, 0755);
    return dir;
}

/* Writes BUILD/modules/NAME.so over DIR/NAME.so in place, as cp does, cut
 * to percent % of its size: a copy caught halfway. */
static void install_cut(const char *dir, const char *name, int percent)
{
    char src[512], dst[512];
    snprintf(src, sizeof src, "%s/modules/%s.so", gsd_build(), name);
    snprintf(dst, sizeof dst, "%s/%s.so", dir, name);
    const char *all = file_read(src);
    struct stat st;
    ck_assert(all != NULL && stat(src, &st) == 0);
    size_t n = (size_t)st.st_size * (size_t)percent / 100;
    int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, all, n), (ssize_t)n);
    close(fd);
}

/* A module error whose detail says the file is cut short. */
static void refused_as_truncated(int st, gsc_reply **r)
{
    const msgpack_object *why = ERR(st, r, "module");
    ck_assert_int_eq(why->type, MSGPACK_OBJECT_STR);
    ck_assert_msg(memmem(why->via.str.ptr, why->via.str.size,
                         "truncated or not an ELF shared object (", 39) != NULL,
                  "detail %s", mp_str(why));
}

START_TEST(a_truncated_module_is_refused)
{
    const char *dir = module_dir();
    install_cut(dir, "counter", 20);
    const char *extra[] = {"-M", dir, NULL};
    struct gsd *d = gsd_start_with(extra);
    gsc *c = CLIENT(d);
    gsc_reply *r;
    refused_as_truncated(gsc_start(c, "counter", "c", NULL, NULL, &r), &r);
    refused_as_truncated(gsc_load(c, "counter", &r), &r);
    char junk[256];
    snprintf(junk, sizeof junk, "%s/stack.so", dir);
    int fd = open(junk, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_eq(write(fd, "\177ELF", 4), 4);
    close(fd);
    refused_as_truncated(gsc_load(c, "stack", &r), &r);
    ck_assert_mp_eq(OK(gsc_ping(c, &r), &r), "'pong'");
    install_cut(dir, "counter", 100); /* the copy done: it loads */
    START(c, "counter", "c", mp("3"));
    ck_assert_mp_eq(CALL(c, "c", mp("'get'")), "3");
    client_close(&c);
    ck_assert_int_eq(gsd_stop(&d), 0);
}
END_TEST

START_TEST(reload_of_a_truncated_module_keeps_the_old_code)
{
    const char *dir = module_dir();
    install_cut(dir, "counter", 100);
    const char *extra[] = {"-M", dir, NULL};
    struct gsd *d = gsd_start_with(extra);
    gsc *c = CLIENT(d);
    START(c, "counter", "c", mp("5"));
    install_cut(dir, "counter", 20);
    gsc_reply *r;
    refused_as_truncated(gsc_reload(c, "counter", &r), &r);
    ck_assert_mp_eq(CALL(c, "c", mp("['add', 1]")), "6");
    START(c, "counter", "d", mp("1")); /* the loaded code is still current */
    ck_assert_mp_eq(CALL(c, "d", mp("'get'")), "1");
    ck_assert_mp_eq(OK(gsc_ping(c, &r), &r), "'pong'");
    client_close(&c);
    ck_assert_int_eq(gsd_stop(&d), 0);
}
END_TEST

static Suite *fault_suite(void)
{
    Suite *s = suite_create("fault");
    TCase *tc = tcase_create("clients");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, disconnect_mid_call);
    tcase_add_test(tc, disconnect_mid_message);
    tcase_add_test(tc, disconnect_mid_pipeline);
    tcase_add_test(tc, a_thousand_connections_at_once);
    tcase_add_test(tc, init_returning_nonsense_fails_the_start);
    tcase_add_test(tc, init_sleeping_past_its_timeout);
    tcase_add_test(tc, terminate_sleeping_past_the_stop_timeout);
    tcase_add_test(tc, probe_block_answers_after_sleeping);
    tcase_add_test(tc, probe_alloc_answers_the_running_total);
    tcase_add_test(tc, probe_call_answers_ok_or_error);
    suite_add_tcase(s, tc);
    tc = tcase_create("crashes");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, segv_in_handle_call_names_the_server);
    tcase_add_test(tc, abort_in_handle_call_names_the_server);
    tcase_add_test(tc, segv_in_handle_cast_names_handle_cast);
    tcase_add_test(tc, segv_in_init_names_init);
    tcase_add_test(tc, a_fatal_signal_outside_callbacks_says_so);
    tcase_add_test(tc, exit_in_a_callback_ends_the_daemon_with_70);
    tcase_add_test(tc, orderly_exits_keep_their_status);
    suite_add_tcase(s, tc);
    tc = tcase_create("module files");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, a_truncated_module_is_refused);
    tcase_add_test(tc, reload_of_a_truncated_module_keeps_the_old_code);
    suite_add_tcase(s, tc);
    tc = tcase_create("daemon");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, kill_9_then_restart_on_the_same_path);
    tcase_add_test(tc, closed_standard_descriptors_are_filled);
    tcase_add_test(tc, read_only_socket_directory_fails_clearly);
    tcase_add_test(tc, socket_directory_turning_read_only_keeps_serving);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* 1000 connections need more than the usual 1024 descriptors between
     * this process and the daemon it starts. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
        rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    return run_suite(fault_suite());
}
