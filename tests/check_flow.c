/*
 * check_flow.c — flow control end to end: clients that send faster than a
 * server drains are slowed down, never dropped, and the daemon's memory
 * stays bounded while everyone else is served as usual.
 */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

/* The daemon's resident memory in KiB, from /proc/PID/status; -1 if gone. */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* A blocking socket to the daemon, for a child that only writes. */
static int plain_connect(const char *sock)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", sock);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0)
        return -1;
    return fd;
}

static bool write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* A child process: n casts ["seq", client, 0..n-1] to server as
 * notifications, written in 64 KiB batches, as fast as the daemon reads. */
static void flood(const char *sock, const char *server, int client, int n)
{
    int fd = plain_connect(sock);
    if (fd < 0)
        _exit(3);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (int i = 0; i < n; i++) {
        msgpack_pack_array(&pk, 3);
        msgpack_pack_int(&pk, 2);
        msgpack_pack_str_with_body(&pk, "cast", 4);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_str_with_body(&pk, server, strlen(server));
        msgpack_pack_array(&pk, 3);
        msgpack_pack_str_with_body(&pk, "seq", 3);
        msgpack_pack_int(&pk, client);
        msgpack_pack_int(&pk, i);
        if (sb.size >= 65536 || i == n - 1) {
            if (!write_all(fd, sb.data, sb.size))
                _exit(4);
            msgpack_sbuffer_clear(&sb);
        }
    }
    close(fd);
    _exit(0);
}

#define FLOOD_CLIENTS 4
#define FLOOD_CASTS 1000000
#define FLOOD_LIMIT 20000 /* the slow server's mailbox_limit */
/* Stated bound on the daemon's RSS during the flood: a mailbox of
 * FLOOD_LIMIT small messages is about 2 MiB, the rest is the daemon itself
 * (and, under AddressSanitizer, its shadow memory and quarantine). */
#define FLOOD_RSS_KIB (SANITIZED ? 128 * 1024 : 32 * 1024)

START_TEST(flood_one_slow_server)
{
    if (SANITIZED) /* a small quarantine, so the bound measures the daemon */
        setenv("ASAN_OPTIONS", "quarantine_size_mb=16:detect_leaks=1", 1);
    struct gsd *d = gsd_start();
    gsc *c = CLIENT(d);
    START_OPTS(c, "order", "slow", mp("{'work_us': 1}"), mp("{'mailbox_limit': %d}", FLOOD_LIMIT));
    START(c, "counter", "other", NULL);
    long rss0 = rss_kib(d->pid), peak = rss0;
    int64_t t0 = now_ms();

    pid_t kids[FLOOD_CLIENTS];
    for (int k = 0; k < FLOOD_CLIENTS; k++) {
        kids[k] = fork();
        ck_assert_int_ge(kids[k], 0);
        if (kids[k] == 0)
            flood(d->sock, "slow", k, FLOOD_CASTS / FLOOD_CLIENTS);
    }
    /* While they flood: sample RSS, and call another server now and then. */
    int running = FLOOD_CLIENTS, calls = 0;
    int64_t lat_max = 0, lat_sum = 0;
    while (running > 0 && now_ms() - t0 < 240000) {
        long rss = rss_kib(d->pid);
        if (rss > peak)
            peak = rss;
        int64_t c0 = now_ms();
        CALL(c, "other", mp("'increment'"));
        int64_t lat = now_ms() - c0;
        calls++;
        lat_sum += lat;
        if (lat > lat_max)
            lat_max = lat;
        sleep_ms(20);
        for (int k = 0; k < FLOOD_CLIENTS; k++) {
            int st;
            if (kids[k] > 0 && waitpid(kids[k], &st, WNOHANG) == kids[k]) {
                ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "flooding client %d failed",
                              k);
                kids[k] = 0;
                running--;
            }
        }
    }
    for (int k = 0; k < FLOOD_CLIENTS; k++)
        if (kids[k] > 0) {
            kill(kids[k], SIGKILL);
            waitpid(kids[k], NULL, 0);
        }
    ck_assert_msg(running == 0, "the flooding clients did not finish in 240 s");
    int64_t sent_ms = now_ms() - t0;

    /* The clients have written everything; the daemon may still be reading
     * the last of it from their sockets. */
    const msgpack_object *rep = NULL;
    WAIT_UNTIL(120000, (rep = OK_CALL_T(c, "slow", mp("'report'"), 120000),
                        MP_INT(mp_item(rep, 0)) >= FLOOD_CASTS));
    int64_t done_ms = now_ms() - t0;
    long rss = rss_kib(d->pid);
    if (rss > peak)
        peak = rss;
    ck_assert_mp_eq(rep, "[%d, 0]", FLOOD_CASTS);
    gsc_reply *r;
    const msgpack_object *info = OK(gsc_info(c, "slow", &r), &r);
    int64_t high = MP_INT(mp_get(info, "mailbox_high"));
    ck_assert_int_le(high, FLOOD_LIMIT);
    ck_assert_int_gt(calls, 0);
    fprintf(stderr,
            "flood: %d casts from %d clients in %lld ms (all sent after %lld ms), in order; "
            "mailbox high %lld of limit %d; daemon RSS %ld KiB at start, peak %ld KiB "
            "(bound %d KiB); %d calls to another server meanwhile, latency max %lld ms, "
            "mean %.2f ms\n",
            FLOOD_CASTS, FLOOD_CLIENTS, (long long)done_ms, (long long)sent_ms, (long long)high,
            FLOOD_LIMIT, rss0, peak, FLOOD_RSS_KIB, calls, (long long)lat_max,
            (double)lat_sum / calls);
    ck_assert_int_le(peak, FLOOD_RSS_KIB);
    client_close(&c);
    ck_assert_int_eq(gsd_stop(&d), 0);
}
END_TEST

