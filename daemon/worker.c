/* worker.c — isolated servers: the worker processes their callbacks run
 * in, seen from the daemon (wlink.h has the link, worker_main.c the other
 * side). */
#include "gsd.h"
#include "wlink.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

struct worker_settings worker_settings = {0, (uid_t)-1, (gid_t)-1};
bool workers_enabled = true;
static struct isolate_default *defaults;
static size_t ndefaults;

static struct event *rss_check;
#define RSS_CHECK_MS 100

void worker_configure(const struct worker_settings *ws, const struct isolate_default *d, size_t n)
{
    worker_settings = *ws;
    if (ws->memory && rss_check && !evtimer_pending(rss_check, NULL))
        loop_arm(rss_check, RSS_CHECK_MS); /* for the workers running already too */
    for (size_t i = 0; i < ndefaults; i++) {
        free(defaults[i].module);
        free(defaults[i].group);
    }
    free(defaults);
    defaults = n ? xcalloc(n, sizeof *defaults) : NULL;
    ndefaults = n;
    for (size_t i = 0; i < n; i++) {
        defaults[i].module = xstrndup(d[i].module, strlen(d[i].module));
        defaults[i].group = d[i].group ? xstrndup(d[i].group, strlen(d[i].group)) : NULL;
    }
}

const char *worker_default_for(const char *module)
{
    for (size_t i = 0; i < ndefaults; i++)
        if (strcmp(defaults[i].module, module) == 0)
            return defaults[i].group;
    return NULL;
}

struct worker {
    uint64_t no; /* for refs and logs */
    pid_t pid;
    int fd;
    char *group;     /* NULL: the worker of one server */
    size_t max_size; /* limits.message.max_size when it started: its values' limit */
    struct event *rev, *wev, *flush;
    struct gsp_buf out;
    size_t out_off;
    msgpack_packer pk; /* packs into out */
    int fds[64];       /* module files to pass with the next write (dup'ed) */
    unsigned nfds;
    struct gsp_buf in;
    struct gsp_framer framer;
    struct wlink_mark *mark;
    LIST_HEAD(, server) servers;
    unsigned nservers;
    bool gone;         /* reading and writing are over: it is dying or asked to end */
    char *kill_reason; /* why the daemon killed it; NULL: it ended by itself */
    TAILQ_ENTRY(worker) link;
};

#define FDS_MAX (sizeof((struct worker *)0)->fds / sizeof(int))

static TAILQ_HEAD(, worker) workers = TAILQ_HEAD_INITIALIZER(workers);
static unsigned nworkers;
static uint64_t last_no;
static struct event *sigchld;

static void died(struct worker *w, int status);
static void retire(struct worker *w);

bool worker_alive(const struct worker *w)
{
    return !w->gone;
}

pid_t worker_pid(const struct worker *w)
{
    return w->pid;
}

unsigned worker_count(void)
{
    return nworkers;
}

static void kill_worker(struct worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void kill_worker(struct worker *w, const char *fmt, ...)
{
    if (w->kill_reason == NULL) {
        char why[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof why, fmt, ap);
        va_end(ap);
        w->kill_reason = xstrndup(why, strlen(why));
    }
    kill(w->pid, SIGKILL);
    retire(w);
}

/* ---- writing ----------------------------------------------------------- */

static void flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct worker *w = arg;
    while (!w->gone && w->out_off < w->out.len) {
        struct iovec iov = {w->out.data + w->out_off, w->out.len - w->out_off};
        union {
            char buf[CMSG_SPACE(sizeof w->fds)];
            struct cmsghdr align;
        } ctl;
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        memset(&ctl, 0, sizeof ctl);
        if (w->nfds) { /* with the bytes at or before the frames that need them */
            mh.msg_control = ctl.buf;
            mh.msg_controllen = CMSG_SPACE(w->nfds * sizeof(int));
            struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(w->nfds * sizeof(int));
            memcpy(CMSG_DATA(cm), w->fds, w->nfds * sizeof(int));
        }
        ssize_t n = sendmsg(w->fd, &mh, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            event_add(w->wev, NULL); /* the rest when it has read */
            return;
        }
        if (n < 0) { /* it has died or closed its link: what it died of is told once reaped */
            kill(w->pid, SIGKILL);
            retire(w);
            return;
        }
        bool were_full = w->nfds == FDS_MAX;
        for (unsigned i = 0; i < w->nfds; i++)
            close(w->fds[i]);
        w->nfds = 0;
        w->out_off += (size_t)n;
        struct server *s;
        if (were_full) /* starts held for want of room may go on */
            LIST_FOREACH(s, &w->servers, worker_link)
            {
                if (server_has_work(s))
                    sched_wake(s);
            }
    }
    w->out.len = w->out_off = 0;
    if (w->out.cap > (1u << 20))
        gsp_buf_free(&w->out);
}

