/*
 * check_client.c — libgsclient's asynchronous side against a real gsd:
 * pipelining, completion in any order, per-request deadlines, a daemon that
 * dies under pending requests, callbacks that close their connection, downs
 * as callbacks, the libevent adapter and a plain poll loop, and multi_call /
 * abcast over several daemons with one of them down, hung or not accepting.
 * Where a daemon must misbehave (stop reading, answer garbage) the test
 * plays the daemon itself on a socket of its own.
 */
#include "gsclient-event.h"
#include "harness.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct gsd *D;
static gsc *C;

static void setup(void)
{
    D = gsd_start();
    C = CLIENT(D);
}

static void teardown(void)
{
    client_close(&C);
    if (D) /* a test that killed its daemon has stopped it already */
        ck_assert_int_eq(gsd_stop(&D), 0);
}

/* ---- completions, recorded -------------------------------------------------- */

#define MAX_DONE 2048

/* What the callbacks saw, in the order they ran. */
struct record {
    int n;                      /* completions */
    uint32_t msgid[MAX_DONE];   /* whose */
    int status[MAX_DONE];       /* GSC_* */
    gsc_reply *reply[MAX_DONE]; /* kept until exit */
    void *arg[MAX_DONE];        /* the arg each was given */
};

static struct record R;

static void record_done(gsc *c, uint32_t msgid, int status, gsc_reply *reply, void *arg)
{
    (void)c;
    ck_assert_int_lt(R.n, MAX_DONE);
    R.msgid[R.n] = msgid;
    R.status[R.n] = status;
    R.reply[R.n] = reply;
    R.arg[R.n] = arg;
    R.n++;
}

/* The completion of msgid, or -1. */
static int done_index(uint32_t msgid)
{
    for (int i = 0; i < R.n; i++)
        if (R.msgid[i] == msgid)
            return i;
    return -1;
}

/* A call queued with record_done, checked to be accepted. */
static uint32_t call_async(gsc *c, const char *server, const msgpack_object *req, int timeout_ms,
                           void *arg)
{
    uint32_t id = gsc_call_async(c, server, req, timeout_ms, record_done, arg);
    ck_assert_msg(id != 0, "call_async refused: %s", gsc_errmsg(c));
    return id;
}

static void probe(const char *name)
{
    START(C, "probe", name, NULL);
}

/* ---- pipelining and order ---------------------------------------------------- */

START_TEST(pipelines_hundreds_on_one_connection)
{
    START(C, "counter", "c", mp("0"));
    enum { N = 500 };
    uint32_t ids[N];
    for (int i = 0; i < N; i++)
        ids[i] = call_async(C, "c", mp("['add', 1]"), 0, NULL);
    ck_assert_uint_eq(gsc_inflight(C), N);
    ck_assert_int_eq(gsc_run(C, 20000), GSC_OK);
    ck_assert_int_eq(R.n, N);
    ck_assert_uint_eq(gsc_inflight(C), 0);
    /* One server, one connection: handled in the order sent. */
    for (int i = 0; i < N; i++) {
        int k = done_index(ids[i]);
        ck_assert_int_ge(k, 0);
        ck_assert_int_eq(R.status[k], GSC_OK);
        ck_assert_int_eq(MP_INT(&R.reply[k]->result), i + 1);
    }
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "%d", N);
}
END_TEST

START_TEST(completions_come_in_the_daemons_order)
{
    probe("p");
    uint32_t slow = call_async(C, "p", mp("['reply_after', 600, 'slow']"), 0, NULL);
    uint32_t fast = call_async(C, "p", mp("['reply_after', 50, 'fast']"), 0, NULL);
    uint32_t now = call_async(C, "p", mp("['echo', 'now']"), 0, NULL);
    uint32_t ping = gsc_ping_async(C, record_done, NULL);
    ck_assert_int_eq(gsc_run(C, 10000), GSC_OK);
    ck_assert_int_eq(R.n, 4);
    ck_assert_int_eq(done_index(slow), 3);
    ck_assert_int_lt(done_index(now), done_index(fast));
    ck_assert_int_lt(done_index(ping), done_index(fast));
    ck_assert_mp_eq(&R.reply[done_index(slow)]->result, "'slow'");
    ck_assert_mp_eq(&R.reply[done_index(fast)]->result, "'fast'");
    ck_assert_mp_eq(&R.reply[done_index(now)]->result, "'now'");
}
END_TEST

START_TEST(errors_complete_with_their_code)
{
    uint32_t a = call_async(C, "ghost", mp("'get'"), 0, NULL);
    uint32_t b = gsc_request_async(C, "no_such_method", NULL, 5000, record_done, NULL);
    ck_assert_uint_ne(b, 0);
    ck_assert_int_eq(gsc_run(C, 5000), GSC_OK);
    ck_assert_int_eq(R.status[done_index(a)], GSC_ERROR);
    ck_assert_str_eq(R.reply[done_index(a)]->code, "noproc");
    ck_assert_str_eq(R.reply[done_index(b)]->code, "unknown_method");
}
END_TEST

START_TEST(every_method_has_an_async_form)
{
    int arg = 0;
    uint32_t ids[] = {
        gsc_start_async(C, "counter", "c", mp("5"), NULL, record_done, &arg),
        gsc_cast_async(C, "c", mp("'increment'"), record_done, &arg),
        gsc_send_async(C, "c", mp("'hello'"), record_done, &arg),
        gsc_whereis_async(C, "c", record_done, &arg),
        gsc_which_async(C, record_done, &arg),
        gsc_info_async(C, "c", record_done, &arg),
        gsc_get_state_async(C, "c", record_done, &arg),
        gsc_modules_async(C, record_done, &arg),
        gsc_load_async(C, "stack", record_done, &arg),
        gsc_version_async(C, record_done, &arg),
        gsc_monitor_async(C, "c", record_done, &arg),
        gsc_demonitor_async(C, 999, record_done, &arg),
        gsc_stop_async(C, "c", NULL, 0, record_done, &arg),
        gsc_reload_async(C, "stack", record_done, &arg),
    };
    enum { N = sizeof ids / sizeof ids[0] };
    ck_assert_int_eq(gsc_run(C, 10000), GSC_OK);
    ck_assert_int_eq(R.n, N);
    for (int i = 0; i < N; i++) {
        int k = done_index(ids[i]);
        ck_assert_int_ge(k, 0);
        ck_assert_msg(R.status[k] == GSC_OK, "request %d: status %d (%s)", i, R.status[k],
                      R.reply[k] && R.reply[k]->code ? R.reply[k]->code : "");
        ck_assert_ptr_eq(R.arg[k], &arg);
    }
    const msgpack_object *id = &R.reply[done_index(ids[0])]->result;
    ck_assert_mp_eq(&R.reply[done_index(ids[3])]->result, "%v", id); /* whereis */
    ck_assert_mp_eq(&R.reply[done_index(ids[6])]->result, "6");      /* the cast came first */
}
END_TEST

