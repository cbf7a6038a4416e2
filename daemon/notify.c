/* notify.c — systemd's notify protocol (sd_notify(3)), spoken directly: one
 * datagram of "KEY=value" lines to $NOTIFY_SOCKET per change of state, and
 * the watchdog heartbeat from a loop timer, so that a callback that never
 * returns stops the heartbeat and systemd kills the daemon. */
#include "gsd.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define STATUS_EVERY_MS 1000 /* how often the server count is looked at */

static int nfd = -1;
static struct sockaddr_un addr;
static char addr_text[sizeof addr.sun_path]; /* as given, for logs */
static socklen_t addr_len;
static struct event *status_ev, *watchdog_ev;
static unsigned status_count = UINT_MAX; /* the count last sent */
static int64_t watchdog_ms;              /* the heartbeat period, 0 for none */

/* Sends one datagram without ever waiting for the manager. */
static void send_state(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void send_state(const char *fmt, ...)
{
    static bool failed; /* log the first failure only: the next would say the same */
    char buf[256];
    va_list ap;
    if (nfd < 0)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (sendto(nfd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&addr,
               addr_len) < 0 &&
        !failed) {
        failed = true;
        log_msg(LOG_WARN, "notify %s: %s", addr_text, strerror(errno));
    }
}

/* head: what goes before STATUS, e.g. "READY=1\n". */
static void send_status(const char *head)
{
    status_count = registry_count();
    send_state("%sSTATUS=%u server%s running", head, status_count, status_count == 1 ? "" : "s");
}

static void on_status(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    if (registry_count() != status_count)
        send_status("");
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    send_state("WATCHDOG=1");
}

void notify_watchdog(void)
{
    if (watchdog_ev == NULL)
        return;
    on_watchdog(-1, 0, NULL);
    loop_arm(watchdog_ev, watchdog_ms); /* the next one a full period from now */
}

/* The manager's address: a path, or "@name" in the abstract namespace. */
static int notify_open(const char *path)
{
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len < 2 || len >= sizeof addr.sun_path) {
        log_msg(LOG_WARN, "NOTIFY_SOCKET=%s: not a socket address; not notifying", path);
        return -1;
    }
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path, len);
    memcpy(addr_text, path, len);
    if (path[0] == '@')
        addr.sun_path[0] = '\0';
    addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));
    nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (nfd < 0)
        log_msg(LOG_WARN, "notify socket: %s", strerror(errno));
    return nfd;
}

void notify_init(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    const char *usec = getenv("WATCHDOG_USEC"), *wpid = getenv("WATCHDOG_PID");
    if (path == NULL || *path == '\0' || notify_open(path) < 0)
        goto out;
    /* WATCHDOG_PID names the process the manager watches: maybe not us. */
    if (usec && (wpid == NULL || strtol(wpid, NULL, 10) == (long)getpid())) {
        char *end;
        unsigned long long us = strtoull(usec, &end, 10);
        if (*end == '\0' && us > 0) {
            watchdog_ms = (int64_t)(us / 2000) ?: 1; /* twice per interval */
            watchdog_ev = loop_event(LOOP_PRIO_OWN, -1, EV_PERSIST, on_watchdog, NULL);
            loop_arm(watchdog_ev, watchdog_ms);
            log_msg(LOG_INFO, "watchdog: a heartbeat every %lld ms", (long long)watchdog_ms);
        } else
            log_msg(LOG_WARN, "WATCHDOG_USEC=%s: not a number of microseconds; ignored", usec);
    }
out:
    /* Processes a module starts do not speak for the daemon. */
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}

void notify_ready(void)
{
    if (nfd < 0 || status_ev || shutting_down) /* never READY=1 after STOPPING=1 */
        return;
    send_status("READY=1\n");
    status_ev = loop_event(LOOP_PRIO_OWN, -1, EV_PERSIST, on_status, NULL);
    loop_arm(status_ev, STATUS_EVERY_MS);
}

void notify_stopping(void)
{
    unsigned n = registry_count();
    send_state("STOPPING=1\nSTATUS=stopping %u server%s", n, n == 1 ? "" : "s");
    if (status_ev)
        event_del(status_ev);
}

void notify_free(void)
{
    if (status_ev)
        event_free(status_ev);
    if (watchdog_ev)
        event_free(watchdog_ev);
    status_ev = watchdog_ev = NULL;
    if (nfd >= 0)
        close(nfd);
    nfd = -1;
}
