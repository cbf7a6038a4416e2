/*
 * check_e2e.c — the wire contract end to end: a real gsd on a throwaway
 * socket, spoken to through libgsclient and, where bytes matter, a raw
 * socket. Each test starts its own daemon (fixture) and checks at the end
 * that it still exits 0 on SIGTERM.
 */
#include "harness.h"

#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static struct gsd *D; /* this test's daemon */
static gsc *C;        /* a client of it */

static void setup(void)
{
    D = gsd_start();
    C = CLIENT(D);
}

static void teardown(void)
{
    client_close(&C);
    ck_assert_int_eq(gsd_stop(&D), 0);
}

/* ---- helpers ------------------------------------------------------------------ */

/* A file in the daemon's directory, for terminate logs. */
static const char *path(const char *name)
{
    return gsd_path(D, name);
}

static uint64_t probe(const char *name, const char *log)
{
    return START(C, "probe", name, log ? mp("{'terminate_log': %s}", path(log)) : NULL);
}

static uint64_t forms(const char *name, const char *log)
{
    return START(C, "forms", name, log ? mp("{'log': %s}", path(log)) : NULL);
}

/* whereis name: the id, or nil. */
static const msgpack_object *whereis(const char *name)
{
    gsc_reply *r;
    return OK(gsc_whereis(C, name, &r), &r);
}

static bool registered(const char *name)
{
    return whereis(name)->type != MSGPACK_OBJECT_NIL;
}

static const msgpack_object *info(const char *server)
{
    gsc_reply *r;
    return OK(gsc_info(C, server, &r), &r);
}

static bool status_is(const char *server, const char *status)
{
    return mp_eq(mp_get(info(server), "status"), "%s", status);
}

/* The terminate log's lines, blanks squeezed out. */
static const char *tlog(const char *name)
{
    return json_lines(path(name));
}

static void cast(const char *server, const msgpack_object *req)
{
    gsc_reply *r;
    ck_assert_mp_eq(OK(gsc_cast(C, server, req, &r), &r), "nil");
}

static void send_msg(const char *server, const msgpack_object *msg)
{
    gsc_reply *r;
    ck_assert_mp_eq(OK(gsc_send(C, server, msg, &r), &r), "nil");
}

static void stop(const char *server, const msgpack_object *reason)
{
    gsc_reply *r;
    ck_assert_mp_eq(OK(gsc_stop(C, server, reason, 0, &r), &r), "nil");
}

/* Asserts that m is the error response [1, msgid, [code, _], nil]. */
#define CK_ERR_RESP(m, id, code)                                                                   \
    do {                                                                                           \
        const msgpack_object *m_ = (m);                                                            \
        ck_assert_msg(                                                                             \
            mp_eq(mp_item(m_, 0), "1") && mp_eq(mp_item(m_, 1), "%u", (uint64_t)(id)) &&           \
                mp_eq(mp_item(mp_item(m_, 2), 0), "%s", (code)) && mp_eq(mp_item(m_, 3), "nil"),   \
            "wanted an error response %s to msgid %d, got %s", (code), (int)(id), mp_str(m_));     \
    } while (0)

/* Asserts that m is the notification [2, "error", [code, _]]. */
#define CK_ERR_NOTE(m, code)                                                                       \
    do {                                                                                           \
        const msgpack_object *m_ = (m);                                                            \
        ck_assert_msg(mp_eq(mp_item(m_, 0), "2") && mp_eq(mp_item(m_, 1), "'error'") &&            \
                          mp_eq(mp_item(mp_item(m_, 2), 0), "%s", (code)),                         \
                      "wanted an error notification %s, got %s", (code), mp_str(m_));              \
    } while (0)

/* The ping that proves a raw connection still works: no other message first. */
static void raw_ping_ok(struct raw *r, uint32_t msgid)
{
    RAW_REQUEST(r, msgid, "ping", mp("[]"));
    ck_assert_mp_eq(RAW_RECV(r, 3000), "[1, %u, nil, 'pong']", (uint64_t)msgid);
}

/* =========================== methods ==================================== */

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

START_TEST(start_returns_id_and_registers_name)
{
    uint64_t id = START(C, "counter", "c", NULL);
    ck_assert_uint_gt(id, 0);
    ck_assert_mp_eq(whereis("c"), "%u", id);
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "0");
    ck_assert_mp_eq(CALL(C, id_str(id), mp("'get'")), "0");
}
END_TEST

START_TEST(start_args_reach_init)
{
    START(C, "counter", "c", mp("5"));
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "5");
}
END_TEST

START_TEST(start_anonymous_has_nil_name)
{
    gsc_reply *r;
    uint64_t id = START(C, "counter", NULL, mp("3"));
    ck_assert_mp_eq(CALL(C, id_str(id), mp("'get'")), "3");
    const msgpack_object *list = OK(gsc_which(C, &r), &r);
    ck_assert_uint_eq(list->via.array.size, 1);
    ck_assert_mp_eq(mp_get(mp_item(list, 0), "id"), "%u", id);
    ck_assert_mp_eq(mp_get(mp_item(list, 0), "name"), "nil");
    ck_assert_mp_eq(mp_get(info(id_str(id)), "name"), "nil");
}
END_TEST

START_TEST(ids_are_never_reused)
{
    gsc_reply *r;
    uint64_t a = START(C, "counter", "c", NULL);
    stop("c", NULL);
    uint64_t b = START(C, "counter", "c", NULL);
    uint64_t anon = START(C, "counter", NULL, NULL);
    ck_assert_uint_ne(a, b);
    ck_assert_uint_ne(a, anon);
    ck_assert_uint_ne(b, anon);
    ERR(gsc_call(C, id_str(a), mp("'get'"), 0, &r), &r, "noproc");
}
END_TEST

START_TEST(start_name_in_use_already_started_with_existing_id)
{
    gsc_reply *r;
    uint64_t id = START(C, "counter", "c", mp("4"));
    const msgpack_object *detail =
        ERR(gsc_start(C, "stack", "c", NULL, NULL, &r), &r, "already_started");
    ck_assert_mp_eq(detail, "%u", id);
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "4"); /* the first one untouched */
}
END_TEST

START_TEST(start_unknown_module_is_module_error)
{
    gsc_reply *r;
    ERR(gsc_start(C, "no_such_module", "x", NULL, NULL, &r), &r, "module");
    ck_assert(!registered("x"));
}
END_TEST

START_TEST(start_wrong_abi_is_module_error)
{
    gsc_reply *r;
    ERR(gsc_start(C, "badabi", "x", NULL, NULL, &r), &r, "module");
    ck_assert(!registered("x"));
}
END_TEST

START_TEST(start_module_without_init_is_module_error)
{
    gsc_reply *r;
    ERR(gsc_start(C, "noinit", "x", NULL, NULL, &r), &r, "module");
    ck_assert(!registered("x"));
}
END_TEST

START_TEST(start_module_path_is_refused)
{
    const char *bad[] = {"../modules/counter", "/tmp/counter", "counter.so", "a/b"};
    for (int i = 0; i < 4; i++) {
        gsc_reply *r = NULL;
        int st = gsc_start(C, bad[i], NULL, NULL, NULL, &r);
        ck_assert_msg(st == GSC_ERROR &&
                          (strcmp(r->code, "badarg") == 0 || strcmp(r->code, "module") == 0),
                      "start %s: status %d code %s", bad[i], st, r ? r->code : "-");
        gsc_reply_destroy(&r);
    }
}
END_TEST

START_TEST(start_all_digit_name_is_badarg)
{
    gsc_reply *r;
    ERR(gsc_request(C, "start", mp("['counter', '123', nil, nil]"), 5000, &r), &r, "badarg");
    ck_assert(!registered("123"));
}
END_TEST

