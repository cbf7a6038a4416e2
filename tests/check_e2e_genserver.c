/*
 * check_e2e_genserver.c — the rest of GenServer, end to end: continue
 * (from init and from a callback, first before any later message), the
 * timeout that delivers a chosen message and the absolute deadline,
 * hibernate_after, start with "monitor", and suspend / resume.
 *
 * Like every check_e2e_* suite it runs a second time with every server
 * isolated (GSD_TEST_ISOLATE), where a worker runs handle_continue.
 */
#include "e2e.h"

/* The request after a continue, sent in the same write, waits for it. */
START_TEST(continue_runs_before_any_later_message)
{
    probe("p", NULL);
    struct raw *a = RAW_CONNECT(D);
    RAW_REQUEST(a, 1, "call", mp("['p', ['continue', 'first'], nil]"));
    RAW_NOTIFY(a, "send", mp("['p', 'second']"));
    const msgpack_object *m = RAW_RECV(a, 2000);
    ck_assert_mp_eq(m, "[1, 1, nil, 'ok']");
    ck_assert_mp_eq(CALL(C, "p", mp("'infos'")), "[['continue', 'first'], 'second']");
    raw_close(&a);
}
END_TEST

/* From init: start answers first, then handle_continue runs before any
 * message, as OTP's {ok, State, {continue, C}}. */
START_TEST(continue_from_init_runs_after_start_and_before_messages)
{
    START(C, "probe", "p", mp("{'continue': ['load', 7]}"));
    send_msg("p", mp("'hello'"));
    ck_assert_mp_eq(CALL(C, "p", mp("'infos'")), "[['continue', ['load', 7]], 'hello']");
}
END_TEST

/* A module without handle_continue that asks for one stops, as one without
 * handle_call that is called does; its caller got its reply first. */
START_TEST(continue_without_handle_continue_stops_the_server)
{
    gsc *m = CLIENT(D);
    forms("f", NULL);
    gsc_reply *r;
    uint64_t ref = MP_INT(OK(gsc_monitor(m, "f", &r), &r));
    ck_assert_mp_eq(CALL(C, "f", mp("['reply_continue', 'v', 't']")), "'v'");
    gsc_down *d = DOWN(m, 2000);
    ck_assert_uint_eq(d->ref, ref);
    ck_assert_mp_eq(&d->reason, "'undef_handle_continue'");
    gsc_down_destroy(&d);
    client_close(&m);
}
END_TEST

/* gs_timeout_msg: the message chosen, after the quiet time; a message that
 * arrives first cancels it, as any timeout. */
START_TEST(timeout_delivers_the_message_chosen)
{
    probe("p", NULL);
    ck_assert_mp_eq(CALL(C, "p", mp("['timeout', 100, ['tick', 1]]")), "'ok'");
    sleep_ms(400); /* quiet: a call to look would cancel it */
    ck_assert_mp_eq(CALL(C, "p", mp("'infos'")), "[['tick', 1]]");
    ck_assert_mp_eq(CALL(C, "p", mp("['timeout', 300, ['tick', 2]]")), "'ok'");
    send_msg("p", mp("'early'")); /* cancels the timeout */
    sleep_ms(500);
    ck_assert_mp_eq(CALL(C, "p", mp("'infos'")), "[['tick', 1], 'early']");
}
END_TEST

/* gs_deadline: at a time on gs_now()'s clock; one already passed fires at
 * once. */
START_TEST(deadline_fires_at_its_time)
{
    probe("p", NULL);
    int64_t t0 = now_ms();
    ck_assert_mp_eq(CALL(C, "p", mp("['deadline', 200, 'due']")), "'ok'");
    sleep_ms(100);
    ck_assert_mp_eq(CALL(C, "p", mp("'infos'")), "[]"); /* and cancelled by this call */
    ck_assert_mp_eq(CALL(C, "p", mp("['deadline', 200, 'due']")), "'ok'");
    sleep_ms(500);
    ck_assert_mp_eq(CALL(C, "p", mp("'infos'")), "['due']");
    ck_assert_int_ge(now_ms() - t0, 290);
    ck_assert_mp_eq(CALL(C, "p", mp("['deadline', -1000, 'late']")), "'ok'");
    sleep_ms(200);
    ck_assert_mp_eq(CALL(C, "p", mp("'infos'")), "['due', 'late']");
}
END_TEST

/* hibernate_after: idle that long, the server hibernates; its next message
 * wakes it; busy, it does not. */
