/*
 * ratelimit_test — the rate limiter's tests, with the harness alone
 * (pkg-config gsd-test check): buckets, refills under virtual time, the
 * state shown, and the v1 -> v2 upgrade keeping every bucket.
 *
 * GSD_TEST_MODULES: the directory holding ratelimit.so (version 1);
 * RATELIMIT_V2: the path of version 2's ratelimit.so.
 */
#include <check.h>
#include <gsd/test.h>
#include <stdlib.h>

static gst *T;

static void to_check(const char *file, int line, const char *message)
{
    ck_abort_msg("%s:%d: %s", file, line, message);
}

static void setup(void)
{
    gst_on_failure(to_check);
    T = gst_new(NULL);
    gst_start_ok(T, "ratelimit", "rl", "{\"rate\": 10, \"burst\": 3}");
}

static void teardown(void)
{
    gst_free(T);
}

START_TEST(a_key_takes_its_burst_then_is_limited)
{
    gst_assert_value(gst_call(T, "rl", "[\"take\", \"alice\"]"), "[\"ok\", 2]");
    gst_assert_value(gst_call(T, "rl", "[\"take\", \"alice\"]"), "[\"ok\", 1]");
    gst_assert_value(gst_call(T, "rl", "[\"take\", \"alice\"]"), "[\"ok\", 0]");
    /* 10 a second: the next token is 100 ms away */
    gst_assert_value(gst_call(T, "rl", "[\"take\", \"alice\"]"), "[\"error\", [\"limited\", 101]]");
    gst_assert_value(gst_call(T, "rl", "[\"take\", \"bob\"]"), "[\"ok\", 2]"); /* his own */
}
END_TEST

START_TEST(the_refill_timer_gives_tokens_back)
{
    for (int i = 0; i < 3; i++)
        gst_call_ok(T, "rl", "[\"take\", \"k\"]");
    gst_assert_value(gst_call(T, "rl", "[\"peek\", \"k\"]"), "0");
    gst_advance(T, 100); /* one refill */
    gst_assert_value(gst_call(T, "rl", "[\"peek\", \"k\"]"), "1");
    gst_advance(T, 10000); /* full again, then forgotten */
    gst_assert_value(gst_state(T, "rl"), "{\"rate\": 10.0, \"burst\": 3.0, \"keys\": 0}");
}
END_TEST

START_TEST(bad_args_and_requests)
{
    gst_assert_error_detail(gst_start(T, "ratelimit", NULL, "{\"rate\": 0, \"burst\": 3}", NULL),
                            "init_stop", "[\"badarg\", {\"rate\": 0, \"burst\": 3}]");
    gst_assert_value(gst_call(T, "rl", "[\"take\"]"),
                     "[\"error\", [\"unknown_call\", [\"take\"]]]");
    gst_cast(T, "rl", "reset");
    gst_assert_exit(T, "rl", NULL); /* still running */
}
END_TEST

START_TEST(the_upgrade_to_v2_keeps_every_bucket)
{
    gst_call_ok(T, "rl", "[\"take\", \"k\"]");
    gst_call_ok(T, "rl", "[\"take\", \"k\"]");
    gst_result r = gst_upgrade(T, "ratelimit", getenv("RATELIMIT_V2"));
    ck_assert_msg(r.error == NULL, "%s: %s", r.error, r.value);
    gst_assert_value(gst_call(T, "rl", "[\"peek\", \"k\"]"), "1");
    gst_call_ok(T, "rl", "[\"take\", \"k\"]");
    gst_call_ok(T, "rl", "[\"take\", \"k\"]"); /* refused, and counted by v2 */
    gst_assert_value(gst_state(T, "rl"),
                     "{\"rate\": 10.0, \"burst\": 3.0, \"keys\": 1, \"denied\": 1}");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ratelimit");
    TCase *tc = tcase_create("ratelimit");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, a_key_takes_its_burst_then_is_limited);
    tcase_add_test(tc, the_refill_timer_gives_tokens_back);
    tcase_add_test(tc, bad_args_and_requests);
    tcase_add_test(tc, the_upgrade_to_v2_keeps_every_bucket);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