/* ---- deadlines --------------------------------------------------------------- */

START_TEST(a_request_times_out_alone)
{
    probe("p");
    /* Our deadline (200 ms) is far shorter than the daemon's (infinity). */
    uint32_t late = gsc_request_async(
        C, "call", mp("['p', ['reply_after', 800, 'late'], 'infinity']"), 200, record_done, NULL);
    uint32_t soon = call_async(C, "p", mp("['reply_after', 100, 'soon']"), 0, NULL);
    ck_assert_uint_ne(late, 0);
    int to = gsc_next_timeout(C);
    ck_assert_int_ge(to, 0);
    ck_assert_int_le(to, 200);
    ck_assert_int_eq(gsc_run(C, 10000), GSC_OK);
    ck_assert_int_eq(R.n, 2);
    ck_assert_int_eq(R.status[done_index(soon)], GSC_OK);
    ck_assert_int_eq(R.status[done_index(late)], GSC_TIMEOUT);
    ck_assert_ptr_null(R.reply[done_index(late)]);
    /* The connection lives on; the late answer is dropped, not misdelivered. */
    sleep_ms(900);
    uint32_t echo = call_async(C, "p", mp("['echo', 'after']"), 0, NULL);
    ck_assert_int_eq(gsc_run(C, 5000), GSC_OK);
    ck_assert_int_eq(R.n, 3);
    ck_assert_int_eq(done_index(echo), 2);
    ck_assert_mp_eq(&R.reply[2]->result, "'after'");
    ck_assert_int_eq(gsc_next_timeout(C), -1);
}
END_TEST

START_TEST(run_returns_timeout_with_requests_in_flight)
{
    probe("p");
    call_async(C, "p", mp("['reply_after', 1000, 'x']"), 0, NULL);
    ck_assert_int_eq(gsc_run(C, 50), GSC_TIMEOUT);
    ck_assert_uint_eq(gsc_inflight(C), 1);
    ck_assert_int_eq(gsc_run(C, 5000), GSC_OK);
    ck_assert_int_eq(R.status[0], GSC_OK);
}
END_TEST

/* ---- breaking --------------------------------------------------------------- */

START_TEST(daemon_killed_mid_request_completes_everything)
{
    probe("p");
    enum { N = 50 };
    for (int i = 0; i < N; i++)
        call_async(C, "p", mp("['reply_after', 20000, %d]", i), -1, NULL);
    ck_assert_int_eq(gsc_run(C, 200), GSC_TIMEOUT); /* all sent, none answered */
    ck_assert_int_eq(gsd_wait_exit(D, SIGKILL, 5000), 128 + SIGKILL);
    int64_t t0 = now_ms();
    ck_assert_int_eq(gsc_run(C, 10000), GSC_BROKEN);
    ck_assert_int_lt(now_ms() - t0, 5000);
    ck_assert_int_eq(R.n, N);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(R.status[i], GSC_BROKEN);
    ck_assert_uint_eq(gsc_inflight(C), 0);
    ck_assert_msg(strstr(gsc_errmsg(C), "closed") || strstr(gsc_errmsg(C), "lost"), "errmsg: %s",
                  gsc_errmsg(C));
    ck_assert_uint_eq(gsc_call_async(C, "p", mp("1"), 0, record_done, NULL), 0);
    gsd_stop(&D);
}
END_TEST

START_TEST(close_completes_what_is_in_flight)
{
    probe("p");
    for (int i = 0; i < 10; i++)
        call_async(C, "p", mp("['reply_after', 5000, %d]", i), 0, NULL);
    client_close(&C); /* gsc_close, and the harness forgets C */
    ck_assert_ptr_null(C);
    ck_assert_int_eq(R.n, 10);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(R.status[i], GSC_BROKEN);
}
END_TEST

/* Closes its connection from inside the first completion. */
static void close_in_callback(gsc *c, uint32_t msgid, int status, gsc_reply *reply, void *arg)
{
    record_done(c, msgid, status, reply, arg);
    gsc **owner = arg;
    gsc_close(owner);
}

START_TEST(a_callback_may_close_its_connection)
{
    probe("p");
    gsc *c = gsc_connect(D->sock); /* not CLIENT: the callback closes it */
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_ne(gsc_call_async(c, "p", mp("['echo', 1]"), 0, close_in_callback, &c), 0);
    for (int i = 0; i < 5; i++)
        ck_assert_uint_ne(
            gsc_call_async(c, "p", mp("['reply_after', 3000, 2]"), 0, record_done, NULL), 0);
    int64_t end = now_ms() + 5000;
    int st = 0;
    while (st == 0 && now_ms() < end) {
        struct pollfd pfd = {.fd = gsc_fd(c), .events = gsc_events(c)};
        poll(&pfd, 1, 100);
        st = gsc_process(c); /* the close happens in here; c is NULL after */
    }
    ck_assert_int_eq(st, GSC_CLOSED);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(R.n, 6);
    ck_assert_int_eq(R.status[0], GSC_OK);
    for (int i = 1; i < 6; i++)
        ck_assert_int_eq(R.status[i], GSC_BROKEN);
    ck_assert_mp_eq(CALL(C, "p", mp("['echo', 'alive']")), "'alive'");
}
END_TEST

/* Closes its connection from a down handler. */
static void close_on_down(gsc *c, gsc_down *d, void *arg)
{
    (void)c;
    gsc_down_destroy(&d);
    gsc_close((gsc **)arg);
}

/* Another pointer to c (say, in a struct the callback owns) is closed by the
 * callback; the call that ran it must say so, or its caller frees c twice. */
START_TEST(a_call_whose_callback_closed_c_returns_closed)
{
    gsc *c = gsc_connect(D->sock), *alias = c;
    gsc_reply *r = NULL;
    ck_assert_uint_ne(gsc_ping_async(c, close_in_callback, &alias), 0);
    ck_assert_int_eq(gsc_ping(c, &r), GSC_CLOSED);
    ck_assert_ptr_null(r);
    ck_assert_ptr_null(alias);

    c = alias = gsc_connect(D->sock);
    ck_assert_uint_ne(gsc_ping_async(c, close_in_callback, &alias), 0);
    ck_assert_int_eq(gsc_run(c, 5000), GSC_CLOSED);
    ck_assert_ptr_null(alias);

    c = alias = gsc_connect(D->sock);
    gsc_down *d = NULL;
    ck_assert_uint_ne(gsc_ping_async(c, close_in_callback, &alias), 0);
    ck_assert_int_eq(gsc_next_down(c, 5000, &d), GSC_CLOSED);
    ck_assert_ptr_null(d);
    ck_assert_ptr_null(alias);

    c = alias = gsc_connect(D->sock);
    gsc_on_down(c, close_on_down, &alias);
    ck_assert_uint_ne(gsc_monitor_async(c, "ghost", NULL, NULL), 0); /* noproc: a down */
    int st = 0;
    int64_t end = now_ms() + 5000;
    while (st == 0 && now_ms() < end) {
        struct pollfd pfd = {.fd = gsc_fd(c), .events = gsc_events(c)};
        poll(&pfd, 1, 100);
        st = gsc_process(c);
    }
    ck_assert_int_eq(st, GSC_CLOSED);
    ck_assert_ptr_null(alias);
    ck_assert_int_eq(R.n, 3);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(R.status[i], GSC_OK);
}
END_TEST

