/*
 * stress.c — `make stress`: each attack of the "contained clients" issue
 * against a fresh daemon, measured the same way, and one table of the
 * results. Not part of `make check`; about a minute (two without the
 * budget) on a 2-core machine.
 *
 * For every scenario:
 *   RSS peak      the daemon's VmRSS sampled every 10 ms, and its VmHWM
 *                 (a lifetime peak: each scenario has a daemon of its own);
 *                 the goal is on the peak less the idle RSS just before
 *                 the attack (the servers and module state it set up: the
 *                 budget covers what clients make the daemon hold)
 *   idle ping     a connection of its own sends `ping`, one at a time,
 *                 every 20 ms; the worst round trip (a ping still waiting
 *                 when the scenario ends counts for as long as it waited)
 *   watchdog gap  the daemon runs with NOTIFY_SOCKET bound here and
 *                 WATCHDOG_USEC=1000000 (a heartbeat every 500 ms); the
 *                 longest time between two WATCHDOG=1 (from READY=1 on,
 *                 as systemd's watchdog runs)
 *   overloaded    responses to the scenario's clients whose error code is
 *                 "overloaded" (the idle pinger's, if any, in brackets)
 *   lost          acknowledged messages the servers never handled, where
 *                 the scenario has any
 *
 * The daemon reads a configuration file that sets limits.memory, the
 * daemon-wide budget (STRESS_BUDGET_MIB, default 512; STRESS_NO_BUDGET=1
 * leaves it out, for a daemon that does not know the key). STRESS_SCALE
 * (default 1) multiplies every count and size; STRESS_ONLY=1,4,10 runs
 * some scenarios only; STRESS_KEEP=1 keeps the directories and logs. The
 * scenarios aim at tests/modules/stressor.c.
 *
 * Each scenario runs in a Check test of its own (a forked process, under a
 * time limit; a daemon it started dies with it), stops its daemon by PID
 * and removes its directory; its row goes to a results file that main
 * reads back to print the table and the goals. Exit status 1 when a goal
 * is missed or a scenario gave no row.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024.0 * 1024.0)
#define MARGIN_MIB 64           /* the goal: RSS peak < budget + this */
#define PING_EVERY_MS 20        /* the idle client's pace */
#define PING_GOAL_MS 50         /* in the callback scenario */
#define GAP_GOAL_MS 1000        /* between two heartbeats */
#define WATCHDOG_USEC "1000000" /* a heartbeat every 500 ms */
#define STOP_GRACE_MS 5000      /* SIGTERM, then SIGKILL */
#define IDLE_SHOWN_MIB 32       /* an idle RSS above it is shown next to the peak */

/* ---- knobs ----------------------------------------------------------------- */

static double scale = 1.0;
static bool no_budget;
static long budget_mib = 512;
static char results_path[64]; /* where each scenario appends its rows */

static int64_t scaled(double n)
{
    double v = n * scale + 0.5;
    return v < 1 ? 1 : (int64_t)v;
}

/* ---- the rows -------------------------------------------------------------------- */

struct row {
    char id[8];
    char name[96];
    double rss_mib;  /* < 0: not measured */
    double base_mib; /* the idle daemon's RSS before the attack, left out of the goal */
    double ping_ms;  /* < 0: not measured */
    double gap_ms;   /* < 0: not measured */
    long long overloaded, ping_overloaded;
    long long lost;  /* < 0: no acknowledged messages in this scenario */
    char status[96]; /* "" when the daemon lived and answered; "died: ..." */
    char notes[640];
};

static void row_note(struct row *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void row_note(struct row *r, const char *fmt, ...)
{
    size_t n = strlen(r->notes);
    if (n && n + 2 < sizeof r->notes)
        strcpy(r->notes + n, "; "), n += 2;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->notes + n, sizeof r->notes - n, fmt, ap);
    va_end(ap);
}

static void row_emit(const struct row *r);

/* An empty row: nothing measured yet, no acknowledged messages. */
static void row_init(struct row *r, const char *id, const char *name)
{
    memset(r, 0, sizeof *r);
    r->rss_mib = r->ping_ms = r->gap_ms = -1;
    r->lost = -1;
    snprintf(r->id, sizeof r->id, "%s", id);
    snprintf(r->name, sizeof r->name, "%s", name);
}

/* A row for a part of a scenario that could not run. */
static void row_skip(const char *id, const char *name, const char *why)
{
    struct row r;
    row_init(&r, id, name);
    snprintf(r.status, sizeof r.status, "not run");
    snprintf(r.notes, sizeof r.notes, "not run: %s", why);
    row_emit(&r);
}

static void row_emit(const struct row *r)
{
    int fd = open(results_path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0 || write(fd, r, sizeof *r) != (ssize_t)sizeof *r)
        fprintf(stderr, "stress: cannot write %s: %s\n", results_path, strerror(errno));
    if (fd >= 0)
        close(fd);
}

/* ---- a streaming msgpack reader ------------------------------------------------ */

/* Finds where each message ends in a byte stream without holding it:
 * headers are read, payloads skipped, and only the first SKIM_CAP bytes
 * of each message are kept (enough for a response's envelope and error),
 * so a 1 GiB reply costs nothing here. */
#define SKIM_CAP 4096
struct skim {
    uint64_t left[64]; /* items still due in each open container */
    unsigned depth;
    uint64_t skip; /* payload bytes of the current value still to come */
    uint8_t hdr[10];
    unsigned hlen, hneed; /* a header split across reads */
    uint8_t cap[SKIM_CAP];
    size_t caplen;
    uint64_t msglen;
};

/* Bytes of the header that starts with b (0: not msgpack). */
static unsigned head_size(uint8_t b)
{
    if (b <= 0xc0 || b >= 0xe0 || b == 0xc2 || b == 0xc3)
        return 1;
    /* clang-format off */
    static const unsigned size[] = {
        [0xc4 - 0xc4] = 2, 3, 5,        /* bin 8 16 32 */
        3, 4, 6,                        /* ext 8 16 32: length, type */
        5, 9,                           /* float 32 64 */
        2, 3, 5, 9, 2, 3, 5, 9,         /* uint, int */
        3, 4, 6, 10, 2,                 /* fixext 1 2 4 8: type + data; fixext 16: type */
        2, 3, 5,                        /* str 8 16 32 */
        3, 5, 3, 5,                     /* array 16 32, map 16 32 */
    };
    /* clang-format on */
    return b == 0xc1 ? 0 : size[b - 0xc4];
}