START_TEST(start_bad_names_are_badarg)
{
    char longname[257];
    gsc_reply *r;
    memset(longname, 'n', 256);
    longname[256] = '\0';
    ERR(gsc_start(C, "counter", longname, NULL, NULL, &r), &r, "badarg");
    ERR(gsc_start(C, "counter", "", NULL, NULL, &r), &r, "badarg");
    ERR(gsc_start(C, "counter", "bad\xff", NULL, NULL, &r), &r, "badarg");
    longname[255] = '\0'; /* 255 bytes is fine */
    START(C, "counter", longname, NULL);
    ck_assert(registered(longname));
}
END_TEST

START_TEST(start_bad_param_types_are_badarg)
{
    gsc_reply *r;
    ERR(gsc_request(C, "start", mp("[5, nil, nil, nil]"), 5000, &r), &r, "badarg");
    ERR(gsc_request(C, "start", mp("['counter', 7, nil, nil]"), 5000, &r), &r, "badarg");
    ERR(gsc_request(C, "start", mp("['counter', 'c', nil, 5]"), 5000, &r), &r, "badarg");
    ck_assert(!registered("c"));
}
END_TEST

/* An unknown option is named in the error, however it prints: an ext of
 * mixed bytes, which msgpack-c's printer leaves unterminated when cut. */
START_TEST(start_unknown_option_is_badarg_naming_it)
{
    gsc_reply *r;
    ERR(gsc_request(C, "start", mp("['counter', 'c', nil, {'linked': true}]"), 5000, &r), &r,
        "badarg");
    struct raw *a = RAW_CONNECT(D);
    struct gsp_buf b = {0};
    msgpack_packer pk;
    static const char ext[] = /* found by fuzz_request */
        "\x6e\x6b\xc3\xad\x6d\x61\x69\x6c\x62\x6f\x78\x5f\x6c\x69\x6d\x69"
        "\x74\x03\x93\x02\xa4\x63\x61\x73\x74\x92\xa1\x73\x00\x72\x74\x94"
        "\xa4\x69\x61\x73\x74\x92\xa1\x73\x00\xa4\x63\x61\x6c\x6c\x93\x69"
        "\x6d\x69\x74\x03\x93\x02\xa4\x63\x61\x73\x74\x92\xa1\x73\x00\x92"
        "\xa4\x70\x75\x73\x68\xa1\x78\x94\x00\x02\xa4\x63\x61\x6c\x6c\x93"
        "\xa1\x73\xa3\x70\x6f\x73\x74\x61\x72\x74\x94\xa4\x69\x64\x6c\x65"
        "\xa1\x69\x01\xc0\x94\x00\x02\xa4\x63\x61\x6c\x6c";
    gsp_packer_init(&pk, &b);
    gsp_pack_request(&pk, 1, "start", 4);
    gsp_pack_str(&pk, "counter");
    gsp_pack_str(&pk, "c");
    msgpack_pack_nil(&pk);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_ext(&pk, sizeof ext - 1, 105);
    msgpack_pack_ext_body(&pk, ext, sizeof ext - 1);
    msgpack_pack_true(&pk);
    RAW_WRITE(a, b.data, b.len);
    gsp_buf_free(&b);
    const msgpack_object *m = RAW_RECV(a, 3000);
    CK_ERR_RESP(m, 1, "badarg");
    const msgpack_object *why = mp_item(mp_item(m, 2), 1);
    ck_assert_int_eq(why->type, MSGPACK_OBJECT_STR);
    ck_assert(why->via.str.size > 0 && why->via.str.size < 200);
    ck_assert(!registered("c"));
    raw_ping_ok(a, 2);
    raw_close(&a);
}
END_TEST

START_TEST(start_init_stop_is_init_stop_with_reason)
{
    gsc_reply *r;
    const msgpack_object *d =
        ERR(gsc_start(C, "forms", "f",
                      mp("{'init': 'stop', 'reason': ['bad', 'thing'], 'log': %s}", path("f.log")),
                      NULL, &r),
            &r, "init_stop");
    ck_assert_mp_eq(d, "['bad', 'thing']");
    ck_assert(!registered("f"));
    sleep_ms(100);
    ck_assert_str_eq(tlog("f.log"), ""); /* no terminate after a failed init */
}
END_TEST

START_TEST(start_init_ignore_is_ignore)
{
    gsc_reply *r;
    ERR(gsc_start(C, "forms", "f", mp("{'init': 'ignore', 'log': %s}", path("f.log")), NULL, &r),
        &r, "ignore");
    ck_assert(!registered("f"));
    sleep_ms(100);
    ck_assert_str_eq(tlog("f.log"), "");
}
END_TEST

START_TEST(start_init_bad_return_fails_start)
{
    gsc_reply *r = NULL;
    int st = gsc_start(C, "forms", "f", mp("{'init': 'bad'}"), NULL, &r);
    ck_assert_msg(st == GSC_ERROR, "start with a bad init result: status %d", st);
    gsc_reply_destroy(&r);
    ck_assert(!registered("f"));
    ck_assert_mp_eq(CALL(C, id_str(START(C, "counter", NULL, NULL)), mp("'get'")), "0");
}
END_TEST

START_TEST(start_option_timeout_exceeded_is_timeout)
{
    gsc_reply *r;
    ERR(gsc_start(C, "forms", "slow", mp("{'init': 'slow', 'ms': 600}"), mp("{'timeout': 100}"),
                  &r),
        &r, "timeout");
    ck_assert(OK(gsc_ping(C, &r), &r));
}
END_TEST

START_TEST(start_option_timeout_long_enough_starts)
{
    START_OPTS(C, "forms", "slow", mp("{'init': 'slow', 'ms': 50}"), mp("{'timeout': 3000}"));
    ck_assert(registered("slow"));
}
END_TEST

START_TEST(start_replies_after_init_returned)
{
    int64_t t0 = now_ms();
    START(C, "forms", "slow", mp("{'init': 'slow', 'ms': 300}"));
    ck_assert_int_ge(now_ms() - t0, 290);
}
END_TEST

START_TEST(start_options_accepted)
{
    START_OPTS(C, "counter", "a", NULL, mp("{}"));
    START_OPTS(C, "counter", "b", NULL,
               mp("{'restart': 'temporary', 'mailbox_limit': 100, 'link': false, "
                  "'timeout': 1000}"));
    ck_assert(registered("a"));
    ck_assert(registered("b"));
}
END_TEST

START_TEST(start_link_stops_server_with_shutdown_when_connection_closes)
{
    gsc *c2 = CLIENT(D);
    START_OPTS(c2, "probe", "linked", mp("{'terminate_log': %s}", path("l.log")),
               mp("{'link': true}"));
    START_OPTS(c2, "probe", "free", mp("{'terminate_log': %s}", path("u.log")), NULL);
    ck_assert(registered("linked"));
    client_close(&c2);
    ck_assert(WAIT_UNTIL(3000, !registered("linked")));
    ck_assert_str_eq(tlog("l.log"), "\"shutdown\"\n");
    /* the unlinked one, started on the same connection, lives on */
    ck_assert(registered("free"));
    ck_assert_str_eq(tlog("u.log"), "");
}
END_TEST

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

START_TEST(stop_nil_reason_is_normal_and_answers_after_terminate)
{
    probe("p", "p.log");
    stop("p", NULL);
    ck_assert_str_eq(tlog("p.log"), "\"normal\"\n"); /* already written */
    ck_assert(!registered("p"));
}
END_TEST

