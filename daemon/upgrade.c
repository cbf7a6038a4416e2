/* upgrade.c — hot code upgrade: every server of a module moves to the new
 * code, its state converted by the new code's code_change, or none does,
 * in the daemon and in every worker alike.
 *
 * It is never started half-way: code_change builds each new state beside
 * the old one (in the daemon for its own servers, in each worker for the
 * isolated ones), and only once every server has agreed are the servers
 * switched and the old states freed. If one refuses, the new states built
 * so far are freed and nothing else has changed. The servers taking part
 * handle no message from the moment their new state is built until the
 * switch: a reload with only servers in the daemon is over before the
 * loop gets control back; one with isolated servers waits for their
 * workers (at most UPGRADE_WAIT_MS, then it is refused), and answers then. */
#include "gsd.h"

#include <stdlib.h>
#include <string.h>

#define SELF(s) ((gs_server *)(s))
#define UPGRADE_WAIT_MS 5000

/* The one reload under way. */
static struct {
    bool active;
    struct module *from, *to;
    uint64_t *ids; /* the servers taking part */
    void **state;  /* in the daemon: the state each will have on the new code */
    void **old;    /* ... and the one it had: code_change built one iff they differ */
    size_t n, cap;
    unsigned waiting; /* isolated servers yet to answer */
    uint64_t waiter;  /* the reload's caller */
    uint64_t refused; /* the first server that refused (0: none yet) */
    struct gsp_buf reason;
    struct event *timer;
} up;

static void collect(struct server *s, void *arg)
{
    (void)arg;
    if (s->mod != up.from || s->status == SERVER_ENDED || up.n == up.cap)
        return;
    up.ids[up.n] = s->id;
    up.old[up.n] = s->state;
    up.state[up.n++] = s->state;
}

static void refuse(struct server *s, const gs_value *why)
{
    if (up.refused)
        return;
    up.refused = s->id;
    struct gsp_span r = server_encode(s, why, "reason_too_large");
    gs_value instead = gs_str("reason_too_large");
    if (!value_fits(r.ptr, r.len, GSP_WRAP_ERROR_MAP))
        r = server_encode(s, &instead, "reason_too_large");
    gsp_buf_append(&up.reason, r.ptr, r.len);
}

/* What refuses a move before any code_change runs: new code without one
 * takes the state as it is, so only where its layout is the old one's. */
static bool layouts_differ(const struct server *s, const struct module *to, gs_value *why,
                           gs_value *vsns)
{
    if (to->desc->code_change || module_state_vsn(s->mod) == module_state_vsn(to))
        return false;
    vsns[0] = gs_str("no_code_change");
    vsns[1] = gs_uint(s->mod->desc->vsn);
    vsns[2] = gs_uint(to->desc->vsn);
    *why = gs_array(vsns, 3);
    return true;
}

/* In the daemon: asks the new code for s's new state; false if refused. */
static bool convert(struct server *s, struct module *to, void **state)
{
    gs_value vsns[3], why;
    if (s->status == SERVER_STARTING)
        return true; /* init has not run: it will, in the new code */
    if (layouts_differ(s, to, &why, vsns)) {
        refuse(s, &why);
        return false;
    }
    if (!to->desc->code_change)
        return true;
    gs_value extra = gs_nil();
    running_enter(s, CB_CODE_CHANGE);
    gs_result r = to->desc->code_change(SELF(s), s->mod->desc->vsn, state, &extra);
    running_leave();
    if (r.action == GS_OK)
        return true;
    why = r.action == GS_ERROR ? r.reason : gs_str("bad_return_value");
    refuse(s, &why);
    *state = s->state; /* whatever it built, it freed; the old state stays */
    return false;
}

static void free_new(struct server *s, struct module *code, uint32_t vsn, void *state)
{
    running_enter(s, CB_FREE_STATE);
    code->desc->free_state(SELF(s), vsn, state);
    running_leave();
}

static void answer(unsigned moved)
{
    struct waiter *w = waiter_find(up.waiter);
    struct gsp_buf b = {0};
    msgpack_packer pk;
    gsp_packer_init(&pk, &b);
    const char *name = up.to->name;
    if (up.refused) {
        struct server *s = registry_by_id(up.refused);
        char text[256];
        gs_value why = gs_nil();
        scratch_decode((struct gsp_span){up.reason.data, up.reason.len}, &why);
        log_msg(LOG_WARN, "reload %s refused: server %llu (%s) code_change: %s", name,
                (unsigned long long)up.refused, s && s->name ? s->name : "-",
                value_text(text, sizeof text, &why));
        msgpack_pack_map(&pk, 3);
        gsp_pack_str(&pk, "id");
        msgpack_pack_uint64(&pk, up.refused);
        gsp_pack_str(&pk, "name");
        if (s && s->name)
            gsp_pack_str(&pk, s->name);
        else
            msgpack_pack_nil(&pk);
        gsp_pack_str(&pk, "reason");
        gsp_pack_raw(&pk, up.reason.data, up.reason.len);
        if (w)
            waiter_error(w, GSP_CODE_CHANGE, (struct gsp_span){b.data, b.len});
    } else {
        log_msg(LOG_INFO, "module %s reloaded: vsn %u -> %u, %u servers upgraded", name,
                up.from ? up.from->desc->vsn : 0, up.to->desc->vsn, moved);
        msgpack_pack_map(&pk, 4);
        gsp_pack_str(&pk, "name");
        gsp_pack_str(&pk, name);
        gsp_pack_str(&pk, "vsn");
        msgpack_pack_uint32(&pk, up.to->desc->vsn);
        gsp_pack_str(&pk, "path");
        gsp_pack_str(&pk, up.to->path);
        gsp_pack_str(&pk, "upgraded");
        msgpack_pack_uint32(&pk, moved);
        if (w)
            waiter_result(w, (struct gsp_span){b.data, b.len});
    }
    gsp_buf_free(&b);
}

