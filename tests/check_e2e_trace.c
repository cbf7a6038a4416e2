/*
 * check_e2e_trace.c — the operator's view of what servers do: slowlog
 * and slowlog_reset, trace (each event, and a flood that the tracer does
 * not read), and crash reports (in the log, and over the journal's native
 * protocol under JOURNAL_STREAM).
 *
 * Each test starts its own daemon (e2e.h) and checks at the end that it
 * still exits 0 on SIGTERM; make check runs it again with every server
 * isolated.
 */
#include "e2e.h"

#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const msgpack_object *slowlog(gsc *c, const char *params)
{
    gsc_reply *r;
    return OK(gsc_request(c, "slowlog", mp(params), 5000, &r), &r);
}

/* ================================ slowlog ================================= */

START_TEST(slowlog_keeps_slow_callbacks_newest_first)
{
    gsc_reply *r;
    uint64_t p = probe("p", NULL), f = forms("f", NULL);
    ck_assert_mp_eq(slowlog(C, "[nil]"), "[]");
    int64_t before = unix_ms();
    ck_assert_mp_eq(CALL(C, "p", mp("['block', 150]")), "'ok'"); /* over the 100 ms default */
    ck_assert_mp_eq(CALL(C, "p", mp("['echo', 1]")), "1");       /* fast: not kept */
    ck_assert_mp_eq(CALL(C, "f", mp("['busy', 120]")), "'done'");
    int64_t after = unix_ms();
    const msgpack_object *all = slowlog(C, "[nil]");
    ck_assert_int_eq(all->type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(all->via.array.size, 2);
    const msgpack_object *e = mp_item(all, 0); /* the newest first */
    ck_assert_mp_eq(mp_get(e, "id"), "%u", f);
    ck_assert_mp_eq(mp_get(e, "name"), "'f'");
    ck_assert_mp_eq(mp_get(e, "module"), "'forms'");
    ck_assert_mp_eq(mp_get(e, "callback"), "'handle_call'");
    ck_assert_mp_eq(mp_get(e, "message"), "['busy', 120]");
    ck_assert_int_ge(MP_INT(mp_get(e, "duration_us")), 120000);
    e = mp_item(all, 1);
    ck_assert_mp_eq(mp_get(e, "id"), "%u", p);
    ck_assert_mp_eq(mp_get(e, "name"), "'p'");
    ck_assert_mp_eq(mp_get(e, "module"), "'probe'");
    ck_assert_mp_eq(mp_get(e, "callback"), "'handle_call'");
    ck_assert_mp_eq(mp_get(e, "message"), "['block', 150]");
    ck_assert_int_ge(MP_INT(mp_get(e, "duration_us")), 150000);
    ck_assert_int_lt(MP_INT(mp_get(e, "duration_us")), 150000 + 5000000);
    ck_assert_int_ge(MP_INT(mp_get(e, "at_ms")), before - 1000);
    ck_assert_int_le(MP_INT(mp_get(e, "at_ms")), after + 1000);
    /* A count: the newest that many; [] as [nil]. */
    const msgpack_object *one = slowlog(C, "[1]");
    ck_assert_uint_eq(one->via.array.size, 1);
    ck_assert_mp_eq(mp_get(mp_item(one, 0), "id"), "%u", f);
    ck_assert_mp_eq(slowlog(C, "[0]"), "[]");
    ck_assert_uint_eq(slowlog(C, "[]")->via.array.size, 2);
    /* A slow cast is kept too, under its callback's name. */
    cast("f", mp("['busy', 110]"));
    ck_assert(WAIT_UNTIL(5000, slowlog(C, "[nil]")->via.array.size == 3));
    e = mp_item(slowlog(C, "[1]"), 0);
    ck_assert_mp_eq(mp_get(e, "callback"), "'handle_cast'");
    ck_assert_mp_eq(mp_get(e, "message"), "['busy', 110]");
    /* reset empties it. */
    ck_assert_mp_eq(OK(gsc_request(C, "slowlog_reset", mp("[]"), 5000, &r), &r), "nil");
    ck_assert_mp_eq(slowlog(C, "[nil]"), "[]");
}
END_TEST

START_TEST(slowlog_bad_params_are_badarg)
{
    gsc_reply *r;
    ERR(gsc_request(C, "slowlog", mp("['x']"), 5000, &r), &r, "badarg");
    ERR(gsc_request(C, "slowlog", mp("[-1]"), 5000, &r), &r, "badarg");
    ERR(gsc_request(C, "slowlog", mp("[1, 2]"), 5000, &r), &r, "badarg");
    ERR(gsc_request(C, "slowlog_reset", mp("[1]"), 5000, &r), &r, "badarg");
}
END_TEST

/* A daemon with this configuration (isolating every test module in an
 * isolated run, as the harness's own configuration would). */
static struct gsd *start_configured(const char *body)
{
    char dir[] = "/tmp/gsd-trace-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char conf[64];
    snprintf(conf, sizeof conf, "%s/gsd.conf", dir);
    FILE *fp = fopen(conf, "w");
    ck_assert_ptr_nonnull(fp);
    fputs(body, fp);
    if (isolated_run())
        fputs("isolate = { probe = true; forms = true; counter = true; };\n", fp);
    fclose(fp);
    const char *extra[] = {"-c", conf, NULL};
    struct gsd *d = gsd_start_with(extra);
    unlink(conf);
    rmdir(dir);
    return d;
}

/* The configuration's threshold, length and message size: the list keeps
 * the newest; a long message is cut to a str that ends in "...". */
START_TEST(slowlog_follows_its_configuration)
{
    struct gsd *d = start_configured("limits = { slow_callback_ms = 20; slowlog_len = 2; "
                                     "slowlog_message_bytes = 32; };\n");
    gsc *c = CLIENT(d);
    START(c, "probe", "p", NULL);
    for (int i = 1; i <= 3; i++)
        ck_assert_mp_eq(CALL(c, "p", mp("['block', %d]", 25 + i)), "'ok'");
    ck_assert_mp_eq(CALL(c, "p", mp("['block', 1]")), "'ok'"); /* under the threshold */
    const msgpack_object *all = slowlog(c, "[nil]");
    ck_assert_uint_eq(all->via.array.size, 2); /* the newest two of three */
    ck_assert_mp_eq(mp_get(mp_item(all, 0), "message"), "['block', 28]");
    ck_assert_mp_eq(mp_get(mp_item(all, 1), "message"), "['block', 27]");
    /* A slow init with long args: its message is cut. */
    START(c, "forms", "s", mp("{'init': 'slow', 'ms': 30, 'pad': 'padding padding padding'}"));
    const msgpack_object *e = mp_item(slowlog(c, "[1]"), 0);
    ck_assert_mp_eq(mp_get(e, "callback"), "'init'");
    const msgpack_object *cut = mp_get(e, "message");
    ck_assert_int_eq(cut->type, MSGPACK_OBJECT_STR);
    ck_assert_uint_le(cut->via.str.size, 32);
    ck_assert(cut->via.str.size >= 3 &&
              memcmp(cut->via.str.ptr + cut->via.str.size - 3, "...", 3) == 0);
    ck_assert(memcmp(cut->via.str.ptr, "{\"init\"", 7) == 0);
    client_close(&c);
    ck_assert_int_eq(gsd_stop(&d), 0);
}
END_TEST

/* =============================== trace ==================================== */

/* The next trace notification on t: its params [id, name, event, data]. */
#define EVENT(t) next_event(__FILE__, __LINE__, (t))
static const msgpack_object *next_event(const char *file, int line, struct raw *t)
{
    const msgpack_object *m = raw_recv(t, 5000);
    ck_assert_msg(m != NULL, "%s:%d: no trace event within 5 s", file, line);
    ck_assert_msg(mp_eq(mp_item(m, 0), "2") && mp_eq(mp_item(m, 1), "'trace'"),
                  "%s:%d: not a trace notification: %s", file, line, mp_str(m));
    return mp_item(m, 2);
}

static struct raw *tracer(const char *server)
{
    struct raw *t = RAW_CONNECT(D);
    RAW_REQUEST(t, 1, "trace", mp("[%s, true]", server));
    ck_assert_mp_eq(RAW_RECV(t, 5000), "[1, 1, nil, nil]");
    return t;
}

START_TEST(trace_shows_each_event)
{
    uint64_t f = forms("f", NULL);
    struct raw *t = tracer("f");
    ck_assert_mp_eq(CALL(C, "f", mp("['reply', 7]")), "7");
    ck_assert_mp_eq(EVENT(t), "[%u, 'f', 'call', ['reply', 7]]", f);
    ck_assert_mp_eq(EVENT(t), "[%u, 'f', 'reply', 7]", f);
    cast("f", mp("['note', 1]"));
    ck_assert_mp_eq(EVENT(t), "[%u, 'f', 'cast', ['note', 1]]", f);
    send_msg("f", mp("'hello'"));
    ck_assert_mp_eq(EVENT(t), "[%u, 'f', 'info', 'hello']", f);
    /* A timeout a result asked for: the event when it fires, then handle_info. */
    ck_assert_mp_eq(CALL(C, "f", mp("['reply_timeout', 'x', 50]")), "'x'");
    ck_assert_mp_eq(EVENT(t), "[%u, 'f', 'call', ['reply_timeout', 'x', 50]]", f);
    ck_assert_mp_eq(EVENT(t), "[%u, 'f', 'reply', 'x']", f);
    ck_assert_mp_eq(EVENT(t), "[%u, 'f', 'timeout', 'timeout']", f);
    ck_assert_mp_eq(EVENT(t), "[%u, 'f', 'info', 'timeout']", f);
    /* A deferred reply (gs_reply_to) is a reply too. */
    struct raw *a = RAW_CONNECT(D);
    RAW_REQUEST(a, 1, "call", mp("['f', 'noreply', nil]"));
    ck_assert_mp_eq(EVENT(t), "[%u, 'f', 'call', 'noreply']", f);
    ck_assert_mp_eq(CALL(C, "f", mp("['release', 'later']")), "0");
    ck_assert_mp_eq(RAW_RECV(a, 5000), "[1, 1, nil, 'later']");
    ck_assert_mp_eq(EVENT(t), "[%u, 'f', 'call', ['release', 'later']]", f);
    ck_assert_mp_eq(EVENT(t), "[%u, 'f', 'reply', 'later']", f);
    ck_assert_mp_eq(EVENT(t), "[%u, 'f', 'reply', 0]", f);
    raw_close(&a);
    /* The end: "stop" with the reason, and tracing ends with the server. */
    stop("f", mp("'bye'"));
    ck_assert_mp_eq(EVENT(t), "[%u, 'f', 'stop', 'bye']", f);
    forms("f", NULL); /* the same name again: not traced */
    ck_assert_mp_eq(CALL(C, "f", mp("['reply', 1]")), "1");
    ck_assert_ptr_null(raw_recv(t, 200));
    raw_ping_ok(t, 9);
    raw_close(&t);
}
END_TEST

START_TEST(trace_off_stops_the_events)
{
    uint64_t f = forms(NULL, NULL);
    struct raw *t = RAW_CONNECT(D);
    RAW_REQUEST(t, 1, "trace", mp("[%u, true]", f));
    ck_assert_mp_eq(RAW_RECV(t, 5000), "[1, 1, nil, nil]");
    RAW_REQUEST(t, 2, "trace", mp("[%u, true]", f)); /* twice: still one trace */
    ck_assert_mp_eq(RAW_RECV(t, 5000), "[1, 2, nil, nil]");
    ck_assert_mp_eq(CALL(C, id_str(f), mp("['reply', 1]")), "1");
    ck_assert_mp_eq(EVENT(t), "[%u, nil, 'call', ['reply', 1]]", f);
    ck_assert_mp_eq(EVENT(t), "[%u, nil, 'reply', 1]", f);
    RAW_REQUEST(t, 3, "trace", mp("[%u, false]", f));
    ck_assert_mp_eq(RAW_RECV(t, 5000), "[1, 3, nil, nil]");
    ck_assert_mp_eq(CALL(C, id_str(f), mp("['reply', 2]")), "2");
    ck_assert_ptr_null(raw_recv(t, 200));
    /* The errors: noproc, badarg. */
    RAW_REQUEST(t, 4, "trace", mp("['ghost', true]"));
    CK_ERR_RESP(RAW_RECV(t, 5000), 4, "noproc");
    RAW_REQUEST(t, 5, "trace", mp("[%u, 'yes']", f));
    CK_ERR_RESP(RAW_RECV(t, 5000), 5, "badarg");
    /* A tracer that closes: the server goes on untraced. */
    RAW_REQUEST(t, 6, "trace", mp("[%u, true]", f));
    ck_assert_mp_eq(RAW_RECV(t, 5000), "[1, 6, nil, nil]");
    raw_close(&t);
    ck_assert_mp_eq(CALL(C, id_str(f), mp("['reply', 3]")), "3");
}
END_TEST

/* n casts "increment" to c from a connection of their own, then a call
 * "get" wanting want: casts per second. */
static double flood(const char *buf, size_t len, int n, int want)
{
    struct raw *a = RAW_CONNECT(D);
    int64_t t0 = now_ms();
    RAW_WRITE(a, buf, len);
    RAW_REQUEST(a, 1, "call", mp("['c', 'get', 'infinity']"));
    const msgpack_object *m = RAW_RECV(a, 60000);
    int64_t t1 = now_ms();
    ck_assert_mp_eq(m, "[1, 1, nil, %d]", want);
    raw_close(&a);
    return n * 1000.0 / (double)(t1 - t0 > 0 ? t1 - t0 : 1);
}

/* A traced counter under a flood of casts while its tracer reads nothing:
 * the counter keeps (nearly) its pace, the events that found no room are
 * dropped, and their count arrives once the tracer reads. */
START_TEST(trace_never_slows_the_traced_server)
{
    /* Under valgrind (GSD_TEST_WRAP) fewer, and the times tell nothing. */
    const char *wrap = getenv("GSD_TEST_WRAP");
    bool wrapped = wrap && *wrap;
    int n = wrapped ? 50000 : isolated_run() ? 200000 : 1000000;
    START(C, "counter", "c", mp("0"));
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (int i = 0; i < n; i++) {
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint8(&pk, 2);
        msgpack_pack_str_with_body(&pk, "cast", 4);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_str_with_body(&pk, "c", 1);
        msgpack_pack_str_with_body(&pk, "increment", 9);
    }
    flood(sb.data, sb.size, n, n); /* to warm up: buffers grown, pages touched */
    double untraced = flood(sb.data, sb.size, n, 2 * n);
    struct raw *t = tracer("c");
    double traced = flood(sb.data, sb.size, n, 3 * n);
    msgpack_sbuffer_destroy(&sb);
    fprintf(stderr,
            "trace flood: %d casts: untraced %.0f/s, traced (tracer not reading) %.0f/s "
            "(%.2fx)\n",
            n, untraced, traced, traced / untraced);
    ck_assert_msg(wrapped || traced > 0.3 * untraced, "traced %.0f/s against %.0f/s untraced",
                  traced, untraced);
    /* Now the tracer reads: every event is either sent or counted dropped
     * (the casts, the call and its reply). */
    uint64_t seen = 0, dropped = 0, drops = 0;
    int64_t end = now_ms() + 30000;
    while (seen + dropped < (uint64_t)n + 2 && now_ms() < end) {
        const msgpack_object *m = raw_recv(t, 5000);
        if (m == NULL)
            break;
        const msgpack_object *e = mp_item(m, 2);
        if (mp_eq(mp_item(e, 2), "'dropped'")) {
            dropped += (uint64_t)MP_INT(mp_item(e, 3));
            drops++;
        } else
            seen++;
    }
    fprintf(stderr, "trace flood: %llu events sent, %llu dropped (in %llu dropped events)\n",
            (unsigned long long)seen, (unsigned long long)dropped, (unsigned long long)drops);
    ck_assert_uint_gt(dropped, 0);
    ck_assert_uint_eq(seen + dropped, (uint64_t)n + 2);
    raw_ping_ok(t, 9);
    raw_close(&t);
}
END_TEST

/* gsctl trace prints one JSON line per event and exits 0 when the server
 * ends, or at SIGINT; gsctl slowlog N prints the newest N. */
START_TEST(gsctl_trace_and_slowlog)
{
    START(C, "counter", "c", mp("5"));
    const char *argv[] = {"trace", "c", NULL};
    struct proc *p = gsctl_spawn(D->sock, argv);
    /* Its trace is in place once a call shows up in it: call until one does. */
    ck_assert_mp_eq(CALL(C, "c", mp("'get'")), "5");
    sleep_ms(200);
    ck_assert_mp_eq(CALL(C, "c", mp("'increment'")), "6");
    cast("c", mp("['add', 2]"));
    stop("c", mp("'done'"));
    char *out = NULL, *err = NULL;
    ck_assert_int_eq(gsctl_wait(&p, 5000, &out, &err), 0);
    ck_assert_msg(strstr(out, "{\"id\":") != NULL &&
                      strstr(out, "\"name\":\"c\",\"event\":\"call\",\"data\":\"increment\"}\n") &&
                      strstr(out, "\"event\":\"reply\",\"data\":6}\n") &&
                      strstr(out, "\"event\":\"cast\",\"data\":[\"add\",2]}\n") &&
                      strstr(out, "\"event\":\"stop\",\"data\":\"done\"}\n"),
                  "gsctl trace printed %s (stderr %s)", out, err);
    /* SIGINT: exit 0. */
    START(C, "counter", "d", NULL);
    const char *argv2[] = {"trace", "d", NULL};
    p = gsctl_spawn(D->sock, argv2);
    sleep_ms(300);
    kill(p->pid, SIGINT);
    ck_assert_int_eq(gsctl_wait(&p, 5000, NULL, NULL), 0);
    /* An unknown server: exit 1, noproc. */
    const char *argv3[] = {"trace", "ghost", NULL};
    p = gsctl_spawn(D->sock, argv3);
    ck_assert_int_eq(gsctl_wait(&p, 5000, NULL, &err), 1);
    ck_assert_ptr_nonnull(strstr(err, "noproc"));
    /* slowlog N */
    probe("p", NULL);
    ck_assert_mp_eq(CALL(C, "p", mp("['block', 110]")), "'ok'");
    ck_assert_mp_eq(CALL(C, "p", mp("['block', 105]")), "'ok'");
    ck_assert_int_eq(run_gsctl(D, &out, NULL, "slowlog", "1", NULL), 0);
    ck_assert_msg(strncmp(out, "[{\"at_ms\":", 10) == 0 &&
                      strstr(out, "\"message\":[\"block\",105]}]\n") != NULL,
                  "gsctl slowlog 1 printed %s", out);
    ck_assert_int_eq(run_gsctl(D, &out, NULL, "slowlog", NULL), 0);
    ck_assert_ptr_nonnull(strstr(out, "[\"block\",110]"));
}
END_TEST

/* ============================ who may do it =============================== */

START_TEST(non_admin_peer_may_not_slowlog_or_trace)
{
    START(C, "counter", "c", mp("1"));
    static const struct as_nobody reqs[] = {
        {"slowlog", "[nil]", "unauthorized"},
        {"slowlog_reset", "[]", "unauthorized"},
        {"trace", "['c', true]", "unauthorized"},
        {"call", "['c', 'get', nil]", "ok"}, /* what anyone may do still works */
    };
    as_nobody(reqs, sizeof reqs / sizeof reqs[0]);
}
END_TEST

/* ============================= crash reports ============================== */

/* The log line of the crash report of server id, or NULL. */
static const char *report_line(uint64_t id)
{
    char head[64];
    snprintf(head, sizeof head, "crash report: server %llu ", (unsigned long long)id);
    const char *log = file_read(gsd_path(D, "gsd.log"));
    return log ? strstr(log, head) : NULL;
}

START_TEST(crash_report_in_the_log)
{
    gsc_reply *r;
    uint64_t p = probe("p", NULL);
    uint64_t c = START(C, "counter", "c", mp("41"));
    ERR(gsc_call(C, "p", mp("['stop_noreply', 'boom']"), 5000, &r), &r, "exit");
    stop("c", mp("['bad', 1]"));
    uint64_t q = probe("q", NULL);
    stop("q", NULL); /* normal: no report */
    uint64_t s = START(C, "counter", "s", NULL);
    stop("s", mp("['shutdown', 'x']")); /* clean too */
    ck_assert(WAIT_UNTIL(3000, report_line(c) != NULL));
    char want[512];
    snprintf(want, sizeof want,
             "crash report: server %llu (p, probe) ended: \"boom\"; last message (handle_call): "
             "[\"stop_noreply\", \"boom\"]; caller: pid %d uid %d",
             (unsigned long long)p, (int)getpid(), (int)getuid());
    const char *line = report_line(p);
    ck_assert_msg(line && strncmp(line, want, strlen(want)) == 0, "wanted %s, got %.300s", want,
                  line ? line : "(none)");
    ck_assert(strstr(line, "state: (no format_state)") != NULL);
    line = report_line(c);
    snprintf(want, sizeof want,
             "crash report: server %llu (c, counter) ended: [\"bad\", 1]; last message (stop): "
             "[\"bad\", 1]; caller: pid %d",
             (unsigned long long)c, (int)getpid());
    ck_assert_msg(strncmp(line, want, strlen(want)) == 0, "wanted %s, got %.300s", want, line);
    const char *state = isolated_run() ? "state: (isolated: not shown)" : "state: 41\n";
    ck_assert_msg(strstr(line, state) != NULL, "wanted %s in %.300s", state, line);
    ck_assert_ptr_null(report_line(q));
    ck_assert_ptr_null(report_line(s));
}
END_TEST

/* A field of a journal datagram (KEY=value\n, or KEY\n, a 64-bit LE
 * length, the value, \n): the value, terminated, or NULL. */
static const char *jfield(const char *d, size_t len, const char *key)
{
    static char out[8][4096];
    static int turn;
    size_t k = strlen(key);
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(d + i, '\n', len - i), *eq = memchr(d + i, '=', len - i);
        ck_assert_ptr_nonnull(nl);
        char *o = out[turn++ % 8];
        if (eq && eq < nl) { /* KEY=value */
            if ((size_t)(eq - d) - i == k && memcmp(d + i, key, k) == 0) {
                snprintf(o, 4096, "%.*s", (int)(nl - eq - 1), eq + 1);
                return o;
            }
            i = (size_t)(nl - d) + 1;
        } else { /* KEY\n, the length, the value, \n */
            bool match = (size_t)(nl - d) - i == k && memcmp(d + i, key, k) == 0;
            size_t at = (size_t)(nl - d) + 1;
            ck_assert_uint_le(at + 8, len);
            uint64_t n = 0;
            for (int b = 7; b >= 0; b--)
                n = n << 8 | (uint8_t)d[at + (size_t)b];
            ck_assert_uint_le(at + 8 + n + 1, len);
            ck_assert_int_eq(d[at + 8 + n], '\n');
            if (match) {
                snprintf(o, 4096, "%.*s", (int)n, d + at + 8);
                return o;
            }
            i = at + 8 + n + 1;
        }
    }
    return NULL;
}