START_TEST(stop_with_reason_and_timeout)
{
    gsc_reply *r;
    uint64_t id = probe("p", "p.log");
    ck_assert_mp_eq(OK(gsc_stop(C, id_str(id), mp("['shutdown', 'bye']"), 2000, &r), &r), "nil");
    ck_assert_str_eq(tlog("p.log"), "[\"shutdown\",\"bye\"]\n");
    ck_assert(!registered("p"));
}
END_TEST

START_TEST(stop_unknown_server_is_noproc)
{
    gsc_reply *r;
    ERR(gsc_stop(C, "ghost", NULL, 0, &r), &r, "noproc");
    ERR(gsc_stop(C, "424242", NULL, 0, &r), &r, "noproc");
}
END_TEST

START_TEST(stop_is_ordered_after_the_mailbox)
{
    gsc_reply *r;
    forms("f", "f.log");
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(gsc_notify(C, "cast", mp("['f', ['note', %d]]", i)), 0);
    ck_assert_mp_eq(OK(gsc_stop(C, "f", mp("'last'"), 0, &r), &r), "nil");
    char want[512] = "";
    for (int i = 0; i < 50; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%d\n", i);
    strcat(want, "\"last\"\n");
    ck_assert_str_eq(tlog("f.log"), want);
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
    forms("f", NULL);
    struct raw *a = RAW_CONNECT(D);
    RAW_REQUEST(a, 1, "call", mp("['f', ['busy', 300], nil]")); /* > the 100 ms threshold */
    sleep_ms(100); /* the daemon is inside the slow callback now */
    for (int i = 0; i < 5; i++)
        RAW_NOTIFY(a, "cast", mp("['f', 'one']"));
    RAW_NOTIFY(a, "send", mp("['f', 'x']"));
    RAW_REQUEST(a, 2, "info", mp("['f']"));
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 1, nil, 'done']");
    const msgpack_object *resp = RAW_RECV(a, 3000); /* read with the backlog, before it ran */
    ck_assert_mp_eq(mp_get(&resp->via.array.ptr[3], "mailbox"), "6");
    raw_close(&a);
    ck_assert(WAIT_UNTIL(3000, mp_eq(mp_get(info("f"), "mailbox"), "0")));
    const msgpack_object *now = info("f");
    ck_assert_mp_eq(mp_get(now, "mailbox_high"), "6");
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

/* As uid nobody: what `code` the request answered, "ok" for a result. */
static const char *as_nobody(gsc *c, int status, gsc_reply *r)
{
    const char *what = status == GSC_OK ? "ok" : status == GSC_ERROR ? r->code : "broken";
    (void)c;
    return what;
}

/* A peer that is neither root nor the daemon's uid may call, but not change
 * what runs: start, stop, load and get_state answer unauthorized. */
START_TEST(non_admin_peer_may_call_but_not_change_what_runs)
{
    START(C, "counter", "c", mp("1"));
    char parent[sizeof D->dir];
    snprintf(parent, sizeof parent, "%s", D->dir);
    chmod(dirname(parent), 0711); /* let uid nobody reach the socket */
    chmod(D->dir, 0711);
    chmod(D->sock, 0666);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(100);
        gsc *c = gsc_connect(D->sock);
        if (c == NULL)
            _exit(101);
        gsc_reply *r = NULL;
        int bad = 0, st;
        st = gsc_call(c, "c", mp("'get'"), 0, &r);
        bad |= strcmp(as_nobody(c, st, r), "ok") != 0;
        gsc_reply_destroy(&r);
        st = gsc_start(c, "counter", "d", NULL, NULL, &r);
        bad |= (strcmp(as_nobody(c, st, r), "unauthorized") != 0) << 1;
        gsc_reply_destroy(&r);
        st = gsc_stop(c, "c", NULL, 0, &r);
        bad |= (strcmp(as_nobody(c, st, r), "unauthorized") != 0) << 2;
        gsc_reply_destroy(&r);
        st = gsc_get_state(c, "c", &r);
        bad |= (strcmp(as_nobody(c, st, r), "unauthorized") != 0) << 3;
        gsc_reply_destroy(&r);
        st = gsc_load(c, "stack", &r);
        bad |= (strcmp(as_nobody(c, st, r), "unauthorized") != 0) << 4;
        gsc_reply_destroy(&r);
        gsc_close(&c);
        _exit(bad);
    }
    int raw;
    ck_assert_int_eq(waitpid(pid, &raw, 0), pid);
    ck_assert_msg(WIFEXITED(raw) && WEXITSTATUS(raw) == 0, "as nobody: exit %d",
                  WIFEXITED(raw) ? WEXITSTATUS(raw) : -1);
    ck_assert(registered("c"));
    ck_assert(!registered("d"));
}
END_TEST

START_TEST(unknown_method_is_unknown_method)
{
    gsc_reply *r;
    ERR(gsc_request(C, "frobnicate", NULL, 5000, &r), &r, "unknown_method");
    ck_assert_mp_eq(OK(gsc_ping(C, &r), &r), "'pong'");
}
END_TEST

/* ======================= callback result forms ================================ */

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

START_TEST(init_ok_timeout_sends_timeout)
{
    START(C, "forms", "f", mp("{'init': 'ok_timeout', 'ms': 100}"));
    sleep_ms(400);
    ck_assert_mp_eq(CALL(C, "f", mp("'timeouts'")), "1");
}
END_TEST

START_TEST(init_ok_hibernate_hibernates)
{
    START(C, "forms", "f", mp("{'init': 'ok_hibernate'}"));
    ck_assert(WAIT_UNTIL(1000, status_is("f", "hibernating")));
    ck_assert_mp_eq(CALL(C, "f", mp("['reply', 2]")), "2");
}
END_TEST

/* terminate may answer a caller kept from an earlier call: it hears that,
 * not ["exit", reason]. */
START_TEST(terminate_may_answer_a_kept_caller)
{
    forms("f", NULL);
    struct raw *a = RAW_CONNECT(D);
    RAW_REQUEST(a, 1, "call", mp("['f', 'noreply', nil]"));
    RAW_REQUEST(a, 2, "stop", mp("['f', nil, nil]"));
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 1, nil, 'from_terminate']");
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 2, nil, nil]");
    raw_close(&a);
}
END_TEST

/* A stop with a reply answers its caller once, with that reply, even if
 * terminate tries to answer the same caller; and before monitors hear the
 * down, as in OTP. */
START_TEST(stop_reply_answers_once_and_before_the_down)
{
    uint64_t id = forms("f", NULL);
    struct raw *a = RAW_CONNECT(D);
    RAW_REQUEST(a, 1, "monitor", mp("['f']"));
    const msgpack_object *ref = &RAW_RECV(a, 3000)->via.array.ptr[3];
    RAW_REQUEST(a, 2, "call", mp("['f', ['stop_reply_kept', 'bye', 'v'], nil]"));
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 2, nil, 'v']");
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[2, 'down', [%u, %u, 'f', 'bye']]", (unsigned)ref->via.u64,
                    (unsigned)id);
    ck_assert_ptr_null(raw_recv(a, 300));
    raw_close(&a);
}
END_TEST

/* A module can answer only calls made to it: not a stop, a start or a
 * get_state waiting on a server, whatever id it guesses. */
START_TEST(gs_reply_to_answers_only_calls_to_this_server)
{
    forms("f", NULL);
    forms("g", NULL);
    struct raw *a = RAW_CONNECT(D);
    RAW_REQUEST(a, 1, "call", mp("['g', 'noreply', nil]")); /* a call kept by g */
    sleep_ms(100);
    int rcs = 0;
    for (int id = 1; id < 40; id++) {
        gsc_reply *r;
        const msgpack_object *rc =
            OK(gsc_call(C, "f", mp("['reply_to_id', %d, 'forged']", id), 0, &r), &r);
        rcs += rc->via.i64 == 0;
    }
    ck_assert_int_eq(rcs, 0);
    ck_assert_ptr_null(raw_recv(a, 200)); /* g's caller still waits */
    raw_close(&a);
}
END_TEST