/* The packer for the next frame; the frames of one loop pass go out in one
 * write, at its end. */
static msgpack_packer *frame_begin(struct worker *w)
{
    if (w->out.len == w->out_off)
        event_active(w->flush, EV_WRITE, 0);
    return &w->pk;
}

static msgpack_packer *frame(struct worker *w, enum wlink_op op, uint64_t sid, uint32_t n)
{
    frame_begin(w);
    msgpack_pack_array(&w->pk, n);
    msgpack_pack_uint32(&w->pk, op);
    msgpack_pack_uint64(&w->pk, sid);
    return &w->pk;
}

/* ---- starting one ------------------------------------------------------ */

static void on_sigchld(evutil_socket_t fd, short what, void *arg);
static void on_rss_check(evutil_socket_t fd, short what, void *arg);
static void on_read(evutil_socket_t fd, short what, void *arg);

/* The daemon's own executable, opened at start: a worker runs the very
 * binary the daemon runs, even once a package upgrade has replaced the
 * file (and under valgrind, where /proc/self/exe names valgrind). */
static int self_exe = -1;
static char self_path[4096];
void worker_init(void)
{
    self_exe = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    self_path[n > 0 ? n : 0] = 0;
}

static struct worker *spawn(const char *group, char *err, size_t errlen)
{
    if (!workers_enabled) {
        snprintf(err, errlen, "worker processes are not available in this program");
        return NULL;
    }
    if (sigchld == NULL) {
        sigchld = loop_event(LOOP_PRIO_OWN, SIGCHLD, EV_SIGNAL | EV_PERSIST, on_sigchld, NULL);
        event_add(sigchld, NULL);
        rss_check = loop_event(LOOP_PRIO_OWN, -1, 0, on_rss_check, NULL);
    }
    int sv[2] = {-1, -1};
    int mfd = memfd_create("gsd-worker-mark", MFD_CLOEXEC);
    void *mark = MAP_FAILED;
    if (self_exe < 0) {
        snprintf(err, errlen, "cannot start a worker: /proc/self/exe could not be opened");
        goto fail;
    }
    if (mfd < 0 || ftruncate(mfd, sizeof(struct wlink_mark)) < 0 ||
        (mark = mmap(NULL, sizeof(struct wlink_mark), PROT_READ | PROT_WRITE, MAP_SHARED, mfd,
                     0)) == MAP_FAILED ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        snprintf(err, errlen, "cannot make a worker's link: %s", strerror(errno));
        goto fail;
    }
    uint64_t no = ++last_no;
    char arg_no[24], arg_ppid[24], arg_uid[24], arg_gid[24];
    snprintf(arg_no, sizeof arg_no, "%llu", (unsigned long long)no);
    snprintf(arg_ppid, sizeof arg_ppid, "%d", (int)getpid());
    snprintf(arg_uid, sizeof arg_uid, "%d", (int)worker_settings.uid);
    snprintf(arg_gid, sizeof arg_gid, "%d", (int)worker_settings.gid);
    char arg_size[24], arg_depth[24];
    snprintf(arg_size, sizeof arg_size, "%zu", limits.message.max_size);
    snprintf(arg_depth, sizeof arg_depth, "%u", limits.message.max_depth);
    char *argv[] = {"gsd-worker", "--worker", arg_no,    arg_ppid, arg_uid,
                    arg_gid,      arg_size,   arg_depth, NULL};
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "cannot start a worker: fork: %s", strerror(errno));
        goto fail;
    }
    if (pid == 0) {
        /* Between fork and exec: only what is safe in a forked child. The
         * worker holds its link and its mark, nothing else of the daemon's. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        /* Each out of the way first: one may sit where another goes. */
        int exe = WLINK_FD_MARK + 1, from[3];
        if ((from[0] = fcntl(sv[1], F_DUPFD, 16)) < 0 || (from[1] = fcntl(mfd, F_DUPFD, 16)) < 0 ||
            (from[2] = fcntl(self_exe, F_DUPFD, 16)) < 0 || dup2(from[0], WLINK_FD_SOCK) < 0 ||
            dup2(from[1], WLINK_FD_MARK) < 0 || dup2(from[2], exe) < 0 ||
            fcntl(exe, F_SETFD, FD_CLOEXEC) < 0)
            _exit(127);
        close_range(exe + 1, ~0u, 0);
        fexecve(exe, argv, environ);
        execv(self_path, argv); /* where that cannot be (valgrind): by name */
        _exit(127);
    }
    close(sv[1]);
    close(mfd);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    struct worker *w = xcalloc(1, sizeof *w);
    w->no = no;
    w->pid = pid;
    w->fd = sv[0];
    w->group = group && *group ? xstrndup(group, strlen(group)) : NULL;
    w->mark = mark;
    w->max_size = limits.message.max_size;
    LIST_INIT(&w->servers);
    gsp_packer_init(&w->pk, &w->out);
    w->rev = loop_event(LOOP_PRIO_CLIENT, w->fd, EV_READ | EV_PERSIST, on_read, w);
    w->wev = loop_event(LOOP_PRIO_CLIENT, w->fd, EV_WRITE, flush, w);
    w->flush = loop_event(LOOP_PRIO_CLIENT, -1, 0, flush, w);
    event_add(w->rev, NULL);
    TAILQ_INSERT_TAIL(&workers, w, link);
    nworkers++;
    if (worker_settings.memory && !evtimer_pending(rss_check, NULL))
        loop_arm(rss_check, RSS_CHECK_MS);
    log_msg(LOG_INFO, "worker %llu started, pid %d%s%s", (unsigned long long)no, (int)pid,
            w->group ? ", group " : "", w->group ? w->group : "");
    return w;
