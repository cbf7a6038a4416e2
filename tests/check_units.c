/* check_units.c — the daemon's registry, mailbox and scheduler, driven
 * directly (linked with the daemon's objects, without its socket). */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gsd.h"

/* ---- mailbox ---------------------------------------------------------- */

START_TEST(mailbox_is_fifo_and_counts)
{
    struct mailbox mb;
    mailbox_init(&mb);
    mailbox_put(&mb, msg_new(MSG_CAST, 0, "\x01", 1));
    mailbox_put(&mb, msg_new(MSG_CALL, 7, "\x92\x01\x02", 3));
    mailbox_put(&mb, msg_new(MSG_INFO, 0, "\xc0", 1));
    ck_assert_uint_eq(mb.len, 3);
    ck_assert_uint_eq(mb.bytes, 5);
    struct msg *m = mailbox_take(&mb);
    ck_assert_int_eq(m->kind, MSG_CAST);
    free(m);
    m = mailbox_take(&mb);
    ck_assert_int_eq(m->kind, MSG_CALL);
    ck_assert_uint_eq(m->waiter, 7);
    ck_assert_mem_eq(m->data, "\x92\x01\x02", 3);
    free(m);
    ck_assert_uint_eq(mb.len, 1);
    ck_assert_uint_eq(mb.bytes, 1);
    ck_assert_uint_eq(mb.len_high, 3); /* high-water marks stay */
    ck_assert_uint_eq(mb.bytes_high, 5);
    mailbox_clear(&mb);
    ck_assert_uint_eq(mb.len, 0);
    ck_assert_ptr_null(mailbox_take(&mb));
}
END_TEST

/* ---- registry and scheduler, with an in-test module ------------------- */

static unsigned handled[16]; /* by server id */
static uint64_t order[64];
static unsigned norder;

static gs_result t_init(gs_server *self, const gs_value *args, void **state)
{
    (void)self, (void)args;
    *state = NULL;
    return gs_ok();
}

static gs_result t_cast(gs_server *self, const gs_value *req, void **state)
{
    (void)state;
    uint64_t id = gsd_api.self_id(self);
    handled[id]++;
    int64_t n;
    if (gs_get_int(req, &n) && n > 1) /* count down by casting to itself */
        gsd_api.cast(self, gs_uint(id), gs_int(n - 1));
    if (norder < 64)
        order[norder++] = id;
    return gs_noreply();
}

static const struct gs_api *t_host;
static const gs_module t_desc = {.abi = GS_ABI_VERSION,
                                 .size = sizeof(gs_module),
                                 .api = &t_host,
                                 .name = "t",
                                 .vsn = 1,
                                 .init = t_init,
                                 .handle_cast = t_cast};
static struct module t_mod = {.name = "t", .path = "(test)", .desc = &t_desc, .current = true};

static void setup(void)
{
    log_level = LOG_ERR;
    loop_init();
    sched_init();
    memset(handled, 0, sizeof handled);
    norder = 0;
}

static struct server *start(const char *name)
{
    return server_start(&t_mod, name, name ? strlen(name) : 0, "\xc0", 1, -1, 0, NULL, NULL, 0);
}

/* One scheduler turn. Two loop passes: a turn kicked under a heavy load
 * runs after the next poll. */
