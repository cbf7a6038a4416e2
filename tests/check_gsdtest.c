/*
 * check_gsdtest.c — the test harness's own tests (include/gsd/test.h):
 * virtual time, every request, infos to the test, downs and exit reasons,
 * hot upgrade, bad input, and the harness's lifecycle. Modules come from
 * $GSD_BUILD/modules (the reference modules); one, "notifier", is linked
 * into this program (gst_add_module), to send the test what it is told.
 */
#include <gsd/test.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char dirs[1024];
static char upgraded[1024]; /* the counter, version 2 */

static void ck_failure(const char *file, int line, const char *message)
{
    ck_abort_msg("%s:%d: %s", file, line, message);
}

static gst *T;

static void setup(void)
{
    gst_on_failure(ck_failure);
    T = gst_new(dirs);
}

static void teardown(void)
{
    gst_free(T);
    T = NULL;
}

static int64_t real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a module linked into the test: it sends the test what it is told --- */

struct notifier {
    gs_from asker;     /* a call waiting for an answer from elsewhere */
    gs_value *tick_to; /* where ticks go */
    uint64_t ticks;    /* ticks sent */
};

static gs_result notifier_init(gs_server *self, const gs_value *args, void **state)
{
    (void)self, (void)args;
    *state = calloc(1, sizeof(struct notifier));
    return *state ? gs_ok() : gs_stop(gs_str("enomem"));
}

static gs_result notifier_call(gs_server *self, const gs_value *req, gs_from from, void **state)
{
    struct notifier *n = *state;
    if (gs_is_tuple(req, "ask", 3)) { /* ["ask", server, request]: the answer, later */
        n->asker = from;
        gs_call(self, *gs_at(req, 1), *gs_at(req, 2), 1000);
        return gs_noreply();
    }
    if (gs_is(req, "ticks"))
        return gs_reply(gs_uint(n->ticks));
    return gs_reply(gs_error_reply(self, "unknown_call", *req));
}

static gs_result notifier_cast(gs_server *self, const gs_value *req, void **state)
{
    struct notifier *n = *state;
    if (gs_is_tuple(req, "send", 3))
        gs_send(self, *gs_at(req, 1), *gs_at(req, 2));
    else if (gs_is_tuple(req, "cast", 3))
        gs_cast(self, *gs_at(req, 1), *gs_at(req, 2));
    else if (gs_is_tuple(req, "tick", 3)) { /* ["tick", server, ms]: a tick every ms */
        uint64_t ms = 0;
        gs_get_uint(gs_at(req, 2), &ms);
        gs_value_free(n->tick_to);
        n->tick_to = gs_value_copy(gs_at(req, 1));
        gs_timer_start(self, ms, gs_uint(ms));
    }
    return gs_noreply();
}

static gs_result notifier_info(gs_server *self, const gs_value *msg, void **state)
{
    struct notifier *n = *state;
    uint64_t ms;
    if (gs_is_tuple(msg, "reply", 4)) { /* the answer to "ask" */
        const gs_value *err = gs_at(msg, 2);
        gs_reply_to(self, n->asker, gs_is_nil(err) ? *gs_at(msg, 3) : *err);
    } else if (gs_get_uint(msg, &ms) && n->tick_to) {
        n->ticks++;
        gs_send(self, *n->tick_to, gs_tuple(self, 2, gs_str("tick"), gs_uint(n->ticks)));
        gs_timer_start(self, ms, *msg);
    }
    return gs_noreply();
}

static void notifier_terminate(gs_server *self, const gs_value *reason, void **state)
{
    (void)self, (void)reason;
    struct notifier *n = *state;
    gs_value_free(n->tick_to);
    free(n);
}

GS_MODULE(.name = "notifier", .vsn = 1, .init = notifier_init, .handle_call = notifier_call,
          .handle_cast = notifier_cast, .handle_info = notifier_info,
          .terminate = notifier_terminate);