/* ---- a daemon played by the test ------------------------------------------------ */

/* A socket listening at path that nobody accepts on by itself. */
static int fake_listen(const char *path, int backlog)
{
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(l, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(l, backlog), 0);
    return l;
}

/* The test as the daemon: a gsc connected to us, and our end of it. */
struct fake {
    int listener;
    int peer; /* reads and writes as the daemon would, when the test says so */
    gsc *c;
};

static void fake_open(struct fake *f)
{
    const char *path = gsd_path(D, "fake.sock");
    f->listener = fake_listen(path, 4);
    f->c = gsc_connect(path);
    ck_assert_ptr_nonnull(f->c);
    f->peer = accept4(f->listener, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(f->peer, 0);
}

static void fake_close(struct fake *f)
{
    gsc_close(&f->c);
    close(f->peer);
    close(f->listener);
}

/* A blob far larger than a socket buffer, as the params of one request. */
static const msgpack_object *big_params(void)
{
    enum { BIG = 4 << 20 };
    static msgpack_object blob, params;
    static char *bytes;
    if (bytes == NULL)
        bytes = calloc(1, BIG);
    ck_assert_ptr_nonnull(bytes);
    blob = (msgpack_object){.type = MSGPACK_OBJECT_BIN, .via.bin = {BIG, bytes}};
    params = (msgpack_object){.type = MSGPACK_OBJECT_ARRAY, .via.array = {1, &blob}};
    return &params;
}

START_TEST(notify_gives_up_on_a_daemon_that_does_not_read)
{
    struct fake f;
    fake_open(&f);
    int64_t t0 = now_ms();
    ck_assert_int_eq(gsc_notify_wait(f.c, "cast", big_params(), 200), GSC_BROKEN);
    int64_t took = now_ms() - t0;
    ck_assert_msg(took >= 150 && took < 10000, "took %lld ms", (long long)took);
    ck_assert_msg(strstr(gsc_errmsg(f.c), "not reading"), "errmsg: %s", gsc_errmsg(f.c));
    ck_assert_uint_eq(gsc_ping_async(f.c, record_done, NULL), 0); /* c is broken */
    fake_close(&f);
}
END_TEST

/* Reads what f.c sends until it has nothing left to write, pumping f.c so
 * that it writes the rest; returns the msgpack messages, checked to be
 * whole, in *msgs (n at most, in z; their bytes stay until the next call)
 * and their count. */
static int fake_read_all(struct fake *f, msgpack_zone *z, msgpack_object *msgs, int n)
{
    static struct gsp_buf in;
    in.len = 0;
    int64_t end = now_ms() + 10000;
    for (;;) {
        ck_assert_int_lt(now_ms(), end);
        ck_assert_int_eq(gsc_process(f->c), 0);
        gsp_buf_reserve(&in, 65536);
        ssize_t got = recv(f->peer, in.data + in.len, in.cap - in.len, MSG_DONTWAIT);
        if (got > 0) {
            in.len += (size_t)got;
            continue;
        }
        ck_assert_msg(got < 0 && errno == EAGAIN, "recv: %zd", got);
        if (!(gsc_events(f->c) & POLLOUT))
            break;
        struct pollfd pfd = {.fd = f->peer, .events = POLLIN};
        poll(&pfd, 1, 100);
    }
    size_t off = 0;
    int k = 0;
    while (off < in.len) {
        ck_assert_int_lt(k, n);
        msgpack_unpack_return u = msgpack_unpack((const char *)in.data, in.len, &off, z, &msgs[k]);
        ck_assert(u == MSGPACK_UNPACK_SUCCESS || u == MSGPACK_UNPACK_EXTRA_BYTES);
        k++;
    }
    return k;
}

/* A request none of whose bytes are written by its deadline is taken back:
 * the caller told "timeout" can rely on it not running later. */
START_TEST(a_timed_out_request_never_sent_is_taken_back)
{
    struct fake f;
    fake_open(&f);
    /* The first fills the socket and part of it waits in c; the two after
     * it wait whole. */
    uint32_t big = gsc_request_async(f.c, "ping", big_params(), 100, record_done, NULL);
    uint32_t cast =
        gsc_request_async(f.c, "cast", mp("['c', 'increment']"), 100, record_done, NULL);
    uint32_t ver = gsc_request_async(f.c, "version", NULL, -1, record_done, NULL);
    ck_assert(big && cast && ver);
    ck_assert_int_eq(gsc_run(f.c, 1000), GSC_TIMEOUT); /* version has no deadline */
    ck_assert_int_eq(R.n, 2);
    ck_assert_int_eq(R.status[done_index(big)], GSC_TIMEOUT);
    ck_assert_int_eq(R.status[done_index(cast)], GSC_TIMEOUT);
    /* The daemon reads again: it gets the begun one whole, then version. */
    msgpack_object msgs[4];
    msgpack_zone z;
    msgpack_zone_init(&z, MSGPACK_ZONE_CHUNK_SIZE);
    ck_assert_int_eq(fake_read_all(&f, &z, msgs, 4), 2);
    ck_assert_mp_eq(mp_item(&msgs[0], 2), "'ping'");
    ck_assert_uint_eq(mp_item(&msgs[0], 3)->via.array.ptr[0].via.bin.size, 4 << 20);
    ck_assert_mp_eq(&msgs[1], "[0, %d, 'version', []]", (int)ver);
    msgpack_zone_destroy(&z);
    /* ... and its answer completes version: the stream is still in step. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *mp("[1, %d, nil, 'v1']", (int)ver));
    ck_assert_int_eq(write(f.peer, sb.data, sb.size), (ssize_t)sb.size);
    msgpack_sbuffer_destroy(&sb);
    ck_assert_int_eq(gsc_run(f.c, 5000), GSC_OK);
    ck_assert_int_eq(R.status[done_index(ver)], GSC_OK);
    ck_assert_mp_eq(&R.reply[done_index(ver)]->result, "'v1'");
    fake_close(&f);
}
END_TEST

/* A response to a request in flight that cannot be read breaks the
 * connection: ignored, its request would wait for ever. */
START_TEST(a_malformed_response_breaks_the_connection)
{
    struct fake f;
    fake_open(&f);
    uint32_t a = gsc_request_async(f.c, "ping", NULL, -1, record_done, NULL);
    uint32_t b = gsc_request_async(f.c, "ping", NULL, -1, record_done, NULL);
    ck_assert(a && b);
    /* [1, a, nil]: a response without its result. */
    uint8_t bad[] = {0x93, 0x01, 0xce, a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff, 0xc0};
    ck_assert_int_eq(write(f.peer, bad, sizeof bad), (ssize_t)sizeof bad);
    ck_assert_int_eq(gsc_run(f.c, 5000), GSC_BROKEN);
    ck_assert_int_eq(R.n, 2);
    ck_assert_int_eq(R.status[done_index(a)], GSC_BROKEN);
    ck_assert_int_eq(R.status[done_index(b)], GSC_BROKEN);
    ck_assert_msg(strstr(gsc_errmsg(f.c), "malformed response"), "errmsg: %s", gsc_errmsg(f.c));
    fake_close(&f);
}
END_TEST

/* ---- downs as callbacks -------------------------------------------------------- */

static gsc_down *Downs[8];
static int NDowns;

static void on_down(gsc *c, gsc_down *d, void *arg)
{
    (void)c;
    ck_assert_ptr_eq(arg, &NDowns);
    ck_assert_int_lt(NDowns, 8);
    Downs[NDowns++] = d;
}

START_TEST(downs_come_as_callbacks)
{
    uint64_t id = START(C, "counter", "c", NULL);
    gsc_on_down(C, on_down, &NDowns);
    uint32_t m1 = gsc_monitor_async(C, "c", record_done, NULL);
    uint32_t m2 = gsc_monitor_async(C, "ghost", record_done, NULL);
    ck_assert_int_eq(gsc_run(C, 5000), GSC_OK);
    uint64_t ref1 = (uint64_t)MP_INT(&R.reply[done_index(m1)]->result);
    uint64_t ref2 = (uint64_t)MP_INT(&R.reply[done_index(m2)]->result);
    gsc_stop_async(C, "c", mp("'bye'"), 0, record_done, NULL);
    ck_assert_int_eq(gsc_run(C, 5000), GSC_OK);
    ck_assert(WAIT_UNTIL(3000, (gsc_process(C), NDowns == 2)));
    ck_assert_uint_eq(Downs[0]->ref, ref2); /* noproc came at once */
    ck_assert_mp_eq(&Downs[0]->reason, "'noproc'");
    ck_assert_uint_eq(Downs[1]->ref, ref1);
    ck_assert_uint_eq(Downs[1]->id, id);
    ck_assert_mp_eq(&Downs[1]->name, "'c'");
    ck_assert_mp_eq(&Downs[1]->reason, "'bye'");
    ck_assert(!gsc_pending(C)); /* nothing queued for gsc_next_down */
    for (int i = 0; i < NDowns; i++)
        gsc_down_destroy(&Downs[i]);
}
END_TEST

/* ---- loops --------------------------------------------------------------------- */

static struct event_base *Base;

/* Stops the base after the last of n completions. */
static void count_then_exit(gsc *c, uint32_t msgid, int status, gsc_reply *reply, void *arg)
{
    record_done(c, msgid, status, reply, arg);
    if (R.n == *(int *)arg)
        event_base_loopexit(Base, NULL);
}

/* The guard against a loop that would never end. */
static void break_loop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    event_base_loopbreak(Base);
}

START_TEST(runs_inside_a_libevent_loop)
{
    probe("p");
    Base = event_base_new();
    ck_assert_int_eq(gsc_event_attach(C, Base), 0);
    static int n = 201;
    for (int i = 0; i < 200; i++)
        ck_assert_uint_ne(gsc_call_async(C, "p", mp("['echo', %d]", i), 0, count_then_exit, &n), 0);
    ck_assert_uint_ne(gsc_request_async(C, "call", mp("['p', ['reply_after', 2000, 0], nil]"), 100,
                                        count_then_exit, &n),
                      0);
    struct event *guard = evtimer_new(Base, break_loop, NULL);
    struct timeval ten = {10, 0};
    evtimer_add(guard, &ten);
    event_base_dispatch(Base);
    ck_assert_int_eq(R.n, 201);
    for (int i = 0; i < 200; i++)
        ck_assert_mp_eq(&R.reply[i]->result, "%d", i);
    ck_assert_int_eq(R.status[200], GSC_TIMEOUT);
    /* Closing from a callback under the adapter, then the base runs dry. */
    client_close(&C);
    gsc *c = gsc_connect(D->sock);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(gsc_event_attach(c, Base), 0);
    ck_assert_uint_ne(gsc_call_async(c, "p", mp("['echo', 'x']"), 0, close_in_callback, &c), 0);
    event_del(guard);
    ck_assert_int_eq(event_base_dispatch(Base), 1); /* no events left */
    ck_assert_ptr_null(c);
    ck_assert_int_eq(R.status[201], GSC_OK);
    event_free(guard);
    event_base_free(Base);
}
END_TEST

START_TEST(runs_inside_a_plain_poll_loop)
{
    probe("p");
    for (int i = 0; i < 100; i++)
        call_async(C, "p", mp("['reply_after', %d, %d]", (i * 7) % 50, i), 0, NULL);
    int64_t end = now_ms() + 10000;
    while (gsc_inflight(C) > 0 && now_ms() < end) {
        struct pollfd pfd = {.fd = gsc_fd(C), .events = gsc_events(C)};
        poll(&pfd, 1, gsc_next_timeout(C));
        ck_assert_int_eq(gsc_process(C), 0);
    }
    ck_assert_int_eq(R.n, 100);
}
END_TEST

START_TEST(sync_calls_share_the_connection_with_async_ones)
{
    probe("p");
    uint32_t slow = call_async(C, "p", mp("['reply_after', 300, 'slow']"), 0, NULL);
    ck_assert_mp_eq(CALL(C, "p", mp("['echo', 'sync']")), "'sync'");
    ck_assert_int_eq(R.n, 0);
    ck_assert_mp_eq(CALL(C, "p", mp("['reply_after', 500, 'sync2']")), "'sync2'");
    ck_assert_int_eq(R.n, 1); /* completed while the sync call waited */
    ck_assert_int_eq(done_index(slow), 0);
}
END_TEST

/* ---- several daemons ----------------------------------------------------------- */

START_TEST(multi_call_with_one_daemon_down)
{
    struct gsd *d2 = gsd_start(), *d3 = gsd_start();
    gsc *c2 = CLIENT(d2);
    START(C, "counter", "c", mp("1"));
    START(c2, "counter", "c", mp("2"));
    client_close(&c2);
    ck_assert_int_eq(gsd_wait_exit(d3, SIGKILL, 5000), 128 + SIGKILL);
    const char *socks[] = {D->sock, d2->sock, d3->sock};
    gsc_multi *m;
    int64_t t0 = now_ms();
    ck_assert_uint_eq(gsc_multi_call(socks, 3, "c", mp("'get'"), 2000, &m), 1);
    ck_assert_int_lt(now_ms() - t0, 2000);
    ck_assert_uint_eq(m->n, 3);
    ck_assert_uint_eq(m->nbad, 1);
    ck_assert_str_eq(m->daemon[0].socket, D->sock);
    ck_assert_int_eq(m->daemon[0].status, GSC_OK);
    ck_assert_mp_eq(&m->daemon[0].reply->result, "1");
    ck_assert_int_eq(m->daemon[1].status, GSC_OK);
    ck_assert_mp_eq(&m->daemon[1].reply->result, "2");
    ck_assert_int_eq(m->daemon[2].status, GSC_BROKEN);
    ck_assert_ptr_null(m->daemon[2].reply);
    ck_assert_msg(strstr(m->daemon[2].errmsg, "connect"), "errmsg: %s", m->daemon[2].errmsg);
    gsc_multi_destroy(&m);
    ck_assert_ptr_null(m);
    gsd_stop(&d3);
    ck_assert_int_eq(gsd_stop(&d2), 0);
}
END_TEST

START_TEST(multi_call_one_timeout_for_a_hung_daemon)
{
    struct gsd *d2 = gsd_start();
    START(C, "counter", "c", mp("1"));
    gsc *c2 = CLIENT(d2);
    START(c2, "counter", "c", mp("2"));
    client_close(&c2);
    kill(d2->pid, SIGSTOP); /* accepts (the backlog) but never answers */
    const char *socks[] = {D->sock, d2->sock, "/nonexistent/gsd.sock"};
    gsc_multi *m;
    int64_t t0 = now_ms();
    ck_assert_uint_eq(gsc_multi_call(socks, 3, "c", mp("'get'"), 300, &m), 2);
    int64_t took = now_ms() - t0;
    ck_assert_msg(took >= 250 && took < 3000, "took %lld ms", (long long)took);
    ck_assert_int_eq(m->daemon[0].status, GSC_OK);
    ck_assert_int_eq(m->daemon[1].status, GSC_TIMEOUT);
    ck_assert_int_eq(m->daemon[2].status, GSC_BROKEN);
    gsc_multi_destroy(&m);
    kill(d2->pid, SIGCONT);
    ck_assert_int_eq(gsd_stop(&d2), 0);
}
END_TEST

START_TEST(multi_call_noproc_is_bad)
{
    struct gsd *d2 = gsd_start();
    START(C, "counter", "c", mp("7"));
    const char *socks[] = {D->sock, d2->sock};
    gsc_multi *m;
    ck_assert_uint_eq(gsc_multi_call(socks, 2, "c", mp("'get'"), 0, &m), 1);
    ck_assert_int_eq(m->daemon[0].status, GSC_OK);
    ck_assert_int_eq(m->daemon[1].status, GSC_ERROR);
    ck_assert_str_eq(m->daemon[1].reply->code, "noproc");
    gsc_multi_destroy(&m);
    ck_assert_int_eq(gsd_stop(&d2), 0);
}
END_TEST

START_TEST(abcast_reaches_every_live_daemon)
{
    struct gsd *d2 = gsd_start();
    gsc *c2 = CLIENT(d2);
    START(C, "counter", "c", mp("10"));
    START(c2, "counter", "c", mp("20"));
    const char *socks[] = {D->sock, "/nonexistent/gsd.sock", d2->sock};
    gsc_multi *m;
    ck_assert_uint_eq(gsc_abcast(socks, 3, "c", mp("['add', 5]"), 1000, &m), 1);
    ck_assert_int_eq(m->daemon[0].status, GSC_OK);
    ck_assert_int_eq(m->daemon[1].status, GSC_BROKEN);
    ck_assert_int_eq(m->daemon[2].status, GSC_OK);
    gsc_multi_destroy(&m);
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "15");
    ck_assert_mp_eq(CALL(c2, "c", mp("'get'")), "25");
    client_close(&c2);
    ck_assert_int_eq(gsd_stop(&d2), 0);
}
END_TEST

