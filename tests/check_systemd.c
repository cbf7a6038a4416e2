/*
 * check_systemd.c — gsd under systemd's protocols, without systemd as PID 1:
 * the units pass `systemd-analyze verify` without a word, the daemon serves
 * on a socket systemd-socket-activate passes it, and a notify socket bound
 * here hears READY=1, STATUS=, STOPPING=1 and the watchdog heartbeat.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
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

#define WAIT_MS 5000

/* ---- helpers ------------------------------------------------------------- */

static bool have(const char *tool)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
    if (system(cmd) == 0)
        return true;
    printf("%s is not installed: skipped (Debian: apt-get install systemd)\n", tool);
    return false;
}

/* A fresh directory under the test root; static buffer per call site. */
static void temp_dir(char *dir, size_t len)
{
    const char *root = getenv("GSD_TEST_ROOT");
    snprintf(dir, len, "%s/sd-XXXXXX", root && *root ? root : "/tmp");
    ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
}

/* Runs a shell command, bounded by 60 s; its stdout and stderr together
 * (malloc'd, the test's), and its exit status in *status. */
static char *run(int *status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *run(int *status, const char *fmt, ...)
{
    char cmd[4096], full[4200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "timeout 60 sh -c '%s' 2>&1", cmd);
    FILE *f = popen(full, "r");
    ck_assert_msg(f != NULL, "popen: %s", strerror(errno));
    size_t cap = 4096, n = 0;
    char *out = malloc(cap);
    size_t got;
    while ((got = fread(out + n, 1, cap - n - 1, f)) > 0)
        if ((n += got) + 1 == cap)
            out = realloc(out, cap *= 2);
    out[n] = '\0';
    int st = pclose(f);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return out;
}

/* Starts argv with stdout and stderr into log; dies with the test. */
static pid_t spawn(const char *const *argv, const char *log)
{
    pid_t parent = getpid(), pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int null = open("/dev/null", O_RDONLY);
        if (fd < 0 || null < 0)
            _exit(127);
        dup2(null, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Waits up to ms for pid to exit: its status as a shell shows it, or -1
 * after killing it for running too long. */
static int reap(pid_t pid, int sig, int ms)
{
    int st;
    if (sig)
        kill(pid, sig);
    int64_t end = now_ms() + ms;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        sleep_ms(10);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A datagram socket at dir/notify.sock, named in NOTIFY_SOCKET for the
 * daemon the test starts next. */
static int notify_bind(const char *dir)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/notify.sock", dir);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_msg(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "bind: %s", strerror(errno));
    setenv("NOTIFY_SOCKET", sa.sun_path, 1);
    return fd;
}

/* The next datagram within ms, as a string (static buffer), or NULL. */
static const char *notify_recv(int fd, int ms)
{
    static char buf[512];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, ms) <= 0)
        return NULL;
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    return buf;
}

/* Skips datagrams until one contains want; fails after WAIT_MS. */
static const char *notify_expect(int fd, const char *want)
{
    int64_t end = now_ms() + WAIT_MS;
    for (;;) {
        int left = (int)(end - now_ms());
        const char *m = notify_recv(fd, left > 0 ? left : 0);
        ck_assert_msg(m != NULL, "no \"%s\" on the notify socket within %d ms", want, WAIT_MS);
        if (strstr(m, want))
            return m;
    }
}

/* ---- the units ----------------------------------------------------------- */

/* Copies the units into dir with ExecStart pointing at the built daemon:
 * verify wants it to exist. */
static void stage_units(const char *dir)
{
    int st;
    char *out = run(&st,
                    "set -e; cd %s; sed \"s|/usr/local/bin/|%s/|\" %s/systemd/gsd.service > "
                    "gsd.service; cp %s/systemd/gsd.socket .",
                    dir, gsd_build(), gsd_source(), gsd_source());
    ck_assert_msg(st == 0, "staging the units: %s", out);
    free(out);
}

/* Documentation= names man pages that are installed only by make install. */
static char *verify(const char *dir, int *st)
{
    return run(st,
               "cd %s && SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "
               "gsd.socket gsd.service",
               dir);
}

/* systemd 252 exits 0 on unknown keys and bad values: any line is a failure. */
START_TEST(units_verify_silently)
{
    if (!have("systemd-analyze"))
        return;
    char dir[96];
    temp_dir(dir, sizeof dir);
    stage_units(dir);
    int st;
    char *out = verify(dir, &st);
    ck_assert_msg(st == 0 && out[0] == '\0', "systemd-analyze verify (exit %d) said:\n%s", st, out);
    free(out);
}
END_TEST

/* The check above can fail: a key systemd does not know is reported. */
START_TEST(verify_reports_an_unknown_key)
{
    if (!have("systemd-analyze"))
        return;
    char dir[96];
    temp_dir(dir, sizeof dir);
    stage_units(dir);
    int st;
    char *out = run(&st, "echo ProtectEverything=yes >> %s/gsd.service", dir);
    free(out);
    out = verify(dir, &st);
    ck_assert_msg(strstr(out, "ProtectEverything") != NULL, "verify said:\n%s", out);
    free(out);
}
END_TEST

/* ---- socket activation --------------------------------------------------- */

/* systemd-socket-activate listens on dir/gsd.sock and starts the daemon at
 * the first connection; extra: a second -l, or NULL. */
static pid_t activate(const char *dir, const char *sock, const char *extra_sock)
{
    static char bin[PATH_MAX], mods[PATH_MAX], own[PATH_MAX], log[PATH_MAX];
    snprintf(bin, sizeof bin, "%s/gsd", gsd_build());
    snprintf(mods, sizeof mods, "%s/modules", gsd_build());
    snprintf(own, sizeof own, "%s/own.sock", dir);
    snprintf(log, sizeof log, "%s/gsd.log", dir);
    const char *argv[16] = {"systemd-socket-activate", "-l", sock};
    int n = 3;
    if (extra_sock) {
        argv[n++] = "-l";
        argv[n++] = extra_sock;
    }
    const char *rest[] = {bin, "-s", own, "-M", mods, NULL};
    memcpy(argv + n, rest, sizeof rest);
    char *s = NULL;
    pid_t pid = spawn(argv, log);
    /* It says so once it listens (the socket file exists from bind on). */
    ck_assert_msg(WAIT_UNTIL(WAIT_MS, (s = file_read(log)) && strstr(s, "Listening on")),
                  "systemd-socket-activate did not listen on %s: %s", sock, s ? s : "");
    return pid;
}

START_TEST(socket_activation)
{
    if (!have("systemd-socket-activate"))
        return;
    char dir[96], sock[108];
    temp_dir(dir, sizeof dir);
    snprintf(sock, sizeof sock, "%s/gsd.sock", dir);
    pid_t pid = activate(dir, sock, NULL);

    struct gsd d = {.pid = pid};
    memcpy(d.sock, sock, sizeof d.sock);
    gsc *c = CLIENT(&d);
    gsc_reply *r;
    ck_assert_mp_eq(OK(gsc_ping(c, &r), &r), "'pong'");
    START(c, "counter", "c", mp("5"));
    ck_assert_mp_eq(CALL(c, "c", mp("['add', 10]")), "15");
    client_close(&c);

    ck_assert_int_eq(reap(pid, SIGTERM, WAIT_MS), 0);
    char logp[128];
    snprintf(logp, sizeof logp, "%s/gsd.log", dir);
    char *log = file_read(logp);
    ck_assert_msg(log && strstr(log, "passed by systemd"), "log:\n%s", log);
    /* The socket belongs to whoever made it; the daemon made none of its own. */
    struct stat st;
    ck_assert_int_eq(stat(sock, &st), 0);
    snprintf(logp, sizeof logp, "%s/own.sock", dir);
    ck_assert_int_ne(stat(logp, &st), 0);
}
END_TEST

START_TEST(socket_activation_wants_one_socket)
{
    if (!have("systemd-socket-activate"))
        return;
    char dir[96], sock[108], sock2[108], logp[128];
    temp_dir(dir, sizeof dir);
    snprintf(sock, sizeof sock, "%s/gsd.sock", dir);
    snprintf(sock2, sizeof sock2, "%s/two.sock", dir);
    pid_t pid = activate(dir, sock, sock2);
    gsc *c = gsc_connect(sock); /* the daemon starts now, and refuses */
    ck_assert_int_eq(reap(pid, 0, WAIT_MS), 1);
    gsc_close(&c);
    snprintf(logp, sizeof logp, "%s/gsd.log", dir);
    char *log = file_read(logp);
    ck_assert_msg(log && strstr(log, "LISTEN_FDS=2: expected one socket"), "log:\n%s", log);
}
END_TEST

/* ---- notify -------------------------------------------------------------- */

START_TEST(notify_ready_status_stopping)
{
    char dir[96];
    temp_dir(dir, sizeof dir);
    int fd = notify_bind(dir);
    struct gsd *d = gsd_start();
    ck_assert_str_eq(notify_expect(fd, "READY=1"), "READY=1\nSTATUS=0 servers running");
    gsc *c = CLIENT(d);
    START(c, "counter", "c", NULL);
    ck_assert_str_eq(notify_expect(fd, "STATUS="), "STATUS=1 server running");
    client_close(&c);
    ck_assert_int_eq(gsd_wait_exit(d, SIGTERM, WAIT_MS), 0);
    ck_assert_str_eq(notify_expect(fd, "STOPPING=1"), "STOPPING=1\nSTATUS=stopping 1 server");
    ck_assert_ptr_null(notify_recv(fd, 0));
    gsd_stop(&d);
    close(fd);
}
END_TEST

/* The heartbeat comes from the loop: a callback that blocks it holds the
 * heartbeat back for as long. */
START_TEST(watchdog_heartbeat_from_the_loop)
{
    char dir[96];
    temp_dir(dir, sizeof dir);
    int fd = notify_bind(dir);
    setenv("WATCHDOG_USEC", "200000", 1); /* a heartbeat every 100 ms */
    unsetenv("WATCHDOG_PID");
    struct gsd *d = gsd_start();
    notify_expect(fd, "READY=1");
    for (int i = 0; i < 3; i++)
        notify_expect(fd, "WATCHDOG=1");

    gsc *c = CLIENT(d);
    gsc_reply *r;
    START(c, "forms", "f", NULL);
    OK(gsc_cast(c, "f", mp("['busy', 1500]"), &r), &r);
    int64_t last = now_ms(), gap = 0;
    while (gap < 1000 && now_ms() < last + 10000) {
        notify_expect(fd, "WATCHDOG=1");
        int64_t t = now_ms();
        gap = t - last > gap ? t - last : gap;
        last = t;
    }
    ck_assert_int_ge(gap, 1000);
    client_close(&c);
    ck_assert_int_eq(gsd_stop(&d), 0);
    close(fd);
}
END_TEST

/* Client work never holds back the daemon's own timers: while one
 * connection pipelines 400 calls of 2 ms (800 ms of work), the next
 * heartbeat (every 100 ms) and another client's call deadline (50 ms) come
 * after a few rounds of it, not after the flood (nor after the 256 calls
 * one read used to run). Measured by how many of the flood's replies had
 * been sent by then, not by time. */
START_TEST(client_work_never_holds_back_timers)
{
    char dir[96];
    temp_dir(dir, sizeof dir);
    int fd = notify_bind(dir);
    setenv("WATCHDOG_USEC", "200000", 1);
    unsetenv("WATCHDOG_PID");
    struct gsd *d = gsd_start();
    notify_expect(fd, "READY=1");
    gsc *c = CLIENT(d);
    START(c, "forms", "busy", NULL);
    START(c, "forms", "hold", NULL);
    struct raw *flood = RAW_CONNECT(d), *idle = RAW_CONNECT(d);
    for (uint32_t i = 1; i <= 400; i++)
        RAW_REQUEST(flood, i, "call", mp("['busy', ['busy', 2], 'infinity']"));
    RAW_RECV(flood, 10000); /* under way */
    int answered = 1;
    RAW_REQUEST(idle, 1, "call", mp("['hold', 'noreply', 50]"));
    while (notify_recv(fd, 0)) /* heartbeats sent before the flood */
        answered += raw_drain(flood);
    notify_expect(fd, "WATCHDOG=1");
    answered += raw_drain(flood);
    ck_assert_msg(answered < 128, "the heartbeat waited for %d of the flood's 400 calls", answered);
    const msgpack_object *m = RAW_RECV(idle, 10000);
    ck_assert(mp_eq(mp_item(mp_item(m, 2), 0), "'timeout'"));
    answered += raw_drain(flood);
    ck_assert_msg(answered < 160, "the deadline waited for %d of the flood's 400 calls", answered);
    while (answered < 400)
        ck_assert_int_eq(MP_INT(mp_item(RAW_RECV(flood, 10000), 1)), ++answered);
    raw_close(&flood);
    raw_close(&idle);
    client_close(&c);
    ck_assert_int_eq(gsd_stop(&d), 0);
    close(fd);
}
END_TEST

/* WATCHDOG_PID names another process: the watchdog is not ours. */
START_TEST(watchdog_for_another_pid)
{
    char dir[96];
    temp_dir(dir, sizeof dir);
    int fd = notify_bind(dir);
    setenv("WATCHDOG_USEC", "200000", 1);
    setenv("WATCHDOG_PID", "1", 1);
    struct gsd *d = gsd_start();
    notify_expect(fd, "READY=1");
    const char *m;
    while ((m = notify_recv(fd, 600)) != NULL)
        ck_assert_msg(strstr(m, "WATCHDOG=1") == NULL, "heartbeat sent: %s", m);
    ck_assert_int_eq(gsd_stop(&d), 0);
    close(fd);
}
END_TEST

static Suite *systemd_suite(void)
{
    Suite *s = suite_create("systemd");
    TCase *tc = tcase_create("units");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, units_verify_silently);
    tcase_add_test(tc, verify_reports_an_unknown_key);
    suite_add_tcase(s, tc);
    tc = tcase_create("protocols");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, socket_activation);
    tcase_add_test(tc, socket_activation_wants_one_socket);
    tcase_add_test(tc, notify_ready_status_stopping);
    tcase_add_test(tc, watchdog_heartbeat_from_the_loop);
    tcase_add_test(tc, client_work_never_holds_back_timers);
    tcase_add_test(tc, watchdog_for_another_pid);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(systemd_suite());
}
