/*
 * check_e2e_calls.c — requests to a server end to end: call, cast and
 * send on the wire (timeouts, unknown servers, bad params), every result
 * form a callback may return, what a module learns of its caller (deadline,
 * still waiting), and a module without the callbacks.
 *
 * Each test starts its own daemon (e2e.h) and checks at the end that it
 * still exits 0 on SIGTERM.
 */
#include "e2e.h"

/* ========================== call, cast and send =========================== */

START_TEST(call_default_timeout_is_5000)
{
    gsc_reply *r;
    probe("p", NULL);
    int64_t t0 = now_ms();
    ERR(gsc_call(C, "p", mp("['reply_after', 7000, 'late']"), 0, &r), &r, "timeout");
    int64_t took = now_ms() - t0;
    ck_assert_msg(took >= 4900 && took < 6500, "default call timeout took %lld ms",
                  (long long)took);
    ck_assert_mp_eq(CALL(C, "p", mp("['echo', 1]")), "1");
}
END_TEST

START_TEST(call_nil_timeout_allows_a_reply_within_5000)
{
    probe("p", NULL);
    ck_assert_mp_eq(CALL(C, "p", mp("['reply_after', 4000, 'in time']")), "'in time'");
}
END_TEST

START_TEST(call_infinity_waits_past_the_default)
{
    struct raw *a = RAW_CONNECT(D);
    probe("p", NULL);
    RAW_REQUEST(a, 1, "call", mp("['p', ['reply_after', 5600, 'patient'], 'infinity']"));
    ck_assert_mp_eq(RAW_RECV(a, 9000), "[1, 1, nil, 'patient']");
    raw_close(&a);
}
END_TEST

START_TEST(call_timeout_server_lives_and_late_reply_discarded)
{
    struct raw *a = RAW_CONNECT(D);
    probe("p", NULL);
    int64_t t0 = now_ms();
    RAW_REQUEST(a, 1, "call", mp("['p', ['reply_after', 600, 'late'], 150]"));
    const msgpack_object *m = RAW_RECV(a, 3000);
    CK_ERR_RESP(m, 1, "timeout");
    ck_assert_int_lt(now_ms() - t0, 550);
    sleep_ms(800); /* the late reply would have come by now */
    raw_ping_ok(a, 2);
    RAW_REQUEST(a, 3, "call", mp("['p', ['echo', 'next'], nil]"));
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 3, nil, 'next']");
    ck_assert(raw_recv(a, 200) == NULL);
    raw_close(&a);
}
END_TEST

START_TEST(call_timeout_through_the_library)
{
    gsc_reply *r;
    probe("p", NULL);
    ERR(gsc_call(C, "p", mp("['reply_after', 500, 'late']"), 100, &r), &r, "timeout");
    ck_assert_mp_eq(CALL(C, "p", mp("['echo', 'fine']")), "'fine'");
    sleep_ms(600);
    ck_assert_mp_eq(CALL(C, "p", mp("['echo', 'still']")), "'still'");
}
END_TEST

START_TEST(call_unknown_server_is_noproc)
{
    gsc_reply *r;
    ERR(gsc_call(C, "ghost", mp("'get'"), 0, &r), &r, "noproc");
    ERR(gsc_call(C, "999999", mp("'get'"), 0, &r), &r, "noproc");
}
END_TEST

START_TEST(call_bad_param_types_are_badarg)
{
    struct raw *a = RAW_CONNECT(D);
    START(C, "counter", "c", NULL);
    RAW_REQUEST(a, 2, "call", mp("['c', 'get', 'soon']"));
    CK_ERR_RESP(RAW_RECV(a, 3000), 2, "badarg");
    RAW_REQUEST(a, 3, "call", mp("[1.5, 'get', nil]"));
    CK_ERR_RESP(RAW_RECV(a, 3000), 3, "badarg");
    RAW_REQUEST(a, 4, "call", mp("[['c'], 'get', nil]"));
    CK_ERR_RESP(RAW_RECV(a, 3000), 4, "badarg");
    RAW_REQUEST(a, 5, "call", mp("['c', 'get', -5]"));
    CK_ERR_RESP(RAW_RECV(a, 3000), 5, "badarg");
    raw_ping_ok(a, 6);
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "0");
    raw_close(&a);
}
END_TEST