/* A small mailbox_limit: a client that casts past it is held, and its
 * later request (a call to another server) waits its turn behind the held
 * cast, while a second client is served at once. */
START_TEST(held_client_resumes_in_order)
{
    struct gsd *d = gsd_start();
    gsc *c = CLIENT(d);
    START_OPTS(c, "order", "slow", mp("{'work_us': 2000}"), mp("{'mailbox_limit': 10}"));
    START(c, "counter", "other", NULL);
    struct raw *w = RAW_CONNECT(d);
    for (int i = 0; i < 200; i++)
        RAW_NOTIFY(w, "cast", mp("['slow', ['seq', 0, %d]]", i));
    RAW_REQUEST(w, 1, "call", mp("['slow', 'report', 'infinity']"));
    /* Held: the mailbox never holds more than its limit. */
    gsc_reply *r;
    for (int i = 0; i < 20; i++) {
        const msgpack_object *info = OK(gsc_info(c, "slow", &r), &r);
        ck_assert_int_le(MP_INT(mp_get(info, "mailbox")), 10);
        CALL(c, "other", mp("'get'"));
        sleep_ms(5);
    }
    const msgpack_object *resp = RAW_RECV(w, 10000);
    ck_assert_mp_eq(resp, "[1, 1, nil, [200, 0]]");
    const msgpack_object *info = OK(gsc_info(c, "slow", &r), &r);
    ck_assert_int_le(MP_INT(mp_get(info, "mailbox_high")), 10);
    raw_close(&w);
    client_close(&c);
    ck_assert_int_eq(gsd_stop(&d), 0);
}
END_TEST

/* A server that ends while clients are held: they resume, and each held
 * request is answered (by the server, if it got in before the stop, else
 * with exit or noproc); the connection goes on. */
START_TEST(held_client_sees_the_server_end)
{
    struct gsd *d = gsd_start();
    gsc *c = CLIENT(d);
    START_OPTS(c, "order", "slow", mp("{'work_us': 5000}"), mp("{'mailbox_limit': 5}"));
    struct raw *w = RAW_CONNECT(d);
    for (int i = 0; i < 50; i++)
        RAW_NOTIFY(w, "cast", mp("['slow', ['seq', 0, %d]]", i));
    RAW_REQUEST(w, 7, "call", mp("['slow', 'report', nil]"));
    sleep_ms(20);
    gsc_reply *r;
    OK(gsc_stop(c, "slow", mp("'shutdown'"), 10000, &r), &r);
    const msgpack_object *resp = RAW_RECV(w, 10000);
    ck_assert_int_eq(MP_INT(mp_item(resp, 1)), 7);
    const msgpack_object *code = mp_item(mp_item(resp, 2), 0);
    ck_assert(mp_eq(mp_item(resp, 2), "nil") || mp_eq(code, "'noproc'") || mp_eq(code, "'exit'"));
    RAW_REQUEST(w, 8, "ping", mp("[]"));
    ck_assert_mp_eq(RAW_RECV(w, 5000), "[1, 8, nil, 'pong']");
    raw_close(&w);
    client_close(&c);
    ck_assert_int_eq(gsd_stop(&d), 0);
}
END_TEST

/* A connection pipelining 400 calls of 2 ms each (800 ms of work) is served
 * in rounds: an idle client's ping, sent once the flood is under way, is
 * answered after a round of it, not after the flood (nor after the 256
 * calls one read used to run). Measured by how many of the flood's replies
 * had been sent when the pong came, not by time. */
START_TEST(an_idle_client_waits_a_round_not_a_flood)
{
    struct gsd *d = gsd_start();
    gsc *c = CLIENT(d);
    START(c, "forms", "busy", NULL);
    struct raw *flood = RAW_CONNECT(d), *idle = RAW_CONNECT(d);
    for (uint32_t i = 1; i <= 400; i++)
        RAW_REQUEST(flood, i, "call", mp("['busy', ['busy', 2], 'infinity']"));
    ck_assert_mp_eq(RAW_RECV(flood, 10000), "[1, 1, nil, 'done']"); /* under way */
    RAW_REQUEST(idle, 1, "ping", mp("[]"));
    ck_assert_mp_eq(RAW_RECV(idle, 10000), "[1, 1, nil, 'pong']");
    int answered = 1 + raw_drain(flood);
    ck_assert_msg(answered < 128, "the ping waited for %d of the flood's 400 calls", answered);
    while (answered < 400) {
        const msgpack_object *m = RAW_RECV(flood, 10000);
        ck_assert_int_eq(MP_INT(mp_item(m, 1)), ++answered); /* all of them, in order */
    }
    raw_close(&flood);
    raw_close(&idle);
    client_close(&c);
    ck_assert_int_eq(gsd_stop(&d), 0);
}
END_TEST

static Suite *flow_suite(void)
{
    Suite *s = suite_create("flow");
    TCase *tc = tcase_create("flow");
    tcase_set_timeout(tc, 400);
    tcase_add_test(tc, held_client_resumes_in_order);
    tcase_add_test(tc, held_client_sees_the_server_end);
    tcase_add_test(tc, flood_one_slow_server);
    tcase_add_test(tc, an_idle_client_waits_a_round_not_a_flood);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(flow_suite());
}
