/*
 * check_e2e_ops.c — the operator's methods end to end: stats and its
 * counters, clients, info's args, options and last_exit, restart, and who
 * may use them (a peer that is not an admin).
 *
 * Each test starts its own daemon (e2e.h) and checks at the end that it
 * still exits 0 on SIGTERM; make check runs the suite again with every
 * server isolated.
 */
#include "e2e.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const msgpack_object *stats(void)
{
    gsc_reply *r;
    return OK(gsc_request(C, "stats", NULL, 5000, &r), &r);
}

static uint64_t stat_u(const char *key)
{
    return (uint64_t)MP_INT(mp_get(stats(), key));
}

/* The count of error answers with that code so far (0 if none). */
static uint64_t errors_of(const char *code)
{
    const msgpack_object *e = mp_get(mp_get(stats(), "errors"), code);
    return e ? (uint64_t)MP_INT(e) : 0;
}

/* restart server: an id when all digits, as gsctl reads it. */
static int restart(gsc *c, const char *server, gsc_reply **r)
{
    bool id = strspn(server, "0123456789") == strlen(server);
    return gsc_request(c, "restart",
                       id ? mp("[%u]", (uint64_t)strtoull(server, NULL, 10)) : mp("[%s]", server),
                       10000, r);
}

static uint64_t restart_ok(const char *server)
{
    gsc_reply *r;
    return (uint64_t)MP_INT(OK(restart(C, server, &r), &r));
}

/* ================================== stats ================================== */

START_TEST(stats_has_the_contract_fields)
{
    gsc_reply *r;
    const char *version = mp_str(mp_get(OK(gsc_version(C, &r), &r), "version"));
    START(C, "counter", "c", NULL);
    const msgpack_object *s = stats();
    ck_assert_str_eq(mp_str(mp_get(s, "version")), version);
    ck_assert_mp_eq(mp_get(s, "pid"), "%d", (int)D->pid);
    ck_assert_int_ge(MP_INT(mp_get(s, "uptime_ms")), 0);
    ck_assert_mp_eq(mp_get(s, "servers"), "1");
    ck_assert_mp_eq(mp_get(s, "connections"), "1");
    ck_assert_int_eq(MP_INT(mp_get(s, "workers")), isolated_run() ? 1 : 0);
    ck_assert_mp_eq(mp_get(s, "nodes"), "0");
    const msgpack_object *mem = mp_get(s, "memory");
    ck_assert_int_gt(MP_INT(mp_get(mem, "rss")), 0);
    ck_assert_int_gt(MP_INT(mp_get(mem, "budget")), 0);
    ck_assert_int_gt(MP_INT(mp_get(mem, "used")), 0);
    const char *counts[] = {"calls", "casts", "sends", "crashes", "restarts"};
    for (int i = 0; i < 5; i++)
        ck_assert_msg(mp_get(s, counts[i]) &&
                          mp_get(s, counts[i])->type == MSGPACK_OBJECT_POSITIVE_INTEGER,
                      "%s in %s", counts[i], mp_str(s));
    ck_assert_int_eq(mp_get(s, "errors")->type, MSGPACK_OBJECT_MAP);
    ERR(gsc_request(C, "stats", mp("[1]"), 5000, &r), &r, "badarg");
}
END_TEST

START_TEST(stats_counts_messages_and_errors)
{
    gsc_reply *r;
    START(C, "counter", "c", NULL);
    uint64_t calls = stat_u("calls"), casts = stat_u("casts"), sends = stat_u("sends");
    uint64_t noproc = errors_of("noproc"), badarg = errors_of("badarg");
    for (int i = 0; i < 3; i++)
        CALL(C, "c", mp("'increment'"));
    cast("c", mp("'increment'"));
    cast("c", mp("'increment'"));
    send_msg("c", mp("'hello'"));
    ERR(gsc_call(C, "ghost", mp("'get'"), 0, &r), &r, "noproc");
    ERR(gsc_info(C, "ghost", &r), &r, "noproc");
    ERR(gsc_request(C, "info", mp("[[1]]"), 5000, &r), &r, "badarg");
    ck_assert_uint_eq(stat_u("calls"), calls + 3);
    ck_assert_uint_eq(stat_u("casts"), casts + 2);
    ck_assert_uint_eq(stat_u("sends"), sends + 1);
    ck_assert_uint_eq(errors_of("noproc"), noproc + 2);
    ck_assert_uint_eq(errors_of("badarg"), badarg + 1);
}
END_TEST

