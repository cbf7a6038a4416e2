/* metrics.c — the Prometheus text exposition format (version 0.0.4), for
 * the `metrics` method and, where the configuration names a listen
 * address, at GET /metrics over HTTP (libevent's evhttp, on the loop).
 *
 * What it shows is counted elsewhere at no cost to the call path but a few
 * increments: messages handled by kind here (metrics_handled, from
 * server.c's tally), callback durations on each module (hist_observe),
 * what `stats` counts where stats.c and protocol/write.c keep it, the rest
 * read when a scrape comes. Labels are bounded: modules, statuses,
 * message kinds, callbacks and error codes, never a server. */
#include "gsd.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t metrics_handled[MSG_KINDS];

static int64_t started_ms; /* now_ms() when the daemon started */

void metrics_init(void)
{
    started_ms = now_ms();
}

/* ---- the text ----------------------------------------------------------- */

__attribute__((format(printf, 2, 3))) static void put(struct gsp_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    gsp_buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void family(struct gsp_buf *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(struct gsp_buf *b, const char *name, const char *type, const char *help, uint64_t v)
{
    family(b, name, type, help);
    put(b, "%s %llu\n", name, (unsigned long long)v);
}

/* The statuses a server is counted under (server_status_name's). */
enum { ST_STARTING, ST_RUNNING, ST_HIBERNATING, ST_SUSPENDED, ST_COUNT };
static const char *const status_names[ST_COUNT] = {"starting", "running", "hibernating",
                                                   "suspended"};

static void census_clear(struct module *m, void *arg)
{
    (void)arg;
    memset(m->census, 0, sizeof m->census);
}

struct totals {
    uint64_t messages, bytes;
};

static void census_count(struct server *s, void *arg)
{
    struct totals *t = arg;
    t->messages += s->mbox.len + s->nsent;
    t->bytes += s->mbox.bytes + s->sent_bytes;
    unsigned st = s->status == SERVER_STARTING      ? ST_STARTING
                  : s->suspended                    ? ST_SUSPENDED
                  : s->status == SERVER_HIBERNATING ? ST_HIBERNATING
                                                    : ST_RUNNING;
    /* A server still on a version a reload replaced counts under its
     * module's name all the same: the current version's. */
    struct module *m = s->mod->current ? s->mod : module_find(s->mod->name);
    if (m)
        m->census[st]++;
}

static void census_put(struct module *m, void *arg)
{
    for (unsigned st = 0; st < ST_COUNT; st++)
        put(arg, "gsd_servers{module=\"%s\",status=\"%s\"} %u\n", m->name, status_names[st],
            m->census[st]);
}

/* The callbacks a histogram is shown for, by message kind. */
static const enum msg_kind timed[] = {MSG_INIT, MSG_CALL, MSG_CAST, MSG_INFO, MSG_CONTINUE};

/* Bucket bounds shown: every other slot, 2^3 µs (8 µs) to 2^23 µs (8.4 s).
 * A slot's counts are cumulative up to its bound, so any subset of the
 * slots' bounds is an exact histogram. */
#define HIST_SHOWN_FIRST 3
#define HIST_SHOWN_LAST 23
#define HIST_SHOWN_STEP 2

static void hist_put(struct module *m, void *arg)
{
    struct gsp_buf *b = arg;
    for (size_t i = 0; i < sizeof timed / sizeof timed[0]; i++) {
        const struct hist *h = &m->hist[timed[i]];
        const char *cb = callback_names[msg_callbacks[timed[i]]];
        uint64_t cum = 0;
        unsigned k = 0;
        for (unsigned bound = HIST_SHOWN_FIRST; bound <= HIST_SHOWN_LAST;
             bound += HIST_SHOWN_STEP) {
            for (; k <= bound; k++)
                cum += h->n[k];
            uint64_t us = 1ull << bound;
            put(b,
                "gsd_callback_duration_seconds_bucket{module=\"%s\",callback=\"%s\",le=\"%llu."
                "%06llu\"} %llu\n",
                m->name, cb, (unsigned long long)(us / 1000000), (unsigned long long)(us % 1000000),
                (unsigned long long)cum);
        }
        for (; k < HIST_SLOTS; k++)
            cum += h->n[k];
        put(b,
            "gsd_callback_duration_seconds_bucket{module=\"%s\",callback=\"%s\",le=\"+Inf\"} "
            "%llu\n",
            m->name, cb, (unsigned long long)cum);
        put(b, "gsd_callback_duration_seconds_sum{module=\"%s\",callback=\"%s\"} %llu.%06llu\n",
            m->name, cb, (unsigned long long)(h->sum_us / 1000000),
            (unsigned long long)(h->sum_us % 1000000));
        put(b, "gsd_callback_duration_seconds_count{module=\"%s\",callback=\"%s\"} %llu\n", m->name,
            cb, (unsigned long long)cum);
    }
}

void metrics_text(struct gsp_buf *b)
{
    /* Module names are [A-Za-z0-9_-]: nothing in a label needs escaping. */
    family(b, "gsd_info", "gauge", "The daemon's version and protocol; always 1.");
    put(b, "gsd_info{version=\"%s\",protocol=\"%u\"} 1\n", GSD_VERSION,
        (unsigned)GSP_PROTOCOL_VERSION);
    one(b, "gsd_uptime_seconds", "gauge", "Seconds since the daemon started.",
        (uint64_t)(now_ms() - started_ms) / 1000);

    struct totals t = {0, 0};
    module_foreach(census_clear, NULL);
    registry_foreach(false, census_count, &t);
    family(b, "gsd_servers", "gauge", "Servers alive now, by module and status.");
    module_foreach(census_put, b);
    one(b, "gsd_modules", "gauge", "Modules loaded.", module_count());

    static const struct {
        enum msg_kind kind;
        const char *name;
    } kinds[] = {{MSG_CALL, "call"}, {MSG_CAST, "cast"}, {MSG_INFO, "info"}};
    family(b, "gsd_messages_handled_total", "counter",
           "Messages handled by servers' callbacks, by kind (info: handle_info's).");
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        put(b, "gsd_messages_handled_total{kind=\"%s\"} %llu\n", kinds[i].name,
            (unsigned long long)metrics_handled[kinds[i].kind]);

    family(b, "gsd_requests_total", "counter",
           "Messages clients gave servers, by method (call, cast, send).");
    put(b, "gsd_requests_total{method=\"call\"} %llu\n", (unsigned long long)counters.calls);
    put(b, "gsd_requests_total{method=\"cast\"} %llu\n", (unsigned long long)counters.casts);
    put(b, "gsd_requests_total{method=\"send\"} %llu\n", (unsigned long long)counters.sends);

    family(b, "gsd_errors_total", "counter", "Error answers sent to clients, by code.");
    for (int c = GSP_OK + 1; c < GSP_CODE_COUNT; c++)
        put(b, "gsd_errors_total{code=\"%s\"} %llu\n", gsp_code_name((enum gsp_code)c),
            (unsigned long long)gsp_errors_packed[c]);
    one(b, "gsd_crashes_total", "counter",
        "Servers that ended abnormally (a reason other than normal or shutdown).",
        counters.crashes);
    one(b, "gsd_restarts_total", "counter", "Servers restarted by their supervision.",
        counters.restarts);
    one(b, "gsd_dropped_notifications_total", "counter",
        "Casts and sends sent as notifications to no server, or refused, and ignored.",
        dropped_notifications);

    one(b, "gsd_mailbox_messages", "gauge",
        "Messages queued for servers, all together (an isolated server's in its worker too).",
        t.messages);
    one(b, "gsd_mailbox_bytes", "gauge", "Bytes of the messages queued for servers.", t.bytes);

    one(b, "gsd_memory_rss_bytes", "gauge", "The daemon's resident set size.", stats_rss());
    one(b, "gsd_memory_budget_bytes", "gauge",
        "The memory budget for what clients ask the daemon to hold (limits.memory; 0 none).",
        limits.memory);
    one(b, "gsd_memory_used_bytes", "gauge", "Bytes held for clients, against the budget.",
        budget_used);
    one(b, "gsd_overloaded_answers_total", "counter",
        "Requests answered overloaded because of the memory budget.", overloaded_answers);

    one(b, "gsd_connections", "gauge", "Client connections open.", conn_count());
    one(b, "gsd_workers", "gauge", "Worker processes of isolated servers.", worker_count());

    family(b, "gsd_callback_duration_seconds", "histogram",
           "Time servers' callbacks took, by module and callback.");
    module_foreach(hist_put, b);
}

void metrics_carry(struct module *to, const struct module *from)
{
    for (unsigned k = 0; k < MSG_KINDS; k++) {
        for (unsigned i = 0; i < HIST_SLOTS; i++)
            to->hist[k].n[i] += from->hist[k].n[i];
        to->hist[k].sum_us += from->hist[k].sum_us;
    }
}

/* ---- HTTP ------------------------------------------------------------- */

static struct evhttp *http;

static void on_metrics(struct evhttp_request *req, void *arg)
{
    (void)arg;
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    struct gsp_buf text = {0};
    metrics_text(&text);
    evbuffer_add(body, text.data, text.len);
    gsp_buf_free(&text);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, HTTP_OK, "OK", body);
    evbuffer_free(body);
}

static void on_other(struct evhttp_request *req, void *arg)
{
    (void)arg;
    evhttp_send_error(req, HTTP_NOTFOUND, "only /metrics is served here");
}

/* "HOST:PORT", "[V6]:PORT": host into host (hostlen bytes), the port. */
bool metrics_parse_listen(const char *s, char *host, size_t hostlen, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s)
        return false;
    const char *h = s, *he = colon;
    if (*h == '[') {
        if (he[-1] != ']' || he - h < 3)
            return false;
        h++, he--;
    } else if (memchr(h, ':', (size_t)(he - h)))
        return false; /* a v6 address must be in brackets */
    char *end;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end || p == 0 || p > 65535 ||
        (size_t)(he - h) >= hostlen)
        return false;
    memcpy(host, h, (size_t)(he - h));
    host[he - h] = '\0';
    *port = (uint16_t)p;
    return true;
}

