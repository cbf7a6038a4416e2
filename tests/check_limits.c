/*
 * check_limits.c — every limit of struct limits, reached. The daemon runs
 * in this process (linked with its objects, main.c aside) on a socket in a
 * temporary directory, with small limits set directly; the test is its
 * client through real sockets and turns the loop itself.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "gsd.h"

static char dir[64], sock[108];

/* A server that never answers a call: its callers stay pending. */
static gs_result h_init(gs_server *self, const gs_value *args, void **state)
{
    (void)self, (void)args;
    *state = NULL;
    return gs_ok();
}

static gs_result h_call(gs_server *self, const gs_value *req, gs_from from, void **state)
{
    (void)self, (void)req, (void)from, (void)state;
    return gs_noreply();
}

static const struct gs_api *h_host;
static const gs_module h_desc = {.abi = GS_ABI_VERSION,
                                 .size = sizeof(gs_module),
                                 .api = &h_host,
                                 .name = "hold",
                                 .vsn = 1,
                                 .init = h_init,
                                 .handle_call = h_call};
static struct module h_mod = {.name = "hold", .path = "(test)", .desc = &h_desc, .current = true};

static void setup(void)
{
    log_level = LOG_ERR;
    snprintf(dir, sizeof dir, "/tmp/gsd-limits-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(sock, sizeof sock, "%s/gsd.sock", dir);
    loop_init();
    sched_init();
    ck_assert_int_eq(listen_open(sock), 0);
    *h_desc.api = &gsd_api;
}

static void teardown(void)
{
    listen_close();
    rmdir(dir);
}

/* Runs the loop for ms. */
static void pump(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(loop_base, &tv);
    event_base_dispatch(loop_base);
}

struct cli {
    int fd;
    struct gsp_buf in;
    struct gsp_framer fr;
    msgpack_zone *zone;
};

static struct cli *cli_new(void)
{
    struct cli *c = calloc(1, sizeof *c);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", sock);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ck_assert_int_eq(connect(c->fd, (struct sockaddr *)&sun, sizeof sun), 0);
    c->zone = msgpack_zone_new(4096);
    return c;
}

static void cli_free(struct cli *c)
{
    close(c->fd);
    gsp_buf_free(&c->in);
    msgpack_zone_free(c->zone);
    free(c);
}

/* Writes all of p, turning the loop while the socket is full. */
static void cli_write(struct cli *c, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(c->fd, b, n);
        if (w < 0 && errno == EAGAIN) {
            pump(1);
            continue;
        }
        ck_assert_int_gt(w, 0);
        b += w;
        n -= (size_t)w;
    }
}

/* [0, msgid, method, params]: params are packed by the caller after it. */
static msgpack_packer *begin(struct gsp_buf *b, msgpack_packer *pk, uint32_t msgid,
                             const char *method, uint32_t nparams)
{
    gsp_packer_init(pk, b);
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint32(pk, msgid);
    gsp_pack_str(pk, method);
    msgpack_pack_array(pk, nparams);
    return pk;
}

static void ping(struct cli *c, uint32_t msgid)
{
    struct gsp_buf b = {0};
    msgpack_packer pk;
    begin(&b, &pk, msgid, "ping", 0);
    cli_write(c, b.data, b.len);
    gsp_buf_free(&b);
}

static void call_hold(struct cli *c, uint32_t msgid)
{
    struct gsp_buf b = {0};
    msgpack_packer pk;
    begin(&b, &pk, msgid, "call", 3);
    gsp_pack_str(&pk, "h");
    msgpack_pack_nil(&pk);
    gsp_pack_str(&pk, "infinity");
    cli_write(c, b.data, b.len);
    gsp_buf_free(&b);
}

/* The next message within ms; NULL if none (eof sets *eof). */
static const msgpack_object *cli_recv(struct cli *c, int ms, bool *eof)
{
    if (eof)
        *eof = false;
    for (int t = 0; t <= ms; t += 5) {
        size_t len;
        if (c->in.len && gsp_framer_feed(&c->fr, c->in.data, c->in.len, &limits.message, &len) ==
                             GSP_SCAN_DONE) {
            msgpack_object *o = msgpack_zone_malloc(c->zone, sizeof *o);
            void *copy = msgpack_zone_malloc(c->zone, len);
            memcpy(copy, c->in.data, len);
            gsp_buf_consume(&c->in, len);
            ck_assert_int_eq(msgpack_unpack(copy, len, NULL, c->zone, o), MSGPACK_UNPACK_SUCCESS);
            return o;
        }
        pump(5);
        gsp_buf_reserve(&c->in, 65536);
        ssize_t n = read(c->fd, c->in.data + c->in.len, 65536);
        if (n > 0)
            c->in.len += (size_t)n;
        else if (n == 0 && eof) {
            *eof = true;
            return NULL;
        } else if (n == 0)
            return NULL;
    }
    return NULL;
}

