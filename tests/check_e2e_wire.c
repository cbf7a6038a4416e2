/*
 * check_e2e_wire.c — the connection end to end, spoken to byte by byte:
 * order and pipelining, framing, bad input (answered or closed, never
 * disturbing others), half-closed, vanished and stalled clients.
 *
 * Each test starts its own daemon (e2e.h) and checks at the end that it
 * still exits 0 on SIGTERM.
 */
#include "e2e.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* ========================== order and pipelining ========================== */

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
/* [0, 1, "stop", ["c", "bye", nil]], [0, 2, "call", ["c", "get", nil]]
 * packed into b through pk, for one write. */
static void pack_stop_then_call(msgpack_packer *pk, struct gsp_buf *b)
{
    gsp_packer_init(pk, b);
    gsp_pack_request(pk, 1, "stop", 3);
    gsp_pack_str(pk, "c");
    gsp_pack_str(pk, "bye");
    msgpack_pack_nil(pk);
    gsp_pack_request(pk, 2, "call", 3);
    gsp_pack_str(pk, "c");
    gsp_pack_str(pk, "get");
    msgpack_pack_nil(pk);
}

/* The answer to a call written right behind a stop: exit if the call got
 * to the server before it ended (behind the stop, in its mailbox), noproc
 * if the stop was handled first (a slow machine, valgrind, cuts a
 * connection's round short between the two, and a turn runs between). */
static void assert_exit_or_noproc(const msgpack_object *m)
{
    ck_assert_msg(mp_eq(m, "[1, 2, ['exit', 'bye'], nil]") ||
                      mp_eq(m, "[1, 2, ['noproc', 'no such server'], nil]"),
                  "the call behind the stop got %s", mp_str(m));
}

START_TEST(call_behind_a_stop_in_the_same_write_gets_exit_or_noproc)
{
    struct raw *a = RAW_CONNECT(D);
    struct gsp_buf b = {0};
    msgpack_packer pk;
    START(C, "counter", "c", NULL);
    pack_stop_then_call(&pk, &b);
    RAW_WRITE(a, b.data, b.len); /* one write: one read */
    gsp_buf_free(&b);
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 1, nil, nil]");
    assert_exit_or_noproc(RAW_RECV(a, 3000));
    ck_assert(!registered("c"));
    raw_ping_ok(a, 3);
    raw_close(&a);
}
END_TEST

/* An ended server is freed only once the loop gets control back, and its
 * code stays loaded until then: a reload in the same read as the stop
 * that ended the last server of a module must not unload the code under
 * it (the fuzzer found it). */
START_TEST(reload_behind_a_stop_in_the_same_read_keeps_the_code_until_freed)
{
    if (isolated_run()) /* the stop then waits for terminate in the worker: another order */
        return;
    struct raw *a = RAW_CONNECT(D);
    struct gsp_buf b = {0};
    msgpack_packer pk;
    START(C, "counter", "c", NULL);
    pack_stop_then_call(&pk, &b);
    gsp_pack_request(&pk, 3, "reload", 1);
    gsp_pack_str(&pk, "counter");
    RAW_WRITE(a, b.data, b.len); /* one write: one read */
    gsp_buf_free(&b);
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 1, nil, nil]");
    assert_exit_or_noproc(RAW_RECV(a, 3000));
    const msgpack_object *m = RAW_RECV(a, 3000);
    ck_assert_mp_eq(mp_item(m, 1), "3");
    ck_assert_mp_eq(mp_item(m, 2), "nil");
    raw_ping_ok(a, 4);
    START(C, "counter", "c", mp("5"));
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "5");
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

/* ======================= bad input and odd clients ======================== */

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

/* Only modules make atoms (gs_atom): a client's ext of type 0x16 is
 * refused, as a request or a notification, and the connection serves on;
 * the tuple marker (0x17) goes through. */