/* Values a module hands over are checked against the limits: a message
 * too deep to decode is refused, a reply too deep becomes a string. */
START_TEST(module_values_over_the_depth_limit_are_refused)
{
    gsc_reply *r;
    forms("f", NULL);
    forms("g", NULL);
    ck_assert_mp_eq(OK(gsc_call(C, "f", mp("['deep_send', 'g', 20]"), 0, &r), &r), "0");
    ck_assert_mp_eq(OK(gsc_call(C, "f", mp("['deep_send', 'g', 40]"), 0, &r), &r), "-1");
    const msgpack_object *v = OK(gsc_call(C, "f", mp("['deep_reply', 30]"), 0, &r), &r);
    ck_assert_int_eq(v->type, MSGPACK_OBJECT_ARRAY);
    ck_assert_mp_eq(OK(gsc_call(C, "f", mp("['deep_reply', 31]"), 0, &r), &r), "'reply_too_large'");
    ck_assert_mp_eq(OK(gsc_call(C, "g", mp("'ping'"), 0, &r), &r), "['error', 'unknown_call']");
}
END_TEST

START_TEST(terminate_runs_exactly_once)
{
    forms("f", "f.log");
    stop("f", mp("'once'"));
    gsc_reply *r;
    ERR(gsc_stop(C, "f", NULL, 0, &r), &r, "noproc");
    sleep_ms(200);
    ck_assert_str_eq(tlog("f.log"), "\"once\"\n");
}
END_TEST

START_TEST(waiting_callers_get_exit_with_the_stop_reason)
{
    struct raw *a = RAW_CONNECT(D), *b = RAW_CONNECT(D);
    probe("p", NULL);
    RAW_REQUEST(a, 1, "call", mp("['p', ['reply_after', 10000, 'x'], 'infinity']"));
    RAW_REQUEST(b, 7, "call", mp("['p', ['reply_after', 10000, 'y'], 20000]"));
    sleep_ms(200); /* both are waiting */
    stop("p", mp("'bye'"));
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 1, ['exit', 'bye'], nil]");
    ck_assert_mp_eq(RAW_RECV(b, 3000), "[1, 7, ['exit', 'bye'], nil]");
    raw_close(&a);
    raw_close(&b);
}
END_TEST

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

START_TEST(timer_delivers_to_handle_info)
{
    forms("f", NULL);
    int64_t ref = MP_INT(CALL(C, "f", mp("['timer', 50, ['tick', 1]]")));
    ck_assert_int_gt(ref, 0);
    ck_assert(WAIT_UNTIL(2000, mp_eq(CALL(C, "f", mp("'infos'")), "[['tick', 1]]")));
    ck_assert_mp_eq(CALL(C, "f", mp("['cancel', %l]", ref)), "-1"); /* fired */
}
END_TEST

START_TEST(timer_cancel_prevents_delivery)
{
    forms("f", NULL);
    int64_t ref = MP_INT(CALL(C, "f", mp("['timer', 200, 'tock']")));
    ck_assert_mp_eq(CALL(C, "f", mp("['cancel', %l]", ref)), "0");
    ck_assert_mp_eq(CALL(C, "f", mp("['cancel', %l]", ref)), "-1");
    sleep_ms(400);
    ck_assert_mp_eq(CALL(C, "f", mp("'infos'")), "[]");
}
END_TEST

START_TEST(timers_end_with_their_server)
{
    forms("f", NULL);
    CALL(C, "f", mp("['timer', 150, 'late']"));
    stop("f", NULL);
    sleep_ms(400);
    gsc_reply *r;
    ck_assert_mp_eq(OK(gsc_ping(C, &r), &r), "'pong'");
}
END_TEST

START_TEST(gs_cast_reaches_servers_by_name_and_id)
{
    forms("f", NULL);
    uint64_t id = START(C, "counter", "n", NULL);
    ck_assert_mp_eq(CALL(C, "f", mp("['cast_to', 'n', ['add', 5]]")), "0");
    ck_assert_mp_eq(CALL(C, "f", mp("['cast_to', %u, 'increment']", id)), "0");
    ck_assert_mp_eq(CALL(C, "n", mp("'get'")), "6");
    ck_assert_mp_eq(CALL(C, "f", mp("['cast_to', 'ghost', 'x']")), "-1");
}
END_TEST

START_TEST(gs_send_reaches_handle_info_by_name_and_id)
{
    forms("f", NULL);
    uint64_t id = probe("p", NULL);
    ck_assert_mp_eq(CALL(C, "f", mp("['send_to', 'p', 'm1']")), "0");
    ck_assert_mp_eq(CALL(C, "f", mp("['send_to', %u, 'm2']", id)), "0");
    ck_assert(WAIT_UNTIL(2000, mp_eq(CALL(C, "p", mp("'infos'")), "['m1', 'm2']")));
    ck_assert_mp_eq(CALL(C, "f", mp("['send_to', 'ghost', 'x']")), "-1");
}
END_TEST

START_TEST(gs_send_to_self)
{
    uint64_t id = forms("f", NULL);
    ck_assert_mp_eq(CALL(C, "f", mp("['send_to', %u, 'me']", id)), "0");
    ck_assert(WAIT_UNTIL(2000, mp_eq(CALL(C, "f", mp("'infos'")), "['me']")));
}
END_TEST

START_TEST(gs_call_reply_arrives_in_handle_info)
{
    forms("f", NULL);
    uint64_t id = START(C, "counter", "n", mp("7"));
    int64_t ref = MP_INT(CALL(C, "f", mp("['call_to', 'n', 'get', nil]")));
    ck_assert_int_gt(ref, 0);
    ck_assert(WAIT_UNTIL(2000, CALL(C, "f", mp("'infos'"))->via.array.size == 1));
    ck_assert_mp_eq(CALL(C, "f", mp("'infos'")), "[['reply', %l, nil, 7]]", ref);
    int64_t ref2 = MP_INT(CALL(C, "f", mp("['call_to', %u, ['add', 1], 1000]", id)));
    ck_assert_int_ne(ref, ref2);
    ck_assert(WAIT_UNTIL(2000, CALL(C, "f", mp("'infos'"))->via.array.size == 2));
    ck_assert_mp_eq(mp_item(CALL(C, "f", mp("'infos'")), 1), "['reply', %l, nil, 8]", ref2);
}
END_TEST

/* Waits for forms f's first info and checks it is ["reply", ref, [code, _], nil]. */
static void expect_call_error(int64_t ref, const char *code)
{
    ck_assert(WAIT_UNTIL(3000, CALL(C, "f", mp("'infos'"))->via.array.size == 1));
    const msgpack_object *m = mp_item(CALL(C, "f", mp("'infos'")), 0);
    ck_assert_msg(mp_eq(mp_item(m, 0), "'reply'") && mp_eq(mp_item(m, 1), "%l", ref) &&
                      mp_eq(mp_item(mp_item(m, 2), 0), "%s", code) && mp_eq(mp_item(m, 3), "nil") &&
                      m->via.array.size == 4,
                  "wanted ['reply', %lld, ['%s', _], nil], got %s", (long long)ref, code,
                  mp_str(m));
}

START_TEST(gs_call_to_unknown_server_answers_noproc)
{
    forms("f", NULL);
    expect_call_error(MP_INT(CALL(C, "f", mp("['call_to', 'ghost', 'get', 1000]"))), "noproc");
}
END_TEST