/* The params are the table's: a short array is not the same request with
 * nils filled in (call ['c'] must not reach the server as request nil). */
START_TEST(params_of_the_wrong_length_are_badarg)
{
    struct raw *a = RAW_CONNECT(D);
    forms("f", NULL);
    RAW_REQUEST(a, 1, "call", mp("['f']"));
    CK_ERR_RESP(RAW_RECV(a, 3000), 1, "badarg");
    RAW_REQUEST(a, 2, "cast", mp("['f']"));
    CK_ERR_RESP(RAW_RECV(a, 3000), 2, "badarg");
    RAW_REQUEST(a, 3, "start", mp("['counter']"));
    CK_ERR_RESP(RAW_RECV(a, 3000), 3, "badarg");
    RAW_REQUEST(a, 4, "whereis", mp("[]"));
    CK_ERR_RESP(RAW_RECV(a, 3000), 4, "badarg");
    RAW_REQUEST(a, 5, "call", mp("['f', 'casts', nil, 'extra']"));
    CK_ERR_RESP(RAW_RECV(a, 3000), 5, "badarg");
    ck_assert_mp_eq(CALL(C, "f", mp("'casts'")), "[]");
    raw_close(&a);
}
END_TEST

START_TEST(cast_answers_nil_and_reaches_handle_cast)
{
    forms("f", NULL);
    cast("f", mp("['x', 1]"));
    cast("f", mp("{'y': nil}"));
    ck_assert_mp_eq(CALL(C, "f", mp("'casts'")), "[['x', 1], {'y': nil}]");
}
END_TEST

START_TEST(cast_unknown_server_is_noproc)
{
    gsc_reply *r;
    ERR(gsc_cast(C, "ghost", mp("'x'"), &r), &r, "noproc");
}
END_TEST

START_TEST(cast_notification_to_unknown_server_is_ignored)
{
    struct raw *a = RAW_CONNECT(D);
    RAW_NOTIFY(a, "cast", mp("['ghost', 'x']"));
    RAW_NOTIFY(a, "send", mp("['ghost', 'x']"));
    raw_ping_ok(a, 1); /* nothing answered the notifications */
    raw_close(&a);
}
END_TEST

START_TEST(send_answers_nil_and_reaches_handle_info)
{
    probe("p", NULL);
    send_msg("p", mp("'hello'"));
    send_msg("p", mp("[1, 2]"));
    ck_assert_mp_eq(CALL(C, "p", mp("'infos'")), "['hello', [1, 2]]");
}
END_TEST

START_TEST(send_unknown_server_is_noproc)
{
    gsc_reply *r;
    ERR(gsc_send(C, "ghost", mp("'x'"), &r), &r, "noproc");
}
END_TEST

/* ========================= callback result forms ========================== */

START_TEST(call_reply_answers_the_value)
{
    forms("f", NULL);
    ck_assert_mp_eq(CALL(C, "f", mp("['reply', {'a': [1, nil, -2]}]")), "{'a': [1, nil, -2]}");
}
END_TEST

START_TEST(call_reply_timeout_sends_timeout_after_quiet)
{
    forms("f", NULL);
    ck_assert_mp_eq(CALL(C, "f", mp("['reply_timeout', 'x', 100]")), "'x'");
    sleep_ms(400);
    ck_assert_mp_eq(CALL(C, "f", mp("'timeouts'")), "1");
    sleep_ms(300); /* once, not again: the timeout is not re-armed by default */
    ck_assert_mp_eq(CALL(C, "f", mp("'timeouts'")), "1");
}
END_TEST

