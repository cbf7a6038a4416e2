/* log.c — one line per event on stderr, with a syslog level prefix under
 * systemd (it reads "<N>") and a readable level elsewhere. Lines are
 * escaped, rate-limited per call site and written without ever blocking
 * the loop (see the banner in gsd.h). */
#include "gsd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int log_level = LOG_INFO;

/* A line: at most TEXT_MAX bytes of formatted text, escaped into at most
 * ESC_MAX, plus a prefix and a suffix; with the dropped-lines notice in
 * front, one write stays well under PIPE_BUF (4096), so a pipe takes it
 * whole or not at all. */
#define TEXT_MAX 1024
#define ESC_MAX 1024
#define OUT_MAX (ESC_MAX + 256)

/* Rate limit per key (format pointer, level): a burst of BURST lines, then
 * one per INTERVAL_MS. Each slot is a GCRA limiter: tat is when its budget
 * is full again; a line passes while tat is at most BURST - 1 intervals
 * ahead of now. Keys are hashed into SLOTS slots with no chaining: two
 * call sites that hash alike share a budget and a count (rare, and no
 * line goes uncounted). */
#define BURST 10
#define INTERVAL_MS 500
#define SLOTS 256 /* 4 KiB; the daemon has fewer than 100 call sites */

static struct slot {
    int64_t tat;
    uint64_t suppressed; /* since the slot's last line that went out */
    const char *fmt;     /* of the last line suppressed, for log_flush */
    int level;
} slots[SLOTS];

/* Set up on the first line: how stderr is written. */
static enum { SINK_UNSET, SINK_WRITE, SINK_SEND } sink;
static bool journal;
static uint64_t dropped;   /* lines the reader had no room for, not yet reported */
static char tail[OUT_MAX]; /* the unsent end of a line a stream socket took in part */
static size_t tail_len;

static void log_setup(void)
{
    struct stat st;
    journal = getenv("JOURNAL_STREAM") != NULL;
    sink = SINK_WRITE;
    if (fstat(2, &st) < 0)
        return;
    if (S_ISSOCK(st.st_mode)) {
        sink = SINK_SEND; /* MSG_DONTWAIT per send: the socket itself stays as it is */
    } else if (S_ISFIFO(st.st_mode)) {
        /* O_NONBLOCK on an open file description of our own: setting it on
         * the inherited one would change it for the parent shell too. If
         * this fails (no /proc), writes block as they used to. */
        int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0 && fd != 2) {
            dup2(fd, 2);
            close(fd);
        }
    }
}

/* Writes what it can of p[0..n) at once; -1 when nothing went, else the
 * count. */
static ssize_t put(const char *p, size_t n)
{
    for (;;) {
        ssize_t k = sink == SINK_SEND ? send(2, p, n, MSG_DONTWAIT | MSG_NOSIGNAL) : write(2, p, n);
        if (k >= 0 || errno != EINTR)
            return k;
    }
}

/* One write of a whole line (or lines). False if it was dropped. A stream
 * socket may take part of it: the rest goes first next time, and lines
 * are dropped until it has gone, so that no line is ever torn. */
static bool emit(const char *p, size_t n)
{
    if (tail_len > 0) {
        ssize_t k = put(tail, tail_len);
        if (k < 0 && errno == EAGAIN)
            return false;
        if (k > 0 && (size_t)k < tail_len) {
            memmove(tail, tail + k, tail_len - (size_t)k);
            tail_len -= (size_t)k;
            return false;
        }
        tail_len = 0; /* sent, or a hard error: nothing more will go */
    }
    ssize_t k = put(p, n);
    if (k <= 0)
        return false;
    if ((size_t)k < n) {
        memcpy(tail, p + k, n - (size_t)k);
        tail_len = n - (size_t)k;
    }
    return true;
}

/* The key's slot if a line of it passes now, else NULL (the line is
 * counted there). */
