/*
 * supervise.c — servers that are started again when they end, as an OTP
 * supervisor's children are.
 *
 * A child is what a server is started from (its spec) plus its restart
 * history. Declared children come from the configuration, in file order;
 * others from a `start` with a "restart" option, and are forgotten when
 * their server ends for good. When a supervised server ends (server_end's
 * hook), its child decides:
 *
 *   ended ─▶ shutting down, stop asked, or policy says no ─▶ not restarted
 *     │
 *     ▼ one more restart within period_ms than max_restarts ─▶ given up (logged)
 *   delay: 0, or backoff_ms doubling per restart up to backoff_max_ms
 *   (back to backoff_ms once a server has stayed up for period_ms)
 *     │
 *     ▼ on a timer, never inside server_end
 *   start again under the same name (a failed start counts as a restart)
 */
#include "gsd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sup_child {
    struct child_spec spec;
    bool declared;     /* from the configuration */
    bool stopping;     /* ends for good when its server ends */
    bool booting;      /* declared at start-up, first init not yet answered */
    bool ran;          /* a server of it has answered init ok */
    bool up;           /* its current server has answered init ok */
    uint64_t server;   /* its running server's id; 0 while none */
    bool awaiting;     /* its name is held by a server whose terminate still runs (a worker's) */
    unsigned restarts; /* times started again */
    unsigned streak;   /* restarts since a server last stayed up for period_ms */
    int64_t *recent;   /* times of the restarts within period_ms, oldest first */
    uint32_t nrecent;
    struct event *delay;     /* the pending restart, if any */
    uint64_t restart_waiter; /* an admin's restart under way: who hears the new id */
    uint64_t link_conn;      /* ... and the connection its server was linked to */
    uint8_t *last_exit;      /* its last server's exit reason (encoded), or NULL */
    size_t last_exit_len;
    const struct child_spec *wanted; /* during supervise_configure: its new spec, if declared */
    TAILQ_ENTRY(sup_child) link;
    UT_hash_handle hh; /* in `by_name` while declared */
};

struct intensity intensity_default = {3, 5000, 0, 30000};

static TAILQ_HEAD(sup_child_list, sup_child) children = TAILQ_HEAD_INITIALIZER(children);
/* The declared children by name: a reload finds each in constant time, so
 * that configuring N servers is linear in N, not quadratic. */
static struct sup_child *by_name;
static unsigned booting; /* declared children whose first init is awaited */
static bool configured;  /* supervise_configure has run once */
static void (*ready_fn)(void *arg);
static void *ready_arg;

static const char *const restart_names[] = {
    [RESTART_TEMPORARY] = "temporary",
    [RESTART_TRANSIENT] = "transient",
    [RESTART_PERMANENT] = "permanent",
};

enum restart restart_from_name(const char *s, size_t len, bool *ok)
{
    for (int r = RESTART_TEMPORARY; r <= RESTART_PERMANENT; r++)
        if (strlen(restart_names[r]) == len && memcmp(restart_names[r], s, len) == 0) {
            *ok = true;
            return (enum restart)r;
        }
    *ok = false;
    return RESTART_TEMPORARY;
}

const char *restart_name(enum restart r)
{
    return restart_names[r];
}

static const char *label(const struct sup_child *ch)
{
    return ch->spec.name ? ch->spec.name : "-";
}

static void spec_copy(struct child_spec *to, const struct child_spec *from)
{
    *to = *from;
    to->module = xstrndup(from->module, strlen(from->module));
    to->name = from->name ? xstrndup(from->name, strlen(from->name)) : NULL;
    to->isolate = from->isolate ? xstrndup(from->isolate, strlen(from->isolate)) : NULL;
    to->args = xmalloc(from->args_len);
    memcpy(to->args, from->args, from->args_len);
}

/* Whether a restart would start something else than what runs. */
static bool spec_differs(const struct child_spec *a, const struct child_spec *b)
{
    return strcmp(a->module, b->module) != 0 || a->args_len != b->args_len ||
           memcmp(a->args, b->args, a->args_len) != 0 || a->init_timeout != b->init_timeout ||
           a->mailbox_limit != b->mailbox_limit || a->hibernate_after != b->hibernate_after ||
           !a->isolate != !b->isolate || (a->isolate && strcmp(a->isolate, b->isolate) != 0);
}

