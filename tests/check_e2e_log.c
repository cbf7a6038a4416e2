/*
 * check_e2e_log.c — the daemon's log under a hostile client: text from a
 * client cannot forge a line, repeated lines are rate-limited and counted,
 * and a log reader that stops reading never stalls the daemon.
 *
 * The minimal module has no handle_info: each message sent to it is
 * logged as a warning, with the message in it.
 */
#include "e2e.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FORGED "17:00:00.000 gsd error: FORGED"

/* True if a line of log begins with text. */
static bool line_starts_with(const char *log, const char *text)
{
    size_t n = strlen(text);
    for (const char *p = log; p; p = strchr(p, '\n')) {
        p += *p == '\n';
        if (strncmp(p, text, n) == 0)
            return true;
    }
    return false;
}

/* Messages the server has handled (each logged, as it has no handle_info). */
static int64_t infos_handled(gsc *c, const char *server)
{
    gsc_reply *r;
    return MP_INT(mp_get(mp_get(OK(gsc_info(c, server, &r), &r), "handled"), "info"));
}

START_TEST(a_send_cannot_forge_a_log_line)
{
    START(C, "minimal", "m", NULL);
    send_msg("m", mp("'x\\x0a" FORGED " \\\\ \\x01'"));
    const char *log = NULL;
    ck_assert(WAIT_UNTIL(5000, strstr(log = file_read(D->log), "FORGED")));
    ck_assert_msg(!line_starts_with(log, FORGED), "a forged line in:\n%s", log);
    ck_assert_msg(strstr(log, "unexpected message ignored: \"x\\n" FORGED " \\\\ \\x01\"\n"),
                  "not escaped:\n%s", log);
}
END_TEST

START_TEST(a_name_cannot_forge_a_log_line)
{
    const char *name = "n\n" FORGED " BY NAME";
    START(C, "minimal", name, NULL);
    stop(name, mp("'bye'"));
    const char *log = NULL;
    ck_assert(WAIT_UNTIL(5000, strstr(log = file_read(D->log), "FORGED")));
    ck_assert_msg(!line_starts_with(log, FORGED), "a forged line in:\n%s", log);
    ck_assert_msg(strstr(log, "(n\\n" FORGED " BY NAME, minimal) ended"), "not escaped:\n%s", log);
}
END_TEST

/* Every line of the warning is either in the log or counted in a
 * "(N similar lines suppressed)" of a later one. */
START_TEST(repeated_warnings_are_rate_limited_and_counted)
{
    enum { N = 10000 };
    START(C, "minimal", "m", NULL);
    const msgpack_object *params = mp("['m', 'x\\x0a" FORGED "']");
    int64_t t0 = now_ms();
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(gsc_notify(C, "send", params), 0);
    ck_assert(WAIT_UNTIL(30000, infos_handled(C, "m") == N));
    int64_t elapsed_s = (now_ms() - t0) / 1000;
    const char *log = file_read(D->log);
    int lines = 0;
    for (const char *p = log; (p = strstr(p, "unexpected message ignored")); p++)
        lines++;
    /* A burst of 10, then 2 a second: about 10 here, a few dozen on a slow
     * machine or under valgrind. */
    ck_assert_msg(lines <= 12 + 2 * elapsed_s, "%d warnings for %d sends in %lld s", lines, N,
                  (long long)elapsed_s);

    /* The count comes with the next warning that passes: send until one
     * comes after the flood. */
    size_t flood_end = strlen(log);
    int extra = 0;
    while (!strstr(file_read(D->log) + flood_end, "similar lines suppressed") && extra < 100) {
        sleep_ms(100);
        send_msg("m", mp("'more'"));
        extra++;
        ck_assert(WAIT_UNTIL(5000, infos_handled(C, "m") == N + extra));
    }
    log = file_read(D->log);
    ck_assert_msg(strstr(log + flood_end, "similar lines suppressed"), "no count after %d sends",
                  extra);
    long long shown = 0, suppressed = 0;
    for (const char *p = log; (p = strstr(p, "unexpected message ignored")); p++) {
        const char *eol = strchr(p, '\n'), *count = strstr(p, " similar lines suppressed)");
        shown++;
        if (count && eol && count < eol) {
            while (count[-1] >= '0' && count[-1] <= '9')
                count--;
            suppressed += atoll(count);
        }
    }
    ck_assert_int_gt(suppressed, 0);
    ck_assert_int_eq(shown + suppressed, N + extra);
}
END_TEST

