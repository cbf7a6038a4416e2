/* monitor.c — monitors: a connection or a server watching a server, told
 * once when it ends. */
#include "gsd.h"

#include <stdlib.h>
#include <string.h>

static struct monitor *all;

/* Tells the watcher (gsp_pack_down, gsp_pack_down_info). When no server
 * had the name asked for, id is 0 (no server's id) and name is that name. */
static void deliver(const struct monitor *m, uint64_t id, const char *name, size_t name_len,
                    struct gsp_span reason)
{
    if (m->conn) {
        /* [2, "down", [ref, id, name, reason]]: the name and reason and
         * at most 32 bytes around them. */
        if (conn_room(m->conn, name_len + reason.len + 32))
            gsp_pack_down(conn_packer(m->conn), m->ref, id, name, name_len, reason.ptr, reason.len);
        return;
    }
    static struct gsp_buf b; /* reused: packing allocates only to grow it */
    msgpack_packer pk;
    b.len = 0;
    gsp_packer_init(&pk, &b);
    gsp_pack_down_info(&pk, m->ref, id, reason.ptr, reason.len);
    server_post(m->server, MSG_INFO, 0, b.data, b.len);
}

/* m, its target set, joins its watcher's monitors. */
static void enter(struct monitor *m)
{
    if (m->conn) {
        LIST_INSERT_HEAD(&m->conn->monitors, m, watcher_link);
        m->conn->nmonitors++;
    } else
        LIST_INSERT_HEAD(&m->server->watching, m, watcher_link);
    HASH_ADD(hh, all, ref, sizeof m->ref, m);
}

void monitor_add_remote(uint64_t ref, struct conn *c, struct server *watcher,
                        const struct remote *to, struct waiter *w)
{
    struct monitor *m = xmalloc(sizeof *m);
    budget_charge(sizeof *m);
    *m = (struct monitor){.ref = ref, .conn = c, .server = watcher, .remote = true};
    enter(m);
    remote_monitor(to, ref, w);
}

void monitor_add(uint64_t ref, struct conn *c, struct server *watcher, const gs_value *target)
{
    struct monitor probe = {.ref = ref, .conn = c, .server = watcher};
    gs_value t = *target;
    struct remote to;
    if (remote_ref(&t, &to)) {
        monitor_add_remote(ref, c, watcher, &to, NULL);
        return;
    }
    target = &t;
    struct server *s = server_lookup(target);
    if (s == NULL || s->status == SERVER_ENDED) {
        bool named = target->type == MSGPACK_OBJECT_STR;
        uint64_t id = target->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? target->via.u64 : 0;
        deliver(&probe, id, named ? target->via.str.ptr : NULL, named ? target->via.str.size : 0,
                enc_noproc);
        return;
    }
    struct monitor *m = xmalloc(sizeof *m);
    budget_charge(sizeof *m);
    *m = probe;
    m->target = s->id;
    LIST_INSERT_HEAD(&s->watchers, m, target_link);
    enter(m);
}

static void unlink_free(struct monitor *m)
{
    if (!m->remote)
        LIST_REMOVE(m, target_link);
    else if (dist_hooks) /* it sends the demonitor, if it still watches */
        dist_hooks->unwatch(m->ref);
    LIST_REMOVE(m, watcher_link);
    if (m->conn)
        m->conn->nmonitors--;
    HASH_DEL(all, m);
    budget_release(sizeof *m);
    free(m);
}

bool monitor_remove(uint64_t ref, struct conn *c, struct server *watcher)
{
    struct monitor *m;
    HASH_FIND(hh, all, &ref, sizeof ref, m);
    if (m == NULL || m->conn != c || m->server != watcher)
        return false;
    unlink_free(m);
    return true;
}

void monitor_remote_down(uint64_t ref, const char *name, size_t name_len, struct gsp_span reason)
{
    struct monitor *m;
    HASH_FIND(hh, all, &ref, sizeof ref, m);
    if (m == NULL)
        return;
    if (reason.ptr)
        deliver(m, 0, name, name_len, reason);
    unlink_free(m);
}

void monitor_unreachable(uint64_t ref, const char *name, size_t name_len, struct waiter *w,
                         const char *detail)
{
    if (w) {
        monitor_remote_down(ref, NULL, 0, (struct gsp_span){0});
        waiter_error_str(w, GSP_NODEDOWN, detail);
    } else
        monitor_remote_down(ref, name, name_len, enc_noconnection);
}

void monitor_server_ended(struct server *s, struct gsp_span reason)
{
    struct monitor *m;
    while ((m = LIST_FIRST(&s->watchers)) != NULL) {
        deliver(m, s->id, s->name, s->name ? strlen(s->name) : 0, reason);
        unlink_free(m);
    }
    while ((m = LIST_FIRST(&s->watching)) != NULL)
        unlink_free(m);
}

void monitor_conn_closed(struct conn *c)
{
    struct monitor *m;
    while ((m = LIST_FIRST(&c->monitors)) != NULL)
        unlink_free(m);
}