fail:
    if (mark != MAP_FAILED)
        munmap(mark, sizeof(struct wlink_mark));
    if (mfd >= 0)
        close(mfd);
    if (sv[0] >= 0)
        close(sv[0]), close(sv[1]);
    log_msg(LOG_ERR, "%s", err);
    return NULL;
}

bool worker_place(struct server *s, const char *group, char *err, size_t errlen)
{
    struct worker *w = NULL;
    if (group && *group)
        TAILQ_FOREACH(w, &workers, link)
        {
            if (!w->gone && w->group && strcmp(w->group, group) == 0)
                break;
        }
    if (w == NULL && (w = spawn(group, err, errlen)) == NULL)
        return false;
    s->worker = w;
    STAILQ_INIT(&s->sent);
    LIST_INSERT_HEAD(&w->servers, s, worker_link);
    w->nservers++;
    return true;
}

/* ---- feeding ----------------------------------------------------------- */

bool worker_can_take(const struct server *s)
{
    const struct msg *m = STAILQ_FIRST(&s->mbox.q);
    return m && !s->worker->gone && s->status != SERVER_ENDED && !s->upgrading &&
           (m->kind != MSG_INIT || s->worker->nfds < FDS_MAX) && s->nsent < WORKER_WINDOW &&
           (s->nsent == 0 || s->sent_bytes < WORKER_WINDOW_BYTES) &&
           (m->kind != MSG_STOP || s->nsent == 0);
}

/* A module's file, to go with the frame packed next; false if it cannot
 * (no room until the worker has read: worker_can_take waits for it). */
static bool pass_module(struct worker *w, const struct module *m)
{
    if (w->nfds == FDS_MAX)
        flush(-1, 0, w);
    int fd = w->nfds < FDS_MAX ? dup(m->fd) : -1;
    if (fd < 0)
        return false;
    w->fds[w->nfds++] = fd;
    return true;
}

static void host(struct worker *w, struct server *s)
{
    if (!pass_module(w, s->mod)) { /* worker_can_take made room: it cannot fail but on dup */
        kill_worker(w, "cannot pass it module %s: %s", s->mod->name, strerror(errno));
        return;
    }
    msgpack_packer *pk = frame(w, WL_HOST, s->id, 3);
    if (s->name)
        gsp_pack_str(pk, s->name);
    else
        msgpack_pack_nil(pk);
    s->hosted = true;
}

