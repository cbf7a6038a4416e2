/*
 * gsbench — a light load generator for gsd (and, in raw mode, for anything
 * that answers a fixed request with a fixed number of bytes).
 *
 * One thread, one epoll set, plain read/write: each connection keeps -P
 * requests in flight, answers are counted as they are framed, and every
 * read or write batch costs one clock reading. Requests are msgpack encoded
 * by hand, once per connection; only the msgid changes.
 *
 *   gsbench [-s SOCK] [-m call|cast|start|raw] [-c CONNS] [-P INFLIGHT]
 *           [-t SECS] [-w WARMUP] [-S SERVER[,SERVER...]] [-d BYTES] [-M MODULE]
 *           [-n COUNT] [-R REQUEST] [-L REPLYLEN] [-C CPU] [-T LABEL]
 *
 * With several servers (-S a,b,c), connection i calls or casts to server
 * i mod their number.
 *
 * Prints a human line, then one TSV line starting with "tsv":
 *   tsv label mode conns inflight requests seconds req_per_s p50_us p99_us p999_us errors
 *       answers
 * (requests and the figures after it: measured, after the warm-up; answers:
 * every answer, warm-up included, to divide a server's CPU time by).
 */
#include "gsp.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 1024      /* in flight per connection, at most */
#define READ_SIZE 65536 /* bytes read in one go */
#define HIST_SUB 32     /* histogram buckets per power of two */
#define HIST_SIZE (64 * HIST_SUB)

enum mode { CALL, CAST, START, RAW };

struct conn {
    int fd;
    int srv;      /* the server it talks to: an index into servers[] */
    uint32_t seq; /* msgids: seq * SLOTS + slot */
    int inflight;
    int free_slots[SLOTS]; /* a stack of unused slots */
    int nfree;
    uint64_t sent_ns[SLOTS];
    uint8_t *in; /* bytes read, not yet framed */
    size_t in_len, in_cap;
    struct gsp_framer fr;
    uint8_t *out; /* requests not yet written */
    size_t out_len, out_cap;
    bool final_sent; /* cast: the closing call is on its way */
    bool done;       /* nothing more to send or wait for */
};

static struct {
    enum mode mode;
    const char *sock, *server, *module, *label;
    int conns, inflight, cpu;
    double secs, warmup;
    long payload;
    uint64_t count; /* start: servers to start, then stop (0: time bound) */
    uint8_t raw_req[512];
    size_t raw_req_len, raw_reply_len;
} opt = {CALL, NULL, "counter", "counter", "", 1, 1, -1, 2.0, 0.5, -1, 0, {0}, 0, 0};

#define MAX_SERVERS 256
static const char *servers[MAX_SERVERS]; /* -S, split at commas */
static int nservers;

static uint64_t hist[HIST_SIZE];
static uint64_t done_reqs, errors, issued, answers; /* answers: warm-up included */
static bool measuring, stopping;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "gsbench: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* ---- latency histogram: log-linear, about 3 % resolution ---------------- */

static int hist_index(uint64_t v)
{
    if (v < HIST_SUB)
        return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - 4; /* keep 5 bits: 1xxxx */
    return (shift + 1) * HIST_SUB / 2 + (int)((v >> shift) & (HIST_SUB / 2 - 1)) + HIST_SUB / 2;
}

static uint64_t hist_value(int i) /* the bucket's lower bound */
{
    if (i < HIST_SUB)
        return (uint64_t)i;
    int shift = (i - HIST_SUB / 2) / (HIST_SUB / 2) - 1;
    uint64_t mant = (uint64_t)((i - HIST_SUB / 2) % (HIST_SUB / 2)) + HIST_SUB / 2;
    return mant << shift;
}

static double percentile_us(double q)
{
    uint64_t total = 0, seen = 0;
    for (int i = 0; i < HIST_SIZE; i++)
        total += hist[i];
    if (total == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)total);
    for (int i = 0; i < HIST_SIZE; i++) {
        seen += hist[i];
        if (seen > want)
            return (double)hist_value(i) / 1000.0;
    }
    return 0;
}

