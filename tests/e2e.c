/*
 * e2e.c — the fixture and helpers the end-to-end suites share (e2e.h).
 */
#include "e2e.h"

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