/* A daemon whose listen backlog is full (it stopped accepting) makes a
 * blocking connect wait for ever: multi_call must not. */
START_TEST(multi_call_does_not_wait_on_a_full_backlog)
{
    const char *path = gsd_path(D, "full.sock");
    int l = fake_listen(path, 0), queued[64], n = 0;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
            ck_assert_int_eq(errno, EAGAIN);
            close(fd);
            break;
        }
        ck_assert_int_lt(n, 64);
        queued[n++] = fd;
    }
    errno = 0;
    ck_assert_ptr_null(gsc_connect_nowait(path));
    ck_assert_int_eq(errno, EAGAIN);
    START(C, "counter", "c", mp("3"));
    const char *socks[] = {path, D->sock};
    gsc_multi *m;
    ck_assert_uint_eq(gsc_multi_call(socks, 2, "c", mp("'get'"), 1000, &m), 1);
    ck_assert_int_eq(m->daemon[0].status, GSC_BROKEN);
    ck_assert_msg(strstr(m->daemon[0].errmsg, "backlog"), "errmsg: %s", m->daemon[0].errmsg);
    ck_assert_int_eq(m->daemon[1].status, GSC_OK);
    ck_assert_mp_eq(&m->daemon[1].reply->result, "3");
    gsc_multi_destroy(&m);
    ck_assert_uint_eq(gsc_abcast(socks, 2, "c", mp("'increment'"), 1000, &m), 1);
    ck_assert_int_eq(m->daemon[0].status, GSC_BROKEN);
    gsc_multi_destroy(&m);
    while (n > 0)
        close(queued[--n]);
    close(l);
}
END_TEST

