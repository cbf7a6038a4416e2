/* method.c — the methods of the wire protocol, one function each. A
 * method reads its params in place and answers at once, or hands the work
 * to a server whose answer comes later through a waiter. */
#include "gsd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t dropped_notifications;

/* One request being served. For a notification nothing is ever sent. */
struct req {
    struct conn *c;
    uint32_t msgid;
    bool notify;
    struct gsp_cursor p;   /* the params still to read */
    uint32_t n;            /* how many params there are */
    struct server *server; /* found by arg_server's name, if it was */
};

/* arg_server's [name, node], when the ref it read is one (remote(ref)):
 * valid while the method runs. */
static struct remote far;

/* The packer, after [1, msgid, nil, — pack the result next. */
static msgpack_packer *ok(struct req *r)
{
    msgpack_packer *pk = conn_packer(r->c);
    gsp_pack_result(pk, r->msgid);
    return pk;
}

static void ok_nil(struct req *r)
{
    if (!r->notify)
        msgpack_pack_nil(ok(r));
}

__attribute__((format(printf, 3, 4))) static void fail(struct req *r, enum gsp_code code,
                                                       const char *fmt, ...)
{
    if (r->notify)
        return;
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    msgpack_packer *pk = conn_packer(r->c);
    gsp_pack_error_begin(pk, r->msgid, code);
    gsp_pack_str(pk, text);
    gsp_pack_error_end(pk);
}

/* The next param as an encoded span; nil when there are no more. */
static struct gsp_span arg_span(struct req *r)
{
    struct gsp_span s = enc_nil;
    gsp_get_span(&r->p, &s);
    return s;
}

/* The next param, decoded (in scratch memory, until the method returns). */
static gs_value arg_value(struct req *r)
{
    struct gsp_span s = arg_span(r);
    gs_value v = gs_nil();
    scratch_decode(s, &v);
    return v;
}

static bool is_str(const gs_value *v)
{
    return v->type == MSGPACK_OBJECT_STR || v->type == MSGPACK_OBJECT_BIN;
}

/* A server reference: a uint id, a valid name, or [name, node] (read into
 * far; the ref is then an array: remote() is true). */
static bool arg_server_other(struct req *r, gs_value *ref);

static bool remote(const gs_value *ref)
{
    return ref->type == MSGPACK_OBJECT_ARRAY;
}

static bool arg_server(struct req *r, gs_value *ref)
{
    struct gsp_cursor at = r->p; /* the usual form, read in place */
    const char *name;
    uint32_t len;
    if (gsp_get_str(&at, &name, &len) && (r->server = registry_by_name(name, len)) != NULL) {
        r->p = at; /* a name in use was valid when it was given */
        *ref = gs_strn(name, len);
        return true;
    }
    return arg_server_other(r, ref);
}

/* Any other form: a name not in use, an id, or not a server. Out of line,
 * as arg_timeout_decoded. */