START_TEST(gs_call_timeout_answers_timeout)
{
    forms("f", NULL);
    probe("p", NULL);
    int64_t ref = MP_INT(CALL(C, "f", mp("['call_to', 'p', ['reply_after', 1000, 'x'], 100]")));
    expect_call_error(ref, "timeout");
    sleep_ms(1100); /* the late reply is discarded, not delivered */
    ck_assert_uint_eq(CALL(C, "f", mp("'infos'"))->via.array.size, 1);
}
END_TEST

START_TEST(gs_call_to_stopping_server_answers_exit)
{
    forms("f", NULL);
    forms("g", NULL);
    int64_t ref = MP_INT(CALL(C, "f", mp("['call_to', 'g', ['stop', 'dead'], nil]")));
    expect_call_error(ref, "exit");
    ck_assert_mp_eq(mp_item(mp_item(mp_item(CALL(C, "f", mp("'infos'")), 0), 2), 1), "'dead'");
}
END_TEST

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

START_TEST(gs_self_and_self_name)
{
    uint64_t id = forms("f", NULL);
    ck_assert_mp_eq(CALL(C, "f", mp("'self'")), "[%u, 'f']", id);
    uint64_t anon = forms(NULL, NULL);
    ck_assert_mp_eq(CALL(C, id_str(anon), mp("'self'")), "[%u, nil]", anon);
}
END_TEST

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

/* ========================= reference modules ================================== */

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

/* ======================= order and pipelining ================================= */

START_TEST(casts_then_call_see_every_cast_in_order)
{
    gsc_reply *r;
    forms("f", NULL);
    for (int i = 0; i < 200; i++)
        ck_assert_mp_eq(OK(gsc_cast(C, "f", mp("['n', %d]", i), &r), &r), "nil");
    for (int i = 200; i < 1200; i++)
        ck_assert_int_eq(gsc_notify(C, "cast", mp("['f', ['n', %d]]", i)), 0);
    const msgpack_object *casts = CALL(C, "f", mp("'casts'"));
    ck_assert_uint_eq(casts->via.array.size, 1200);
    for (int i = 0; i < 1200; i++)
        ck_assert_mp_eq(mp_item(casts, (uint32_t)i), "['n', %d]", i);
}
END_TEST

START_TEST(notification_casts_then_call_see_all)
{
    START(C, "counter", "c", NULL);
    for (int i = 0; i < 20000; i++)
        ck_assert_int_eq(gsc_notify(C, "cast", mp("['c', 'increment']")), 0);
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "20000");
}
END_TEST

START_TEST(sends_reach_handle_info_in_order)
{
    probe("p", NULL);
    for (int i = 0; i < 300; i++)
        ck_assert_int_eq(gsc_notify(C, "send", mp("['p', %d]", i)), 0);
    const msgpack_object *infos = CALL(C, "p", mp("'infos'"));
    ck_assert_uint_eq(infos->via.array.size, 300);
    for (int i = 0; i < 300; i++)
        ck_assert_mp_eq(mp_item(infos, (uint32_t)i), "%d", i);
}
END_TEST

/* Calls in one read are handled as they arrive when their server is idle,
 * after what it has queued otherwise: each sees exactly the casts before it. */
START_TEST(calls_between_casts_in_one_write_see_the_casts_before_them)
{
    struct raw *a = RAW_CONNECT(D);
    struct gsp_buf b = {0};
    msgpack_packer pk;
    enum { N = 600 };
    START(C, "counter", "c", NULL);
    gsp_packer_init(&pk, &b);
    for (uint32_t i = 1; i <= N; i++) {
        gsp_pack_notify(&pk, "cast", 2);
        gsp_pack_str(&pk, "c");
        gsp_pack_str(&pk, "increment");
        gsp_pack_request(&pk, i, "call", 3);
        gsp_pack_str(&pk, "c");
        gsp_pack_str(&pk, "get");
        msgpack_pack_nil(&pk);
    }
    RAW_WRITE(a, b.data, b.len);
    gsp_buf_free(&b);
    for (uint32_t i = 1; i <= N; i++)
        ck_assert_mp_eq(RAW_RECV(a, 5000), "[1, %u, nil, %u]", (uint64_t)i, (uint64_t)i);
    raw_close(&a);
}
END_TEST

START_TEST(pipelined_requests_all_answered_by_msgid)
{
    struct raw *a = RAW_CONNECT(D);
    struct gsp_buf b = {0};
    msgpack_packer pk;
    enum { N = 400 };
    bool seen[N + 1] = {false};
    probe("p", NULL);
    gsp_packer_init(&pk, &b);
    for (uint32_t i = 1; i <= N; i++) {
        if (i % 2) {
            gsp_pack_request(&pk, i, "ping", 0);
        } else {
            gsp_pack_request(&pk, i, "call", 3);
            gsp_pack_str(&pk, "p");
            msgpack_pack_array(&pk, 2);
            gsp_pack_str(&pk, "echo");
            msgpack_pack_uint32(&pk, i);
            msgpack_pack_nil(&pk);
        }
    }
    RAW_WRITE(a, b.data, b.len); /* all at once, before reading anything */
    gsp_buf_free(&b);
    for (int k = 0; k < N; k++) {
        const msgpack_object *m = RAW_RECV(a, 5000);
        uint32_t id = (uint32_t)MP_INT(mp_item(m, 1));
        ck_assert_msg(id >= 1 && id <= N && !seen[id], "unexpected %s", mp_str(m));
        seen[id] = true;
        if (id % 2)
            ck_assert_mp_eq(m, "[1, %u, nil, 'pong']", (uint64_t)id);
        else
            ck_assert_mp_eq(m, "[1, %u, nil, %u]", (uint64_t)id, (uint64_t)id);
    }
    raw_close(&a);
}
END_TEST

/* A call handled in the read that brought it first handles what is queued
 * before it: here a stop that ends the server under the call. */
START_TEST(call_behind_a_stop_in_the_same_read_gets_exit)
{
    struct raw *a = RAW_CONNECT(D);
    struct gsp_buf b = {0};
    msgpack_packer pk;
    START(C, "counter", "c", NULL);
    gsp_packer_init(&pk, &b);
    gsp_pack_request(&pk, 1, "stop", 3);
    gsp_pack_str(&pk, "c");
    gsp_pack_str(&pk, "bye");
    msgpack_pack_nil(&pk);
    gsp_pack_request(&pk, 2, "call", 3);
    gsp_pack_str(&pk, "c");
    gsp_pack_str(&pk, "get");
    msgpack_pack_nil(&pk);
    RAW_WRITE(a, b.data, b.len); /* one write: one read */
    gsp_buf_free(&b);
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 1, nil, nil]");
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 2, ['exit', 'bye'], nil]");
    ck_assert(!registered("c"));
    raw_ping_ok(a, 3);
    raw_close(&a);
}
END_TEST

START_TEST(slow_call_does_not_hold_up_a_ping)
{
    struct raw *a = RAW_CONNECT(D);
    probe("p", NULL);
    int64_t t0 = now_ms();
    RAW_REQUEST(a, 1, "call", mp("['p', ['reply_after', 800, 'slow'], nil]"));
    RAW_REQUEST(a, 2, "ping", mp("[]"));
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 2, nil, 'pong']");
    ck_assert_int_lt(now_ms() - t0, 600);
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 1, nil, 'slow']");
    raw_close(&a);
}
END_TEST

START_TEST(a_message_split_across_writes_is_framed)
{
    struct raw *a = RAW_CONNECT(D);
    struct gsp_buf b = {0};
    msgpack_packer pk;
    gsp_packer_init(&pk, &b);
    gsp_pack_request(&pk, 9, "ping", 0);
    gsp_pack_request(&pk, 10, "ping", 0);
    for (size_t i = 0; i < b.len; i++) {
        RAW_WRITE(a, b.data + i, 1);
        sleep_ms(5);
    }
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 9, nil, 'pong']");
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 10, nil, 'pong']");
    gsp_buf_free(&b);
    raw_close(&a);
}
END_TEST