START_TEST(timeout_is_cancelled_by_the_next_message)
{
    forms("f", NULL);
    ck_assert_mp_eq(CALL(C, "f", mp("['reply_timeout', 'x', 400]")), "'x'");
    ck_assert_mp_eq(CALL(C, "f", mp("'timeouts'")), "0");
    sleep_ms(700);
    ck_assert_mp_eq(CALL(C, "f", mp("'timeouts'")), "0");
}
END_TEST

START_TEST(call_reply_hibernate_hibernates_until_next_message)
{
    forms("f", NULL);
    ck_assert_mp_eq(CALL(C, "f", mp("['reply_hibernate', 'z']")), "'z'");
    ck_assert(WAIT_UNTIL(1000, status_is("f", "hibernating")));
    ck_assert_mp_eq(CALL(C, "f", mp("['reply', 'w']")), "'w'");
    ck_assert(status_is("f", "running"));
}
END_TEST

START_TEST(call_noreply_answered_later_from_handle_cast)
{
    struct raw *a = RAW_CONNECT(D);
    forms("f", NULL);
    RAW_REQUEST(a, 1, "call", mp("['f', 'noreply', nil]"));
    ck_assert(raw_recv(a, 200) == NULL); /* no answer yet */
    RAW_REQUEST(a, 2, "cast", mp("['f', ['release', 'later']]"));
    const msgpack_object *m1 = RAW_RECV(a, 3000), *m2 = RAW_RECV(a, 3000);
    if (mp_eq(mp_item(m1, 1), "1")) {
        const msgpack_object *t = m1;
        m1 = m2;
        m2 = t;
    }
    ck_assert_mp_eq(m1, "[1, 2, nil, nil]");
    ck_assert_mp_eq(m2, "[1, 1, nil, 'later']");
    raw_close(&a);
}
END_TEST

START_TEST(call_noreply_answered_later_from_handle_info)
{
    struct raw *a = RAW_CONNECT(D);
    forms("f", NULL);
    RAW_REQUEST(a, 1, "call", mp("['f', 'noreply', nil]"));
    RAW_NOTIFY(a, "send", mp("['f', ['release', [1, 2]]]"));
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 1, nil, [1, 2]]");
    raw_close(&a);
}
END_TEST

START_TEST(call_noreply_answered_exactly_once_from_another_call)
{
    struct raw *a = RAW_CONNECT(D);
    forms("f", NULL);
    RAW_REQUEST(a, 1, "call", mp("['f', 'noreply', nil]"));
    RAW_REQUEST(a, 2, "call", mp("['f', ['release', 'v'], nil]"));
    const msgpack_object *m1 = RAW_RECV(a, 3000), *m2 = RAW_RECV(a, 3000);
    if (mp_eq(mp_item(m1, 1), "2")) {
        const msgpack_object *t = m1;
        m1 = m2;
        m2 = t;
    }
    ck_assert_mp_eq(m1, "[1, 1, nil, 'v']");
    ck_assert_mp_eq(m2, "[1, 2, nil, 0]");
    /* answering the same caller again is a no-op */
    ck_assert_mp_eq(CALL(C, "f", mp("['release', 'again']")), "-1");
    ck_assert(raw_recv(a, 200) == NULL);
    raw_close(&a);
}
END_TEST

START_TEST(call_noreply_timeout_then_reply_from_timeout)
{
    forms("f", NULL);
    int64_t t0 = now_ms();
    ck_assert_mp_eq(CALL(C, "f", mp("['noreply_timeout', 200]")), "'timed_out'");
    ck_assert_int_ge(now_ms() - t0, 190);
    ck_assert_mp_eq(CALL(C, "f", mp("'timeouts'")), "1");
}
END_TEST