/* A supervised server stopped abnormally: a crash and a restart, and the
 * restarted one's info says why its predecessor ended. */
START_TEST(stats_and_info_after_a_supervised_crash)
{
    gsc_reply *r;
    uint64_t crashes = stat_u("crashes"), restarts = stat_u("restarts");
    uint64_t id = START_OPTS(C, "probe", "p", NULL, mp("{'restart': 'permanent'}"));
    ck_assert_mp_eq(mp_get(info("p"), "last_exit"), "nil");
    ck_assert_mp_eq(ERR(gsc_call(C, "p", mp("['stop_noreply', 'boom']"), 0, &r), &r, "exit"),
                    "'boom'");
    ck_assert(WAIT_UNTIL(3000, registered("p") && !mp_eq(whereis("p"), "%u", id)));
    const msgpack_object *i = info("p");
    ck_assert_mp_eq(mp_get(i, "last_exit"), "'boom'");
    ck_assert_mp_eq(mp_get(i, "restarts"), "1");
    ck_assert_mp_eq(mp_get(mp_get(i, "options"), "restart"), "'permanent'");
    ck_assert_uint_eq(stat_u("crashes"), crashes + 1);
    ck_assert_uint_eq(stat_u("restarts"), restarts + 1);
    stop("p", NULL); /* a clean end, asked: no crash, no restart */
    ck_assert_uint_eq(stat_u("crashes"), crashes + 1);
    ck_assert(!registered("p"));
}
END_TEST

/* An isolated server's worker dies: its reason is the last exit. */
START_TEST(info_last_exit_after_an_isolated_crash)
{
    gsc_reply *r;
    uint64_t crashes = stat_u("crashes");
    uint64_t id =
        START_OPTS(C, "probe", "p", NULL, mp("{'restart': 'transient', 'isolate': true}"));
    ck_assert_int_eq(gsc_call(C, "p", mp("['crash', 'abort']"), 0, &r), GSC_ERROR);
    gsc_reply_destroy(&r);
    ck_assert(WAIT_UNTIL(5000, registered("p") && !mp_eq(whereis("p"), "%u", id)));
    const msgpack_object *i = info("p");
    ck_assert_mp_eq(mp_get(i, "last_exit"), "['crashed', 'SIGABRT']");
    ck_assert_mp_eq(mp_get(mp_get(i, "options"), "isolate"), "true");
    ck_assert_mp_eq(mp_get(i, "isolated"), "true");
    ck_assert_uint_eq(stat_u("crashes"), crashes + 1);
    ck_assert_mp_eq(CALL(C, "p", mp("['echo', 1]")), "1");
}
END_TEST

/* ============================ info: as started ============================= */

