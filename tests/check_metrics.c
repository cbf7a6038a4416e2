/*
 * check_metrics.c — the Prometheus exposition: the `metrics` method's text
 * (every family, HELP and TYPE, valid names, values that move, histograms
 * that add up), the same text at GET /metrics over HTTP where the
 * configuration names metrics.listen (other paths 404), a listen address
 * that is bad or taken refusing the start, `promtool check metrics`
 * accepting it, and a real Prometheus server scraping it.
 *
 * promtool and prometheus come with Debian's prometheus package (make deps
 * installs it): without them those tests fail, saying so.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

/* A TCP port on 127.0.0.1 free a moment ago (the kernel's pick). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* GET path from 127.0.0.1:port as HTTP/1.0, within wait_ms: the whole
 * response (malloc'd, yours), or NULL if none came. */
static char *http_get(int port, const char *path, int wait_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return NULL;
    }
    char *req; /* a path may be long: the test of oversized headers sends one */
    int n = asprintf(&req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n\r\n", path, port);
    if (n < 0 || write(fd, req, (size_t)n) != n) {
        free(n < 0 ? NULL : req);
        close(fd);
        return NULL;
    }
    free(req);
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap);
    int64_t end = now_ms() + wait_ms;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)(end - now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        if (cap - len < 4096)
            buf = realloc(buf, cap *= 2);
        ssize_t got = read(fd, buf + len, cap - len - 1);
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    if (len == 0) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

static int http_status(const char *resp)
{
    int code = 0;
    return resp && sscanf(resp, "HTTP/1.%*d %d", &code) == 1 ? code : -1;
}

static const char *http_body(const char *resp)
{
    const char *b = resp ? strstr(resp, "\r\n\r\n") : NULL;
    return b ? b + 4 : "";
}

/* The `metrics` method's text (malloc'd, yours). */
static char *metrics_text(gsc *c)
{
    gsc_reply *r;
    const msgpack_object *v = OK(gsc_request(c, "metrics", NULL, 5000, &r), &r);
    ck_assert_int_eq(v->type, MSGPACK_OBJECT_STR);
    return strndup(v->via.str.ptr, v->via.str.size);
}

/* The value of the sample `series` (name and labels as written), or -1. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, series, n) == 0 && l[n] == ' ')
            return strtod(l + n + 1, NULL);
    return -1;
}

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, line, n) == 0 && (l[n] == '\n' || l[n] == '\0'))
            return true;
    return false;
}

static bool metric_name(const char *s, size_t n)
{
    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
            return false;
    return true;
}

/* Checks the text as the exposition format wants it: each family's HELP
 * and TYPE once, before its samples; names valid, gsd_ ones; counters
 * named _total; histograms of _bucket (le, "+Inf" last, cumulative),
 * _sum and _count, the +Inf bucket equal to _count. */
static void check_format(const char *text)
{
    char family[128] = "", type[32] = "";
    double last_bucket = -1, inf = -1;
    bool help = false;
    ck_assert_msg(text[0] && text[strlen(text) - 1] == '\n', "the text ends with a newline");
    for (const char *l = text; *l;) {
        const char *e = strchr(l, '\n');
        ck_assert_ptr_nonnull(e);
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)(e - l), l);
        l = e + 1;
        char name[128], what[32];
        if (sscanf(line, "# HELP %127s", name) == 1) {
            ck_assert_msg(strcmp(name, family) != 0, "HELP twice for %s", name);
            snprintf(family, sizeof family, "%s", name);
            help = true;
            ck_assert_msg(strncmp(name, "gsd_", 4) == 0, "%s is not gsd_", name);
            continue;
        }
        if (sscanf(line, "# TYPE %127s %31s", name, what) == 2) {
            ck_assert_msg(help && strcmp(name, family) == 0, "TYPE of %s without its HELP", name);
            snprintf(type, sizeof type, "%s", what);
            ck_assert_msg(strcmp(type, "gauge") == 0 || strcmp(type, "counter") == 0 ||
                              strcmp(type, "histogram") == 0,
                          "type %s", type);
            if (strcmp(type, "counter") == 0)
                ck_assert_msg(strlen(name) > 6 && strcmp(name + strlen(name) - 6, "_total") == 0,
                              "counter %s not named _total", name);
            help = false;
            continue;
        }
        ck_assert_msg(line[0] != '#', "a comment that is neither HELP nor TYPE: %s", line);
        size_t n = strcspn(line, "{ ");
        ck_assert_msg(metric_name(line, n), "bad name in %s", line);
        ck_assert_msg(type[0], "a sample before any TYPE: %s", line);
        size_t fl = strlen(family);
        ck_assert_msg(strncmp(line, family, fl) == 0, "%s is not of family %s", line, family);
        const char *suffix = line + fl;
        const char *sp = strrchr(line, ' ');
        ck_assert_ptr_nonnull(sp);
        char *end;
        double v = strtod(sp + 1, &end);
        ck_assert_msg(*end == '\0' && v >= 0, "bad value in %s", line);
        if (strcmp(type, "histogram") != 0) {
            ck_assert_msg(suffix[0] == '{' || suffix[0] == ' ', "%s: not %s", line, family);
            continue;
        }
        if (strncmp(suffix, "_bucket{", 8) == 0) {
            const char *le = strstr(line, ",le=\"");
            ck_assert_ptr_nonnull(le);
            le++;
            ck_assert_msg(v >= last_bucket, "buckets not cumulative at %s", line);
            last_bucket = v;
            if (strncmp(le, "le=\"+Inf\"", 9) == 0)
                inf = v;
        } else if (strncmp(suffix, "_sum{", 5) == 0) {
            ck_assert_msg(inf >= 0, "_sum before the +Inf bucket: %s", line);
        } else if (strncmp(suffix, "_count{", 7) == 0) {
            ck_assert_msg(inf >= 0 && v == inf, "_count %g is not the +Inf bucket's %g: %s", v, inf,
                          line);
            last_bucket = inf = -1;
        } else
            ck_abort_msg("a histogram sample that is not _bucket, _sum or _count: %s", line);
    }
}

