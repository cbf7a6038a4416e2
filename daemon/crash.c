/* crash.c — crash reports, as OTP's: when a server ends abnormally, one
 * record of who it was, why it ended, what it was handling and for whom,
 * and its state as format_state shows it. Under journald it goes over the
 * journal's native protocol (systemd.journal-fields(7): "KEY=value\n", or
 * "KEY\n", a 64-bit little-endian length, the bytes and "\n" for a value
 * that holds a newline), one datagram, spoken directly as notify.c speaks
 * the notify protocol, so that `journalctl GSD_MODULE=counter` finds it;
 * elsewhere, one escaped log line. */
#include "gsd.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define REASON_MAX 512   /* bytes of the reason's text kept */
#define MESSAGE_MAX 1024 /* of the last message's */
#define STATE_MAX 2048   /* of the state's */
#define LINE_PART 240    /* of each, in the log line (a line is at most 1024) */
#define JOURNAL_SOCKET "/run/systemd/journal/socket"

/* What the message being handled was (crash_note). */
static struct {
    uint64_t id; /* the server's; 0: none noted */
    enum callback cb;
    struct gsp_span msg;
    uint64_t waiter;
} note;

void crash_note(const struct server *s, enum callback cb, struct gsp_span msg, uint64_t waiter)
{
    note.id = s->id;
    note.cb = cb;
    note.msg = msg;
    note.waiter = waiter;
}

/* ---- the journal's native protocol --------------------------------------- */

static int jfd = -1;
static bool jfailed; /* logged once: the next failures would say the same */

static void field(struct gsp_buf *b, const char *key, const char *v)
{
    size_t k = strlen(key), n = strlen(v);
    if (memchr(v, '\n', n) == NULL) {
        gsp_buf_append(b, key, k);
        gsp_buf_append(b, "=", 1);
        gsp_buf_append(b, v, n);
    } else {
        uint8_t le[8];
        for (int i = 0; i < 8; i++)
            le[i] = (uint8_t)((uint64_t)n >> (8 * i));
        gsp_buf_append(b, key, k);
        gsp_buf_append(b, "\n", 1);
        gsp_buf_append(b, le, 8);
        gsp_buf_append(b, v, n);
    }
    gsp_buf_append(b, "\n", 1);
}

/* One datagram to the journal; false if it did not go. */
static bool journal_send(const struct gsp_buf *b)
{
    const char *path = getenv("GSD_JOURNAL_SOCKET");
    if (path == NULL || *path == '\0')
        path = JOURNAL_SOCKET;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof addr.sun_path)
        return false;
    memcpy(addr.sun_path, path, len);
    if (jfd < 0)
        jfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (jfd >= 0 &&
        sendto(jfd, b->data, b->len, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&addr,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1)) >= 0)
        return true;
    if (!jfailed) {
        jfailed = true;
        log_msg(LOG_WARN, "journal %s: %s; crash reports go to the log", path, strerror(errno));
    }
    return false;
}

/* ---- the report ------------------------------------------------------------ */

/* An encoded value as text, cut to size (len 0: nil). */
static const char *text_of(char *buf, size_t size, struct gsp_span v)
{
    gs_value d = gs_nil();
    if (v.len && !scratch_decode(v, &d)) {
        snprintf(buf, size, "(undecodable)");
        return buf;
    }
    return value_text(buf, size, &d);
}

/* Who sent the message being handled: a connection's peer or a server. */
static void caller_text(char *buf, size_t size, uint64_t waiter)
{
    struct waiter *w = waiter ? waiter_find(waiter) : NULL;
    if (w && w->kind == WAIT_CONN && w->conn)
        snprintf(buf, size, "pid %d uid %d (connection %llu)", (int)w->conn->pid, (int)w->conn->uid,
                 (unsigned long long)w->conn->id);
    else if (w && w->kind == WAIT_SERVER) {
        struct server *by = registry_by_id(w->caller);
        snprintf(buf, size, "server %llu (%s)", (unsigned long long)w->caller,
                 by && by->name ? by->name : "-");
    } else
        snprintf(buf, size, "-");
}

void crash_report(struct server *s, struct gsp_span reason, bool state_safe)
{
    static char why[REASON_MAX], msg[MESSAGE_MAX], state[STATE_MAX], caller[128], cb[32];
    bool noted = note.id == s->id;
    if (noted) /* a worker's other servers end before or after the one it noted */
        note.id = 0;
    if (noted && note.cb == CB_NONE && reason.len == 8 && memcmp(reason.ptr, "\xa7restart", 8) == 0)
        return; /* `restart` asked it to stop: no crash (as supervise.c counts it) */
    text_of(why, sizeof why, reason);
    if (noted) {
        text_of(msg, sizeof msg, note.msg);
        snprintf(cb, sizeof cb, "%s", note.cb == CB_NONE ? "stop" : callback_names[note.cb]);
        caller_text(caller, sizeof caller, note.waiter);
    } else {
        snprintf(msg, sizeof msg, "-");
        snprintf(cb, sizeof cb, "-");
        snprintf(caller, sizeof caller, "-");
    }
    /* format_state is module code: only where it may run (see gsd.h). An
     * isolated server's state is in its worker, which may have died. */
    bool has_state = state_safe && s->mod->desc->format_state;
    if (has_state) {
        running_enter(s, CB_FORMAT_STATE);
        gs_value v = s->mod->desc->format_state((gs_server *)s, s->state);
        running_leave();
        value_text(state, sizeof state, &v);
    } else
        snprintf(state, sizeof state, "%s",
                 !s->mod->desc->format_state ? "(no format_state)"
                 : s->worker                 ? "(isolated: not shown)"
                                             : "(not shown)");
    char id[24];
    snprintf(id, sizeof id, "%llu", (unsigned long long)s->id);
    const char *name = s->name ? s->name : "-";
    if (getenv("JOURNAL_STREAM")) {
        struct gsp_buf b = {0};
        char head[512], esc[256];
        log_escape(esc, sizeof esc, why, strlen(why));
        snprintf(head, sizeof head, "crash report: server %s (%s, %s) ended: %s", id, name,
                 s->mod->name, esc);
        field(&b, "MESSAGE", head);
        field(&b, "PRIORITY", "3");
        field(&b, "SYSLOG_IDENTIFIER", "gsd");
        field(&b, "GSD_SERVER", id);
        if (s->name)
            field(&b, "GSD_SERVER_NAME", s->name);
        field(&b, "GSD_MODULE", s->mod->name);
        field(&b, "GSD_REASON", why);
        field(&b, "GSD_CALLBACK", cb);
        if (noted)
            field(&b, "GSD_LAST_MESSAGE", msg);
        if (has_state)
            field(&b, "GSD_STATE", state);
        field(&b, "GSD_CALLER", caller);
        if (s->worker)
            field(&b, "GSD_WORKER_PID",
                  (snprintf(esc, sizeof esc, "%d", (int)worker_pid(s->worker)), esc));
        bool sent = journal_send(&b);
        gsp_buf_free(&b);
        if (sent)
            return;
    }
    log_msg(LOG_ERR,
            "crash report: server %s (%s, %s) ended: %.*s; last message (%s): %.*s; caller: %s; "
            "state: %.*s",
            id, name, s->mod->name, LINE_PART, why, cb, LINE_PART, msg, caller, LINE_PART, state);
}