START_TEST(info_has_args_and_options)
{
    START_OPTS(C, "counter", "c", mp("5"),
               mp("{'restart': 'transient', 'mailbox_limit': 10, 'hibernate_after': 60000, "
                  "'timeout': 2000, 'link': true}"));
    const msgpack_object *i = info("c");
    ck_assert_mp_eq(mp_get(i, "args"), "5");
    const msgpack_object *o = mp_get(i, "options");
    ck_assert_mp_eq(mp_get(o, "link"), "true");
    ck_assert_mp_eq(mp_get(o, "timeout"), "2000");
    ck_assert_mp_eq(mp_get(o, "restart"), "'transient'");
    ck_assert_mp_eq(mp_get(o, "mailbox_limit"), "10");
    ck_assert_mp_eq(mp_get(o, "hibernate_after"), "60000");
    ck_assert_mp_eq(mp_get(o, "isolate"), isolated_run() ? "true" : "false");
    ck_assert_mp_eq(mp_get(i, "last_exit"), "nil");

    START(C, "stack", "s", mp("[1, {'a': 'b'}]"));
    i = info("s");
    ck_assert_mp_eq(mp_get(i, "args"), "[1, {'a': 'b'}]");
    o = mp_get(i, "options");
    ck_assert_mp_eq(mp_get(o, "link"), "false");
    ck_assert_mp_eq(mp_get(o, "timeout"), "'infinity'");
    ck_assert_mp_eq(mp_get(o, "restart"), "'temporary'");
    ck_assert_ptr_null(mp_get(o, "mailbox_limit"));
    ck_assert_mp_eq(mp_get(o, "hibernate_after"), "'infinity'");
    START(C, "stack", "g", mp("[]"));
    ck_assert_mp_eq(mp_get(info("g"), "args"), "[]");
    START_OPTS(C, "counter", "grouped", NULL, mp("{'isolate': 'grp'}"));
    ck_assert_mp_eq(mp_get(mp_get(info("grouped"), "options"), "isolate"), "'grp'");
    ck_assert_mp_eq(mp_get(info("grouped"), "args"), "nil");
}
END_TEST

/* ================================= restart ================================= */

START_TEST(restart_starts_it_again_as_it_was_started)
{
    uint64_t id = START_OPTS(C, "counter", "c", mp("7"), mp("{'mailbox_limit': 3}"));
    ck_assert_mp_eq(CALL(C, "c", mp("'increment'")), "8");
    uint64_t again = restart_ok("c");
    ck_assert_uint_gt(again, id);
    ck_assert_mp_eq(whereis("c"), "%u", again);
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "7"); /* from its args again */
    const msgpack_object *i = info("c");
    ck_assert_mp_eq(mp_get(i, "args"), "7");
    ck_assert_mp_eq(mp_get(mp_get(i, "options"), "mailbox_limit"), "3");
    ck_assert_mp_eq(mp_get(mp_get(i, "options"), "restart"), "'temporary'");
    ck_assert_mp_eq(mp_get(i, "last_exit"), "'restart'");
    ck_assert_mp_eq(mp_get(i, "restarts"), "0");
    /* by id too, and again */
    uint64_t third = restart_ok(id_str(again));
    ck_assert_uint_gt(third, again);
    ck_assert_mp_eq(whereis("c"), "%u", third);
    gsc_reply *r;
    ck_assert_uint_eq(OK(gsc_which(C, &r), &r)->via.array.size, 1);
    ck_assert_uint_eq(stat_u("crashes"), 0); /* a restart is no crash */
}
END_TEST

START_TEST(restart_runs_terminate_with_reason_restart)
{
    probe("p", "p.log");
    ck_assert_mp_eq(CALL(C, "p", mp("['echo', 1]")), "1");
    restart_ok("p");
    ck_assert(WAIT_UNTIL(2000, strlen(tlog("p.log")) > 0));
    ck_assert_str_eq(tlog("p.log"), "\"restart\"\n");
    ck_assert_mp_eq(CALL(C, "p", mp("['echo', 2]")), "2");
}
END_TEST

/* Supervision does not also restart a supervised server that an admin
 * restarts: one server under the name, its supervision counts no restart. */
START_TEST(restart_of_a_supervised_server_starts_it_once)
{
    uint64_t id = START_OPTS(C, "counter", "c", mp("1"), mp("{'restart': 'permanent'}"));
    uint64_t again = restart_ok("c");
    ck_assert_uint_gt(again, id);
    sleep_ms(300);
    gsc_reply *r;
    ck_assert_uint_eq(OK(gsc_which(C, &r), &r)->via.array.size, 1);
    ck_assert_mp_eq(whereis("c"), "%u", again);
    const msgpack_object *i = info("c");
    ck_assert_mp_eq(mp_get(i, "restart"), "'permanent'");
    ck_assert_mp_eq(mp_get(i, "restarts"), "0");
    ck_assert_mp_eq(mp_get(i, "last_exit"), "'restart'");
    ck_assert_uint_eq(stat_u("restarts"), 0);
    /* still supervised: an abnormal end brings it back */
    cast("c", mp("'nonsense'"));
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "1");
}
END_TEST