/* ---- virtual time ---------------------------------------------------------- */

START_TEST(a_ten_second_timer_fires_on_advance_without_waiting)
{
    int64_t wall = real_ms();
    gst_start_ok(T, "probe", "p", NULL);
    uint32_t h = gst_call_async(T, "p", "[\"reply_after\", 10000, \"late\"]", GST_INFINITY);
    ck_assert_uint_ne(h, 0);
    gst_assert_error(gst_answer(T, h), "no_reply");
    ck_assert_int_eq(gst_next_timer(T), 10000);
    gst_advance(T, 9999);
    gst_assert_error(gst_answer(T, h), "no_reply");
    gst_assert_value(gst_call(T, "p", "[\"echo\", 1]"), "1"); /* it serves meanwhile */
    gst_advance(T, 1);
    gst_assert_value(gst_answer(T, h), "late");
    gst_assert_error(gst_answer(T, h), "badarg"); /* answered once */
    ck_assert_int_eq(gst_now(T), 10000);
    ck_assert_int_eq(gst_next_timer(T), -1);
    ck_assert_int_lt(real_ms() - wall, 2000);
}
END_TEST

START_TEST(the_monotonic_clocks_stand_still_until_advanced)
{
    clockid_t ids[] = {CLOCK_MONOTONIC, CLOCK_MONOTONIC_COARSE, CLOCK_MONOTONIC_RAW,
                       CLOCK_BOOTTIME};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        int64_t a = mono_ms(ids[i]);
        usleep(20000);
        ck_assert_int_eq(mono_ms(ids[i]), a);
        gst_advance(T, 250);
        ck_assert_int_eq(mono_ms(ids[i]), a + 250);
    }
    int64_t r = real_ms();
    usleep(20000);
    ck_assert_int_ge(real_ms(), r + 15); /* the real clock is left alone */
    ck_assert_int_eq(gst_now(T), 1000);
}
END_TEST

START_TEST(a_timer_that_rearms_fires_once_per_period)
{
    gst_add_module(T, &gs_module_info);
    gst_inbox(T, "test");
    gst_start_ok(T, "notifier", "n", NULL);
    gst_assert_value(gst_cast(T, "n", "[\"tick\", \"test\", 100]"), "null");
    gst_advance(T, 99);
    gst_assert_no_info(T, "test");
    gst_advance(T, 1);
    gst_assert_info(T, "test", "[\"tick\", 1]");
    gst_advance(T, 1000); /* ten more periods, each at its own time */
    ck_assert_uint_eq(gst_info_count(T, "test"), 10);
    for (int i = 2; i <= 11; i++) {
        char want[32];
        snprintf(want, sizeof want, "[\"tick\", %d]", i);
        gst_assert_info(T, "test", want);
    }
    gst_assert_value(gst_call(T, "n", "ticks"), "11");
}
END_TEST

START_TEST(idle_timeouts_count_quiet_periods)
{
    gst_start_ok(T, "idle", "i", "100");
    gst_advance(T, 1000);
    gst_assert_value(gst_call(T, "i", "idle_count"), "10");
    gst_advance(T, 50); /* the call started a new quiet period */
    gst_assert_value(gst_call(T, "i", "ping"), "pong");
    gst_advance(T, 99);
    gst_assert_value(gst_call(T, "i", "idle_count"), "10");
}
END_TEST

START_TEST(a_call_times_out_in_virtual_time)
{
    gst_start_ok(T, "probe", "p", NULL);
    uint32_t h = gst_request_async(T, "call", "[\"p\", [\"reply_after\", 5000, 1], 300]");
    gst_advance(T, 299);
    gst_assert_error(gst_answer(T, h), "no_reply");
    gst_advance(T, 1);
    gst_assert_error(gst_answer(T, h), "timeout");
    gst_advance(T, 10000); /* the late reply is dropped; the probe lives on */
    ck_assert(gst_alive(T, "p"));
    /* A synchronous call that waits on a timer says so. */
    gst_result r = gst_call(T, "p", "[\"reply_after\", 10, 2]");
    gst_assert_error(r, "no_reply");
    ck_assert_ptr_nonnull(strstr(r.value, "gst_advance"));
}
END_TEST