/* ---- the guide's example ------------------------------------------------------ */

START_TEST(the_scripting_guide_example_runs)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "GSD_SOCKET=%s timeout 10 %s/examples/async-counter 2>&1", D->sock,
             gsd_build());
    int status;
    const char *out = shell_output(cmd, &status);
    ck_assert_int_eq(status, 0);
    ck_assert_str_eq(out, "add 1 -> 1\nadd 2 -> 3\nadd 3 -> 6\nadd 4 -> 10\nadd 5 -> 15\n"
                          "add 6 -> 21\nadd 7 -> 28\nadd 8 -> 36\nadd 9 -> 45\nadd 10 -> 55\n"
                          "example is down: normal\n");
}
END_TEST

/* ---- requests from a format -------------------------------------------------- */

/* The zone gsc_build allocates in, one per test. */
static msgpack_zone Z;

static void zone_setup(void)
{
    ck_assert(msgpack_zone_init(&Z, 4096));
}

static void zone_teardown(void)
{
    msgpack_zone_destroy(&Z);
}

static msgpack_zone *test_zone(void)
{
    return &Z;
}

/* A NULL the compiler cannot see (it warns about a literal NULL for %s). */
static const char *volatile no_text = NULL;

/* gsc_vbuild through a variadic function of our own, as a program that
 * passes its arguments on would; the format need not be a literal. */
static const char *try_build(msgpack_zone *z, msgpack_object *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *err = gsc_vbuild(z, v, fmt, ap);
    va_end(ap);
    return err;
}