void worker_feed(struct server *s)
{
    struct worker *w = s->worker;
    while (worker_can_take(s)) {
        struct msg *m = mailbox_take(&s->mbox);
        if (m->kind == MSG_STOP) { /* every earlier message has its result */
            struct farewell bye = {m->waiter, enc_nil};
            crash_note(s, CB_NONE, (struct gsp_span){m->data, m->len}, m->waiter);
            server_end(s, (struct gsp_span){m->data, m->len}, &bye);
            msg_free(m);
            return;
        }
        if (m->kind == MSG_INIT)
            host(w, s);
        trace_msg(s, m->kind, (struct gsp_span){m->data, m->len});
        struct waiter *caller = m->kind == MSG_CALL ? waiter_find(m->waiter) : NULL;
        uint8_t head[WLINK_RUN_HEAD];
        /* A caller already gone waits no more: a deadline long past. */
        size_t n =
            wlink_run_head(head, s->id, (uint8_t)m->kind, m->kind == MSG_INFO ? 0 : m->waiter,
                           m->kind != MSG_CALL ? -1
                           : caller            ? caller->deadline
                                               : 0,
                           m->kind == MSG_INFO ? m->waiter : 0);
        msgpack_packer *pk = frame_begin(w);
        gsp_pack_raw(pk, head, n);
        if (m->len)
            gsp_pack_raw(pk, m->data, m->len);
        else
            msgpack_pack_nil(pk); /* a get_state carries nothing */
        STAILQ_INSERT_TAIL(&s->sent, m, link);
        s->nsent++;
        s->sent_bytes += m->len;
    }
}

bool worker_upgrade(struct server *s, struct module *to)
{
    struct worker *w = s->worker;
    if (w->gone || !pass_module(w, to))
        return false;
    msgpack_pack_uint32(frame(w, WL_UPGRADE, s->id, 3), s->mod->desc->vsn);
    return true;
}

void worker_switch(struct server *s, bool commit)
{
    if (s->hosted && !s->worker->gone) {
        msgpack_packer *pk = frame(s->worker, WL_SWITCH, s->id, 3);
        if (commit)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
    }
}

void worker_caller_gone(struct server *s, uint64_t from)
{
    if (!s->worker->gone)
        msgpack_pack_uint64(frame(s->worker, WL_GONE, s->id, 3), from);
}

static void end_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct server *s = arg;
    kill_worker(s->worker, "terminate of server %llu (%s) outran its timeout",
                (unsigned long long)s->id, s->name ? s->name : "-");
}

void worker_end(struct server *s, struct gsp_span reason, int64_t ms)
{
    msgpack_packer *pk = frame(s->worker, WL_END, s->id, 3);
    gsp_pack_raw(pk, reason.ptr, reason.len);
    if (ms >= 0) {
        s->end_timer = loop_event(LOOP_PRIO_OWN, -1, 0, end_timeout, s);
        loop_arm(s->end_timer, ms);
    }
}

void worker_forget(struct server *s)
{
    struct worker *w = s->worker;
    if (s->end_timer)
        event_free(s->end_timer);
    s->end_timer = NULL;
    struct msg *m;
    while ((m = STAILQ_FIRST(&s->sent)) != NULL) {
        STAILQ_REMOVE_HEAD(&s->sent, link);
        msg_free(m);
    }
    bool busy = s->nsent > 0; /* a callback of it may still run there (an init that hangs) */
    s->nsent = 0;
    s->sent_bytes = 0;
    LIST_REMOVE(s, worker_link);
    s->hosted = false;
    if (--w->nservers == 0 && !w->gone) {
        if (busy)
            kill(w->pid, SIGKILL); /* nothing of it is wanted any more */
        retire(w);                 /* else it reads the end of its link and exits */
    }
}

/* ---- reading ----------------------------------------------------------- */

/* A RESULT, the frame of nearly every message: read in place, only its
 * reply and reason decoded, and only when there is one. */