/* ---- requests ---------------------------------------------------------------- */

START_TEST(start_call_cast_send_stop)
{
    uint64_t id = gst_start_ok(T, "counter", "c", "41");
    ck_assert_uint_gt(id, 0);
    gst_assert_value(gst_call(T, "c", "increment"), "42");
    gst_assert_value(gst_call(T, "c", "[\"add\", -2]"), "40");
    gst_assert_value(gst_cast(T, "c", "[\"add\", 10]"), "null");
    char ref[24];
    snprintf(ref, sizeof ref, "%llu", (unsigned long long)id);
    gst_assert_value(gst_call(T, ref, "get"), "50"); /* by id */
    gst_assert_value(gst_state(T, "c"), "50");
    gst_result info = gst_info(T, "c");
    ck_assert_ptr_null(info.error);
    ck_assert_ptr_nonnull(strstr(info.value, "\"module\":\"counter\""));

    uint64_t p = gst_start_ok(T, "probe", "p", NULL);
    gst_assert_value(gst_send(T, "p", "[\"hello\", 1]"), "null");
    gst_assert_value(gst_call(T, "p", "infos"), "[[\"hello\", 1]]");

    ck_assert(gst_alive(T, "c"));
    gst_assert_value(gst_stop(T, "c", NULL), "null");
    ck_assert(!gst_alive(T, "c"));
    gst_assert_exit(T, "c", "normal");
    gst_assert_exit(T, "p", NULL);
    gst_assert_error(gst_call(T, "c", "get"), "noproc");

    /* Anonymous, with options, and any method. */
    gst_result r = gst_start(T, "counter", NULL, "7", "{\"mailbox_limit\": 10}");
    ck_assert_ptr_null(r.error);
    gst_assert_value(gst_call(T, r.value, "get"), "7");
    char pid[24];
    snprintf(pid, sizeof pid, "%llu", (unsigned long long)p);
    gst_assert_value(gst_request(T, "whereis", "[\"p\"]"), pid);
    gst_assert_value(gst_request(T, "ping", "[]"), "pong");
}
END_TEST

START_TEST(results_stay_valid_until_free)
{
    gst_start_ok(T, "counter", "c", "1");
    const char *a = gst_call(T, "c", "get").value;
    const char *b = gst_call(T, "c", "increment").value;
    for (int i = 0; i < 100; i++)
        gst_call(T, "c", "get");
    ck_assert_str_eq(a, "1");
    ck_assert_str_eq(b, "2");
    gst_forget(T);
    gst_assert_value(gst_call(T, "c", "get"), "2");
}
END_TEST

START_TEST(start_errors)
{
    gst_assert_error(gst_start(T, "nosuchmodule", "x", NULL, NULL), "module");
    gst_assert_error(gst_start(T, "../counter", "x", NULL, NULL), "badarg");
    gst_assert_error_detail(
        gst_start(T, "probe", "p", "{\"init\": \"stop\", \"reason\": \"nope\"}", NULL), "init_stop",
        "nope");
    gst_assert_error(gst_start(T, "probe", "p", "{\"init\": \"ignore\"}", NULL), "ignore");
    gst_assert_exit(T, "p", NULL); /* never started */
    uint64_t id = gst_start_ok(T, "counter", "c", NULL);
    char want[24];
    snprintf(want, sizeof want, "%llu", (unsigned long long)id);
    gst_assert_error_detail(gst_start(T, "counter", "c", NULL, NULL), "already_started", want);
    gst_assert_error(gst_start(T, "counter", "d", "\"not a number\"", NULL), "init_stop");
    gst_assert_error(gst_start(T, "counter", "e", NULL, "[1]"), "badarg");
}
END_TEST

