/* top.c — gsctl top (top.h). */
#include "top.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define TOP_SERVERS 10000 /* servers looked at, at most (the first, by id) */
#define TOP_WAIT_MS 5000  /* for each round of requests */

struct row {
    uint64_t id;
    char name[48], module[32], status[16];
    uint64_t handled; /* calls + casts + infos handled */
    double rate;      /* of those per second, since the last look */
    uint64_t mailbox, mailbox_high, slow, restarts;
    bool isolated;
};

struct sample {
    int64_t at_ms;
    char version[32];
    uint64_t pid, uptime_ms, servers, connections, workers, nodes;
    uint64_t rss, budget, used;
    uint64_t calls, casts, sends, crashes, restarts, errors;
    double msg_rate;  /* calls + casts + sends per second, daemon-wide */
    struct row *rows; /* in id order */
    size_t n;
};

static int64_t clock_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- reading answers ---------------------------------------------------- */

static const msgpack_object *get(const msgpack_object *m, const char *k)
{
    size_t len = strlen(k);
    for (uint32_t i = 0; m && m->type == MSGPACK_OBJECT_MAP && i < m->via.map.size; i++) {
        const msgpack_object *key = &m->via.map.ptr[i].key;
        if (key->type == MSGPACK_OBJECT_STR && key->via.str.size == len &&
            memcmp(key->via.str.ptr, k, len) == 0)
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

static uint64_t u64(const msgpack_object *m, const char *k)
{
    const msgpack_object *v = get(m, k);
    return v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? v->via.u64 : 0;
}

static void str(char *dst, size_t size, const msgpack_object *m, const char *k, const char *none)
{
    const msgpack_object *v = get(m, k);
    if (v && v->type == MSGPACK_OBJECT_STR)
        snprintf(dst, size, "%.*s", (int)v->via.str.size, v->via.str.ptr);
    else
        snprintf(dst, size, "%s", none);
}

/* ---- asking --------------------------------------------------------------- */

struct pending {
    int status;
    gsc_reply *reply;
    bool done;
};

static void info_done(gsc *c, uint32_t msgid, int status, gsc_reply *reply, void *arg)
{
    (void)c, (void)msgid;
    struct pending *p = arg;
    p->status = status;
    p->reply = reply;
    p->done = true;
}

/* Why a round failed: 1 (an error answer, shown) or 3 (the connection). */
static char failure[512];

static int failed(gsc *c, int st, gsc_reply *r)
{
    if (st == GSC_ERROR) {
        snprintf(failure, sizeof failure, "%s: %.*s", r->code,
                 r->detail.type == MSGPACK_OBJECT_STR ? (int)r->detail.via.str.size : 0,
                 r->detail.type == MSGPACK_OBJECT_STR ? r->detail.via.str.ptr : "");
        gsc_reply_destroy(&r);
        return 1;
    }
    snprintf(failure, sizeof failure, "%s",
             st == GSC_TIMEOUT ? "no response in time" : gsc_errmsg(c));
    gsc_reply_destroy(&r);
    return 3;
}

static void sample_free(struct sample *s)
{
    free(s->rows);
    s->rows = NULL;
    s->n = 0;
}

static void read_stats(struct sample *s, const msgpack_object *v)
{
    str(s->version, sizeof s->version, v, "version", "?");
    s->pid = u64(v, "pid");
    s->uptime_ms = u64(v, "uptime_ms");
    s->servers = u64(v, "servers");
    s->connections = u64(v, "connections");
    s->workers = u64(v, "workers");
    s->nodes = u64(v, "nodes");
    const msgpack_object *mem = get(v, "memory");
    s->rss = u64(mem, "rss");
    s->budget = u64(mem, "budget");
    s->used = u64(mem, "used");
    s->calls = u64(v, "calls");
    s->casts = u64(v, "casts");
    s->sends = u64(v, "sends");
    s->crashes = u64(v, "crashes");
    s->restarts = u64(v, "restarts");
    const msgpack_object *e = get(v, "errors");
    s->errors = 0;
    for (uint32_t i = 0; e && e->type == MSGPACK_OBJECT_MAP && i < e->via.map.size; i++)
        if (e->via.map.ptr[i].val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            s->errors += e->via.map.ptr[i].val.via.u64;
}

static void read_info(struct row *w, const msgpack_object *v)
{
    w->id = u64(v, "id");
    str(w->name, sizeof w->name, v, "name", "-");
    str(w->module, sizeof w->module, v, "module", "?");
    str(w->status, sizeof w->status, v, "status", "?");
    const msgpack_object *h = get(v, "handled");
    w->handled = u64(h, "call") + u64(h, "cast") + u64(h, "info");
    w->mailbox = u64(v, "mailbox");
    w->mailbox_high = u64(v, "mailbox_high");
    w->slow = u64(v, "slow_callbacks");
    w->restarts = u64(v, "restarts");
    const msgpack_object *iso = get(v, "isolated");
    w->isolated = iso && iso->type == MSGPACK_OBJECT_BOOLEAN && iso->via.boolean;
    /* A first look: the average over its life. */
    uint64_t up = u64(v, "uptime_ms");
    w->rate = up ? (double)w->handled * 1000.0 / (double)up : 0;
}

/* One look: stats, which, and every server's info, pipelined. 0, or the
 * exit status with failure set. */
static int fetch(gsc *c, struct sample *s)
{
    gsc_reply *r = NULL;
    int st = gsc_request(c, "stats", NULL, TOP_WAIT_MS, &r);
    if (st != GSC_OK)
        return failed(c, st, r);
    read_stats(s, &r->result);
    gsc_reply_destroy(&r);
    if ((st = gsc_which_page(c, 0, TOP_SERVERS, &r)) != GSC_OK)
        return failed(c, st, r);
    const msgpack_object *list = &r->result;
    uint32_t n = list->type == MSGPACK_OBJECT_ARRAY ? list->via.array.size : 0;
    struct pending *p = calloc(n ? n : 1, sizeof *p);
    s->rows = calloc(n ? n : 1, sizeof *s->rows);
    if (p == NULL || s->rows == NULL) {
        free(p);
        gsc_reply_destroy(&r);
        snprintf(failure, sizeof failure, "out of memory");
        return 3;
    }
    for (uint32_t i = 0; i < n; i++) {
        char id[24];
        snprintf(id, sizeof id, "%llu", (unsigned long long)u64(&list->via.array.ptr[i], "id"));
        if (gsc_info_async(c, id, info_done, &p[i]) == 0)
            break;
    }
    gsc_reply_destroy(&r);
    gsc_run(c, TOP_WAIT_MS);
    int rc = 0;
    s->n = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (p[i].done && p[i].status == GSC_OK)
            read_info(&s->rows[s->n++], &p[i].reply->result);
        else if (!(p[i].done && p[i].status == GSC_ERROR) && rc == 0)
            rc = failed(c, p[i].done ? p[i].status : GSC_TIMEOUT, NULL); /* noproc: it ended */
        gsc_reply_destroy(&p[i].reply);
    }
    free(p);
    s->at_ms = clock_ms();
    return rc;
}

/* Rates from the look before (both in id order). */
static void rates(struct sample *now, const struct sample *before)
{
    if (before == NULL || before->at_ms >= now->at_ms)
        return;
    double dt = (double)(now->at_ms - before->at_ms) / 1000.0;
    uint64_t msgs = now->calls + now->casts + now->sends,
             then = before->calls + before->casts + before->sends;
    now->msg_rate = msgs >= then ? (double)(msgs - then) / dt : 0;
    size_t j = 0;
    for (size_t i = 0; i < now->n; i++) {
        while (j < before->n && before->rows[j].id < now->rows[i].id)
            j++;
        if (j < before->n && before->rows[j].id == now->rows[i].id) {
            uint64_t a = before->rows[j].handled, b = now->rows[i].handled;
            now->rows[i].rate = b >= a ? (double)(b - a) / dt : 0;
        }
    }
}

/* ---- showing -------------------------------------------------------------- */

static char sort_key = 'm';

static int by_sort(const void *pa, const void *pb)
{
    const struct row *a = *(const struct row *const *)pa, *b = *(const struct row *const *)pb;
    int c = 0;
    switch (sort_key) {
    case 'm':
        c = (a->rate < b->rate) - (a->rate > b->rate);
        break;
    case 'b':
        c = (a->mailbox < b->mailbox) - (a->mailbox > b->mailbox);
        break;
    case 's':
        c = (a->slow < b->slow) - (a->slow > b->slow);
        break;
    case 'r':
        c = (a->restarts < b->restarts) - (a->restarts > b->restarts);
        break;
    case 'n':
        c = strcmp(a->name, b->name);
        break;
    }
    return c ? c : (a->id > b->id) - (a->id < b->id);
}

static const char *sort_name(char k)
{
    switch (k) {
    case 'b':
        return "mailbox";
    case 's':
        return "slow callbacks";
    case 'r':
        return "restarts";
    case 'n':
        return "name";
    case 'i':
        return "id";
    default:
        return "messages/s";
    }
}

static const char *bytes(char *buf, size_t size, uint64_t n)
{
    static const char units[] = "BKMGT";
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%lluB", (unsigned long long)n);
    else
        snprintf(buf, size, "%.1f%c", v, units[u]);
    return buf;
}

static const char *duration(char *buf, size_t size, uint64_t ms)
{
    uint64_t s = ms / 1000;
    if (s >= 86400)
        snprintf(buf, size, "%llud%02lluh", (unsigned long long)(s / 86400),
                 (unsigned long long)(s % 86400 / 3600));
    else if (s >= 3600)
        snprintf(buf, size, "%lluh%02llum", (unsigned long long)(s / 3600),
                 (unsigned long long)(s % 3600 / 60));
    else
        snprintf(buf, size, "%llum%02llus", (unsigned long long)(s / 60),
                 (unsigned long long)(s % 60));
    return buf;
}

/* One line, cut to width (0: whole), ended as the mode wants. */
static void line(FILE *f, bool tty, int width, const char *pre, const char *text)
{
    int n = (int)strlen(text);
    if (width > 0 && n > width)
        n = width;
    fprintf(f, "%s%.*s%s\n", tty ? pre : "", n, text, tty ? "\033[0m\033[K" : "");
}

/* The screen (tty: from its top, height lines at most) or the snapshot. */
static void render(FILE *f, const struct sample *s, bool tty, int width, int height, int rows)
{
    char l[512], a[32], b[32], c[32], up[48];
    if (tty)
        fputs("\033[H", f);
    snprintf(l, sizeof l,
             "gsd %s  pid %llu  up %s  servers %llu  connections %llu  workers %llu  nodes %llu",
             s->version, (unsigned long long)s->pid, duration(up, sizeof up, s->uptime_ms),
             (unsigned long long)s->servers, (unsigned long long)s->connections,
             (unsigned long long)s->workers, (unsigned long long)s->nodes);
    line(f, tty, width, "\033[1m", l);
    snprintf(l, sizeof l, "memory  rss %s  used %s of %s budget", bytes(a, sizeof a, s->rss),
             bytes(b, sizeof b, s->used), bytes(c, sizeof c, s->budget));
    line(f, tty, width, "", l);
    snprintf(l, sizeof l,
             "messages %.0f/s  calls %llu  casts %llu  sends %llu  crashes %llu  restarts %llu  "
             "errors %llu",
             s->msg_rate, (unsigned long long)s->calls, (unsigned long long)s->casts,
             (unsigned long long)s->sends, (unsigned long long)s->crashes,
             (unsigned long long)s->restarts, (unsigned long long)s->errors);
    line(f, tty, width, "", l);
    snprintf(l, sizeof l, "sorted by %s%s", sort_name(sort_key),
             tty ? "   keys: m msg/s  b mailbox  s slow  r restarts  i id  n name  q quit" : "");
    line(f, tty, width, "", l);
    snprintf(l, sizeof l, "%8s %-16s %-12s %-11s %9s %8s %8s %6s %8s %10s", "ID", "NAME", "MODULE",
             "STATUS", "MSG/S", "MAILBOX", "MB_HIGH", "SLOW", "RESTARTS", "HANDLED");
    line(f, tty, width, "\033[7m", l);
    const struct row **order = malloc((s->n ? s->n : 1) * sizeof *order);
    if (order == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        order[i] = &s->rows[i];
    if (sort_key != 'i')
        qsort(order, s->n, sizeof *order, by_sort);
    size_t show = s->n;
    if (tty && height > 6 && show > (size_t)(height - 6))
        show = (size_t)(height - 6);
    if (!tty && rows > 0 && show > (size_t)rows)
        show = (size_t)rows;
    for (size_t i = 0; i < show; i++) {
        const struct row *w = order[i];
        snprintf(l, sizeof l,
                 "%8llu %-16.16s %-12.12s %-11.11s %9.1f %8llu %8llu %6llu %8llu %10llu",
                 (unsigned long long)w->id, w->name, w->module, w->status, w->rate,
                 (unsigned long long)w->mailbox, (unsigned long long)w->mailbox_high,
                 (unsigned long long)w->slow, (unsigned long long)w->restarts,
                 (unsigned long long)w->handled);
        line(f, tty, width, "", l);
    }
    if (show < s->n) {
        snprintf(l, sizeof l, "... %zu more", s->n - show);
        line(f, tty, width, "", l);
    }
    free(order);
    if (tty)
        fputs("\033[J", f);
    fflush(f);
}

/* ---- the terminal ----------------------------------------------------------- */

static struct termios saved;
static bool term_raw, term_screen;
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

/* Back as it was: the main screen, the cursor, the line discipline. */
static void term_restore(void)
{
    if (term_screen) {
        fputs("\033[?25h\033[?1049l", stdout);
        fflush(stdout);
        term_screen = false;
    }
    if (term_raw) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
        term_raw = false;
    }
}

static void term_setup(void)
{
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: poll returns */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    atexit(term_restore);
    if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0) {
        struct termios t = saved;
        t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        t.c_cc[VMIN] = 0;
        t.c_cc[VTIME] = 0;
        term_raw = tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0;
    }
    fputs("\033[?1049h\033[?25l\033[2J", stdout);
    term_screen = true;
}

static void term_size(int *width, int *height)
{
    struct winsize ws;
    *width = 80;
    *height = 24;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
        *width = ws.ws_col;
        *height = ws.ws_row;
    }
}