START_TEST(build_every_directive)
{
    msgpack_zone *z = test_zone();
    msgpack_object v;
    msgpack_object bin = {.type = MSGPACK_OBJECT_BIN, .via.bin = {3, "a\0b"}};
    const char *err = gsc_build(
        z, &v,
        "[%s, %s, %.*s, %.*s, %d, %i, %u, %hhd, %hhu, %hd, %hu, %ld, %lu, %lld, %llu, %zu, %zd, "
        "%jd, %ju, %td, %tu, %f, %g, %e, %a, %E, %G, %lf, %p, %p]",
        "text", no_text, 3, "x\0y", 0, no_text, -5, INT_MIN, UINT_MAX, 300, 300, 70000, 70000,
        LONG_MIN, ULONG_MAX, LLONG_MIN, ULLONG_MAX, (size_t)7, (ssize_t)-7, (intmax_t)-8,
        (uintmax_t)8, (ptrdiff_t)-9, (ptrdiff_t)9, 1.5, 0.25, -2.0, 0.5, 1e300, -1e-300, 3.0,
        (const void *)&bin, (const void *)NULL);
    ck_assert_msg(err == NULL, "%s", err);
    ck_assert_mp_eq(
        &v,
        "['text', nil, 'x\\x00y', '', -5, %l, %u, 44, 44, 4464, 4464, %l, %u, %l, %u, 7, "
        "-7, -8, 8, -9, 9, 1.5, 0.25, -2.0, 0.5, 1e300, -1e-300, 3.0, b'a\\x00b', nil]",
        (int64_t)INT_MIN, (uint64_t)UINT_MAX, (int64_t)LONG_MIN, (uint64_t)ULONG_MAX,
        (int64_t)LLONG_MIN, (uint64_t)ULLONG_MAX);
    /* %p takes any value, a map with a bool included, and copies it */
    msgpack_object_kv kv = {.key = {.type = MSGPACK_OBJECT_STR, .via.str = {2, "on"}},
                            .val = {.type = MSGPACK_OBJECT_BOOLEAN, .via.boolean = true}};
    msgpack_object m = {.type = MSGPACK_OBJECT_MAP, .via.map = {1, &kv}};
    char text[] = "mutable";
    ck_assert_ptr_null(gsc_build(z, &v, "{%s: %p}", text, (const void *)&m));
    memcpy(text, "changed", 7); /* nothing of the arguments is referred to */
    kv.val.via.boolean = false;
    ck_assert_mp_eq(&v, "{'mutable': {'on': true}}");
}
END_TEST

START_TEST(build_literals)
{
    msgpack_zone *z = test_zone();
    msgpack_object v;
    const char *err =
        gsc_build(z, &v,
                  " {name: \"x y\", 1: [null, true, false, -0, 18446744073709551615, "
                  "-9223372036854775808, 1.5e3, -2.5E-1, 0.0, "
                  "\"\\u00e9\\ud83d\\ude00 \\\"q\\\" \\\\ \\/ \\b\\f\\n\\r\\t 100%%\", "
                  "gsd@db1, a.b-c/d, _x, \"\", [], {}], "
                  "\xc3\xa9t\xc3\xa9: [ [ 1 ] , { a : b } ]}\n");
    ck_assert_msg(err == NULL, "%s", err);
    ck_assert_mp_eq(&v,
                    "{'name': 'x y', 1: [nil, true, false, 0, %u, %l, 1500.0, -0.25, 0.0, "
                    "'\\xc3\\xa9\\xf0\\x9f\\x98\\x80 \"q\" \\\\ / \\x08\\x0c\\x0a\\x0d\\x09 100%', "
                    "'gsd@db1', 'a.b-c/d', '_x', '', [], {}], "
                    "'\\xc3\\xa9t\\xc3\\xa9': [[1], {'a': 'b'}]}",
                    (uint64_t)UINT64_MAX, (int64_t)INT64_MIN);
}
END_TEST

/* What %s and %.*s carry is a str, whatever it holds: never parsed. */
START_TEST(build_substitutes_without_injection)
{
    msgpack_zone *z = test_zone();
    msgpack_object v;
    const char *evil[] = {"\", 1, \"", "[1, 2]",  "{\"a\": 1}", "null", "true", "%d %s",
                          "]",         "}",       "a\"b\\c",    "",     "12",   "-1",
                          "x y z",     "\\u0041", "%%",         "\n"};
    for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++) {
        ck_assert_ptr_null(gsc_build(z, &v, "[%s]", evil[i]));
        ck_assert_mp_eq(&v, "[%s]", evil[i]);
        ck_assert_ptr_null(gsc_build(z, &v, "{%s: %.*s}", evil[i], (int)strlen(evil[i]), evil[i]));
        ck_assert_mp_eq(&v, "{%s: %s}", evil[i], evil[i]);
    }
}
END_TEST

START_TEST(build_bad_formats_are_explained)
{
    static const struct {
        const char *fmt;
        int at;           /* the byte the message points at */
        const char *says; /* part of the reason */
    } bad[] = {
        {"", 0, "a value is missing before the end"},
        {"   ", 3, "a value is missing before the end"},
        {"[1,", 3, "a value is missing before the end"},
        {"[1 2]", 3, "',' or ']' must follow an item, not '2'"},
        {"{a 1}", 3, "':' must follow a map's key, not '1'"},
        {"{a: 1", 5, "',' or '}' must follow an item, not the end"},
        {"{1: }", 4, "a value is missing before '}'"},
        {"[1,]", 3, "a value is missing before ']'"},
        {"[1]]", 3, "more after the value"},
        {"1 2", 2, "more after the value"},
        {"\"abc", 0, "not closed"},
        {"%x", 0, "%x is not a directive"},
        {"%c", 0, "%c is not a directive"},
        {"%ls", 0, "%ls is not a directive"},
        {"%Lf", 0, "%Lf is not a directive"},
        {"%lp", 0, "%lp is not a directive"},
        {"%5d", 0, "a field width means nothing"},
        {"%*d", 0, "a field width means nothing"},
        {"%-d", 0, "a flag ('-') means nothing"},
        {"%.5s", 0, "only %.*s takes a precision"},
        {"%", 0, "cut short by the end"},
        {"%%", 0, "%% outside a string"},
        {"\"%d\"", 1, "a directive inside a \"string\""},
        {"[x, \"a%sb\"]", 6, "a directive inside a \"string\""},
        {"%d%d", 2, "'%' right after a value"},
        {"abc%d", 3, "'%' right after a value"},
        {"[1]x", 3, "'x' right after a value"},
        {"-", 0, "'-' must be followed by digits"},
        {"-x", 0, "'-' must be followed by digits"},
        {"1.", 0, "digits must follow the '.'"},
        {"1e+", 0, "digits must follow the exponent"},
        {"18446744073709551616", 0, "out of the range of 64-bit integers"},
        {"-9223372036854775809", 0, "out of the range of 64-bit integers"},
        {"1e999", 0, "out of the range of a double"},
        {"\"\\q\"", 1, "\\q is not an escape"},
        {"\"\\u12\"", 1, "\\u wants 4 hex digits"},
        {"\"\\ud800\"", 1, "its low surrogate"},
        {"\"\\ud800\\u0041\"", 1, "its low surrogate"},
        {"\"\\udc00\"", 1, "alone"},
        {"#", 0, "'#' cannot start a value"},
        {"\x01", 0, "0x01 cannot start a value"},
        {"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", 32,
         "nested deeper than 32"},
    };
    msgpack_zone *z = test_zone();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msgpack_object v = {.type = MSGPACK_OBJECT_STR};      /* set to nil on failure */
        const char *err = try_build(z, &v, bad[i].fmt, 1, 2); /* ints: only %d is read */
        ck_assert_msg(err != NULL, "\"%s\" was accepted", bad[i].fmt);
        char at[64];
        snprintf(at, sizeof at, "bad format at byte %d of \"", bad[i].at);
        ck_assert_msg(strncmp(err, at, strlen(at)) == 0 && strstr(err, bad[i].says),
                      "\"%s\": %s (want byte %d, \"%s\")", bad[i].fmt, err, bad[i].at, bad[i].says);
        ck_assert_int_eq(v.type, MSGPACK_OBJECT_NIL);
    }
    /* a negative %.*s length, or bytes missing */
    msgpack_object v;
    const char *err = gsc_build(z, &v, "%.*s", -1, "x");
    ck_assert_msg(err && strstr(err, "given length -1"), "%s", err);
    err = gsc_build(z, &v, "%.*s", 2, no_text);
    ck_assert_msg(err && strstr(err, "NULL"), "%s", err);
    /* a long format is shown cut */
    char fmt[300];
    memset(fmt, ' ', sizeof fmt - 2);
    fmt[0] = '[', fmt[sizeof fmt - 2] = '!', fmt[sizeof fmt - 1] = '\0';
    err = try_build(z, &v, fmt);
    ck_assert_msg(err && strstr(err, "byte 298 of \"[") && strstr(err, "...\": '!' cannot start"),
                  "%s", err);
    /* NULL: no format, no crash */
    err = try_build(z, &v, NULL);
    ck_assert_msg(err && strstr(err, "missing"), "%s", err);
}
END_TEST