static void check_ready(void)
{
    static bool announced;
    if (!configured || booting > 0)
        return;
    if (!announced) {
        announced = true;
        log_msg(LOG_INFO, "every declared server has started (%u running)", registry_count());
    }
    if (ready_fn == NULL)
        return;
    void (*fn)(void *) = ready_fn;
    ready_fn = NULL;
    fn(ready_arg);
}

/* Its first init is answered or never will be. */
static void settle(struct sup_child *ch)
{
    if (!ch->booting)
        return;
    ch->booting = false;
    booting--;
    check_ready();
}

static void child_free(struct sup_child *ch)
{
    settle(ch);
    if (ch->declared)
        HASH_DELETE(hh, by_name, ch);
    TAILQ_REMOVE(&children, ch, link);
    if (ch->delay)
        event_free(ch->delay);
    free(ch->spec.module);
    free(ch->spec.name);
    free(ch->spec.args);
    free(ch->spec.isolate);
    free(ch->recent);
    free(ch->last_exit);
    free(ch);
}

static struct sup_child *child_new(const struct child_spec *spec, bool declared)
{
    struct sup_child *ch = xcalloc(1, sizeof *ch);
    spec_copy(&ch->spec, spec);
    ch->declared = declared;
    if (declared)
        HASH_ADD_KEYPTR(hh, by_name, ch->spec.name, strlen(ch->spec.name), ch);
    TAILQ_INSERT_TAIL(&children, ch, link);
    return ch;
}

/* A child with nothing running and nothing pending: kept if declared. */
static void child_idle(struct sup_child *ch)
{
    settle(ch);
    if (!ch->declared)
        child_free(ch);
}

static void attach(struct sup_child *ch, struct server *s)
{
    s->sup = ch;
    s->mailbox_limit = ch->spec.mailbox_limit;
    if (ch->spec.mailbox_limit)
        s->mbox.limit = ch->spec.mailbox_limit;
    s->hibernate_after = ch->spec.hibernate_after;
    ch->server = s->id;
}

/* Starts the child's server, starter waiting for its id (0: none);
 * GSP_OK, or the error a start would answer, logged, its text in err. */
static enum gsp_code child_start_for(struct sup_child *ch, uint64_t starter, char *err,
                                     size_t errlen)
{
    enum gsp_code code = GSP_MODULE;
    struct module *m = module_get(ch->spec.module, err, errlen);
    struct server *old =
        ch->spec.name ? registry_by_name(ch->spec.name, strlen(ch->spec.name)) : NULL;
    if (m && old && old->status == SERVER_ENDED && starter == 0) {
        ch->awaiting = true; /* started once the name is free */
        return GSP_OK;
    }
    struct server *s = NULL;
    if (m && old) {
        code = GSP_ALREADY_STARTED;
        snprintf(err, errlen, "server %llu holds the name", (unsigned long long)old->id);
    } else if (m) {
        const char *name = ch->spec.name;
        code = GSP_OVERLOADED; /* as start answers a worker that cannot start */
        s = server_start(m, name, name ? strlen(name) : 0, ch->spec.args, ch->spec.args_len,
                         ch->spec.init_timeout, starter, ch->spec.isolate, err, errlen);
    }
    if (s == NULL) {
        log_msg(LOG_ERR, "server %s (%s) cannot start: %s", label(ch), ch->spec.module, err);
        return code;
    }
    attach(ch, s);
    struct conn *c = ch->link_conn ? conn_by_id(ch->link_conn) : NULL;
    if (c) {
        conn_add_link(c, s->id);
        s->link_conn = c->id;
    }
    return GSP_OK;
}

static bool child_start(struct sup_child *ch)
{
    char err[512];
    return child_start_for(ch, 0, err, sizeof err) == GSP_OK;
}

static void restart_later(struct sup_child *ch, int64_t uptime_ms);

static void on_delay(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct sup_child *ch = arg;
    if (shutting_down)
        return;
    ch->restarts++;
    counters.restarts++;
    log_msg(LOG_INFO, "server %s (%s): restart %u", label(ch), ch->spec.module, ch->restarts);
    if (!child_start(ch))
        restart_later(ch, 0); /* may free ch and this event: not used after */
    scratch_reset();
}

/* Records one more restart; false if that is more than the intensity allows. */
static bool within_intensity(struct sup_child *ch, int64_t now)
{
    const struct intensity *in = &ch->spec.intensity;
    uint32_t keep = 0;
    for (uint32_t i = 0; i < ch->nrecent; i++)
        if (now - ch->recent[i] < (int64_t)in->period_ms)
            ch->recent[keep++] = ch->recent[i];
    ch->nrecent = keep;
    if (ch->nrecent >= in->max_restarts)
        return false;
    ch->recent = xrealloc(ch->recent, (ch->nrecent + 1) * sizeof *ch->recent);
    ch->recent[ch->nrecent++] = now;
    return true;
}