/* Waits until the next look is due, acting on keys; false to quit. */
static bool wait_keys(struct sample *s, int64_t until)
{
    for (;;) {
        int64_t left = until - clock_ms();
        if (stop_signal)
            return false;
        if (left <= 0)
            return true;
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int n = poll(&pfd, term_raw ? 1 : 0, (int)left);
        if (n <= 0 || !(pfd.revents & (POLLIN | POLLHUP)))
            continue; /* EINTR: a signal, seen above */
        char keys[32];
        ssize_t got = read(STDIN_FILENO, keys, sizeof keys);
        if (got == 0 && (pfd.revents & POLLHUP))
            return false; /* the terminal has gone */
        for (ssize_t i = 0; i < got; i++) {
            if (keys[i] == 'q' || keys[i] == 'Q' || keys[i] == 3)
                return false;
            if (strchr("mbsrin", keys[i])) {
                sort_key = keys[i];
                int width, height;
                term_size(&width, &height);
                render(stdout, s, true, width, height, 0);
            }
        }
    }
}

int top_run(gsc *c, int interval_ms, int rows)
{
    if (interval_ms <= 0)
        interval_ms = 1000;
    struct sample before = {0}, now = {0};
    int rc;
    if (!isatty(STDOUT_FILENO)) { /* one snapshot, its rates over one interval */
        if ((rc = fetch(c, &before)) == 0) {
            struct timespec t = {interval_ms / 1000, (long)(interval_ms % 1000) * 1000000};
            while (nanosleep(&t, &t) != 0 && errno == EINTR)
                ;
            if ((rc = fetch(c, &now)) == 0) {
                rates(&now, &before);
                render(stdout, &now, false, 0, 0, rows);
            }
        }
        sample_free(&before);
        sample_free(&now);
        if (rc)
            fprintf(stderr, "gsctl: top: %s\n", failure);
        return rc;
    }
    term_setup();
    for (;;) {
        int64_t due = clock_ms() + interval_ms;
        if ((rc = fetch(c, &now)) != 0)
            break;
        rates(&now, before.rows ? &before : NULL);
        int width, height;
        term_size(&width, &height);
        render(stdout, &now, true, width, height, 0);
        sample_free(&before);
        before = now;
        now = (struct sample){0};
        if (!wait_keys(&before, due))
            break;
    }
    term_restore();
    sample_free(&before);
    sample_free(&now);
    if (rc)
        fprintf(stderr, "gsctl: top: %s\n", failure);
    return rc;
}