START_TEST(call_noreply_hibernate_then_reply)
{
    struct raw *a = RAW_CONNECT(D);
    forms("f", NULL);
    RAW_REQUEST(a, 1, "call", mp("['f', 'noreply_hibernate', nil]"));
    ck_assert(WAIT_UNTIL(2000, status_is("f", "hibernating")));
    cast("f", mp("['release', 'awake']"));
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 1, nil, 'awake']");
    raw_close(&a);
}
END_TEST

START_TEST(call_stop_reply_terminates_then_replies)
{
    forms("f", "f.log");
    ck_assert_mp_eq(CALL(C, "f", mp("['stop_reply', 'normal', 'bye']")), "'bye'");
    ck_assert_str_eq(tlog("f.log"), "\"normal\"\n"); /* terminate ran first */
    ck_assert(!registered("f"));
}
END_TEST

START_TEST(call_stop_gives_the_caller_exit_with_reason)
{
    gsc_reply *r;
    forms("f", "f.log");
    ck_assert_mp_eq(ERR(gsc_call(C, "f", mp("['stop', 'boom']"), 0, &r), &r, "exit"), "'boom'");
    ck_assert_str_eq(tlog("f.log"), "\"boom\"\n");
    ck_assert(!registered("f"));
}
END_TEST

START_TEST(call_bad_return_value_stops_with_bad_return_value)
{
    gsc_reply *r;
    forms("f", "f.log");
    ck_assert_mp_eq(ERR(gsc_call(C, "f", mp("'bad'"), 0, &r), &r, "exit"), "'bad_return_value'");
    ck_assert_str_eq(tlog("f.log"), "\"bad_return_value\"\n");
    ck_assert(!registered("f"));
    const char *log = file_read(gsd_path(D, "gsd.log")); /* what it returned, by name */
    ck_assert_ptr_nonnull(strstr(log, "handle_call returned a zeroed result, which it may not"));
}
END_TEST

START_TEST(cast_noreply_timeout_sends_timeout)
{
    forms("f", NULL);
    cast("f", mp("['noreply_timeout', 100]"));
    sleep_ms(400);
    ck_assert_mp_eq(CALL(C, "f", mp("'timeouts'")), "1");
}
END_TEST

START_TEST(cast_noreply_hibernate_hibernates)
{
    forms("f", NULL);
    cast("f", mp("'noreply_hibernate'"));
    ck_assert(WAIT_UNTIL(1000, status_is("f", "hibernating")));
    ck_assert_mp_eq(CALL(C, "f", mp("['reply', 1]")), "1");
}
END_TEST

START_TEST(cast_stop_terminates_with_reason)
{
    forms("f", "f.log");
    cast("f", mp("['stop', ['shutdown', 'cast']]"));
    ck_assert(WAIT_UNTIL(2000, !registered("f")));
    ck_assert_str_eq(tlog("f.log"), "[\"shutdown\",\"cast\"]\n");
}
END_TEST

START_TEST(cast_bad_return_value_stops)
{
    forms("f", "f.log");
    cast("f", mp("'bad'"));
    ck_assert(WAIT_UNTIL(2000, !registered("f")));
    ck_assert_str_eq(tlog("f.log"), "\"bad_return_value\"\n");
}
END_TEST

START_TEST(info_noreply_timeout_sends_timeout)
{
    forms("f", NULL);
    send_msg("f", mp("['noreply_timeout', 100]"));
    sleep_ms(400);
    ck_assert_mp_eq(CALL(C, "f", mp("'timeouts'")), "1");
}
END_TEST

START_TEST(info_noreply_hibernate_hibernates)
{
    forms("f", NULL);
    send_msg("f", mp("'noreply_hibernate'"));
    ck_assert(WAIT_UNTIL(1000, status_is("f", "hibernating")));
}
END_TEST

START_TEST(info_stop_terminates_with_reason)
{
    forms("f", "f.log");
    send_msg("f", mp("['stop', 'from_info']"));
    ck_assert(WAIT_UNTIL(2000, !registered("f")));
    ck_assert_str_eq(tlog("f.log"), "\"from_info\"\n");
}
END_TEST