static void turn(void)
{
    event_base_loop(loop_base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    event_base_loop(loop_base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

START_TEST(registry_finds_by_id_and_name)
{
    setup();
    struct server *a = start("alpha"), *b = start(NULL);
    ck_assert_uint_lt(a->id, b->id);
    ck_assert_ptr_eq(registry_by_id(a->id), a);
    ck_assert_ptr_eq(registry_by_name("alpha", 5), a);
    ck_assert_ptr_eq(registry_by_id(b->id), b);
    ck_assert_ptr_null(registry_by_name("alph", 4));
    ck_assert_uint_eq(registry_count(), 2);
    gs_value ref = gs_str("alpha");
    ck_assert_ptr_eq(server_lookup(&ref), a);
    ref = gs_uint(b->id);
    ck_assert_ptr_eq(server_lookup(&ref), b);
    uint64_t aid = a->id;
    server_end(a, enc_normal, NULL);
    ck_assert_ptr_null(registry_by_id(aid));
    ck_assert_ptr_null(registry_by_name("alpha", 5));
    /* the name is free again; the id is never reused */
    struct server *c = start("alpha");
    ck_assert_uint_gt(c->id, b->id);
    ck_assert_uint_eq(registry_count(), 2);
}
END_TEST

START_TEST(init_runs_before_any_message)
{
    setup();
    struct server *s = start("x");
    ck_assert_int_eq(s->status, SERVER_STARTING);
    server_post(s, MSG_CAST, 0, "\x01", 1);
    turn();
    ck_assert_int_eq(s->status, SERVER_RUNNING);
    ck_assert_uint_eq(handled[s->id], 1);
    ck_assert_uint_eq(s->mbox.len, 0);
}
END_TEST

START_TEST(deep_mailbox_cannot_starve_another_server)
{
    setup();
    struct server *busy = start("busy"), *quiet = start("quiet");
    turn(); /* both inits */
    for (int i = 0; i < 1000; i++)
        server_post(busy, MSG_CAST, 0, "\x01", 1);
    server_post(quiet, MSG_CAST, 0, "\x01", 1);
    turn();
    /* one turn: busy got at most its share, quiet was served too */
    ck_assert_uint_eq(handled[quiet->id], 1);
    ck_assert_uint_le(handled[busy->id], SCHED_PER_TURN);
    ck_assert_uint_ge(handled[busy->id], SCHED_PER_SERVER);
    /* and quiet's message was not left until busy's mailbox was empty */
    unsigned pos = 0;
    while (pos < norder && order[pos] != quiet->id)
        pos++;
    ck_assert_uint_le(pos, SCHED_PER_SERVER);
    for (int i = 0; i < 100 && busy->mbox.len > 0; i++)
        turn();
    ck_assert_uint_eq(handled[busy->id], 1000);
}
END_TEST

START_TEST(turn_work_is_bounded)
{
    setup();
    struct server *s[4];
    for (int i = 0; i < 4; i++)
        s[i] = start(NULL);
    turn();
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 500; k++)
            server_post(s[i], MSG_CAST, 0, "\x01", 1);
    turn();
    unsigned total = 0;
    for (int i = 0; i < 4; i++)
        total += handled[s[i]->id];
    ck_assert_uint_eq(total, SCHED_PER_TURN);
}
END_TEST

START_TEST(ended_server_refuses_mail)
{
    setup();
    struct server *s = start("gone");
    turn();
    server_end(s, enc_shutdown, NULL);
    /* Still allocated until the loop reaps it, and refusing mail. */
    ck_assert_int_eq(s->status, SERVER_ENDED);
    ck_assert(!server_post(s, MSG_CAST, 0, "\x01", 1));
    turn();
}
END_TEST

START_TEST(server_casting_to_itself_keeps_one_queue_slot)
{
    setup();
    struct server *s = start("self"), *other = start("other");
    turn();
    server_post(s, MSG_CAST, 0, "\x14", 1); /* 20: casts 19, 18, ... to itself */
    server_post(other, MSG_CAST, 0, "\x01", 1);
    for (int i = 0; i < 20; i++)
        turn();
    ck_assert_uint_eq(handled[s->id], 20);
    ck_assert_uint_eq(handled[other->id], 1);
    ck_assert(!s->runnable);
}
END_TEST

/* ---- log ----------------------------------------------------------------- */

/* Reverses log_escape; -1 on text it cannot have written. */
static long unescape(const char *s, char *out)
{
    long n = 0;
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return -1;
        if (*s != '\\') {
            out[n++] = *s;
            continue;
        }
        s++;
        if (*s == 'n' || *s == 'r' || *s == 't' || *s == '\\')
            out[n++] = *s == 'n' ? '\n' : *s == 'r' ? '\r' : *s == 't' ? '\t' : '\\';
        else if (*s == 'x' && s[1] && s[2])
            out[n++] = (char)strtol((char[]){s[1], s[2], 0}, NULL, 16), s += 2;
        else
            return -1;
    }
    return n;
}

START_TEST(log_escape_is_reversible)
{
    char all[256], esc[1100], back[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    size_t n = log_escape(esc, sizeof esc, all, sizeof all);
    ck_assert_uint_eq(n, strlen(esc));
    ck_assert_ptr_null(strchr(esc, '\n'));
    ck_assert_int_eq(unescape(esc, back), 256);
    ck_assert_mem_eq(back, all, 256);
    log_escape(esc, sizeof esc, "a\nb\r\tc\\d\x01\x7f\xc3\xa9", 12);
    ck_assert_str_eq(esc, "a\\nb\\r\\tc\\\\d\\x01\\x7f\xc3\xa9");
}
END_TEST

START_TEST(log_escape_never_cuts_an_escape)
{
    char esc[8];
    /* Room for 4 bytes and the terminator: "ab" and no half of "\x01". */
    ck_assert_uint_eq(log_escape(esc, 5, "ab\x01", 3), 2);
    ck_assert_str_eq(esc, "ab");
    ck_assert_uint_eq(log_escape(esc, 6, "ab\x01", 3), 2);
    ck_assert_uint_eq(log_escape(esc, 7, "ab\x01", 3), 6);
    ck_assert_str_eq(esc, "ab\\x01");
    ck_assert_uint_eq(log_escape(esc, 3, "a\n", 2), 1);
    ck_assert_str_eq(esc, "a");
    ck_assert_uint_eq(log_escape(esc, 4, "a\\", 2), 3);
    ck_assert_str_eq(esc, "a\\\\");
    ck_assert_uint_eq(log_escape(esc, 1, "a", 1), 0);
    ck_assert_str_eq(esc, "");
}
END_TEST

/* Each log test runs in its own process (Check forks), with stderr on a
 * file or a pipe of its own before its first line. */
static void log_to_file(void)
{
    char path[] = "/tmp/gsd-units-log-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    dup2(fd, 2);
    close(fd);
}

/* What stderr, a file, holds now. */
static char *log_text(void)
{
    static char text[1 << 16];
    ssize_t n = pread(2, text, sizeof text - 1, 0);
    text[n > 0 ? n : 0] = '\0';
    return text;
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (; (s = strstr(s, what)); s++)
        n++;
    return n;
}

START_TEST(a_line_cannot_be_split)
{
    log_to_file();
    log_msg(LOG_WARN, "got %s", "x\n17:00:00.000 gsd error: FORGED\r\\");
    const char *text = log_text();
    ck_assert_int_eq(count(text, "\n"), 1);
    ck_assert_ptr_nonnull(
        strstr(text, " gsd warning: got x\\n17:00:00.000 gsd error: FORGED\\r\\\\\n"));
}
END_TEST

START_TEST(a_long_line_is_cut_between_escapes)
{
    char big[3000];
    memset(big, '\x01', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    log_to_file();
    log_msg(LOG_WARN, "%s", big);
    const char *text = log_text(), *body = strstr(text, " gsd warning: ") + 14;
    ck_assert_int_eq(count(text, "\n"), 1);
    size_t n = (size_t)(strchr(text, '\n') - body);
    ck_assert_uint_gt(n, 900);
    ck_assert_uint_lt(n, 1100);
    ck_assert_uint_eq(n % 4, 0);
    ck_assert_int_eq(count(body, "\\x01"), (int)n / 4);
}
END_TEST

/* One call site: the rate limit's key. */
static void again(int i)
{
    log_msg(LOG_WARN, "again %d", i);
}

START_TEST(repeated_lines_are_rate_limited_and_counted)
{
    log_to_file();
    int64_t t0 = now_ms();
    for (int i = 0; i < 1000; i++)
        again(i);
    int64_t elapsed_s = (now_ms() - t0) / 1000;
    int shown = count(log_text(), "again");
    ck_assert_int_le(shown, 11 + 2 * elapsed_s); /* 10, then 2 a second */
    log_msg(LOG_WARN, "another call site");      /* not limited by the first */
    ck_assert_int_eq(count(log_text(), "another call site"), 1);
    /* The next that passes carries the count. */
    int more = 0;
    while (!strstr(log_text(), "similar lines suppressed)") && more < 100) {
        usleep(50 * 1000);
        again(1000 + more++);
    }
    const char *text = log_text(), *at = strstr(text, " similar lines suppressed)\n");
    ck_assert_ptr_nonnull(at);
    while (at[-1] >= '0' && at[-1] <= '9')
        at--;
    ck_assert_int_eq(count(text, "again") + atoi(at), 1000 + more);
}
END_TEST

/* stderr is a pipe that nobody reads, and full: lines are dropped, never
 * waited for, and counted once the reader reads again. */
START_TEST(an_unread_pipe_drops_lines_and_says_so)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    dup2(p[1], 2);
    char proc[64], junk[4096] = {0}, got[1 << 16];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", p[1]);
    int fill = open(proc, O_WRONLY | O_NONBLOCK);
    ck_assert_int_ge(fill, 0);
    for (size_t k = sizeof junk; k > 0; k /= 2)
        while (write(fill, junk, k) > 0)
            ;
    close(fill);
    for (int i = 0; i < 5; i++)
        log_msg(LOG_WARN, "line %d", i); /* blocks, without the fix: the test times out */
    ck_assert_int_eq(fcntl(p[1], F_GETFL) & O_NONBLOCK, 0); /* what a parent shares */
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    while (read(p[0], got, sizeof got) > 0)
        ;
    log_msg(LOG_INFO, "reading again");
    ssize_t n = read(p[0], got, sizeof got - 1);
    ck_assert_int_gt(n, 0);
    got[n] = '\0';
    ck_assert_ptr_nonnull(strstr(got, " gsd warning: 5 log lines dropped: the log reader is not "
                                      "reading\n"));
    ck_assert_ptr_nonnull(strstr(got, " gsd info: reading again\n"));
    ck_assert_int_eq(count(got, "\n"), 2);
}
END_TEST

/* ---- out of memory ----------------------------------------------------- */

/* Runs allocate() in a child with stderr on a file; wants it ended by SIGABRT
 * and returns what it logged. */
static const char *oom_log_of(void (*allocate)(void))
{
    static char text[4096];
    char path[] = "/tmp/gsd-units-oom-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0});
        dup2(fd, 2);
        allocate();
        _exit(0);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "status %#x", st);
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    text[n > 0 ? n : 0] = '\0';
    return text;
}

static void call_oom(void)
{
    gsp_oom(12345);
}

/* ASan reserves terabytes of address space, so no RLIMIT_AS, and reports a
 * failed allocation itself: these run without it. */
#ifndef __SANITIZE_ADDRESS__
/* Address space capped at 256 MiB (more than the test uses), then more
 * asked for. */
static void xmalloc_over_the_limit(void)
{
    setrlimit(RLIMIT_AS, &(struct rlimit){256u << 20, 256u << 20});
    xmalloc(512u << 20);
}

static void buf_grows_over_the_limit(void)
{
    struct gsp_buf b = {0};
    setrlimit(RLIMIT_AS, &(struct rlimit){256u << 20, 256u << 20});
    gsp_buf_reserve(&b, 300u << 20);
}
#endif

/* The module API's value helpers, as a module sees them (module.h),
 * with the daemon's own service table behind gs_host. */
const struct gs_api *gs_host;

START_TEST(value_readers_take_their_type_only)
{
    uint64_t u = 7;
    double d = 0;
    bool b = false;
    const char *s = NULL;
    const void *p = NULL;
    uint32_t n = 0;
    gs_value i = gs_int(-3), big = gs_uint(UINT64_MAX), f = gs_float(2.5), t = gs_bool(true),
             str = gs_str("hey"), bin = gs_str("raw");
    bin.type = MSGPACK_OBJECT_BIN;
    ck_assert(!gs_get_uint(&i, &u) && u == 7); /* left as it was */
    ck_assert(gs_get_uint(&big, &u) && u == UINT64_MAX);
    ck_assert(gs_get_float(&f, &d) && d == 2.5);
    ck_assert(gs_get_float(&i, &d) && d == -3.0); /* an integer is a number */
    ck_assert(!gs_get_float(&str, &d));
    ck_assert(gs_get_bool(&t, &b) && b);
    ck_assert(!gs_get_bool(&i, &b));
    ck_assert(gs_get_str(&str, &s, &n) && n == 3 && memcmp(s, "hey", 3) == 0);
    ck_assert(!gs_get_str(&bin, &s, &n) && !gs_get_bin(&str, &p, &n));
    ck_assert(gs_get_bin(&bin, &p, &n) && n == 3 && memcmp(p, "raw", 3) == 0);
    ck_assert(!gs_get_uint(NULL, &u) && !gs_get_float(NULL, &d) && !gs_get_bool(NULL, &b) &&
              !gs_get_str(NULL, &s, &n) && !gs_get_bin(NULL, &p, &n));
}
END_TEST

/* What the builders make, encoded: the same bytes a module would send. */
static bool encodes_as(const gs_value *v, const char *hex)
{
    size_t len;
    const uint8_t *p = value_encode(v, &len);
    char got[256] = "";
    for (size_t i = 0; p && i < len && 2 * i + 2 < sizeof got; i++)
        snprintf(got + 2 * i, 3, "%02x", p[i]);
    if (strcmp(got, hex) != 0)
        fprintf(stderr, "encoded %s, wanted %s\n", got, hex);
    return strcmp(got, hex) == 0;
}

START_TEST(value_builders_outlive_the_stack)
{
    gs_host = &gsd_api;
    gs_server *self = NULL; /* the scratch arena is the daemon's, whoever asks */
    gs_value req = gs_str("zap");
    gs_value e = gs_error_reply(self, "unknown_call", req);
    ck_assert(encodes_as(&e, "92a56572726f7292ac756e6b6e6f776e5f63616c6ca37a6170"));
    gs_value t = gs_tuple(self, 3, gs_str("ok"), gs_int(-1), gs_nil());
    ck_assert(encodes_as(&t, "93a26f6bffc0"));
    gs_value m = gs_map_of(self, 2, gs_kv("a", gs_uint(1)), gs_kv("b", gs_bool(false)));
    ck_assert(encodes_as(&m, "82a16101a162c2"));
    gs_value empty = gs_tuple(self, 0);
    ck_assert(encodes_as(&empty, "90"));
    /* A deep copy: nothing of it points at the stack it was built on. */
    char text[4] = "abc";
    gs_value items[2] = {gs_strn(text, 3), gs_map_of(self, 1, gs_kv("k", gs_strn(text, 2)))};
    gs_value local = gs_array(items, 2);
    gs_value copy = gs_scratch_copy(self, &local);
    memcpy(text, "xyz", 3);
    items[0] = gs_nil();
    ck_assert(encodes_as(&copy, "92a361626381a16ba26162"));
    scratch_reset();
}
END_TEST

START_TEST(out_of_memory_logs_one_line_then_aborts)
{
    const char *text = oom_log_of(call_oom); /* protocol/'s hook is the daemon's */
    ck_assert_ptr_nonnull(strstr(text, " gsd error: out of memory allocating 12345 bytes\n"));
    ck_assert_int_eq(count(text, "\n"), 1);
#ifndef __SANITIZE_ADDRESS__
    text = oom_log_of(xmalloc_over_the_limit);
    ck_assert_ptr_nonnull(strstr(text, " gsd error: out of memory allocating 536870912 bytes\n"));
    ck_assert_int_eq(count(text, "\n"), 1);
    text = oom_log_of(buf_grows_over_the_limit);
    ck_assert_ptr_nonnull(strstr(text, " gsd error: out of memory allocating 536870912 bytes\n"));
    ck_assert_int_eq(count(text, "\n"), 1);
#endif
}
END_TEST

int main(void)
{
    Suite *su = suite_create("units");
    TCase *tc = tcase_create("mailbox");
    tcase_add_test(tc, mailbox_is_fifo_and_counts);
    suite_add_tcase(su, tc);
    tc = tcase_create("registry_sched");
    tcase_add_test(tc, registry_finds_by_id_and_name);
    tcase_add_test(tc, init_runs_before_any_message);
    tcase_add_test(tc, deep_mailbox_cannot_starve_another_server);
    tcase_add_test(tc, turn_work_is_bounded);
    tcase_add_test(tc, ended_server_refuses_mail);
    tcase_add_test(tc, server_casting_to_itself_keeps_one_queue_slot);
    tcase_set_timeout(tc, 10);
    suite_add_tcase(su, tc);
    tc = tcase_create("log");
    tcase_add_test(tc, log_escape_is_reversible);
    tcase_add_test(tc, log_escape_never_cuts_an_escape);
    tcase_add_test(tc, a_line_cannot_be_split);
    tcase_add_test(tc, a_long_line_is_cut_between_escapes);
    tcase_add_test(tc, repeated_lines_are_rate_limited_and_counted);
    tcase_add_test(tc, an_unread_pipe_drops_lines_and_says_so);
    tcase_add_test(tc, out_of_memory_logs_one_line_then_aborts);
    tcase_set_timeout(tc, 10);
    suite_add_tcase(su, tc);
    tc = tcase_create("values");
    tcase_add_test(tc, value_readers_take_their_type_only);
    tcase_add_test(tc, value_builders_outlive_the_stack);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
