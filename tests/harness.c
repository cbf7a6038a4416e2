/* harness.c — the helpers every test binary shares; see harness.h. */
#include "harness.h"

#include <ctype.h>

#include <dirent.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_WAIT_MS 5000 /* for the daemon's socket to accept */
#define STOP_WAIT_MS 5000  /* for the daemon to exit after SIGTERM */
#define GSCTL_WAIT_MS 10000

/* ---- failing at the caller's line ------------------------------------------ */

__attribute__((noreturn, format(printf, 3, 4))) static void fail_at(const char *file, int line,
                                                                    const char *fmt, ...)
{
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    _ck_assert_failed(file, line, "Failed", "%s", msg);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        abort();
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (p == NULL)
        abort();
    return p;
}

/* ---- cleanup at exit, only in the process that made things -------------- */

#define KEEP_MAX 4096

static pid_t owner;             /* the process whose things these are */
static struct gsd *daemons[16]; /* started, not yet stopped */
static struct proc *procs[16];  /* spawned, not yet waited */
static gsc *clients[64];        /* connected, not yet closed */
static gsc_reply *replies[KEEP_MAX];
static size_t nreplies;
static void *blocks[KEEP_MAX]; /* malloc'd results handed to tests */
static size_t nblocks;
static msgpack_zone *zone; /* every value mp() made */

static void cleanup(void);

/* Makes sure cleanup() runs at exit in this process. */
static void own(void)
{
    static bool registered; /* inherited by a fork, as atexit handlers are */
    if (owner != getpid()) {
        /* A forked test inherits its parent's processes: they are not its own. */
        memset(daemons, 0, sizeof daemons);
        memset(procs, 0, sizeof procs);
        owner = getpid();
    }
    if (!registered) {
        atexit(cleanup);
        registered = true;
    }
}

static void slot_put(void **slots, size_t n, void *p)
{
    own();
    for (size_t i = 0; i < n; i++)
        if (slots[i] == NULL) {
            slots[i] = p;
            return;
        }
    abort(); /* more than a test should ever hold */
}

static void slot_drop(void **slots, size_t n, void *p)
{
    for (size_t i = 0; i < n; i++)
        if (slots[i] == p)
            slots[i] = NULL;
}

/* Hands p to the test: freed at exit. */
static void *keep(void *p)
{
    own();
    if (nblocks == KEEP_MAX) {
        free(blocks[0]); /* the oldest: a test this long reads it no more */
        memmove(blocks, blocks + 1, (KEEP_MAX - 1) * sizeof *blocks);
        nblocks--;
    }
    blocks[nblocks++] = p;
    return p;
}

static gsc_reply *keep_reply(gsc_reply *r)
{
    own();
    if (r == NULL)
        return r;
    if (nreplies == KEEP_MAX) {
        gsc_reply_destroy(&replies[0]);
        memmove(replies, replies + 1, (KEEP_MAX - 1) * sizeof *replies);
        nreplies--;
    }
    replies[nreplies++] = r;
    return r;
}

static void cleanup(void)
{
    if (owner != getpid())
        return;
    for (size_t i = 0; i < 16; i++)
        if (procs[i]) {
            kill(procs[i]->pid, SIGKILL);
            waitpid(procs[i]->pid, NULL, 0);
            close(procs[i]->out);
            close(procs[i]->err);
            free(procs[i]);
            procs[i] = NULL;
        }
    for (size_t i = 0; i < 64; i++)
        gsc_close(&clients[i]);
    for (size_t i = 0; i < 16; i++)
        if (daemons[i]) {
            struct gsd *d = daemons[i];
            int st = gsd_stop(&d);
            if (st != 0)
                fprintf(stderr, "harness: daemon exited with %d at cleanup\n", st);
        }
    for (size_t i = 0; i < nreplies; i++)
        gsc_reply_destroy(&replies[i]);
    for (size_t i = 0; i < nblocks; i++)
        free(blocks[i]);
    nreplies = nblocks = 0;
    if (zone)
        msgpack_zone_free(zone);
    zone = NULL;
}

/* ---- time ---------------------------------------------------------------------- */

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ---- the daemon -------------------------------------------------------------- */

const char *gsd_source(void)
{
    static char dir[PATH_MAX];
    const char *env = getenv("GSD_SOURCE");
    if (env && *env)
        return env;
    snprintf(dir, sizeof dir, "%s/..", gsd_build());
    return dir;
}

const char *gsd_build(void)
{
    static char dir[PATH_MAX];
    const char *env = getenv("GSD_BUILD");
    if (env && *env)
        return env;
    if (dir[0] == '\0') {
        ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
        if (n <= 0)
            return "build";
        dir[n] = '\0';
        for (int k = 0; k < 2; k++) { /* BUILD/tests/check_x -> BUILD */
            char *slash = strrchr(dir, '/');
            if (slash)
                *slash = '\0';
        }
    }
    return dir;
}