int metrics_http_open(const char *listen)
{
    char host[256];
    uint16_t port;
    if (!metrics_parse_listen(listen, host, sizeof host, &port)) {
        log_msg(LOG_ERR, "metrics.listen \"%s\": not HOST:PORT", listen);
        return -1;
    }
    http = evhttp_new(loop_base);
    if (http == NULL) {
        log_msg(LOG_ERR, "metrics: evhttp_new failed");
        return -1;
    }
    /* A scraper asks with a short GET: anything larger or slower is cut off. */
    evhttp_set_max_headers_size(http, 8192);
    evhttp_set_max_body_size(http, 1024);
    evhttp_set_timeout(http, 10);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_default_content_type(http, "text/plain; charset=utf-8");
    evhttp_set_cb(http, "/metrics", on_metrics, NULL);
    evhttp_set_gencb(http, on_other, NULL);
    if (evhttp_bind_socket_with_handle(http, host, port) == NULL) {
        log_msg(LOG_ERR, "metrics: cannot listen on %s: %s", listen, strerror(errno));
        evhttp_free(http);
        http = NULL;
        return -1;
    }
    log_msg(LOG_INFO, "metrics served at http://%s/metrics", listen);
    return 0;
}

void metrics_http_close(void)
{
    if (http)
        evhttp_free(http);
    http = NULL;
}
