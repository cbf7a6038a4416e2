/* dist_out.c — what gsd's clients and servers ask of names on other
 * nodes, [name, node]: calls, casts, sends and monitors. A call or monitor
 * of ours is a watch, an Erlang monitor of {Name, Node} under a ref of
 * ours (a call's tag too, as gen:call does), so that a name not there
 * answers at once and a lost node is seen. */
#include "dist.h"

#include <stdlib.h>
#include <string.h>

/* A call or monitor of ours on a name on another node: both are an Erlang
 * monitor of {Name, Node} under a ref of ours (a call's tag too). */
struct watch {
    uint64_t key;   /* a call's waiter id, or a monitor's ref (monitor.c's) */
    uint64_t ref;   /* our ref's number */
    uint64_t asker; /* a client's monitor: its waiter, answered once connected */
    bool call;
    struct node *node;
    uint8_t *name; /* the registered name (an atom on the wire) */
    size_t name_len;
    UT_hash_handle hh;     /* outcalls or outmons, by key */
    UT_hash_handle hh_ref; /* node->watches, by ref */
    LIST_ENTRY(watch) link;
};

static struct watch *outcalls, *outmons; /* ours, by key */
static uint64_t last_ref;

/* A ref of ours, NEWER_REFERENCE_EXT: our node, creation and k. */
static void put_ref(struct gsp_buf *b, uint64_t k)
{
    uint8_t head[3] = {ERL_NEWER_REFERENCE_EXT, 0, 3}, w[16];
    gsp_buf_append(b, head, 3);
    term_put_atom(b, self.name, self.name_len);
    be32_put(w, self.creation);
    be32_put(w + 4, (uint32_t)(k & 0x3ffff));
    be32_put(w + 8, (uint32_t)(k >> 18));
    be32_put(w + 12, (uint32_t)(k >> 50));
    gsp_buf_append(b, w, 16);
}

/* The k of a ref put_ref made; 0 if t is not one. */
static uint64_t ref_of_ours(struct gsp_span t)
{
    uint8_t buf[512];
    const uint8_t *p = t.ptr, *end = t.ptr + t.len, *name;
    size_t len;
    if (t.len < 3 || p[0] != ERL_NEWER_REFERENCE_EXT || p[1] != 0 || p[2] != 3)
        return 0;
    p += 3;
    if (!term_atom(&p, end, buf, &name, &len) || len != self.name_len ||
        memcmp(name, self.name, len) != 0 || end - p != 16 || be32_get(p) != self.creation)
        return 0;
    return (uint64_t)(be32_get(p + 4) & 0x3ffff) | (uint64_t)be32_get(p + 8) << 18 |
           (uint64_t)be32_get(p + 12) << 50;
}

/* {Op, OurPid, Name, Ref}: MONITOR_P or DEMONITOR_P of x's name. */
static void send_monitor(struct node *n, int op, const struct watch *x)
{
    static struct gsp_buf ctl;
    ctl.len = 0;
    term_put_tuple(&ctl, 4);
    term_put_int(&ctl, op, false, 0);
    gsp_buf_append(&ctl, self.pid, self.pid_len);
    term_put_atom(&ctl, x->name, x->name_len);
    put_ref(&ctl, x->ref);
    node_send(n, &ctl, NULL);
}

/* REG_SEND {6, OurPid, '', Name} of msg. */
static void send_reg(struct node *n, const struct remote *to, const struct gsp_buf *msg)
{
    static struct gsp_buf ctl;
    ctl.len = 0;
    term_put_tuple(&ctl, 4);
    term_put_int(&ctl, OP_REG_SEND, false, 0);
    gsp_buf_append(&ctl, self.pid, self.pid_len);
    term_put_atom(&ctl, "", 0);
    term_put_atom(&ctl, to->name, to->name_len);
    node_send(n, &ctl, msg);
}

/* A monitor of to's name on n under ref, sent: a call's (key: its
 * waiter) or a monitor's (key: monitor.c's ref). */
static struct watch *watch_new(struct node *n, const struct remote *to, uint64_t key, bool call,
                               uint64_t ref)
{
    struct watch *x = xcalloc(1, sizeof *x + to->name_len);
    x->key = key;
    x->ref = ref;
    x->call = call;
    x->node = n;
    x->name = (uint8_t *)(x + 1);
    x->name_len = to->name_len;
    memcpy(x->name, to->name, to->name_len);
    if (call)
        HASH_ADD(hh, outcalls, key, sizeof x->key, x);
    else
        HASH_ADD(hh, outmons, key, sizeof x->key, x);
    HASH_ADD(hh_ref, n->watches, ref, sizeof x->ref, x);
    LIST_INSERT_HEAD(&n->watching, x, link);
    budget_charge(sizeof *x + x->name_len);
    send_monitor(n, OP_MONITOR_P, x);
    return x;
}