/* A command through gsc_vcommand, as a wrapper of the caller's would. */
static int command_v(gsc *c, gsc_reply **r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int st = gsc_vcommand(c, r, fmt, ap);
    va_end(ap);
    return st;
}

START_TEST(command_sends_one_line_requests)
{
    gsc_reply *r;
    ck_assert_mp_eq(OK(gsc_command(C, &r, "ping"), &r), "'pong'");
    const msgpack_object *id =
        OK(gsc_command(C, &r, "start counter %s %d {restart: %s}", "fc", 5, "transient"), &r);
    ck_assert_int_eq(id->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    ck_assert_mp_eq(OK(gsc_command(C, &r, "call %s [add, %d]", "fc", 10), &r), "15");
    /* a server id is an integer (%llu), as the protocol has it */
    ck_assert_mp_eq(OK(gsc_command(C, &r, "call %llu get", (unsigned long long)id->via.u64), &r),
                    "15");
    ck_assert_mp_eq(OK(gsc_command(C, &r, "cast fc [add, %d]", -1), &r), "nil");
    ck_assert_mp_eq(OK(command_v(C, &r, "call %s \"get\"", "fc"), &r), "14");
    ck_assert_mp_eq(OK(gsc_command(C, &r, "whereis %s", "fc"), &r), "%v", id);
    ERR(gsc_command(C, &r, "call %s get", "ghost"), &r, "noproc");
    ERR(gsc_command(C, &r, "frobnicate %d", 1), &r, "unknown_method");
    /* what an argument holds reaches the server as it is */
    START(C, "probe", "fp", NULL);
    const char *evil[] = {"\"] [\"", "{\"x\": 1}", "null", "%s", "get"};
    for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++)
        ck_assert_mp_eq(OK(gsc_command(C, &r, "call fp [echo, %s]", evil[i]), &r), "%s", evil[i]);
    msgpack_object bin = {.type = MSGPACK_OBJECT_BIN, .via.bin = {2, "\0\1"}};
    ck_assert_mp_eq(OK(gsc_command(C, &r, "call fp [echo, %p]", (const void *)&bin), &r),
                    "b'\\x00\\x01'");
}
END_TEST

START_TEST(command_waits_as_the_call_of_its_name)
{
    gsc_reply *r;
    START(C, "probe", "fp", NULL);
    /* the call's own timeout (third param): the daemon answers timeout */
    int64_t t0 = now_ms();
    ERR(gsc_command(C, &r, "call fp [reply_after, 3000, 1] %d", 100), &r, "timeout");
    ck_assert_int_lt(now_ms() - t0, 2000);
    ck_assert_mp_eq(OK(gsc_command(C, &r, "call fp [reply_after, 300, 2] infinity"), &r), "2");
    ck_assert_mp_eq(OK(gsc_command(C, &r, "call fp [reply_after, 300, 3] null"), &r), "3");
    /* stop without a timeout waits for terminate */
    ck_assert_mp_eq(OK(gsc_command(C, &r, "stop fp"), &r), "nil");
    ck_assert_mp_eq(OK(gsc_command(C, &r, "whereis fp"), &r), "nil");
}
END_TEST

START_TEST(command_bad_format_sends_nothing)
{
    gsc_reply *r = (gsc_reply *)1;
    START(C, "counter", "fc", NULL);
    errno = 0;
    ck_assert_int_eq(gsc_command(C, &r, "call fc [add, %x]", 1u), GSC_BROKEN);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(r);
    ck_assert_msg(strstr(gsc_errmsg(C), "gsc_command: bad format at byte 14 of") &&
                      strstr(gsc_errmsg(C), "%x is not a directive"),
                  "%s", gsc_errmsg(C));
    const char *bad[] = {"", "[1] x", "call%d", "9lives", "call fc [add, %d", "call fc \"get"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(command_v(C, &r, bad[i], 1), GSC_BROKEN);
        ck_assert_msg(strstr(gsc_errmsg(C), "bad format"), "%s: %s", bad[i], gsc_errmsg(C));
    }
    ck_assert_msg(strstr(gsc_errmsg(C), "not closed"), "%s", gsc_errmsg(C));
    /* asynchronous: 0, and done never runs */
    ck_assert_uint_eq(gsc_command_async(C, record_done, NULL, "call fc [add, %5d]", 1), 0);
    ck_assert_msg(strstr(gsc_errmsg(C), "field width"), "%s", gsc_errmsg(C));
    /* nothing reached the daemon, and C serves on */
    ck_assert_mp_eq(OK(gsc_command(C, &r, "call fc get"), &r), "0");
    uint32_t id = gsc_command_async(C, record_done, NULL, "call fc [add, %d]", 7);
    ck_assert_uint_ne(id, 0);
    ck_assert_int_eq(gsc_run(C, 5000), GSC_OK);
    ck_assert_int_eq(R.n, 1);
    ck_assert_uint_eq(R.msgid[0], id);
    ck_assert_int_eq(R.status[0], GSC_OK);
    ck_assert_mp_eq(&R.reply[0]->result, "7");
    /* a connection that cannot send refuses before reading the format */
    struct fake f;
    fake_open(&f);
    close(f.peer);
    f.peer = -1;
    ck_assert_int_eq(gsc_ping(f.c, &r), GSC_BROKEN);
    ck_assert_int_eq(gsc_command(f.c, &r, "ping"), GSC_BROKEN);
    ck_assert_int_eq(command_v(f.c, &r, "%x", 1u), GSC_BROKEN);
    ck_assert_uint_eq(gsc_command_async(f.c, NULL, NULL, "ping %x", 1u), 0);
    ck_assert_msg(strstr(gsc_errmsg(f.c), "bad format") == NULL, "%s", gsc_errmsg(f.c));
    fake_close(&f);
    ck_assert_int_eq(gsc_command(NULL, &r, "ping"), GSC_BROKEN);
    ck_assert_ptr_null(r);
}
END_TEST