START_TEST(bad_json_is_refused_before_sending)
{
    gst_start_ok(T, "counter", "c", "5");
    gst_result r = gst_call(T, "c", "[\"add\", 1");
    gst_assert_error(r, "json");
    ck_assert_ptr_nonnull(strstr(r.value, "not valid JSON"));
    gst_assert_error(gst_cast(T, "c", "{oops}"), "json");
    gst_assert_error(gst_start(T, "counter", "d", "\"unterminated", NULL), "json");
    gst_assert_error(gst_request(T, "ping", "{}"), "json"); /* params must be an array */
    gst_assert_error(gst_answer(T, gst_call_async(T, "c", "[", GST_DEFAULT)), "json");
    gst_assert_value(gst_call(T, "c", "get"), "5"); /* nothing reached it */
    /* Plain text is a string, as for gsctl. */
    gst_assert_value(gst_call(T, "c", "bogus"), "[\"error\", [\"unknown_call\", \"bogus\"]]");
    gst_assert_error(gst_request(T, "no_such_method", "[]"), "unknown_method");
    gst_assert_error(gst_call(T, "nobody", "get"), "noproc");
    gst_assert_error(gst_call(T, "12345", "get"), "noproc");
}
END_TEST

/* ---- downs and exit reasons ------------------------------------------------------ */

START_TEST(downs_and_exit_reasons)
{
    gst_start_ok(T, "probe", "a", NULL);
    gst_start_ok(T, "probe", "b", NULL);
    gst_start_ok(T, "probe", "c", NULL);
    uint64_t ra = gst_monitor(T, "a");
    ck_assert_uint_gt(ra, 0);
    ck_assert_ptr_null(gst_next_down(T));

    /* A call that stops its server with a reply. */
    gst_assert_value(gst_call(T, "a", "[\"stop\", [\"shutdown\", 1], \"bye\"]"), "bye");
    gst_assert_exit(T, "a", "[\"shutdown\", 1]");
    ck_assert_str_eq(gst_down_reason(T, ra), "[\"shutdown\",1]");
    const char *down = gst_next_down(T);
    ck_assert_ptr_nonnull(down);
    ck_assert_ptr_nonnull(strstr(down, "\"a\""));
    ck_assert_ptr_null(gst_next_down(T));

    /* Without a reply: the caller gets exit with the reason. */
    gst_assert_error_detail(gst_call(T, "b", "[\"stop_noreply\", \"boom\"]"), "exit", "boom");
    gst_assert_exit(T, "b", "boom");

    /* A cast, and a stop with a reason. */
    gst_assert_value(gst_cast(T, "c", "[\"stop\", {\"why\": 1}]"), "null");
    gst_assert_exit(T, "c", "{\"why\": 1}");
    gst_start_ok(T, "counter", "d", NULL);
    gst_assert_value(gst_stop(T, "d", "[\"shutdown\", \"tests\"]"), "null");
    gst_assert_exit(T, "d", "[\"shutdown\", \"tests\"]");

    /* A monitor of nobody: noproc at once. */
    uint64_t rn = gst_monitor(T, "nobody");
    ck_assert_str_eq(gst_down_reason(T, rn), "\"noproc\"");

    /* A server started again under a name: the latest one counts. */
    gst_start_ok(T, "probe", "a", NULL);
    gst_assert_exit(T, "a", NULL);

    /* A server stopped by the daemon on a bad return. */
    gst_start_ok(T, "counter", "e", NULL);
    gst_assert_value(gst_send(T, "e", "stray"), "null"); /* logged, dropped: lives on */
    gst_assert_exit(T, "e", NULL);
}
END_TEST