/* ============================= bad input ======================================= */

START_TEST(request_of_two_elements_gets_badarg_response)
{
    struct raw *a = RAW_CONNECT(D);
    RAW_WRITE(a, "\x92\x00\x05", 3); /* [0, 5] */
    const msgpack_object *m = RAW_RECV(a, 3000);
    ck_assert_mp_eq(&m->via.array.ptr[0], "1");
    ck_assert_mp_eq(&m->via.array.ptr[1], "5");
    ck_assert_mp_eq(&m->via.array.ptr[2].via.array.ptr[0], "'badarg'");
    RAW_REQUEST(a, 6, "ping", mp("[]"));
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 6, nil, 'pong']");
    raw_close(&a);
}
END_TEST

/* A name is compared as bytes by clients but used as a C string inside:
 * NUL would let two servers share a name, so it is refused. */
START_TEST(name_with_nul_is_badarg)
{
    struct raw *a = RAW_CONNECT(D);
    struct gsp_buf b = {0};
    msgpack_packer pk;
    gsp_packer_init(&pk, &b);
    gsp_pack_request(&pk, 1, "start", 4);
    gsp_pack_str(&pk, "counter");
    gsp_pack_strn(&pk, "a\0b", 3);
    msgpack_pack_nil(&pk);
    msgpack_pack_nil(&pk);
    RAW_WRITE(a, b.data, b.len);
    const msgpack_object *m = RAW_RECV(a, 3000);
    ck_assert_mp_eq(&m->via.array.ptr[2].via.array.ptr[0], "'badarg'");
    gsp_buf_free(&b);
    raw_close(&a);
}
END_TEST

START_TEST(not_an_array_gets_error_notification_and_stays_open)
{
    struct raw *a = RAW_CONNECT(D);
    const uint8_t five[] = {0x05};
    RAW_WRITE(a, five, 1);
    CK_ERR_NOTE(RAW_RECV(a, 3000), "badarg");
    raw_ping_ok(a, 1);
    raw_close(&a);
}
END_TEST

START_TEST(wrong_length_request_gets_badarg_and_stays_open)
{
    struct raw *a = RAW_CONNECT(D);
    size_t len;
    uint8_t *bytes = gsp_encode(mp("[0, 7, 'ping']"), &len);
    RAW_WRITE(a, bytes, len);
    free(bytes);
    CK_ERR_RESP(RAW_RECV(a, 3000), 7, "badarg");
    raw_ping_ok(a, 8);
    raw_close(&a);
}
END_TEST

START_TEST(wrong_types_get_badarg_and_stay_open)
{
    struct raw *a = RAW_CONNECT(D);
    const char *bad[] = {"[0, 11, 5, []]", "[0, 12, 'ping', 'x']", "[0, 13, 'ping', {}]"};
    for (int i = 0; i < 3; i++) {
        size_t len;
        uint8_t *bytes = gsp_encode(mp(bad[i]), &len);
        RAW_WRITE(a, bytes, len);
        free(bytes);
        CK_ERR_RESP(RAW_RECV(a, 3000), 11 + i, "badarg");
    }
    raw_ping_ok(a, 20);
    raw_close(&a);
}
END_TEST

START_TEST(unknown_message_type_gets_badarg_and_stays_open)
{
    struct raw *a = RAW_CONNECT(D);
    size_t len;
    uint8_t *bytes = gsp_encode(mp("[7, 30, 'ping', []]"), &len);
    RAW_WRITE(a, bytes, len);
    free(bytes);
    const msgpack_object *m = RAW_RECV(a, 3000);
    if (mp_eq(mp_item(m, 0), "2"))
        CK_ERR_NOTE(m, "badarg");
    else
        CK_ERR_RESP(m, 30, "badarg");
    raw_ping_ok(a, 31);
    raw_close(&a);
}
END_TEST

START_TEST(bin_method_is_accepted)
{
    struct raw *a = RAW_CONNECT(D);
    size_t len;
    uint8_t *bytes = gsp_encode(mp("[0, 40, b'ping', []]"), &len);
    RAW_WRITE(a, bytes, len);
    free(bytes);
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 40, nil, 'pong']");
    raw_close(&a);
}
END_TEST

START_TEST(unknown_method_notification_gets_nothing)
{
    struct raw *a = RAW_CONNECT(D);
    RAW_NOTIFY(a, "frobnicate", mp("[1]"));
    RAW_NOTIFY(a, "ping", mp("[]"));
    raw_ping_ok(a, 50);
    raw_close(&a);
}
END_TEST

START_TEST(invalid_msgpack_gets_protocol_error_then_close)
{
    struct raw *a = RAW_CONNECT(D);
    const uint8_t bad[] = {0x93, 0x00, 0xc1};
    RAW_WRITE(a, bad, sizeof bad);
    CK_ERR_NOTE(RAW_RECV(a, 3000), "protocol");
    ck_assert(raw_eof(a, 3000));
    raw_close(&a);
}
END_TEST

START_TEST(huge_array_header_gets_too_large_then_close)
{
    struct raw *a = RAW_CONNECT(D);
    const uint8_t hdr[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    RAW_WRITE(a, hdr, sizeof hdr); /* five bytes and nothing more */
    CK_ERR_NOTE(RAW_RECV(a, 3000), "too_large");
    ck_assert(raw_eof(a, 3000));
    raw_close(&a);
}
END_TEST

START_TEST(huge_str_header_inside_request_gets_too_large_then_close)
{
    struct raw *a = RAW_CONNECT(D);
    const uint8_t msg[] = {0x94, 0x00, 0x01, 0xa4, 'c',  'a',  'l',  'l',
                           0x93, 0xa1, 'p',  0xdb, 0xff, 0xff, 0xff, 0xf0};
    RAW_WRITE(a, msg, sizeof msg);
    CK_ERR_NOTE(RAW_RECV(a, 3000), "too_large");
    ck_assert(raw_eof(a, 3000));
    raw_close(&a);
}
END_TEST

START_TEST(nesting_over_32_gets_too_large_then_close)
{
    struct raw *a = RAW_CONNECT(D);
    uint8_t msg[64];
    size_t n = 0;
    const uint8_t head[] = {0x94, 0x00, 0x01, 0xa4, 'p', 'i', 'n', 'g'};
    memcpy(msg, head, sizeof head);
    n = sizeof head;
    for (int i = 0; i < 32; i++) /* params plus 31 more: depth 33 */
        msg[n++] = 0x91;
    msg[n++] = 0xc0;
    RAW_WRITE(a, msg, n);
    CK_ERR_NOTE(RAW_RECV(a, 3000), "too_large");
    ck_assert(raw_eof(a, 3000));
    raw_close(&a);
}
END_TEST

START_TEST(nesting_of_32_is_accepted)
{
    struct raw *a = RAW_CONNECT(D);
    uint8_t msg[64];
    size_t n = 0;
    const uint8_t head[] = {0x94, 0x00, 0x01, 0xa4, 'p', 'i', 'n', 'g'};
    memcpy(msg, head, sizeof head);
    n = sizeof head;
    for (int i = 0; i < 31; i++) /* params plus 29 more: depth 32 */
        msg[n++] = 0x91;
    msg[n++] = 0xc0;
    RAW_WRITE(a, msg, n);
    const msgpack_object *m = RAW_RECV(a, 3000);
    ck_assert_mp_eq(mp_item(m, 0), "1");
    ck_assert_mp_eq(mp_item(m, 1), "1");
    raw_ping_ok(a, 2);
    raw_close(&a);
}
END_TEST

START_TEST(bad_input_does_not_disturb_others)
{
    START(C, "counter", "c", mp("3"));
    for (int i = 0; i < 5; i++) {
        struct raw *a = RAW_CONNECT(D);
        const uint8_t bad[] = {0xc1};
        RAW_WRITE(a, bad, 1);
        raw_close(&a);
    }
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "3");
    gsc *c2 = CLIENT(D);
    ck_assert_mp_eq(CALL(c2, "c", mp("'increment'")), "4");
    client_close(&c2);
}
END_TEST