/* Under journald: one datagram per crash report, with its fields. */
START_TEST(crash_report_to_the_journal)
{
    char dir[] = "/tmp/gsd-journal-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s/journal", dir);
    int j = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(j, 0);
    ck_assert_int_eq(bind(j, (struct sockaddr *)&addr, sizeof addr), 0);
    struct timeval tv = {5, 0};
    setsockopt(j, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setenv("JOURNAL_STREAM", "8:12345", 1);
    setenv("GSD_JOURNAL_SOCKET", addr.sun_path, 1);
    struct gsd *d = gsd_start();
    unsetenv("JOURNAL_STREAM");
    unsetenv("GSD_JOURNAL_SOCKET");
    gsc *c = CLIENT(d);
    gsc_reply *r;
    uint64_t p = START(c, "probe", "p", NULL);
    ERR(gsc_call(c, "p", mp("['stop_noreply', 'boom']"), 5000, &r), &r, "exit");
    static char buf[65536];
    ssize_t n = recv(j, buf, sizeof buf, 0);
    ck_assert_int_gt(n, 0);
    size_t len = (size_t)n;
    ck_assert_str_eq(jfield(buf, len, "PRIORITY"), "3");
    ck_assert_str_eq(jfield(buf, len, "GSD_SERVER"), id_str(p));
    ck_assert_str_eq(jfield(buf, len, "GSD_SERVER_NAME"), "p");
    ck_assert_str_eq(jfield(buf, len, "GSD_MODULE"), "probe");
    ck_assert_str_eq(jfield(buf, len, "GSD_REASON"), "\"boom\"");
    ck_assert_str_eq(jfield(buf, len, "GSD_CALLBACK"), "handle_call");
    ck_assert_str_eq(jfield(buf, len, "GSD_LAST_MESSAGE"), "[\"stop_noreply\", \"boom\"]");
    char caller[64];
    snprintf(caller, sizeof caller, "pid %d uid %d", (int)getpid(), (int)getuid());
    ck_assert(strncmp(jfield(buf, len, "GSD_CALLER"), caller, strlen(caller)) == 0);
    ck_assert_ptr_null(jfield(buf, len, "GSD_STATE")); /* probe has no format_state */
    ck_assert(strstr(jfield(buf, len, "MESSAGE"), "crash report: server") != NULL);
    /* A reason with a newline in it: the binary form; and a state. */
    uint64_t k = START(c, "counter", "k", mp("41"));
    ck_assert_int_eq(gsc_stop(c, "k", mp("'two\nlines'"), 5000, &r), GSC_OK);
    gsc_reply_destroy(&r);
    n = recv(j, buf, sizeof buf, 0);
    ck_assert_int_gt(n, 0);
    len = (size_t)n;
    ck_assert_str_eq(jfield(buf, len, "GSD_SERVER"), id_str(k));
    ck_assert_str_eq(jfield(buf, len, "GSD_REASON"), "\"two\nlines\"");
    ck_assert_str_eq(jfield(buf, len, "GSD_CALLBACK"), "stop");
    if (isolated_run())
        ck_assert_ptr_null(jfield(buf, len, "GSD_STATE"));
    else
        ck_assert_str_eq(jfield(buf, len, "GSD_STATE"), "41");
    if (isolated_run()) { /* a worker that crashes: what it was running */
        uint64_t w = START(c, "probe", "w", NULL);
        ERR(gsc_call(c, "w", mp("['crash', 'segv']"), 5000, &r), &r, "exit");
        n = recv(j, buf, sizeof buf, 0);
        ck_assert_int_gt(n, 0);
        len = (size_t)n;
        ck_assert_str_eq(jfield(buf, len, "GSD_SERVER"), id_str(w));
        ck_assert_str_eq(jfield(buf, len, "GSD_REASON"), "[\"crashed\", \"SIGSEGV\"]");
        ck_assert_str_eq(jfield(buf, len, "GSD_CALLBACK"), "handle_call");
        ck_assert_str_eq(jfield(buf, len, "GSD_LAST_MESSAGE"), "[\"crash\", \"segv\"]");
    }
    /* A clean end sends nothing. */
    START(c, "probe", "q", NULL);
    ck_assert_int_eq(gsc_stop(c, "q", NULL, 5000, &r), GSC_OK);
    gsc_reply_destroy(&r);
    ck_assert_int_lt(recv(j, buf, sizeof buf, MSG_DONTWAIT), 0);
    client_close(&c);
    ck_assert_int_eq(gsd_stop(&d), 0);
    close(j);
    unlink(addr.sun_path);
    rmdir(dir);
}
END_TEST

static Suite *trace_suite(void)
{
    Suite *s = suite_create("e2e_trace");
    TCase *tc;

    tc = tcase_create("slowlog");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, slowlog_keeps_slow_callbacks_newest_first);
    tcase_add_test(tc, slowlog_bad_params_are_badarg);
    tcase_add_test(tc, non_admin_peer_may_not_slowlog_or_trace);
    suite_add_tcase(s, tc);

    tc = tcase_create("slowlog_configured");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, slowlog_follows_its_configuration);
    suite_add_tcase(s, tc);

    tc = tcase_create("trace");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, trace_shows_each_event);
    tcase_add_test(tc, trace_off_stops_the_events);
    tcase_add_test(tc, trace_never_slows_the_traced_server);
    tcase_add_test(tc, gsctl_trace_and_slowlog);
    suite_add_tcase(s, tc);

    tc = tcase_create("crash_reports");
    tcase_add_checked_fixture(tc, e2e_setup, e2e_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, crash_report_in_the_log);
    suite_add_tcase(s, tc);

    tc = tcase_create("crash_reports_journal");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, crash_report_to_the_journal);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    let_workers_crash(); /* its crash reports come from a worker's SIGSEGV, isolated */
    return run_suite(trace_suite());
}