/* Appends what fd has to buf[*n..], terminated; true. */
static bool read_more(int fd, char *buf, size_t size, size_t *n)
{
    ssize_t k = read(fd, buf + *n, size - 1 - *n);
    *n += k > 0 ? (size_t)k : 0;
    buf[*n] = '\0';
    return true;
}

/* The daemon's stderr is a pipe, full, that nobody reads. */
START_TEST(an_unread_stderr_pipe_never_stalls_the_daemon)
{
    enum { N = 30000 };
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    struct gsd *d = gsd_start_stderr(NULL, p[1]);
    gsc *c = CLIENT(d);
    START(c, "minimal", "m", NULL);

    /* Filled through an open file description of our own: the daemon's
     * stays as it got it (blocking). */
    char proc[64];
    static char junk[4096];
    memset(junk, '.', sizeof junk);
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", p[1]);
    int fill = open(proc, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    ck_assert_int_ge(fill, 0);
    for (size_t k = sizeof junk; k > 0; k /= 2)
        while (write(fill, junk, k) > 0)
            ;
    close(fill);

    /* Tens of thousands of warnings, written as the daemon takes them. */
    struct raw *a = RAW_CONNECT(d);
    struct gsp_buf b = {0};
    msgpack_packer pk;
    gsp_packer_init(&pk, &b);
    for (int i = 0; i < N; i++) {
        gsp_pack_notify(&pk, "send", 2);
        gsp_pack_str(&pk, "m");
        gsp_pack_str(&pk, "x\n" FORGED);
    }
    size_t sent = 0, total = b.len;
    int64_t end = now_ms() + 20000;
    while (sent < total && now_ms() < end) {
        ssize_t k = send(a->fd, b.data + sent, total - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k > 0)
            sent += (size_t)k;
        else
            sleep_ms(10);
    }
    gsp_buf_free(&b);

    struct raw *r = RAW_CONNECT(d);
    raw_ping_ok(r, 1);
    START(c, "counter", "c", NULL);
    ck_assert_mp_eq(CALL(c, "c", mp("'increment'")), "1");
    ck_assert_uint_eq(sent, total);
    ck_assert(WAIT_UNTIL(30000, infos_handled(c, "m") == N));
    ck_assert_int_eq(fcntl(p[1], F_GETFL) & O_NONBLOCK, 0); /* the shared description */

    /* Once the reader reads again, the next line says what was lost. */
    static char got[1 << 16];
    size_t n = 0;
    ck_assert_int_eq(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
    while (read(p[0], got, sizeof got) > 0)
        ;
    gsc_reply *rr;
    ck_assert_mp_eq(OK(gsc_stop(c, "c", NULL, 0, &rr), &rr), "nil");
    ck_assert(WAIT_UNTIL(5000, read_more(p[0], got, sizeof got, &n) && strstr(got, " ended")));
    ck_assert_msg(strstr(got, " log lines dropped: the log reader is not reading\n"), "read:\n%s",
                  got);
    ck_assert_msg(!line_starts_with(got, FORGED), "a forged line in:\n%s", got);
    raw_close(&a);
    raw_close(&r);
    client_close(&c);
    close(p[0]);
    close(p[1]);
    ck_assert_int_eq(gsd_stop(&d), 0);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("e2e_log");
    TCase *tc = tcase_create("escaping");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, a_send_cannot_forge_a_log_line);
    tcase_add_test(tc, a_name_cannot_forge_a_log_line);
    suite_add_tcase(s, tc);

    tc = tcase_create("rate");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, repeated_warnings_are_rate_limited_and_counted);
    suite_add_tcase(s, tc);

    tc = tcase_create("stall");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, an_unread_stderr_pipe_never_stalls_the_daemon);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(log_suite());
}
