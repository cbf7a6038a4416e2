/*
 * check_e2e_reference.c — the reference modules end to end, each per its
 * contract: counter, stack, journal, cache, idle, agent and probe.
 *
 * Each test starts its own daemon (e2e.h) and checks at the end that it
 * still exits 0 on SIGTERM.
 */
#include "e2e.h"

START_TEST(counter_per_contract)
{
    START(C, "counter", "c", NULL);
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "0");
    ck_assert_mp_eq(CALL(C, "c", mp("'increment'")), "1");
    ck_assert_mp_eq(CALL(C, "c", mp("['add', 10]")), "11");
    ck_assert_mp_eq(CALL(C, "c", mp("['add', -20]")), "-9");
    cast("c", mp("'increment'"));
    cast("c", mp("['add', 4]"));
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "-4");
    cast("c", mp("'reset'"));
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "0");
    ck_assert_mp_eq(CALL(C, "c", mp("'vsn'")), "1");
    START(C, "counter", "d", mp("-3"));
    ck_assert_mp_eq(CALL(C, "d", mp("'get'")), "-3");
}
END_TEST

START_TEST(stack_per_contract)
{
    START(C, "stack", "s", mp("[1, 'two', [3]]"));
    ck_assert_mp_eq(CALL(C, "s", mp("'size'")), "3");
    ck_assert_mp_eq(CALL(C, "s", mp("'pop'")), "1");
    cast("s", mp("['push', {'x': nil}]"));
    ck_assert_mp_eq(CALL(C, "s", mp("'size'")), "3");
    ck_assert_mp_eq(CALL(C, "s", mp("'pop'")), "{'x': nil}");
    ck_assert_mp_eq(CALL(C, "s", mp("'pop'")), "'two'");
    ck_assert_mp_eq(CALL(C, "s", mp("'pop'")), "[3]");
    ck_assert_mp_eq(CALL(C, "s", mp("'pop'")), "nil");
    ck_assert_mp_eq(CALL(C, "s", mp("'size'")), "0");
    START(C, "stack", "e", NULL);
    ck_assert_mp_eq(CALL(C, "e", mp("'pop'")), "nil");
}
END_TEST

START_TEST(journal_per_contract)
{
    START(C, "journal", "j", NULL);
    ck_assert_mp_eq(CALL(C, "j", mp("['add_entry', 'first']")), "['first']");
    ck_assert_mp_eq(CALL(C, "j", mp("['add_entry', 'second']")), "['second', 'first']");
    ck_assert_mp_eq(CALL(C, "j", mp("['add_entry', 'third']")), "['third', 'second', 'first']");
}
END_TEST

START_TEST(cache_per_contract)
{
    START(C, "cache", "k", NULL);
    cast("k", mp("['put', 'a', 1]"));
    cast("k", mp("['put', [1, 2], {'v': 'arr'}]"));
    ck_assert_mp_eq(CALL(C, "k", mp("['get', 'a']")), "1");
    ck_assert_mp_eq(CALL(C, "k", mp("['get', [1, 2]]")), "{'v': 'arr'}");
    ck_assert_mp_eq(CALL(C, "k", mp("['get', 'none']")), "nil");
    const msgpack_object *s = CALL(C, "k", mp("'stats'"));
    ck_assert_mp_eq(mp_get(s, "size"), "2");
    ck_assert_mp_eq(mp_get(s, "hits"), "2");
    ck_assert_mp_eq(mp_get(s, "misses"), "1");
    cast("k", mp("['put', 'a', 'replaced']"));
    ck_assert_mp_eq(CALL(C, "k", mp("['get', 'a']")), "'replaced'");
    cast("k", mp("['delete', 'a']"));
    ck_assert_mp_eq(CALL(C, "k", mp("['get', 'a']")), "nil");
    ck_assert_mp_eq(mp_get(CALL(C, "k", mp("'stats'")), "size"), "1");
    cast("k", mp("'clear'"));
    ck_assert_mp_eq(CALL(C, "k", mp("['get', [1, 2]]")), "nil");
    s = CALL(C, "k", mp("'stats'"));
    ck_assert_mp_eq(mp_get(s, "size"), "0");
    ck_assert_mp_eq(mp_get(s, "hits"), "3");
    ck_assert_mp_eq(mp_get(s, "misses"), "3");
}
END_TEST