START_TEST(a_server_monitors_another)
{
    gst_start_ok(T, "probe", "watcher", NULL);
    uint64_t id = gst_start_ok(T, "counter", "c", NULL);
    const char *ref = gst_call_ok(T, "watcher", "[\"monitor\", \"c\"]");
    ck_assert_ptr_nonnull(ref);
    gst_stop(T, "c", "\"gone\"");
    char want[128];
    snprintf(want, sizeof want, "[[\"down\", %s, %llu, \"gone\"]]", ref, (unsigned long long)id);
    gst_assert_value(gst_call(T, "watcher", "infos"), want);
}
END_TEST

/* ---- infos to the test --------------------------------------------------------- */

START_TEST(servers_send_cast_and_call_the_test)
{
    ck_assert(gst_add_module(T, &gs_module_info));
    uint64_t inbox = gst_inbox(T, "test");
    ck_assert_uint_gt(inbox, 0);
    gst_start_ok(T, "notifier", "n", NULL);
    gst_assert_no_info(T, "test");

    gst_cast(T, "n", "[\"send\", \"test\", [\"event\", 1]]");
    gst_cast(T, "n", "[\"cast\", \"test\", \"hello\"]");
    ck_assert_uint_eq(gst_info_count(T, "test"), 2);
    gst_assert_info(T, "test", "[\"event\", 1]");
    gst_assert_info(T, "test", "[\"$gen_cast\", \"hello\"]");
    gst_assert_no_info(T, "test");

    /* By id too. */
    char id[24];
    snprintf(id, sizeof id, "%llu", (unsigned long long)inbox);
    char req[96];
    snprintf(req, sizeof req, "[\"send\", %s, 2]", id);
    gst_cast(T, "n", req);
    gst_assert_info(T, id, "2");

    /* A call to the test: the test answers it. */
    uint32_t h = gst_call_async(T, "n", "[\"ask\", \"test\", [\"price\", \"apple\"]]", GST_DEFAULT);
    const char *call = gst_next_info(T, "test");
    ck_assert_ptr_nonnull(call);
    unsigned long long tag = 0;
    ck_assert_int_eq(sscanf(call, "[\"$gen_call\",%llu,[\"price\",\"apple\"]]", &tag), 1);
    gst_assert_error(gst_answer(T, h), "no_reply");
    ck_assert(gst_inbox_reply(T, "test", tag, "3"));
    ck_assert(!gst_inbox_reply(T, "test", tag, "4")); /* answered already */
    gst_assert_value(gst_answer(T, h), "3");

    /* One the test leaves unanswered times out in virtual time. */
    h = gst_call_async(T, "n", "[\"ask\", \"test\", \"q\"]", GST_DEFAULT);
    ck_assert_ptr_nonnull(gst_next_info(T, "test"));
    gst_advance(T, 1000);
    gst_result r = gst_answer(T, h);
    ck_assert_ptr_null(r.error);
    ck_assert_msg(strncmp(r.value, "[\"timeout\",", 11) == 0, "%s", r.value);

    /* A probe's gs_call of the test, by the reference module. */
    gst_start_ok(T, "probe", "p", NULL);
    h = gst_call_async(T, "p", "[\"call\", \"test\", \"ping\", 500]", GST_DEFAULT);
    call = gst_next_info(T, "test");
    ck_assert_int_eq(sscanf(call, "[\"$gen_call\",%llu,\"ping\"]", &tag), 1);
    ck_assert(gst_inbox_reply(T, "test", tag, "\"pong\""));
    gst_assert_value(gst_answer(T, h), "[\"ok\", \"pong\"]");
}
END_TEST

START_TEST(an_inbox_stopped_keeps_its_messages)
{
    gst_start_ok(T, "probe", "p", NULL);
    gst_inbox(T, "listener");
    uint64_t ref = gst_monitor(T, "listener");
    gst_send(T, "listener", "x");
    gst_stop(T, "listener", NULL);
    ck_assert_str_eq(gst_down_reason(T, ref), "\"normal\"");
    gst_assert_info(T, "listener", "x");
    gst_assert_error(gst_send(T, "listener", "y"), "noproc");
}
END_TEST