static const char *const families[][2] = {
    {"gsd_info", "gauge"},
    {"gsd_uptime_seconds", "gauge"},
    {"gsd_servers", "gauge"},
    {"gsd_modules", "gauge"},
    {"gsd_requests_total", "counter"},
    {"gsd_messages_handled_total", "counter"},
    {"gsd_errors_total", "counter"},
    {"gsd_crashes_total", "counter"},
    {"gsd_restarts_total", "counter"},
    {"gsd_mailbox_messages", "gauge"},
    {"gsd_mailbox_bytes", "gauge"},
    {"gsd_memory_rss_bytes", "gauge"},
    {"gsd_memory_budget_bytes", "gauge"},
    {"gsd_memory_used_bytes", "gauge"},
    {"gsd_connections", "gauge"},
    {"gsd_workers", "gauge"},
    {"gsd_callback_duration_seconds", "histogram"},
};

static void check_families(const char *text)
{
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        char line[160];
        snprintf(line, sizeof line, "# TYPE %s %s", families[i][0], families[i][1]);
        ck_assert_msg(has_line(text, line), "no \"%s\" in:\n%s", line, text);
    }
}

/* A configuration file in d's directory-to-be: metrics.listen on port. */
static const char *listen_conf(const char *listen)
{
    static char path[128];
    const char *root = getenv("GSD_TEST_ROOT");
    snprintf(path, sizeof path, "%s/metrics-XXXXXX", root && *root ? root : "/tmp");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "metrics = { listen = \"%s\"; };\n", listen);
    fclose(f);
    return path;
}

static struct gsd *start_listening(int *port)
{
    char listen[64];
    *port = free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%d", *port);
    const char *extra[] = {"-c", listen_conf(listen), NULL};
    return gsd_start_with(extra);
}

/* ---- the method --------------------------------------------------------- */

START_TEST(metrics_has_every_family_in_the_format)
{
    struct gsd *d = gsd_start();
    gsc *c = CLIENT(d);
    START(c, "counter", "a", NULL);
    CALL(c, "a", mp("'increment'"));
    char *t = metrics_text(c);
    check_families(t);
    check_format(t);
    const char *info = strstr(t, "\ngsd_info{version=\"");
    ck_assert_ptr_nonnull(info);
    ck_assert_ptr_nonnull(strstr(info, "\",protocol=\"1\"} 1\n"));
    ck_assert_double_eq(sample(t, "gsd_servers{module=\"counter\",status=\"running\"}"), 1);
    ck_assert_double_eq(sample(t, "gsd_servers{module=\"counter\",status=\"suspended\"}"), 0);
    ck_assert_double_ge(sample(t, "gsd_connections"), 1);
    ck_assert_double_gt(sample(t, "gsd_memory_rss_bytes"), 0);
    ck_assert_double_gt(sample(t, "gsd_memory_budget_bytes"), 0);
    ck_assert_double_ge(sample(t, "gsd_memory_used_bytes"), 0);
    /* Nothing is labelled per server. */
    ck_assert_ptr_null(strstr(t, "server=\""));
    ck_assert_ptr_null(strstr(t, "name=\""));
    free(t);
    client_close(&c);
    ck_assert_int_eq(gsd_stop(&d), 0);
}
END_TEST