/* ---- requests, encoded by hand ------------------------------------------ */

static uint8_t *put_str(uint8_t *p, const char *s, size_t n)
{
    if (n < 32)
        *p++ = (uint8_t)(0xa0 | n);
    else if (n < 256) {
        *p++ = 0xd9;
        *p++ = (uint8_t)n;
    } else {
        *p++ = 0xdb;
        for (int i = 3; i >= 0; i--)
            *p++ = (uint8_t)(n >> (8 * i));
    }
    memcpy(p, s, n);
    return p + n;
}

/* The server param: an id if all digits, else a name. */
static uint8_t *put_server(uint8_t *p, const char *s)
{
    size_t n = strlen(s);
    if (n > 0 && strspn(s, "0123456789") == n) {
        uint64_t id = strtoull(s, NULL, 10);
        *p++ = 0xcf;
        for (int i = 7; i >= 0; i--)
            *p++ = (uint8_t)(id >> (8 * i));
        return p;
    }
    return put_str(p, s, n);
}

/* The request value of a call or cast: "get" / "increment", or with a
 * payload ["echo", bin] (for a server that echoes, as probe does). */
static uint8_t *put_request(uint8_t *p, bool cast)
{
    if (opt.payload < 0)
        return cast ? put_str(p, "increment", 9) : put_str(p, "get", 3);
    *p++ = 0x92;
    p = put_str(p, "echo", 4);
    uint32_t n = (uint32_t)opt.payload;
    *p++ = 0xc6;
    for (int i = 3; i >= 0; i--)
        *p++ = (uint8_t)(n >> (8 * i));
    memset(p, 'x', n);
    return p + n;
}

/* [0, msgid, method, params] with a uint32 msgid (patched per send). */
static size_t encode_request(uint8_t *buf, bool final_call, const char *server)
{
    uint8_t *p = buf;
    *p++ = 0x94;
    *p++ = 0x00;
    *p++ = 0xce;
    p += 4; /* msgid */
    enum mode m = final_call ? CALL : opt.mode;
    if (m == CALL) {
        p = put_str(p, "call", 4);
        *p++ = 0x93;
        p = put_server(p, server);
        p = final_call ? put_str(p, "get", 3) : put_request(p, false);
        *p++ = 0xc0; /* default timeout */
    } else if (m == CAST) {
        p = put_str(p, "cast", 4);
        *p++ = 0x92;
        p = put_server(p, server);
        p = put_request(p, true);
    } else { /* START: [module, nil, nil, nil] */
        p = put_str(p, "start", 5);
        *p++ = 0x94;
        p = put_str(p, opt.module, strlen(opt.module));
        *p++ = 0xc0;
        *p++ = 0xc0;
        *p++ = 0xc0;
    }
    return (size_t)(p - buf);
}

static uint8_t *req_bytes[MAX_SERVERS], *final_bytes[MAX_SERVERS];
static size_t req_len[MAX_SERVERS], final_len[MAX_SERVERS];

static void out_reserve(struct conn *c, size_t n)
{
    if (c->out_cap - c->out_len >= n)
        return;
    while (c->out_cap - c->out_len < n)
        c->out_cap = c->out_cap ? 2 * c->out_cap : 4096;
    c->out = realloc(c->out, c->out_cap);
    if (c->out == NULL)
        die("realloc");
}

static void queue_request(struct conn *c, uint64_t t, bool final_call)
{
    const uint8_t *src = final_call ? final_bytes[c->srv] : req_bytes[c->srv];
    size_t n = final_call ? final_len[c->srv] : req_len[c->srv];
    out_reserve(c, n);
    uint8_t *p = c->out + c->out_len;
    memcpy(p, src, n);
    if (opt.mode != RAW) {
        int slot = c->free_slots[--c->nfree];
        uint32_t msgid = ++c->seq * SLOTS + (uint32_t)slot;
        p[3] = (uint8_t)(msgid >> 24);
        p[4] = (uint8_t)(msgid >> 16);
        p[5] = (uint8_t)(msgid >> 8);
        p[6] = (uint8_t)msgid;
        c->sent_ns[slot] = t;
    } else {
        c->sent_ns[(c->seq++) % SLOTS] = t; /* in order: a ring */
    }
    c->out_len += n;
    c->inflight++;
    issued++;
}