START_TEST(restart_of_an_anonymous_server)
{
    uint64_t id = START(C, "stack", NULL, mp("['x']"));
    uint64_t again = restart_ok(id_str(id));
    ck_assert_uint_gt(again, id);
    ck_assert_mp_eq(CALL(C, id_str(again), mp("'pop'")), "'x'");
    gsc_reply *r;
    ck_assert_uint_eq(OK(gsc_which(C, &r), &r)->via.array.size, 1);
}
END_TEST

/* A linked server stays linked to the connection that started it. */
START_TEST(restart_keeps_the_link)
{
    gsc *other = CLIENT(D);
    gsc_reply *r;
    OK(gsc_start(other, "counter", "l", NULL, mp("{'link': true}"), &r), &r);
    restart_ok("l");
    ck_assert_mp_eq(mp_get(mp_get(info("l"), "options"), "link"), "true");
    client_close(&other);
    ck_assert(WAIT_UNTIL(3000, !registered("l")));
}
END_TEST

START_TEST(restart_errors)
{
    gsc_reply *r;
    ERR(restart(C, "ghost", &r), &r, "noproc");
    ERR(gsc_request(C, "restart", mp("[[1]]"), 5000, &r), &r, "badarg");
    ERR(gsc_request(C, "restart", mp("[]"), 5000, &r), &r, "badarg");
}
END_TEST

/* Two restarts of one server at once: the first restarts it, the second
 * is refused (noproc: that server is on its way out) or, if it came after
 * the first had answered, restarts the new one. Either way one runs. */
START_TEST(restart_twice_at_once)
{
    gsc_reply *r;
    START(C, "counter", "c", NULL);
    ck_assert_uint_ne(gsc_request_async(C, "restart", mp("['c']"), 10000, NULL, NULL), 0);
    int st = restart(C, "c", &r);
    ck_assert_msg(st == GSC_OK || (st == GSC_ERROR && strcmp(r->code, "noproc") == 0),
                  "second restart: %d %s", st, st == GSC_ERROR ? r->code : "");
    gsc_reply_destroy(&r);
    ck_assert_int_eq(gsc_run(C, 5000), 0);
    ck_assert(WAIT_UNTIL(3000, registered("c")));
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "0");
    ck_assert_uint_eq(OK(gsc_which(C, &r), &r)->via.array.size, 1);
}
END_TEST

/* ================================= clients ================================= */