START_TEST(metrics_values_move)
{
    struct gsd *d = gsd_start();
    gsc *c = CLIENT(d);
    START(c, "counter", "a", NULL);
    START(c, "probe", "p", NULL);
    char *before = metrics_text(c);
    enum { N = 50 };
    for (int i = 0; i < N; i++)
        CALL(c, "a", mp("'increment'"));
    gsc_reply *r;
    OK(gsc_cast(c, "a", mp("'increment'"), &r), &r);
    OK(gsc_send(c, "p", mp("'hello'"), &r), &r);
    ERR(gsc_call(c, "ghost", mp("'x'"), 1000, &r), &r, "noproc");
    ck_assert_mp_eq(CALL(c, "p", mp("['block', 20]")), "'ok'"); /* one slow callback */
    CALL(c, "a", mp("'get'"));                                  /* after the cast and the send */
    CALL(c, "p", mp("'infos'"));
    OK(gsc_request(c, "suspend", mp("['a']"), 5000, &r), &r);
    char *after = metrics_text(c);
    check_format(after);

    const char *call = "gsd_messages_handled_total{kind=\"call\"}";
    ck_assert_double_ge(sample(after, call) - sample(before, call), N + 3);
    const char *cast = "gsd_messages_handled_total{kind=\"cast\"}";
    ck_assert_double_eq(sample(after, cast) - sample(before, cast), 1);
    const char *info = "gsd_messages_handled_total{kind=\"info\"}";
    ck_assert_double_eq(sample(after, info) - sample(before, info), 1);
    const char *req = "gsd_requests_total{method=\"call\"}";
    ck_assert_double_ge(sample(after, req) - sample(before, req), N + 3);
    const char *noproc = "gsd_errors_total{code=\"noproc\"}";
    ck_assert_double_eq(sample(after, noproc) - sample(before, noproc), 1);
    ck_assert_double_eq(sample(after, "gsd_servers{module=\"counter\",status=\"suspended\"}"), 1);
    ck_assert_double_eq(sample(after, "gsd_servers{module=\"probe\",status=\"running\"}"), 1);

    /* counter's handle_call: N + 1 more, every one in some bucket. */
    const char *count =
        "gsd_callback_duration_seconds_count{module=\"counter\",callback=\"handle_call\"}";
    ck_assert_double_eq(sample(after, count) - sample(before, count), N + 1);
    ck_assert_double_eq(sample(after,
                               "gsd_callback_duration_seconds_bucket{module=\"counter\",callback="
                               "\"handle_call\",le=\"+Inf\"}"),
                        sample(after, count));
    ck_assert_double_eq(
        sample(after,
               "gsd_callback_duration_seconds_count{module=\"counter\",callback=\"handle_cast\"}"),
        1);
    ck_assert_double_eq(
        sample(after, "gsd_callback_duration_seconds_count{module=\"counter\",callback=\"init\"}"),
        1);
    /* The 20 ms block: above 8.192 ms, within 32.768 ms (the probe's
     * other calls are fast), and in the sum. */
    const char *probe_calls =
        "gsd_callback_duration_seconds_count{module=\"probe\",callback=\"handle_call\"}";
    double pc = sample(after, probe_calls);
    ck_assert_double_eq(pc, 2);
    ck_assert_double_eq(sample(after, "gsd_callback_duration_seconds_bucket{module=\"probe\","
                                      "callback=\"handle_call\",le=\"0.008192\"}"),
                        pc - 1);
    ck_assert_double_eq(sample(after, "gsd_callback_duration_seconds_bucket{module=\"probe\","
                                      "callback=\"handle_call\",le=\"0.032768\"}"),
                        pc);
    ck_assert_double_ge(
        sample(after,
               "gsd_callback_duration_seconds_sum{module=\"probe\",callback=\"handle_call\"}"),
        0.019);
    ck_assert_double_eq(
        sample(after,
               "gsd_callback_duration_seconds_count{module=\"probe\",callback=\"handle_info\"}"),
        1);

    /* A crash and a supervised restart. */
    const char *crashes = "gsd_crashes_total", *restarts = "gsd_restarts_total";
    START_OPTS(c, "probe", "perm", NULL, mp("{'restart': 'permanent'}"));
    ERR(gsc_call(c, "perm", mp("['stop_noreply', 'boom']"), 5000, &r), &r, "exit");
    char *t = NULL;
    ck_assert(WAIT_UNTIL(
        5000, (free(t), t = metrics_text(c), sample(t, restarts) - sample(after, restarts) >= 1)));
    ck_assert_double_eq(sample(t, crashes) - sample(after, crashes), 1);
    free(t);
    free(before);
    free(after);
    client_close(&c);
    ck_assert_int_eq(gsd_stop(&d), 0);
}
END_TEST