START_TEST(info_bad_return_value_stops)
{
    forms("f", "f.log");
    send_msg("f", mp("'bad'"));
    ck_assert(WAIT_UNTIL(2000, !registered("f")));
    ck_assert_str_eq(tlog("f.log"), "\"bad_return_value\"\n");
}
END_TEST

/* ============ the caller's deadline and whether it still waits ============ */

START_TEST(from_deadline_of_explicit_timeout)
{
    forms("f", NULL);
    int64_t d = MP_INT(OK_CALL_T(C, "f", mp("'deadline'"), 3000));
    ck_assert_msg(d > 2000 && d <= 3000, "deadline %lld", (long long)d);
}
END_TEST

START_TEST(from_deadline_of_default_timeout)
{
    forms("f", NULL);
    int64_t d = MP_INT(CALL(C, "f", mp("'deadline'")));
    ck_assert_msg(d > 4000 && d <= 5000, "deadline %lld", (long long)d);
}
END_TEST

START_TEST(from_deadline_of_infinity)
{
    forms("f", NULL);
    ck_assert_mp_eq(OK_CALL_T(C, "f", mp("'deadline'"), -1), "-1");
}
END_TEST

START_TEST(from_waiting_true_while_caller_waits)
{
    forms("f", NULL);
    ck_assert_mp_eq(OK_CALL_T(C, "f", mp("['watch', 50]"), 3000), "true");
    const msgpack_object *w = CALL(C, "f", mp("'watched'"));
    ck_assert_mp_eq(mp_item(w, 0), "true");
    ck_assert_mp_eq(mp_item(w, 1), "0");
    ck_assert_int_gt(MP_INT(mp_item(w, 2)), 2000);
}
END_TEST

START_TEST(from_waiting_false_after_caller_timed_out)
{
    gsc_reply *r;
    forms("f", NULL);
    ERR(gsc_call(C, "f", mp("['watch', 400]"), 100, &r), &r, "timeout");
    sleep_ms(500);
    ck_assert_mp_eq(CALL(C, "f", mp("'watched'")), "[false, -1, 0]");
}
END_TEST

START_TEST(from_waiting_false_after_caller_disconnected)
{
    struct raw *a = RAW_CONNECT(D);
    forms("f", NULL);
    RAW_REQUEST(a, 1, "call", mp("['f', ['watch', 300], 'infinity']"));
    sleep_ms(50);
    raw_close(&a);
    sleep_ms(500);
    ck_assert_mp_eq(CALL(C, "f", mp("'watched'")), "[false, -1, 0]");
}
END_TEST

/* ======== a module without handle_call, handle_cast or handle_info ======== */

START_TEST(minimal_call_exits_undef_handle_call)
{
    gsc_reply *r;
    START(C, "minimal", "m", NULL);
    uint64_t ref = (uint64_t)MP_INT(OK(gsc_monitor(C, "m", &r), &r));
    ck_assert_mp_eq(ERR(gsc_call(C, "m", mp("'hello'"), 0, &r), &r, "exit"), "'undef_handle_call'");
    gsc_down *d = DOWN(C, 2000);
    ck_assert_uint_eq(d->ref, ref);
    ck_assert_mp_eq(&d->reason, "'undef_handle_call'");
    gsc_down_destroy(&d);
    ck_assert(!registered("m"));
}
END_TEST

START_TEST(minimal_cast_exits_undef_handle_cast)
{
    gsc_reply *r;
    START(C, "minimal", "m", NULL);
    OK(gsc_monitor(C, "m", &r), &r);
    cast("m", mp("'hello'"));
    gsc_down *d = DOWN(C, 2000);
    ck_assert_mp_eq(&d->reason, "'undef_handle_cast'");
    gsc_down_destroy(&d);
    ck_assert(!registered("m"));
}
END_TEST