/* A client that shuts only its sending side still reads its answers. */
START_TEST(half_closed_client_still_gets_its_answers)
{
    probe("p", NULL);
    struct raw *a = RAW_CONNECT(D);
    RAW_REQUEST(a, 1, "call", mp("['p', ['reply_after', 300, 'late'], nil]"));
    RAW_REQUEST(a, 2, "ping", mp("[]"));
    shutdown(a->fd, SHUT_WR);
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 2, nil, 'pong']");
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 1, nil, 'late']");
    ck_assert(raw_eof(a, 3000)); /* then the daemon closes */
    raw_close(&a);
}
END_TEST

/* One that half-closes and then goes away while its call waits forever is
 * noticed: its caller is gone and the servers it linked stop. */
START_TEST(half_closed_client_that_goes_away_is_reaped)
{
    struct raw *a = RAW_CONNECT(D);
    RAW_REQUEST(a, 1, "start", mp("['forms', 'f', nil, {'link': true}]"));
    RAW_RECV(a, 3000);
    RAW_REQUEST(a, 2, "call", mp("['f', 'noreply', 'infinity']")); /* kept, never answered */
    sleep_ms(100);
    shutdown(a->fd, SHUT_WR);
    sleep_ms(100);
    raw_close(&a);
    ck_assert(WAIT_UNTIL(3000, !registered("f"))); /* linked: stopped with the connection */
}
END_TEST

START_TEST(disconnect_with_calls_pending_keeps_serving_others)
{
    struct raw *a = RAW_CONNECT(D);
    probe("p", NULL);
    forms("f", NULL);
    RAW_REQUEST(a, 1, "call", mp("['p', ['reply_after', 300, 'x'], nil]"));
    RAW_REQUEST(a, 2, "call", mp("['f', 'noreply', 'infinity']"));
    RAW_REQUEST(a, 3, "ping", mp("[]"));
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 3, nil, 'pong']");
    raw_close(&a);
    ck_assert_mp_eq(CALL(C, "p", mp("['echo', 1]")), "1");
    sleep_ms(500); /* the reply_after fires for a caller that has gone */
    ck_assert_mp_eq(CALL(C, "p", mp("['echo', 2]")), "2");
    ck_assert_mp_eq(CALL(C, "f", mp("['release', 'nobody']")), "-1");
    ck_assert(gsd_alive(D));
}
END_TEST

START_TEST(a_client_that_never_reads_does_not_stall_others)
{
    struct raw *a = RAW_CONNECT(D);
    struct gsp_buf b = {0};
    msgpack_packer pk;
    size_t sent = 0;
    gsp_packer_init(&pk, &b);
    for (uint32_t i = 0; i < 100000; i++) /* ~0.8 MB of pings, 1.5 MB of pongs */
        gsp_pack_request(&pk, i, "ping", 0);
    /* Write what the daemon takes without blocking, and never read. */
    int64_t end = now_ms() + 2000;
    while (sent < b.len && now_ms() < end) {
        ssize_t k = send(a->fd, b.data + sent, b.len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k > 0)
            sent += (size_t)k;
        else
            sleep_ms(10);
    }
    gsp_buf_free(&b);
    gsc_reply *r;
    ck_assert_mp_eq(OK(gsc_ping(C, &r), &r), "'pong'");
    START(C, "counter", "c", NULL);
    ck_assert_mp_eq(CALL(C, "c", mp("'increment'")), "1");
    raw_close(&a);
    ck_assert_mp_eq(OK(gsc_ping(C, &r), &r), "'pong'");
}
END_TEST

/* ============================== shutdown ======================================= */

START_TEST(sigterm_terminates_every_server_with_shutdown)
{
    probe("p1", "p1.log");
    START(C, "probe", NULL, mp("{'terminate_log': %s}", path("p2.log")));
    forms("f", "f.log");
    START(C, "counter", "c", NULL);
    ck_assert_int_eq(gsd_wait_exit(D, SIGTERM, 5000), 0);
    ck_assert_str_eq(tlog("p1.log"), "\"shutdown\"\n");
    ck_assert_str_eq(tlog("p2.log"), "\"shutdown\"\n");
    ck_assert_str_eq(tlog("f.log"), "\"shutdown\"\n");
    ck_assert_msg(access(D->sock, F_OK) != 0, "the socket file is still there");
}
END_TEST

START_TEST(sigint_shuts_down_like_sigterm)
{
    probe("p", "p.log");
    ck_assert_int_eq(gsd_wait_exit(D, SIGINT, 5000), 0);
    ck_assert_str_eq(tlog("p.log"), "\"shutdown\"\n");
    ck_assert_msg(access(D->sock, F_OK) != 0, "the socket file is still there");
}
END_TEST

START_TEST(shutdown_answers_waiting_callers_exit_shutdown)
{
    struct raw *a = RAW_CONNECT(D);
    probe("p", NULL);
    RAW_REQUEST(a, 1, "call", mp("['p', ['reply_after', 10000, 'x'], 'infinity']"));
    sleep_ms(100);
    kill(D->pid, SIGTERM);
    ck_assert_mp_eq(RAW_RECV(a, 5000), "[1, 1, ['exit', 'shutdown'], nil]");
    ck_assert(raw_eof(a, 5000));
    ck_assert_int_eq(gsd_wait_exit(D, 0, 5000), 0);
    raw_close(&a);
}
END_TEST

START_TEST(shutdown_sends_down_to_monitors)
{
    struct raw *a = RAW_CONNECT(D);
    uint64_t id = probe("p", NULL);
    RAW_REQUEST(a, 1, "monitor", mp("['p']"));
    const msgpack_object *m = RAW_RECV(a, 3000);
    int64_t ref = MP_INT(mp_item(m, 3));
    kill(D->pid, SIGTERM);
    ck_assert_mp_eq(RAW_RECV(a, 5000), "[2, 'down', [%l, %u, 'p', 'shutdown']]", ref, id);
    ck_assert_int_eq(gsd_wait_exit(D, 0, 5000), 0);
    raw_close(&a);
}
END_TEST