/* True if the message is [2, "error", [code, ...]]. */
static bool is_error_notice(const msgpack_object *o, const char *code)
{
    if (o == NULL || o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 3)
        return false;
    const msgpack_object *p = &o->via.array.ptr[2];
    return gs_is(&o->via.array.ptr[1], "error") && p->type == MSGPACK_OBJECT_ARRAY &&
           p->via.array.size == 2 && gs_is(&p->via.array.ptr[0], code);
}

/* [1, msgid, error, result]: the error's code, or "" for a success. */
static const char *response_code(const msgpack_object *o, uint32_t msgid)
{
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(o->via.array.ptr[0].via.u64, 1);
    ck_assert_int_eq(o->via.array.ptr[1].via.u64, msgid);
    const msgpack_object *e = &o->via.array.ptr[2];
    if (e->type == MSGPACK_OBJECT_NIL)
        return "";
    static char code[32];
    snprintf(code, sizeof code, "%.*s", (int)e->via.array.ptr[0].via.str.size,
             e->via.array.ptr[0].via.str.ptr);
    return code;
}

static void expect_pong(struct cli *c, uint32_t msgid)
{
    ping(c, msgid);
    ck_assert_str_eq(response_code(cli_recv(c, 2000, NULL), msgid), "");
}

static void expect_cut_off(struct cli *c, const char *code)
{
    bool eof;
    const msgpack_object *o = cli_recv(c, 3000, &eof);
    ck_assert_msg(is_error_notice(o, code), "expected the error notification %s", code);
    ck_assert_ptr_null(cli_recv(c, 3000, &eof));
    ck_assert(eof);
}

START_TEST(connections_over_the_limit_are_refused)
{
    setup();
    limits.connections = 3;
    struct cli *a = cli_new(), *b = cli_new(), *c = cli_new();
    pump(20);
    struct cli *d = cli_new();
    expect_cut_off(d, "too_large");
    expect_pong(a, 1);
    expect_pong(c, 1);
    cli_free(b);
    pump(20);
    struct cli *e = cli_new();
    expect_pong(e, 2);
    cli_free(a), cli_free(c), cli_free(d), cli_free(e);
    pump(20);
    ck_assert_uint_eq(conn_count(), 0);
    teardown();
}
END_TEST

START_TEST(pending_requests_over_the_limit_are_refused)
{
    setup();
    limits.pending = 2;
    server_start(&h_mod, "h", 1, "\xc0", 1, -1, 0, NULL, NULL, 0);
    struct cli *a = cli_new(), *b = cli_new();
    call_hold(a, 1);
    call_hold(a, 2);
    call_hold(a, 3);
    ck_assert_str_eq(response_code(cli_recv(a, 2000, NULL), 3), "too_large");
    expect_pong(a, 4); /* the connection stays */
    call_hold(b, 1);   /* the limit is per connection */
    expect_pong(b, 2);
    cli_free(a), cli_free(b);
    pump(20);
    teardown();
}
END_TEST

START_TEST(timers_over_the_limit_fail)
{
    setup();
    limits.timers = 2;
    struct server *s = server_start(&h_mod, "h", 1, "\xc0", 1, -1, 0, NULL, NULL, 0);
    pump(10);
    uint64_t t1 = stimer_start(s, 60000, "\xc0", 1, 0);
    ck_assert_uint_ne(t1, 0);
    ck_assert_uint_ne(stimer_start(s, 60000, "\xc0", 1, 0), 0);
    ck_assert_uint_eq(stimer_start(s, 60000, "\xc0", 1, 0), 0);
    ck_assert_int_eq(stimer_cancel(s, t1), 0);
    ck_assert_uint_ne(stimer_start(s, 60000, "\xc0", 1, 0), 0);
    server_end(s, enc_normal, NULL);
    teardown();
}
END_TEST

/* A bin header for n bytes and `have` of them: an unfinished message. */
static void send_unfinished(struct cli *c, uint32_t n, uint32_t have)
{
    uint8_t *p = calloc(1, 5 + have);
    p[0] = 0xc6;
    p[1] = (uint8_t)(n >> 24), p[2] = (uint8_t)(n >> 16), p[3] = (uint8_t)(n >> 8),
    p[4] = (uint8_t)n;
    cli_write(c, p, 5 + have);
    free(p);
}