static bool result_frame(struct worker *w, struct gsp_cursor *c, uint32_t n, uint64_t sid)
{
    int64_t action, flags, timeout, took;
    struct gsp_span reply, reason, tmsg;
    gs_result r = gs_result_of(GS_BAD_RETURN);
    if (n != 9 || !gsp_get_int(c, &action) || !gsp_get_int(c, &flags) || !gsp_get_span(c, &reply) ||
        !gsp_get_span(c, &reason) || !gsp_get_int(c, &timeout) || !gsp_get_span(c, &tmsg) ||
        !gsp_get_int(c, &took) || (!gsp_span_is_nil(reply) && !scratch_decode(reply, &r.reply)) ||
        (!gsp_span_is_nil(reason) && !scratch_decode(reason, &r.reason)) ||
        ((flags & WL_TIMEOUT_MSG) && !scratch_decode(tmsg, &r.timeout_msg)))
        return false;
    struct server *s = registry_by_id(sid);
    if (s == NULL || s->worker != w)
        return true; /* one that has ended */
    if (s->nsent == 0)
        return false;
    r.action = (gs_action)action;
    r.has_reply = flags & WL_HAS_REPLY;
    r.hibernate = flags & WL_HIBERNATE;
    r.has_continue = flags & WL_CONTINUE; /* the worker has run it: only the flag comes */
    r.has_timeout_msg = flags & WL_TIMEOUT_MSG;
    r.timeout_at = flags & WL_TIMEOUT_AT;
    r.timeout_ms = timeout;
    server_worker_result(s, &r, took);
    return true;
}

/* One frame from w; false if it is not one a worker may send. */
static bool handle(struct worker *w, const uint8_t *p, size_t len)
{
    struct gsp_cursor c = {p, p + len};
    uint32_t n0;
    uint64_t op0, sid0;
    if (gsp_get_array(&c, &n0) && gsp_get_uint(&c, &op0) && gsp_get_uint(&c, &sid0) &&
        op0 == WL_RESULT)
        return result_frame(w, &c, n0, sid0);
    gs_value f;
    if (!gsp_decode(p, len, scratch_zone(), &f) || f.type != MSGPACK_OBJECT_ARRAY ||
        f.via.array.size < 2)
        return false;
    const gs_value *a = f.via.array.ptr;
    uint32_t n = f.via.array.size;
    uint64_t op, sid, ref;
    if (!gs_get_uint(&a[0], &op) || !gs_get_uint(&a[1], &sid))
        return false;
    struct server *s = registry_by_id(sid);
    if (s == NULL || s->worker != w)
        return true; /* one that has ended: what it still asked for is moot */
    gs_server *self = (gs_server *)s;
    switch (op) {
    case WL_PREPARED: {
        bool ok;
        if (n != 4 || !gs_get_bool(&a[2], &ok))
            return false;
        upgrade_answered(s, ok, &a[3]);
        return true;
    }
    case WL_ENDED:
        if (s->status == SERVER_ENDED && s->hosted)
            server_end_finish(s);
        return true;
    case WL_REPLY:
        if (n != 4 || !gs_get_uint(&a[2], &ref))
            return false;
        gsd_api.reply(self, (gs_from){ref}, a[3]);
        return true;
    case WL_CAST:
    case WL_SEND:
        if (n != 4)
            return false;
        (op == WL_CAST ? gsd_api.cast : gsd_api.send)(self, a[2], a[3]);
        return true;
    case WL_CALL: {
        int64_t timeout;
        if (n != 6 || !gs_get_uint(&a[2], &ref) || !(ref & WLINK_REF_BIT) ||
            !gs_get_int(&a[5], &timeout))
            return false;
        api_call_as(s, ref, &a[3], &a[4], timeout);
        return true;
    }
    case WL_MONITOR:
        if (n != 4 || !gs_get_uint(&a[2], &ref) || !(ref & WLINK_REF_BIT))
            return false;
        monitor_add(ref, NULL, s, &a[3]);
        return true;
    case WL_DEMONITOR:
        if (n != 3 || !gs_get_uint(&a[2], &ref))
            return false;
        monitor_remove(ref, NULL, s);
        return true;
    case WL_TIMER: {
        uint64_t ms;
        size_t vlen;
        if (n != 5 || !gs_get_uint(&a[2], &ref) || !(ref & WLINK_REF_BIT) ||
            !gs_get_uint(&a[3], &ms))
            return false;
        const uint8_t *v = api_encode(&a[4], &vlen);
        if (v)
            stimer_start(s, ms > INT32_MAX ? INT32_MAX : (int64_t)ms, v, vlen, ref);
        return true;
    }
    case WL_CANCEL:
        if (n != 3 || !gs_get_uint(&a[2], &ref))
            return false;
        stimer_cancel(s, ref);
        return true;
    case WL_LOG: {
        int64_t level;
        const char *text;
        uint32_t tlen;
        if (n != 4 || !gs_get_int(&a[2], &level) || !gs_get_str(&a[3], &text, &tlen))
            return false;
        api_log_line(s, (int)level, text, tlen);
        return true;
    }
    }
    return false;
}

