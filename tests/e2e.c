/*
 * e2e.c — the fixture and helpers the end-to-end suites share (e2e.h).
 */
#include "e2e.h"

#include <libgen.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct gsd *D;
gsc *C;

void e2e_setup(void)
{
    D = gsd_start();
    C = CLIENT(D);
}

void e2e_teardown(void)
{
    client_close(&C);
    ck_assert_int_eq(gsd_stop(&D), 0);
}

const char *path(const char *name)
{
    return gsd_path(D, name);
}

uint64_t probe(const char *name, const char *log)
{
    return START(C, "probe", name, log ? mp("{'terminate_log': %s}", path(log)) : NULL);
}

uint64_t forms(const char *name, const char *log)
{
    return START(C, "forms", name, log ? mp("{'log': %s}", path(log)) : NULL);
}

const msgpack_object *whereis(const char *name)
{
    gsc_reply *r;
    return OK(gsc_whereis(C, name, &r), &r);
}

bool registered(const char *name)
{
    return whereis(name)->type != MSGPACK_OBJECT_NIL;
}

const msgpack_object *info(const char *server)
{
    gsc_reply *r;
    return OK(gsc_info(C, server, &r), &r);
}

bool status_is(const char *server, const char *status)
{
    return mp_eq(mp_get(info(server), "status"), "%s", status);
}

const char *tlog(const char *name)
{
    return json_lines(path(name));
}

void cast(const char *server, const msgpack_object *req)
{
    gsc_reply *r;
    ck_assert_mp_eq(OK(gsc_cast(C, server, req, &r), &r), "nil");
}

void send_msg(const char *server, const msgpack_object *msg)
{
    gsc_reply *r;
    ck_assert_mp_eq(OK(gsc_send(C, server, msg, &r), &r), "nil");
}

void stop(const char *server, const msgpack_object *reason)
{
    gsc_reply *r;
    ck_assert_mp_eq(OK(gsc_stop(C, server, reason, 0, &r), &r), "nil");
}

void raw_ping_ok(struct raw *r, uint32_t msgid)
{
    RAW_REQUEST(r, msgid, "ping", mp("[]"));
    ck_assert_mp_eq(RAW_RECV(r, 3000), "[1, %u, nil, 'pong']", (uint64_t)msgid);
}

void as_nobody(const struct as_nobody *reqs, size_t n)
{
    char parent[sizeof D->dir];
    snprintf(parent, sizeof parent, "%s", D->dir);
    chmod(dirname(parent), 0711); /* let uid nobody reach the socket */
    chmod(D->dir, 0711);
    chmod(D->sock, 0666);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(254);
        gsc *c = gsc_connect(D->sock);
        if (c == NULL)
            _exit(255);
        for (size_t i = 0; i < n && i < 250; i++) {
            gsc_reply *r = NULL;
            int st = gsc_request(c, reqs[i].method, mp(reqs[i].params), 5000, &r);
            const char *got = st == GSC_OK ? "ok" : st == GSC_ERROR ? r->code : "broken";
            if (strcmp(got, reqs[i].want) != 0)
                _exit((int)i + 1);
            gsc_reply_destroy(&r);
        }
        gsc_close(&c);
        _exit(0);
    }
    int raw;
    ck_assert_int_eq(waitpid(pid, &raw, 0), pid);
    int code = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    ck_assert_msg(code == 0, "as nobody: %s",
                  code > 0 && (size_t)code <= n ? reqs[code - 1].method
                  : code == 254                 ? "cannot become nobody"
                  : code == 255                 ? "cannot connect"
                                                : "killed");
}
