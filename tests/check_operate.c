/*
 * check_operate.c — operating gsd from the command line: gsd -t and
 * --version, and gsctl's stats, clients, restart, suspend, resume and top
 * (plain, and on a terminal: driven in tmux, its screen read back).
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ============================== gsd -t, -V ================================= */

static char *write_file(const char *dir, const char *name, const char *text)
{
    static char path[4][256];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return p;
}

START_TEST(gsd_t_accepts_a_good_file_and_starts_nothing)
{
    char dir[] = "/tmp/gsd-t-XXXXXX", cmd[1024];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const char *conf = write_file(dir, "good.conf",
                                  "servers = ({ name = \"c\"; module = \"counter\"; args = \"5\"; "
                                  "restart = \"permanent\"; });\n");
    int st;
    snprintf(cmd, sizeof cmd, "timeout 10 %s/gsd -t -c %s -s %s/x.sock 2>&1; echo rc=$?",
             gsd_build(), conf, dir);
    char *out = shell_output(cmd, &st);
    ck_assert_msg(strstr(out, "rc=0"), "%s", out);
    ck_assert_msg(strstr(out, "configuration ok"), "%s", out);
    struct stat sb;
    snprintf(cmd, sizeof cmd, "%s/x.sock", dir);
    ck_assert_int_ne(stat(cmd, &sb), 0); /* no socket */
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    shell_output(cmd, &st);
}
END_TEST

START_TEST(gsd_t_names_each_bad_line_and_exits_2)
{
    char dir[] = "/tmp/gsd-t-XXXXXX", cmd[1024];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const char *conf =
        write_file(dir, "bad.conf", "limits = { memory = \"lots\"; };\nfrobnicate = 1;\n");
    int st;
    snprintf(cmd, sizeof cmd, "timeout 10 %s/gsd -t -c %s -s %s/x.sock 2>&1 >/dev/null; echo rc=$?",
             gsd_build(), conf, dir);
    char *out = shell_output(cmd, &st);
    char want[600];
    ck_assert_msg(strstr(out, "rc=2"), "%s", out);
    snprintf(want, sizeof want, "%s:1:", conf);
    ck_assert_msg(strstr(out, want), "wanted %s in %s", want, out);
    snprintf(want, sizeof want, "%s:2:", conf);
    ck_assert_msg(strstr(out, want), "wanted %s in %s", want, out);
    /* a -c file that does not exist is an error too */
    snprintf(cmd, sizeof cmd, "timeout 10 %s/gsd -t -c %s/absent.conf 2>&1; echo rc=$?",
             gsd_build(), dir);
    out = shell_output(cmd, &st);
    ck_assert_msg(strstr(out, "rc=2"), "%s", out);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    shell_output(cmd, &st);
}
END_TEST

START_TEST(gsd_version_is_the_version_methods)
{
    struct gsd *d = gsd_start();
    gsc *c = CLIENT(d);
    gsc_reply *r;
    const msgpack_object *v = mp_get(OK(gsc_version(c, &r), &r), "version");
    char want[128], cmd[512];
    snprintf(want, sizeof want, "gsd %.*s\n", (int)v->via.str.size, v->via.str.ptr);
    int st;
    const char *flags[] = {"--version", "-V"};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, "timeout 10 %s/gsd %s", gsd_build(), flags[i]);
        ck_assert_str_eq(shell_output(cmd, &st), want);
        ck_assert_int_eq(st, 0);
    }
    snprintf(cmd, sizeof cmd, "timeout 10 %s/gsd -h", gsd_build());
    char *help = shell_output(cmd, &st);
    ck_assert_msg(strstr(help, "-t ") && strstr(help, "--version"), "%s", help);
    client_close(&c);
    ck_assert_int_eq(gsd_stop(&d), 0);
}
END_TEST

/* ============================ gsctl's commands ============================= */

