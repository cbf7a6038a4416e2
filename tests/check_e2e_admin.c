/*
 * check_e2e_admin.c — the daemon's own methods end to end: ping, version,
 * whereis, which, info, get_state, unknown methods, modules and load, and
 * who may use them (a peer that is not an admin).
 *
 * Each test starts its own daemon (e2e.h) and checks at the end that it
 * still exits 0 on SIGTERM.
 */
#include "e2e.h"

#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ============================= introspection ============================== */

START_TEST(ping_answers_pong)
{
    gsc_reply *r;
    ck_assert_mp_eq(OK(gsc_ping(C, &r), &r), "'pong'");
}
END_TEST

START_TEST(version_has_protocol_1_and_version_string)
{
    gsc_reply *r;
    const msgpack_object *v = OK(gsc_version(C, &r), &r);
    ck_assert_mp_eq(mp_get(v, "protocol"), "1");
    ck_assert_ptr_nonnull(mp_get(v, "version"));
    ck_assert_int_eq(mp_get(v, "version")->type, MSGPACK_OBJECT_STR);
}
END_TEST

START_TEST(whereis_unknown_is_nil)
{
    ck_assert_mp_eq(whereis("ghost"), "nil");
}
END_TEST

START_TEST(which_lists_every_server)
{
    gsc_reply *r;
    uint64_t a = START(C, "counter", "a", NULL);
    uint64_t b = START(C, "stack", NULL, NULL);
    uint64_t p = probe("p", NULL);
    const msgpack_object *list = OK(gsc_which(C, &r), &r);
    ck_assert_int_eq(list->type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(list->via.array.size, 3);
    int seen = 0;
    for (uint32_t i = 0; i < 3; i++) {
        const msgpack_object *e = mp_item(list, i);
        uint64_t id = (uint64_t)MP_INT(mp_get(e, "id"));
        if (id == a) {
            ck_assert_mp_eq(mp_get(e, "name"), "'a'");
            ck_assert_mp_eq(mp_get(e, "module"), "'counter'");
        } else if (id == b) {
            ck_assert_mp_eq(mp_get(e, "name"), "nil");
            ck_assert_mp_eq(mp_get(e, "module"), "'stack'");
        } else if (id == p) {
            ck_assert_mp_eq(mp_get(e, "name"), "'p'");
            ck_assert_mp_eq(mp_get(e, "module"), "'probe'");
        }
        seen |= (id == a) << 0 | (id == b) << 1 | (id == p) << 2;
    }
    ck_assert_int_eq(seen, 7);
    stop("a", NULL);
    ck_assert_uint_eq(OK(gsc_which(C, &r), &r)->via.array.size, 2);
}
END_TEST

/* The status of server id in a which list, as text ("'running'"), or "absent". */
static const char *which_status(const msgpack_object *list, uint64_t id)
{
    for (uint32_t i = 0; i < list->via.array.size; i++)
        if (mp_eq(mp_get(mp_item(list, i), "id"), "%u", id))
            return mp_str(mp_get(mp_item(list, i), "status"));
    return "absent";
}

START_TEST(which_shows_each_change_at_once)
{
    /* Its result is kept between changes: each change must show in the
     * next which, whatever it is. */
    gsc_reply *r;
    ck_assert_mp_eq(OK(gsc_which(C, &r), &r), "[]");
    uint64_t a = START(C, "counter", "a", NULL);
    ck_assert_mp_eq(OK(gsc_which(C, &r), &r),
                    "[{'id': %u, 'name': 'a', 'module': 'counter', 'status': 'running'}]", a);
    ck_assert_mp_eq(OK(gsc_which(C, &r), &r),
                    "[{'id': %u, 'name': 'a', 'module': 'counter', 'status': 'running'}]", a);
    uint64_t f = forms("f", NULL);
    ck_assert_uint_eq(OK(gsc_which(C, &r), &r)->via.array.size, 2);
    ck_assert_mp_eq(CALL(C, "f", mp("['reply_hibernate', 'z']")), "'z'");
    ck_assert(WAIT_UNTIL(1000, status_is("f", "hibernating")));
    ck_assert_str_eq(which_status(OK(gsc_which(C, &r), &r), f), "'hibernating'");
    ck_assert_mp_eq(CALL(C, "f", mp("['reply', 1]")), "1"); /* awake again */
    ck_assert_str_eq(which_status(OK(gsc_which(C, &r), &r), f), "'running'");
    cast("a", mp("'increment'")); /* a message is no change to which */
    ck_assert_str_eq(which_status(OK(gsc_which(C, &r), &r), a), "'running'");
    stop("a", NULL);
    ck_assert_mp_eq(OK(gsc_which(C, &r), &r),
                    "[{'id': %u, 'name': 'f', 'module': 'forms', 'status': 'running'}]", f);
    stop("f", NULL);
    ck_assert_mp_eq(OK(gsc_which(C, &r), &r), "[]");
}
END_TEST

/* Pages through which by `count`: every id, in order, into ids (n of
 * them); each page but the last full, each entry as which [] has it. */
static uint32_t which_pages(uint32_t count, uint64_t *ids, uint32_t max)
{
    gsc_reply *r;
    const msgpack_object *all = OK(gsc_which(C, &r), &r);
    uint32_t n = 0;
    uint64_t after = 0;
    for (;;) {
        const msgpack_object *page = OK(gsc_which_page(C, after, count, &r), &r);
        ck_assert_int_eq(page->type, MSGPACK_OBJECT_ARRAY);
        ck_assert_uint_le(page->via.array.size, count);
        for (uint32_t i = 0; i < page->via.array.size; i++) {
            const msgpack_object *e = mp_item(page, i);
            ck_assert_uint_lt(n, max);
            ids[n] = (uint64_t)MP_INT(mp_get(e, "id"));
            ck_assert_msg(ids[n] > after, "id %llu after %llu", (unsigned long long)ids[n],
                          (unsigned long long)after);
            ck_assert_mp_eq(e, "%v", mp_item(all, n));
            after = ids[n++];
        }
        if (page->via.array.size < count)
            return n;
    }
}

START_TEST(which_pages_list_every_server_once_in_id_order)
{
    uint64_t started[25], ids[32];
    for (int i = 0; i < 25; i++) { /* some named, most anonymous */
        char name[8];
        snprintf(name, sizeof name, "s%d", i);
        started[i] = START(C, "counter", i % 3 ? NULL : name, NULL);
    }
    ck_assert_uint_eq(which_pages(7, ids, 32), 25); /* pages of 7, 7, 7, 4 */
    for (int i = 0; i < 25; i++)
        ck_assert_uint_eq(ids[i], started[i]);
    ck_assert_uint_eq(which_pages(25, ids, 32), 25); /* a full page, then [] */
    ck_assert_uint_eq(which_pages(1000, ids, 32), 25);
    gsc_reply *r;
    const msgpack_object *e = mp_item(OK(gsc_which_page(C, 0, 1, &r), &r), 0);
    ck_assert_mp_eq(e, "{'id': %u, 'name': 's0', 'module': 'counter', 'status': 'running'}",
                    started[0]);
}
END_TEST

START_TEST(which_page_after_an_ended_server)
{
    gsc_reply *r;
    static const char *const names[] = {"a", "b", "c", "d", "e", "f"};
    uint64_t id[6];
    for (int i = 0; i < 6; i++)
        id[i] = START(C, "counter", names[i], NULL);
    stop("b", NULL); /* nearer the first: found from the start */
    const msgpack_object *page = OK(gsc_which_page(C, id[1], 2, &r), &r);
    ck_assert_uint_eq(page->via.array.size, 2);
    ck_assert_mp_eq(mp_get(mp_item(page, 0), "id"), "%u", id[2]);
    ck_assert_mp_eq(mp_get(mp_item(page, 1), "id"), "%u", id[3]);
    page = OK(gsc_which_page(C, id[0], 1, &r), &r); /* the ended b is skipped */
    ck_assert_uint_eq(page->via.array.size, 1);
    ck_assert_mp_eq(mp_get(mp_item(page, 0), "id"), "%u", id[2]);
    stop("e", NULL); /* nearer the last: found from the end */
    page = OK(gsc_which_page(C, id[4], 10, &r), &r);
    ck_assert_uint_eq(page->via.array.size, 1);
    ck_assert_mp_eq(mp_get(mp_item(page, 0), "id"), "%u", id[5]);
    page = OK(gsc_which_page(C, id[3], 10, &r), &r);
    ck_assert_uint_eq(page->via.array.size, 1);
    ck_assert_mp_eq(mp_get(mp_item(page, 0), "id"), "%u", id[5]);
    stop("a", NULL); /* an id before every server's */
    page = OK(gsc_which_page(C, id[0], 10, &r), &r);
    ck_assert_uint_eq(page->via.array.size, 3);
    ck_assert_mp_eq(mp_get(mp_item(page, 0), "id"), "%u", id[2]);
    stop("f", NULL); /* an id after every server's */
    ck_assert_mp_eq(OK(gsc_which_page(C, id[5], 10, &r), &r), "[]");
    ck_assert_mp_eq(OK(gsc_which_page(C, id[3], 10, &r), &r), "[]");
    ck_assert_mp_eq(OK(gsc_which_page(C, UINT64_MAX, 10, &r), &r), "[]");
}
END_TEST

static void page_done(gsc *c, uint32_t msgid, int status, gsc_reply *reply, void *arg)
{
    (void)c, (void)msgid;
    ck_assert_int_eq(status, GSC_OK);
    gsc_reply **out = arg;
    *out = reply;
}

START_TEST(which_page_async_pages_alike)
{
    uint64_t a = START(C, "counter", "a", NULL), b = START(C, "stack", NULL, NULL);
    gsc_reply *first = NULL, *second = NULL;
    ck_assert_uint_ne(gsc_which_page_async(C, 0, 1, page_done, &first), 0);
    ck_assert_uint_ne(gsc_which_page_async(C, a, 5, page_done, &second), 0);
    ck_assert_int_eq(gsc_run(C, 5000), GSC_OK);
    ck_assert_mp_eq(&first->result,
                    "[{'id': %u, 'name': 'a', 'module': 'counter', 'status': 'running'}]", a);
    ck_assert_mp_eq(&second->result,
                    "[{'id': %u, 'name': nil, 'module': 'stack', 'status': 'running'}]", b);
    gsc_reply_destroy(&first);
    gsc_reply_destroy(&second);
}
END_TEST

START_TEST(which_page_of_count_0_is_empty)
{
    gsc_reply *r;
    START(C, "counter", "a", NULL);
    ck_assert_mp_eq(OK(gsc_which_page(C, 0, 0, &r), &r), "[]");
    ck_assert_uint_eq(OK(gsc_which_page(C, 0, UINT32_MAX, &r), &r)->via.array.size, 1);
    ck_assert_uint_eq(OK(gsc_request(C, "which", mp("[0, %u]", (uint64_t)UINT64_MAX), 5000, &r), &r)
                          ->via.array.size,
                      1);
}
END_TEST

START_TEST(which_bad_params_are_badarg)
{
    gsc_reply *r;
    START(C, "counter", "a", NULL);
    static const char *const bad[] = {"[1]",      "[1, 2, 3]", "['a', 1]", "[1, 'a']",
                                      "[-1, 1]",  "[1, -1]",   "[nil, 1]", "[0, nil]",
                                      "[1.0, 1]", "[[], 1]",   "[0, {}]",  "[0, true]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ERR(gsc_request(C, "which", mp(bad[i]), 5000, &r), &r, "badarg");
    ck_assert_uint_eq(OK(gsc_which(C, &r), &r)->via.array.size, 1); /* still answers */
}
END_TEST

START_TEST(info_has_the_contract_fields)
{
    uint64_t id = forms("f", NULL);
    const msgpack_object *i = info("f");
    ck_assert_mp_eq(mp_get(i, "id"), "%u", id);
    ck_assert_mp_eq(mp_get(i, "name"), "'f'");
    ck_assert_mp_eq(mp_get(i, "module"), "'forms'");
    ck_assert_mp_eq(mp_get(i, "vsn"), "3");
    ck_assert_mp_eq(mp_get(i, "status"), "'running'");
    ck_assert_mp_eq(mp_get(i, "mailbox"), "0");
    ck_assert_mp_eq(mp_get(info(id_str(id)), "name"), "'f'");
}
END_TEST

/* info's figures are counters kept as messages flow: a backlog shows in
 * mailbox and its high-water mark, and one slow callback is counted and
 * logged once. */
START_TEST(info_counts_the_backlog_and_slow_callbacks)
{
    if (isolated_run()) /* info is answered while an isolated callback runs: no backlog to see */
        return;
    forms("f", NULL);
    struct raw *a = RAW_CONNECT(D);
    RAW_REQUEST(a, 1, "call", mp("['f', ['busy', 300], nil]")); /* > the 100 ms threshold */
    sleep_ms(100); /* the daemon is inside the slow callback now */
    for (int i = 0; i < 5; i++)
        RAW_NOTIFY(a, "cast", mp("['f', 'one']"));
    RAW_NOTIFY(a, "send", mp("['f', 'x']"));
    RAW_REQUEST(a, 2, "info", mp("['f']"));
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 1, nil, 'done']");
    /* Read with the backlog: what is queued and what has run of it add up
     * (a turn of f may run between two rounds of a, as a slow machine
     * cuts them short). */
    const msgpack_object *then = &RAW_RECV(a, 3000)->via.array.ptr[3];
    const msgpack_object *done = mp_get(then, "handled");
    int64_t queued = MP_INT(mp_get(then, "mailbox"));
    ck_assert_int_ge(queued, 1);
    ck_assert_int_eq(queued + MP_INT(mp_get(done, "cast")) + MP_INT(mp_get(done, "info")), 6);
    raw_close(&a);
    ck_assert(WAIT_UNTIL(3000, mp_eq(mp_get(info("f"), "mailbox"), "0")));
    const msgpack_object *now = info("f");
    ck_assert_int_ge(MP_INT(mp_get(now, "mailbox_high")), queued);
    ck_assert_mp_eq(mp_get(now, "handled"), "{'call': 1, 'cast': 5, 'info': 1}");
    ck_assert_mp_eq(mp_get(now, "slow_callbacks"), "1");
    const char *log = file_read(gsd_path(D, "gsd.log"));
    const char *line = strstr(log, "handle_call took");
    ck_assert_ptr_nonnull(line);
    ck_assert_ptr_null(strstr(line + 1, "handle_call took"));
}
END_TEST

START_TEST(info_unknown_server_is_noproc)
{
    gsc_reply *r;
    ERR(gsc_info(C, "ghost", &r), &r, "noproc");
}
END_TEST

START_TEST(get_state_shows_format_state)
{
    gsc_reply *r;
    START(C, "counter", "c", mp("7"));
    ck_assert_mp_eq(OK(gsc_get_state(C, "c", &r), &r), "7");
    forms("f", NULL);
    cast("f", mp("'one'"));
    const msgpack_object *s = OK(gsc_get_state(C, "f", &r), &r);
    ck_assert_mp_eq(mp_get(s, "casts"), "1");
}
END_TEST

START_TEST(get_state_without_format_state_is_unsupported)
{
    gsc_reply *r;
    START(C, "minimal", "m", NULL);
    ERR(gsc_get_state(C, "m", &r), &r, "unsupported");
    ck_assert(registered("m"));
}
END_TEST

START_TEST(get_state_unknown_server_is_noproc)
{
    gsc_reply *r;
    ERR(gsc_get_state(C, "ghost", &r), &r, "noproc");
}
END_TEST

START_TEST(unknown_method_is_unknown_method)
{
    gsc_reply *r;
    ERR(gsc_request(C, "frobnicate", NULL, 5000, &r), &r, "unknown_method");
    ck_assert_mp_eq(OK(gsc_ping(C, &r), &r), "'pong'");
}
END_TEST

/* ============================ modules and load ============================ */

/* The entry named `name` in a modules list, or NULL. */
static const msgpack_object *module_entry(const msgpack_object *list, const char *name)
{
    for (uint32_t i = 0; list && i < list->via.array.size; i++)
        if (mp_eq(mp_get(mp_item(list, i), "name"), "%s", name))
            return mp_item(list, i);
    return NULL;
}

START_TEST(modules_lists_loaded_modules)
{
    gsc_reply *r;
    START(C, "counter", NULL, NULL);
    const msgpack_object *list = OK(gsc_modules(C, &r), &r);
    ck_assert_int_eq(list->type, MSGPACK_OBJECT_ARRAY);
    ck_assert_mp_eq(mp_get(module_entry(list, "counter"), "vsn"), "1");
}
END_TEST

START_TEST(load_answers_name_and_vsn)
{
    gsc_reply *r;
    const msgpack_object *m = OK(gsc_load(C, "forms", &r), &r);
    ck_assert_mp_eq(mp_get(m, "name"), "'forms'");
    ck_assert_mp_eq(mp_get(m, "vsn"), "3");
    ck_assert_mp_eq(mp_get(module_entry(OK(gsc_modules(C, &r), &r), "forms"), "vsn"), "3");
}
END_TEST

START_TEST(load_unknown_module_is_module_error)
{
    gsc_reply *r;
    ERR(gsc_load(C, "no_such_module", &r), &r, "module");
}
END_TEST

START_TEST(load_wrong_abi_is_module_error)
{
    gsc_reply *r;
    ERR(gsc_load(C, "badabi", &r), &r, "module");
    ck_assert_ptr_null(module_entry(OK(gsc_modules(C, &r), &r), "badabi"));
    ERR(gsc_load(C, "noinit", &r), &r, "module");
}
END_TEST

START_TEST(load_path_is_refused)
{
    const char *bad[] = {"../modules/counter", "/tmp/x", "counter.so", ""};
    for (int i = 0; i < 4; i++) {
        gsc_reply *r = NULL;
        int st = gsc_load(C, bad[i], &r);
        ck_assert_msg(st == GSC_ERROR &&
                          (strcmp(r->code, "badarg") == 0 || strcmp(r->code, "module") == 0),
                      "load '%s': status %d code %s", bad[i], st, r ? r->code : "-");
        gsc_reply_destroy(&r);
    }
    gsc_reply *r;
    ERR(gsc_request(C, "load", mp("[5]"), 5000, &r), &r, "badarg");
}
END_TEST

/* ============================ who may do what ============================= */

/* As uid nobody: what `code` the request answered, "ok" for a result. */
/* A peer that is neither root nor the daemon's uid may call, but not change
 * what runs: start, stop, load and get_state answer unauthorized. */
START_TEST(non_admin_peer_may_call_but_not_change_what_runs)
{
    START(C, "counter", "c", mp("1"));
    static const struct as_nobody reqs[] = {
        {"call", "['c', 'get', nil]", "ok"},
        {"start", "['counter', 'd', nil, nil]", "unauthorized"},
        {"stop", "['c', nil, nil]", "unauthorized"},
        {"get_state", "['c']", "unauthorized"},
        {"load", "['stack']", "unauthorized"},
    };
    as_nobody(reqs, sizeof reqs / sizeof reqs[0]);
    ck_assert(registered("c"));
    ck_assert(!registered("d"));
}
END_TEST

static Suite *admin_suite(void)
{
    Suite *s = suite_create("e2e_admin");
    TCase *tc;

    tc = tcase_create("introspection");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, ping_answers_pong);
    tcase_add_test(tc, version_has_protocol_1_and_version_string);
    tcase_add_test(tc, whereis_unknown_is_nil);
    tcase_add_test(tc, which_lists_every_server);
    tcase_add_test(tc, which_shows_each_change_at_once);
    tcase_add_test(tc, which_pages_list_every_server_once_in_id_order);
    tcase_add_test(tc, which_page_after_an_ended_server);
    tcase_add_test(tc, which_page_async_pages_alike);
    tcase_add_test(tc, which_page_of_count_0_is_empty);
    tcase_add_test(tc, which_bad_params_are_badarg);
    tcase_add_test(tc, info_has_the_contract_fields);
    tcase_add_test(tc, info_unknown_server_is_noproc);
    tcase_add_test(tc, info_counts_the_backlog_and_slow_callbacks);
    tcase_add_test(tc, get_state_shows_format_state);
    tcase_add_test(tc, get_state_without_format_state_is_unsupported);
    tcase_add_test(tc, get_state_unknown_server_is_noproc);
    tcase_add_test(tc, unknown_method_is_unknown_method);
    suite_add_tcase(s, tc);

    tc = tcase_create("modules");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, modules_lists_loaded_modules);
    tcase_add_test(tc, load_answers_name_and_vsn);
    tcase_add_test(tc, load_unknown_module_is_module_error);
    tcase_add_test(tc, load_wrong_abi_is_module_error);
    tcase_add_test(tc, load_path_is_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("auth");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, non_admin_peer_may_call_but_not_change_what_runs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(admin_suite());
}