/* Schedules the next start, or gives up. uptime_ms: how long the server
 * that ended had run (0: it never started). */
static void restart_later(struct sup_child *ch, int64_t uptime_ms)
{
    const struct intensity *in = &ch->spec.intensity;
    if (uptime_ms >= (int64_t)in->period_ms)
        ch->streak = 0;
    if (!within_intensity(ch, now_ms())) {
        log_msg(LOG_ERR,
                "server %s (%s): more than %u restarts in %u ms; given up after %u restarts",
                label(ch), ch->spec.module, in->max_restarts, in->period_ms, ch->restarts);
        ch->nrecent = 0;
        ch->streak = 0;
        child_idle(ch);
        return;
    }
    int64_t delay = 0;
    if (in->backoff_ms) {
        unsigned shift = ch->streak < 30 ? ch->streak : 30;
        delay = (int64_t)in->backoff_ms << shift;
        if (delay > (int64_t)in->backoff_max_ms)
            delay = in->backoff_max_ms;
    }
    ch->streak++;
    if (ch->delay == NULL)
        ch->delay = loop_event(LOOP_PRIO_OWN, -1, 0, on_delay, ch);
    if (delay)
        log_msg(LOG_INFO, "server %s (%s): restart in %lld ms", label(ch), ch->spec.module,
                (long long)delay);
    loop_arm(ch->delay, delay);
}

static void restart_asked(struct sup_child *ch);

void supervise_ended(struct server *s, struct gsp_span reason, bool abnormal)
{
    struct sup_child *ch = s->sup;
    if (ch == NULL || !ch->restart_waiter)
        counters.crashes += abnormal; /* a restart's "restart" is no crash */
    if (ch == NULL)
        return;
    s->sup = NULL;
    ch->server = 0;
    bool was_up = ch->up;
    ch->up = false;
    free(ch->last_exit);
    ch->last_exit = memcpy(xmalloc(reason.len), reason.ptr, reason.len);
    ch->last_exit_len = reason.len;
    if (ch->restart_waiter) {
        restart_asked(ch);
        return;
    }
    /* An init that ignored asked not to run (as in OTP). A `start` whose
     * init failed has told its caller so: nothing to keep up (as
     * supervisor:start_child). A declared server's failed init counts as
     * a restart, so a dependency still down is retried. */
    bool again = (was_up || abnormal) && (ch->declared || ch->ran) &&
                 (ch->spec.restart == RESTART_PERMANENT ||
                  (ch->spec.restart == RESTART_TRANSIENT && abnormal));
    if (shutting_down || ch->stopping || !again) {
        ch->stopping = false;
        child_idle(ch);
        return;
    }
    restart_later(ch, now_ms() - s->stats.started_ms);
}

static struct sup_child *declared(const char *name);

void supervise_name_freed(const char *name)
{
    struct sup_child *ch = name ? declared(name) : NULL;
    if (ch == NULL || !ch->awaiting || shutting_down)
        return;
    ch->awaiting = false;
    if (!child_start(ch))
        restart_later(ch, 0);
}

void supervise_started(struct server *s)
{
    if (s->sup == NULL)
        return;
    s->sup->ran = s->sup->up = true;
    settle(s->sup);
}

void supervise_adopt(struct server *s, const struct child_spec *spec)
{
    if (spec->restart == RESTART_TEMPORARY)
        return;
    attach(child_new(spec, false), s);
}

/* An admin's restart: s has ended and its name is free (server.c's
 * finish), so the new server starts at once, before anyone can take it. */
static void restart_asked(struct sup_child *ch)
{
    uint64_t waiter = ch->restart_waiter;
    ch->restart_waiter = 0;
    ch->stopping = false;
    char err[512];
    enum gsp_code code = GSP_SHUTTING_DOWN;
    snprintf(err, sizeof err, "the daemon is shutting down");
    if (!shutting_down)
        code = child_start_for(ch, waiter, err, sizeof err);
    ch->link_conn = 0; /* linked once, as start links */
    if (code == GSP_OK)
        return;
    struct waiter *w = waiter_find(waiter);
    if (w)
        waiter_error_str(w, code, err);
    if (shutting_down || ch->spec.restart == RESTART_TEMPORARY)
        child_idle(ch);
    else
        restart_later(ch, 0); /* a start that failed, as after a crash */
}

