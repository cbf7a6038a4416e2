/*
 * check_modules_unit.c — unit tests of the reference modules, written as a
 * module author writes them: with the test harness (include/gsd/test.h),
 * the servers in this program, and virtual time for the timers. Modules
 * come from $GSD_BUILD/modules.
 */
#include <gsd/test.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

static char dirs[1024];
static gst *T;

static void ck_failure(const char *file, int line, const char *message)
{
    ck_abort_msg("%s:%d: %s", file, line, message);
}

static void setup(void)
{
    gst_on_failure(ck_failure);
    T = gst_new(dirs);
}

static void teardown(void)
{
    gst_free(T);
}

/* ---- counter ------------------------------------------------------------------ */

START_TEST(counter_counts)
{
    gst_start_ok(T, "counter", "c", NULL);
    gst_assert_value(gst_call(T, "c", "get"), "0");
    gst_assert_value(gst_call(T, "c", "increment"), "1");
    gst_assert_value(gst_call(T, "c", "[\"add\", 41]"), "42");
    gst_assert_value(gst_call(T, "c", "[\"add\", -50]"), "-8");
    gst_cast(T, "c", "increment");
    gst_cast(T, "c", "[\"add\", 10]");
    gst_assert_value(gst_call(T, "c", "get"), "3");
    gst_cast(T, "c", "reset");
    gst_assert_value(gst_state(T, "c"), "0");
    gst_assert_value(gst_call(T, "c", "vsn"), "1");
}
END_TEST

START_TEST(counter_refuses_what_it_does_not_know)
{
    gst_start_ok(T, "counter", "c", "9223372036854775807");
    gst_assert_value(gst_call(T, "c", "increment"), "[\"error\", [\"overflow\", \"increment\"]]");
    gst_assert_value(gst_call(T, "c", "get"), "9223372036854775807");
    gst_assert_value(gst_call(T, "c", "[\"mul\", 2]"),
                     "[\"error\", [\"unknown_call\", [\"mul\", 2]]]");
    gst_cast(T, "c", "nonsense"); /* logged and dropped */
    gst_assert_exit(T, "c", NULL);
    gst_assert_error_detail(gst_start(T, "counter", "d", "\"ten\"", NULL), "init_stop",
                            "[\"badarg\", \"ten\"]");
}
END_TEST

START_TEST(counter_upgrades_to_version_2_with_its_count)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/upgrade/counter.so", dirs);
    gst_start_ok(T, "counter", "c", "5");
    gst_call(T, "c", "increment");
    gst_result r = gst_upgrade(T, "counter", path);
    ck_assert_msg(r.error == NULL, "%s %s", r.error, r.value);
    gst_assert_value(gst_call(T, "c", "vsn"), "2");
    gst_assert_value(gst_call(T, "c", "get"), "6");
    gst_assert_value(gst_call(T, "c", "changes"), "0");
    gst_call(T, "c", "increment");
    gst_assert_value(gst_call(T, "c", "changes"), "1");
}
END_TEST

/* ---- stack -------------------------------------------------------------------- */

START_TEST(stack_is_last_in_first_out)
{
    gst_start_ok(T, "stack", "s", "[\"top\", {\"deep\": [1, 2]}]");
    gst_assert_value(gst_call(T, "s", "size"), "2");
    gst_cast(T, "s", "[\"push\", 3.5]");
    gst_assert_value(gst_state(T, "s"), "[3.5, \"top\", {\"deep\": [1, 2]}]");
    gst_assert_value(gst_call(T, "s", "pop"), "3.5");
    gst_assert_value(gst_call(T, "s", "pop"), "top");
    gst_assert_value(gst_call(T, "s", "pop"), "{\"deep\": [1, 2]}");
    gst_assert_value(gst_call(T, "s", "pop"), "null");
    gst_assert_value(gst_call(T, "s", "size"), "0");
    gst_assert_value(gst_call(T, "s", "peek"), "[\"error\", [\"unknown_call\", \"peek\"]]");
    gst_assert_error(gst_start(T, "stack", "bad", "42", NULL), "init_stop");
}
END_TEST

/* ---- cache -------------------------------------------------------------------- */