static __attribute__((noinline)) bool arg_server_other(struct req *r, gs_value *ref)
{
    struct gsp_cursor at = r->p; /* the usual forms, read in place */
    const char *name;
    uint32_t len;
    uint64_t id;
    if (gsp_get_str(&at, &name, &len) && gsp_name_valid(name, len)) {
        r->p = at;
        *ref = gs_strn(name, len);
        return true;
    }
    if (gsp_get_uint(&at, &id)) {
        r->p = at;
        *ref = gs_uint(id);
        return true;
    }
    *ref = arg_value(r);
    if (ref->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return true;
    if (is_str(ref) && gsp_name_valid(ref->via.str.ptr, ref->via.str.size))
        return true;
    if (ref->type == MSGPACK_OBJECT_ARRAY && (remote_ref(ref, &far) || is_str(ref)))
        return true; /* [name, node], or [name, this node]: now that name */
    fail(r, GSP_BADARG,
         "server must be an id (uint), a name (str, not all digits) or [name, node] (node: "
         "\"alive@host\")");
    return false;
}

static struct server *find(struct req *r, const gs_value *ref)
{
    if (remote(ref)) {
        fail(r, GSP_BADARG, "a remote reference is for call, cast, send and monitor only");
        return NULL;
    }
    struct server *s = r->server ? r->server : server_lookup(ref);
    if (s == NULL) {
        if (r->notify)
            dropped_notifications++;
        fail(r, GSP_NOPROC, "no such server");
    }
    return s;
}

/* A timeout: nil (default), "infinity" (-1) or a uint of ms. */
static bool arg_timeout_decoded(struct req *r, int64_t dflt, int64_t *ms);

static bool arg_timeout(struct req *r, int64_t dflt, int64_t *ms)
{
    if (gsp_get_nil(&r->p)) { /* the usual form, read in place */
        *ms = dflt;
        return true;
    }
    return arg_timeout_decoded(r, dflt, ms);
}

/* Any other form; out of line, so that the usual one needs no stack frame. */
static __attribute__((noinline)) bool arg_timeout_decoded(struct req *r, int64_t dflt, int64_t *ms)
{
    gs_value v = arg_value(r);
    if (v.type == MSGPACK_OBJECT_NIL)
        *ms = dflt;
    else if (gs_is(&v, "infinity"))
        *ms = -1;
    else if (v.type == MSGPACK_OBJECT_POSITIVE_INTEGER && v.via.u64 <= INT32_MAX)
        *ms = (int64_t)v.via.u64;
    else {
        fail(r, GSP_BADARG, "timeout must be nil, \"infinity\" or a uint of ms");
        return false;
    }
    return true;
}

/* A module name param, copied into name (GSP_NAME_MAX + 1 bytes). */
static bool arg_module(struct req *r, char *name)
{
    gs_value v = arg_value(r);
    if (!is_str(&v) || !gsp_module_name_valid(v.via.str.ptr, v.via.str.size)) {
        fail(r, GSP_BADARG, "module must be a name of [A-Za-z0-9_-]");
        return false;
    }
    memcpy(name, v.via.str.ptr, v.via.str.size);
    name[v.via.str.size] = '\0';
    return true;
}

/* The loaded module, loading it if needed; answers `module` if it cannot. */
static struct module *load(struct req *r, const char *name)
{
    char err[512];
    struct module *m = module_get(name, err, sizeof err);
    if (m == NULL)
        fail(r, GSP_MODULE, "%s", err);
    return m;
}

static void m_ping(struct req *r)
{
    gsp_pack_str(ok(r), "pong");
}

static void m_version(struct req *r)
{
    msgpack_packer *pk = ok(r);
    msgpack_pack_map(pk, 2);
    gsp_pack_str(pk, "protocol");
    msgpack_pack_uint32(pk, GSP_PROTOCOL_VERSION);
    gsp_pack_str(pk, "version");
    gsp_pack_str(pk, GSD_VERSION);
}

struct start_opts {
    bool link;
    int64_t timeout;
    enum restart restart;
    uint32_t mailbox_limit; /* 0: limits.mailbox */
    int64_t hibernate_after; /* ms; -1 never */
    bool monitor;            /* answer [id, ref], the monitor in place */
    const char *isolate;    /* child_spec's isolate; points into the request or "" */
    bool isolate_set;       /* said by the start; else the module's default */
    char group[GSP_NAME_MAX + 1];
};

static bool restart_option(const gs_value *v, enum restart *r)
{
    bool ok = false;
    if (is_str(v))
        *r = restart_from_name(v->via.str.ptr, v->via.str.size, &ok);
    return ok;
}

static bool start_options(struct req *r, const gs_value *o, struct start_opts *opts)
{
    opts->link = false;
    opts->timeout = -1;
    opts->restart = RESTART_TEMPORARY;
    opts->mailbox_limit = 0;
    opts->hibernate_after = -1;
    opts->monitor = false;
    opts->isolate = NULL;
    opts->isolate_set = false;
    if (o->type == MSGPACK_OBJECT_NIL ||
        (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 0))
        return true;
    if (o->type != MSGPACK_OBJECT_MAP) {
        fail(r, GSP_BADARG, "options must be a map or nil");
        return false;
    }
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const gs_value *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        if (gs_is(k, "link") && v->type == MSGPACK_OBJECT_BOOLEAN)
            opts->link = v->via.boolean;
        else if (gs_is(k, "timeout") && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            opts->timeout = v->via.u64 > INT32_MAX ? INT32_MAX : (int64_t)v->via.u64;
        else if (gs_is(k, "timeout") && gs_is(v, "infinity"))
            opts->timeout = -1;
        else if (gs_is(k, "restart") && restart_option(v, &opts->restart))
            ; /* read into opts */
        else if (gs_is(k, "mailbox_limit") && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                 v->via.u64 > 0)
            opts->mailbox_limit = v->via.u64 > UINT32_MAX ? UINT32_MAX : (uint32_t)v->via.u64;
        else if (gs_is(k, "hibernate_after") && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            opts->hibernate_after = v->via.u64 > INT32_MAX ? INT32_MAX : (int64_t)v->via.u64;
        else if (gs_is(k, "hibernate_after") && gs_is(v, "infinity"))
            opts->hibernate_after = -1;
        else if (gs_is(k, "monitor") && v->type == MSGPACK_OBJECT_BOOLEAN)
            opts->monitor = v->via.boolean;
        else if (gs_is(k, "isolate") && v->type == MSGPACK_OBJECT_BOOLEAN) {
            opts->isolate = v->via.boolean ? "" : NULL;
            opts->isolate_set = true;
        } else if (gs_is(k, "isolate") && is_str(v) &&
                   gsp_name_valid(v->via.str.ptr, v->via.str.size)) {
            memcpy(opts->group, v->via.str.ptr, v->via.str.size);
            opts->group[v->via.str.size] = 0;
            opts->isolate = opts->group;
            opts->isolate_set = true;
        } else {
            char text[128];
            fail(r, GSP_BADARG, "bad start option %s", value_text(text, sizeof text, k));
            return false;
        }
    }
    return true;
}

/* A request answered later needs a waiter: limits.pending per connection. */
static bool may_wait(struct req *r)
{
    if (!limits.pending || r->c->pending < limits.pending)
        return true;
    fail(r, GSP_TOO_LARGE, "%u requests of this connection already wait for an answer, the limit",
         r->c->pending);
    return false;
}

/* limits.monitors per connection. */
static bool may_monitor(struct req *r)
{
    if (!limits.monitors || r->c->nmonitors < limits.monitors)
        return true;
    fail(r, GSP_TOO_LARGE, "this connection has %u monitors, the limit", limits.monitors);
    return false;
}

static void m_start(struct req *r)
{
    char mod_name[GSP_NAME_MAX + 1];
    if (!arg_module(r, mod_name))
        return;
    gs_value name = arg_value(r);
    struct gsp_span args = arg_span(r);
    gs_value options = arg_value(r);
    struct start_opts opts;
    bool named = name.type != MSGPACK_OBJECT_NIL;
    if (named && !(is_str(&name) && gsp_name_valid(name.via.str.ptr, name.via.str.size))) {
        fail(r, GSP_BADARG, "name must be nil or 1-255 bytes of UTF-8, not all digits");
        return;
    }
    if (!start_options(r, &options, &opts))
        return;
    struct server *old = named ? registry_by_name(name.via.str.ptr, name.via.str.size) : NULL;
    if (old) {
        msgpack_packer *pk = conn_packer(r->c);
        gsp_pack_error_begin(pk, r->msgid, GSP_ALREADY_STARTED);
        msgpack_pack_uint64(pk, old->id);
        gsp_pack_error_end(pk);
        return;
    }
    if (!may_wait(r) || (opts.monitor && !may_monitor(r)))
        return;
    struct module *mod = load(r, mod_name);
    if (mod == NULL)
        return;
    if (!opts.isolate_set)
        opts.isolate = worker_default_for(mod_name);
    struct waiter *w = waiter_for_conn(r->c, r->msgid, -1);
    char err[256];
    struct server *s =
        server_start(mod, named ? name.via.str.ptr : NULL, named ? name.via.str.size : 0, args.ptr,
                     args.len, opts.timeout, w->id, opts.isolate, err, sizeof err);
    if (s == NULL) {
        waiter_error_str(w, GSP_OVERLOADED, err);
        return;
    }
    if (opts.mailbox_limit)
        s->mbox.limit = opts.mailbox_limit;
    s->mailbox_limit = opts.mailbox_limit;
    s->hibernate_after = opts.hibernate_after;
    if (opts.monitor)
        s->start_monitor = next_ref(); /* in place once init has answered (init_result) */
    if (opts.restart != RESTART_TEMPORARY) {
        char copy[GSP_NAME_MAX + 1] = "";
        if (named)
            memcpy(copy, name.via.str.ptr, name.via.str.size);
        struct child_spec spec = {.module = mod_name,
                                  .name = named ? copy : NULL,
                                  .args = (uint8_t *)args.ptr,
                                  .args_len = args.len,
                                  .init_timeout = opts.timeout,
                                  .mailbox_limit = opts.mailbox_limit,
                                  .hibernate_after = opts.hibernate_after,
                                  .isolate = (char *)opts.isolate,
                                  .restart = opts.restart,
                                  .intensity = intensity_default};
        supervise_adopt(s, &spec);
    }
    if (opts.link) {
        conn_add_link(r->c, s->id);
        s->link_conn = r->c->id;
    }
}

/* call, cast and send: into the mailbox, still encoded. */
static void m_call(struct req *r)
{
    gs_value ref;
    int64_t timeout;
    if (!arg_server(r, &ref))
        return;
    struct gsp_span request = arg_span(r);
    if (!arg_timeout(r, GSP_CALL_TIMEOUT_DEFAULT, &timeout))
        return;
    if (remote(&ref)) {
        if (may_wait(r))
            remote_call(&far, request, false, waiter_for_conn(r->c, r->msgid, timeout));
        return;
    }
    struct server *s = find(r, &ref);
    if (s == NULL || !may_wait(r) || conn_hold(r->c, s))
        return;
    /* A call its server can take now is answered before server_call
     * returns: its deadline is watched only if it still waits. */
    uint64_t id = waiter_for_call(r->c, r->msgid, timeout, s)->id;
    counters.calls++;
    server_call(s, id, request.ptr, request.len);
    waiter_watch(id);
}

static void post(struct req *r, enum msg_kind kind)
{
    gs_value ref;
    if (!arg_server(r, &ref)) {
        if (r->notify)
            dropped_notifications++;
        return;
    }
    struct gsp_span v = arg_span(r);
    if (remote(&ref)) {
        if (r->notify)
            remote_post(&far, kind, v, false, NULL);
        else if (may_wait(r))
            remote_post(&far, kind, v, false, waiter_for_conn(r->c, r->msgid, -1));
        return;
    }
    struct server *s = find(r, &ref);
    if (s == NULL || conn_hold(r->c, s))
        return;
    if (kind == MSG_CAST)
        counters.casts++;
    else
        counters.sends++;
    server_post(s, kind, 0, v.ptr, v.len);
    ok_nil(r);
}

static void m_cast(struct req *r)
{
    post(r, MSG_CAST);
}

static void m_send(struct req *r)
{
    post(r, MSG_INFO);
}

static void m_stop(struct req *r)
{
    gs_value ref;
    int64_t timeout;
    if (!arg_server(r, &ref))
        return;
    struct gsp_span reason = arg_span(r);
    if (reason.len == 1 && reason.ptr[0] == 0xc0)
        reason = enc_normal;
    if (!arg_timeout(r, -1, &timeout))
        return;
    struct server *s = find(r, &ref);
    if (s == NULL || !may_wait(r) || conn_hold(r->c, s))
        return;
    struct waiter *w = waiter_for_conn(r->c, r->msgid, timeout);
    waiter_attach(w, s);
    supervise_stop_asked(s);
    server_post(s, MSG_STOP, w->id, reason.ptr, reason.len);
}

/* suspend and resume: at once, between two callbacks (server_suspend). */
static void m_suspend(struct req *r)
{
    gs_value ref;
    struct server *s;
    if (!arg_server(r, &ref) || (s = find(r, &ref)) == NULL)
        return;
    server_suspend(s);
    ok_nil(r);
}

static void m_resume(struct req *r)
{
    gs_value ref;
    struct server *s;
    if (!arg_server(r, &ref) || (s = find(r, &ref)) == NULL)
        return;
    server_resume(s);
    ok_nil(r);
}

static void m_whereis(struct req *r)
{
    gs_value name = arg_value(r);
    if (!is_str(&name)) {
        fail(r, GSP_BADARG, "name must be a string");
        return;
    }
    struct server *s = registry_by_name(name.via.str.ptr, name.via.str.size);
    msgpack_packer *pk = ok(r);
    if (s)
        msgpack_pack_uint64(pk, s->id);
    else
        msgpack_pack_nil(pk);
}

static void pack_name(msgpack_packer *pk, const char *name)
{
    if (name)
        gsp_pack_str(pk, name);
    else
        msgpack_pack_nil(pk);
}

/* An answer of n bytes (or more) that would take the daemon over its
 * memory budget is refused before it is built: overloaded, as a request
 * made over the budget is, rather than a reader cut off for it later. */
static bool room_for(struct req *r, uint64_t n)
{
    if (conn_budget_room(r->c, n))
        return true;
    overloaded_answers++;
    fail(r, GSP_OVERLOADED, "an answer of %llu bytes would take the daemon over its memory budget",
         (unsigned long long)n);
    return false;
}

/* which: [] every server, its result kept by the registry between
 * changes; [after_id, count] one page. */
static void m_which(struct req *r)
{
    if (r->n == 0) {
        struct gsp_span all = registry_which();
        if (room_for(r, all.len))
            gsp_pack_response(conn_packer(r->c), r->msgid, GSP_OK, all.ptr, all.len);
        return;
    }
    uint64_t after, count;
    if (r->n != 2 || !gsp_get_uint(&r->p, &after) || !gsp_get_uint(&r->p, &count)) {
        fail(r, GSP_BADARG, "which takes [] or [after_id, count], both uints");
        return;
    }
    /* 32 bytes: less than any entry takes (its four keys alone). */
    if (!room_for(r, 32 * (count < registry_count() ? count : registry_count())))
        return;
    ok(r);
    registry_which_page(&r->c->out, after, count); /* where ok's packer packs */
}

static void kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    gsp_pack_str(pk, k);
    msgpack_pack_uint64(pk, v);
}

/* A limit in ms as start takes it: a uint, or "infinity" for none (-1). */
static void pack_ms(msgpack_packer *pk, const char *k, int64_t ms)
{
    gsp_pack_str(pk, k);
    if (ms < 0)
        gsp_pack_str(pk, "infinity");
    else
        msgpack_pack_uint64(pk, (uint64_t)ms);
}

/* info's args, options and last_exit: what start would need to start s
 * again as it is (the options as start reads them), and the end of the
 * server it replaced. */
static void pack_started_with(msgpack_packer *pk, const struct server *s)
{
    gsp_pack_str(pk, "args");
    gsp_pack_raw(pk, s->args, s->args_len);
    gsp_pack_str(pk, "options");
    msgpack_pack_map(pk, s->mailbox_limit ? 6 : 5);
    gsp_pack_str(pk, "link");
    if (s->link_conn)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    pack_ms(pk, "timeout", s->start_timeout);
    gsp_pack_str(pk, "restart");
    gsp_pack_str(pk, restart_name(supervise_policy(s)));
    if (s->mailbox_limit)
        kv_u64(pk, "mailbox_limit", s->mailbox_limit);
    gsp_pack_str(pk, "isolate");
    if (s->isolate && *s->isolate)
        gsp_pack_str(pk, s->isolate);
    else if (s->isolate)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    pack_ms(pk, "hibernate_after", s->hibernate_after);
    struct gsp_span last = supervise_last_exit(s);
    gsp_pack_str(pk, "last_exit");
    gsp_pack_raw(pk, last.ptr ? last.ptr : enc_nil.ptr, last.ptr ? last.len : enc_nil.len);
}

static void m_info(struct req *r)
{
    gs_value ref;
    if (!arg_server(r, &ref))
        return;
    struct server *s = find(r, &ref);
    if (s == NULL)
        return;
    msgpack_packer *pk = ok(r);
    msgpack_pack_map(pk, 17 + 3);
    pack_started_with(pk, s);
    kv_u64(pk, "id", s->id);
    gsp_pack_str(pk, "name");
    pack_name(pk, s->name);
    gsp_pack_str(pk, "module");
    gsp_pack_str(pk, s->mod->name);
    kv_u64(pk, "vsn", s->mod->desc->vsn);
    gsp_pack_str(pk, "status");
    gsp_pack_str(pk, server_status_name(s));
    kv_u64(pk, "mailbox", s->mbox.len);
    kv_u64(pk, "mailbox_bytes", s->mbox.bytes);
    kv_u64(pk, "mailbox_high", s->mbox.len_high);
    kv_u64(pk, "mailbox_bytes_high", s->mbox.bytes_high);
    gsp_pack_str(pk, "handled");
    msgpack_pack_map(pk, 3);
    kv_u64(pk, "call", s->stats.calls);
    kv_u64(pk, "cast", s->stats.casts);
    kv_u64(pk, "info", s->stats.infos);
    kv_u64(pk, "slow_callbacks", s->stats.slow);
    kv_u64(pk, "slow_threshold_ms", (uint64_t)slow_callback_ms);
    kv_u64(pk, "uptime_ms", (uint64_t)(now_ms() - s->stats.started_ms));
    gsp_pack_str(pk, "restart");
    gsp_pack_str(pk, restart_name(supervise_policy(s)));
    kv_u64(pk, "restarts", supervise_restarts(s));
    gsp_pack_str(pk, "isolated");
    if (s->worker)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    gsp_pack_str(pk, "worker");
    if (s->worker)
        msgpack_pack_int(pk, worker_pid(s->worker));
    else
        msgpack_pack_nil(pk);
}

static void m_get_state(struct req *r)
{
    gs_value ref;
    if (!arg_server(r, &ref))
        return;
    struct server *s = find(r, &ref);
    if (s == NULL)
        return;
    if (s->mod->desc->format_state == NULL) {
        fail(r, GSP_UNSUPPORTED, "module %s has no format_state", s->mod->name);
        return;
    }
    if (!may_wait(r) || conn_hold(r->c, s))
        return;
    struct waiter *w = waiter_for_conn(r->c, r->msgid, GSP_CALL_TIMEOUT_DEFAULT);
    waiter_attach(w, s);
    server_post(s, MSG_STATE, w->id, NULL, 0);
}

static void pack_module(msgpack_packer *pk, struct module *m, bool servers)
{
    msgpack_pack_map(pk, servers ? 4 : 3);
    gsp_pack_str(pk, "name");
    gsp_pack_str(pk, m->name);
    kv_u64(pk, "vsn", m->desc->vsn);
    gsp_pack_str(pk, "path");
    gsp_pack_str(pk, m->path);
    if (servers)
        kv_u64(pk, "servers", m->servers);
}

static void modules_one(struct module *m, void *arg)
{
    pack_module(arg, m, true);
}

static void m_modules(struct req *r)
{
    msgpack_packer *pk = ok(r);
    msgpack_pack_array(pk, module_count());
    module_foreach(modules_one, pk);
}

static void m_load(struct req *r)
{
    char name[GSP_NAME_MAX + 1];
    struct module *m = arg_module(r, name) ? load(r, name) : NULL;
    if (m)
        pack_module(ok(r), m, false);
}

/* The file's current contents become the module's code, for every server
 * of it or for none (upgrade.c). Not loaded yet: it is loaded. */
static void m_reload(struct req *r)
{
    char name[GSP_NAME_MAX + 1], err[512];
    if (!arg_module(r, name))
        return;
    struct module *from = module_find(name), *to = module_open(name, err, sizeof err);
    if (to == NULL) {
        fail(r, GSP_MODULE, "%s", err);
        return;
    }
    if (!may_wait(r)) {
        module_release(to);
        return;
    }
    struct waiter *w = waiter_for_conn(r->c, r->msgid, -1);
    if (!upgrade_start(from, to, w->id)) {
        waiter_error_str(w, GSP_OVERLOADED,
                         "another reload is under way: try again once it has answered");
        module_release(to);
    }
}

static void m_monitor(struct req *r)
{
    gs_value ref;
    if (!arg_server(r, &ref) || !may_monitor(r))
        return;
    uint64_t mref = next_ref();
    if (remote(&ref)) { /* answered once the node is reached */
        if (may_wait(r))
            monitor_add_remote(mref, r->c, NULL, &far, waiter_for_conn(r->c, r->msgid, -1));
        return;
    }
    msgpack_pack_uint64(ok(r), mref);
    monitor_add(mref, r->c, NULL, &ref); /* after the response: a down may follow at once */
}

static void m_demonitor(struct req *r)
{
    gs_value ref = arg_value(r);
    if (ref.type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        fail(r, GSP_BADARG, "ref must be a uint");
        return;
    }
    monitor_remove(ref.via.u64, r->c, NULL);
    ok_nil(r);
}

/* nodes: the distribution peers connected now (dist.c). */
static void m_nodes(struct req *r)
{
    if (dist_hooks)
        dist_hooks->nodes(ok(r));
    else
        msgpack_pack_array(ok(r), 0);
}

/* metrics: the Prometheus text exposition (metrics.c), as a str. */
static void m_metrics(struct req *r)
{
    struct gsp_buf text = {0};
    metrics_text(&text);
    if (room_for(r, text.len)) {
        msgpack_packer *pk = ok(r);
        msgpack_pack_str(pk, text.len);
        msgpack_pack_str_body(pk, text.data, text.len);
    }
    gsp_buf_free(&text);
}

static void m_stats(struct req *r)
{
    stats_pack(ok(r));
}

/* clients: a map of at most ~200 bytes per connection. */
static void m_clients(struct req *r)
{
    if (room_for(r, 200ull * conn_count()))
        clients_pack(ok(r));
}

/* restart: a stop with reason "restart", in mailbox order as any stop,
 * then a start from what the server was started with (supervise_restart);
 * the answer is that start's. */
static void m_restart(struct req *r)
{
    static const uint8_t reason[] = "\xa7restart";
    gs_value ref;
    struct server *s;
    if (!arg_server(r, &ref) || (s = find(r, &ref)) == NULL || !may_wait(r) || conn_hold(r->c, s))
        return;
    if (s->status == SERVER_ENDED) {
        fail(r, GSP_NOPROC, "the server is ending");
        return;
    }
    struct waiter *w = waiter_for_conn(r->c, r->msgid, -1);
    if (!supervise_restart(s, w->id)) {
        waiter_error_str(w, GSP_NOPROC, "a restart of it is already under way");
        return;
    }
    server_post(s, MSG_STOP, 0, reason, sizeof reason - 1);
}

/* slowlog: [] or [nil] every entry kept, [count] the newest count. */
static void m_slowlog(struct req *r)
{
    uint64_t n = UINT64_MAX;
    gs_value v = r->n ? arg_value(r) : gs_nil();
    if (r->n > 1 || (v.type != MSGPACK_OBJECT_NIL && v.type != MSGPACK_OBJECT_POSITIVE_INTEGER)) {
        fail(r, GSP_BADARG, "slowlog takes [count or nil]");
        return;
    }
    if (v.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        n = v.via.u64;
    if (room_for(r, slowlog_size(n)))
        slowlog_pack(ok(r), n);
}

static void m_slowlog_reset(struct req *r)
{
    slowlog_reset();
    ok_nil(r);
}

/* trace [server, on]: trace notifications follow for this connection. */
static void m_trace(struct req *r)
{
    gs_value ref;
    struct server *s;
    if (!arg_server(r, &ref))
        return;
    gs_value on = arg_value(r);
    if (on.type != MSGPACK_OBJECT_BOOLEAN) {
        fail(r, GSP_BADARG, "trace takes [server, true or false]");
        return;
    }
    if ((s = find(r, &ref)) == NULL)
        return;
    ok_nil(r); /* before the events */
    trace_set(r->c, s, on.via.boolean);
}

/* The nparams of a method that takes more than one form and checks the
 * count itself (which: [] or [after_id, count]). */
#define PARAMS_ANY UINT32_MAX

static const struct method {
    const char *name;
    void (*fn)(struct req *r);
    uint32_t nparams; /* exactly this many params, or PARAMS_ANY */
    bool admin;       /* changes what runs: admin peers only */
    bool notify;      /* may come as a notification */
    bool work;        /* gives a server work: refused once shutdown has begun */
    bool eases;       /* lets memory go: served over the memory budget too */
} methods[] = {
    /* call first: method_dispatch knows it by its place */
    {"call", m_call, 3, false, false, true, false},
    {"cast", m_cast, 2, false, true, true, false},
    {"send", m_send, 2, false, true, true, false},
    {"ping", m_ping, 0, false, false, false, false},
    {"version", m_version, 0, false, false, false, false},
    {"start", m_start, 4, true, false, true, false},
    {"stop", m_stop, 3, true, false, true, true},
    {"whereis", m_whereis, 1, false, false, false, false},
    {"which", m_which, PARAMS_ANY, false, false, false, false},
    {"info", m_info, 1, false, false, false, false},
    {"get_state", m_get_state, 1, true, false, true, false},
    {"modules", m_modules, 0, false, false, false, false},
    {"load", m_load, 1, true, false, false, false},
    {"reload", m_reload, 1, true, false, false, false},
    {"monitor", m_monitor, 1, false, false, false, false},
    {"demonitor", m_demonitor, 1, false, false, false, true},
    {"suspend", m_suspend, 1, true, false, true, false},
    {"resume", m_resume, 1, true, false, false, true},
    {"slowlog", m_slowlog, PARAMS_ANY, true, false, false, false},
    {"slowlog_reset", m_slowlog_reset, 0, true, false, false, true},
    {"trace", m_trace, 2, true, false, false, false},
    {"stats", m_stats, 0, false, false, false, false},
    {"clients", m_clients, 0, true, false, false, false},
    {"restart", m_restart, 1, true, false, true, false},
    {"metrics", m_metrics, 0, false, false, false, false},
    {"nodes", m_nodes, 0, false, false, false, false},
};

/* For a count that is not m->nparams: whether m checks the count itself.
 * Out of line, as arg_server_other: the compiler would test it first,
 * and a request with its method's count would pay for it. */
static __attribute__((noinline)) bool params_any(const struct method *m)
{
    return m->nparams == PARAMS_ANY;
}

void method_dispatch(struct conn *c, const struct gsp_envelope *env)
{
    struct req r = {c, env->msgid, env->type == GSP_NOTIFY, env->params, env->nparams, NULL};
    /* call, nearly every request, is known at once (methods[0]). */
    const struct method *m =
        env->method_len == 4 && memcmp(env->method, "call", 4) == 0 ? &methods[0] : NULL;
    for (size_t i = 1; i < sizeof methods / sizeof methods[0] && !m; i++)
        if (gsp_method_is(env, methods[i].name))
            m = &methods[i];
    if (budget_over() && !(m && m->eases)) {
        /* Nothing new until the clients holding memory have let go of it
         * (conn.c cuts off the largest readers behind); a stop or a
         * demonitor is served, to let go of it. */
        if (r.notify)
            dropped_notifications++;
        else
            overloaded_answers++;
        fail(&r, GSP_OVERLOADED, "the daemon is over its memory budget of %llu bytes",
             (unsigned long long)limits.memory);
    } else if (m == NULL || (r.notify && !m->notify)) {
        if (r.notify)
            dropped_notifications++;
        else
            fail(&r, GSP_UNKNOWN_METHOD, "unknown method %.*s",
                 (int)env->method_len > 64 ? 64 : (int)env->method_len, env->method);
    } else if (r.n != m->nparams && !params_any(m)) {
        if (r.notify)
            dropped_notifications++;
        fail(&r, GSP_BADARG, "%s takes %u params, not %u", m->name, m->nparams, r.n);
    } else if (m->admin && !auth_admin(c->fd, c->uid, c->gid)) /* as configured now */
        fail(&r, GSP_UNAUTHORIZED, "%s needs an admin peer (uid %d is not)", m->name, (int)c->uid);
    else if (m->work && shutting_down) {
        /* Every server is handling what its mailbox held; what came after
         * its stop would be dropped (shutdown.c). */
        if (r.notify)
            dropped_notifications++;
        fail(&r, GSP_SHUTTING_DOWN, "the daemon is shutting down");
    } else
        m->fn(&r);
    if (m != &methods[0])
        loop_clock_tick(); /* for the round's slice, and the next request's deadline (a call's
                              callback ticks it) */
    scratch_reset();
}