START_TEST(histograms_go_on_across_a_reload)
{
    struct gsd *d = gsd_start();
    gsc *c = CLIENT(d);
    START(c, "counter", "a", NULL);
    for (int i = 0; i < 3; i++)
        CALL(c, "a", mp("'increment'"));
    gsc_reply *r;
    ck_assert_mp_eq(mp_get(OK(gsc_reload(c, "counter", &r), &r), "upgraded"), "1");
    CALL(c, "a", mp("'get'"));
    char *t = metrics_text(c);
    check_format(t);
    ck_assert_double_eq(
        sample(t,
               "gsd_callback_duration_seconds_count{module=\"counter\",callback=\"handle_call\"}"),
        4);
    ck_assert_double_eq(sample(t, "gsd_servers{module=\"counter\",status=\"running\"}"), 1);
    free(t);
    client_close(&c);
    ck_assert_int_eq(gsd_stop(&d), 0);
}
END_TEST

/* ---- HTTP --------------------------------------------------------------- */

START_TEST(http_serves_metrics_and_404_elsewhere)
{
    int port;
    struct gsd *d = start_listening(&port);
    gsc *c = CLIENT(d);
    START(c, "counter", "a", NULL);
    CALL(c, "a", mp("'increment'"));
    char *resp = http_get(port, "/metrics", 10000);
    ck_assert_msg(resp != NULL, "no answer at 127.0.0.1:%d/metrics", port);
    ck_assert_int_eq(http_status(resp), 200);
    ck_assert_msg(strcasestr(resp, "\r\nContent-Type: text/plain; version=0.0.4") != NULL, "%s",
                  resp);
    const char *body = http_body(resp);
    check_families(body);
    check_format(body);
    ck_assert_double_eq(
        sample(body, "gsd_callback_duration_seconds_count{module=\"counter\",callback=\"init\"}"),
        1);
    /* The same as the method's, but for what moves between the two. */
    char *t = metrics_text(c);
    ck_assert_double_eq(sample(body, "gsd_servers{module=\"counter\",status=\"running\"}"),
                        sample(t, "gsd_servers{module=\"counter\",status=\"running\"}"));
    free(t);
    free(resp);

    resp = http_get(port, "/other", 10000);
    ck_assert_int_eq(http_status(resp), 404);
    free(resp);
    resp = http_get(port, "/", 10000);
    ck_assert_int_eq(http_status(resp), 404);
    free(resp);
    /* A request with headers over the limit is refused; the daemon serves on. */
    char big[16384];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char path[sizeof big + 16];
    snprintf(path, sizeof path, "/metrics?%s", big);
    resp = http_get(port, path, 10000);
    ck_assert_int_ne(http_status(resp), 200);
    free(resp);
    resp = http_get(port, "/metrics", 10000);
    ck_assert_int_eq(http_status(resp), 200);
    free(resp);
    gsc_reply *r;
    ck_assert_mp_eq(OK(gsc_ping(c, &r), &r), "'pong'");
    client_close(&c);
    ck_assert_int_eq(gsd_stop(&d), 0);
}
END_TEST