static Suite *e2e_suite(void)
{
    Suite *s = suite_create("e2e");
    TCase *tc;

    tc = tcase_create("methods");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, ping_answers_pong);
    tcase_add_test(tc, version_has_protocol_1_and_version_string);
    tcase_add_test(tc, start_returns_id_and_registers_name);
    tcase_add_test(tc, start_args_reach_init);
    tcase_add_test(tc, start_anonymous_has_nil_name);
    tcase_add_test(tc, ids_are_never_reused);
    tcase_add_test(tc, start_name_in_use_already_started_with_existing_id);
    tcase_add_test(tc, start_unknown_module_is_module_error);
    tcase_add_test(tc, start_wrong_abi_is_module_error);
    tcase_add_test(tc, start_module_without_init_is_module_error);
    tcase_add_test(tc, start_module_path_is_refused);
    tcase_add_test(tc, start_all_digit_name_is_badarg);
    tcase_add_test(tc, start_bad_names_are_badarg);
    tcase_add_test(tc, start_bad_param_types_are_badarg);
    tcase_add_test(tc, start_unknown_option_is_badarg_naming_it);
    tcase_add_test(tc, params_of_the_wrong_length_are_badarg);
    tcase_add_test(tc, start_init_stop_is_init_stop_with_reason);
    tcase_add_test(tc, start_init_ignore_is_ignore);
    tcase_add_test(tc, start_init_bad_return_fails_start);
    tcase_add_test(tc, start_option_timeout_exceeded_is_timeout);
    tcase_add_test(tc, start_option_timeout_long_enough_starts);
    tcase_add_test(tc, start_replies_after_init_returned);
    tcase_add_test(tc, start_options_accepted);
    tcase_add_test(tc, start_link_stops_server_with_shutdown_when_connection_closes);
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
    tcase_add_test(tc, stop_nil_reason_is_normal_and_answers_after_terminate);
    tcase_add_test(tc, stop_with_reason_and_timeout);
    tcase_add_test(tc, stop_unknown_server_is_noproc);
    tcase_add_test(tc, stop_is_ordered_after_the_mailbox);
    tcase_add_test(tc, whereis_unknown_is_nil);
    tcase_add_test(tc, which_lists_every_server);
    tcase_add_test(tc, info_has_the_contract_fields);
    tcase_add_test(tc, info_unknown_server_is_noproc);
    tcase_add_test(tc, info_counts_the_backlog_and_slow_callbacks);
    tcase_add_test(tc, get_state_shows_format_state);
    tcase_add_test(tc, get_state_without_format_state_is_unsupported);
    tcase_add_test(tc, get_state_unknown_server_is_noproc);
    tcase_add_test(tc, modules_lists_loaded_modules);
    tcase_add_test(tc, load_answers_name_and_vsn);
    tcase_add_test(tc, load_unknown_module_is_module_error);
    tcase_add_test(tc, load_wrong_abi_is_module_error);
    tcase_add_test(tc, load_path_is_refused);
    tcase_add_test(tc, monitor_down_when_server_stops);
    tcase_add_test(tc, monitor_down_when_callback_stops);
    tcase_add_test(tc, monitor_of_unknown_name_downs_at_once_with_noproc);
    tcase_add_test(tc, monitor_of_unknown_name_wire_down);
    tcase_add_test(tc, monitor_of_dead_id_downs_at_once_with_noproc);
    tcase_add_test(tc, demonitor_answers_nil_and_no_down_follows);
    tcase_add_test(tc, down_goes_only_to_the_monitoring_connection);
    tcase_add_test(tc, unknown_method_is_unknown_method);
    tcase_add_test(tc, non_admin_peer_may_call_but_not_change_what_runs);
    suite_add_tcase(s, tc);

    tc = tcase_create("callbacks");
    tcase_add_checked_fixture(tc, setup, teardown);
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
    tcase_add_test(tc, init_ok_timeout_sends_timeout);
    tcase_add_test(tc, init_ok_hibernate_hibernates);
    tcase_add_test(tc, terminate_runs_exactly_once);
    tcase_add_test(tc, terminate_may_answer_a_kept_caller);
    tcase_add_test(tc, stop_reply_answers_once_and_before_the_down);
    tcase_add_test(tc, gs_reply_to_answers_only_calls_to_this_server);
    tcase_add_test(tc, module_values_over_the_depth_limit_are_refused);
    tcase_add_test(tc, waiting_callers_get_exit_with_the_stop_reason);
    tcase_add_test(tc, from_deadline_of_explicit_timeout);
    tcase_add_test(tc, from_deadline_of_default_timeout);
    tcase_add_test(tc, from_deadline_of_infinity);
    tcase_add_test(tc, from_waiting_true_while_caller_waits);
    tcase_add_test(tc, from_waiting_false_after_caller_timed_out);
    tcase_add_test(tc, from_waiting_false_after_caller_disconnected);
    tcase_add_test(tc, timer_delivers_to_handle_info);
    tcase_add_test(tc, timer_cancel_prevents_delivery);
    tcase_add_test(tc, timers_end_with_their_server);
    tcase_add_test(tc, gs_cast_reaches_servers_by_name_and_id);
    tcase_add_test(tc, gs_send_reaches_handle_info_by_name_and_id);
    tcase_add_test(tc, gs_send_to_self);
    tcase_add_test(tc, gs_call_reply_arrives_in_handle_info);
    tcase_add_test(tc, gs_call_to_unknown_server_answers_noproc);
    tcase_add_test(tc, gs_call_timeout_answers_timeout);
    tcase_add_test(tc, gs_call_to_stopping_server_answers_exit);
    tcase_add_test(tc, gs_monitor_down_arrives_in_handle_info);
    tcase_add_test(tc, gs_monitor_of_unknown_server_downs_with_noproc);
    tcase_add_test(tc, gs_demonitor_stops_the_down);
    tcase_add_test(tc, gs_self_and_self_name);
    tcase_add_test(tc, minimal_call_exits_undef_handle_call);
    tcase_add_test(tc, minimal_cast_exits_undef_handle_cast);
    tcase_add_test(tc, minimal_info_is_ignored);
    suite_add_tcase(s, tc);

    tc = tcase_create("reference_modules");
    tcase_add_checked_fixture(tc, setup, teardown);
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

    tc = tcase_create("order");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, casts_then_call_see_every_cast_in_order);
    tcase_add_test(tc, notification_casts_then_call_see_all);
    tcase_add_test(tc, sends_reach_handle_info_in_order);
    tcase_add_test(tc, calls_between_casts_in_one_write_see_the_casts_before_them);
    tcase_add_test(tc, pipelined_requests_all_answered_by_msgid);
    tcase_add_test(tc, call_behind_a_stop_in_the_same_read_gets_exit);
    tcase_add_test(tc, slow_call_does_not_hold_up_a_ping);
    tcase_add_test(tc, a_message_split_across_writes_is_framed);
    suite_add_tcase(s, tc);

    tc = tcase_create("bad_input");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, not_an_array_gets_error_notification_and_stays_open);
    tcase_add_test(tc, request_of_two_elements_gets_badarg_response);
    tcase_add_test(tc, name_with_nul_is_badarg);
    tcase_add_test(tc, wrong_length_request_gets_badarg_and_stays_open);
    tcase_add_test(tc, wrong_types_get_badarg_and_stay_open);
    tcase_add_test(tc, unknown_message_type_gets_badarg_and_stays_open);
    tcase_add_test(tc, bin_method_is_accepted);
    tcase_add_test(tc, unknown_method_notification_gets_nothing);
    tcase_add_test(tc, invalid_msgpack_gets_protocol_error_then_close);
    tcase_add_test(tc, huge_array_header_gets_too_large_then_close);
    tcase_add_test(tc, huge_str_header_inside_request_gets_too_large_then_close);
    tcase_add_test(tc, nesting_over_32_gets_too_large_then_close);
    tcase_add_test(tc, nesting_of_32_is_accepted);
    tcase_add_test(tc, bad_input_does_not_disturb_others);
    tcase_add_test(tc, disconnect_with_calls_pending_keeps_serving_others);
    tcase_add_test(tc, half_closed_client_still_gets_its_answers);
    tcase_add_test(tc, half_closed_client_that_goes_away_is_reaped);
    tcase_add_test(tc, a_client_that_never_reads_does_not_stall_others);
    suite_add_tcase(s, tc);

    tc = tcase_create("shutdown");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, sigterm_terminates_every_server_with_shutdown);
    tcase_add_test(tc, sigint_shuts_down_like_sigterm);
    tcase_add_test(tc, shutdown_answers_waiting_callers_exit_shutdown);
    tcase_add_test(tc, shutdown_sends_down_to_monitors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(e2e_suite());
}