static void watch_free(struct watch *x)
{
    if (x->call)
        HASH_DEL(outcalls, x);
    else
        HASH_DEL(outmons, x);
    HASH_DELETE(hh_ref, x->node->watches, x);
    LIST_REMOVE(x, link);
    budget_release(sizeof *x + x->name_len);
    free(x);
}

/* Ours has gone (answered, timed out, demonitored): the node forgets it. */
static void watch_end(struct watch *x)
{
    if (x && !x->node->closing)
        send_monitor(x->node, OP_DEMONITOR_P, x);
    if (x)
        watch_free(x);
}

/* A message to our pid or an alias: the reply {Ref, Reply} to a call of
 * ours, or nothing. */
enum handled out_send(struct node *n, struct gsp_span msg)
{
    if (msg.ptr == NULL)
        return BAD;
    const uint8_t *p = msg.ptr, *end = msg.ptr + msg.len, *q;
    if (msg.len < 2 || p[0] != ERL_SMALL_TUPLE_EXT || p[1] != 2)
        return DONE;
    q = p += 2;
    if (!term_skip(&q, end, GSP_MAX_DEPTH_HARD, NULL))
        return BAD;
    uint64_t ref = ref_of_ours((struct gsp_span){p, (size_t)(q - p)});
    struct watch *x = NULL;
    if (ref)
        HASH_FIND(hh_ref, n->watches, &ref, sizeof ref, x);
    if (x == NULL || !x->call)
        return DONE; /* late: its caller gave up */
    struct waiter *w = waiter_find(x->key);
    watch_end(x);
    if (w == NULL)
        return DONE;
    struct gsp_span reply;
    if (node_convert(n, q, end, NULL, &reply))
        waiter_result(w, reply);
    else
        waiter_error_str(w, GSP_TOO_LARGE, "the reply is over the message limits, or malformed");
    return DONE;
}

/* MONITOR_P_EXIT to a call or monitor of ours: its name is not there
 * (noproc) or has ended. */
enum handled out_monitor_exit(struct node *n, struct gsp_span ref_term, struct gsp_span reason)
{
    static const uint8_t unreadable[] = "°reason_too_large";
    uint64_t ref = ref_of_ours(ref_term);
    struct watch *x = NULL;
    if (ref)
        HASH_FIND(hh_ref, n->watches, &ref, sizeof ref, x);
    if (x == NULL)
        return DONE;
    const uint8_t *p = reason.ptr;
    bool noproc = term_is_atom(&p, reason.ptr + reason.len, "noproc");
    struct gsp_span r = {unreadable, sizeof unreadable - 1};
    struct gsp_span conv;
    if (node_convert(n, reason.ptr, reason.ptr + reason.len, NULL, &conv))
        r = conv;
    uint64_t key = x->key;
    bool call = x->call;
    char name[GSP_NAME_MAX + 1];
    size_t len = x->name_len;
    memcpy(name, x->name, len);
    watch_free(x);
    struct waiter *w = call ? waiter_find(key) : NULL;
    if (w && noproc) {
        char text[GSP_NAME_MAX + MAXNODELEN + 64];
        snprintf(text, sizeof text, "no process is registered as %.*s on %s", (int)len, name,
                 n->name);
        waiter_error_str(w, GSP_NOPROC, text);
    } else if (w)
        waiter_error(w, GSP_EXIT, r);
    else if (!call)
        monitor_remote_down(key, name, len, r);
    return DONE;
}

/* "node N cannot be reached: why", for nodedown answers. */
static const char *unreachable(const char *node, size_t len, const char *why)
{
    static char text[MAXNODELEN + 128];
    snprintf(text, sizeof text, "node %.*s cannot be reached: %s", (int)len, node, why);
    return text;
}

void out_lost(struct node *n, bool up, const char *why)
{
    const char *down = unreachable(n->name, strlen(n->name), why);
    struct watch *x;
    while ((x = LIST_FIRST(&n->watching)) != NULL) {
        uint64_t key = x->key, asker = x->asker;
        bool call = x->call;
        char name[GSP_NAME_MAX + 1];
        size_t len = x->name_len;
        memcpy(name, x->name, len);
        watch_free(x); /* first: what follows finds it gone */
        struct waiter *w = waiter_find(call ? key : asker);
        if (call && w && up)
            waiter_error(w, GSP_EXIT, enc_noconnection);
        else if (call && w)
            waiter_error_str(w, GSP_NODEDOWN, down);
        else if (!call && asker && w == NULL) /* a client's, unanswered: the client has gone */
            monitor_remote_down(key, NULL, 0, (struct gsp_span){0});
        else if (!call)
            monitor_unreachable(key, name, len, w, down);
    }
    for (size_t i = 0; i < n->naskers; i++) {
        struct waiter *w = waiter_find(n->askers[i]);
        if (w)
            waiter_error_str(w, GSP_NODEDOWN, down);
    }
    n->naskers = 0;
}

