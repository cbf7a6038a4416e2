/*
 * check_bench.c — the benchmark tools run and report sane numbers: gsbench
 * in each mode against a real gsd, and in raw mode against the echo
 * server. No figure is judged against a threshold: performance is shown by
 * `make bench`, not by a test.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* One gsbench run's TSV line. */
struct report {
    char label[32], mode[16];
    int conns, inflight;
    unsigned long long requests, errors;
    double secs, rate, p50, p99, p999;
};

/* Runs BUILD/PROG with argv (NULL terminated), up to wait_ms, and returns
 * its exit status (-1 if it had to be killed); its stdout into out. */
static int run_bin(const char *prog, const char *const *argv, int wait_ms, char *out, size_t cap)
{
    char bin[512];
    const char *args[40];
    int argc = 0, fds[2];
    snprintf(bin, sizeof bin, "%s/%s", gsd_build(), prog);
    ck_assert_msg(access(bin, X_OK) == 0, "%s: %s (is it built?)", bin, strerror(errno));
    args[argc++] = bin;
    for (int i = 0; argv[i] && argc < 39; i++)
        args[argc++] = argv[i];
    args[argc] = NULL;
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        execv(bin, (char *const *)args);
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    int64_t end = now_ms() + wait_ms;
    for (;;) {
        int left = (int)(end - now_ms());
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        ssize_t n = read(fds[0], out + len, cap - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    out[len] = '\0';
    close(fds[0]);
    int st;
    while (waitpid(pid, &st, WNOHANG) == 0 && now_ms() < end)
        sleep_ms(10);
    if (waitpid(pid, &st, WNOHANG) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Runs gsbench against the daemon with extra args; wants exit status
 * want and a TSV line whose figures are consistent. */
#define BENCH(want, r, ...) bench_at(__FILE__, __LINE__, (want), (r), D->sock, __VA_ARGS__, NULL)
__attribute__((sentinel)) static void bench_at(const char *file, int line, int want,
                                               struct report *r, const char *sock, ...)
{
    const char *argv[32] = {"-s", sock};
    int argc = 2;
    va_list ap;
    va_start(ap, sock);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && argc < 31)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    static char out[4096];
    int st = run_bin("gsbench", argv, 20000, out, sizeof out);
    if (st != want)
        _ck_assert_failed(file, line, "Failed", "gsbench exit %d, not %d: '%s'", st, want, out);
    const char *tsv = strstr(out, "\ntsv\t");
    if (tsv == NULL ||
        sscanf(tsv + 1, "tsv\t%31[^\t]\t%15[^\t]\t%d\t%d\t%llu\t%lf\t%lf\t%lf\t%lf\t%lf\t%llu",
               r->label, r->mode, &r->conns, &r->inflight, &r->requests, &r->secs, &r->rate,
               &r->p50, &r->p99, &r->p999, &r->errors) != 11)
        _ck_assert_failed(file, line, "Failed", "no TSV line in '%s'", out);
    /* The figures agree with each other, whatever the machine's speed. */
    if (!(r->secs > 0 && r->rate > 0 && r->requests > 0 && r->p50 > 0 && r->p50 <= r->p99 &&
          r->p99 <= r->p999 && r->rate * r->secs > 0.99 * (double)r->requests &&
          r->rate * r->secs < 1.01 * (double)r->requests))
        _ck_assert_failed(file, line, "Failed", "inconsistent figures: '%s'", out);
}

START_TEST(call_counts_answers_and_latency)
{
    gsc *c = CLIENT(D);
    START(c, "counter", "counter", mp("5"));
    struct report r;
    BENCH(0, &r, "-m", "call", "-S", "counter", "-c", "3", "-P", "4", "-t", "0.3", "-w", "0.1",
          "-T", "mine");
    ck_assert_str_eq(r.label, "mine");
    ck_assert_str_eq(r.mode, "call");
    ck_assert_int_eq(r.conns, 3);
    ck_assert_int_eq(r.inflight, 4);
    ck_assert_int_eq(r.errors, 0);
    /* calls to get change nothing */
    ck_assert_mp_eq(CALL(c, "counter", mp("'get'")), "5");
    client_close(&c);
}
END_TEST

START_TEST(call_with_payload_to_an_echoing_server)
{
    gsc *c = CLIENT(D);
    START(c, "probe", "probe", mp("nil"));
    struct report r;
    BENCH(0, &r, "-m", "call", "-S", "probe", "-d", "1000", "-c", "2", "-P", "2", "-t", "0.2");
    ck_assert_int_eq(r.errors, 0);
    client_close(&c);
}
END_TEST

START_TEST(cast_ends_with_every_cast_handled)
{
    gsc *c = CLIENT(D);
    START(c, "counter", "counter", mp("0"));
    struct report r;
    BENCH(0, &r, "-m", "cast", "-S", "counter", "-c", "2", "-P", "8", "-t", "0.3", "-w", "0");
    ck_assert_int_eq(r.errors, 0);
    /* Each measured request was a cast (incrementing) or one closing call
     * per connection; the closing call came after every cast was handled. */
    int64_t n = MP_INT(CALL(c, "counter", mp("'get'")));
    ck_assert_int_eq(n, (int64_t)r.requests - r.conns);
    client_close(&c);
}
END_TEST

START_TEST(start_stops_after_count)
{
    struct report r;
    BENCH(0, &r, "-m", "start", "-M", "counter", "-n", "200", "-c", "2", "-P", "4", "-t", "10");
    ck_assert_int_eq(r.requests, 200);
    ck_assert_int_eq(r.errors, 0);
    gsc *c = CLIENT(D);
    gsc_reply *rep;
    const msgpack_object *all = OK(gsc_which(c, &rep), &rep);
    ck_assert_int_eq(all->via.array.size, 200);
    client_close(&c);
}
END_TEST

START_TEST(errors_are_counted_and_make_the_exit_status)
{
    struct report r;
    BENCH(3, &r, "-m", "call", "-S", "ghost", "-c", "1", "-P", "2", "-t", "0.2", "-w", "0");
    ck_assert_int_eq(r.errors, r.requests);
}
END_TEST

START_TEST(raw_mode_against_the_echo_server)
{
    const char *sock = gsd_path(D, "echo.sock");
    char bin[512];
    snprintf(bin, sizeof bin, "%s/echo", gsd_build());
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        execl(bin, bin, sock, (char *)NULL);
        _exit(127);
    }
    ck_assert(WAIT_UNTIL(5000, access(sock, F_OK) == 0));
    struct report r;
    bench_at(__FILE__, __LINE__, 0, &r, sock, "-m", "raw", "-R", "*1\\r\\n$4\\r\\nPING\\r\\n", "-L",
             "14", "-c", "2", "-P", "3", "-t", "0.2", NULL);
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    ck_assert_str_eq(r.mode, "raw");
    ck_assert_int_eq(r.errors, 0);
}
END_TEST

START_TEST(usage_errors_exit_2)
{
    char out[1024];
    const char *no_reply_len[] = {"-m", "raw", "-R", "x", NULL};
    ck_assert_int_eq(run_bin("gsbench", no_reply_len, 5000, out, sizeof out), 2);
    const char *bad_mode[] = {"-m", "nope", NULL};
    ck_assert_int_eq(run_bin("gsbench", bad_mode, 5000, out, sizeof out), 2);
}
END_TEST

static Suite *bench_suite(void)
{
    Suite *s = suite_create("bench");
    TCase *tc = tcase_create("gsbench");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, call_counts_answers_and_latency);
    tcase_add_test(tc, call_with_payload_to_an_echoing_server);
    tcase_add_test(tc, cast_ends_with_every_cast_handled);
    tcase_add_test(tc, start_stops_after_count);
    tcase_add_test(tc, errors_are_counted_and_make_the_exit_status);
    tcase_add_test(tc, raw_mode_against_the_echo_server);
    tcase_add_test(tc, usage_errors_exit_2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(bench_suite());
}