START_TEST(clients_shows_each_connection)
{
    gsc *other = CLIENT(D);
    gsc_reply *r;
    START(C, "counter", "c", NULL);
    OK(gsc_start(other, "counter", "l", NULL, mp("{'link': true}"), &r), &r);
    OK(gsc_monitor(other, "c", &r), &r);
    OK(gsc_monitor(other, "l", &r), &r);
    const msgpack_object *list = OK(gsc_request(C, "clients", NULL, 5000, &r), &r);
    ck_assert_uint_eq(list->via.array.size, 2);
    int seen = 0;
    for (uint32_t k = 0; k < 2; k++) {
        const msgpack_object *e = mp_item(list, k);
        const char *keys[] = {"id",      "pid",      "uid",       "gid",   "age_ms",
                              "pending", "in_bytes", "out_bytes", "links", "monitors"};
        for (int j = 0; j < 10; j++)
            ck_assert_msg(mp_get(e, keys[j]) != NULL, "%s in %s", keys[j], mp_str(e));
        ck_assert_mp_eq(mp_get(e, "pid"), "%d", (int)getpid());
        ck_assert_mp_eq(mp_get(e, "uid"), "%d", (int)getuid());
        ck_assert_mp_eq(mp_get(e, "gid"), "%d", (int)getgid());
        ck_assert_mp_eq(mp_get(e, "admin"), "true");
        ck_assert_mp_eq(mp_get(e, "held"), "false");
        ck_assert_mp_eq(mp_get(e, "pending"), "0");
        if (mp_eq(mp_get(e, "monitors"), "2")) {
            ck_assert_mp_eq(mp_get(e, "links"), "1");
            seen |= 1;
        } else {
            ck_assert_mp_eq(mp_get(e, "monitors"), "0");
            ck_assert_mp_eq(mp_get(e, "links"), "0");
            seen |= 2;
        }
    }
    ck_assert_int_eq(seen, 3);
    ck_assert_int_lt(MP_INT(mp_get(mp_item(list, 0), "id")),
                     MP_INT(mp_get(mp_item(list, 1), "id"))); /* oldest first */
    /* a call waiting shows as pending */
    probe("p", NULL);
    uint32_t slow = gsc_call_async(other, "p", mp("['reply_after', 500, 1]"), 0, NULL, NULL);
    ck_assert_uint_ne(slow, 0);
    ck_assert(WAIT_UNTIL(400, ({
                             const msgpack_object *l =
                                 OK(gsc_request(C, "clients", NULL, 5000, &r), &r);
                             mp_eq(mp_get(mp_item(l, 1), "pending"), "1");
                         })));
    ck_assert_int_eq(gsc_run(other, 3000), 0);
    client_close(&other);
    ck_assert(
        WAIT_UNTIL(3000, OK(gsc_request(C, "clients", NULL, 5000, &r), &r)->via.array.size == 1));
    ERR(gsc_request(C, "clients", mp("[1]"), 5000, &r), &r, "badarg");
}
END_TEST

/* ============================ who may do what ============================= */

/* As uid nobody: stats and info are for everyone; clients, restart,
 * suspend and resume for admins. */
START_TEST(non_admin_peer_sees_stats_but_not_clients_nor_restarts)
{
    START(C, "counter", "c", mp("1"));
    static const struct as_nobody reqs[] = {
        {"clients", "[]", "unauthorized"},
        {"restart", "['c']", "unauthorized"},
        {"suspend", "['c']", "unauthorized"},
        {"resume", "['c']", "unauthorized"},
        {"stats", "[]", "ok"},
        {"info", "['c']", "ok"},
    };
    as_nobody(reqs, sizeof reqs / sizeof reqs[0]);
    ck_assert_mp_eq(mp_get(info("c"), "last_exit"), "nil"); /* not restarted */
    ck_assert_mp_eq(mp_get(info("c"), "status"), "'running'");
    ck_assert_uint_ge(errors_of("unauthorized"), 4);
}
END_TEST

static Suite *operate_suite(void)
{
    Suite *s = suite_create("e2e_ops");
    TCase *tc;

    tc = tcase_create("stats");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, stats_has_the_contract_fields);
    tcase_add_test(tc, stats_counts_messages_and_errors);
    tcase_add_test(tc, stats_and_info_after_a_supervised_crash);
    tcase_add_test(tc, info_last_exit_after_an_isolated_crash);
    tcase_add_test(tc, info_has_args_and_options);
    suite_add_tcase(s, tc);

    tc = tcase_create("restart");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, restart_starts_it_again_as_it_was_started);
    tcase_add_test(tc, restart_runs_terminate_with_reason_restart);
    tcase_add_test(tc, restart_of_a_supervised_server_starts_it_once);
    tcase_add_test(tc, restart_of_an_anonymous_server);
    tcase_add_test(tc, restart_keeps_the_link);
    tcase_add_test(tc, restart_errors);
    tcase_add_test(tc, restart_twice_at_once);
    suite_add_tcase(s, tc);

    tc = tcase_create("clients");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, clients_shows_each_connection);
    tcase_add_test(tc, non_admin_peer_sees_stats_but_not_clients_nor_restarts);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(operate_suite());
}