bool supervise_restart(struct server *s, uint64_t waiter)
{
    struct sup_child *ch = s->sup;
    if (ch && ch->restart_waiter)
        return false;
    if (ch == NULL) { /* a child for this once: temporary, forgotten when its server ends */
        struct child_spec spec = {.module = s->mod->name,
                                  .name = s->name,
                                  .args = s->args,
                                  .args_len = s->args_len,
                                  .init_timeout = s->start_timeout,
                                  .mailbox_limit = s->mailbox_limit,
                                  .hibernate_after = s->hibernate_after,
                                  .isolate = s->isolate,
                                  .restart = RESTART_TEMPORARY,
                                  .intensity = intensity_default};
        ch = child_new(&spec, false);
        ch->ran = ch->up = s->status != SERVER_STARTING;
        ch->server = s->id;
        s->sup = ch;
    }
    ch->restart_waiter = waiter;
    ch->link_conn = s->link_conn;
    return true;
}

struct gsp_span supervise_last_exit(const struct server *s)
{
    if (s->sup == NULL || s->sup->last_exit == NULL)
        return (struct gsp_span){NULL, 0};
    return (struct gsp_span){s->sup->last_exit, s->sup->last_exit_len};
}

void supervise_stop_asked(struct server *s)
{
    if (s->sup)
        s->sup->stopping = true;
}

unsigned supervise_restarts(const struct server *s)
{
    return s->sup ? s->sup->restarts : 0;
}

enum restart supervise_policy(const struct server *s)
{
    return s->sup ? s->sup->spec.restart : RESTART_TEMPORARY;
}

static struct sup_child *declared(const char *name)
{
    struct sup_child *ch;
    HASH_FIND_STR(by_name, name, ch);
    return ch;
}

/* Ends a declared child for good: its server is stopped with "shutdown". */
static void child_remove(struct sup_child *ch)
{
    HASH_DELETE(hh, by_name, ch);
    ch->declared = false;
    ch->stopping = true;
    if (ch->delay)
        event_del(ch->delay);
    struct server *s = ch->server ? registry_by_id(ch->server) : NULL;
    if (s) {
        log_msg(LOG_INFO, "server %s (%s) is no longer declared: stopping it", label(ch),
                ch->spec.module);
        server_end(s, enc_shutdown, NULL); /* its hook frees ch */
        scratch_reset();
    } else
        child_free(ch);
}

void supervise_configure(const struct child_spec *specs, size_t n)
{
    bool first = !configured;
    configured = true;
    /* Each declared child meets its new spec by name, once: no scan of
     * the specs per child. */
    struct sup_child *ch, *prev;
    for (size_t i = 0; i < n; i++)
        if ((ch = declared(specs[i].name)) != NULL)
            ch->wanted = &specs[i];
    /* Undeclared or changed: stopped first, the last declared first. */
    for (ch = TAILQ_LAST(&children, sup_child_list); ch; ch = prev) {
        prev = TAILQ_PREV(ch, sup_child_list, link);
        const struct child_spec *sp = ch->wanted;
        ch->wanted = NULL;
        if (ch->declared && (sp == NULL || spec_differs(sp, &ch->spec)))
            child_remove(ch);
    }
    for (size_t i = 0; i < n; i++) {
        ch = declared(specs[i].name);
        if (ch == NULL) {
            ch = child_new(&specs[i], true);
            if (first) {
                ch->booting = true;
                booting++;
            }
        } else {
            ch->spec.restart = specs[i].restart;
            ch->spec.intensity = specs[i].intensity;
        }
        bool pending = ch->delay && evtimer_pending(ch->delay, NULL);
        if (ch->server == 0 && !pending && !child_start(ch)) {
            if (ch->spec.restart == RESTART_TEMPORARY)
                settle(ch);
            else
                restart_later(ch, 0); /* a start that failed is an abnormal end */
        }
    }
    scratch_reset();
    check_ready();
}

bool supervise_all_started(void)
{
    return configured && booting == 0;
}

void supervise_on_ready(void (*fn)(void *arg), void *arg)
{
    ready_fn = fn;
    ready_arg = arg;
    check_ready();
}

void supervise_free(void)
{
    struct sup_child *ch;
    while ((ch = TAILQ_FIRST(&children)) != NULL) {
        struct server *s = ch->server ? registry_by_id(ch->server) : NULL;
        if (s)
            s->sup = NULL;
        child_free(ch);
    }
    ready_fn = NULL;
}