START_TEST(unfinished_bytes_over_the_limit_cut_the_sender_off)
{
    setup();
    limits.partial_bytes = 100000;
    struct cli *a = cli_new(), *b = cli_new();
    send_unfinished(a, 200000, 60000);
    pump(20);
    send_unfinished(b, 200000, 60000);
    expect_cut_off(b, "too_large");
    struct cli *c = cli_new();
    expect_pong(c, 1); /* everyone else goes on */
    cli_free(a), cli_free(b), cli_free(c);
    pump(20);
    teardown();
}
END_TEST

START_TEST(a_trickling_sender_is_cut_off)
{
    setup();
    limits.partial_ms = 300;
    struct cli *slow = cli_new(), *steady = cli_new();
    const uint8_t ping_msg[] = {0x94, 0x00, 0x01, 0xa4, 'p', 'i', 'n', 'g', 0x90};
    /* One byte every 50 ms: never finished in time. Meanwhile another
     * client sends whole messages as slowly, and is served. */
    unsigned i;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; i < 40 && write(slow->fd, &ping_msg[i % 4], 1) == 1; i++) {
        ping(steady, i);
        ck_assert_str_eq(response_code(cli_recv(steady, 2000, NULL), i), "");
        pump(50);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ck_assert_uint_lt(i, 40);
    /* not long before its 300 ms (the loop's clock is cached per turn) */
    ck_assert_int_ge((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000, 200);
    expect_cut_off(slow, "timeout");
    cli_free(slow), cli_free(steady);
    pump(20);
    teardown();
}
END_TEST

/* Pings from c, which never reads their answers, while the test's two
 * clients are both connected (the daemon has not cut c off), up to max
 * bytes written; turns the loop every 256 pings and whenever c's socket
 * is full. */
static void ping_until_cut(struct cli *c, size_t max)
{
    struct gsp_buf b = {0};
    msgpack_packer pk;
    size_t sent = 0;
    for (uint32_t i = 0; sent < max && conn_count() == 2; i++) {
        b.len = 0;
        begin(&b, &pk, i, "ping", 0);
        ssize_t w = write(c->fd, b.data, b.len);
        if (w < 0 && errno == EPIPE)
            break;
        if (w > 0)
            sent += (size_t)w;
        if (w < 0 || i % 256 == 0)
            pump(1);
    }
    gsp_buf_free(&b);
}

START_TEST(a_client_that_does_not_read_is_cut_off)
{
    setup();
    limits.output_bytes = 256 << 10;
    struct cli *lazy = cli_new(), *other = cli_new();
    int small = 4096;
    setsockopt(lazy->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    pump(20);
    ck_assert_uint_eq(conn_count(), 2);
    ping_until_cut(lazy, 64u << 20); /* far more than the limit */
    pump(50);
    ck_assert_uint_eq(conn_count(), 1); /* cut off */
    expect_pong(other, 1);
    cli_free(lazy), cli_free(other);
    pump(20);
    teardown();
}
END_TEST

/* n monitors of h from c, in one write, msgids from first. */
static void monitor_h(struct cli *c, uint32_t first, uint32_t n)
{
    struct gsp_buf b = {0};
    msgpack_packer pk;
    for (uint32_t i = 0; i < n; i++) {
        size_t at = b.len;
        struct gsp_buf one = {0};
        begin(&one, &pk, first + i, "monitor", 1);
        gsp_pack_str(&pk, "h");
        gsp_buf_reserve(&b, one.len);
        memcpy(b.data + at, one.data, one.len);
        b.len = at + one.len;
        gsp_buf_free(&one);
    }
    cli_write(c, b.data, b.len);
    gsp_buf_free(&b);
}

START_TEST(monitors_over_the_limit_are_refused)
{
    setup();
    limits.monitors = 3;
    server_start(&h_mod, "h", 1, "\xc0", 1, -1, 0, NULL, NULL, 0);
    struct cli *a = cli_new(), *b = cli_new();
    monitor_h(a, 1, 4);
    for (uint32_t i = 1; i <= 3; i++)
        ck_assert_str_eq(response_code(cli_recv(a, 2000, NULL), i), "");
    ck_assert_str_eq(response_code(cli_recv(a, 2000, NULL), 4), "too_large");
    expect_pong(a, 5);  /* the connection stays */
    monitor_h(b, 1, 1); /* the limit is per connection */
    ck_assert_str_eq(response_code(cli_recv(b, 2000, NULL), 1), "");
    cli_free(a), cli_free(b);
    pump(20);
    teardown();
}
END_TEST

/* Over the budget every new request, a ping too, is answered overloaded,
 * until the memory is let go; a stop is served, to let go of it (here: the
 * monitors on the server it stops). */
START_TEST(over_the_memory_budget_requests_are_overloaded)
{
    setup();
    server_start(&h_mod, "h", 1, "\xc0", 1, -1, 0, NULL, NULL, 0);
    struct cli *a = cli_new(), *b = cli_new();
    monitor_h(a, 1, 1000);
    for (uint32_t i = 1; i <= 1000; i++)
        ck_assert_str_eq(response_code(cli_recv(a, 2000, NULL), i), "");
    expect_pong(b, 1);
    limits.memory = budget_used - 1000; /* the monitors are what puts it over */
    ping(a, 1001);
    ck_assert_str_eq(response_code(cli_recv(a, 2000, NULL), 1001), "overloaded");
    monitor_h(b, 2, 1);
    ck_assert_str_eq(response_code(cli_recv(b, 2000, NULL), 2), "overloaded");
    ck_assert_uint_eq(conn_count(), 2); /* nobody cut off: no client holds much output */
    struct gsp_buf stop = {0};
    msgpack_packer pk;
    begin(&stop, &pk, 3, "stop", 3);
    gsp_pack_str(&pk, "h");
    msgpack_pack_nil(&pk);
    msgpack_pack_nil(&pk);
    cli_write(b, stop.data, stop.len);
    gsp_buf_free(&stop);
    ck_assert_str_eq(response_code(cli_recv(b, 2000, NULL), 3), "");
    ck_assert(!budget_over()); /* the monitors have gone, though a has not read their downs */
    expect_pong(b, 4);
    cli_free(a), cli_free(b);
    pump(20);
    teardown();
}
END_TEST

/* What a client sent once is not held for it: a connection that has gone
 * idle after a large message keeps no large buffer charged to the budget
 * (else a few such connections would leave the daemon overloaded). */
START_TEST(an_idle_client_holds_no_large_buffer)
{
    setup();
    limits.memory = budget_used + (2u << 20);
    struct cli *big[8];
    const uint8_t head[] = {0x93, 0x02, 0xa4, 'n',  'o',  'n', 'e',
                            0x91, 0xc6, 0x00, 0x09, 0x27, 0xc0};
    uint8_t *msg = calloc(1, sizeof head + 600000);
    memcpy(msg, head, sizeof head); /* [2, "none", [<600,000-byte bin>]]: dropped */
    for (int i = 0; i < 8; i++) {
        big[i] = cli_new();
        cli_write(big[i], msg, sizeof head + 600000);
        expect_pong(big[i], 1); /* read and served */
    }
    free(msg);
    struct cli *c = cli_new();
    expect_pong(c, 1); /* not overloaded */
    for (int i = 0; i < 8; i++)
        cli_free(big[i]);
    cli_free(c);
    pump(20);
    teardown();
}
END_TEST

/* Over the budget, the client holding the most unread output is cut off,
 * though it is within its own output limit; the others go on. */
START_TEST(over_the_budget_the_largest_reader_is_cut_off)
{
    setup();
    struct cli *lazy = cli_new(), *other = cli_new();
    int small = 4096;
    setsockopt(lazy->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    expect_pong(other, 1);
    limits.memory = budget_used + (4u << 20);
    ping_until_cut(lazy, 32u << 20);
    pump(50);
    ck_assert_uint_eq(conn_count(), 1); /* cut off */
    ck_assert(!budget_over());
    expect_pong(other, 2);
    cli_free(lazy), cli_free(other);
    pump(20);
    teardown();
}
END_TEST

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    Suite *su = suite_create("limits");
    TCase *tc = tcase_create("limits");
    tcase_add_test(tc, connections_over_the_limit_are_refused);
    tcase_add_test(tc, pending_requests_over_the_limit_are_refused);
    tcase_add_test(tc, timers_over_the_limit_fail);
    tcase_add_test(tc, unfinished_bytes_over_the_limit_cut_the_sender_off);
    tcase_add_test(tc, a_trickling_sender_is_cut_off);
    tcase_add_test(tc, a_client_that_does_not_read_is_cut_off);
    tcase_add_test(tc, monitors_over_the_limit_are_refused);
    tcase_add_test(tc, over_the_memory_budget_requests_are_overloaded);
    tcase_add_test(tc, over_the_budget_the_largest_reader_is_cut_off);
    tcase_add_test(tc, an_idle_client_holds_no_large_buffer);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