START_TEST(socket_path_resolution)
{
    char out[sizeof(((struct sockaddr_un *)0)->sun_path)];
    unsetenv("GSD_SOCKET");
    ck_assert_int_eq(gsc_socket_path("/flag/gsd.sock", out, sizeof out), 0);
    ck_assert_str_eq(out, "/flag/gsd.sock");
    setenv("GSD_SOCKET", "/env/gsd.sock", 1);
    ck_assert_int_eq(gsc_socket_path(NULL, out, sizeof out), 0);
    ck_assert_str_eq(out, "/env/gsd.sock");
    ck_assert_int_eq(gsc_socket_path("", out, sizeof out), 0);
    ck_assert_str_eq(out, "/env/gsd.sock");
    ck_assert_int_eq(gsc_socket_path("/flag/gsd.sock", out, sizeof out), 0);
    ck_assert_str_eq(out, "/flag/gsd.sock");
    unsetenv("GSD_SOCKET");
    setenv("XDG_RUNTIME_DIR", D->dir, 1);
    ck_assert_int_eq(gsc_socket_path(NULL, out, sizeof out), 0);
    if (geteuid() == 0) {
        ck_assert_str_eq(out, GSC_SYSTEM_SOCKET); /* root: the system daemon's */
    } else {
        ck_assert_str_eq(out, gsd_path(D, "gsd.sock")); /* the user's own: it exists */
    }
    /* gsc_connect(NULL) resolves the same way */
    setenv("GSD_SOCKET", D->sock, 1);
    gsc *c = gsc_connect(NULL);
    ck_assert_ptr_nonnull(c);
    gsc_close(&c);
    char longp[300];
    memset(longp, 'x', sizeof longp - 1);
    longp[0] = '/', longp[sizeof longp - 1] = '\0';
    errno = 0;
    ck_assert_int_eq(gsc_socket_path(longp, out, sizeof out), -1);
    ck_assert_int_eq(errno, ENAMETOOLONG);
    ck_assert_int_eq(gsc_socket_path("/a/b.sock", out, 5), -1);
}
END_TEST

/* ---- figures -------------------------------------------------------------------- */

START_TEST(bench_pipelined_calls)
{
    START(C, "counter", "c", mp("0"));
    enum { N = 20000, WINDOW = 1000 };
    int64_t t0 = now_ms();
    int sent = 0;
    while (sent < N || gsc_inflight(C) > 0) {
        while (sent < N && gsc_inflight(C) < WINDOW) {
            ck_assert_uint_ne(gsc_call_async(C, "c", mp("'increment'"), 0, NULL, NULL), 0);
            sent++;
        }
        struct pollfd pfd = {.fd = gsc_fd(C), .events = gsc_events(C)};
        poll(&pfd, 1, 1000);
        ck_assert_int_eq(gsc_process(C), 0);
    }
    int64_t ms = now_ms() - t0;
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "%d", N);
    t0 = now_ms();
    for (int i = 0; i < 2000; i++)
        CALL(C, "c", mp("'get'"));
    int64_t sync_ms = now_ms() - t0;
    printf("bench: %d pipelined calls in %lld ms (%.0f/s); 2000 sync calls in %lld ms (%.0f/s)\n",
           N, (long long)ms, N * 1000.0 / (ms ? ms : 1), (long long)sync_ms,
           2000 * 1000.0 / (sync_ms ? sync_ms : 1));
}
END_TEST

static Suite *client_suite(void)
{
    Suite *s = suite_create("client");
    TCase *tc = tcase_create("async");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, pipelines_hundreds_on_one_connection);
    tcase_add_test(tc, completions_come_in_the_daemons_order);
    tcase_add_test(tc, errors_complete_with_their_code);
    tcase_add_test(tc, every_method_has_an_async_form);
    tcase_add_test(tc, a_request_times_out_alone);
    tcase_add_test(tc, run_returns_timeout_with_requests_in_flight);
    tcase_add_test(tc, daemon_killed_mid_request_completes_everything);
    tcase_add_test(tc, close_completes_what_is_in_flight);
    tcase_add_test(tc, a_callback_may_close_its_connection);
    tcase_add_test(tc, a_call_whose_callback_closed_c_returns_closed);
    tcase_add_test(tc, notify_gives_up_on_a_daemon_that_does_not_read);
    tcase_add_test(tc, a_timed_out_request_never_sent_is_taken_back);
    tcase_add_test(tc, a_malformed_response_breaks_the_connection);
    tcase_add_test(tc, downs_come_as_callbacks);
    tcase_add_test(tc, runs_inside_a_libevent_loop);
    tcase_add_test(tc, runs_inside_a_plain_poll_loop);
    tcase_add_test(tc, sync_calls_share_the_connection_with_async_ones);
    tcase_add_test(tc, multi_call_with_one_daemon_down);
    tcase_add_test(tc, multi_call_one_timeout_for_a_hung_daemon);
    tcase_add_test(tc, multi_call_noproc_is_bad);
    tcase_add_test(tc, abcast_reaches_every_live_daemon);
    tcase_add_test(tc, multi_call_does_not_wait_on_a_full_backlog);
    tcase_add_test(tc, the_scripting_guide_example_runs);
    tcase_add_test(tc, bench_pipelined_calls);
    suite_add_tcase(s, tc);

    tc = tcase_create("format");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_checked_fixture(tc, zone_setup, zone_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, build_every_directive);
    tcase_add_test(tc, build_literals);
    tcase_add_test(tc, build_substitutes_without_injection);
    tcase_add_test(tc, build_bad_formats_are_explained);
    tcase_add_test(tc, command_sends_one_line_requests);
    tcase_add_test(tc, command_waits_as_the_call_of_its_name);
    tcase_add_test(tc, command_bad_format_sends_nothing);
    tcase_add_test(tc, socket_path_resolution);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(client_suite());
}