void out_connected(struct node *n)
{
    for (size_t i = 0; i < n->naskers; i++) {
        struct waiter *w = waiter_find(n->askers[i]);
        if (w)
            waiter_result(w, enc_nil);
    }
    n->naskers = 0;
    struct watch *x;
    LIST_FOREACH(x, &n->watching, link) {
        struct waiter *w = x->asker ? waiter_find(x->asker) : NULL;
        if (w)
            waiter_result_uint(w, x->key);
        x->asker = 0;
    }
}

/* v (msgpack) as a term for n, appended to out. */
static bool term_for(const struct node *n, struct gsp_span v, bool module, struct gsp_buf *out)
{
    msgpack_object o;
    if (!gsp_decode(v.ptr, v.len, dist_zone(), &o))
        return false;
    struct term_ctx ctx = node_ctx(n, false, module);
    return mp_to_term(&o, out, &ctx, GSP_MAX_DEPTH_HARD + 1);
}

static void nodedown(struct waiter *w, const struct remote *to, const char *why)
{
    waiter_error_str(w, GSP_NODEDOWN, unreachable(to->node, to->node_len, why));
}

/* {'$gen_call', {OurPid, Ref}, Req} after a monitor of the name under the
 * same ref, as gen:call does: a name not there answers noproc at once. */
void out_call(const struct remote *to, struct gsp_span req, bool module, struct waiter *w)
{
    static struct gsp_buf msg;
    const char *why = NULL;
    struct node *n = node_for(to, &why);
    if (n == NULL) {
        nodedown(w, to, why);
        return;
    }
    uint64_t ref = ++last_ref;
    msg.len = 0;
    term_put_tuple(&msg, 3);
    term_put_atom(&msg, "$gen_call", 9);
    term_put_tuple(&msg, 2);
    gsp_buf_append(&msg, self.pid, self.pid_len);
    put_ref(&msg, ref);
    if (!term_for(n, req, module, &msg)) {
        waiter_error_str(w, GSP_BADARG, "the request cannot be written as an Erlang term");
        return;
    }
    watch_new(n, to, w->id, true, ref);
    send_reg(n, to, &msg);
}

bool out_post(const struct remote *to, enum msg_kind kind, struct gsp_span m, bool module,
              struct waiter *w)
{
    static struct gsp_buf msg;
    const char *why = NULL;
    struct node *n = node_for(to, &why);
    if (n == NULL) {
        if (w)
            nodedown(w, to, why);
        return false;
    }
    msg.len = 0;
    if (kind == MSG_CAST) {
        term_put_tuple(&msg, 2);
        term_put_atom(&msg, "$gen_cast", 9);
    }
    if (!term_for(n, m, module, &msg)) {
        if (w)
            waiter_error_str(w, GSP_BADARG, "the message cannot be written as an Erlang term");
        return false;
    }
    send_reg(n, to, &msg);
    if (w && n->fd >= 0)
        waiter_result(w, enc_nil);
    else if (w) { /* answered once connected */
        n->askers = xrealloc(n->askers, (n->naskers + 1) * sizeof *n->askers);
        n->askers[n->naskers++] = w->id;
    }
    return true;
}

void out_monitor(const struct remote *to, uint64_t mref, struct waiter *w)
{
    const char *why = NULL;
    struct node *n = node_for(to, &why);
    if (n == NULL)
        monitor_unreachable(mref, to->name, to->name_len, w,
                            unreachable(to->node, to->node_len, why));
    else {
        struct watch *x = watch_new(n, to, mref, false, ++last_ref);
        if (w && n->fd >= 0)
            waiter_result_uint(w, mref);
        else if (w)
            x->asker = w->id;
    }
}

void out_unwatch(uint64_t mref)
{
    struct watch *x;
    HASH_FIND(hh, outmons, &mref, sizeof mref, x);
    watch_end(x);
}

void out_call_gone(uint64_t waiter)
{
    struct watch *x;
    HASH_FIND(hh, outcalls, &waiter, sizeof waiter, x);
    watch_end(x);
}
