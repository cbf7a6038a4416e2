/*
 * check_e2e_monitors.c — monitors end to end: those a client holds
 * (the down notification, unknown and dead servers, demonitor, which
 * connection hears it) and those a server holds (gs_monitor, gs_demonitor).
 *
 * Each test starts its own daemon (e2e.h) and checks at the end that it
 * still exits 0 on SIGTERM.
 */
#include "e2e.h"

/* ======================== monitors held by clients ======================== */

START_TEST(monitor_down_when_server_stops)
{
    gsc_reply *r;
    uint64_t id = probe("p", NULL);
    uint64_t ref = (uint64_t)MP_INT(OK(gsc_monitor(C, "p", &r), &r));
    ck_assert_uint_gt(ref, 0);
    stop("p", mp("'bye'"));
    gsc_down *d = DOWN(C, 3000);
    ck_assert_uint_eq(d->ref, ref);
    ck_assert_uint_eq(d->id, id);
    ck_assert_mp_eq(&d->name, "'p'");
    ck_assert_mp_eq(&d->reason, "'bye'");
    gsc_down_destroy(&d);
}
END_TEST

START_TEST(monitor_down_when_callback_stops)
{
    gsc_reply *r;
    uint64_t id = forms(NULL, NULL);
    uint64_t ref = (uint64_t)MP_INT(OK(gsc_monitor(C, id_str(id), &r), &r));
    ERR(gsc_call(C, id_str(id), mp("['stop', ['oops', 1]]"), 0, &r), &r, "exit");
    gsc_down *d = DOWN(C, 3000);
    ck_assert_uint_eq(d->ref, ref);
    ck_assert_uint_eq(d->id, id);
    ck_assert_mp_eq(&d->name, "nil");
    ck_assert_mp_eq(&d->reason, "['oops', 1]");
    gsc_down_destroy(&d);
}
END_TEST

START_TEST(monitor_of_unknown_name_downs_at_once_with_noproc)
{
    gsc_reply *r;
    uint64_t ref = (uint64_t)MP_INT(OK(gsc_monitor(C, "ghost", &r), &r));
    OK(gsc_ping(C, &r), &r); /* the down came first: the library holds it */
    ck_assert(gsc_pending(C));
    gsc_down *d = DOWN(C, 1000);
    ck_assert(!gsc_pending(C));
    ck_assert_uint_eq(d->ref, ref);
    ck_assert_mp_eq(&d->reason, "'noproc'");
    gsc_down_destroy(&d);
}
END_TEST

START_TEST(monitor_of_unknown_name_wire_down)
{
    struct raw *a = RAW_CONNECT(D);
    RAW_REQUEST(a, 1, "monitor", mp("['ghost']"));
    const msgpack_object *m = RAW_RECV(a, 1000);
    ck_assert_mp_eq(mp_item(m, 1), "1");
    int64_t ref = MP_INT(mp_item(m, 3));
    m = RAW_RECV(a, 1000);
    ck_assert_mp_eq(mp_item(m, 0), "2");
    ck_assert_mp_eq(mp_item(m, 1), "'down'");
    ck_assert_mp_eq(mp_item(mp_item(m, 2), 0), "%l", ref);
    ck_assert_mp_eq(mp_item(mp_item(m, 2), 2), "'ghost'");
    ck_assert_mp_eq(mp_item(mp_item(m, 2), 3), "'noproc'");
    raw_close(&a);
}
END_TEST

START_TEST(monitor_of_dead_id_downs_at_once_with_noproc)
{
    gsc_reply *r;
    uint64_t id = START(C, "counter", NULL, NULL);
    stop(id_str(id), NULL);
    uint64_t ref = (uint64_t)MP_INT(OK(gsc_monitor(C, id_str(id), &r), &r));
    gsc_down *d = DOWN(C, 1000);
    ck_assert_uint_eq(d->ref, ref);
    ck_assert_uint_eq(d->id, id);
    ck_assert_mp_eq(&d->reason, "'noproc'");
    gsc_down_destroy(&d);
}
END_TEST