static struct slot *rate_pass(const void *site, const char *fmt, int level)
{
    uint64_t key = (uint64_t)(uintptr_t)site ^ (uint64_t)level;
    struct slot *s = &slots[((key * 0x9e3779b97f4a7c15u) >> 40) % SLOTS];
    int64_t now = now_ms();
    if (s->tat < now)
        s->tat = now;
    if (s->tat - now > (int64_t)(BURST - 1) * INTERVAL_MS) {
        s->suppressed++;
        s->fmt = fmt;
        s->level = level;
        return NULL;
    }
    s->tat += INTERVAL_MS;
    return s;
}

size_t log_escape(char *dst, size_t size, const char *src, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (size == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        char e[4] = {'\\', (char)c, 0, 0};
        size_t k = 2;
        if (c == '\n')
            e[1] = 'n';
        else if (c == '\r')
            e[1] = 'r';
        else if (c == '\t')
            e[1] = 't';
        else if (c < 0x20 || c == 0x7f)
            e[1] = 'x', e[2] = hex[c >> 4], e[3] = hex[c & 15], k = 4;
        else if (c != '\\')
            e[0] = (char)c, k = 1;
        if (o + k >= size) /* whole escapes only */
            break;
        memcpy(dst + o, e, k);
        o += k;
    }
    dst[o] = '\0';
    return o;
}

/* The line's start: "<N>" for the journal, else the time and the level. */
static size_t prefix(char *out, size_t size, int level)
{
    static const char *const names[8] = {"emerg",   "alert",  "crit", "error",
                                         "warning", "notice", "info", "debug"};
    if (journal)
        return (size_t)snprintf(out, size, "<%d>", level);
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    return (size_t)snprintf(out, size, "%02d:%02d:%02d.%03ld gsd %s: ", tm.tm_hour, tm.tm_min,
                            tm.tm_sec, ts.tv_nsec / 1000000, names[level & 7]);
}

/* One line out: the dropped-lines notice first if one is due, then the
 * escaped text (TEXT_MAX bytes, len as snprintf returned it, so perhaps
 * cut), then how many lines like it were suppressed (cleared once the line
 * is out). */
static void put_line(int level, const char *text, int len, uint64_t *suppressed)
{
    if (sink == SINK_UNSET)
        log_setup();
    size_t tn = len < 0 ? 0 : len < TEXT_MAX ? (size_t)len : TEXT_MAX - 1;
    char out[OUT_MAX];
    size_t n = 0;
    if (dropped > 0) {
        n += prefix(out, sizeof out, LOG_WARN);
        n += (size_t)snprintf(out + n, sizeof out - n,
                              "%llu log lines dropped: the log reader is not reading\n",
                              (unsigned long long)dropped);
    }
    n += prefix(out + n, sizeof out - n, level);
    n += log_escape(out + n, ESC_MAX, text, tn);
    if (*suppressed > 0)
        n += (size_t)snprintf(out + n, sizeof out - n, " (%llu similar lines suppressed)",
                              (unsigned long long)*suppressed);
    out[n++] = '\n';
    if (emit(out, n)) {
        dropped = 0;
        *suppressed = 0;
    } else {
        dropped++; /* and the suppressed count waits for the next line */
    }
}

/* A line rate-limited under key (its call site). */
static void vlog(int level, const void *key, const char *fmt, va_list ap)
{
    struct slot *slot;
    if (level > log_level || !(slot = rate_pass(key, fmt, level)))
        return;
    char text[TEXT_MAX];
    put_line(level, text, vsnprintf(text, sizeof text, fmt, ap), &slot->suppressed);
}

void log_keyed(int level, const void *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, key, fmt, ap);
    va_end(ap);
}

void log_vmsg(int level, const char *fmt, va_list ap)
{
    vlog(level, fmt, fmt, ap);
}

void log_msg(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

void log_flush(void)
{
    /* Past the rate limit: these lines are the limit's own account. */
    for (size_t i = 0; i < SLOTS; i++) {
        struct slot *s = &slots[i];
        if (s->suppressed == 0)
            continue;
        char text[TEXT_MAX];
        uint64_t none = 0;
        put_line(s->level, text,
                 snprintf(text, sizeof text, "%llu lines like \"%s\" suppressed",
                          (unsigned long long)s->suppressed, s->fmt),
                 &none);
        if (dropped == 0)
            s->suppressed = 0; /* out; else it waits for the next flush or line */
    }
}