START_TEST(minimal_info_is_ignored)
{
    uint64_t id = START(C, "minimal", "m", NULL);
    send_msg("m", mp("'hello'"));
    send_msg("m", mp("'timeout'"));
    sleep_ms(200);
    ck_assert_mp_eq(whereis("m"), "%u", id);
    stop("m", NULL);
    ck_assert(!registered("m"));
}
END_TEST

static Suite *calls_suite(void)
{
    Suite *s = suite_create("e2e_calls");
    TCase *tc;

    tc = tcase_create("methods");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, params_of_the_wrong_length_are_badarg);
    tcase_add_test(tc, call_default_timeout_is_5000);
    tcase_add_test(tc, call_nil_timeout_allows_a_reply_within_5000);
    tcase_add_test(tc, call_infinity_waits_past_the_default);
    tcase_add_test(tc, call_timeout_server_lives_and_late_reply_discarded);
    tcase_add_test(tc, call_timeout_through_the_library);
    tcase_add_test(tc, call_unknown_server_is_noproc);
    tcase_add_test(tc, call_bad_param_types_are_badarg);
    tcase_add_test(tc, cast_answers_nil_and_reaches_handle_cast);
    tcase_add_test(tc, cast_unknown_server_is_noproc);
    tcase_add_test(tc, cast_notification_to_unknown_server_is_ignored);
    tcase_add_test(tc, send_answers_nil_and_reaches_handle_info);
    tcase_add_test(tc, send_unknown_server_is_noproc);
    suite_add_tcase(s, tc);

    tc = tcase_create("return_forms");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, call_reply_answers_the_value);
    tcase_add_test(tc, call_reply_timeout_sends_timeout_after_quiet);
    tcase_add_test(tc, timeout_is_cancelled_by_the_next_message);
    tcase_add_test(tc, call_reply_hibernate_hibernates_until_next_message);
    tcase_add_test(tc, call_noreply_answered_later_from_handle_cast);
    tcase_add_test(tc, call_noreply_answered_later_from_handle_info);
    tcase_add_test(tc, call_noreply_answered_exactly_once_from_another_call);
    tcase_add_test(tc, call_noreply_timeout_then_reply_from_timeout);
    tcase_add_test(tc, call_noreply_hibernate_then_reply);
    tcase_add_test(tc, call_stop_reply_terminates_then_replies);
    tcase_add_test(tc, call_stop_gives_the_caller_exit_with_reason);
    tcase_add_test(tc, call_bad_return_value_stops_with_bad_return_value);
    tcase_add_test(tc, cast_noreply_timeout_sends_timeout);
    tcase_add_test(tc, cast_noreply_hibernate_hibernates);
    tcase_add_test(tc, cast_stop_terminates_with_reason);
    tcase_add_test(tc, cast_bad_return_value_stops);
    tcase_add_test(tc, info_noreply_timeout_sends_timeout);
    tcase_add_test(tc, info_noreply_hibernate_hibernates);
    tcase_add_test(tc, info_stop_terminates_with_reason);
    tcase_add_test(tc, info_bad_return_value_stops);
    suite_add_tcase(s, tc);

    tc = tcase_create("from");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, from_deadline_of_explicit_timeout);
    tcase_add_test(tc, from_deadline_of_default_timeout);
    tcase_add_test(tc, from_deadline_of_infinity);
    tcase_add_test(tc, from_waiting_true_while_caller_waits);
    tcase_add_test(tc, from_waiting_false_after_caller_timed_out);
    tcase_add_test(tc, from_waiting_false_after_caller_disconnected);
    suite_add_tcase(s, tc);

    tc = tcase_create("missing_callbacks");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, minimal_call_exits_undef_handle_call);
    tcase_add_test(tc, minimal_cast_exits_undef_handle_cast);
    tcase_add_test(tc, minimal_info_is_ignored);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(calls_suite());
}