#define READ_MAX (256u << 10) /* bytes read from one worker per loop pass */

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct worker *w = arg;
    size_t got = 0;
    bool eof = false;
    while (got < READ_MAX) {
        gsp_buf_reserve(&w->in, 64u << 10);
        ssize_t n = read(fd, w->in.data + w->in.len, w->in.cap - w->in.len);
        if (n > 0) {
            w->in.len += (size_t)n, got += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        eof = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
        break;
    }
    /* A frame holds at most two values, each within the message limits. */
    size_t max = w->max_size > limits.message.max_size ? w->max_size : limits.message.max_size;
    struct gsp_limits lim = {2 * max + 4096, GSP_MAX_DEPTH_HARD};
    size_t off = 0, flen;
    while (!w->gone && off < w->in.len) {
        enum gsp_scan r =
            gsp_framer_feed(&w->framer, w->in.data + off, w->in.len - off, &lim, &flen);
        if (r == GSP_SCAN_MORE)
            break;
        bool good = r == GSP_SCAN_DONE && handle(w, w->in.data + off, flen);
        scratch_reset();
        if (!good) {
            kill_worker(w, "it sent a frame it may not send");
            break;
        }
        off += flen;
    }
    gsp_buf_consume(&w->in, off);
    conn_flush_all(); /* the answers the results gave */
    if (eof && !w->gone) {
        kill(w->pid, SIGKILL); /* it closed its link: it is of no more use */
        retire(w);
    }
}

/* ---- ending ------------------------------------------------------------ */

/* No more I/O with w: it is dying, or is being asked to end (it reads the
 * end of its link). It is freed once reaped (on_sigchld). */
static void retire(struct worker *w)
{
    if (w->gone)
        return;
    w->gone = true;
    event_del(w->rev);
    event_del(w->wev);
    event_del(w->flush);
    shutdown(w->fd, SHUT_RDWR);
}

static const char *signal_name(int sig, char *buf, size_t n)
{
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev)
        snprintf(buf, n, "SIG%s", abbrev);
    else
        snprintf(buf, n, "signal %d", sig);
    return buf;
}