START_TEST(gsctl_stats_clients_restart_suspend_resume)
{
    struct gsd *d = gsd_start();
    char *out, *err;
    ck_assert_int_eq(run_gsctl(d, &out, &err, "start", "counter", "c", "3", NULL), 0);
    uint64_t id = strtoull(out, NULL, 10);
    ck_assert_int_eq(run_gsctl(d, &out, &err, "call", "c", "increment", NULL), 0);
    ck_assert_int_eq(run_gsctl(d, &out, &err, "stats", NULL), 0);
    ck_assert_msg(strstr(out, "\"uptime_ms\":") && strstr(out, "\"calls\":1") &&
                      strstr(out, "\"servers\":1"),
                  "%s", out);
    ck_assert_int_eq(line_count(out), 1);
    ck_assert_int_eq(run_gsctl(d, &out, &err, "clients", NULL), 0);
    ck_assert_msg(out[0] == '[' && strstr(out, "\"admin\":true") && strstr(out, "\"held\":false"),
                  "%s", out);
    ck_assert_int_eq(run_gsctl(d, &out, &err, "suspend", "c", NULL), 0);
    ck_assert_str_eq(out, "null\n");
    ck_assert_int_eq(run_gsctl(d, &out, &err, "cast", "c", "increment", NULL), 0);
    ck_assert_int_eq(run_gsctl(d, &out, &err, "info", "c", NULL), 0);
    ck_assert_msg(strstr(out, "\"status\":\"suspended\"") && strstr(out, "\"mailbox\":1"), "%s",
                  out);
    ck_assert_int_eq(run_gsctl(d, &out, &err, "resume", "c", NULL), 0);
    ck_assert_int_eq(run_gsctl(d, &out, &err, "call", "c", "get", NULL), 0);
    ck_assert_str_eq(out, "5\n");
    ck_assert_int_eq(run_gsctl(d, &out, &err, "restart", "c", NULL), 0);
    uint64_t again = strtoull(out, NULL, 10);
    ck_assert_uint_gt(again, id);
    ck_assert_int_eq(run_gsctl(d, &out, &err, "call", "c", "get", NULL), 0);
    ck_assert_str_eq(out, "3\n");
    ck_assert_int_eq(run_gsctl(d, &out, &err, "restart", id_str(again), NULL), 0);
    ck_assert_int_eq(run_gsctl(d, &out, &err, "restart", "ghost", NULL), 1);
    ck_assert_msg(strstr(err, "noproc: ghost"), "%s", err);
    ck_assert_int_eq(run_gsctl(d, &out, &err, "suspend", "ghost", NULL), 1);
    ck_assert_int_eq(run_gsctl(d, &out, &err, "restart", NULL), 2);
    ck_assert_int_eq(run_gsctl(d, &out, &err, "stats", "x", NULL), 2);
    /* metrics: the text as it is, not a JSON string; -q: nothing */
    ck_assert_int_eq(run_gsctl(d, &out, &err, "metrics", NULL), 0);
    ck_assert_msg(strncmp(out, "# HELP ", 7) == 0 &&
                      strstr(out, "\ngsd_servers{module=\"counter\""),
                  "%.200s", out);
    ck_assert_int_eq(run_gsctl(d, &out, &err, "-q", "metrics", NULL), 0);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(gsd_stop(&d), 0);
}
END_TEST

/* Not on a terminal: one snapshot, then exit 0. */
START_TEST(gsctl_top_plain_is_one_snapshot)
{
    struct gsd *d = gsd_start();
    gsc *c = CLIENT(d);
    START(c, "counter", "busy", NULL);
    START(c, "counter", "idle", NULL);
    for (int i = 0; i < 50; i++)
        CALL(c, "busy", mp("'increment'"));
    char *out, *err;
    ck_assert_int_eq(run_gsctl(d, &out, &err, "top", "200", NULL), 0);
    ck_assert_msg(strstr(out, "gsd ") && strstr(out, "servers 2") && strstr(out, "MSG/S") &&
                      strstr(out, "MAILBOX"),
                  "%s", out);
    ck_assert_ptr_null(strchr(out, '\033')); /* no escapes */
    char *busy = strstr(out, " busy "), *idle = strstr(out, " idle ");
    ck_assert_msg(busy && idle && busy < idle, "busiest first:\n%s", out);
    ck_assert_int_eq(run_gsctl(d, &out, &err, "top", "x", NULL), 2);
    client_close(&c);
    ck_assert_int_eq(gsd_stop(&d), 0);
}
END_TEST

/* ================================ top in tmux ============================== */

static char tmux_socket[64]; /* this suite's own tmux server: -L NAME */

static void tmux_setup(void)
{
    snprintf(tmux_socket, sizeof tmux_socket, "gsdtop%d", (int)getpid());
}

/* In the parent, after the tests: whatever a failed test left running,
 * and the socket file, which tmux leaves behind. */
static void tmux_teardown(void)
{
    char cmd[256];
    int st;
    snprintf(cmd, sizeof cmd,
             "timeout 5 tmux -L %s kill-server 2>/dev/null; "
             "rm -f \"${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/%s\"",
             tmux_socket, tmux_socket);
    shell_output(cmd, &st);
}

static char *tmux(const char *args)
{
    char cmd[2048];
    int st;
    snprintf(cmd, sizeof cmd, "TERM=xterm timeout 5 tmux -L %s -f /dev/null %s 2>&1", tmux_socket,
             args);
    return shell_output(cmd, &st);
}

static char *screen(void)
{
    return tmux("capture-pane -p -t top");
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)) != NULL; p += strlen(what))
        n++;
    return n;
}