/* Writes what is queued; false if the peer has gone. */
static bool flush(struct conn *c)
{
    size_t off = 0;
    while (off < c->out_len) {
        ssize_t n = write(c->fd, c->out + off, c->out_len - off);
        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else if (n < 0 && errno == EAGAIN)
            break; /* the rest goes with the next batch */
        else
            return false;
    }
    memmove(c->out, c->out + off, c->out_len - off);
    c->out_len -= off;
    return true;
}

static bool start_more(void)
{
    return !stopping && (opt.count == 0 || issued < opt.count);
}

/* One answer arrived, sent at sent: count it, send the next. */
static void answered(struct conn *c, uint64_t sent, uint64_t t, bool error)
{
    c->inflight--;
    answers++;
    if (measuring) {
        done_reqs++;
        hist[hist_index(t - sent)]++;
        if (error)
            errors++;
    } else if (error)
        errors++;
    if (c->final_sent) {
        if (c->inflight == 0)
            c->done = true;
        return;
    }
    if (start_more())
        queue_request(c, t, false);
    else if (opt.mode == CAST) {
        if (c->inflight == 0) {
            c->final_sent = true;
            queue_request(c, t, true);
        }
    } else if (c->inflight == 0)
        c->done = true;
}

/* [1, msgid, error, result]: the msgid and whether error is nil. */
static bool read_response(const uint8_t *p, size_t len, uint32_t *msgid, bool *error)
{
    struct gsp_cursor cur = {p, p + len};
    uint32_t n;
    uint64_t type, id;
    if (!gsp_get_array(&cur, &n) || n != 4 || !gsp_get_uint(&cur, &type) || type != 1 ||
        !gsp_get_uint(&cur, &id))
        return false;
    *msgid = (uint32_t)id;
    *error = !gsp_is_nil(&cur);
    return true;
}

static const struct gsp_limits no_limits = {1u << 30, GSP_MAX_DEPTH_HARD};