START_TEST(cache_ttl_entries_expire)
{
    START(C, "cache", "k", mp("{'cleanup_ms': 60000}"));
    cast("k", mp("['put', 'short', 's', 150]"));
    cast("k", mp("['put', 'long', 'l', 60000]"));
    cast("k", mp("['put', 'ever', 'e']"));
    ck_assert_mp_eq(CALL(C, "k", mp("['get', 'short']")), "'s'");
    sleep_ms(400);
    /* expired reads as nil even before any sweep */
    ck_assert_mp_eq(CALL(C, "k", mp("['get', 'short']")), "nil");
    ck_assert_mp_eq(CALL(C, "k", mp("['get', 'long']")), "'l'");
    ck_assert_mp_eq(CALL(C, "k", mp("['get', 'ever']")), "'e'");
}
END_TEST

START_TEST(cache_sweep_drops_expired_entries)
{
    START(C, "cache", "k", mp("{'cleanup_ms': 50}"));
    cast("k", mp("['put', 'a', 1, 30]"));
    cast("k", mp("['put', 'b', 2, 30]"));
    cast("k", mp("['put', 'c', 3]"));
    ck_assert_mp_eq(mp_get(CALL(C, "k", mp("'stats'")), "size"), "3");
    sleep_ms(400);
    const msgpack_object *s = CALL(C, "k", mp("'stats'"));
    ck_assert_mp_eq(mp_get(s, "size"), "1");
    ck_assert_mp_eq(mp_get(s, "misses"), "0");
    ck_assert_mp_eq(CALL(C, "k", mp("['get', 'c']")), "3");
}
END_TEST

START_TEST(idle_counts_quiet_periods)
{
    START(C, "idle", "i", mp("100"));
    ck_assert_mp_eq(CALL(C, "i", mp("'ping'")), "'pong'");
    ck_assert_mp_eq(CALL(C, "i", mp("'idle_count'")), "0");
    sleep_ms(350);
    int64_t n = MP_INT(CALL(C, "i", mp("'idle_count'")));
    ck_assert_msg(n >= 1 && n <= 4, "idle_count %lld after 350 ms at 100 ms", (long long)n);
}
END_TEST

START_TEST(idle_no_timeout_while_messages_arrive)
{
    START(C, "idle", "i", mp("300"));
    for (int i = 0; i < 12; i++) {
        ck_assert_mp_eq(CALL(C, "i", mp("'ping'")), "'pong'");
        sleep_ms(50);
    }
    ck_assert_mp_eq(CALL(C, "i", mp("'idle_count'")), "0");
    sleep_ms(450);
    ck_assert_mp_eq(CALL(C, "i", mp("'idle_count'")), "1");
}
END_TEST

START_TEST(agent_memory)
{
    START(C, "agent", "a", mp("'bob'"));
    ck_assert_mp_eq(CALL(C, "a", mp("['recall', 'k']")), "nil");
    cast("a", mp("['remember', 'k', [1, 2]]"));
    ck_assert_mp_eq(CALL(C, "a", mp("['recall', 'k']")), "[1, 2]");
    cast("a", mp("['remember', 'k', 'new']"));
    ck_assert_mp_eq(CALL(C, "a", mp("['recall', 'k']")), "'new'");
    START(C, "agent", "b", mp("{'name': 'ann', 'memory': {'x': 1}}"));
    ck_assert_mp_eq(CALL(C, "b", mp("['recall', 'x']")), "1");
}
END_TEST