int connect_to(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int shell_status(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

/* In a forked child: die with the test, never outlive it. */
static void child_guard(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    signal(SIGPIPE, SIG_DFL);
}

void daemon_child_stdio(pid_t parent, const char *log, int err_fd)
{
    child_guard(parent);
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    int null = open("/dev/null", O_RDONLY);
    if (fd < 0 || null < 0)
        _exit(127);
    dup2(null, 0);
    dup2(fd, 1);
    dup2(err_fd >= 0 ? err_fd : fd, 2);
}

struct gsd *gsd_start_with(const char *const *extra)
{
    return gsd_start_stderr(extra, -1);
}

/* GSD_TEST_ISOLATE=1 runs every server of every module in the module
 * directories in a worker of its own: a configuration file in dir that
 * says so (a test's own -c replaces it). Otherwise /dev/null. Static. */
bool isolated_run(void)
{
    const char *e = getenv("GSD_TEST_ISOLATE");
    return e && strcmp(e, "1") == 0;
}

static const char *isolate_all_config(const char *dir, const char *build)
{
    static char path[160];
    if (!isolated_run())
        return "/dev/null";
    snprintf(path, sizeof path, "%s/isolate.conf", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        ck_abort_msg("%s: %s", path, strerror(errno));
    fputs("isolate = {\n", f);
    const char *const subdirs[] = {"modules", "test-modules"};
    for (size_t i = 0; i < 2; i++) {
        char mdir[PATH_MAX];
        snprintf(mdir, sizeof mdir, "%s/%s", build, subdirs[i]);
        DIR *dd = opendir(mdir);
        for (struct dirent *de; dd && (de = readdir(dd)) != NULL;) {
            size_t n = strlen(de->d_name);
            /* libconfig's names start with a letter */
            if (n > 3 && strcmp(de->d_name + n - 3, ".so") == 0 &&
                isalpha((unsigned char)de->d_name[0]))
                fprintf(f, "    %.*s = true;\n", (int)(n - 3), de->d_name);
        }
        if (dd)
            closedir(dd);
    }
    fputs("};\n", f);
    fclose(f);
    return path;
}

struct gsd *gsd_start_stderr(const char *const *extra, int err_fd)
{
    const char *build = gsd_build();
    char bin[PATH_MAX], mods[2 * PATH_MAX + 32];
    const char *argv[64];
    int argc = 0;
    struct gsd *d = calloc(1, sizeof *d);

    own();
    snprintf(bin, sizeof bin, "%s/gsd", build);
    if (access(bin, X_OK) != 0)
        ck_abort_msg("%s: %s (is the daemon built?)", bin, strerror(errno));
    snprintf(mods, sizeof mods, "%s/modules:%s/test-modules", build, build);
    const char *root = getenv("GSD_TEST_ROOT"); /* see run_suite */
    snprintf(d->dir, sizeof d->dir, "%s/gsd-XXXXXX", root && *root ? root : "/tmp");
    if (mkdtemp(d->dir) == NULL)
        ck_abort_msg("mkdtemp: %s", strerror(errno));
    snprintf(d->sock, sizeof d->sock, "%s/gsd.sock", d->dir);
    snprintf(d->log, sizeof d->log, "%s/gsd.log", d->dir);

    /* GSD_TEST_WRAP runs the daemon under a tool: "valgrind -q ...". */
    static char wrap[512];
    const char *w = getenv("GSD_TEST_WRAP");
    if (w && *w) {
        snprintf(wrap, sizeof wrap, "%s", w);
        for (char *save = NULL, *t = strtok_r(wrap, " ", &save); t && argc < 16;
             t = strtok_r(NULL, " ", &save))
            argv[argc++] = t;
    }
    argv[argc++] = bin;
    argv[argc++] = "-s";
    argv[argc++] = d->sock;
    argv[argc++] = "-M";
    argv[argc++] = mods;
    argv[argc++] = "-c"; /* not the machine's own configuration; a later -c wins */
    argv[argc++] = isolate_all_config(d->dir, build);
    for (int i = 0; extra && extra[i] && argc < 62; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;

    pid_t parent = getpid();
    d->pid = fork();
    if (d->pid < 0)
        ck_abort_msg("fork: %s", strerror(errno));
    if (d->pid == 0) {
        daemon_child_stdio(parent, d->log, err_fd);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    slot_put((void **)daemons, 16, d);

    int64_t end = now_ms() + START_WAIT_MS;
    for (;;) {
        int fd = connect_to(d->sock);
        if (fd >= 0) {
            close(fd);
            return d;
        }
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            char *log = file_read(d->log);
            d->exited = true;
            d->status = shell_status(st);
            ck_abort_msg("gsd exited with %d before accepting; its log:\n%s", d->status,
                         log ? log : "(none)");
        }
        if (now_ms() > end)
            ck_abort_msg("gsd did not accept on %s within %d ms", d->sock, START_WAIT_MS);
        sleep_ms(10);
    }
}

int gsd_wait_exit(struct gsd *d, int sig, int wait_ms)
{
    if (d->exited)
        return d->status;
    if (sig)
        kill(d->pid, sig);
    int64_t end = now_ms() + wait_ms;
    for (;;) {
        int st;
        pid_t p = waitpid(d->pid, &st, WNOHANG);
        if (p == d->pid || (p < 0 && errno == ECHILD)) {
            d->exited = true;
            d->status = p == d->pid ? shell_status(st) : -1;
            return d->status;
        }
        if (now_ms() >= end)
            return -1;
        sleep_ms(5);
    }
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

int gsd_stop(struct gsd **dp)
{
    struct gsd *d = dp ? *dp : NULL;
    if (d == NULL)
        return -1;
    int st = gsd_wait_exit(d, SIGTERM, STOP_WAIT_MS);
    if (st < 0 && !d->exited) {
        kill(d->pid, SIGKILL);
        int raw;
        waitpid(d->pid, &raw, 0);
        d->exited = true;
        d->status = st = shell_status(raw);
        fprintf(stderr, "harness: gsd %d ignored SIGTERM for %d ms: killed\n", (int)d->pid,
                STOP_WAIT_MS);
    }
    if (st != 0) {
        char *log = file_read(d->log);
        fprintf(stderr, "harness: gsd exited with %d; its log:\n%s\n", st, log ? log : "");
    }
    if (getenv("GSD_TEST_KEEP") == NULL)
        nftw(d->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    slot_drop((void **)daemons, 16, d);
    free(d);
    *dp = NULL;
    return st;
}

bool gsd_alive(struct gsd *d)
{
    return gsd_wait_exit(d, 0, 0) < 0 && !d->exited;
}

const char *gsd_path(const struct gsd *d, const char *name)
{
    static char paths[8][192];
    static unsigned next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", d->dir, name);
    return p;
}

/* ---- gsctl ------------------------------------------------------------------- */

struct proc *gsctl_spawn(const char *sock, const char *const *argv)
{
    char bin[PATH_MAX];
    const char *args[64];
    int argc = 0, out[2], err[2];

    own();
    snprintf(bin, sizeof bin, "%s/gsctl", gsd_build());
    if (access(bin, X_OK) != 0)
        ck_abort_msg("%s: %s (is gsctl built?)", bin, strerror(errno));
    args[argc++] = bin;
    if (sock) {
        args[argc++] = "-s";
        args[argc++] = sock;
    }
    for (int i = 0; argv[i] && argc < 63; i++)
        args[argc++] = argv[i];
    args[argc] = NULL;
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
        ck_abort_msg("pipe: %s", strerror(errno));

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        ck_abort_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        child_guard(parent);
        int null = open("/dev/null", O_RDONLY);
        dup2(null, 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        execv(bin, (char *const *)args);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    struct proc *p = xmalloc(sizeof *p);
    p->pid = pid;
    p->out = out[0];
    p->err = err[0];
    slot_put((void **)procs, 16, p);
    return p;
}

int gsctl_wait(struct proc **pp, int wait_ms, char **out, char **err)
{
    struct proc *p = *pp;
    struct gsp_buf bufs[2] = {{0}, {0}};
    struct pollfd fds[2] = {{p->out, POLLIN, 0}, {p->err, POLLIN, 0}};
    int open_fds = 2, status = -1;
    int64_t end = now_ms() + wait_ms;

    while (open_fds > 0) {
        int64_t left = end - now_ms();
        if (left <= 0)
            break;
        if (poll(fds, 2, (int)left) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || fds[i].revents == 0)
                continue;
            char chunk[4096];
            ssize_t n = read(fds[i].fd, chunk, sizeof chunk);
            if (n > 0) {
                gsp_buf_append(&bufs[i], chunk, (size_t)n);
            } else if (n == 0 || errno != EINTR) {
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    for (;;) {
        int st;
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) {
            status = shell_status(st);
            break;
        }
        if (now_ms() >= end) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            status = -1;
            break;
        }
        sleep_ms(5);
    }
    for (int i = 0; i < 2; i++) {
        gsp_buf_append(&bufs[i], "", 1);
        char **dst = i == 0 ? out : err;
        if (dst)
            *dst = keep(bufs[i].data);
        else
            free(bufs[i].data);
    }
    close(p->out);
    close(p->err);
    slot_drop((void **)procs, 16, p);
    free(p);
    *pp = NULL;
    return status;
}

const char *fmt(const char *f, ...)
{
    static char ring[16][512];
    static unsigned next;
    char *s = ring[next++ % 16];
    va_list ap;
    va_start(ap, f);
    vsnprintf(s, sizeof ring[0], f, ap);
    va_end(ap);
    return s;
}

int log_count(const struct gsd *g, const char *needle)
{
    int n = 0;
    const char *log = file_read(g->log);
    for (const char *p = log; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

char *shell_output(const char *cmd, int *status)
{
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        ck_abort_msg("popen %s: %s", cmd, strerror(errno));
    struct gsp_buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        gsp_buf_append(&b, chunk, n);
    gsp_buf_append(&b, "", 1);
    *status = pclose(f);
    return keep(b.data);
}

int run_gsctl(const struct gsd *d, char **out, char **err, ...)
{
    const char *argv[48];
    int argc = 0;
    va_list ap;
    va_start(ap, err);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && argc < 47)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    struct proc *p = gsctl_spawn(d->sock, argv);
    return gsctl_wait(&p, GSCTL_WAIT_MS, out, err);
}

/* ---- raw sockets ----------------------------------------------------------- */

struct raw *raw_connect_at(const char *file, int line, const char *sock)
{
    int fd = connect_to(sock);
    if (fd < 0)
        fail_at(file, line, "connect %s: %s", sock, strerror(errno));
    struct raw *r = calloc(1, sizeof *r);
    r->fd = fd;
    r->zone = msgpack_zone_new(4096);
    return r;
}

void raw_close(struct raw **rp)
{
    struct raw *r = *rp;
    if (r == NULL)
        return;
    if (r->fd >= 0)
        close(r->fd);
    gsp_buf_free(&r->in);
    msgpack_zone_free(r->zone);
    free(r);
    *rp = NULL;
}

void raw_casts_at(const char *file, int line, struct raw *r, const char *server,
                  const char *req_fmt, int n)
{
    struct gsp_buf b = {0};
    msgpack_packer pk;
    gsp_packer_init(&pk, &b);
    for (int i = 0; i < n; i++) {
        size_t len;
        uint8_t *v = gsp_encode(mp_at(file, line, req_fmt, i), &len);
        gsp_pack_request(&pk, (uint32_t)i + 1, "cast", 2);
        gsp_pack_str(&pk, server);
        gsp_pack_raw(&pk, v, len);
        free(v);
    }
    raw_write_at(file, line, r, b.data, b.len);
    gsp_buf_free(&b);
    for (int i = 0; i < n; i++) {
        const msgpack_object *m = raw_recv_at(file, line, r, 5000);
        if (!mp_eq(m, "[1, %d, nil, nil]", i + 1))
            fail_at(file, line, "cast %d of %d answered %s", i + 1, n, mp_str(m));
    }
}

void raw_write_at(const char *file, int line, struct raw *r, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t k = send(r->fd, b, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            fail_at(file, line, "write to the daemon: %s", strerror(errno));
        b += k;
        n -= (size_t)k;
    }
}

static void raw_message(const char *file, int line, struct raw *r, bool notify, uint32_t msgid,
                        const char *method, const msgpack_object *params)
{
    struct gsp_buf b = {0};
    msgpack_packer pk;
    uint32_t n = params ? params->via.array.size : 0;
    if (params && params->type != MSGPACK_OBJECT_ARRAY)
        fail_at(file, line, "params must be an array, not %s", mp_str(params));
    gsp_packer_init(&pk, &b);
    if (notify)
        gsp_pack_notify(&pk, method, n);
    else
        gsp_pack_request(&pk, msgid, method, n);
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_object(&pk, params->via.array.ptr[i]);
    raw_write_at(file, line, r, b.data, b.len);
    gsp_buf_free(&b);
}

void raw_request_at(const char *file, int line, struct raw *r, uint32_t msgid, const char *method,
                    const msgpack_object *params)
{
    raw_message(file, line, r, false, msgid, method, params);
}

void raw_notify_at(const char *file, int line, struct raw *r, const char *method,
                   const msgpack_object *params)
{
    raw_message(file, line, r, true, 0, method, params);
}

/* Reads what is there within wait ms: 1 bytes, 0 EOF, -1 nothing in time. */
static int raw_fill(struct raw *r, int64_t end)
{
    for (;;) {
        int64_t left = end - now_ms();
        struct pollfd pfd = {r->fd, POLLIN, 0};
        int k = poll(&pfd, 1, left > 0 ? (int)left : 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        gsp_buf_reserve(&r->in, 65536);
        ssize_t n = recv(r->fd, r->in.data + r->in.len, 65536, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == ECONNRESET)
            return 0;
        if (n <= 0)
            return n == 0 ? 0 : -1;
        r->in.len += (size_t)n;
        return 1;
    }
}

static const msgpack_object *raw_recv_impl(const char *file, int line, struct raw *r, int wait_ms)
{
    static const struct gsp_limits lim = {GSP_MAX_SIZE_DEFAULT, GSP_MAX_DEPTH_DEFAULT};
    int64_t end = now_ms() + wait_ms;
    for (;;) {
        size_t len = 0;
        enum gsp_scan s =
            r->in.len ? gsp_framer_feed(&r->fr, r->in.data, r->in.len, &lim, &len) : GSP_SCAN_MORE;
        if (s == GSP_SCAN_DONE) {
            /* Decoded strings point into their bytes: keep those in the zone. */
            uint8_t *copy = msgpack_zone_malloc(r->zone, len);
            msgpack_object *obj = msgpack_zone_malloc(r->zone, sizeof *obj);
            memcpy(copy, r->in.data, len);
            gsp_buf_consume(&r->in, len);
            if (!gsp_decode(copy, len, r->zone, obj))
                fail_at(file, line, "the daemon sent a frame that does not decode");
            return obj;
        }
        if (s != GSP_SCAN_MORE)
            fail_at(file, line, "the daemon sent bytes that do not frame (scan %d)", (int)s);
        if (raw_fill(r, end) <= 0)
            return NULL;
    }
}

const msgpack_object *raw_recv(struct raw *r, int wait_ms)
{
    return raw_recv_impl(__FILE__, __LINE__, r, wait_ms);
}

const msgpack_object *raw_recv_at(const char *file, int line, struct raw *r, int wait_ms)
{
    const msgpack_object *m = raw_recv_impl(file, line, r, wait_ms);
    if (m == NULL)
        fail_at(file, line, "no message from the daemon within %d ms", wait_ms);
    return m;
}

int raw_drain(struct raw *r)
{
    int n = 0;
    while (raw_recv(r, 0))
        n++;
    return n;
}

bool raw_eof(struct raw *r, int wait_ms)
{
    if (r->in.len > 0)
        return false;
    return raw_fill(r, now_ms() + wait_ms) == 0;
}

/* ---- values as text ---------------------------------------------------------- */

struct parser {
    const char *src, *p;
    va_list *ap;
    const char *file;
    int line;
};

__attribute__((noreturn)) static void parse_fail(struct parser *ps, const char *what)
{
    fail_at(ps->file, ps->line, "mp: %s at offset %d of \"%s\"", what, (int)(ps->p - ps->src),
            ps->src);
}

static msgpack_zone *values(void)
{
    own();
    if (zone == NULL)
        zone = msgpack_zone_new(8192);
    return zone;
}

static void skip_blanks(struct parser *ps)
{
    while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n')
        ps->p++;
}

static void set_str(msgpack_object *o, msgpack_object_type t, const char *s, size_t n)
{
    char *copy = msgpack_zone_malloc(values(), n + 1);
    memcpy(copy, s, n);
    copy[n] = '\0';
    o->type = t;
    o->via.str.ptr = copy;
    o->via.str.size = (uint32_t)n;
}

static void parse_quoted(struct parser *ps, msgpack_object *o, msgpack_object_type t)
{
    struct gsp_buf b = {0};
    ps->p++; /* the opening quote */
    while (*ps->p != '\'') {
        char c = *ps->p;
        if (c == '\0')
            parse_fail(ps, "unterminated string");
        if (c == '\\') {
            c = *++ps->p;
            if (c == 'x') {
                char hex[3] = {ps->p[1], ps->p[2], 0};
                c = (char)strtol(hex, NULL, 16);
                ps->p += 2;
            } else if (c == 'n') {
                c = '\n';
            } else if (c == '\0') {
                parse_fail(ps, "unterminated string");
            }
        }
        gsp_buf_append(&b, &c, 1);
        ps->p++;
    }
    ps->p++;
    set_str(o, t, b.len ? (const char *)b.data : "", b.len);
    gsp_buf_free(&b);
}

static void parse_value(struct parser *ps, msgpack_object *o);

/* Items up to `close`, into the zone; returns how many (pairs for maps). */
static uint32_t parse_items(struct parser *ps, char close, bool map, void **out)
{
    msgpack_object *items = NULL;
    size_t n = 0;
    ps->p++;
    skip_blanks(ps);
    while (*ps->p != close) {
        items = xrealloc(items, (n + 2) * sizeof *items);
        parse_value(ps, &items[n++]);
        skip_blanks(ps);
        if (map) {
            if (*ps->p != ':')
                parse_fail(ps, "':' expected");
            ps->p++;
            parse_value(ps, &items[n++]);
            skip_blanks(ps);
        }
        if (*ps->p == ',') {
            ps->p++;
            skip_blanks(ps);
        } else if (*ps->p != close) {
            parse_fail(ps, "',' or a closing bracket expected");
        }
    }
    ps->p++;
    if (map) {
        msgpack_object_kv *kv = msgpack_zone_malloc(values(), (n / 2 + 1) * sizeof *kv);
        for (size_t i = 0; i < n / 2; i++) {
            kv[i].key = items[2 * i];
            kv[i].val = items[2 * i + 1];
        }
        *out = kv;
        free(items);
        return (uint32_t)(n / 2);
    }
    msgpack_object *a = msgpack_zone_malloc(values(), (n + 1) * sizeof *a);
    if (n)
        memcpy(a, items, n * sizeof *a);
    free(items);
    *out = a;
    return (uint32_t)n;
}

static void set_int(msgpack_object *o, int64_t v)
{
    if (v < 0) {
        o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o->via.i64 = v;
    } else {
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = (uint64_t)v;
    }
}

static void parse_value(struct parser *ps, msgpack_object *o)
{
    memset(o, 0, sizeof *o);
    skip_blanks(ps);
    const char *p = ps->p;
    if (*p == '[') {
        void *items;
        o->type = MSGPACK_OBJECT_ARRAY;
        o->via.array.size = parse_items(ps, ']', false, &items);
        o->via.array.ptr = items;
    } else if (*p == '{') {
        void *kv;
        o->type = MSGPACK_OBJECT_MAP;
        o->via.map.size = parse_items(ps, '}', true, &kv);
        o->via.map.ptr = kv;
    } else if (*p == '\'') {
        parse_quoted(ps, o, MSGPACK_OBJECT_STR);
    } else if (p[0] == 'b' && p[1] == '\'') {
        ps->p++;
        parse_quoted(ps, o, MSGPACK_OBJECT_BIN);
    } else if (*p == '%') {
        char k = p[1];
        ps->p += 2;
        if (k == 'd') {
            set_int(o, va_arg(*ps->ap, int));
        } else if (k == 'l') {
            set_int(o, va_arg(*ps->ap, int64_t));
        } else if (k == 'u') {
            o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
            o->via.u64 = va_arg(*ps->ap, uint64_t);
        } else if (k == 'b') {
            o->type = MSGPACK_OBJECT_BOOLEAN;
            o->via.boolean = va_arg(*ps->ap, int) != 0;
        } else if (k == 's') {
            const char *s = va_arg(*ps->ap, const char *);
            if (s)
                set_str(o, MSGPACK_OBJECT_STR, s, strlen(s));
            else
                o->type = MSGPACK_OBJECT_NIL;
        } else if (k == 'v') {
            *o = *va_arg(*ps->ap, const msgpack_object *);
        } else {
            ps->p -= 2;
            parse_fail(ps, "unknown directive");
        }
    } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
        char *end;
        size_t span = strspn(p, "-+0123456789.eE");
        if (memchr(p, '.', span) || memchr(p, 'e', span) || memchr(p, 'E', span)) {
            o->type = MSGPACK_OBJECT_FLOAT64;
            o->via.f64 = strtod(p, &end);
        } else if (*p == '-') {
            set_int(o, strtoll(p, &end, 10));
        } else {
            o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
            o->via.u64 = strtoull(p, &end, 10);
        }
        ps->p = end;
    } else if (strncmp(p, "nil", 3) == 0) {
        o->type = MSGPACK_OBJECT_NIL;
        ps->p += 3;
    } else if (strncmp(p, "true", 4) == 0) {
        o->type = MSGPACK_OBJECT_BOOLEAN;
        o->via.boolean = true;
        ps->p += 4;
    } else if (strncmp(p, "false", 5) == 0) {
        o->type = MSGPACK_OBJECT_BOOLEAN;
        ps->p += 5;
    } else {
        parse_fail(ps, "a value expected");
    }
}

static const msgpack_object *parse_text(const char *file, int line, const char *fmt, va_list *ap)
{
    struct parser ps = {fmt, fmt, ap, file, line};
    msgpack_object *o = msgpack_zone_malloc(values(), sizeof *o);
    parse_value(&ps, o);
    skip_blanks(&ps);
    if (*ps.p != '\0')
        parse_fail(&ps, "trailing text");
    return o;
}

const msgpack_object *mp_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const msgpack_object *o = parse_text(file, line, fmt, &ap);
    va_end(ap);
    return o;
}

static void print_quoted(struct gsp_buf *b, const char *s, size_t n)
{
    gsp_buf_append(b, "'", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '\'' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            gsp_buf_append(b, esc, 2);
        } else if (c < 0x20 || c >= 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            gsp_buf_append(b, esc, 4);
        } else {
            gsp_buf_append(b, &c, 1);
        }
    }
    gsp_buf_append(b, "'", 1);
}

static void print_value(struct gsp_buf *b, const msgpack_object *v)
{
    char num[64];
    switch (v->type) {
    case MSGPACK_OBJECT_NIL:
        gsp_buf_append(b, "nil", 3);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        gsp_buf_append(b, v->via.boolean ? "true" : "false", v->via.boolean ? 4 : 5);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        snprintf(num, sizeof num, "%" PRIu64, v->via.u64);
        gsp_buf_append(b, num, strlen(num));
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        snprintf(num, sizeof num, "%" PRId64, v->via.i64);
        gsp_buf_append(b, num, strlen(num));
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        snprintf(num, sizeof num, "%.17g", v->via.f64);
        if (!strpbrk(num, ".eni"))
            strcat(num, ".0");
        gsp_buf_append(b, num, strlen(num));
        break;
    case MSGPACK_OBJECT_STR:
        print_quoted(b, v->via.str.ptr, v->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        gsp_buf_append(b, "b", 1);
        print_quoted(b, v->via.bin.ptr, v->via.bin.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        gsp_buf_append(b, "[", 1);
        for (uint32_t i = 0; i < v->via.array.size; i++) {
            if (i)
                gsp_buf_append(b, ", ", 2);
            print_value(b, &v->via.array.ptr[i]);
        }
        gsp_buf_append(b, "]", 1);
        break;
    case MSGPACK_OBJECT_MAP:
        gsp_buf_append(b, "{", 1);
        for (uint32_t i = 0; i < v->via.map.size; i++) {
            if (i)
                gsp_buf_append(b, ", ", 2);
            print_value(b, &v->via.map.ptr[i].key);
            gsp_buf_append(b, ": ", 2);
            print_value(b, &v->via.map.ptr[i].val);
        }
        gsp_buf_append(b, "}", 1);
        break;
    default:
        snprintf(num, sizeof num, "ext(%d, %u bytes)", v->via.ext.type, v->via.ext.size);
        gsp_buf_append(b, num, strlen(num));
        break;
    }
}

const char *mp_str(const msgpack_object *v)
{
    static char *ring[8];
    static unsigned next;
    struct gsp_buf b = {0};
    if (v == NULL)
        gsp_buf_append(&b, "(none)", 6);
    else
        print_value(&b, v);
    gsp_buf_append(&b, "", 1);
    unsigned i = next++ % 8;
    free(ring[i]);
    ring[i] = (char *)b.data;
    return ring[i];
}

void mp_assert_eq(const char *file, int line, const char *expr, const msgpack_object *v,
                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const msgpack_object *want = parse_text(file, line, fmt, &ap);
    va_end(ap);
    if (v == NULL || !gsp_value_equal(v, want))
        fail_at(file, line, "%s is %s, expected %s", expr, mp_str(v), mp_str(want));
}

bool mp_eq(const msgpack_object *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const msgpack_object *want = parse_text(__FILE__, __LINE__, fmt, &ap);
    va_end(ap);
    return v && gsp_value_equal(v, want);
}

const msgpack_object *mp_get(const msgpack_object *v, const char *key)
{
    size_t n = strlen(key);
    if (v == NULL || v->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < v->via.map.size; i++) {
        const msgpack_object *k = &v->via.map.ptr[i].key;
        if ((k->type == MSGPACK_OBJECT_STR || k->type == MSGPACK_OBJECT_BIN) &&
            k->via.str.size == n && memcmp(k->via.str.ptr, key, n) == 0)
            return &v->via.map.ptr[i].val;
    }
    return NULL;
}

const msgpack_object *mp_item(const msgpack_object *v, uint32_t i)
{
    if (v == NULL || v->type != MSGPACK_OBJECT_ARRAY || i >= v->via.array.size)
        return NULL;
    return &v->via.array.ptr[i];
}

int64_t mp_int_at(const char *file, int line, const msgpack_object *v)
{
    if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX)
        return (int64_t)v->via.u64;
    if (v && v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return v->via.i64;
    fail_at(file, line, "an integer expected, got %s", mp_str(v));
}

/* ---- libgsclient ----------------------------------------------------------- */

gsc *client_at(const char *file, int line, const struct gsd *d)
{
    gsc *c = gsc_connect(d->sock);
    if (c == NULL)
        fail_at(file, line, "gsc_connect %s: %s", d->sock, strerror(errno));
    slot_put((void **)clients, 64, c);
    return c;
}

void client_close(gsc **c)
{
    slot_drop((void **)clients, 64, *c);
    gsc_close(c);
}

static const char *describe(int st, gsc_reply *r)
{
    static char text[4096];
    if (st == GSC_OK)
        snprintf(text, sizeof text, "result %s", mp_str(&r->result));
    else if (st == GSC_ERROR)
        snprintf(text, sizeof text, "error [%s, %s]", r->code, mp_str(&r->detail));
    else
        snprintf(text, sizeof text, "GSC_BROKEN (status %d)", st);
    return text;
}

const msgpack_object *ok_at(const char *file, int line, const char *expr, int st, gsc_reply **r)
{
    if (st != GSC_BROKEN)
        keep_reply(*r);
    if (st != GSC_OK)
        fail_at(file, line, "%s: wanted a result, got %s", expr,
                describe(st, st == GSC_BROKEN ? NULL : *r));
    return &(*r)->result;
}

const msgpack_object *err_at(const char *file, int line, const char *expr, int st, gsc_reply **r,
                             const char *code)
{
    if (st != GSC_BROKEN)
        keep_reply(*r);
    if (st != GSC_ERROR || strcmp((*r)->code, code) != 0)
        fail_at(file, line, "%s: wanted error %s, got %s", expr, code,
                describe(st, st == GSC_BROKEN ? NULL : *r));
    return &(*r)->detail;
}

const msgpack_object *call_at(const char *file, int line, gsc *c, const char *server,
                              const msgpack_object *req, int timeout_ms)
{
    gsc_reply *r = NULL;
    int st = gsc_call(c, server, req, timeout_ms, &r);
    return ok_at(file, line, "gsc_call", st, &r);
}

uint64_t start_at(const char *file, int line, gsc *c, const char *module, const char *name,
                  const msgpack_object *args, const msgpack_object *opts)
{
    gsc_reply *r = NULL;
    int st = gsc_start(c, module, name, args, opts, &r);
    const msgpack_object *id = ok_at(file, line, "gsc_start", st, &r);
    if (id->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        fail_at(file, line, "start %s: the id is %s, not a uint", module, mp_str(id));
    return id->via.u64;
}

gsc_down *down_at(const char *file, int line, gsc *c, int wait_ms)
{
    gsc_down *d = NULL;
    int st = gsc_next_down(c, wait_ms, &d);
    if (st != GSC_OK)
        fail_at(file, line, "no down notification within %d ms (status %d: %s)", wait_ms, st,
                st == GSC_BROKEN ? gsc_errmsg(c) : "none came");
    return d;
}

const char *id_str(uint64_t id)
{
    static char ring[8][24];
    static unsigned next;
    char *s = ring[next++ % 8];
    snprintf(s, sizeof ring[0], "%" PRIu64, id);
    return s;
}

/* ---- files ----------------------------------------------------------------------- */

char *file_read(const char *path)
{
    FILE *f = fopen(path, "r");
    struct gsp_buf b = {0};
    char chunk[4096];
    size_t n;
    if (f == NULL)
        return NULL;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        gsp_buf_append(&b, chunk, n);
    fclose(f);
    gsp_buf_append(&b, "", 1);
    return keep(b.data);
}

char *json_squeeze(const char *s)
{
    struct gsp_buf b = {0};
    bool in_str = false;
    for (; *s; s++) {
        if (in_str) {
            if (*s == '\\' && s[1]) {
                gsp_buf_append(&b, s, 2);
                s++;
                continue;
            }
            if (*s == '"')
                in_str = false;
        } else if (*s == '"') {
            in_str = true;
        } else if (*s == ' ' || *s == '\t' || *s == '\r') {
            continue;
        }
        gsp_buf_append(&b, s, 1);
    }
    gsp_buf_append(&b, "", 1);
    return keep(b.data);
}

char *json_lines(const char *path)
{
    char *text = file_read(path);
    return json_squeeze(text ? text : "");
}

int line_count(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

/* ---- running ----------------------------------------------------------------------- */

int run_suite(Suite *s)
{
    /* A failing test ends with _exit(), skipping our atexit cleanup: its
     * daemons die with it (PR_SET_PDEATHSIG), and their directories live
     * under one root that is removed here, once every test has run. */
    char root[] = "/tmp/gsd-test-XXXXXX";
    bool have_root = mkdtemp(root) != NULL;
    if (have_root)
        setenv("GSD_TEST_ROOT", root, 1);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (have_root && getenv("GSD_TEST_KEEP") == NULL)
        nftw(root, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    else if (have_root)
        fprintf(stderr, "harness: kept %s\n", root);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

void let_workers_crash(void)
{
    setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0});
#if defined(__SANITIZE_ADDRESS__)
    static char opts[1024];
    const char *was = getenv("ASAN_OPTIONS");
    snprintf(opts, sizeof opts, "%s%shandle_segv=0", was ? was : "", was && *was ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
#endif
}