static bool on_read(struct conn *c, uint64_t t)
{
    if (c->in_cap - c->in_len < READ_SIZE) {
        c->in_cap = 2 * c->in_cap + READ_SIZE;
        if ((c->in = realloc(c->in, c->in_cap)) == NULL)
            die("realloc");
    }
    ssize_t n = read(c->fd, c->in + c->in_len, READ_SIZE);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return true;
    if (n <= 0)
        return false;
    c->in_len += (size_t)n;
    size_t off = 0;
    if (opt.mode == RAW) {
        while (c->in_len - off >= opt.raw_reply_len && c->inflight > 0) {
            answered(c, c->sent_ns[(c->seq - (uint32_t)c->inflight) % SLOTS], t, false);
            off += opt.raw_reply_len;
        }
    } else {
        size_t len;
        for (;;) {
            enum gsp_scan r =
                gsp_framer_feed(&c->fr, c->in + off, c->in_len - off, &no_limits, &len);
            if (r == GSP_SCAN_MORE)
                break;
            uint32_t msgid;
            bool error;
            if (r != GSP_SCAN_DONE || !read_response(c->in + off, len, &msgid, &error)) {
                fprintf(stderr, "gsbench: unexpected bytes from the server\n");
                exit(1);
            }
            int slot = (int)(msgid % SLOTS);
            c->free_slots[c->nfree++] = slot;
            answered(c, c->sent_ns[slot], t, error);
            off += len;
        }
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    return flush(c);
}

static int connect_to(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        die(path);
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die(path);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* "\r\n" and "\xNN" in -R, so a shell can pass Redis's inline protocol. */
static size_t unescape(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (; *s && n < cap; s++) {
        if (*s != '\\' || !s[1]) {
            out[n++] = (uint8_t)*s;
            continue;
        }
        s++;
        if (*s == 'r')
            out[n++] = '\r';
        else if (*s == 'n')
            out[n++] = '\n';
        else if (*s == 'x' && s[1] && s[2]) {
            char hex[3] = {s[1], s[2], 0};
            out[n++] = (uint8_t)strtoul(hex, NULL, 16);
            s += 2;
        } else
            out[n++] = (uint8_t)*s;
    }
    return n;
}

static void usage(void)
{
    fprintf(stderr, "usage: gsbench [-s SOCK] [-m call|cast|start|raw] [-c CONNS] [-P INFLIGHT]\n"
                    "               [-t SECS] [-w WARMUP] [-S SERVER[,SERVER...]] [-d BYTES]\n"
                    "               [-M MODULE] [-n COUNT] [-R REQUEST -L REPLYLEN] [-C CPU]\n"
                    "               [-T LABEL]\n"
                    "  call   call SERVER \"get\" (with -d: [\"echo\", BYTES of bin]); with\n"
                    "         several servers, connection i to server i mod their number\n"
                    "  cast   cast SERVER \"increment\"; then one call per connection, timed\n"
                    "  start  start MODULE servers (anonymous); -n stops after COUNT\n"
                    "  raw    send REQUEST (\\r \\n \\xNN escapes), expect REPLYLEN bytes back\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int o;
    while ((o = getopt(argc, argv, "s:m:c:P:t:w:S:d:M:n:R:L:C:T:h")) != -1) {
        switch (o) {
        case 's':
            opt.sock = optarg;
            break;
        case 'm':
            if (!strcmp(optarg, "call"))
                opt.mode = CALL;
            else if (!strcmp(optarg, "cast"))
                opt.mode = CAST;
            else if (!strcmp(optarg, "start"))
                opt.mode = START;
            else if (!strcmp(optarg, "raw"))
                opt.mode = RAW;
            else
                usage();
            break;
        case 'c':
            opt.conns = atoi(optarg);
            break;
        case 'P':
            opt.inflight = atoi(optarg);
            break;
        case 't':
            opt.secs = atof(optarg);
            break;
        case 'w':
            opt.warmup = atof(optarg);
            break;
        case 'S':
            opt.server = optarg;
            break;
        case 'd':
            opt.payload = atol(optarg);
            break;
        case 'M':
            opt.module = optarg;
            break;
        case 'n':
            opt.count = strtoull(optarg, NULL, 10);
            break;
        case 'R':
            opt.raw_req_len = unescape(optarg, opt.raw_req, sizeof opt.raw_req);
            break;
        case 'L':
            opt.raw_reply_len = (size_t)atol(optarg);
            break;
        case 'C':
            opt.cpu = atoi(optarg);
            break;
        case 'T':
            opt.label = optarg;
            break;
        default:
            usage();
        }
    }
    if (optind < argc || opt.conns < 1 || opt.inflight < 1 || opt.inflight > SLOTS ||
        opt.secs <= 0 || (opt.mode == RAW && (opt.raw_req_len == 0 || opt.raw_reply_len == 0)) ||
        opt.payload > (16 << 20))
        usage();
    if (opt.mode == START)
        opt.warmup = 0; /* every start counts: they stay running */
    char path[108];
    if (gsp_socket_path(opt.sock, path, sizeof path) < 0) {
        fprintf(stderr, "gsbench: socket path too long\n");
        return 2;
    }
    if (opt.cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(opt.cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) < 0)
            die("sched_setaffinity");
    }
    char *server_list = strdup(opt.server);
    for (char *save = NULL, *tok = strtok_r(server_list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (nservers == MAX_SERVERS) {
            fprintf(stderr, "gsbench: at most %d servers\n", MAX_SERVERS);
            return 2;
        }
        servers[nservers++] = tok;
    }
    if (nservers == 0)
        usage();
    for (int k = 0; k < nservers; k++) {
        size_t cap = 64 + (opt.payload > 0 ? (size_t)opt.payload : 0) + strlen(servers[k]) +
                     strlen(opt.module);
        req_bytes[k] = malloc(cap);
        final_bytes[k] = malloc(64 + strlen(servers[k]));
        if (opt.mode == RAW) {
            memcpy(req_bytes[k], opt.raw_req, opt.raw_req_len);
            req_len[k] = opt.raw_req_len;
        } else {
            req_len[k] = encode_request(req_bytes[k], false, servers[k]);
            final_len[k] = encode_request(final_bytes[k], true, servers[k]);
        }
    }

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    struct conn *conns = calloc((size_t)opt.conns, sizeof *conns);
    for (int i = 0; i < opt.conns; i++) {
        struct conn *c = &conns[i];
        c->fd = connect_to(path);
        c->srv = i % nservers;
        for (int s = 0; s < SLOTS; s++)
            c->free_slots[c->nfree++] = SLOTS - 1 - s;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            die("epoll_ctl");
    }

    uint64_t t0 = now_ns();
    uint64_t warm_end = t0 + (uint64_t)(opt.warmup * 1e9),
             end = warm_end + (uint64_t)(opt.secs * 1e9);
    uint64_t mstart = t0;
    measuring = opt.warmup <= 0;
    for (int i = 0; i < opt.conns; i++) {
        for (int k = 0; k < opt.inflight && start_more(); k++)
            queue_request(&conns[i], t0, false);
        if (conns[i].inflight == 0)
            conns[i].done = true;
        if (!flush(&conns[i]))
            die("write");
    }
    int active = 0;
    for (int i = 0; i < opt.conns; i++)
        active += !conns[i].done;
    struct epoll_event evs[256];
    while (active > 0) {
        int n = epoll_wait(ep, evs, 256, 1000);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        uint64_t t = now_ns();
        if (!measuring && t >= warm_end) {
            measuring = true;
            mstart = t;
        }
        if (!stopping && t >= end && opt.count == 0)
            stopping = true;
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->done)
                continue;
            if (!on_read(c, t)) {
                fprintf(stderr, "gsbench: the server closed a connection\n");
                return 1;
            }
            if (c->done)
                active--;
        }
    }
    double secs = (double)(now_ns() - mstart) / 1e9;
    double rate = secs > 0 ? (double)done_reqs / secs : 0;
    double p50 = percentile_us(0.50), p99 = percentile_us(0.99), p999 = percentile_us(0.999);
    static const char *const names[] = {"call", "cast", "start", "raw"};
    printf("%s %s: %d conns x %d in flight: %.0f req/s (%llu in %.2f s), "
           "p50 %.1f us, p99 %.1f us, p99.9 %.1f us, %llu errors\n",
           opt.label[0] ? opt.label : "gsbench", names[opt.mode], opt.conns, opt.inflight, rate,
           (unsigned long long)done_reqs, secs, p50, p99, p999, (unsigned long long)errors);
    printf("tsv\t%s\t%s\t%d\t%d\t%llu\t%.6f\t%.0f\t%.1f\t%.1f\t%.1f\t%llu\t%llu\n",
           opt.label[0] ? opt.label : "-", names[opt.mode], opt.conns, opt.inflight,
           (unsigned long long)done_reqs, secs, rate, p50, p99, p999, (unsigned long long)errors,
           (unsigned long long)answers);
    for (int i = 0; i < opt.conns; i++) {
        close(conns[i].fd);
        free(conns[i].in);
        free(conns[i].out);
    }
    free(conns);
    for (int k = 0; k < nservers; k++) {
        free(req_bytes[k]);
        free(final_bytes[k]);
    }
    free(server_list);
    close(ep);
    return errors ? 3 : 0;
}