static bool above(const char *s, const char *a, const char *b)
{
    const char *pa = strstr(s, a), *pb = strstr(s, b);
    return pa && pb && pa < pb;
}

START_TEST(gsctl_top_on_a_terminal)
{
    struct gsd *d = gsd_start();
    gsc *c = CLIENT(d);
    gsc_reply *r;
    START(c, "counter", "busy", NULL);
    START(c, "counter", "idle", NULL);
    START(c, "counter", "held", NULL);
    for (int i = 0; i < 50; i++)
        CALL(c, "busy", mp("'increment'"));
    OK(gsc_request(c, "suspend", mp("['held']"), 5000, &r), &r);
    for (int i = 0; i < 5; i++)
        OK(gsc_cast(c, "held", mp("'increment'"), &r), &r);

    /* top twice, ended by q then by Ctrl-C, each followed by what it left
     * the terminal as: cooked (icanon, echo) once it has gone. */
    char script[1024], args[1400];
    snprintf(script, sizeof script,
             "trap : INT\n" /* the shell outlives the Ctrl-C that ends top */
             "G='%s/gsctl -s %s'\n"
             "$G top 300; echo \"TOP1_EXIT=$?\"\n"
             "stty -a | grep -q -- '-icanon' && echo TTY_RAW || echo TTY_COOKED\n"
             "read next\n" /* a line: the terminal is cooked again */
             "$G top 300; echo \"TOP2_EXIT=$?\"\n"
             "stty -a | grep -q -- '-icanon' && echo TTY_RAW || echo TTY_COOKED\n"
             "sleep 60\n",
             gsd_build(), d->sock);
    FILE *f = fopen(gsd_path(d, "top.sh"), "w");
    ck_assert_ptr_nonnull(f);
    fputs(script, f);
    fclose(f);
    snprintf(args, sizeof args, "new-session -d -s top -x 120 -y 30 'sh %s'",
             gsd_path(d, "top.sh"));
    ck_assert_str_eq(tmux(args), "");

    ck_assert_msg(WAIT_UNTIL(5000, strstr(screen(), "MSG/S") && strstr(screen(), "held")), "%s",
                  screen());
    char *s = screen();
    ck_assert_msg(strstr(s, "servers 3") && strstr(s, "sorted by messages/s"), "%s", s);
    ck_assert_msg(above(s, " busy ", " idle "), "busiest first:\n%s", s);

    tmux("send-keys -t top b");
    ck_assert_msg(WAIT_UNTIL(3000, strstr(screen(), "sorted by mailbox")), "%s", screen());
    s = screen();
    ck_assert_msg(above(s, " held ", " busy ") && strstr(s, "suspended"), "%s", s);
    tmux("send-keys -t top n");
    ck_assert_msg(WAIT_UNTIL(3000, strstr(screen(), "sorted by name")), "%s", screen());
    ck_assert_msg(above(screen(), " busy ", " held "), "%s", screen());

    tmux("send-keys -t top q");
    ck_assert_msg(WAIT_UNTIL(3000, strstr(screen(), "TOP1_EXIT=0")), "%s", screen());
    ck_assert_msg(WAIT_UNTIL(3000, count(screen(), "TTY_COOKED") == 1), "%s", screen());
    ck_assert_msg(!strstr(screen(), "MSG/S"), "the main screen is back:\n%s", screen());
    tmux("send-keys -t top again Enter");
    ck_assert_msg(WAIT_UNTIL(5000, strstr(screen(), "MSG/S")), "%s", screen());
    tmux("send-keys -t top C-c");
    ck_assert_msg(WAIT_UNTIL(3000, strstr(screen(), "TOP2_EXIT=0")), "%s", screen());
    ck_assert_msg(WAIT_UNTIL(3000, count(screen(), "TTY_COOKED") == 2), "%s", screen());
    ck_assert_int_eq(count(screen(), "TTY_RAW"), 0);

    tmux("kill-server");
    client_close(&c);
    ck_assert_int_eq(gsd_stop(&d), 0);
}
END_TEST

static Suite *operate_suite(void)
{
    Suite *s = suite_create("operate");
    TCase *tc;

    tc = tcase_create("gsd");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, gsd_t_accepts_a_good_file_and_starts_nothing);
    tcase_add_test(tc, gsd_t_names_each_bad_line_and_exits_2);
    tcase_add_test(tc, gsd_version_is_the_version_methods);
    suite_add_tcase(s, tc);

    tc = tcase_create("gsctl");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, tmux_setup, tmux_teardown);
    tcase_add_test(tc, gsctl_stats_clients_restart_suspend_resume);
    tcase_add_test(tc, gsctl_top_plain_is_one_snapshot);
    tcase_add_test(tc, gsctl_top_on_a_terminal);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(operate_suite());
}
