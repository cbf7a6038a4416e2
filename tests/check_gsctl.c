/*
 * check_gsctl.c — the command-line contract: gsctl against a real gsd on a
 * throwaway socket. Exit statuses 0 ok, 1 the daemon answered an error
 * ("CODE: detail" on stderr), 2 usage, 3 no connection; one line of JSON
 * on stdout; text that is not JSON is a string, unless it starts as JSON
 * does; options before or after the command; errors name the server; a
 * user without a daemon of their own reaches the system daemon.
 */
#include "harness.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static struct gsd *D;

static void setup(void)
{
    D = gsd_start();
}

static void teardown(void)
{
    ck_assert_int_eq(gsd_stop(&D), 0);
}

/* Runs gsctl and wants exit 0; returns stdout. */
#define GSCTL_OK(...) gsctl_ok_at(__FILE__, __LINE__, __VA_ARGS__, NULL)
__attribute__((sentinel)) static char *gsctl_ok_at(const char *file, int line, ...)
{
    const char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, line);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && argc < 31)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    char *out, *err;
    struct proc *p = gsctl_spawn(D->sock, argv);
    int st = gsctl_wait(&p, 10000, &out, &err);
    if (st != 0)
        _ck_assert_failed(file, line, "Failed", "gsctl %s: exit %d, stdout '%s', stderr '%s'",
                          argv[0], st, out, err);
    return out;
}

/* The squeezed JSON of stdout, with the check that it is one line. */
#define ONE_LINE(out) one_line_at(__FILE__, __LINE__, (out))
static const char *one_line_at(const char *file, int line, const char *out)
{
    size_t n = strlen(out);
    if (n == 0 || out[n - 1] != '\n' || line_count(out) != 1)
        _ck_assert_failed(file, line, "Failed", "not one line of output: '%s'", out);
    return json_squeeze(out);
}