START_TEST(atoms_from_clients_are_badarg)
{
    forms("f", NULL);
    struct raw *a = RAW_CONNECT(D);
    static const char atom_call[] = "\x94\x00\x01\xa4"
                                    "call\x93\xa1"
                                    "f\xd4\x16x\xc0";
    static const char atom_cast[] = "\x93\x02\xa4"
                                    "cast\x92\xa1"
                                    "f\xc7\x03\x16"
                                    "abc";
    static const char tuple_cast[] = "\x94\x00\x02\xa4"
                                     "cast\x92\xa1"
                                     "f\x92\xd4\x17\x00\x01";
    RAW_WRITE(a, atom_call, sizeof atom_call - 1);
    const msgpack_object *m = RAW_RECV(a, 3000);
    CK_ERR_RESP(m, 1, "badarg");
    ck_assert_ptr_nonnull(strstr(mp_str(m), "only a module makes"));
    RAW_WRITE(a, atom_cast, sizeof atom_cast - 1);
    CK_ERR_NOTE(RAW_RECV(a, 3000), "badarg");
    RAW_WRITE(a, tuple_cast, sizeof tuple_cast - 1);
    ck_assert_mp_eq(RAW_RECV(a, 3000), "[1, 2, nil, nil]");
    const msgpack_object *casts = CALL(C, "f", mp("'casts'")); /* the tuple's cast alone */
    ck_assert_uint_eq(casts->via.array.size, 1);
    ck_assert_int_eq(mp_item(mp_item(casts, 0), 0)->type, MSGPACK_OBJECT_EXT);
    ck_assert_int_eq(mp_item(mp_item(casts, 0), 0)->via.ext.type, 0x17);
    raw_ping_ok(a, 3);
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

/* ============================ memory bounded ============================= */

/* Each item of a message decodes into a 24-byte object: 3,000,000 nils, 3 MB
 * under the 16 MiB size limit, would take 72 MB once decoded. */
START_TEST(a_message_of_too_many_items_gets_too_large_then_close)
{
    enum { N = 3000000 };
    struct gsp_buf b = {0};
    msgpack_packer pk;
    forms("f", NULL);
    gsp_packer_init(&pk, &b);
    gsp_pack_notify(&pk, "cast", 2);
    gsp_pack_str(&pk, "f");
    msgpack_pack_array(&pk, N);
    /* Refused from the array's header, before any of its items arrive. */
    struct raw *a = RAW_CONNECT(D);
    RAW_WRITE(a, b.data, b.len);
    CK_ERR_NOTE(RAW_RECV(a, 3000), "too_large");
    ck_assert(raw_eof(a, 3000));
    raw_close(&a);
    /* Counted over the whole message: [[nil × N/2], [nil × N/2]] is refused
     * at the second header, its first N/2 items read. */
    b.len = 0;
    gsp_pack_notify(&pk, "cast", 2);
    gsp_pack_str(&pk, "f");
    msgpack_pack_array(&pk, 2);
    msgpack_pack_array(&pk, N / 2);
    gsp_buf_reserve(&b, N / 2);
    memset(b.data + b.len, 0xc0, N / 2);
    b.len += N / 2;
    msgpack_pack_array(&pk, N / 2);
    a = RAW_CONNECT(D);
    RAW_WRITE(a, b.data, b.len);
    CK_ERR_NOTE(RAW_RECV(a, 5000), "too_large");
    ck_assert(raw_eof(a, 3000));
    raw_close(&a);
    gsp_buf_free(&b);
    a = RAW_CONNECT(D);
    raw_ping_ok(a, 1);
    raw_close(&a);
    ck_assert_mp_eq(CALL(C, "f", mp("'casts'")), "[]");
}
END_TEST

/* The daemon's resident memory, in KiB. */
static long rss_kib(pid_t pid)
{
    char name[64];
    snprintf(name, sizeof name, "/proc/%d/status", (int)pid);
    const char *status = file_read(name), *at;
    ck_assert_ptr_nonnull(status);
    ck_assert_ptr_nonnull(at = strstr(status, "VmRSS:"));
    return strtol(at + 6, NULL, 10);
}

/* A state of 64 MiB, four times the message limit: get_state answers
 * state_too_large, as for any state over the limits, having packed no more
 * than the limit to find out, and keeping nothing of it. */
START_TEST(get_state_over_the_limits_costs_at_most_the_limit)
{
    gsc_reply *r;
    START(C, "bulky", "big", mp("%d", 64 << 20));
    long before = rss_kib(D->pid);
    ck_assert_mp_eq(OK(gsc_get_state(C, "big", &r), &r), "'state_too_large'");
    ck_assert_mp_eq(OK(gsc_get_state(C, "big", &r), &r), "'state_too_large'");
    long after = rss_kib(D->pid);
    ck_assert_msg(after < before + 32 * 1024, "RSS %ld KiB, %ld KiB before", after, before);
    ck_assert_mp_eq(OK(gsc_ping(C, &r), &r), "'pong'");
}
END_TEST

static Suite *wire_suite(void)
{
    Suite *s = suite_create("e2e_wire");
    TCase *tc;

    tc = tcase_create("order");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, casts_then_call_see_every_cast_in_order);
    tcase_add_test(tc, notification_casts_then_call_see_all);
    tcase_add_test(tc, sends_reach_handle_info_in_order);
    tcase_add_test(tc, calls_between_casts_in_one_write_see_the_casts_before_them);
    tcase_add_test(tc, pipelined_requests_all_answered_by_msgid);
    tcase_add_test(tc, call_behind_a_stop_in_the_same_write_gets_exit_or_noproc);
    tcase_add_test(tc, reload_behind_a_stop_in_the_same_read_keeps_the_code_until_freed);
    tcase_add_test(tc, slow_call_does_not_hold_up_a_ping);
    tcase_add_test(tc, a_message_split_across_writes_is_framed);
    suite_add_tcase(s, tc);

    tc = tcase_create("bad_input");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, not_an_array_gets_error_notification_and_stays_open);
    tcase_add_test(tc, request_of_two_elements_gets_badarg_response);
    tcase_add_test(tc, name_with_nul_is_badarg);
    tcase_add_test(tc, atoms_from_clients_are_badarg);
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

    tc = tcase_create("memory");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, a_message_of_too_many_items_gets_too_large_then_close);
    tcase_add_test(tc, get_state_over_the_limits_costs_at_most_the_limit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(wire_suite());
}