START_TEST(cache_entries_expire_on_time)
{
    gst_start_ok(T, "cache", "k", NULL);
    gst_cast(T, "k", "[\"put\", \"a\", 1]");
    gst_cast(T, "k", "[\"put\", \"b\", 2, 50]");
    gst_assert_value(gst_call(T, "k", "[\"get\", \"b\"]"), "2");
    gst_advance(T, 49);
    gst_assert_value(gst_call(T, "k", "[\"get\", \"b\"]"), "2");
    gst_assert_value(gst_call(T, "k", "stats"), "{\"size\": 2, \"hits\": 2, \"misses\": 0}");
    gst_advance(T, 1);
    gst_assert_value(gst_call(T, "k", "[\"get\", \"b\"]"), "null");
    gst_assert_value(gst_call(T, "k", "[\"get\", \"a\"]"), "1");
    gst_assert_value(gst_call(T, "k", "stats"), "{\"size\": 1, \"hits\": 3, \"misses\": 1}");
    gst_cast(T, "k", "[\"delete\", \"a\"]");
    gst_cast(T, "k", "[\"put\", [1, 2], {\"x\": null}, 0]"); /* expired at once */
    gst_assert_value(gst_call(T, "k", "[\"get\", [1, 2]]"), "null");
    gst_cast(T, "k", "[\"put\", \"c\", 3]");
    gst_cast(T, "k", "clear");
    gst_assert_value(gst_call(T, "k", "stats"), "{\"size\": 0, \"hits\": 3, \"misses\": 2}");
}
END_TEST

START_TEST(cache_sweeps_on_its_period)
{
    gst_start_ok(T, "cache", "k", "{\"cleanup_ms\": 100}");
    ck_assert_int_eq(gst_next_timer(T), 100);
    gst_cast(T, "k", "[\"put\", \"x\", 1, 250]");
    gst_advance(T, 1000); /* ten sweeps, each re-arming the next */
    ck_assert_int_eq(gst_next_timer(T), 100);
    gst_assert_value(gst_call(T, "k", "[\"get\", \"x\"]"), "null");
    /* A sweep sent by hand replaces the pending one: one chain only. */
    gst_advance(T, 30);
    gst_send(T, "k", "sweep");
    ck_assert_int_eq(gst_next_timer(T), 100);
    gst_send(T, "k", "other"); /* logged and dropped */
    gst_assert_exit(T, "k", NULL);
    gst_assert_error(gst_start(T, "cache", "bad", "{\"cleanup_ms\": 0}", NULL), "init_stop");
    gst_assert_error(gst_start(T, "cache", "bad", "[1]", NULL), "init_stop");
}
END_TEST

/* ---- idle --------------------------------------------------------------------- */

START_TEST(idle_fires_once_per_quiet_period)
{
    gst_start_ok(T, "idle", "i", "1000");
    gst_advance(T, 999);
    gst_assert_value(gst_call(T, "i", "idle_count"), "0");
    gst_advance(T, 1000); /* the call restarted the wait: one timeout at 1999 */
    gst_assert_value(gst_call(T, "i", "idle_count"), "1");
    gst_advance(T, 5000);
    gst_assert_value(gst_call(T, "i", "idle_count"), "6");
    for (int i = 0; i < 10; i++) { /* messages closer than the timeout keep it quiet */
        gst_advance(T, 900);
        gst_assert_value(gst_call(T, "i", "ping"), "pong");
    }
    gst_assert_value(gst_call(T, "i", "idle_count"), "6");
    gst_assert_error(gst_start(T, "idle", "bad", "-1", NULL), "init_stop");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("modules_unit");
    TCase *tc = tcase_create("reference modules");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, counter_counts);
    tcase_add_test(tc, counter_refuses_what_it_does_not_know);
    tcase_add_test(tc, counter_upgrades_to_version_2_with_its_count);
    tcase_add_test(tc, stack_is_last_in_first_out);
    tcase_add_test(tc, cache_entries_expire_on_time);
    tcase_add_test(tc, cache_sweeps_on_its_period);
    tcase_add_test(tc, idle_fires_once_per_quiet_period);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    const char *build = getenv("GSD_BUILD");
    snprintf(dirs, sizeof dirs, "%s/modules", build ? build : "build");
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