START_TEST(hibernate_after_hibernates_an_idle_server)
{
    START_OPTS(C, "probe", "p", NULL, mp("{'hibernate_after': 200}"));
    ck_assert(status_is("p", "running"));
    ck_assert(WAIT_UNTIL(3000, status_is("p", "hibernating")));
    ck_assert_mp_eq(CALL(C, "p", mp("['echo', 1]")), "1");
    ck_assert(status_is("p", "running"));
    for (int i = 0; i < 8; i++) { /* busier than 200 ms of quiet */
        ck_assert_mp_eq(CALL(C, "p", mp("['echo', %d]", i)), "%d", i);
        sleep_ms(50);
        ck_assert(status_is("p", "running"));
    }
    ck_assert(WAIT_UNTIL(3000, status_is("p", "hibernating")));
    ck_assert_mp_eq(CALL(C, "p", mp("'infos'")), "[]"); /* no message of its own */
    gsc_reply *r;
    ERR(gsc_start(C, "probe", "q", NULL, mp("{'hibernate_after': -5}"), &r), &r, "badarg");
}
END_TEST

/* start with "monitor": [id, ref], and the down of that ref follows the
 * end; a failed init answers its error alone. */
START_TEST(start_with_monitor_answers_id_and_ref)
{
    gsc_reply *r;
    const msgpack_object *v = OK(gsc_start(C, "probe", "p", NULL, mp("{'monitor': true}"), &r), &r);
    ck_assert_int_eq(v->type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(v->via.array.size, 2);
    uint64_t id = v->via.array.ptr[0].via.u64, ref = v->via.array.ptr[1].via.u64;
    ck_assert_mp_eq(whereis("p"), "%u", id);
    ck_assert_uint_gt(ref, 0);
    stop("p", mp("'bye'"));
    gsc_down *d = DOWN(C, 2000);
    ck_assert_uint_eq(d->ref, ref);
    ck_assert_uint_eq(d->id, id);
    ck_assert_mp_eq(&d->reason, "'bye'");
    gsc_down_destroy(&d);
    ERR(gsc_start(C, "probe", "q", mp("{'init': 'stop', 'reason': 'no'}"), mp("{'monitor': true}"),
                  &r),
        &r, "init_stop");
    ck_assert_int_eq(gsc_next_down(C, 300, &d), GSC_ERROR); /* no down for it */
}
END_TEST

/* suspend holds the mailbox: casts queue and calls wait, until resume;
 * info says "suspended"; get_state waits too, as sys:get_state would. */
START_TEST(suspend_holds_messages_until_resume)
{
    gsc_reply *r;
    START(C, "counter", "c", mp("0"));
    ck_assert_mp_eq(OK(gsc_request(C, "suspend", mp("['c']"), 2000, &r), &r), "nil");
    ck_assert(status_is("c", "suspended"));
    cast("c", mp("'increment'"));
    cast("c", mp("'increment'"));
    ck_assert_mp_eq(mp_get(info("c"), "mailbox"), "2");
    ERR(gsc_call(C, "c", mp("'get'"), 300, &r), &r, "timeout");
    ck_assert_mp_eq(OK(gsc_request(C, "resume", mp("['c']"), 2000, &r), &r), "nil");
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "2");
    ck_assert(status_is("c", "running"));
    ERR(gsc_request(C, "suspend", mp("['nobody']"), 2000, &r), &r, "noproc");
    ERR(gsc_request(C, "resume", mp("['nobody']"), 2000, &r), &r, "noproc");
}
END_TEST

/* A stop is ordered after the mailbox, suspended or not: it resumes the
 * server, which handles what it holds, then ends. */
START_TEST(stop_of_a_suspended_server_handles_its_mailbox_first)
{
    gsc_reply *r;
    forms("f", "f.log");
    ck_assert_mp_eq(OK(gsc_request(C, "suspend", mp("['f']"), 2000, &r), &r), "nil");
    cast("f", mp("['note', 'held']"));
    stop("f", mp("'normal'"));
    ck_assert_str_eq(tlog("f.log"), "\"held\"\n\"normal\"\n");
    ck_assert(!registered("f"));
}
END_TEST

static Suite *genserver_suite(void)
{
    Suite *s = suite_create("e2e_genserver");
    TCase *tc = tcase_create("genserver");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, continue_runs_before_any_later_message);
    tcase_add_test(tc, continue_from_init_runs_after_start_and_before_messages);
    tcase_add_test(tc, continue_without_handle_continue_stops_the_server);
    tcase_add_test(tc, timeout_delivers_the_message_chosen);
    tcase_add_test(tc, deadline_fires_at_its_time);
    tcase_add_test(tc, hibernate_after_hibernates_an_idle_server);
    tcase_add_test(tc, start_with_monitor_answers_id_and_ref);
    tcase_add_test(tc, suspend_holds_messages_until_resume);
    tcase_add_test(tc, stop_of_a_suspended_server_handles_its_mailbox_first);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(genserver_suite());
}