START_TEST(demonitor_answers_nil_and_no_down_follows)
{
    gsc_reply *r;
    gsc_down *d = NULL;
    probe("p", NULL);
    uint64_t ref = (uint64_t)MP_INT(OK(gsc_monitor(C, "p", &r), &r));
    ck_assert_mp_eq(OK(gsc_demonitor(C, ref, &r), &r), "nil");
    stop("p", NULL);
    ck_assert_int_eq(gsc_next_down(C, 300, &d), GSC_ERROR);
    ck_assert_ptr_null(d);
}
END_TEST

START_TEST(down_goes_only_to_the_monitoring_connection)
{
    gsc_reply *r;
    gsc_down *d = NULL;
    gsc *c2 = CLIENT(D);
    probe("p", NULL);
    uint64_t ref = (uint64_t)MP_INT(OK(gsc_monitor(c2, "p", &r), &r));
    stop("p", NULL);
    d = DOWN(c2, 3000);
    ck_assert_uint_eq(d->ref, ref);
    ck_assert_mp_eq(&d->reason, "'normal'");
    gsc_down_destroy(&d);
    ck_assert_int_eq(gsc_next_down(C, 200, &d), GSC_ERROR);
    client_close(&c2);
}
END_TEST

/* ======================== monitors held by servers ======================== */

START_TEST(gs_monitor_down_arrives_in_handle_info)
{
    forms("f", NULL);
    uint64_t id = START(C, "counter", "n", NULL);
    int64_t ref = MP_INT(CALL(C, "f", mp("['monitor', 'n']")));
    stop("n", mp("'bye'"));
    ck_assert(WAIT_UNTIL(2000, CALL(C, "f", mp("'infos'"))->via.array.size == 1));
    ck_assert_mp_eq(CALL(C, "f", mp("'infos'")), "[['down', %l, %u, 'bye']]", ref, id);
}
END_TEST

START_TEST(gs_monitor_of_unknown_server_downs_with_noproc)
{
    forms("f", NULL);
    int64_t ref = MP_INT(CALL(C, "f", mp("['monitor', 'ghost']")));
    ck_assert(WAIT_UNTIL(2000, CALL(C, "f", mp("'infos'"))->via.array.size == 1));
    const msgpack_object *m = mp_item(CALL(C, "f", mp("'infos'")), 0);
    ck_assert_mp_eq(mp_item(m, 0), "'down'");
    ck_assert_mp_eq(mp_item(m, 1), "%l", ref);
    ck_assert_mp_eq(mp_item(m, 3), "'noproc'");
}
END_TEST

START_TEST(gs_demonitor_stops_the_down)
{
    forms("f", NULL);
    START(C, "counter", "n", NULL);
    int64_t ref = MP_INT(CALL(C, "f", mp("['monitor', 'n']")));
    ck_assert_mp_eq(CALL(C, "f", mp("['demonitor', %l]", ref)), "0");
    stop("n", NULL);
    sleep_ms(200);
    ck_assert_mp_eq(CALL(C, "f", mp("'infos'")), "[]");
}
END_TEST

static Suite *monitors_suite(void)
{
    Suite *s = suite_create("e2e_monitors");
    TCase *tc;

    tc = tcase_create("clients");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, monitor_down_when_server_stops);
    tcase_add_test(tc, monitor_down_when_callback_stops);
    tcase_add_test(tc, monitor_of_unknown_name_downs_at_once_with_noproc);
    tcase_add_test(tc, monitor_of_unknown_name_wire_down);
    tcase_add_test(tc, monitor_of_dead_id_downs_at_once_with_noproc);
    tcase_add_test(tc, demonitor_answers_nil_and_no_down_follows);
    tcase_add_test(tc, down_goes_only_to_the_monitoring_connection);
    suite_add_tcase(s, tc);

    tc = tcase_create("modules");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, gs_monitor_down_arrives_in_handle_info);
    tcase_add_test(tc, gs_monitor_of_unknown_server_downs_with_noproc);
    tcase_add_test(tc, gs_demonitor_stops_the_down);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(monitors_suite());
}