/* ---- hot upgrade --------------------------------------------------------------- */

START_TEST(hot_upgrade_from_a_new_file)
{
    gst_start_ok(T, "counter", "c1", "10");
    gst_start_ok(T, "counter", "c2", "20");
    gst_call(T, "c1", "increment");
    gst_assert_value(gst_call(T, "c1", "vsn"), "1");
    gst_result r = gst_upgrade(T, "counter", upgraded);
    ck_assert_msg(r.error == NULL, "%s %s", r.error, r.value);
    ck_assert_ptr_nonnull(strstr(r.value, "\"vsn\":2"));
    ck_assert_ptr_nonnull(strstr(r.value, "\"upgraded\":2"));
    gst_assert_value(gst_call(T, "c1", "vsn"), "2");
    gst_assert_value(gst_call(T, "c1", "get"), "11");
    gst_assert_value(gst_call(T, "c2", "get"), "20");
    gst_call(T, "c2", "increment");
    gst_assert_value(gst_call(T, "c2", "changes"), "1");
    gst_start_ok(T, "counter", "c3", NULL); /* new servers run version 2 */
    gst_assert_value(gst_call(T, "c3", "vsn"), "2");
    r = gst_reload(T, "counter"); /* the same file again: the same layout */
    ck_assert_msg(r.error == NULL, "%s %s", r.error, r.value);
    gst_assert_value(gst_call(T, "c1", "get"), "11");
}
END_TEST

START_TEST(upgrade_errors)
{
    gst_start_ok(T, "counter", "c", "3");
    gst_assert_error(gst_upgrade(T, "counter", "/nonexistent/counter.so"), "module");
    gst_assert_error(gst_upgrade(T, "counter", "/etc/hostname"), "module"); /* not ELF */
    gst_assert_error(gst_upgrade(T, "../x", upgraded), "module");
    gst_assert_value(gst_call(T, "c", "vsn"), "1"); /* still running version 1 */
    gst_assert_value(gst_call(T, "c", "get"), "3");
    gst_assert_error(gst_reload(T, "nosuchmodule"), "module");
}
END_TEST

/* ---- the harness itself --------------------------------------------------------- */

static char failed[2048];
static int failures;

static void record_failure(const char *file, int line, const char *message)
{
    snprintf(failed, sizeof failed, "%s:%d: %s", file, line, message);
    failures++;
}

START_TEST(assertions_report_file_and_line)
{
    gst_start_ok(T, "counter", "c", "1");
    gst_on_failure(record_failure);
    int line = __LINE__ + 1;
    ck_assert(!gst_assert_value(gst_call(T, "c", "get"), "2"));
    char where[256];
    snprintf(where, sizeof where, "%s:%d: expected 2, got 1", __FILE__, line);
    ck_assert_str_eq(failed, where);
    ck_assert(!gst_assert_error(gst_call(T, "c", "get"), "noproc"));
    ck_assert(!gst_assert_value(gst_call(T, "nobody", "get"), "1"));
    ck_assert_ptr_nonnull(strstr(failed, "error noproc"));
    ck_assert(!gst_assert_no_info(T, "nobox"));
    ck_assert_uint_eq(gst_start_ok(T, "nosuchmodule", NULL, NULL), 0);
    ck_assert_ptr_null(gst_call_ok(T, "nobody", "get"));
    ck_assert(gst_assert_value(gst_call(T, "c", "get"), "1"));
    ck_assert(gst_assert_value(gst_call(T, "c", "get"), " 1 "));
    gst_on_failure(ck_failure);
    ck_assert_int_eq(failures, 6);
}
END_TEST