static uint64_t be_read(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* One value ended at the current depth: true if that ends the message. */
static bool skim_value_done(struct skim *s)
{
    while (s->depth > 0) {
        if (--s->left[s->depth - 1] > 0)
            return false;
        s->depth--;
    }
    return true;
}

static void skim_keep(struct skim *s, const uint8_t *p, size_t n)
{
    if (s->caplen < SKIM_CAP) {
        size_t k = SKIM_CAP - s->caplen < n ? SKIM_CAP - s->caplen : n;
        memcpy(s->cap + s->caplen, p, k);
        s->caplen += k;
    }
    s->msglen += n;
}

/* A whole header h: true if it ends the message; -1 (as *bad) on one too deep. */
static bool skim_head(struct skim *s, const uint8_t *h, bool *bad)
{
    uint8_t b = h[0];
    uint64_t items = 0, payload = 0;
    bool container = false;
    if (b >= 0x80 && b <= 0x8f)
        container = true, items = 2u * (b & 0x0f);
    else if (b >= 0x90 && b <= 0x9f)
        container = true, items = b & 0x0f;
    else if (b >= 0xa0 && b <= 0xbf)
        payload = b & 0x1f;
    else if (b >= 0xc4 && b <= 0xc6)
        payload = be_read(h + 1, b == 0xc4 ? 1 : b == 0xc5 ? 2 : 4);
    else if (b >= 0xc7 && b <= 0xc9)
        payload = be_read(h + 1, b == 0xc7 ? 1 : b == 0xc8 ? 2 : 4);
    else if (b == 0xd8)
        payload = 16;
    else if (b >= 0xd9 && b <= 0xdb)
        payload = be_read(h + 1, b == 0xd9 ? 1 : b == 0xda ? 2 : 4);
    else if (b == 0xdc || b == 0xdd)
        container = true, items = be_read(h + 1, b == 0xdc ? 2 : 4);
    else if (b == 0xde || b == 0xdf)
        container = true, items = 2 * be_read(h + 1, b == 0xde ? 2 : 4);
    if (container && items > 0) {
        if (s->depth == 64) {
            *bad = true;
            return false;
        }
        s->left[s->depth++] = items;
        return false;
    }
    if (payload > 0) {
        s->skip = payload;
        return false;
    }
    return skim_value_done(s);
}

typedef void skim_fn(void *arg, const uint8_t *cap, size_t caplen, uint64_t len);

/* Feeds n bytes; on_msg gets each message that ends in them. -1 on bytes
 * that are not msgpack. */
static int skim_feed(struct skim *s, const uint8_t *p, size_t n, skim_fn *on_msg, void *arg)
{
    while (n > 0) {
        bool done = false, bad = false;
        if (s->skip > 0) {
            size_t k = s->skip < n ? (size_t)s->skip : n;
            skim_keep(s, p, k);
            p += k, n -= k, s->skip -= k;
            done = s->skip == 0 && skim_value_done(s);
        } else if (s->hlen == 0 && head_size(*p) != 0 && head_size(*p) <= n) {
            unsigned k = head_size(*p);
            skim_keep(s, p, k);
            done = skim_head(s, p, &bad);
            p += k, n -= k;
        } else {
            if (s->hlen == 0 && (s->hneed = head_size(*p)) == 0)
                return -1;
            while (s->hlen < s->hneed && n > 0) {
                skim_keep(s, p, 1);
                s->hdr[s->hlen++] = *p++;
                n--;
            }
            if (s->hlen < s->hneed)
                break;
            s->hlen = 0;
            done = skim_head(s, s->hdr, &bad);
        }
        if (bad)
            return -1;
        if (done) {
            on_msg(arg, s->cap, s->caplen, s->msglen);
            s->caplen = 0;
            s->msglen = 0;
        }
    }
    return 0;
}

/* What a message says, read from its first bytes. */
struct msginfo {
    int type; /* 1 response, 2 notification, -1 unreadable */
    uint32_t msgid;
    bool error;
    char code[32];   /* the error's code (response or error notification) */
    char method[16]; /* a notification's */
    bool result_nil;
    bool has_uint;
    uint64_t uint_val;
    char text[40]; /* a short string result */
    uint64_t len;
};

static void copy_text(char *dst, size_t size, const char *s, uint32_t n)
{
    snprintf(dst, size, "%.*s", (int)n, s);
}

static void classify(const uint8_t *p, size_t caplen, uint64_t len, struct msginfo *mi)
{
    memset(mi, 0, sizeof *mi);
    mi->type = -1;
    mi->len = len;
    struct gsp_cursor c = {p, p + caplen};
    uint32_t n, cl;
    uint64_t t, id;
    const char *s;
    if (!gsp_get_array(&c, &n) || !gsp_get_uint(&c, &t))
        return;
    if (t == GSP_RESPONSE && n == 4 && gsp_get_uint(&c, &id)) {
        mi->type = 1;
        mi->msgid = (uint32_t)id;
        if (gsp_get_nil(&c)) {
            if (gsp_is_nil(&c))
                mi->result_nil = true;
            else if (gsp_get_uint(&c, &mi->uint_val))
                mi->has_uint = true;
            else if (gsp_get_str(&c, &s, &cl))
                copy_text(mi->text, sizeof mi->text, s, cl);
        } else {
            struct gsp_span e, detail;
            mi->error = true;
            if (gsp_get_span(&c, &e) && gsp_error_read(e, &s, &cl, &detail))
                copy_text(mi->code, sizeof mi->code, s, cl);
            else
                strcpy(mi->code, "?");
        }
    } else if (t == GSP_NOTIFY && n == 3 && gsp_get_str(&c, &s, &cl)) {
        mi->type = 2;
        copy_text(mi->method, sizeof mi->method, s, cl);
        if (strcmp(mi->method, "error") == 0 && gsp_get_array(&c, &n) && n >= 1 &&
            gsp_get_str(&c, &s, &cl))
            copy_text(mi->code, sizeof mi->code, s, cl);
    }
}

/* ---- the daemon ------------------------------------------------------------------ */

struct daemon {
    pid_t pid;
    bool exited;
    int status; /* as a shell shows it: 128 + signal when killed */
    char dir[80], sock[108], conf[128], log[128], notify[108];
    int err_rd;  /* the read end of its stderr, or -1 (its log file) */
    bool killed; /* daemon_stop had to SIGKILL it */
    int64_t t_spawn, t_listen;
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void daemon_prepare(struct daemon *d)
{
    memset(d, 0, sizeof *d);
    d->pid = -1;
    d->err_rd = -1;
    const char *root = getenv("GSD_TEST_ROOT");
    snprintf(d->dir, sizeof d->dir, "%s/st-XXXXXX", root && *root ? root : "/tmp");
    ck_assert_msg(mkdtemp(d->dir) != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(d->sock, sizeof d->sock, "%s/gsd.sock", d->dir);
    snprintf(d->conf, sizeof d->conf, "%s/gsd.conf", d->dir);
    snprintf(d->log, sizeof d->log, "%s/gsd.log", d->dir);
    snprintf(d->notify, sizeof d->notify, "%s/notify.sock", d->dir);
}

/* The configuration: the budget, and counters c0..c(n-1) declared. */
static bool write_config(const char *path, int64_t counters)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return false;
    fprintf(f, "# written by tests/stress.c\n");
    if (!no_budget)
        fprintf(f, "limits = { memory = %lldL; };\n", (long long)budget_mib << 20);
    if (counters > 0) {
        fprintf(f, "servers = (\n");
        for (int64_t i = 0; i < counters; i++)
            fprintf(f, "  { name = \"c%lld\"; module = \"counter\"; }%s\n", (long long)i,
                    i + 1 < counters ? "," : "");
        fprintf(f, ");\n");
    }
    return fclose(f) == 0;
}

static bool daemon_alive(struct daemon *d)
{
    int st;
    if (d->exited || d->pid <= 0)
        return false;
    if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
        d->exited = true;
        d->status = shell_status(st);
        return false;
    }
    return true;
}

/* Waits up to ms for the daemon to exit; false if it is still running. */
static bool daemon_wait(struct daemon *d, int ms)
{
    int64_t end = now_ms() + ms;
    while (daemon_alive(d)) {
        if (now_ms() >= end)
            return false;
        sleep_ms(5);
    }
    return true;
}

static void status_text(char *buf, size_t size, int status)
{
    if (status > 128)
        snprintf(buf, size, "%s", strsignal(status - 128));
    else
        snprintf(buf, size, "exit %d", status);
}

/* Forks the daemon (stderr to a pipe this process holds but need not read
 * when err_pipe). Call daemon_listen next. */
static void daemon_spawn(struct daemon *d, bool err_pipe)
{
    char bin[PATH_MAX], mods[2 * PATH_MAX + 32];
    snprintf(bin, sizeof bin, "%s/gsd", gsd_build());
    snprintf(mods, sizeof mods, "%s/modules:%s/test-modules", gsd_build(), gsd_build());
    ck_assert_msg(access(bin, X_OK) == 0, "%s: %s (is the daemon built?)", bin, strerror(errno));
    int errp[2] = {-1, -1};
    if (err_pipe)
        ck_assert_msg(pipe2(errp, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
    pid_t parent = getpid();
    d->t_spawn = now_ms();
    d->pid = fork();
    ck_assert_msg(d->pid >= 0, "fork: %s", strerror(errno));
    if (d->pid == 0) {
        daemon_child_stdio(parent, d->log, err_pipe ? errp[1] : -1); /* dies with the scenario */
        execl(bin, bin, "-s", d->sock, "-M", mods, "-c", d->conf, (char *)NULL);
        _exit(127);
    }
    if (err_pipe) {
        close(errp[1]);
        d->err_rd = errp[0];
    }
}

/* Waits up to ms for the socket to accept: 0, -1 the daemon exited, -2 not in time. */
static int daemon_listen(struct daemon *d, int ms)
{
    int64_t end = now_ms() + ms;
    for (;;) {
        int fd = connect_to(d->sock);
        if (fd >= 0) {
            close(fd);
            d->t_listen = now_ms();
            return 0;
        }
        if (!daemon_alive(d))
            return -1;
        if (now_ms() > end)
            return -2;
        sleep_ms(5);
    }
}

/* SIGTERM (or sig), up to grace_ms, then SIGKILL. Returns the exit status. */
static int daemon_stop(struct daemon *d, int sig, int grace_ms)
{
    if (d->pid <= 0)
        return -1;
    if (daemon_alive(d)) {
        kill(d->pid, sig);
        if (!daemon_wait(d, grace_ms)) {
            d->killed = true;
            kill(d->pid, SIGKILL);
            int st;
            waitpid(d->pid, &st, 0);
            d->exited = true;
            d->status = shell_status(st);
        }
    }
    return d->status;
}

/* The last lines of its log, for a death worth a look. */
static void daemon_log_tail(const struct daemon *d, const char *why)
{
    FILE *f = fopen(d->log, "r");
    if (f == NULL)
        return;
    static char buf[4096];
    fseek(f, 0, SEEK_END);
    long size = ftell(f), from = size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0;
    fseek(f, from, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "stress: %s; the end of the daemon's log:\n%s\n", why, buf);
}

/* True if the log, from byte `from` on, has a line containing s. */
static bool log_has(const struct daemon *d, long from, const char *s)
{
    FILE *f = fopen(d->log, "r");
    if (f == NULL)
        return false;
    char line[2048];
    bool found = false;
    fseek(f, from, SEEK_SET);
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, s) != NULL;
    fclose(f);
    return found;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* ---- the measures: RSS, the idle ping, the watchdog ----------------------------- */

struct mon {
    struct daemon *d;
    pthread_mutex_t mu;
    atomic_bool stop;
    pthread_t rss_t, ping_t, wd_t;
    bool rss_on, ping_on, wd_on;
    /* RSS, KiB */
    long rss_last, hwm_last, rss_win, hwm_begin;
    /* the idle ping */
    int64_t ping_sent; /* when the ping in flight was sent; 0: none */
    int64_t ping_worst;
    uint64_t ping_done, ping_overloaded, ping_errors;
    bool ping_cut; /* the daemon closed the idle connection */
    /* the watchdog */
    int wd_fd;
    int64_t wd_last, wd_gap, wd_first, ready_at;
    uint64_t beats;
};

/* What a window saw. */
struct win {
    double rss_mib, ping_ms, gap_ms;
    long long ping_overloaded;
    bool ping_cut;
};

static void proc_mem(pid_t pid, long *rss, long *hwm)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    *rss = *hwm = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", rss) == 1 || sscanf(line, "VmHWM: %ld kB", hwm) == 1)
            if (*rss >= 0 && *hwm >= 0)
                break;
    if (f)
        fclose(f);
}

static void mon_sample(struct mon *m)
{
    long rss, hwm;
    proc_mem(m->d->pid, &rss, &hwm);
    pthread_mutex_lock(&m->mu);
    if (rss >= 0) {
        m->rss_last = rss;
        if (rss > m->rss_win)
            m->rss_win = rss;
    }
    if (hwm > m->hwm_last)
        m->hwm_last = hwm;
    pthread_mutex_unlock(&m->mu);
}

static void *rss_thread(void *arg)
{
    struct mon *m = arg;
    while (!atomic_load(&m->stop)) {
        mon_sample(m);
        sleep_ms(10);
    }
    return NULL;
}

static void ping_msg(void *arg, const uint8_t *cap, size_t caplen, uint64_t len)
{
    struct msginfo *mi = arg;
    struct msginfo got;
    classify(cap, caplen, len, &got);
    if (got.type == 1)
        *mi = got;
}

/* One ping at a time, every PING_EVERY_MS, on a connection of its own. */
static void *ping_thread(void *arg)
{
    struct mon *m = arg;
    int fd = -1;
    uint32_t msgid = 0;
    struct skim sk;
    static __thread uint8_t buf[65536];
    while (!atomic_load(&m->stop)) {
        if (fd < 0) {
            if ((fd = connect_to(m->d->sock)) < 0) {
                sleep_ms(50);
                continue;
            }
            memset(&sk, 0, sizeof sk);
        }
        struct gsp_buf out = {0};
        msgpack_packer pk;
        gsp_packer_init(&pk, &out);
        gsp_pack_request(&pk, ++msgid, "ping", 0);
        int64_t sent = now_ms();
        pthread_mutex_lock(&m->mu);
        m->ping_sent = sent;
        pthread_mutex_unlock(&m->mu);
        bool ok = send(fd, out.data, out.len, MSG_NOSIGNAL) == (ssize_t)out.len;
        gsp_buf_free(&out);
        struct msginfo mi = {.type = 0};
        while (ok && mi.type != 1 && !atomic_load(&m->stop)) {
            struct pollfd p = {fd, POLLIN, 0};
            if (poll(&p, 1, 50) <= 0)
                continue;
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n <= 0 || skim_feed(&sk, buf, (size_t)n, ping_msg, &mi) < 0)
                ok = false;
        }
        int64_t t = now_ms();
        pthread_mutex_lock(&m->mu);
        m->ping_sent = 0;
        if (mi.type == 1) {
            if (t - sent > m->ping_worst)
                m->ping_worst = t - sent;
            m->ping_done++;
            if (mi.error && strcmp(mi.code, "overloaded") == 0)
                m->ping_overloaded++;
            else if (mi.error)
                m->ping_errors++;
        } else if (!ok) {
            m->ping_cut = true;
        }
        pthread_mutex_unlock(&m->mu);
        if (!ok) {
            close(fd);
            fd = -1;
            sleep_ms(50);
        }
        sleep_ms(PING_EVERY_MS);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void *wd_thread(void *arg)
{
    struct mon *m = arg;
    char buf[512];
    while (!atomic_load(&m->stop)) {
        ssize_t n = recv(m->wd_fd, buf, sizeof buf - 1, 0); /* SO_RCVTIMEO: 50 ms */
        if (n <= 0)
            continue;
        buf[n] = '\0';
        int64_t t = now_ms();
        pthread_mutex_lock(&m->mu);
        if (strstr(buf, "WATCHDOG=1")) {
            if (m->wd_last && t - m->wd_last > m->wd_gap)
                m->wd_gap = t - m->wd_last;
            if (!m->wd_first)
                m->wd_first = t;
            m->wd_last = t;
            m->beats++;
        }
        /* systemd's watchdog runs from READY=1 on: a gap is measured from
         * there, or from the previous heartbeat. */
        if (strstr(buf, "READY=1") && !m->ready_at) {
            m->ready_at = t;
            if (!m->wd_last)
                m->wd_last = t;
        }
        pthread_mutex_unlock(&m->mu);
    }
    return NULL;
}

/* Binds the notify socket and names it to the daemon to come. */
static void mon_init(struct mon *m, struct daemon *d)
{
    memset(m, 0, sizeof *m);
    m->d = d;
    pthread_mutex_init(&m->mu, NULL);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", d->notify);
    m->wd_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(m->wd_fd, 0);
    ck_assert_msg(bind(m->wd_fd, (struct sockaddr *)&sa, sizeof sa) == 0, "bind %s: %s",
                  sa.sun_path, strerror(errno));
    struct timeval tv = {0, 50000};
    setsockopt(m->wd_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setenv("NOTIFY_SOCKET", d->notify, 1);
    setenv("WATCHDOG_USEC", WATCHDOG_USEC, 1);
    unsetenv("WATCHDOG_PID");
    m->wd_on = pthread_create(&m->wd_t, NULL, wd_thread, m) == 0;
}

static void mon_start_rss(struct mon *m)
{
    m->rss_on = pthread_create(&m->rss_t, NULL, rss_thread, m) == 0;
}

static void mon_start_ping(struct mon *m)
{
    m->ping_on = pthread_create(&m->ping_t, NULL, ping_thread, m) == 0;
}

static void mon_begin(struct mon *m)
{
    mon_sample(m);
    pthread_mutex_lock(&m->mu);
    m->rss_win = m->rss_last;
    m->hwm_begin = m->hwm_last;
    m->ping_worst = 0;
    m->ping_overloaded = 0;
    m->ping_cut = false;
    m->wd_gap = 0;
    pthread_mutex_unlock(&m->mu);
}

/* The window since mon_begin. A ping in flight, and the time since the last
 * heartbeat of a daemon still running, count as they stand. */
static struct win mon_end(struct mon *m)
{
    bool alive = daemon_alive(m->d);
    if (alive)
        mon_sample(m);
    struct win w;
    int64_t t = now_ms();
    pthread_mutex_lock(&m->mu);
    long peak = m->rss_win;
    if (m->hwm_last > m->hwm_begin && m->hwm_last > peak)
        peak = m->hwm_last; /* the lifetime peak rose during the window */
    w.rss_mib = peak / 1024.0;
    int64_t ping = m->ping_worst;
    if (m->ping_sent && t - m->ping_sent > ping)
        ping = t - m->ping_sent;
    w.ping_ms = m->ping_on ? (double)ping : -1;
    int64_t gap = m->wd_gap;
    if (alive && m->wd_last && t - m->wd_last > gap)
        gap = t - m->wd_last;
    w.gap_ms = m->wd_last ? (double)gap : -1;
    w.ping_overloaded = (long long)m->ping_overloaded;
    w.ping_cut = m->ping_cut;
    pthread_mutex_unlock(&m->mu);
    return w;
}

static void mon_stop(struct mon *m)
{
    atomic_store(&m->stop, true);
    if (m->rss_on)
        pthread_join(m->rss_t, NULL);
    if (m->ping_on)
        pthread_join(m->ping_t, NULL);
    if (m->wd_on)
        pthread_join(m->wd_t, NULL);
    m->rss_on = m->ping_on = m->wd_on = false;
    close(m->wd_fd);
}

static bool mon_ready(struct mon *m)
{
    pthread_mutex_lock(&m->mu);
    bool ready = m->ready_at != 0;
    pthread_mutex_unlock(&m->mu);
    return ready;
}

static uint64_t mon_pings(struct mon *m)
{
    pthread_mutex_lock(&m->mu);
    uint64_t n = m->ping_done;
    pthread_mutex_unlock(&m->mu);
    return n;
}

/* Waits until the daemon's RSS has held within 1 MiB for 500 ms (it has
 * handled what it read), up to ms. */
static void mon_settle(struct mon *m, int ms)
{
    int64_t end = now_ms() + ms, since = now_ms();
    long last = -1;
    while (now_ms() < end && daemon_alive(m->d)) {
        sleep_ms(50);
        pthread_mutex_lock(&m->mu);
        long rss = m->rss_last;
        pthread_mutex_unlock(&m->mu);
        if (last < 0 || labs(rss - last) > 1024) {
            last = rss;
            since = now_ms();
        } else if (now_ms() - since >= 500) {
            return;
        }
    }
}

/* ---- clients: many connections driven from one poll loop ---------------------- */

struct aconn {
    int fd;
    bool closed, cut; /* cut: the daemon closed it (EOF, reset, broken pipe) */
    bool refused;     /* the connection could not be made */
    struct gsp_buf out;
    size_t off; /* bytes of out already written */
    struct skim in;
    uint32_t next_id;
    uint64_t sent, answered, ok, nil_results, overloaded, too_large, other_errors, downs;
    uint64_t rx_bytes, tx_bytes;
    char other_code[32];  /* the first other error code seen */
    char notify_code[32]; /* the code of an error notification, if one came */
    struct msginfo last;  /* the last response */
    bool has_last;
    int64_t last_write;
    int64_t cut_at;
};

struct attack;
typedef void refill_fn(struct attack *a, struct aconn *c, int i);

struct attack {
    struct aconn *c;
    int n;
    bool reading; /* read what the daemon sends */
    refill_fn *refill;
    void *ctx;
    int64_t now;
    int stall_ms;  /* > 0: attack_run gives up after that long without a byte either way */
    bool stalled;  /* it did */
    int64_t moved; /* when a byte last went either way */
};

static void conn_msg(void *arg, const uint8_t *cap, size_t caplen, uint64_t len)
{
    struct aconn *c = arg;
    struct msginfo mi;
    classify(cap, caplen, len, &mi);
    if (mi.type == 1) {
        c->answered++;
        c->last = mi;
        c->has_last = true;
        if (!mi.error) {
            c->ok++;
            c->nil_results += mi.result_nil;
        } else if (strcmp(mi.code, "overloaded") == 0) {
            c->overloaded++;
        } else if (strcmp(mi.code, "too_large") == 0) {
            c->too_large++;
        } else {
            c->other_errors++;
            if (!c->other_code[0])
                snprintf(c->other_code, sizeof c->other_code, "%s", mi.code);
        }
    } else if (mi.type == 2 && strcmp(mi.method, "down") == 0) {
        c->downs++;
    } else if (mi.type == 2 && strcmp(mi.method, "error") == 0) {
        snprintf(c->notify_code, sizeof c->notify_code, "%s", mi.code[0] ? mi.code : "?");
    }
}

/* Connects c; false (c closed, counted as refused) if the daemon does not
 * take the connection. */
static bool conn_try_open(struct aconn *c, const char *sock)
{
    memset(c, 0, sizeof *c);
    c->fd = connect_to(sock);
    if (c->fd < 0) {
        c->closed = c->refused = true;
        return false;
    }
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    /* Big enough buffers that the poll loop is not the bottleneck. */
    int size = 1 << 20;
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    return true;
}

static void conn_open(struct aconn *c, const char *sock)
{
    ck_assert_msg(conn_try_open(c, sock), "connect %s: %s", sock, strerror(errno));
}

static void conn_close(struct aconn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->closed = true;
    gsp_buf_free(&c->out);
    c->off = 0;
}

static void conn_cut(struct aconn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->closed = c->cut = true;
    c->cut_at = now_ms();
}

static size_t conn_pending(const struct aconn *c)
{
    return c->out.len - c->off;
}

/* A request's head: [0, msgid, method, [ — then nparams values into *pk. */
static void conn_request(struct aconn *c, msgpack_packer *pk, const char *method, uint32_t nparams)
{
    gsp_packer_init(pk, &c->out);
    gsp_pack_request(pk, ++c->next_id, method, nparams);
    c->sent++;
}

/* Writes what it can; false once the daemon has closed the connection. */
static bool conn_write(struct aconn *c)
{
    while (conn_pending(c) > 0) {
        ssize_t n = send(c->fd, c->out.data + c->off, conn_pending(c), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0)
            return false;
        c->off += (size_t)n;
        c->tx_bytes += (uint64_t)n;
        c->last_write = now_ms();
    }
    if (c->off == c->out.len)
        c->off = c->out.len = 0;
    else if (c->off > (4u << 20)) {
        gsp_buf_consume(&c->out, c->off);
        c->off = 0;
    }
    return true;
}

static bool conn_read(struct aconn *c)
{
    static uint8_t buf[1 << 18];
    for (int k = 0; k < 16; k++) {
        ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n <= 0)
            return false;
        c->rx_bytes += (uint64_t)n;
        if (skim_feed(&c->in, buf, (size_t)n, conn_msg, c) < 0) {
            fprintf(stderr, "stress: the daemon sent bytes that are not msgpack\n");
            return false;
        }
    }
    return true;
}

static void attack_open(struct attack *a, int n, const char *sock)
{
    a->n = n;
    a->c = calloc((size_t)n, sizeof *a->c);
    for (int i = 0; i < n; i++)
        conn_try_open(&a->c[i], sock);
}

static void attack_close(struct attack *a)
{
    for (int i = 0; i < a->n; i++)
        conn_close(&a->c[i]);
    free(a->c);
    a->c = NULL;
    a->n = 0;
}

/* One turn of the poll loop, waiting up to wait_ms. */
static void attack_step(struct attack *a, int wait_ms)
{
    static struct pollfd pfd[512];
    static int idx[512];
    int np = 0;
    a->now = now_ms();
    for (int i = 0; i < a->n && np < 512; i++) {
        struct aconn *c = &a->c[i];
        if (c->closed)
            continue;
        if (a->refill && conn_pending(c) < (1u << 20))
            a->refill(a, c, i);
        short ev = (conn_pending(c) ? POLLOUT : 0) | (a->reading ? POLLIN : 0);
        pfd[np] = (struct pollfd){c->fd, ev, 0};
        idx[np++] = i;
    }
    if (np == 0) {
        sleep_ms(wait_ms);
        return;
    }
    if (poll(pfd, (nfds_t)np, wait_ms) <= 0)
        return;
    for (int k = 0; k < np; k++) {
        struct aconn *c = &a->c[idx[k]];
        short re = pfd[k].revents;
        if ((re & POLLIN) && !conn_read(c)) {
            conn_cut(c);
            continue;
        }
        if ((re & POLLOUT) && !conn_write(c)) {
            if (a->reading) /* an error notification may be waiting */
                conn_read(c);
            conn_cut(c);
            continue;
        }
        /* A peer gone while nothing is read or written here. */
        if ((re & (POLLHUP | POLLERR)) && !(re & POLLIN))
            conn_cut(c);
    }
}

/* Runs until done(a) or the deadline; true if done. */
static bool attack_run(struct attack *a, int64_t deadline, bool (*done)(struct attack *a))
{
    uint64_t bytes = UINT64_MAX;
    a->moved = now_ms();
    for (;;) {
        a->now = now_ms();
        if (done && done(a))
            return true;
        if (a->now >= deadline)
            return false;
        uint64_t b = 0;
        for (int i = 0; i < a->n; i++)
            b += a->c[i].rx_bytes + a->c[i].tx_bytes;
        if (b != bytes) {
            bytes = b;
            a->moved = a->now;
        } else if (a->stall_ms > 0 && a->now - a->moved >= a->stall_ms) {
            a->stalled = true;
            return false;
        }
        attack_step(a, 20);
    }
}

struct totals {
    uint64_t sent, answered, ok, nil_results, overloaded, too_large, other_errors, downs;
    uint64_t rx_bytes, tx_bytes;
    int cut, open, refused;
    char other_code[32], notify_code[32];
};

static struct totals attack_totals(const struct attack *a)
{
    struct totals t = {0};
    for (int i = 0; i < a->n; i++) {
        const struct aconn *c = &a->c[i];
        t.sent += c->sent;
        t.answered += c->answered;
        t.ok += c->ok;
        t.nil_results += c->nil_results;
        t.overloaded += c->overloaded;
        t.too_large += c->too_large;
        t.other_errors += c->other_errors;
        t.downs += c->downs;
        t.rx_bytes += c->rx_bytes;
        t.tx_bytes += c->tx_bytes;
        t.cut += c->cut;
        t.refused += c->refused;
        t.open += !c->closed;
        if (!t.other_code[0] && c->other_code[0])
            memcpy(t.other_code, c->other_code, sizeof t.other_code);
        if (!t.notify_code[0] && c->notify_code[0])
            memcpy(t.notify_code, c->notify_code, sizeof t.notify_code);
    }
    return t;
}

/* "answered A (ok O, too_large T, other X 'code')" for the notes. */
static void note_answers(struct row *r, const struct totals *t)
{
    char other[80] = "";
    if (t->other_errors)
        snprintf(other, sizeof other, ", other errors %llu (%s)",
                 (unsigned long long)t->other_errors, t->other_code);
    row_note(r, "answered %llu of %llu (ok %llu, too_large %llu%s)",
             (unsigned long long)t->answered, (unsigned long long)t->sent,
             (unsigned long long)t->ok, (unsigned long long)t->too_large, other);
    if (t->cut)
        row_note(r, "%d connection%s cut off%s%s", t->cut, t->cut == 1 ? "" : "s",
                 t->notify_code[0] ? ", error notification " : "", t->notify_code);
    if (t->refused)
        row_note(r, "%d connection%s refused", t->refused, t->refused == 1 ? "" : "s");
}

/* ---- requests, one at a time ---------------------------------------------------- */

/* Writes what c holds and waits up to ms for the response to the last
 * request; true with c->last set. */
static bool conn_rpc(struct aconn *c, int ms)
{
    int64_t end = now_ms() + ms;
    uint32_t want = c->next_id;
    c->has_last = false;
    while (!(c->has_last && c->last.msgid == want)) {
        int64_t left = end - now_ms();
        if (left <= 0 || c->closed)
            return false;
        struct pollfd p = {c->fd, POLLIN | (conn_pending(c) ? POLLOUT : 0), 0};
        if (poll(&p, 1, (int)(left < 50 ? left : 50)) <= 0)
            continue;
        if ((p.revents & POLLOUT) && !conn_write(c)) {
            conn_read(c);
            conn_cut(c);
        } else if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && !conn_read(c))
            conn_cut(c);
        if (c->has_last && c->last.msgid != want)
            c->has_last = false;
    }
    return true;
}

/* start [module, name, args, nil]: args nil, or {"count_file": path}. */
static void setup_start(struct aconn *c, const char *module, const char *name,
                        const char *count_file)
{
    msgpack_packer pk;
    conn_request(c, &pk, "start", 4);
    gsp_pack_str(&pk, module);
    gsp_pack_str(&pk, name);
    if (count_file) {
        msgpack_pack_map(&pk, 1);
        gsp_pack_str(&pk, "count_file");
        gsp_pack_str(&pk, count_file);
    } else {
        msgpack_pack_nil(&pk);
    }
    msgpack_pack_nil(&pk);
    ck_assert_msg(conn_rpc(c, 10000) && !c->last.error, "start %s %s: %s", module, name,
                  c->has_last ? c->last.code : "no answer");
}

/* call [server, request-with-one-int-or-none, timeout]; returns the uint
 * answer (or -1). op: "held", "casts", or ["alloc", n] with n >= 0. */
static long long setup_call(struct aconn *c, const char *server, const char *op, int64_t n, int ms)
{
    msgpack_packer pk;
    conn_request(c, &pk, "call", 3);
    gsp_pack_str(&pk, server);
    if (n >= 0) {
        msgpack_pack_array(&pk, 2);
        gsp_pack_str(&pk, op);
        msgpack_pack_int64(&pk, n);
    } else {
        gsp_pack_str(&pk, op);
    }
    msgpack_pack_uint32(&pk, (uint32_t)ms);
    if (!conn_rpc(c, ms + 1000) || c->last.error || !c->last.has_uint)
        return -1;
    return (long long)c->last.uint_val;
}

/* ---- one scenario's frame ---------------------------------------------------------- */

struct sc {
    struct daemon d;
    struct mon m;
    struct row r;
    struct aconn admin; /* setup requests */
    bool admin_open;
    bool stopped; /* the scenario ended the daemon itself */
};

static void sc_finish(struct sc *x);

/* Prepares the row (its name printf-style), the directory, the
 * configuration (counters declared) and the measures, starts the daemon
 * and waits for it to listen. False if it did not: then the row says why
 * and is emitted, and the scenario is over (sc_finish is done). */
static bool sc_start(struct sc *x, const char *id, int64_t counters, bool err_pipe, int listen_ms,
                     const char *name_fmt, ...) __attribute__((format(printf, 6, 7)));
static bool sc_start(struct sc *x, const char *id, int64_t counters, bool err_pipe, int listen_ms,
                     const char *name_fmt, ...)
{
    memset(x, 0, sizeof *x);
    signal(SIGPIPE, SIG_IGN);
    char name[sizeof x->r.name];
    va_list ap;
    va_start(ap, name_fmt);
    vsnprintf(name, sizeof name, name_fmt, ap);
    va_end(ap);
    row_init(&x->r, id, name);
    daemon_prepare(&x->d);
    ck_assert_msg(write_config(x->d.conf, counters), "%s: %s", x->d.conf, strerror(errno));
    mon_init(&x->m, &x->d);
    daemon_spawn(&x->d, err_pipe);
    mon_start_rss(&x->m);
    mon_begin(&x->m);
    int st = daemon_listen(&x->d, listen_ms);
    if (st != 0) {
        struct win w = mon_end(&x->m);
        x->r.rss_mib = w.rss_mib;
        x->r.gap_ms = w.gap_ms;
        if (st == -1) {
            char s[64];
            status_text(s, sizeof s, x->d.status);
            snprintf(x->r.status, sizeof x->r.status, "died at start: %s", s);
            daemon_log_tail(&x->d, "the daemon died before it listened");
        } else {
            snprintf(x->r.status, sizeof x->r.status, "not listening after %d s", listen_ms / 1000);
        }
        sc_finish(x);
        return false;
    }
    mon_start_ping(&x->m);
    conn_open(&x->admin, x->d.sock);
    x->admin_open = true;
    return true;
}

/* The idle daemon's RSS now, once it has settled: what the attack that
 * follows is measured against. */
static double sc_idle_mib(struct sc *x)
{
    mon_settle(&x->m, 3000);
    long rss, hwm;
    proc_mem(x->d.pid, &rss, &hwm);
    return rss > 0 ? rss / 1024.0 : 0;
}

/* Fills the row's measures from a window and the clients' answers. */
static void sc_fill(struct sc *x, const struct win *w, const struct totals *t)
{
    x->r.rss_mib = w->rss_mib;
    x->r.ping_ms = w->ping_ms;
    x->r.gap_ms = w->gap_ms;
    x->r.ping_overloaded = w->ping_overloaded;
    if (t)
        x->r.overloaded = (long long)t->overloaded;
    if (w->ping_cut)
        row_note(&x->r, "the idle ping connection was closed by the daemon");
}

/* Notes a death; true if the daemon is still running. */
static bool sc_check_alive(struct sc *x)
{
    if (daemon_alive(&x->d))
        return true;
    if (!x->r.status[0] && !x->stopped) {
        char s[64];
        status_text(s, sizeof s, x->d.status);
        snprintf(x->r.status, sizeof x->r.status, "died: %s", s);
        daemon_log_tail(&x->d, x->r.status);
    }
    return false;
}

/* Stops everything the scenario started, emits its row, removes its directory. */
static void sc_finish(struct sc *x)
{
    if (x->admin_open)
        conn_close(&x->admin);
    sc_check_alive(x);
    if (x->d.pid > 0 && !x->d.exited) {
        int st = daemon_stop(&x->d, SIGTERM, STOP_GRACE_MS);
        if (x->d.killed) {
            row_note(&x->r, "still running %d s after SIGTERM: killed", STOP_GRACE_MS / 1000);
        } else if (st != 0) {
            char s[64];
            status_text(s, sizeof s, st);
            row_note(&x->r, "at SIGTERM: %s", s);
        }
    }
    mon_stop(&x->m);
    if (x->d.err_rd >= 0)
        close(x->d.err_rd);
    row_emit(&x->r);
    if (getenv("STRESS_KEEP") == NULL)
        nftw(x->d.dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    else
        fprintf(stderr, "stress: kept %s\n", x->d.dir);
}

/* What run_attack saw. */
struct outcome {
    bool done;  /* done(a) before the time limit */
    int64_t ms; /* how long attack_run ran */
    int64_t limit_ms;
    struct win w;
    struct totals t; /* as they stood when the window closed */
};

/* One attack, measured: a window (mon_begin to mon_end) around attack_run
 * until done(a) or limit_ms, held open afterwards up to settle_ms for the
 * daemon's RSS to settle (0: not), then the clients' totals, and the row's
 * measures filled from both (sc_fill). The clients stay open. */
static struct outcome run_attack(struct sc *x, struct attack *a, int64_t limit_ms,
                                 bool (*done)(struct attack *a), int settle_ms)
{
    struct outcome o = {.limit_ms = limit_ms};
    mon_begin(&x->m);
    int64_t t0 = now_ms();
    o.done = attack_run(a, t0 + limit_ms, done);
    o.ms = now_ms() - t0;
    if (settle_ms > 0)
        mon_settle(&x->m, settle_ms);
    o.w = mon_end(&x->m);
    o.t = attack_totals(a);
    sc_fill(x, &o.w, &o.t);
    return o;
}

/* "%.1f s", and why the attack ended if not done. */
static void note_end(struct row *r, const struct attack *a, const struct outcome *o)
{
    if (o->done)
        row_note(r, "%.1f s", o->ms / 1000.0);
    else if (a->stalled)
        row_note(r, "%.1f s, then nothing moved either way for %d s: given up", o->ms / 1000.0,
                 a->stall_ms / 1000);
    else
        row_note(r, "%.1f s (time limit, %d s)", o->ms / 1000.0, (int)(o->limit_ms / 1000));
}

/* n as a scenario's name shows it: 2M, 100k, 65536. */
struct hnum {
    char s[32];
};

static struct hnum human(int64_t n)
{
    struct hnum h;
    if (n >= 1000000 && n % 100000 == 0)
        snprintf(h.s, sizeof h.s, "%gM", n / 1e6);
    else if (n >= 10000 && n % 1000 == 0)
        snprintf(h.s, sizeof h.s, "%lldk", (long long)(n / 1000));
    else
        snprintf(h.s, sizeof h.s, "%lld", (long long)n);
    return h;
}

/* ---- 1: which flood with 100,000 declared servers; start-up; SIGHUP -------------- */

#define WHICH_CONNS 100
#define WHICH_DEPTH 8

static void which_refill(struct attack *a, struct aconn *c, int i)
{
    (void)a, (void)i;
    msgpack_packer pk;
    while (c->sent < WHICH_DEPTH)
        conn_request(c, &pk, "which", 0);
}

static bool which_done(struct attack *a)
{
    for (int i = 0; i < a->n; i++)
        if (!a->c[i].closed && a->c[i].answered < WHICH_DEPTH)
            return false;
    return true;
}

START_TEST(sc1_which)
{
    int64_t n = scaled(100000);
    struct sc x;
    char flood_name[96], hup_name[96];
    snprintf(flood_name, sizeof flood_name, "which flood, %dx%d pipelined, %s", WHICH_CONNS,
             WHICH_DEPTH, human(n).s);
    snprintf(hup_name, sizeof hup_name, "SIGHUP, same file, %s declared", human(n).s);
    if (!sc_start(&x, "1a", n, false, 120000, "start, %s counters declared", human(n).s)) {
        row_skip("1b", flood_name, "the daemon did not start (1a)");
        row_skip("1c", hup_name, "the daemon did not start (1a)");
        return;
    }
    /* 1a: until every declared server has started (READY=1). */
    int64_t end = now_ms() + 120000;
    while (!mon_ready(&x.m) && now_ms() < end && daemon_alive(&x.d))
        sleep_ms(10);
    struct win w = mon_end(&x.m);
    sc_fill(&x, &w, NULL);
    row_note(&x.r, "listening after %.2f s", (x.d.t_listen - x.d.t_spawn) / 1000.0);
    if (x.m.ready_at)
        row_note(&x.r, "READY=1 after %.2f s", (x.m.ready_at - x.d.t_spawn) / 1000.0);
    else
        row_note(&x.r, "no READY=1 within 120 s");
    if (x.m.wd_first)
        row_note(&x.r, "first WATCHDOG=1 after %.2f s", (x.m.wd_first - x.d.t_spawn) / 1000.0);
    if (!sc_check_alive(&x) || !x.m.ready_at) {
        sc_finish(&x);
        row_skip("1b", flood_name, "the daemon did not get ready (1a)");
        row_skip("1c", hup_name, "the daemon did not get ready (1a)");
        return;
    }
    /* What the servers themselves hold: left out of the goal in each row. */
    double idle = x.r.base_mib = sc_idle_mib(&x);
    row_note(&x.r, "idle with its servers: %.0f MiB", idle);
    struct row start = x.r;
    row_emit(&start);

    /* 1b: the flood. */
    row_init(&x.r, "1b", flood_name);
    x.r.base_mib = idle;
    struct attack a = {.reading = true, .refill = which_refill};
    attack_open(&a, WHICH_CONNS, x.d.sock);
    struct outcome o = run_attack(&x, &a, 90000, which_done, 0);
    attack_close(&a);
    note_answers(&x.r, &o.t);
    row_note(&x.r, "%.0f MiB of replies in %.1f s%s", o.t.rx_bytes / MIB, o.ms / 1000.0,
             o.done ? "" : " (time limit, 90 s)");
    if (!sc_check_alive(&x)) {
        sc_finish(&x);
        row_skip("1c", hup_name, "the daemon died in 1b");
        return;
    }
    struct row flood = x.r;
    row_emit(&flood);

    /* 1c: SIGHUP of the same file, until the log says it is applied. */
    row_init(&x.r, "1c", hup_name);
    x.r.base_mib = idle;
    sleep_ms(300);
    long from = file_size(x.d.log);
    mon_begin(&x.m);
    uint64_t pings = mon_pings(&x.m);
    int64_t t0 = now_ms(), t1 = 0;
    kill(x.d.pid, SIGHUP);
    bool applied = false;
    while (now_ms() < t0 + 60000 && daemon_alive(&x.d)) {
        if (!applied && (log_has(&x.d, from, "applied:") || log_has(&x.d, from, "refused"))) {
            applied = true;
            t1 = now_ms();
        }
        /* Wait for the pings that were held up to be answered too. */
        if (applied && mon_pings(&x.m) >= pings + 3 && now_ms() >= t0 + 1500)
            break;
        sleep_ms(10);
    }
    w = mon_end(&x.m);
    sc_fill(&x, &w, NULL);
    if (applied)
        row_note(&x.r, "applied (log) %.2f s after the signal", (t1 - t0) / 1000.0);
    else
        row_note(&x.r, "not applied within 60 s");
    if (log_has(&x.d, from, "refused"))
        row_note(&x.r, "the reload was refused: see the log");
    sc_finish(&x);
}
END_TEST

/* ---- 2: fairness: 10 connections x 256 calls of 2 ms -------------------------------- */

#define FAIR_CONNS 10
#define FAIR_DEPTH 256
#define FAIR_MS 5000

struct fair {
    int64_t until;
};

static void fair_refill(struct attack *a, struct aconn *c, int i)
{
    struct fair *f = a->ctx;
    char server[16];
    snprintf(server, sizeof server, "p%d", i);
    msgpack_packer pk;
    while (a->now < f->until && c->sent - c->answered < FAIR_DEPTH) {
        conn_request(c, &pk, "call", 3);
        gsp_pack_str(&pk, server);
        msgpack_pack_array(&pk, 2);
        gsp_pack_str(&pk, "block");
        msgpack_pack_uint32(&pk, 2);
        msgpack_pack_uint32(&pk, 60000);
    }
}

START_TEST(sc2_fairness)
{
    struct sc x;
    if (!sc_start(&x, "2", 0, false, 10000, "fairness, %dx%d calls of 2 ms, %g s", FAIR_CONNS,
                  FAIR_DEPTH, FAIR_MS / 1000.0))
        return;
    for (int i = 0; i < FAIR_CONNS; i++) {
        char server[16];
        snprintf(server, sizeof server, "p%d", i);
        setup_start(&x.admin, "stressor", server, NULL);
    }
    struct fair f;
    struct attack a = {.reading = true, .refill = fair_refill, .ctx = &f};
    attack_open(&a, FAIR_CONNS, x.d.sock);
    sleep_ms(200);
    x.r.base_mib = sc_idle_mib(&x);
    f.until = now_ms() + FAIR_MS; /* the clients ask until then, the attack runs as long */
    struct outcome o = run_attack(&x, &a, FAIR_MS, NULL, 0);
    attack_close(&a);
    row_note(&x.r, "one stressor server per connection (p0..p9)");
    row_note(&x.r, "%llu calls answered in %g s (at most %d of 2 ms fit)",
             (unsigned long long)o.t.answered, FAIR_MS / 1000.0, FAIR_MS / 2);
    if (o.t.overloaded || o.t.too_large || o.t.other_errors || o.t.cut)
        note_answers(&x.r, &o.t);
    sc_finish(&x);
}
END_TEST

/* ---- 3: slow readers: 100 clients that never read, asking for 1 MiB echoes ---------- */

#define SLOW_CONNS 100
#define SLOW_MS 20000

static void slow_refill(struct attack *a, struct aconn *c, int i)
{
    (void)i;
    size_t bytes = (size_t)a->ctx;
    msgpack_packer pk;
    while (conn_pending(c) < bytes) {
        conn_request(c, &pk, "call", 3);
        gsp_pack_str(&pk, "e");
        msgpack_pack_array(&pk, 2);
        gsp_pack_str(&pk, "echo");
        msgpack_pack_bin(&pk, bytes);
        gsp_buf_reserve(&c->out, bytes);
        memset(c->out.data + c->out.len, 'x', bytes);
        c->out.len += bytes;
        msgpack_pack_uint32(&pk, 60000);
    }
}

static bool all_cut(struct attack *a)
{
    for (int i = 0; i < a->n; i++)
        if (!a->c[i].closed)
            return false;
    return true;
}

/* Reads what the daemon still has for the clients, for up to ms, to count
 * the answers they never read during the scenario. */
static void drain(struct attack *a, int ms)
{
    a->reading = true;
    a->refill = NULL;
    int64_t end = now_ms() + ms;
    while (now_ms() < end && !all_cut(a))
        attack_step(a, 20);
}

START_TEST(sc3_slow_readers)
{
    struct sc x;
    /* The clients scale, not the echo: what each may hold is the daemon's
     * per-connection limit, whatever the size of one reply. */
    size_t bytes = 1 << 20;
    int conns = (int)scaled(SLOW_CONNS);
    if (!sc_start(&x, "3", 0, false, 10000, "slow readers, %d never read, echo %.2g MiB", conns,
                  bytes / MIB))
        return;
    setup_start(&x.admin, "stressor", "e", NULL);
    struct attack a = {.reading = false, .refill = slow_refill, .ctx = (void *)bytes};
    attack_open(&a, conns, x.d.sock);
    x.r.base_mib = sc_idle_mib(&x);
    struct outcome o = run_attack(&x, &a, SLOW_MS, all_cut, 5000);
    row_note(&x.r, "%.0f MiB of requests written; %d of %d cut off, %s %.1f s", o.t.tx_bytes / MIB,
             o.t.cut, conns, o.done ? "all within" : "the rest still open at", o.ms / 1000.0);
    drain(&a, 2000);
    struct totals t = attack_totals(&a);
    x.r.overloaded = (long long)t.overloaded;
    row_note(&x.r, "read back afterwards for 2 s: %llu answers (%llu overloaded, %llu too_large)",
             (unsigned long long)t.answered, (unsigned long long)t.overloaded,
             (unsigned long long)t.too_large);
    attack_close(&a);
    sc_finish(&x);
}
END_TEST

/* ---- 4: 2,000,000 monitors from one connection ------------------------------------ */

#define PIPELINE 65536 /* requests in flight per connection, where it reads */

struct count_ctx {
    int64_t total;      /* requests to send on each connection */
    const char *server; /* their target */
    const char *method; /* monitor, send, call, cast */
    int64_t work_us;    /* cast ["work", us] */
    bool unbounded;     /* never read: no pipeline bound */
};

static void count_refill(struct attack *a, struct aconn *c, int i)
{
    (void)i;
    struct count_ctx *k = a->ctx;
    msgpack_packer pk;
    int batch = 0;
    while ((int64_t)c->sent < k->total && (k->unbounded || c->sent - c->answered < PIPELINE) &&
           conn_pending(c) < (1u << 20) && batch++ < 8192) {
        if (strcmp(k->method, "monitor") == 0) {
            conn_request(c, &pk, "monitor", 1);
            gsp_pack_str(&pk, k->server);
        } else if (strcmp(k->method, "send") == 0) {
            conn_request(c, &pk, "send", 2);
            gsp_pack_str(&pk, k->server);
            msgpack_pack_uint64(&pk, c->sent);
        } else if (strcmp(k->method, "hold") == 0) {
            conn_request(c, &pk, "call", 3);
            gsp_pack_str(&pk, k->server);
            gsp_pack_str(&pk, "hold");
            msgpack_pack_uint32(&pk, 60000);
        } else { /* cast ["work", us] */
            conn_request(c, &pk, "cast", 2);
            gsp_pack_str(&pk, k->server);
            msgpack_pack_array(&pk, 2);
            gsp_pack_str(&pk, "work");
            msgpack_pack_int64(&pk, k->work_us);
        }
    }
}

static struct count_ctx *count_ctx_of(struct attack *a)
{
    return a->ctx;
}

static bool all_answered(struct attack *a)
{
    for (int i = 0; i < a->n; i++)
        if (!a->c[i].closed && (int64_t)a->c[i].answered < count_ctx_of(a)->total)
            return false;
    return true;
}

/* One connection pipelines k's requests and reads the answers, until all
 * are answered, 60 s, or 5 s with nothing moving: the row's measures and
 * notes. */
static void sc_one_pipeline(struct sc *x, struct count_ctx *k)
{
    struct attack a = {.reading = true, .refill = count_refill, .ctx = k, .stall_ms = 5000};
    attack_open(&a, 1, x->d.sock);
    x->r.base_mib = sc_idle_mib(x);
    struct outcome o = run_attack(x, &a, 60000, all_answered, 0);
    attack_close(&a);
    note_answers(&x->r, &o.t);
    note_end(&x->r, &a, &o);
}

START_TEST(sc4_monitors)
{
    struct sc x;
    int64_t n = scaled(2000000);
    if (!sc_start(&x, "4", 0, false, 10000, "monitors, %s from one connection", human(n).s))
        return;
    setup_start(&x.admin, "stressor", "m", NULL);
    struct count_ctx k = {.total = n, .server = "m", .method = "monitor"};
    sc_one_pipeline(&x, &k);
    sc_finish(&x);
}
END_TEST

/* ---- 5: 40 connections x 65,536 calls nobody answers ---------------------------- */

#define PENDING_CONNS 40

START_TEST(sc5_pending)
{
    struct sc x;
    int64_t per = scaled(65536);
    if (!sc_start(&x, "5", 0, false, 10000, "pending calls, %dx%lld never answered", PENDING_CONNS,
                  (long long)per))
        return;
    setup_start(&x.admin, "stressor", "h", NULL);
    struct aconn side;
    conn_open(&side, x.d.sock);
    struct count_ctx k = {.total = per, .server = "h", .method = "hold", .unbounded = true};
    struct attack a = {.reading = true, .refill = count_refill, .ctx = &k};
    attack_open(&a, PENDING_CONNS, x.d.sock);
    x.r.base_mib = sc_idle_mib(&x);
    mon_begin(&x.m);
    int64_t t0 = now_ms(), deadline = t0 + 60000, next_ask = 0;
    long long held = 0, held_before = -1;
    uint64_t moved = 0;
    int64_t moved_at = t0;
    bool stalled = false;
    struct totals t;
    for (;;) {
        attack_step(&a, 20);
        t = attack_totals(&a);
        if (t.rx_bytes + t.tx_bytes != moved || held != held_before) {
            moved = t.rx_bytes + t.tx_bytes;
            held_before = held;
            moved_at = now_ms();
        } else if (now_ms() - moved_at > 5000) {
            stalled = true; /* nothing written, read or held for 5 s */
            break;
        }
        bool written = true;
        for (int i = 0; i < a.n; i++)
            written &= a.c[i].closed || ((int64_t)a.c[i].sent == per && !conn_pending(&a.c[i]));
        if (written && now_ms() >= next_ask) {
            held = setup_call(&side, "h", "held", -1, 10000);
            next_ask = now_ms() + 250;
            if (held >= 0 && (uint64_t)held + t.answered >= t.sent)
                break;
        }
        if (now_ms() >= deadline || !daemon_alive(&x.d))
            break;
    }
    int64_t t1 = now_ms();
    sleep_ms(300);
    struct win w = mon_end(&x.m);
    t = attack_totals(&a);
    attack_close(&a);
    conn_close(&side);
    sc_fill(&x, &w, &t);
    row_note(&x.r, "%lld calls held by the server, %.1f s%s", held, (t1 - t0) / 1000.0,
             stalled          ? ", then nothing moved for 5 s: given up"
             : t1 >= deadline ? " (time limit, 60 s)"
                              : "");
    note_answers(&x.r, &t);
    sc_finish(&x);
}
END_TEST

/* ---- 6: downs to a connection that never reads -------------------------------------- */

static bool downs_done(struct attack *a)
{
    struct aconn *c = &a->c[0];
    struct count_ctx *k = a->ctx;
    if (c->closed)
        return true;
    if ((int64_t)c->sent == k->total && !conn_pending(c))
        return true;
    /* The daemon stopped reading it. */
    return c->last_write && a->now - c->last_write > 3000;
}

START_TEST(sc6_downs)
{
    struct sc x;
    int64_t n = scaled(1000000);
    if (!sc_start(&x, "6", 0, false, 10000, "downs to a non-reader, %s monitors of nobody",
                  human(n).s))
        return;
    struct count_ctx k = {.total = n, .server = "nosuch", .method = "monitor", .unbounded = true};
    struct attack a = {.reading = false, .refill = count_refill, .ctx = &k};
    attack_open(&a, 1, x.d.sock);
    x.r.base_mib = sc_idle_mib(&x);
    struct outcome o = run_attack(&x, &a, 30000, downs_done, 5000); /* what it read, handled */
    struct aconn *c = &a.c[0];
    row_note(&x.r, "%s after %.1f s: %llu requests written of %lld",
             c->cut                                        ? "cut off"
             : !o.done                                     ? "time limit"
             : ((int64_t)c->sent == n && !conn_pending(c)) ? "all written"
                                                           : "the daemon stopped reading",
             o.ms / 1000.0, (unsigned long long)(c->sent - (conn_pending(c) ? 1 : 0)),
             (long long)n);
    drain(&a, 3000);
    struct totals t = attack_totals(&a);
    x.r.overloaded = (long long)t.overloaded;
    row_note(&x.r, "read back afterwards for 3 s: %llu answers, %llu downs",
             (unsigned long long)t.answered, (unsigned long long)t.downs);
    if (t.too_large || t.other_errors || t.notify_code[0])
        note_answers(&x.r, &t);
    attack_close(&a);
    sc_finish(&x);
}
END_TEST

/* ---- 7: one 16 MiB cast made of nils ---------------------------------------------- */

START_TEST(sc7_nils)
{
    struct sc x;
    /* [0, 1, "cast", ["sink", [nil x n]]]: 19 bytes around the nils */
    int64_t n = scaled((16 << 20) - 64);
    if (!sc_start(&x, "7", 0, false, 10000, "nils, one cast of %.1f MiB", (n + 19) / MIB))
        return;
    setup_start(&x.admin, "stressor", "sink", NULL);
    struct attack a = {.reading = true};
    attack_open(&a, 1, x.d.sock);
    struct aconn *c = &a.c[0];
    msgpack_packer pk;
    conn_request(c, &pk, "cast", 2);
    gsp_pack_str(&pk, "sink");
    msgpack_pack_array(&pk, (uint32_t)n);
    gsp_buf_reserve(&c->out, (size_t)n);
    memset(c->out.data + c->out.len, 0xc0, (size_t)n);
    c->out.len += (size_t)n;
    x.r.base_mib = sc_idle_mib(&x);
    mon_begin(&x.m);
    int64_t t0 = now_ms(), deadline = t0 + 30000;
    while (c->answered == 0 && !c->closed && now_ms() < deadline)
        attack_step(&a, 20);
    int64_t t1 = now_ms();
    long long casts = -1;
    bool acked = c->answered && c->last.result_nil;
    if (daemon_alive(&x.d))
        while ((casts = setup_call(&x.admin, "sink", "casts", -1, 10000)) == 0 && acked &&
               now_ms() < deadline)
            sleep_ms(20);
    sleep_ms(300);
    struct win w = mon_end(&x.m);
    struct totals t = attack_totals(&a);
    sc_fill(&x, &w, &t);
    if (c->answered)
        row_note(&x.r, "answered %s after %.2f s", c->last.error ? c->last.code : "ok",
                 (t1 - t0) / 1000.0);
    else
        row_note(&x.r, "no answer%s", c->cut ? " (cut off)" : " within 30 s");
    if (c->notify_code[0])
        row_note(&x.r, "error notification %s", c->notify_code);
    row_note(&x.r, "the server handled %lld cast%s", casts, casts == 1 ? "" : "s");
    if (acked)
        x.r.lost = casts == 1 ? 0 : 1;
    attack_close(&a);
    sc_finish(&x);
}
END_TEST

/* ---- 8: get_state of a large state --------------------------------------------- */

static long mem_available_mib(void)
{
    char line[256];
    long kib = -1;
    FILE *f = fopen("/proc/meminfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib / 1024;
}

START_TEST(sc8_get_state)
{
    struct sc x;
    /* 1 GiB when the box has room for it several times over, else 256 MiB. */
    int64_t bytes = scaled(mem_available_mib() >= 6144 ? 1 << 30 : 256 << 20);
    if (!sc_start(&x, "8", 0, false, 10000, "get_state of a %.0f MiB state", bytes / MIB))
        return;
    setup_start(&x.admin, "stressor", "big", NULL);
    long long got = setup_call(&x.admin, "big", "alloc", bytes, 60000);
    if (got != bytes) {
        snprintf(x.r.status, sizeof x.r.status, "alloc failed");
        sc_finish(&x);
        return;
    }
    x.r.base_mib = sc_idle_mib(&x); /* with the state */
    long rss1, hwm1;
    struct attack a = {.reading = true};
    attack_open(&a, 1, x.d.sock);
    struct aconn *c = &a.c[0];
    msgpack_packer pk;
    conn_request(c, &pk, "get_state", 1);
    gsp_pack_str(&pk, "big");
    mon_begin(&x.m);
    int64_t t0 = now_ms(), deadline = t0 + 60000;
    while (c->answered == 0 && !c->closed && now_ms() < deadline)
        attack_step(&a, 20);
    int64_t t1 = now_ms();
    sleep_ms(500);
    struct win w = mon_end(&x.m);
    struct totals t = attack_totals(&a);
    sc_fill(&x, &w, &t);
    if (c->answered)
        row_note(&x.r, "answered %s%s%s, a response of %.1f MiB (%llu bytes), after %.2f s",
                 c->last.error ? c->last.code : "ok", c->last.text[0] ? " " : "", c->last.text,
                 c->last.len / MIB, (unsigned long long)c->last.len, (t1 - t0) / 1000.0);
    else
        row_note(&x.r, "no answer%s", c->cut ? " (cut off)" : " within 60 s");
    if (c->notify_code[0])
        row_note(&x.r, "error notification %s", c->notify_code);
    attack_close(&a);
    sleep_ms(1000);
    proc_mem(x.d.pid, &rss1, &hwm1);
    row_note(&x.r, "RSS %.0f MiB idle with the state, %.0f MiB 1 s after the answer", x.r.base_mib,
             rss1 / 1024.0);
    sc_finish(&x);
}
END_TEST

/* ---- 9: log flood, stderr a pipe nobody reads --------------------------------------- */

START_TEST(sc9_log_flood)
{
    struct sc x;
    int64_t n = scaled(1000000);
    if (!sc_start(&x, "9", 0, true, 10000, "log flood, %s sends to no handle_info", human(n).s))
        return;
    setup_start(&x.admin, "counter", "c", NULL);
    struct count_ctx k = {.total = n, .server = "c", .method = "send"};
    sc_one_pipeline(&x, &k);
    /* What the daemon managed to put in the pipe. */
    static char buf[1 << 16];
    long long bytes = 0, lines = 0, dropped_notes = 0;
    fcntl(x.d.err_rd, F_SETFL, O_NONBLOCK);
    ssize_t got;
    while ((got = read(x.d.err_rd, buf, sizeof buf - 1)) > 0) {
        buf[got] = '\0';
        bytes += got;
        for (char *p = buf; (p = memchr(p, '\n', (size_t)(buf + got - p))) != NULL; p++)
            lines++;
        for (char *p = buf; (p = strstr(p, "log lines dropped")) != NULL; p++)
            dropped_notes++;
    }
    row_note(&x.r, "the unread pipe held %lld lines (%lld bytes)%s", lines, bytes,
             dropped_notes ? ", with a 'log lines dropped' line" : "");
    sc_finish(&x);
}
END_TEST

/* ---- 10: SIGTERM with 10,000 acknowledged casts queued ------------------------------- */

#define SLOW_CAST_US 200 /* 10,000 of them: 2 s of work, within the 5 s shutdown timeout */

START_TEST(sc10_sigterm)
{
    struct sc x;
    int64_t n = scaled(10000);
    if (!sc_start(&x, "10", 0, false, 10000, "SIGTERM, %s casts of %d us queued", human(n).s,
                  SLOW_CAST_US))
        return;
    char count_file[192];
    snprintf(count_file, sizeof count_file, "%s/count", x.d.dir);
    setup_start(&x.admin, "stressor", "slow", count_file);
    struct count_ctx k = {.total = n, .server = "slow", .method = "cast", .work_us = SLOW_CAST_US};
    struct attack a = {.reading = true, .refill = count_refill, .ctx = &k, .stall_ms = 5000};
    attack_open(&a, 1, x.d.sock);
    x.r.base_mib = sc_idle_mib(&x);
    /* The row's ping is this window's, until the signal; its RSS and gap
     * the worse of this window and the shutdown's. */
    struct outcome o = run_attack(&x, &a, 30000, all_answered, 0);
    long long acked = (long long)o.t.nil_results;
    mon_begin(&x.m);
    int64_t t1 = now_ms();
    x.stopped = true;
    kill(x.d.pid, SIGTERM);
    bool exited = daemon_wait(&x.d, 30000);
    int64_t t2 = now_ms();
    struct win w2 = mon_end(&x.m);
    attack_close(&a);
    if (w2.rss_mib > x.r.rss_mib)
        x.r.rss_mib = w2.rss_mib;
    if (w2.gap_ms > x.r.gap_ms)
        x.r.gap_ms = w2.gap_ms;
    long long handled = -1;
    FILE *f = fopen(count_file, "r");
    if (f && fscanf(f, "casts %lld", &handled) != 1)
        handled = -1;
    if (f)
        fclose(f);
    row_note(&x.r, "%lld casts acknowledged (answered nil) in %.2f s, then SIGTERM", acked,
             o.ms / 1000.0);
    if (!o.done)
        note_answers(&x.r, &o.t);
    if (!exited) {
        snprintf(x.r.status, sizeof x.r.status, "no exit 30 s after SIGTERM");
        daemon_stop(&x.d, SIGKILL, 1000);
    } else {
        char s[64];
        status_text(s, sizeof s, x.d.status);
        row_note(&x.r, "%s %.2f s after the signal", s, (t2 - t1) / 1000.0);
        if (x.d.status > 128)
            snprintf(x.r.status, sizeof x.r.status, "died: %s", s);
    }
    if (handled >= 0) {
        x.r.lost = acked - handled;
        row_note(&x.r, "terminate counted %lld handled", handled);
    } else {
        x.r.lost = acked;
        row_note(&x.r, "terminate wrote no count: every acknowledged cast counted lost");
    }
    if (log_has(&x.d, 0, "dropped"))
        row_note(&x.r, "the log reports dropped messages");
    sc_finish(&x);
}
END_TEST

/* ---- the table --------------------------------------------------------------------- */

struct scenario {
    const char *key; /* STRESS_ONLY names it */
    int timeout_s;
    const char *rows[3]; /* the ids of its rows */
};

static const struct scenario scenarios[] = {
    {"1", 600, {"1a", "1b", "1c"}},
    {"2", 120, {"2"}},
    {"3", 120, {"3"}},
    {"4", 150, {"4"}},
    {"5", 150, {"5"}},
    {"6", 120, {"6"}},
    {"7", 120, {"7"}},
    {"8", 150, {"8"}},
    {"9", 150, {"9"}},
    {"10", 120, {"10"}},
};

static const struct {
    const char *id, *before;
} befores[] = {
    {"1a", "~55 s to listen at 100k"},
    {"1b", "loop stalled 37 s; no WATCHDOG=1 for 37.9 s"},
    {"1c", "SIGHUP stall 14.1 s at 40k"},
    {"2", "idle ping 5.4 s"},
    {"3", "6.0 GB held"},
    {"4", "279 MB"},
    {"5", "470 MB"},
    {"6", "277 MB queued"},
    {"7", "402 MB while decoding"},
    {"8", "1 GiB encoded, stalled 2-4 s, buffer kept"},
    {"9", "511,000 lines/s; stalled after ~460 lines"},
    {"10", "7,696 of 10,000 lost"},
};

static const char *before_of(const char *id)
{
    for (size_t i = 0; i < sizeof befores / sizeof befores[0]; i++)
        if (strcmp(befores[i].id, id) == 0)
            return befores[i].before;
    return "";
}

static bool selected(const char *only, const char *key)
{
    if (only == NULL || *only == '\0')
        return true;
    char list[256];
    snprintf(list, sizeof list, "%s", only);
    for (char *save = NULL, *t = strtok_r(list, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
        if (strcmp(t, key) == 0)
            return true;
    return false;
}

static const struct row *find_row(const struct row *rows, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(rows[i].id, id) == 0)
            return &rows[i];
    return NULL;
}

static void num(char *buf, size_t size, double v)
{
    if (v < 0)
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%.0f", v);
}

/* Prints the table and the goals; returns the number of goals missed. */
static int print_table(const struct row *rows, size_t nrows, const char *only, double secs)
{
    long limit = budget_mib + MARGIN_MIB;
    char budget[96];
    if (no_budget)
        snprintf(budget, sizeof budget, "NO budget (STRESS_NO_BUDGET=1): limits.memory left out");
    else
        snprintf(budget, sizeof budget, "budget limits.memory = %ld MiB%s", budget_mib,
                 budget_mib != 512 ? " (STRESS_BUDGET_MIB)" : "");
    printf("\n== make stress: %s/gsd; %s; STRESS_SCALE=%g%s; %.0f s in all\n", gsd_build(), budget,
           scale, scale != 1 ? " (every count and size scaled)" : "", secs);
    printf("   watchdog WATCHDOG_USEC=%s (a heartbeat every 500 ms); idle ping every %d ms\n\n",
           WATCHDOG_USEC, PING_EVERY_MS);
    printf("%-3s | %-44s | %12s | %9s | %9s | %10s | %6s | %s\n", "#", "scenario", "RSS peak",
           "idle ping", "WD gap", "overloaded", "lost", "before");
    printf("%-3s | %-44s | %12s | %9s | %9s | %10s | %6s | %s\n", "", "", "MiB (idle)", "worst ms",
           "max ms", "", "", "");
    printf("----+----------------------------------------------+--------------+-----------+---"
           "--------+------------+--------+------------------------------\n");
    int missed = 0;
    char fails[1024] = "";
    bool rss_ok = true, ping_ok = true, gap_ok = true, lost_ok = true, have_ping = false,
         have_lost = false;
    char rss_bad[256] = "", gap_bad[256] = "";
    for (size_t s = 0; s < sizeof scenarios / sizeof scenarios[0]; s++) {
        if (!selected(only, scenarios[s].key))
            continue;
        for (int k = 0; k < 3 && scenarios[s].rows[k]; k++) {
            const char *id = scenarios[s].rows[k];
            const struct row *r = find_row(rows, nrows, id);
            if (r == NULL) {
                printf("%-3s | %-44s | %12s | %9s | %9s | %10s | %6s | %s\n", id,
                       "NO RESULT (the scenario failed or ran out of time: see above)", "-", "-",
                       "-", "-", "-", before_of(id));
                snprintf(fails + strlen(fails), sizeof fails - strlen(fails), " %s", id);
                missed++;
                continue;
            }
            char rss[32], ping[32], gap[32], over[32], lost[32];
            num(rss, sizeof rss, r->rss_mib);
            if (r->rss_mib >= 0 && r->base_mib >= IDLE_SHOWN_MIB)
                snprintf(rss, sizeof rss, "%.0f (%.0f)", r->rss_mib, r->base_mib);
            num(ping, sizeof ping, r->ping_ms);
            num(gap, sizeof gap, r->gap_ms);
            if (r->ping_overloaded)
                snprintf(over, sizeof over, "%lld (+%lld)", r->overloaded, r->ping_overloaded);
            else
                snprintf(over, sizeof over, "%lld", r->overloaded);
            if (r->lost >= 0)
                snprintf(lost, sizeof lost, "%lld", r->lost);
            else
                snprintf(lost, sizeof lost, "-");
            char name[200];
            if (r->status[0])
                snprintf(name, sizeof name, "%.40s [%s]", r->name, r->status);
            else
                snprintf(name, sizeof name, "%s", r->name);
            printf("%-3s | %-44s | %12s | %9s | %9s | %10s | %6s | %s\n", id, name, rss, ping, gap,
                   over, lost, before_of(id));
            if (r->rss_mib >= 0 && r->rss_mib - r->base_mib >= limit) {
                rss_ok = false;
                snprintf(rss_bad + strlen(rss_bad), sizeof rss_bad - strlen(rss_bad), " %s", id);
            }
            if (strcmp(id, "2") == 0 && r->ping_ms >= 0) {
                have_ping = true;
                ping_ok = r->ping_ms < PING_GOAL_MS && !r->status[0];
            }
            if (r->gap_ms > GAP_GOAL_MS) {
                gap_ok = false;
                snprintf(gap_bad + strlen(gap_bad), sizeof gap_bad - strlen(gap_bad), " %s", id);
            }
            if (strcmp(id, "10") == 0) {
                have_lost = true;
                lost_ok = r->lost == 0 && !r->status[0];
            }
        }
    }
    printf("\nNotes:\n");
    for (size_t s = 0; s < sizeof scenarios / sizeof scenarios[0]; s++)
        for (int k = 0; k < 3 && scenarios[s].rows[k]; k++) {
            const struct row *r = find_row(rows, nrows, scenarios[s].rows[k]);
            if (r && selected(only, scenarios[s].key))
                printf("  %-3s %s\n", r->id, r->notes);
        }
    printf("\nGoals (idle RSS: the daemon before the attack, with the servers and the state the "
           "scenario set up,\n       in brackets when over %d MiB: what the budget does not "
           "cover):\n",
           IDLE_SHOWN_MIB);
    if (no_budget)
        printf("  [ -  ] RSS peak - idle RSS < budget + %d MiB: no budget set "
               "(STRESS_NO_BUDGET=1); %ld MiB for reference:%s%s\n",
               MARGIN_MIB, limit, rss_ok ? " every row under it" : " over it:", rss_bad);
    else {
        printf("  [%s] RSS peak - idle RSS < budget + %d MiB = %ld MiB in every scenario%s%s\n",
               rss_ok ? "PASS" : "FAIL", MARGIN_MIB, limit, rss_ok ? "" : "; over it:", rss_bad);
        missed += !rss_ok;
    }
    if (have_ping) {
        printf("  [%s] worst idle ping < %d ms in the callback scenario (2)\n",
               ping_ok ? "PASS" : "FAIL", PING_GOAL_MS);
        missed += !ping_ok;
    }
    printf("  [%s] no heartbeat gap over %d ms%s%s\n", gap_ok ? "PASS" : "FAIL", GAP_GOAL_MS,
           gap_ok ? "" : "; over it:", gap_bad);
    missed += !gap_ok;
    if (have_lost) {
        printf("  [%s] zero acknowledged messages lost at SIGTERM (10)\n",
               lost_ok ? "PASS" : "FAIL");
        missed += !lost_ok;
    }
    if (fails[0])
        printf("  [FAIL] every scenario gave its row; none from:%s\n", fails);
    return missed;
}

/* Starts the daemon once on a file with the budget alone: false (and
 * why, on stderr) if it refuses it. */
static bool budget_accepted(void)
{
    char dir[] = "/tmp/gsd-stress-XXXXXX", conf[64], sock[64], log[64], bin[PATH_MAX];
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return false;
    }
    snprintf(conf, sizeof conf, "%s/gsd.conf", dir);
    snprintf(sock, sizeof sock, "%s/gsd.sock", dir);
    snprintf(log, sizeof log, "%s/gsd.log", dir);
    snprintf(bin, sizeof bin, "%s/gsd", gsd_build());
    bool ok = false;
    pid_t pid = -1;
    if (!write_config(conf, 0)) {
        perror(conf);
        goto out;
    }
    if ((pid = fork()) == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            _exit(127);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(bin, bin, "-s", sock, "-c", conf, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    int64_t end = now_ms() + 10000;
    while (pid > 0 && now_ms() < end) {
        int fd = connect_to(sock);
        if (fd >= 0) {
            close(fd);
            ok = true;
            break;
        }
        if (waitpid(pid, &st, WNOHANG) == pid) {
            pid = -1;
            break;
        }
        sleep_ms(10);
    }
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    if (!ok) {
        char out[4096] = "";
        FILE *f = fopen(log, "r");
        size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
        out[n] = '\0';
        if (f)
            fclose(f);
        fprintf(stderr,
                "stress: %s does not start on limits.memory = %ld MiB (exit %d); it said:\n%s"
                "stress: run with STRESS_NO_BUDGET=1 until the daemon takes the key\n",
                bin, budget_mib, shell_status(st), out);
    }
out:
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return ok;
}

int main(void)
{
    const char *env;
    if ((env = getenv("STRESS_SCALE")) && *env && atof(env) > 0)
        scale = atof(env);
    if ((env = getenv("STRESS_BUDGET_MIB")) && *env && atol(env) > 0)
        budget_mib = atol(env);
    no_budget = (env = getenv("STRESS_NO_BUDGET")) && *env && strcmp(env, "0") != 0;
    const char *only = getenv("STRESS_ONLY");
    if ((env = getenv("STRESS_KEEP")) && *env)
        setenv("GSD_TEST_KEEP", "1", 1); /* the common root too */

    /* A daemon that refuses the budget's key refuses every scenario's file:
     * say so once, here. */
    if (!no_budget && !budget_accepted())
        return 2;

    snprintf(results_path, sizeof results_path, "/tmp/gsd-stress-rows-XXXXXX");
    int fd = mkstemp(results_path);
    if (fd < 0) {
        perror("mkstemp");
        return 2;
    }
    close(fd);

    const TTest *tests[] = {sc1_which, sc2_fairness, sc3_slow_readers, sc4_monitors,  sc5_pending,
                            sc6_downs, sc7_nils,     sc8_get_state,    sc9_log_flood, sc10_sigterm};
    Suite *s = suite_create("stress");
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        if (!selected(only, scenarios[i].key))
            continue;
        TCase *tc = tcase_create(scenarios[i].key);
        tcase_set_timeout(tc, scenarios[i].timeout_s);
        tcase_add_test(tc, tests[i]);
        suite_add_tcase(s, tc);
    }
    int64_t t0 = now_ms();
    run_suite(s);
    double secs = (now_ms() - t0) / 1000.0;

    struct row rows[32];
    size_t nrows = 0;
    FILE *f = fopen(results_path, "r");
    while (f && nrows < 32 && fread(&rows[nrows], sizeof rows[0], 1, f) == 1)
        nrows++;
    if (f)
        fclose(f);
    unlink(results_path);
    int missed = print_table(rows, nrows, only, secs);
    return missed ? 1 : 0;
}