START_TEST(agent_tasks_processed_in_order)
{
    START(C, "agent", "a", mp("'bob'"));
    ck_assert_mp_eq(CALL(C, "a", mp("'inbox_count'")), "0");
    ck_assert_mp_eq(CALL(C, "a", mp("'process_next'")), "['empty', nil]");
    cast("a", mp("['send_task', 'search', {'query': 'otp'}]"));
    cast("a", mp("['send_task', 'analyze', {'data': 'logs'}]"));
    cast("a", mp("['send_task', 'fly', {}]"));
    ck_assert_mp_eq(CALL(C, "a", mp("'inbox_count'")), "3");

    const msgpack_object *r = CALL(C, "a", mp("'process_next'"));
    ck_assert_mp_eq(mp_item(r, 0), "'ok'");
    const msgpack_object *task = mp_item(r, 1);
    ck_assert_int_eq(mp_get(task, "id")->type, MSGPACK_OBJECT_STR);
    ck_assert_mp_eq(mp_get(task, "action"), "'search'");
    ck_assert_mp_eq(mp_get(task, "params"), "{'query': 'otp'}");
    ck_assert_mp_eq(mp_item(r, 2), "['ok', 'Search results for: otp']");
    ck_assert_mp_eq(CALL(C, "a", mp("['recall', 'last_result']")),
                    "['ok', 'Search results for: otp']");

    r = CALL(C, "a", mp("'process_next'"));
    ck_assert_mp_eq(mp_get(mp_item(r, 1), "action"), "'analyze'");
    ck_assert_mp_eq(mp_item(r, 2), "['ok', 'Analysis of: logs']");
    ck_assert(!mp_eq(mp_get(mp_item(r, 1), "id"), "%v", mp_get(task, "id")));

    r = CALL(C, "a", mp("'process_next'"));
    ck_assert_mp_eq(mp_item(r, 2), "['error', ['unknown_action', 'fly']]");
    ck_assert_mp_eq(CALL(C, "a", mp("['recall', 'last_result']")),
                    "['error', ['unknown_action', 'fly']]");
    ck_assert_mp_eq(CALL(C, "a", mp("'inbox_count'")), "0");
    ck_assert_mp_eq(CALL(C, "a", mp("'process_next'")), "['empty', nil]");
}
END_TEST

START_TEST(agent_state_map)
{
    START(C, "agent", "a", mp("{'name': 'ann', 'memory': {'x': 1}}"));
    cast("a", mp("['send_task', 'search', {'query': 'q'}]"));
    cast("a", mp("['send_task', 'search', {'query': 'r'}]"));
    CALL(C, "a", mp("'process_next'"));
    const msgpack_object *s = CALL(C, "a", mp("'state'"));
    ck_assert_mp_eq(mp_get(s, "name"), "'ann'");
    ck_assert_ptr_nonnull(mp_get(s, "status"));
    ck_assert_mp_eq(mp_get(mp_get(s, "memory"), "x"), "1");
    ck_assert_mp_eq(mp_get(mp_get(s, "memory"), "last_result"), "['ok', 'Search results for: q']");
    ck_assert_mp_eq(mp_get(s, "inbox"), "1");
    ck_assert_mp_eq(mp_get(s, "processed_count"), "1");
}
END_TEST

START_TEST(probe_echo)
{
    probe("p", NULL);
    ck_assert_mp_eq(CALL(C, "p", mp("['echo', {'deep': [[[b'x']]]}]")), "{'deep': [[[b'x']]]}");
}
END_TEST

START_TEST(probe_reply_after_while_serving_others)
{
    struct raw *a = RAW_CONNECT(D);
    probe("p", NULL);
    int64_t t0 = now_ms();
    RAW_REQUEST(a, 1, "call", mp("['p', ['reply_after', 600, 'late'], nil]"));
    ck_assert_mp_eq(CALL(C, "p", mp("['echo', 'other connection']")), "'other connection'");
    RAW_REQUEST(a, 2, "call", mp("['p', ['echo', 'now'], nil]"));
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 2, nil, 'now']");
    ck_assert_int_lt(now_ms() - t0, 500);
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 1, nil, 'late']");
    ck_assert_int_ge(now_ms() - t0, 590);
    raw_close(&a);
}
END_TEST