START_TEST(sighup_keeps_the_address_until_the_next_start)
{
    char listen[64];
    int port = free_port(), other = free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    const char *conf = listen_conf(listen);
    const char *extra[] = {"-c", conf, NULL};
    struct gsd *d = gsd_start_with(extra);
    FILE *f = fopen(conf, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "metrics = { listen = \"127.0.0.1:%d\"; };\n", other);
    fclose(f);
    ck_assert_int_eq(kill(d->pid, SIGHUP), 0);
    ck_assert(WAIT_UNTIL(
        5000, file_read(d->log) &&
                  strstr(file_read(d->log), "metrics.listen changes at the next start") != NULL));
    char *resp = http_get(port, "/metrics", 10000);
    ck_assert_int_eq(http_status(resp), 200);
    free(resp);
    ck_assert_int_eq(gsd_stop(&d), 0);
}
END_TEST

/* gsd run on conf until it exits (bounded): its exit status and log. */
static int run_gsd(const char *conf, char **log)
{
    char cmd[1024];
    const char *root = getenv("GSD_TEST_ROOT");
    snprintf(cmd, sizeof cmd,
             "d=$(mktemp -d %s/gsd-bad-XXXXXX) && timeout 10 %s/gsd -s $d/gsd.sock -M %s/modules "
             "-c %s 2>&1; echo \"rc=$?\"; test -e $d/gsd.sock && echo SOCKET-LEFT; rm -rf $d",
             root && *root ? root : "/tmp", gsd_build(), gsd_build(), conf);
    int st;
    char *out = shell_output(cmd, &st);
    *log = out;
    const char *rc = strstr(out, "rc=");
    return rc ? atoi(rc + 3) : -1;
}

START_TEST(bad_or_taken_listen_refuses_the_start)
{
    char *log;
    ck_assert_int_eq(run_gsd(listen_conf("no-port-here"), &log), 2);
    ck_assert_msg(strstr(log, "listen: must be \"HOST:PORT\""), "%s", log);
    ck_assert_int_eq(run_gsd(listen_conf("127.0.0.1:0x50"), &log), 2);

    /* A port someone else holds: exit status 1 (cannot listen), said once,
     * and the socket file it had made removed. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 1), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char listen_at[64];
    snprintf(listen_at, sizeof listen_at, "127.0.0.1:%d", ntohs(a.sin_port));
    ck_assert_int_eq(run_gsd(listen_conf(listen_at), &log), 1);
    close(fd);
    const char *at = strstr(log, "cannot listen on");
    ck_assert_msg(at != NULL, "%s", log);
    ck_assert_ptr_null(strstr(at + 1, "cannot listen on"));
    ck_assert_ptr_null(strstr(log, "SOCKET-LEFT"));
}
END_TEST

/* ---- promtool and Prometheus -------------------------------------------- */

static void need(const char *tool)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
    ck_assert_msg(system(cmd) == 0,
                  "%s is not installed: it comes with Debian's prometheus package "
                  "(make deps, or apt-get install prometheus)",
                  tool);
}

START_TEST(promtool_accepts_the_text)
{
    need("promtool");
    int port;
    struct gsd *d = start_listening(&port);
    gsc *c = CLIENT(d);
    START(c, "counter", "a", NULL);
    START(c, "stack", NULL, NULL);
    for (int i = 0; i < 10; i++)
        CALL(c, "a", mp("'increment'"));
    gsc_reply *r;
    ERR(gsc_call(c, "ghost", mp("'x'"), 1000, &r), &r, "noproc");
    char *t = metrics_text(c);
    char path[160];
    snprintf(path, sizeof path, "%s", gsd_path(d, "metrics.txt"));
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(t, f);
    fclose(f);
    char cmd[512];
    int st;
    snprintf(cmd, sizeof cmd, "timeout 30 promtool check metrics < %s 2>&1", path);
    char *out = shell_output(cmd, &st);
    ck_assert_msg(st == 0, "promtool check metrics: status %d:\n%s", st, out);
    /* And what HTTP serves. */
    snprintf(cmd, sizeof cmd,
             "exec 3<>/dev/tcp/127.0.0.1/%d && printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && "
             "timeout 10 cat <&3 | sed '1,/^\\r$/d' | timeout 30 promtool check metrics 2>&1",
             port);
    char bash[600];
    snprintf(bash, sizeof bash, "bash -c \"%s\"", cmd);
    out = shell_output(bash, &st);
    ck_assert_msg(st == 0, "promtool check metrics (HTTP): status %d:\n%s", st, out);
    free(t);
    client_close(&c);
    ck_assert_int_eq(gsd_stop(&d), 0);
}
END_TEST