START_TEST(a_loop_that_never_settles_is_reported)
{
    gst_start_ok(T, "idle", "i", "1"); /* settles: one timeout per ms */
    gst_advance(T, 100);
    gst_assert_value(gst_call(T, "i", "idle_count"), "100");
    gst_on_failure(record_failure);
    failures = 0;
    gst_start(T, "idle", "busy", "0", NULL); /* a timeout of 0, re-armed forever */
    gst_on_failure(ck_failure);
    ck_assert_int_ge(failures, 1);
    ck_assert_ptr_nonnull(strstr(failed, "never goes idle"));
}
END_TEST

START_TEST(json_equality)
{
    ck_assert(gst_json_equal("{\"a\":1,\"b\":[2]}", "{\"b\": [2], \"a\": 1}"));
    ck_assert(gst_json_equal("\"pong\"", "pong"));
    ck_assert(!gst_json_equal("1", "1.0"));
    ck_assert(!gst_json_equal("[1]", "[1"));
    ck_assert(gst_json_equal(NULL, NULL));
    ck_assert(!gst_json_equal("null", NULL));
}
END_TEST

START_TEST(one_harness_after_another)
{
    gst_start_ok(T, "counter", "c", "1");
    gst_advance(T, 500);
    int64_t before = mono_ms(CLOCK_MONOTONIC);
    gst_free(T);
    T = gst_new(dirs);
    ck_assert_int_eq(gst_now(T), 0);
    ck_assert_int_ge(mono_ms(CLOCK_MONOTONIC), before); /* never back */
    gst_assert_error(gst_call(T, "c", "get"), "noproc");
    gst_start_ok(T, "counter", "c", "2");
    gst_assert_value(gst_call(T, "c", "get"), "2");
    gst_start_ok(T, "cache", "k", "{\"cleanup_ms\": 10}");
    gst_free(T); /* with servers and timers still there */
    T = gst_new(dirs);
}
END_TEST

START_TEST(supervision_restarts_after_a_delay)
{
    gst_result r = gst_start(T, "probe", "p", NULL, "{\"restart\": \"permanent\"}");
    ck_assert_ptr_null(r.error);
    gst_cast(T, "p", "[\"stop\", \"crash\"]");
    gst_assert_exit(T, "p", "crash");
    ck_assert(gst_alive(T, "p")); /* restarted at once, under its name */
    gst_assert_value(gst_call(T, "p", "[\"echo\", 1]"), "1");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("gsdtest");
    TCase *tc = tcase_create("harness");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, a_ten_second_timer_fires_on_advance_without_waiting);
    tcase_add_test(tc, the_monotonic_clocks_stand_still_until_advanced);
    tcase_add_test(tc, a_timer_that_rearms_fires_once_per_period);
    tcase_add_test(tc, idle_timeouts_count_quiet_periods);
    tcase_add_test(tc, a_call_times_out_in_virtual_time);
    tcase_add_test(tc, start_call_cast_send_stop);
    tcase_add_test(tc, results_stay_valid_until_free);
    tcase_add_test(tc, start_errors);
    tcase_add_test(tc, bad_json_is_refused_before_sending);
    tcase_add_test(tc, downs_and_exit_reasons);
    tcase_add_test(tc, a_server_monitors_another);
    tcase_add_test(tc, servers_send_cast_and_call_the_test);
    tcase_add_test(tc, an_inbox_stopped_keeps_its_messages);
    tcase_add_test(tc, hot_upgrade_from_a_new_file);
    tcase_add_test(tc, upgrade_errors);
    tcase_add_test(tc, assertions_report_file_and_line);
    tcase_add_test(tc, a_loop_that_never_settles_is_reported);
    tcase_add_test(tc, json_equality);
    tcase_add_test(tc, one_harness_after_another);
    tcase_add_test(tc, supervision_restarts_after_a_delay);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    const char *build = getenv("GSD_BUILD");
    if (build == NULL)
        build = "build";
    snprintf(dirs, sizeof dirs, "%s/modules", build);
    snprintf(upgraded, sizeof upgraded, "%s/modules/upgrade/counter.so", build);
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed_n = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed_n == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