static void died(struct worker *w, int status)
{
    retire(w);
    TAILQ_REMOVE(&workers, w, link);
    nworkers--;
    /* The reason each of its servers ends with. */
    char sig[32];
    struct gsp_buf why = {0};
    msgpack_packer pk;
    gsp_packer_init(&pk, &why);
    if (w->kill_reason)
        gsp_pack_str(&pk, "killed");
    else if (WIFSIGNALED(status)) {
        msgpack_pack_array(&pk, 2);
        gsp_pack_str(&pk, "crashed");
        gsp_pack_str(&pk, signal_name(WTERMSIG(status), sig, sizeof sig));
    } else {
        msgpack_pack_array(&pk, 2);
        gsp_pack_str(&pk, "crashed");
        msgpack_pack_array(&pk, 2);
        gsp_pack_str(&pk, "exit_status");
        msgpack_pack_int(&pk, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    if (w->nservers) { /* one line: what died, in what, and who ends */
        char what[300], in[400] = "", who[400] = "", text[160];
        if (w->kill_reason)
            snprintf(what, sizeof what, "killed: %s", w->kill_reason);
        else if (WIFSIGNALED(status))
            snprintf(what, sizeof what, "killed by %s", sig);
        else
            snprintf(what, sizeof what, "exited with status %d", WEXITSTATUS(status));
        struct server *run = registry_by_id(w->mark->sid);
        unsigned cb = w->mark->cb;
        if (run && run->worker == w && cb > CB_NONE && cb < CB_COUNT) {
            const struct msg *m = STAILQ_FIRST(&run->sent);
            if (m) /* for its crash report */
                crash_note(run, (enum callback)cb, (struct gsp_span){m->data, m->len},
                           m->kind == MSG_CALL || m->kind == MSG_INIT ? m->waiter : 0);
            gs_value v = gs_nil();
            bool shown =
                cb != CB_TERMINATE && m && scratch_decode((struct gsp_span){m->data, m->len}, &v);
            snprintf(in, sizeof in, " in %s of server %llu (%s, %s)%s%s", callback_names[cb],
                     (unsigned long long)run->id, run->name ? run->name : "-", run->mod->name,
                     shown ? ", handling " : "", shown ? value_text(text, sizeof text, &v) : "");
            scratch_reset();
        }
        size_t used = 0;
        struct server *s;
        LIST_FOREACH(s, &w->servers, worker_link)
        {
            if (used < sizeof who - 1)
                used +=
                    (size_t)snprintf(who + used, sizeof who - used, "%s%llu (%s)", used ? ", " : "",
                                     (unsigned long long)s->id, s->name ? s->name : "-");
        }
        log_msg(LOG_ERR, "worker %llu (pid %d) %s%s; its servers end: %s",
                (unsigned long long)w->no, (int)w->pid, what, in, who);
    }
    struct gsp_span reason = {why.data, why.len};
    struct server *s;
    while ((s = LIST_FIRST(&w->servers)) != NULL) {
        if (s->status == SERVER_ENDED) { /* it was in terminate */
            free(s->end_reason);
            s->end_reason = memcpy(xmalloc(reason.len), reason.ptr, reason.len);
            s->end_reason_len = reason.len;
            server_end_finish(s);
        } else
            server_end(s, reason, NULL); /* the worker is gone: terminate cannot run */
    }
    gsp_buf_free(&why);
    for (unsigned i = 0; i < w->nfds; i++)
        close(w->fds[i]);
    event_free(w->rev);
    event_free(w->wev);
    event_free(w->flush);
    close(w->fd);
    munmap(w->mark, sizeof *w->mark);
    gsp_buf_free(&w->out);
    gsp_buf_free(&w->in);
    free(w->group);
    free(w->kill_reason);
    free(w);
}

static void on_sigchld(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    /* Its own children only: a module's are for the module to reap. */
    struct worker *w, *next;
    for (w = TAILQ_FIRST(&workers); w; w = next) {
        next = TAILQ_NEXT(w, link);
        int status;
        if (waitpid(w->pid, &status, WNOHANG) == w->pid) {
            died(w, status);
            next = TAILQ_FIRST(&workers); /* died may have started others */
        }
    }
    conn_flush_all(); /* the exits and downs it gave */
}

static void on_rss_check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    long page = sysconf(_SC_PAGESIZE);
    struct worker *w;
    TAILQ_FOREACH(w, &workers, link)
    {
        char path[64], buf[128];
        snprintf(path, sizeof path, "/proc/%d/statm", (int)w->pid);
        int f = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = f < 0 ? -1 : read(f, buf, sizeof buf - 1);
        if (f >= 0)
            close(f);
        unsigned long long size, rss;
        if (n <= 0 || w->gone)
            continue;
        buf[n] = 0;
        if (sscanf(buf, "%llu %llu", &size, &rss) == 2 &&
            rss * (unsigned long long)page > worker_settings.memory)
            kill_worker(w, "its memory (%llu MiB resident) was over the limit of %llu MiB",
                        rss * (unsigned long long)page >> 20,
                        (unsigned long long)worker_settings.memory >> 20);
    }
    if (nworkers && worker_settings.memory)
        loop_arm(rss_check, RSS_CHECK_MS);
}

void worker_free_all(void)
{
    struct worker *w;
    while ((w = TAILQ_FIRST(&workers)) != NULL) {
        kill_worker(w, "the daemon is stopping");
        int status = 0;
        while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR)
            ;
        died(w, status);
    }
    worker_configure(&(struct worker_settings){0, (uid_t)-1, (gid_t)-1}, NULL, 0);
    if (sigchld)
        event_free(sigchld);
    if (rss_check)
        event_free(rss_check);
    sigchld = rss_check = NULL;
}
