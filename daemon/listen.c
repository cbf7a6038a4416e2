/* listen.c — the listening socket: passed by systemd, or created under a
 * tight umask; accepts without spinning when out of descriptors. */
#include "gsd.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define ACCEPT_BATCH 64
#define EMFILE_PAUSE_MS 100

static int lfd = -1;
static char *lpath;
static mode_t lmode = 0660; /* srw-rw----: the owner and its group */
static gid_t lgroup = (gid_t)-1;
static struct event *lev, *retry;
static bool full_logged; /* the connection limit was logged, until there is room again */

/* One connection too many: told why in the one write a fresh socket takes
 * without blocking, and closed. */
static void refuse(int cfd)
{
    if (!full_logged)
        log_msg(LOG_WARN, "%u connections open, the limit: refusing new ones", conn_count());
    full_logged = true;
    struct gsp_buf b = {0};
    msgpack_packer pk;
    gsp_packer_init(&pk, &b);
    gsp_pack_error_notify(&pk, GSP_TOO_LARGE, "too many connections");
    ssize_t n = write(cfd, b.data, b.len); /* it may have gone already */
    (void)n;
    gsp_buf_free(&b);
    close(cfd);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what, (void)arg;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd >= 0 && limits.connections && conn_count() >= limits.connections) {
            refuse(cfd);
            continue;
        }
        if (cfd >= 0) {
            full_logged = false;
            conn_new(cfd);
            continue;
        }
        if (errno == EMFILE || errno == ENFILE) {
            /* Pause instead of spinning on a backlog we cannot take. */
            log_msg(LOG_WARN, "accept: %s; pausing for %d ms", strerror(errno), EMFILE_PAUSE_MS);
            event_del(lev);
            loop_arm(retry, EMFILE_PAUSE_MS);
        } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            log_msg(LOG_WARN, "accept: %s", strerror(errno));
        return;
    }
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    event_add(lev, NULL);
}

/* A socket file nobody answers on is left from a crash: take it over.
 * Anything else at the path is not ours to remove. */
static int claim(const char *path, struct sockaddr_un *sun, const struct stat *st)
{
    if (!S_ISSOCK(st->st_mode)) {
        log_msg(LOG_ERR, "%s exists and is not a socket", path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int live = connect(fd, (struct sockaddr *)sun, sizeof *sun) == 0;
    close(fd);
    if (live) {
        log_msg(LOG_ERR, "another gsd is listening on %s", path);
        return -1;
    }
    unlink(path);
    return 0;
}

/* The socket's directory, made if missing (/run/gsd, /tmp/gsd-UID), must
 * be a directory only we (or root) can change, or a sticky one like /tmp:
 * otherwise another user could swap the socket. */
static int safe_dir(const char *path)
{
    char *copy = xstrndup(path, strlen(path));
    const char *dir = dirname(copy);
    struct stat st;
    int r = -1;
    int made = mkdir(dir, 0755) == 0 ? 0 : errno; /* EEXIST: there already */
    if (made == 0)
        log_msg(LOG_INFO, "made %s", dir);
    if (made != 0 && made != EEXIST)
        log_msg(LOG_ERR, "cannot make socket directory %s: %s", dir, strerror(made));
    else if (lstat(dir, &st) < 0)
        log_msg(LOG_ERR, "socket directory %s: %s", dir, strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        log_msg(LOG_ERR, "socket directory %s is not a directory", dir);
    else if (st.st_uid != geteuid() && st.st_uid != 0)
        log_msg(LOG_ERR, "socket directory %s belongs to uid %d", dir, (int)st.st_uid);
    else if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))
        log_msg(LOG_ERR, "socket directory %s is writable by others", dir);
    else
        r = 0;
    free(copy);
    return r;
}

/* The socket systemd passed (sd_listen_fds(3)): fd 3 when LISTEN_PID is
 * this process. -1 when there is none, -2 when it is not one we can use. */
static int inherited(void)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    if (pid == NULL || fds == NULL || strtol(pid, NULL, 10) != (long)getpid())
        return -1;
    int fd = 3, type = 0, listening = 0;
    socklen_t len = sizeof type;
    struct sockaddr_un sun = {0};
    socklen_t slen = sizeof sun;
    if (strcmp(fds, "1") != 0) {
        log_msg(LOG_ERR, "LISTEN_FDS=%s: expected one socket", fds);
        return -2;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening ||
        getsockname(fd, (struct sockaddr *)&sun, &slen) < 0 || sun.sun_family != AF_UNIX) {
        log_msg(LOG_ERR, "fd 3 from systemd is not a listening Unix stream socket");
        return -2;
    }
    /* Not passed on to anything a module might start. */
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    log_msg(LOG_INFO, "listening on %s, passed by systemd",
            sun.sun_path[0] ? sun.sun_path : "fd 3");
    return fd;
}

void listen_set_access(mode_t mode, gid_t group)
{
    lmode = mode & 0777;
    lgroup = group;
}

int listen_open(const char *path)
{
    lfd = inherited();
    if (lfd == -2) {
        lfd = -1;
        return -1;
    }
    if (lfd >= 0)
        goto serve; /* lpath stays NULL: the file is the socket unit's */
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    strncpy(sun.sun_path, path, sizeof sun.sun_path - 1);
    if (safe_dir(path) < 0)
        return -1;
    struct stat st;
    if (lstat(path, &st) == 0 && claim(path, &sun, &st) < 0)
        return -1;
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        log_msg(LOG_ERR, "socket: %s", strerror(errno));
        return -1;
    }
    /* Bound owner-only, then given its group, then its mode: never more
     * open than configured. No one can connect before listen(). */
    mode_t old = umask(0177);
    int r = bind(lfd, (struct sockaddr *)&sun, sizeof sun);
    umask(old);
    if (r == 0 && lgroup != (gid_t)-1 && chown(path, (uid_t)-1, lgroup) < 0) {
        log_msg(LOG_ERR, "cannot give %s to group %d: %s", path, (int)lgroup, strerror(errno));
        unlink(path);
        close(lfd);
        lfd = -1;
        return -1;
    }
    if (r == 0)
        r = chmod(path, lmode & ~(mode_t)0111);
    if (r < 0 || listen(lfd, 512) < 0) {
        log_msg(LOG_ERR, "cannot listen on %s: %s", path, strerror(errno));
        close(lfd);
        lfd = -1;
        return -1;
    }
    lpath = xstrndup(path, strlen(path));
    log_msg(LOG_INFO, "listening on %s", path);
serve:
    lev = event_new(loop_base, lfd, EV_READ | EV_PERSIST, on_accept, NULL);
    retry = evtimer_new(loop_base, on_retry, NULL);
    event_add(lev, NULL);
    return 0;
}

void listen_close(void)
{
    if (lfd < 0)
        return;
    event_free(lev);
    event_free(retry);
    close(lfd);
    if (lpath) /* a socket systemd passed stays: its unit owns the file */
        unlink(lpath);
    free(lpath);
    lpath = NULL;
    lfd = -1;
}