/* Stops prometheus by its PID: SIGTERM, up to 10 s, then SIGKILL. */
static void stop_pid(pid_t pid)
{
    int st;
    kill(pid, SIGTERM);
    for (int i = 0; i < 1000; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return;
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
}

START_TEST(prometheus_scrapes_the_daemon)
{
    need("prometheus");
    int port;
    struct gsd *d = start_listening(&port);
    gsc *c = CLIENT(d);
    START(c, "counter", "a", NULL);
    for (int i = 0; i < 5; i++)
        CALL(c, "a", mp("'increment'"));

    char conf[160], data[160], log[160];
    snprintf(conf, sizeof conf, "%s", gsd_path(d, "prometheus.yml"));
    snprintf(data, sizeof data, "%s", gsd_path(d, "prometheus-data"));
    snprintf(log, sizeof log, "%s", gsd_path(d, "prometheus.log"));
    FILE *f = fopen(conf, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "scrape_configs:\n"
            "  - job_name: gsd\n"
            "    static_configs:\n"
            "      - targets: ['127.0.0.1:%d']\n",
            port);
    fclose(f);
    int web = free_port();
    char cfg_arg[200], data_arg[200], web_arg[64];
    snprintf(cfg_arg, sizeof cfg_arg, "--config.file=%s", conf);
    snprintf(data_arg, sizeof data_arg, "--storage.tsdb.path=%s", data);
    snprintf(web_arg, sizeof web_arg, "--web.listen-address=127.0.0.1:%d", web);

    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        daemon_child_stdio(parent, log, -1); /* dies with this test, whatever happens */
        execlp("prometheus", "prometheus", cfg_arg, data_arg, web_arg, (char *)NULL);
        _exit(127);
    }
    /* Up to 30 s for its first scrape to be queryable. */
    char path[256], *resp = NULL;
    snprintf(path, sizeof path,
             "/api/v1/query?query=gsd_messages_handled_total%%7Bjob%%3D%%22gsd%%22%%2Ckind%%3D%%"
             "22call%%22%%7D");
    int64_t end = now_ms() + 30000;
    bool got = false;
    while (!got && now_ms() < end) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            pid = -1;
            break;
        }
        free(resp);
        resp = http_get(web, path, 2000);
        got = http_status(resp) == 200 && strstr(resp, "\"result\":[{") != NULL;
        if (!got)
            sleep_ms(250);
    }
    char *up = http_get(web, "/api/v1/query?query=up%7Bjob%3D%22gsd%22%7D", 2000);
    if (pid > 0)
        stop_pid(pid);
    ck_assert_msg(pid > 0, "prometheus exited early; its log:\n%s", file_read(log));
    ck_assert_msg(got, "no gsd sample within 30 s: %s\nprometheus log:\n%s",
                  resp ? resp : "(no answer)", file_read(log));
    const char *body = http_body(resp);
    fprintf(stderr, "prometheus: %s\n", body);
    fprintf(stderr, "prometheus: %s\n", http_body(up));
    ck_assert_ptr_nonnull(strstr(body, "\"status\":\"success\""));
    ck_assert_ptr_nonnull(strstr(body, "\"__name__\":\"gsd_messages_handled_total\""));
    ck_assert_ptr_nonnull(strstr(body, "\"instance\":\"127.0.0.1:"));
    /* Its value: at least the five calls. */
    const char *v = strstr(body, "\"value\":[");
    ck_assert_ptr_nonnull(v);
    v = strchr(v, ',');
    ck_assert_ptr_nonnull(v);
    ck_assert_double_ge(strtod(v + 2, NULL), 5); /* ,"5"] */
    ck_assert_ptr_nonnull(strstr(http_body(up), "\"value\":["));
    ck_assert_ptr_nonnull(strstr(http_body(up), ",\"1\"]"));
    free(resp);
    free(up);
    client_close(&c);
    ck_assert_int_eq(gsd_stop(&d), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("method");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, metrics_has_every_family_in_the_format);
    tcase_add_test(tc, metrics_values_move);
    tcase_add_test(tc, histograms_go_on_across_a_reload);
    suite_add_tcase(s, tc);
    tc = tcase_create("http");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, http_serves_metrics_and_404_elsewhere);
    tcase_add_test(tc, bad_or_taken_listen_refuses_the_start);
    tcase_add_test(tc, sighup_keeps_the_address_until_the_next_start);
    suite_add_tcase(s, tc);
    tc = tcase_create("prometheus");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, promtool_accepts_the_text);
    tcase_add_test(tc, prometheus_scrapes_the_daemon);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