START_TEST(probe_stop_replies_then_stops)
{
    probe("p", "p.log");
    ck_assert_mp_eq(CALL(C, "p", mp("['stop', 'normal', 'so long']")), "'so long'");
    ck_assert(!registered("p"));
    ck_assert_str_eq(tlog("p.log"), "\"normal\"\n");
}
END_TEST

START_TEST(probe_stop_noreply_gives_exit)
{
    gsc_reply *r;
    probe("p", "p.log");
    ck_assert_mp_eq(ERR(gsc_call(C, "p", mp("['stop_noreply', ['crash', 7]]"), 0, &r), &r, "exit"),
                    "['crash', 7]");
    ck_assert_str_eq(tlog("p.log"), "[\"crash\",7]\n");
}
END_TEST

START_TEST(probe_cast_stop)
{
    probe("p", "p.log");
    cast("p", mp("['stop', 'by_cast']"));
    ck_assert(WAIT_UNTIL(2000, !registered("p")));
    ck_assert_str_eq(tlog("p.log"), "\"by_cast\"\n");
}
END_TEST

START_TEST(probe_monitor_and_infos)
{
    probe("p", NULL);
    uint64_t id = START(C, "counter", "n", NULL);
    send_msg("p", mp("'raw1'"));
    int64_t ref = MP_INT(CALL(C, "p", mp("['monitor', 'n']")));
    send_msg("p", mp("['raw2']"));
    stop("n", mp("['shutdown', 'x']"));
    ck_assert(WAIT_UNTIL(2000, CALL(C, "p", mp("'infos'"))->via.array.size == 3));
    ck_assert_mp_eq(CALL(C, "p", mp("'infos'")),
                    "['raw1', ['raw2'], ['down', %l, %u, ['shutdown', 'x']]]", ref, id);
}
END_TEST

START_TEST(probe_init_stop_and_ignore)
{
    gsc_reply *r;
    ck_assert_mp_eq(
        ERR(gsc_start(C, "probe", "p", mp("{'init': 'stop', 'reason': 'nope'}"), NULL, &r), &r,
            "init_stop"),
        "'nope'");
    ERR(gsc_start(C, "probe", "p", mp("{'init': 'ignore'}"), NULL, &r), &r, "ignore");
    ck_assert(!registered("p"));
}
END_TEST

static Suite *reference_suite(void)
{
    Suite *s = suite_create("e2e_reference");
    TCase *tc;

    tc = tcase_create("reference_modules");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, counter_per_contract);
    tcase_add_test(tc, stack_per_contract);
    tcase_add_test(tc, journal_per_contract);
    tcase_add_test(tc, cache_per_contract);
    tcase_add_test(tc, cache_ttl_entries_expire);
    tcase_add_test(tc, cache_sweep_drops_expired_entries);
    tcase_add_test(tc, idle_counts_quiet_periods);
    tcase_add_test(tc, idle_no_timeout_while_messages_arrive);
    tcase_add_test(tc, agent_memory);
    tcase_add_test(tc, agent_tasks_processed_in_order);
    tcase_add_test(tc, agent_state_map);
    tcase_add_test(tc, probe_echo);
    tcase_add_test(tc, probe_reply_after_while_serving_others);
    tcase_add_test(tc, probe_stop_replies_then_stops);
    tcase_add_test(tc, probe_stop_noreply_gives_exit);
    tcase_add_test(tc, probe_cast_stop);
    tcase_add_test(tc, probe_monitor_and_infos);
    tcase_add_test(tc, probe_init_stop_and_ignore);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(reference_suite());
}