static bool contains(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

/* ---- statuses ------------------------------------------------------------ */

START_TEST(ping_exit_0_prints_pong)
{
    ck_assert_str_eq(GSCTL_OK("ping"), "\"pong\"\n");
}
END_TEST

START_TEST(error_exit_1_code_and_detail_on_stderr)
{
    char *out, *err;
    ck_assert_int_eq(run_gsctl(D, &out, &err, "call", "ghost", "get", NULL), 1);
    ck_assert_msg(strncmp(err, "noproc: ", 8) == 0, "stderr: '%s'", err);
    ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(already_started_detail_is_the_id)
{
    char *out, *err;
    char *id = GSCTL_OK("start", "counter", "c");
    id[strcspn(id, "\n")] = '\0';
    ck_assert_int_eq(run_gsctl(D, &out, &err, "start", "counter", "c", NULL), 1);
    ck_assert_msg(strncmp(err, "already_started: ", 17) == 0 && contains(err + 17, id),
                  "stderr: '%s' (id %s)", err, id);
}
END_TEST

START_TEST(usage_errors_exit_2)
{
    char *out, *err;
    struct proc *p = gsctl_spawn(D->sock, (const char *[]){NULL});
    ck_assert_int_eq(gsctl_wait(&p, 10000, &out, &err), 2);
    ck_assert_int_eq(run_gsctl(D, &out, &err, "frobnicate", NULL), 2);
    ck_assert_int_eq(run_gsctl(D, &out, &err, "call", NULL), 2);
    ck_assert_int_eq(run_gsctl(D, &out, &err, "call", "c", NULL), 2);
    ck_assert_int_eq(run_gsctl(D, &out, &err, "start", NULL), 2);
    ck_assert_int_eq(run_gsctl(D, &out, &err, "whereis", NULL), 2);
    ck_assert_int_eq(run_gsctl(D, &out, &err, "--no-such-flag", "ping", NULL), 2);
    /* JSON with a number no 64-bit integer holds is neither sent nor a string */
    ck_assert_int_eq(run_gsctl(D, &out, &err, "call", "c", "[\"x\", 18446744073709551616]", NULL),
                     2);
    ck_assert_int_eq(run_gsctl(D, &out, &err, "-t", "0", "ping", NULL), 2);
    ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(no_daemon_exit_3)
{
    char *out, *err;
    const char *argv[] = {"ping", NULL};
    struct proc *p = gsctl_spawn("/nonexistent/gsd.sock", argv);
    ck_assert_int_eq(gsctl_wait(&p, 10000, &out, &err), 3);
    ck_assert_str_eq(out, "");
    ck_assert_str_ne(err, "");
}
END_TEST

START_TEST(help_exits_0)
{
    char *out, *err;
    ck_assert_int_eq(run_gsctl(D, &out, &err, "-h", NULL), 0);
    ck_assert_msg(contains(out, "usage") || contains(err, "usage"), "no usage text");
    ck_assert_int_eq(run_gsctl(D, &out, &err, "call", "-h", NULL), 0);
}
END_TEST

START_TEST(socket_from_environment)
{
    char *out, *err;
    const char *argv[] = {"ping", NULL};
    setenv("GSD_SOCKET", D->sock, 1); /* this test's own process */
    struct proc *p = gsctl_spawn(NULL, argv);
    ck_assert_int_eq(gsctl_wait(&p, 10000, &out, &err), 0);
    ck_assert_str_eq(out, "\"pong\"\n");
    setenv("GSD_SOCKET", "/nonexistent/gsd.sock", 1);
    ck_assert_str_eq(GSCTL_OK("ping"), "\"pong\"\n"); /* -s wins */
}
END_TEST

/* ---- commands -------------------------------------------------------------- */

START_TEST(start_prints_the_id_and_call_uses_it)
{
    char *id = GSCTL_OK("start", "counter", "c", "5");
    ck_assert_msg(strspn(id, "0123456789") == strlen(id) - 1 && line_count(id) == 1,
                  "start printed '%s'", id);
    ck_assert_str_eq(GSCTL_OK("whereis", "c"), id);
    id[strlen(id) - 1] = '\0';
    ck_assert_str_eq(GSCTL_OK("call", id, "get"), "5\n");
    ck_assert_str_eq(GSCTL_OK("call", "c", "get"), "5\n");
}
END_TEST

START_TEST(text_that_is_not_json_is_a_string)
{
    GSCTL_OK("start", "probe", "p");
    ck_assert_str_eq(GSCTL_OK("call", "p", "[\"echo\", \"two words\"]"), "\"two words\"\n");
    GSCTL_OK("send", "p", "hello there");
    GSCTL_OK("send", "p", "not {json");
    GSCTL_OK("send", "p", "42");
    ck_assert_str_eq(ONE_LINE(GSCTL_OK("call", "p", "infos")),
                     "[\"hello there\",\"not {json\",42]\n");
}
END_TEST

START_TEST(json_values_round_trip)
{
    GSCTL_OK("start", "probe", "p");
    ck_assert_str_eq(ONE_LINE(GSCTL_OK("call", "p", "[\"echo\", {\"a\": [1, null, true, -2]}]")),
                     "{\"a\":[1,null,true,-2]}\n");
}
END_TEST

START_TEST(counter_through_gsctl)
{
    GSCTL_OK("start", "counter", "c");
    ck_assert_str_eq(GSCTL_OK("call", "c", "increment"), "1\n");
    ck_assert_str_eq(GSCTL_OK("call", "c", "[\"add\", 10]"), "11\n");
    ck_assert_str_eq(GSCTL_OK("cast", "c", "reset"), "null\n");
    ck_assert_str_eq(GSCTL_OK("call", "c", "get"), "0\n");
}
END_TEST

START_TEST(state_prints_format_state)
{
    GSCTL_OK("start", "counter", "c", "12");
    ck_assert_str_eq(GSCTL_OK("state", "c"), "12\n");
}
END_TEST

START_TEST(start_args_and_anonymous)
{
    GSCTL_OK("start", "stack", "s", "[1, 2]");
    ck_assert_str_eq(GSCTL_OK("call", "s", "pop"), "1\n");
    char *id = GSCTL_OK("start", "counter", "-", "9");
    id[strcspn(id, "\n")] = '\0';
    ck_assert_str_eq(GSCTL_OK("call", id, "get"), "9\n");
}
END_TEST

START_TEST(start_options_as_flags)
{
    char *out, *err;
    GSCTL_OK("start", "--restart", "transient", "counter", "r");
    ck_assert_str_eq(GSCTL_OK("call", "r", "get"), "0\n");
    ck_assert_int_eq(run_gsctl(D, &out, &err, "start", "--timeout", "100", "forms", "slow",
                               "{\"init\": \"slow\", \"ms\": 600}", NULL),
                     1);
    ck_assert_msg(strncmp(err, "timeout: ", 9) == 0, "stderr: '%s'", err);
    /* --link: the server ends when gsctl's connection does */
    GSCTL_OK("start", "--link", "counter", "linked");
    ck_assert(WAIT_UNTIL(2000, strcmp(GSCTL_OK("whereis", "linked"), "null\n") == 0));
}
END_TEST

START_TEST(stop_with_and_without_reason)
{
    char *out, *err, args[256];
    snprintf(args, sizeof args, "{\"terminate_log\": \"%s\"}", gsd_path(D, "p.log"));
    GSCTL_OK("start", "probe", "p", args);
    ck_assert_str_eq(GSCTL_OK("stop", "p", "[\"shutdown\", \"cli\"]"), "null\n");
    ck_assert_str_eq(json_lines(gsd_path(D, "p.log")), "[\"shutdown\",\"cli\"]\n");
    ck_assert_str_eq(GSCTL_OK("whereis", "p"), "null\n");
    snprintf(args, sizeof args, "{\"terminate_log\": \"%s\"}", gsd_path(D, "q.log"));
    GSCTL_OK("start", "probe", "q", args);
    ck_assert_str_eq(GSCTL_OK("stop", "q"), "null\n");
    ck_assert_str_eq(json_lines(gsd_path(D, "q.log")), "\"normal\"\n");
    ck_assert_int_eq(run_gsctl(D, &out, &err, "stop", "q", NULL), 1);
    ck_assert_msg(strncmp(err, "noproc: ", 8) == 0, "stderr: '%s'", err);
}
END_TEST

START_TEST(cast_and_send_print_null)
{
    GSCTL_OK("start", "probe", "p");
    ck_assert_str_eq(GSCTL_OK("send", "p", "[1, \"x\"]"), "null\n");
    ck_assert_str_eq(GSCTL_OK("cast", "p", "ignored"), "null\n");
    ck_assert_str_eq(ONE_LINE(GSCTL_OK("call", "p", "infos")), "[[1,\"x\"]]\n");
}
END_TEST

START_TEST(list_info_modules_load)
{
    GSCTL_OK("start", "counter", "c");
    const char *list = ONE_LINE(GSCTL_OK("list"));
    ck_assert_msg(contains(list, "\"name\":\"c\"") && contains(list, "\"module\":\"counter\""),
                  "list: %s", list);
    const char *info = ONE_LINE(GSCTL_OK("info", "c"));
    ck_assert_msg(contains(info, "\"module\":\"counter\"") && contains(info, "\"status\":"),
                  "info: %s", info);
    const char *load = ONE_LINE(GSCTL_OK("load", "forms"));
    ck_assert_msg(contains(load, "\"name\":\"forms\"") && contains(load, "\"vsn\":3"), "load: %s",
                  load);
    const char *mods = ONE_LINE(GSCTL_OK("modules"));
    ck_assert_msg(contains(mods, "\"name\":\"counter\"") && contains(mods, "\"name\":\"forms\""),
                  "modules: %s", mods);
}
END_TEST

START_TEST(timeout_flag_bounds_a_call)
{
    char *out, *err;
    GSCTL_OK("start", "probe", "p");
    ck_assert_int_eq(
        run_gsctl(D, &out, &err, "-t", "200", "call", "p", "[\"reply_after\", 3000, 1]", NULL), 1);
    ck_assert_msg(strncmp(err, "timeout: ", 9) == 0, "stderr: '%s'", err);
    ck_assert_str_eq(GSCTL_OK("-t", "2000", "call", "p", "[\"reply_after\", 100, 1]"), "1\n");
}
END_TEST

START_TEST(monitor_waits_and_prints_the_down)
{
    char *out, *err;
    GSCTL_OK("start", "probe", "p");
    const char *argv[] = {"monitor", "p", NULL};
    struct proc *m = gsctl_spawn(D->sock, argv);
    sleep_ms(300); /* let it subscribe */
    GSCTL_OK("stop", "p", "[\"shutdown\", \"bye-bye\"]");
    ck_assert_int_eq(gsctl_wait(&m, 5000, &out, &err), 0);
    ck_assert_msg(line_count(out) == 1 && contains(out, "bye-bye"), "monitor printed '%s'", out);
}
END_TEST

START_TEST(monitor_of_dead_server_prints_noproc)
{
    char *out, *err;
    ck_assert_int_eq(run_gsctl(D, &out, &err, "-t", "3000", "monitor", "ghost", NULL), 0);
    ck_assert_msg(contains(out, "noproc"), "monitor printed '%s'", out);
}
END_TEST

START_TEST(broken_connection_exit_3)
{
    char *out, *err;
    struct gsd *d = gsd_start();
    const char *args[] = {"start", "probe", "p", NULL};
    struct proc *p = gsctl_spawn(d->sock, args);
    ck_assert_int_eq(gsctl_wait(&p, 10000, &out, &err), 0);
    const char *call[] = {"call", "p", "[\"reply_after\", 4000, 1]", NULL};
    p = gsctl_spawn(d->sock, call);
    sleep_ms(300);
    kill(d->pid, SIGKILL);
    ck_assert_int_eq(gsctl_wait(&p, 10000, &out, &err), 3);
    ck_assert_int_eq(gsd_stop(&d), 128 + SIGKILL);
}
END_TEST

/* ---- batch, output modes, completion -------------------------------------- */

/* Writes text to a file in the daemon's directory; returns its path. */
static const char *write_file(const struct gsd *d, const char *name, const char *text)
{
    const char *path = gsd_path(d, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

START_TEST(batch_prints_one_result_per_line_in_order)
{
    const char *file = write_file(D, "b.txt",
                                  "start counter c 5\n"
                                  "start probe p\n"
                                  "# a comment, then a blank line\n"
                                  "\n"
                                  "call p '[\"reply_after\", 300, \"slow\"]'\n"
                                  "call c '[\"add\", 10]'\n"
                                  "call p \"[\\\"echo\\\", \\\"two words\\\"]\"\n"
                                  "call c get\n"
                                  "ping");
    char *out, *err;
    ck_assert_int_eq(run_gsctl(D, &out, &err, "batch", file, NULL), 0);
    ck_assert_str_eq(out, "{\"ok\":1}\n"
                          "{\"ok\":2}\n"
                          "{\"ok\":\"slow\"}\n"
                          "{\"ok\":15}\n"
                          "{\"ok\":\"two words\"}\n"
                          "{\"ok\":15}\n"
                          "{\"ok\":\"pong\"}\n");
    ck_assert_int_eq(line_count(out), 7);
}
END_TEST

START_TEST(batch_exits_1_when_any_failed)
{
    const char *file = write_file(D, "b.txt",
                                  "ping\n"
                                  "call ghost get\n"
                                  "frobnicate now\n"
                                  "call c 'unterminated\n"
                                  "monitor c\n"
                                  "ping\n");
    char *out, *err;
    ck_assert_int_eq(run_gsctl(D, &out, &err, "batch", file, NULL), 1);
    ck_assert_str_eq(out,
                     "{\"ok\":\"pong\"}\n"
                     "{\"error\":\"noproc\",\"detail\":\"no such server\"}\n"
                     "{\"error\":\"usage\",\"detail\":\"unknown command \\\"frobnicate\\\"\"}\n"
                     "{\"error\":\"usage\",\"detail\":\"unterminated '\"}\n"
                     "{\"error\":\"usage\",\"detail\":\"monitor cannot run in a batch\"}\n"
                     "{\"ok\":\"pong\"}\n");
    ck_assert_int_eq(run_gsctl(D, &out, &err, "-q", "batch", file, NULL), 1);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(run_gsctl(D, &out, &err, "batch", "/nonexistent/batch", NULL), 2);
}
END_TEST

START_TEST(batch_reads_stdin_and_writes_msgpack)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "printf 'ping\\ncall ghost get\\n' | timeout 10 %s/gsctl -s %s batch; echo \" $?\"",
             gsd_build(), D->sock);
    int status;
    ck_assert_str_eq(
        shell_output(cmd, &status),
        "{\"ok\":\"pong\"}\n{\"error\":\"noproc\",\"detail\":\"no such server\"}\n 1\n");
    snprintf(cmd, sizeof cmd, "echo ping | timeout 10 %s/gsctl -s %s --msgpack batch -",
             gsd_build(), D->sock);
    ck_assert_str_eq(shell_output(cmd, &status), "\x81\xa2ok\xa4pong"); /* {"ok": "pong"} */
    ck_assert_int_eq(status, 0);
}
END_TEST

START_TEST(batch_pipelines_thousands)
{
    enum { N = 5000 };
    char *text = malloc(N * 24 + 64);
    size_t len = 0;
    len += (size_t)sprintf(text + len, "start counter c\n");
    for (int i = 0; i < N; i++)
        len += (size_t)sprintf(text + len, "call c increment\n");
    const char *file = write_file(D, "big.txt", text);
    free(text);
    char *out, *err;
    int64_t t0 = now_ms();
    ck_assert_int_eq(run_gsctl(D, &out, &err, "batch", file, NULL), 0);
    int64_t ms = now_ms() - t0;
    ck_assert_int_eq(line_count(out), N + 1);
    /* Every answer in order: the k-th increment answers k. */
    char *line = strchr(out, '\n') + 1;
    for (int k = 1; k <= N; k++) {
        char want[32];
        int n = snprintf(want, sizeof want, "{\"ok\":%d}\n", k);
        ck_assert_msg(strncmp(line, want, (size_t)n) == 0, "line %d: %.20s", k, line);
        line += n;
    }
    printf("bench: gsctl batch ran %d calls in %lld ms (%.0f/s)\n", N, (long long)ms,
           N * 1000.0 / (ms ? ms : 1));
}
END_TEST

START_TEST(batch_connection_lost_exits_3)
{
    struct gsd *d = gsd_start();
    gsc *c = CLIENT(d);
    START(c, "probe", "p", NULL);
    client_close(&c);
    const char *file = write_file(d, "b.txt",
                                  "ping\n"
                                  "call p '[\"reply_after\", 5000, 1]'\n"
                                  "call p '[\"reply_after\", 5000, 2]'\n");
    const char *argv[] = {"batch", file, NULL};
    struct proc *p = gsctl_spawn(d->sock, argv);
    sleep_ms(300);
    gsd_wait_exit(d, SIGKILL, 5000);
    char *out, *err;
    ck_assert_int_eq(gsctl_wait(&p, 10000, &out, &err), 3);
    ck_assert_int_eq(line_count(out), 3);
    ck_assert_msg(strncmp(out, "{\"ok\":\"pong\"}\n{\"error\":\"connection\"", 34) == 0, "out: %s",
                  out);
    gsd_stop(&d);
}
END_TEST

START_TEST(output_modes)
{
    char *out, *err;
    GSCTL_OK("start", "probe", "p");
    ck_assert_str_eq(GSCTL_OK("-p", "call", "p", "[\"echo\", {\"a\": [1]}]"),
                     "{\n  \"a\": [\n    1\n  ]\n}\n");
    /* --msgpack: the result's own bytes, {"a": [1]} */
    ck_assert_str_eq(GSCTL_OK("--msgpack", "call", "p", "[\"echo\", {\"a\": [1]}]"), "\x81\xa1"
                                                                                     "a\x91\x01");
    ck_assert_str_eq(GSCTL_OK("-q", "ping"), "");
    ck_assert_int_eq(run_gsctl(D, &out, &err, "--quiet", "call", "ghost", "get", NULL), 1);
    ck_assert_str_eq(out, "");
    ck_assert_str_eq(err, "");
}
END_TEST

START_TEST(list_pages_through_more_servers_than_one_page)
{
    /* More than gsctl's page of 1000: list asks page after page and
     * prints them as the one array `which []` answers (a batch's list). */
    enum { N = 2345 };
    char *text = malloc(N * 24 + 64);
    size_t len = 0;
    for (int i = 0; i < N; i++)
        len += (size_t)sprintf(text + len, "start counter c%d\n", i);
    const char *file = write_file(D, "starts.txt", text);
    free(text);
    char *out, *err;
    ck_assert_int_eq(run_gsctl(D, &out, &err, "-q", "batch", file, NULL), 0);
    file = write_file(D, "list.txt", "list\n");
    ck_assert_int_eq(run_gsctl(D, &out, &err, "batch", file, NULL), 0);
    const char *whole = out; /* {"ok":[...]}\n */
    const char *list = GSCTL_OK("list");
    ck_assert_int_eq(line_count(list), 1);
    ck_assert_uint_eq(strlen(whole), strlen(list) + 7);
    ck_assert_msg(strncmp(whole + 6, list, strlen(list) - 1) == 0, "list differs from which []");
    /* Every server once, in id order. */
    uint64_t last = 0;
    int n = 0;
    for (const char *p = strstr(list, "{\"id\":"); p; p = strstr(p + 1, "{\"id\":")) {
        uint64_t id = strtoull(p + 6, NULL, 10);
        ck_assert_uint_gt(id, last);
        last = id;
        n++;
    }
    ck_assert_int_eq(n, N);
    ck_assert(contains(list, "\"name\":\"c0\",") && contains(list, "\"name\":\"c2344\","));
    /* The other output modes, as they print the whole array. */
    const char *pretty = GSCTL_OK("--pretty", "list");
    ck_assert_int_eq(line_count(pretty), N * 6 + 2);
    char *flat = json_squeeze(pretty), *w = flat; /* no blanks, and no newlines: */
    for (const char *r = flat; *r; r++)
        if (*r != '\n')
            *w++ = *r;
    *w = '\0';
    ck_assert_msg(strncmp(flat, list, strlen(list) - 1) == 0 && strlen(flat) == strlen(list) - 1,
                  "pretty list differs from list");
    char cmd[2048]; /* --msgpack: the bytes of which [], after batch's {"ok": */
    snprintf(cmd, sizeof cmd,
             "cd %s && timeout 10 %s/gsctl -s %s --msgpack batch list.txt | tail -c +5 >whole && "
             "timeout 10 %s/gsctl -s %s --msgpack list >list && cmp whole list && "
             "od -An -tx1 -N3 list",
             D->dir, gsd_build(), D->sock, gsd_build(), D->sock);
    int status;
    ck_assert_str_eq(shell_output(cmd, &status), " dc 09 29\n"); /* an array of 2345 */
    ck_assert_int_eq(status, 0);
    ck_assert_str_eq(GSCTL_OK("-q", "list"), "");
    /* complete servers pages too */
    ck_assert_int_eq(line_count(GSCTL_OK("complete", "servers")), N);
}
END_TEST

START_TEST(complete_names_from_the_daemon)
{
    GSCTL_OK("start", "counter", "alpha");
    GSCTL_OK("start", "stack", "beta");
    GSCTL_OK("start", "counter"); /* anonymous: no name to offer */
    ck_assert_str_eq(GSCTL_OK("complete", "servers"), "alpha\nbeta\n");
    ck_assert_str_eq(GSCTL_OK("complete", "modules"), "counter\nstack\n");
    ck_assert(contains(GSCTL_OK("complete", "commands"), "\nbatch\n"));
}
END_TEST

/* The rules the command table sets apart from "one request, one answer". */
START_TEST(per_command_rules)
{
    char *out, *err;
    /* complete commands reads the table: no daemon needed; the rest ask it,
     * so without one they exit 3 before WHAT is even checked */
    struct proc *p =
        gsctl_spawn("/nonexistent/gsd.sock", (const char *[]){"complete", "commands", NULL});
    ck_assert_int_eq(gsctl_wait(&p, 10000, &out, &err), 0);
    ck_assert(contains(out, "\nmonitor\n"));
    p = gsctl_spawn("/nonexistent/gsd.sock", (const char *[]){"complete", "servers", NULL});
    ck_assert_int_eq(gsctl_wait(&p, 10000, &out, &err), 3);
    p = gsctl_spawn("/nonexistent/gsd.sock", (const char *[]){"complete", "nonsense", NULL});
    ck_assert_int_eq(gsctl_wait(&p, 10000, &out, &err), 3);
    ck_assert_int_eq(run_gsctl(D, &out, &err, "complete", "nonsense", NULL), 2);
    /* only demonitor's argument must be a number; only start takes --options */
    ck_assert_int_eq(run_gsctl(D, &out, &err, "demonitor", "x", NULL), 2);
    ck_assert_msg(contains(err, "REF is a number, not \"x\""), "stderr: '%s'", err);
    ck_assert_int_eq(run_gsctl(D, &out, &err, "call", "--link", "c", "get", NULL), 2);
    ck_assert_msg(contains(err, "unknown option --link"), "stderr: '%s'", err);
    /* batch runs one request a line: not batch, complete or monitor */
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "printf 'batch\\ncomplete commands\\ndemonitor x\\n' | %s/gsctl -s %s batch; echo $?",
             gsd_build(), D->sock);
    int status;
    ck_assert_str_eq(shell_output(cmd, &status),
                     "{\"error\":\"usage\",\"detail\":\"batch cannot run in a batch\"}\n"
                     "{\"error\":\"usage\",\"detail\":\"complete cannot run in a batch\"}\n"
                     "{\"error\":\"usage\",\"detail\":\"REF is a number, not \\\"x\\\"\"}\n"
                     "1\n");
    ck_assert_int_eq(status, 0);
}
END_TEST

START_TEST(bash_completion_asks_the_daemon)
{
    GSCTL_OK("start", "counter", "alpha");
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "PATH=%s:$PATH timeout 10 bash -c '"
             "source %s/client/gsctl.bash;"
             "COMP_WORDS=(gsctl -s %s call \"\"); COMP_CWORD=4; _gsctl; echo \"${COMPREPLY[*]}\";"
             "COMP_WORDS=(gsctl sta); COMP_CWORD=1; _gsctl; echo \"${COMPREPLY[*]}\";"
             /* options after the command: -s there too, and offered there */
             "COMP_WORDS=(gsctl call -t 100 -s %s \"\"); COMP_CWORD=6; _gsctl;"
             " echo \"${COMPREPLY[*]}\";"
             "COMP_WORDS=(gsctl call alpha get --pre); COMP_CWORD=4; _gsctl;"
             " echo \"${COMPREPLY[*]}\";"
             "COMP_WORDS=(gsctl start counter x --re); COMP_CWORD=4; _gsctl;"
             " echo \"${COMPREPLY[*]}\"' 2>&1",
             gsd_build(), gsd_source(), D->sock, D->sock);
    int status;
    const char *out = shell_output(cmd, &status);
    ck_assert_int_eq(status, 0);
    ck_assert_str_eq(out, "alpha\nstart state stats\nalpha\n--pretty\n--restart\n");
}
END_TEST

/* ---- the command-line contract's rules ------------------------------------- */

START_TEST(json_looking_text_must_be_json)
{
    char *out, *err;
    GSCTL_OK("start", "probe", "p");
    /* a typo is a usage error, on stderr with where the JSON is bad */
    ck_assert_int_eq(run_gsctl(D, &out, &err, "call", "p", "[\"take\",\"k\"", NULL), 2);
    ck_assert_str_eq(out, "");
    ck_assert_msg(contains(err, "'[\"take\",\"k\"' is not valid JSON") &&
                      contains(err, "at byte 11"),
                  "stderr: '%s'", err);
    /* every value argument, for every command that takes one; nothing sent */
    const char *bad[] = {"{\"a\":", "  [1, 2", "\"unterminated", "{not json", "[1,]", "\"a\" x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(run_gsctl(D, &out, &err, "send", "p", bad[i], NULL), 2);
        ck_assert_msg(contains(err, "is not valid JSON"), "send %s: '%s'", bad[i], err);
        ck_assert_int_eq(run_gsctl(D, &out, &err, "cast", "p", bad[i], NULL), 2);
        ck_assert_int_eq(run_gsctl(D, &out, &err, "call", "p", bad[i], NULL), 2);
        ck_assert_int_eq(run_gsctl(D, &out, &err, "stop", "p", bad[i], NULL), 2);
        ck_assert_int_eq(run_gsctl(D, &out, &err, "start", "counter", "c", bad[i], NULL), 2);
    }
    ck_assert_str_eq(ONE_LINE(GSCTL_OK("call", "p", "infos")), "[]\n"); /* no send, no cast */
    ck_assert_str_eq(GSCTL_OK("whereis", "c"), "null\n");               /* no start */
    ck_assert_str_ne(GSCTL_OK("whereis", "p"), "null\n");               /* no stop */
    /* JSON that is valid, and text that does not start like JSON, pass */
    ck_assert_str_eq(GSCTL_OK("call", "p", " [\"echo\", \"[x\"]"), "\"[x\"\n");
    ck_assert_str_eq(GSCTL_OK("call", "p", "[\"echo\", \"\\\"q\"]"), "\"\\\"q\"\n");
    GSCTL_OK("send", "p", "x [1");
    GSCTL_OK("send", "p", "\"[1\"");
    ck_assert_str_eq(ONE_LINE(GSCTL_OK("call", "p", "infos")), "[\"x [1\",\"[1\"]\n");
    /* a SERVER is not JSON: a name that starts with [ is just a name */
    ck_assert_int_eq(run_gsctl(D, &out, &err, "call", "[x", "get", NULL), 1);
    ck_assert_msg(strncmp(err, "noproc: ", 8) == 0, "stderr: '%s'", err);
    /* in a batch the line is a usage result, and is not sent */
    const char *file = write_file(D, "j.txt",
                                  "send p '[\"half\"'\n"
                                  "call p infos\n");
    ck_assert_int_eq(run_gsctl(D, &out, &err, "batch", file, NULL), 1);
    const char *want = "{\"error\":\"usage\",\"detail\":\"'[\\\"half\\\"' is not valid JSON";
    ck_assert_msg(strncmp(out, want, strlen(want)) == 0 &&
                      contains(out, "\n{\"ok\":[\"x [1\",\"[1\"]}\n") && line_count(out) == 2,
                  "out: %s", out);
}
END_TEST

START_TEST(options_before_or_after_the_command)
{
    char *out, *err;
    GSCTL_OK("start", "probe", "p");
    GSCTL_OK("start", "counter", "c", "5");
    /* after the command, and mixed in with its arguments */
    ck_assert_int_gt(line_count(GSCTL_OK("list", "--pretty")), 2);
    ck_assert_str_eq(GSCTL_OK("list", "-p"), GSCTL_OK("-p", "list"));
    ck_assert_str_eq(GSCTL_OK("call", "c", "get", "-t", "100"), "5\n");
    ck_assert_str_eq(GSCTL_OK("call", "-t", "100", "c", "get"), "5\n");
    ck_assert_str_eq(GSCTL_OK("call", "c", "get", "--timeout=100"), "5\n");
    ck_assert_str_eq(GSCTL_OK("ping", "-q"), "");
    ck_assert_str_eq(GSCTL_OK("ping", "-pq"), "");
    ck_assert_str_eq(GSCTL_OK("ping", "-mq"), "");
    ck_assert_str_eq(GSCTL_OK("call", "p", "[\"echo\", 1]", "--msgpack"), "\x01");
    /* -t after the command bounds the call as before it does */
    ck_assert_int_eq(
        run_gsctl(D, &out, &err, "call", "p", "[\"reply_after\", 3000, 1]", "-t", "200", NULL), 1);
    ck_assert_msg(strncmp(err, "timeout: ", 9) == 0, "stderr: '%s'", err);
    ck_assert_int_eq(
        run_gsctl(D, &out, &err, "call", "p", "[\"reply_after\", 3000, 1]", "-t200", NULL), 1);
    /* -s after the command: the socket given there is used */
    const char *argv[] = {"ping", "-s", D->sock, NULL};
    struct proc *pr = gsctl_spawn(NULL, argv);
    ck_assert_int_eq(gsctl_wait(&pr, 10000, &out, &err), 0);
    ck_assert_str_eq(out, "\"pong\"\n");
    /* negative numbers and JSON are arguments, never options */
    ck_assert_str_eq(GSCTL_OK("call", "c", "[\"add\", -10]"), "-5\n");
    GSCTL_OK("start", "counter", "n", "-5");
    ck_assert_str_eq(GSCTL_OK("call", "n", "get"), "-5\n");
    GSCTL_OK("send", "p", "-1");
    GSCTL_OK("send", "p", "-2.5", "-q");
    GSCTL_OK("send", "p", "-");
    /* -- ends the options: what follows is an argument, even -x or -t */
    GSCTL_OK("send", "p", "--", "-x");
    GSCTL_OK("send", "--", "p", "-t");
    GSCTL_OK("--", "send", "p", "--pretty");
    ck_assert_str_eq(ONE_LINE(GSCTL_OK("call", "p", "infos")),
                     "[-1,-2.5,\"-\",\"-x\",\"-t\",\"--pretty\"]\n");
    /* an unknown option, wherever it is, is a usage error that says so */
    ck_assert_int_eq(run_gsctl(D, &out, &err, "call", "c", "get", "-x", NULL), 2);
    ck_assert_msg(contains(err, "unknown option -x") && contains(err, "--"), "stderr: '%s'", err);
    ck_assert_int_eq(run_gsctl(D, &out, &err, "list", "--frob", NULL), 2);
    ck_assert_msg(contains(err, "unknown option --frob"), "stderr: '%s'", err);
    ck_assert_int_eq(run_gsctl(D, &out, &err, "call", "c", "get", "-t", NULL), 2);
    ck_assert_msg(contains(err, "-t needs a value"), "stderr: '%s'", err);
    ck_assert_int_eq(run_gsctl(D, &out, &err, "call", "c", "get", "-t", "0", NULL), 2);
    ck_assert_int_eq(run_gsctl(D, &out, &err, "ping", "--pretty=yes", NULL), 2);
    ck_assert_str_eq(out, "");
    /* after start, --timeout is init's and -t gsctl's; its flags mix in */
    ck_assert_int_eq(run_gsctl(D, &out, &err, "start", "forms", "slow",
                               "{\"init\": \"slow\", \"ms\": 600}", "--timeout", "100", NULL),
                     1);
    ck_assert_msg(strncmp(err, "timeout: ", 9) == 0, "stderr: '%s'", err);
    GSCTL_OK("start", "counter", "r", "3", "--restart", "transient", "-t", "1000", "-q");
    ck_assert_str_eq(GSCTL_OK("call", "r", "get"), "3\n");
    /* help after the command */
    ck_assert_int_eq(run_gsctl(D, &out, &err, "call", "c", "get", "--help", NULL), 0);
    ck_assert_msg(strncmp(out, "usage: ", 7) == 0 && contains(out, "call SERVER REQUEST"),
                  "stdout: '%s'", out);
    /* the usage text states the rule */
    ck_assert_int_eq(run_gsctl(D, &out, &err, "-h", NULL), 0);
    ck_assert_msg(contains(out, "before or after the command") && contains(out, "-- ends"),
                  "usage: '%s'", out);
    /* in a batch line: -t, for that line alone; the others are refused */
    const char *file = write_file(D, "o.txt",
                                  "call p '[\"reply_after\", 3000, 1]' -t 100\n"
                                  "call p '[\"reply_after\", 10, 2]'\n"
                                  "ping -p\n"
                                  "ping -h\n"
                                  "ping -s /x\n");
    ck_assert_int_eq(run_gsctl(D, &out, &err, "batch", file, NULL), 1);
    ck_assert_msg(strncmp(out, "{\"error\":\"timeout\"", 18) == 0 &&
                      contains(out,
                               "\n{\"ok\":2}\n{\"error\":\"usage\",\"detail\":\"-p is an option "
                               "of gsctl's command line, not of a batch line\"}\n") &&
                      line_count(out) == 5,
                  "out: %s", out);
    /* a batch's own options may come after it too */
    ck_assert_int_eq(run_gsctl(D, &out, &err, "batch", file, "-q", NULL), 1);
    ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(errors_name_the_server)
{
    char *out, *err;
    GSCTL_OK("start", "probe", "p");
    const char *cmds[][3] = {{"call", "ghost", "get"}, {"cast", "ghost", "x"},
                             {"send", "ghost", "x"},   {"stop", "ghost", NULL},
                             {"info", "ghost", NULL},  {"state", "ghost", NULL}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        ck_assert_int_eq(run_gsctl(D, &out, &err, cmds[i][0], cmds[i][1], cmds[i][2], NULL), 1);
        ck_assert_msg(strncmp(err, "noproc: ghost: ", 15) == 0 && line_count(err) == 1,
                      "%s: stderr '%s'", cmds[i][0], err);
        ck_assert_str_eq(out, "");
    }
    /* by id too, as it was given */
    ck_assert_int_eq(run_gsctl(D, &out, &err, "call", "987654", "get", NULL), 1);
    ck_assert_msg(strncmp(err, "noproc: 987654: ", 16) == 0, "stderr: '%s'", err);
    /* other errors about a server name it as well */
    ck_assert_int_eq(
        run_gsctl(D, &out, &err, "-t", "100", "call", "p", "[\"reply_after\", 3000, 1]", NULL), 1);
    ck_assert_msg(strncmp(err, "timeout: p: ", 12) == 0, "stderr: '%s'", err);
    char *id = GSCTL_OK("whereis", "p");
    id[strcspn(id, "\n")] = '\0';
    ck_assert_int_eq(run_gsctl(D, &out, &err, "start", "probe", "p", NULL), 1);
    ck_assert_msg(strncmp(err, "already_started: p: ", 20) == 0 && contains(err + 20, id),
                  "stderr: '%s'", err);
    ck_assert_int_eq(run_gsctl(D, &out, &err, "-t", "100", "monitor", "p", NULL), 1);
    ck_assert_msg(strncmp(err, "timeout: p: ", 12) == 0, "stderr: '%s'", err);
    /* -q: nothing at all */
    ck_assert_int_eq(run_gsctl(D, &out, &err, "-q", "call", "ghost", "get", NULL), 1);
    ck_assert_str_eq(err, "");
}
END_TEST

/*
 * Runs script with sh as a user other than root (uid 4242, in a user
 * namespace of its own) and in a mount namespace of its own whose /run is
 * an empty tmpfs holding only /run/gsd/gsd.sock, a link to D's socket: a
 * system daemon where gsctl's default looks for one, without touching the
 * real /run. Returns stdout and stderr together, or NULL where this kernel
 * or sandbox gives no such namespaces.
 */
static char *beside_a_system_daemon(const char *script)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    uid_t uid = geteuid();
    gid_t gid = getegid();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
            _exit(77);
        char map[64];
        const char *files[] = {"/proc/self/setgroups", "/proc/self/uid_map", "/proc/self/gid_map"};
        for (int i = 0; i < 3; i++) {
            if (i == 0)
                snprintf(map, sizeof map, "deny");
            else
                snprintf(map, sizeof map, "4242 %u 1", i == 1 ? (unsigned)uid : (unsigned)gid);
            int fd = open(files[i], O_WRONLY);
            if (fd < 0 || write(fd, map, strlen(map)) != (ssize_t)strlen(map))
                _exit(77);
            close(fd);
        }
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") < 0)
            _exit(77);
        if (mkdir("/run/gsd", 0755) < 0 || symlink(D->sock, GSC_SYSTEM_SOCKET) < 0)
            _exit(78);
        execl("/bin/sh", "sh", "-c", script, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0, cap = 4096;
    char *out = malloc(cap);
    int64_t end = now_ms() + 20000;
    for (;;) {
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        int left = (int)(end - now_ms());
        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            break;
        if (len + 1024 > cap)
            out = realloc(out, cap *= 2);
        ssize_t n = read(fds[0], out + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    out[len] = '\0';
    close(fds[0]);
    kill(pid, SIGKILL); /* a no-op unless it overran */
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
        free(out);
        return NULL;
    }
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit %d: %s", shell_status(st), out);
    return out;
}

START_TEST(a_user_without_a_daemon_reaches_the_system_one)
{
    char xdg[160], script[2048];
    snprintf(xdg, sizeof xdg, "%s/xdg", D->dir);
    ck_assert_int_eq(mkdir(xdg, 0700), 0);
    snprintf(script, sizeof script,
             "unset GSD_SOCKET; export XDG_RUNTIME_DIR=%s; G=%s/gsctl\n"
             "id -u\n"
             "timeout 10 $G ping; echo \"rc=$?\"\n"
             /* no XDG_RUNTIME_DIR: /tmp/gsd-4242/gsd.sock is the own one */
             "(unset XDG_RUNTIME_DIR; timeout 10 $G ping; echo \"rc=$?\")\n"
             /* an own socket that exists is the one, dead or not */
             ": >$XDG_RUNTIME_DIR/gsd.sock; timeout 10 $G ping; echo \"rc=$?\"\n"
             /* neither: the error names the own socket and the system one */
             "rm $XDG_RUNTIME_DIR/gsd.sock /run/gsd/gsd.sock; timeout 10 $G ping; echo \"rc=$?\"\n",
             xdg, gsd_build());
    char *out = beside_a_system_daemon(script);
    if (out == NULL) {
        fprintf(stderr, "note: no user namespaces here: the socket fallback is not tested\n");
        return;
    }
    char want[1024];
    snprintf(want, sizeof want,
             "4242\n"
             "\"pong\"\nrc=0\n"
             "\"pong\"\nrc=0\n"
             "gsctl: connect %s/gsd.sock: Connection refused\nrc=3\n"
             "gsctl: connect %s/gsd.sock: No such file or directory (nor is there a system "
             "daemon at " GSC_SYSTEM_SOCKET ")\nrc=3\n",
             xdg, xdg);
    ck_assert_str_eq(out, want);
    free(out);
}
END_TEST

static Suite *gsctl_suite(void)
{
    Suite *s = suite_create("gsctl");
    TCase *tc = tcase_create("gsctl");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, ping_exit_0_prints_pong);
    tcase_add_test(tc, error_exit_1_code_and_detail_on_stderr);
    tcase_add_test(tc, already_started_detail_is_the_id);
    tcase_add_test(tc, usage_errors_exit_2);
    tcase_add_test(tc, no_daemon_exit_3);
    tcase_add_test(tc, help_exits_0);
    tcase_add_test(tc, socket_from_environment);
    tcase_add_test(tc, start_prints_the_id_and_call_uses_it);
    tcase_add_test(tc, text_that_is_not_json_is_a_string);
    tcase_add_test(tc, json_values_round_trip);
    tcase_add_test(tc, counter_through_gsctl);
    tcase_add_test(tc, state_prints_format_state);
    tcase_add_test(tc, start_args_and_anonymous);
    tcase_add_test(tc, start_options_as_flags);
    tcase_add_test(tc, stop_with_and_without_reason);
    tcase_add_test(tc, cast_and_send_print_null);
    tcase_add_test(tc, list_info_modules_load);
    tcase_add_test(tc, timeout_flag_bounds_a_call);
    tcase_add_test(tc, monitor_waits_and_prints_the_down);
    tcase_add_test(tc, monitor_of_dead_server_prints_noproc);
    tcase_add_test(tc, batch_prints_one_result_per_line_in_order);
    tcase_add_test(tc, batch_exits_1_when_any_failed);
    tcase_add_test(tc, batch_reads_stdin_and_writes_msgpack);
    tcase_add_test(tc, batch_pipelines_thousands);
    tcase_add_test(tc, output_modes);
    tcase_add_test(tc, list_pages_through_more_servers_than_one_page);
    tcase_add_test(tc, complete_names_from_the_daemon);
    tcase_add_test(tc, per_command_rules);
    tcase_add_test(tc, bash_completion_asks_the_daemon);
    tcase_add_test(tc, json_looking_text_must_be_json);
    tcase_add_test(tc, options_before_or_after_the_command);
    tcase_add_test(tc, errors_name_the_server);
    tcase_add_test(tc, a_user_without_a_daemon_reaches_the_system_one);
    suite_add_tcase(s, tc);

    tc = tcase_create("broken");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, broken_connection_exit_3);
    tcase_add_test(tc, batch_connection_lost_exits_3);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(gsctl_suite());
}