/* Every server has answered (or ended): all move, or none. */
static void decide(void)
{
    bool commit = up.refused == 0;
    unsigned moved = 0;
    for (size_t i = 0; i < up.n; i++) {
        struct server *s = up.ids[i] ? registry_by_id(up.ids[i]) : NULL;
        if (s == NULL || s->mod != up.from || s->status == SERVER_ENDED) /* ended meanwhile */
            continue;
        s->upgrading = false;
        if (s->worker) {
            worker_switch(s, commit);
        } else if (!commit) {
            if (up.state[i] != s->state)
                free_new(s, up.to, up.to->desc->vsn, up.state[i]);
        } else {
            void *old = s->state;
            s->state = up.state[i];
            if (old != s->state)
                free_new(s, up.to, up.from->desc->vsn, old);
        }
        if (commit) {
            s->mod = up.to;
            up.from->servers--;
            up.to->servers++;
            moved++;
        }
        if (server_has_work(s))
            sched_wake(s);
    }
    answer(moved);
    if (commit)
        module_install(up.to);
    else
        module_release(up.to);
    free(up.ids);
    free(up.state);
    free(up.old);
    gsp_buf_free(&up.reason);
    if (up.timer)
        event_free(up.timer);
    memset(&up, 0, sizeof up);
}

static void too_slow(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    for (size_t i = 0; i < up.n && !up.refused; i++) {
        struct server *s = up.ids[i] ? registry_by_id(up.ids[i]) : NULL;
        if (s && s->upgrading && s->worker) {
            gs_value why = gs_str("timeout");
            refuse(s, &why);
        }
    }
    decide();
    conn_flush_all(); /* the answer; elsewhere the caller's own flush sends it (never here
                       * within a method: a flush may free the connection being read) */
}

bool upgrade_start(struct module *from, struct module *to, uint64_t waiter)
{
    if (up.active)
        return false;
    up.active = true;
    up.from = from;
    up.to = to;
    up.waiter = waiter;
    up.cap = from ? from->servers : 0;
    up.ids = xcalloc(up.cap + 1, sizeof *up.ids);
    up.state = xcalloc(up.cap + 1, sizeof *up.state);
    up.old = xcalloc(up.cap + 1, sizeof *up.old);
    if (from)
        registry_foreach(false, collect, NULL);
    /* First what refuses at once; then the daemon's own servers; then the
     * workers are asked, if none has refused. */
    for (size_t i = 0; i < up.n && !up.refused; i++) {
        struct server *s = registry_by_id(up.ids[i]);
        gs_value vsns[3], why;
        if (s->worker && s->status != SERVER_STARTING && layouts_differ(s, to, &why, vsns))
            refuse(s, &why);
    }
    size_t done = 0;
    while (done < up.n && !up.refused) {
        struct server *s = registry_by_id(up.ids[done]);
        if (!s->worker && !convert(s, to, &up.state[done]))
            break;
        done++;
    }
    if (up.refused) { /* the new states built so far go */
        for (size_t i = 0; i < done; i++) {
            struct server *s = registry_by_id(up.ids[i]);
            if (!s->worker && up.state[i] != s->state)
                free_new(s, to, to->desc->vsn, up.state[i]);
        }
        up.n = 0;
        decide();
        return true;
    }
    for (size_t i = 0; i < up.n; i++) {
        struct server *s = registry_by_id(up.ids[i]);
        s->upgrading = true; /* no message until the switch */
        if (!s->worker || !s->hosted)
            continue; /* decided here; or its init, not sent yet, runs in the new code */
        if (worker_upgrade(s, to)) {
            s->upgrade_asked = true;
            up.waiting++;
        } else {
            gs_value why = gs_str("worker_unavailable");
            refuse(s, &why);
        }
    }
    if (up.waiting == 0) {
        decide();
        return true;
    }
    up.timer = loop_event(LOOP_PRIO_OWN, -1, 0, too_slow, NULL);
    loop_arm(up.timer, UPGRADE_WAIT_MS);
    return true;
}

void upgrade_answered(struct server *s, bool ok, const gs_value *why)
{
    if (!up.active || !s->upgrade_asked) /* one answer per ask; a late one is moot */
        return;
    s->upgrade_asked = false;
    if (!ok)
        refuse(s, why);
    if (--up.waiting == 0)
        decide();
}

void upgrade_server_ended(struct server *s)
{
    if (!up.active || !s->upgrading)
        return;
    s->upgrading = false;
    for (size_t i = 0; i < up.n; i++)
        if (up.ids[i] == s->id) {
            up.ids[i] = 0; /* out of it; a new state built in the daemon goes */
            if (!s->worker && up.state[i] != up.old[i]) /* terminate freed the old one */
                free_new(s, up.to, up.to->desc->vsn, up.state[i]);
        }
    if (s->upgrade_asked) {
        s->upgrade_asked = false;
        if (--up.waiting == 0)
            decide();
    }
}
