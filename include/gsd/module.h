/*
 * gsd/module.h — the one header a gsd callback module needs.
 *
 * A module is a shared object that exports one descriptor, built with
 *
 *     cc -shared -fPIC $(pkg-config --cflags gsd-module) -o mymod.so mymod.c
 *
 * and nothing else: it links against nothing, the daemon hands it every
 * service it may use through a table (see struct gs_api).
 *
 * The contract, as in Erlang's gen_server:
 *
 *     client ──call/cast/send──▶ daemon ──▶ mailbox ──▶ your callbacks
 *                                                 (one message at a time)
 *
 *   init          once, before the server handles anything; start replies
 *                 only after it returns.
 *   handle_call   a request whose caller waits for a reply.
 *   handle_cast   a request nobody waits for.
 *   handle_info   everything else: raw sends, your timers, the "timeout"
 *                 message, replies to your own calls, monitor downs.
 *   terminate     once, on every way a server ends except a failed init.
 *   handle_continue  work a result asked for (gs_continue), before any
 *                 other message.
 *   code_change   on hot upgrade, in the new code, between two messages.
 *   format_state  what get_state shows.
 *   hibernate     release what your state can spare while idle.
 *
 * Every callback runs on the daemon's single event loop. A callback that
 * blocks (sleeps, waits on I/O, loops) stalls every server: keep each one
 * short and use timers and deferred replies to wait.
 *
 * Values are msgpack objects (gs_value is msgpack-c's msgpack_object, whose
 * layout is plain C: read it with the helpers below or its fields). By the
 * convention of the wire protocol an atom is a string and a tuple an array:
 * {:add, 10} is ["add", 10].
 *
 * OWNERSHIP, one rule for every pointer that crosses this API:
 *
 *   - Values handed to you (args, request, msg, reason, extra) are borrowed:
 *     valid until your callback returns. Keep one with gs_value_copy().
 *   - Values you hand back (a reply, a stop reason, format_state's result,
 *     the value given to gs_reply/gs_cast/...) are borrowed by the daemon:
 *     it encodes them before your callback returns to the loop (before
 *     terminate runs, for a stop). They may point into the request, your
 *     state, static data or the scratch arena, never into your callback's
 *     own stack (it is gone when the daemon reads them). The daemon never
 *     frees them.
 *   - The scratch arena (gs_scratch_*) lives until the current callback's
 *     result has been read: use it for replies you build.
 *   - *state is yours: allocate it in init, replace it in any callback,
 *     free it in terminate. If init returns stop or ignore, free it before
 *     returning: terminate is not called then.
 *
 * ABI: a module records GS_ABI_VERSION in its descriptor; the daemon
 * refuses a module built for another one. struct gs_api only grows at its
 * end; check gs_api_has() before using a slot newer than your oldest
 * supported daemon.
 */
#ifndef GSD_MODULE_H
#define GSD_MODULE_H

#include <msgpack.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GS_ABI_VERSION 2 /* bump on any incompatible change below (2: gs_result grew) */

typedef msgpack_object gs_value;    /* a msgpack value; see the helpers below */
typedef msgpack_object_kv gs_pair;  /* a map entry: .key, .val */
typedef struct gs_server gs_server; /* opaque: the server a callback runs for */

/* A caller waiting for a reply, kept by value. Answer it exactly once with
 * gs_reply_to(); answering a caller that has gone (timed out, disconnected,
 * already answered) is a silent no-op, as in OTP. */
typedef struct gs_from {
    uint64_t id; /* daemon's handle; 0 never names a caller */
} gs_from;

/* ---- callback results ------------------------------------------------ */

typedef enum gs_action {
    GS_BAD_RETURN = 0, /* a zeroed result: the server stops, "bad_return_value" */
    GS_OK,             /* init, code_change: go on */
    GS_REPLY,          /* handle_call: send .reply now */
    GS_NOREPLY,        /* go on; a call is answered later with gs_reply_to() */
    GS_STOP,           /* end the server with .reason (and .reply, if has_reply) */
    GS_IGNORE,         /* init: no server; start answers "ignore" */
    GS_ERROR,          /* code_change: refuse the upgrade with .reason */
} gs_action;

#define GS_INFINITY (-1) /* no timeout */

/*
 * What a callback asks for next, as OTP's return tuples do: the action,
 * then at most one of a timeout, hibernate or a continue (OTP's fourth
 * element). Build results with the gs_ok/gs_reply/gs_noreply/gs_stop
 * families and the modifiers gs_continue(), gs_timeout_msg() and
 * gs_deadline() below, not by hand.
 *
 * The order the daemon reads them in: has_continue (OK, REPLY, NOREPLY:
 * handle_continue runs with .cont before any other message, and the
 * timeout and hibernate are not read), then hibernate, then the timeout.
 */
typedef struct gs_result {
    gs_action action;
    bool hibernate;       /* release spare memory until the next message */
    bool has_reply;       /* GS_STOP from handle_call: reply before ending */
    bool has_continue;    /* run handle_continue(.cont) before any message */
    bool has_timeout_msg; /* the timeout delivers .timeout_msg, not "timeout" */
    bool timeout_at;      /* timeout_ms is a time on gs_now()'s clock, not a delay */
    int64_t timeout_ms;   /* >= 0: handle_info gets "timeout" (or .timeout_msg) if
                             no message arrives within it; GS_INFINITY: none */
    gs_value reply;       /* GS_REPLY, or GS_STOP with has_reply */
    gs_value reason;      /* GS_STOP, GS_ERROR */
    gs_value cont;        /* has_continue: what handle_continue gets */
    gs_value timeout_msg; /* has_timeout_msg: what handle_info gets */
} gs_result;

/* ---- building values (no allocation) --------------------------------- */

static inline gs_value gs_nil(void)
{
    gs_value v = {.type = MSGPACK_OBJECT_NIL};
    return v;
}

static inline gs_value gs_bool(bool b)
{
    gs_value v = {.type = MSGPACK_OBJECT_BOOLEAN, .via.boolean = b};
    return v;
}

static inline gs_value gs_int(int64_t n)
{
    gs_value v;
    if (n >= 0) {
        v.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        v.via.u64 = (uint64_t)n;
    } else {
        v.type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        v.via.i64 = n;
    }
    return v;
}

static inline gs_value gs_uint(uint64_t n)
{
    gs_value v = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = n};
    return v;
}

static inline gs_value gs_float(double d)
{
    gs_value v = {.type = MSGPACK_OBJECT_FLOAT64, .via.f64 = d};
    return v;
}

/* A string value pointing at s (not copied: s must outlive its use). */
static inline gs_value gs_strn(const char *s, uint32_t len)
{
    gs_value v = {.type = MSGPACK_OBJECT_STR};
    v.via.str.ptr = s;
    v.via.str.size = len;
    return v;
}

static inline gs_value gs_str(const char *s)
{
    return gs_strn(s, (uint32_t)strlen(s));
}

/* An array or map value over items you own. As a reply or reason it must
 * outlive your callback: use gs_scratch_array()/gs_scratch_pairs(). For
 * gs_cast/gs_send/gs_reply_to/gs_timer_start, which copy at once, a local
 * array is fine. */
static inline gs_value gs_array(gs_value *items, uint32_t n)
{
    gs_value v = {.type = MSGPACK_OBJECT_ARRAY};
    v.via.array.ptr = items;
    v.via.array.size = n;
    return v;
}

static inline gs_value gs_map(gs_pair *pairs, uint32_t n)
{
    gs_value v = {.type = MSGPACK_OBJECT_MAP};
    v.via.map.ptr = pairs;
    v.via.map.size = n;
    return v;
}

/*
 * Values for Erlang peers. A server may call, cast to, send to and
 * monitor Erlang and Elixir processes by remote reference, a 2-array
 * [name, node] such as ["cache", "app@db1"], wherever a server reference
 * goes (see docs/distribution.md). What came from Erlang goes back exactly
 * as it came; what a module builds goes by the convention: a str becomes a
 * binary (or an atom the peer has sent before), an array a list. Where an
 * Erlang peer needs an atom or a tuple, build it with gs_atom and
 * gs_erl_tuple. To anyone else, a msgpack client or another server, they
 * are what they are made of: an ext of type GS_EXT_ATOM holding the name,
 * and an array whose first item is an empty ext of type GS_EXT_TUPLE.
 * Only modules make atoms: the daemon refuses a client's message holding
 * a GS_EXT_ATOM (badarg), so that no client's data, relayed by a module or
 * not, ever fills a peer's atom table.
 */
#define GS_EXT_ATOM 0x16
#define GS_EXT_TUPLE 0x17

/* An atom, at most 255 characters of UTF-8 (a longer one, or one not
 * UTF-8, goes as a binary): gs_atom("ok"). name is borrowed, as by
 * gs_str; gs_atomn takes its length. */
static inline gs_value gs_atomn(const char *name, uint32_t len)
{
    gs_value v = {.type = MSGPACK_OBJECT_EXT};
    v.via.ext.type = GS_EXT_ATOM;
    v.via.ext.ptr = name;
    v.via.ext.size = len;
    return v;
}
static inline gs_value gs_atom(const char *name)
{
    return gs_atomn(name, (uint32_t)strlen(name));
}

/* True if v is an atom gs_atom made (Erlang's atoms arrive as str). */
static inline bool gs_is_atom(const gs_value *v, const char *name)
{
    size_t n = strlen(name);
    return v != NULL && v->type == MSGPACK_OBJECT_EXT && v->via.ext.type == GS_EXT_ATOM &&
           v->via.ext.size == n && memcmp(v->via.ext.ptr, name, n) == 0;
}

/* ---- reading values (no allocation) ---------------------------------- */

/* True if v is the string (or bin) s: gs_is(req, "get"). */
static inline bool gs_is(const gs_value *v, const char *s)
{
    size_t n = strlen(s);
    return v != NULL && (v->type == MSGPACK_OBJECT_STR || v->type == MSGPACK_OBJECT_BIN) &&
           v->via.str.size == n && memcmp(v->via.str.ptr, s, n) == 0;
}

/* True if v is an array of n elements whose first is the string tag:
 * gs_is_tuple(req, "add", 2) matches ["add", 10]. */
static inline bool gs_is_tuple(const gs_value *v, const char *tag, uint32_t n)
{
    return v != NULL && v->type == MSGPACK_OBJECT_ARRAY && v->via.array.size == n && n > 0 &&
           gs_is(&v->via.array.ptr[0], tag);
}

/* Element i of an array (NULL if v is NULL, not an array, or too short).
 * All readers accept NULL, so gs_is(gs_map_get(args, "k"), "x") is safe. */
static inline const gs_value *gs_at(const gs_value *v, uint32_t i)
{
    if (v == NULL || v->type != MSGPACK_OBJECT_ARRAY || i >= v->via.array.size)
        return NULL;
    return &v->via.array.ptr[i];
}

/* Reads an integer that fits int64_t; returns false (and leaves *out) if v
 * is anything else. */
static inline bool gs_get_int(const gs_value *v, int64_t *out)
{
    if (v && v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = v->via.i64;
        return true;
    }
    if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX) {
        *out = (int64_t)v->via.u64;
        return true;
    }
    return false;
}

static inline bool gs_is_nil(const gs_value *v)
{
    return v == NULL || v->type == MSGPACK_OBJECT_NIL;
}

/* The typed readers below work like gs_get_int: true with *out set if v is
 * of that type (and fits), false with *out left as it was otherwise, v
 * NULL included. What they point at is v's, valid as long as v is. */

/* A non-negative integer. */
static inline bool gs_get_uint(const gs_value *v, uint64_t *out)
{
    if (v == NULL || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *out = v->via.u64;
    return true;
}

/* A number, as a double: a float, or an integer (JSON clients send 1 for
 * 1.0; a large one is rounded). */
static inline bool gs_get_float(const gs_value *v, double *out)
{
    if (v && (v->type == MSGPACK_OBJECT_FLOAT64 || v->type == MSGPACK_OBJECT_FLOAT32))
        *out = v->via.f64;
    else if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        *out = (double)v->via.u64;
    else if (v && v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *out = (double)v->via.i64;
    else
        return false;
    return true;
}

static inline bool gs_get_bool(const gs_value *v, bool *out)
{
    if (v == NULL || v->type != MSGPACK_OBJECT_BOOLEAN)
        return false;
    *out = v->via.boolean;
    return true;
}

/* A string: *s points at its *len bytes, which are not terminated. */
static inline bool gs_get_str(const gs_value *v, const char **s, uint32_t *len)
{
    if (v == NULL || v->type != MSGPACK_OBJECT_STR)
        return false;
    *s = v->via.str.ptr;
    *len = v->via.str.size;
    return true;
}

/* A binary: *p points at its *len bytes. */
static inline bool gs_get_bin(const gs_value *v, const void **p, uint32_t *len)
{
    if (v == NULL || v->type != MSGPACK_OBJECT_BIN)
        return false;
    *p = v->via.bin.ptr;
    *len = v->via.bin.size;
    return true;
}

/* ---- results --------------------------------------------------------- */

static inline gs_result gs_result_of(gs_action a)
{
    gs_result r;
    memset(&r, 0, sizeof r);
    r.action = a;
    r.timeout_ms = GS_INFINITY;
    return r;
}

/* init and code_change */
static inline gs_result gs_ok(void)
{
    return gs_result_of(GS_OK);
}
static inline gs_result gs_ok_timeout(int64_t ms)
{
    gs_result r = gs_result_of(GS_OK);
    r.timeout_ms = ms;
    return r;
}
static inline gs_result gs_ok_hibernate(void)
{
    gs_result r = gs_result_of(GS_OK);
    r.hibernate = true;
    return r;
}
static inline gs_result gs_ignore(void)
{
    return gs_result_of(GS_IGNORE);
}
static inline gs_result gs_error(gs_value reason)
{
    gs_result r = gs_result_of(GS_ERROR);
    r.reason = reason;
    return r;
}

/* handle_call */
static inline gs_result gs_reply(gs_value reply)
{
    gs_result r = gs_result_of(GS_REPLY);
    r.reply = reply;
    return r;
}
static inline gs_result gs_reply_timeout(gs_value reply, int64_t ms)
{
    gs_result r = gs_reply(reply);
    r.timeout_ms = ms;
    return r;
}
static inline gs_result gs_reply_hibernate(gs_value reply)
{
    gs_result r = gs_reply(reply);
    r.hibernate = true;
    return r;
}

/* handle_call, handle_cast, handle_info */
static inline gs_result gs_noreply(void)
{
    return gs_result_of(GS_NOREPLY);
}
static inline gs_result gs_noreply_timeout(int64_t ms)
{
    gs_result r = gs_result_of(GS_NOREPLY);
    r.timeout_ms = ms;
    return r;
}
static inline gs_result gs_noreply_hibernate(void)
{
    gs_result r = gs_result_of(GS_NOREPLY);
    r.hibernate = true;
    return r;
}

/*
 * Modifiers for an ok, reply or noreply result (ignored on the others).
 *
 * gs_continue: handle_continue runs with term before any other message,
 * as OTP's {continue, Term}: from init, once start has been answered.
 * Without handle_continue the server stops, "undef_handle_continue".
 *
 *     return gs_continue(gs_ok(), gs_str("load"));   // init: load after start
 *
 * gs_timeout_msg: the timeout of `ms` delivers msg to handle_info, rather
 * than "timeout". gs_deadline: the same at a time on gs_now()'s clock (a
 * deadline passed fires at once). Like any timeout, either is cancelled by
 * the next message to arrive (OTP's {timeout, T, Msg} event timeout).
 */
static inline gs_result gs_continue(gs_result r, gs_value term)
{
    r.has_continue = true;
    r.cont = term;
    return r;
}
static inline gs_result gs_timeout_msg(gs_result r, int64_t ms, gs_value msg)
{
    r.timeout_ms = ms < 0 ? 0 : ms;
    r.timeout_at = false;
    r.has_timeout_msg = true;
    r.timeout_msg = msg;
    return r;
}
static inline gs_result gs_deadline(gs_result r, int64_t at_ms, gs_value msg)
{
    r = gs_timeout_msg(r, at_ms, msg);
    r.timeout_at = true;
    return r;
}

/* Any callback but init, which uses it to fail start with init_stop. */
static inline gs_result gs_stop(gs_value reason)
{
    gs_result r = gs_result_of(GS_STOP);
    r.reason = reason;
    return r;
}
/* handle_call: terminate runs first, then the caller gets reply. */
static inline gs_result gs_stop_reply(gs_value reason, gs_value reply)
{
    gs_result r = gs_stop(reason);
    r.has_reply = true;
    r.reply = reply;
    return r;
}

/* ---- the module descriptor -------------------------------------------- */

struct gs_api;

typedef struct gs_module {
    uint32_t abi;              /* GS_ABI_VERSION, set by GS_MODULE */
    uint32_t size;             /* sizeof(gs_module), set by GS_MODULE */
    const struct gs_api **api; /* where the daemon stores its table, set by GS_MODULE */
    const char *name;          /* module name, must equal the file's (counter.so: "counter") */
    uint32_t vsn;              /* your code's version: modules, info, code_change */

    /* Required. args is the start argument (nil if none). Set *state. */
    gs_result (*init)(gs_server *self, const gs_value *args, void **state);
    /* Optional: without it a call stops the server ("undef_handle_call"). */
    gs_result (*handle_call)(gs_server *self, const gs_value *request, gs_from from, void **state);
    /* Optional: without it a cast stops the server ("undef_handle_cast"). */
    gs_result (*handle_cast)(gs_server *self, const gs_value *request, void **state);
    /* Optional: without it messages are logged and ignored. */
    gs_result (*handle_info)(gs_server *self, const gs_value *msg, void **state);
    /* Optional. Runs once, with the reason; free *state here. */
    void (*terminate)(gs_server *self, const gs_value *reason, void **state);
    /* Optional. Runs in the NEW code on reload, between two messages: build
     * the new state from *state (old_vsn's layout) and store it in *state,
     * or leave *state as it is if the layout did not change. Do not change
     * or free the old state: a reload is all or nothing, and if another
     * server refuses, this one goes back to the old code with it. Return
     * gs_ok(), or gs_error(reason) to refuse the reload (free what you
     * built). Without it the state is kept as is, and so only code of the
     * same state layout (state_vsn, below) may take a server over: a
     * reload to another layout without code_change is refused, reason
     * ["no_code_change", old_vsn, new_vsn]. A module with code_change must
     * have free_state.
     * UNSAFE: once every server has moved, the old code is unmapped with
     * all its static data. A state that is kept must not point into it
     * (string literals, const tables, function pointers): copy such data
     * into the state, or repoint it here. */
    gs_result (*code_change)(gs_server *self, uint32_t old_vsn, void **state,
                             const gs_value *extra);
    /* Optional: the value get_state shows (borrowed, as a reply). Without
     * it get_state answers "unsupported". */
    gs_value (*format_state)(gs_server *self, void *state);
    /* Optional: called when a callback asked to hibernate, after the daemon
     * released the server's own spare memory. Shrink *state's buffers. */
    void (*hibernate)(gs_server *self, void **state);
    /* With code_change: free what a reload left behind, but for the parts
     * the state that goes on shares with it. Once every server has moved:
     * the old state (vsn: the old version); free it but for what
     * code_change took into the new one. If a reload was refused: each new
     * state code_change built (vsn: yours); free what code_change
     * allocated, not what it took from the old state (the old one keeps
     * it). Not called for a state code_change kept as it was. Runs in the
     * new code, for the server given. (The upgraded counter,
     * modules/counter.c, copies, shares nothing, and frees whole.) */
    void (*free_state)(gs_server *self, uint32_t vsn, void *state);
    /* Optional: the version of your state's layout, if it is not vsn's
     * (0: it is). A release that changes the code but not the state keeps
     * the old state_vsn, and needs no code_change to take over running
     * servers; one that changes the layout needs code_change. (Added after
     * the first release of this ABI: the daemon reads it only from a
     * descriptor whose size covers it.) */
    uint32_t state_vsn;
    /* Optional: the work a result asked for with gs_continue(), before any
     * other message (OTP's handle_continue). Returns as handle_cast does,
     * and may continue again. */
    gs_result (*handle_continue)(gs_server *self, const gs_value *term, void **state);
} gs_module;

/*
 * Declares this file's module. Use once per module:
 *
 *     GS_MODULE(.name = "counter", .vsn = 1, .init = counter_init,
 *               .handle_call = counter_call);
 */
#define GS_MODULE(...)                                                                             \
    __attribute__((visibility("hidden"))) const struct gs_api *gs_host;                            \
    __attribute__((visibility("default"))) const gs_module gs_module_info = {                      \
        .abi = GS_ABI_VERSION, .size = sizeof(gs_module), .api = &gs_host, __VA_ARGS__}

/* The symbol the daemon looks up in every module. */
#define GS_MODULE_SYMBOL "gs_module_info"

/* ---- services: what a callback may ask of the daemon ------------------ */

enum gs_log_level { GS_LOG_ERROR = 3, GS_LOG_WARNING = 4, GS_LOG_INFO = 6, GS_LOG_DEBUG = 7 };

/*
 * The daemon's table. Call through the gs_* wrappers below. Every function
 * is only to be called from a callback of a server of this module, on the
 * loop thread, with that callback's self.
 */
struct gs_api {
    size_t size; /* sizeof(struct gs_api) in the daemon; slots past it are absent */

    void (*log)(gs_server *self, int level, const char *fmt, va_list ap);
    uint64_t (*self_id)(gs_server *self);
    const char *(*self_name)(gs_server *self);

    int (*reply)(gs_server *self, gs_from from, gs_value reply);
    int64_t (*from_deadline)(gs_server *self, gs_from from);
    bool (*from_waiting)(gs_server *self, gs_from from);

    uint64_t (*timer_start)(gs_server *self, uint64_t ms, gs_value msg);
    int (*timer_cancel)(gs_server *self, uint64_t ref);

    int (*cast)(gs_server *self, gs_value server, gs_value request);
    int (*send)(gs_server *self, gs_value server, gs_value msg);
    uint64_t (*call)(gs_server *self, gs_value server, gs_value request, int64_t timeout_ms);
    uint64_t (*monitor)(gs_server *self, gs_value server);
    int (*demonitor)(gs_server *self, uint64_t ref);

    void *(*scratch_alloc)(gs_server *self, size_t n);
    gs_value *(*value_copy)(const gs_value *v);
    void (*value_free)(gs_value *v);
    bool (*value_equal)(const gs_value *a, const gs_value *b);
    int64_t (*now)(gs_server *self);
    /* new slots go here, at the end */
};

extern __attribute__((visibility("hidden"))) const struct gs_api *gs_host;

/* True if the running daemon provides slot `field` of struct gs_api. */
#define gs_api_has(field)                                                                          \
    (offsetof(struct gs_api, field) + sizeof(((struct gs_api *)0)->field) <= gs_host->size)

/* Logs one line tagged with the server's id and name. Levels are syslog's. */
__attribute__((format(printf, 3, 4))) static inline void gs_log(gs_server *self, int level,
                                                                const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gs_host->log(self, level, fmt, ap);
    va_end(ap);
}

/* This server's id (never reused) and name (NULL if anonymous; valid while
 * the server lives). */
static inline uint64_t gs_self(gs_server *self)
{
    return gs_host->self_id(self);
}
static inline const char *gs_self_name(gs_server *self)
{
    return gs_host->self_name(self);
}

/*
 * Answers a kept caller, from any later callback of the server that got
 * the call (terminate included). reply is encoded at once (borrowed); one
 * over the message limits reaches the caller as "reply_too_large", as a
 * returned reply does. Returns 0 if the caller was still waiting, -1 (a no-op) if it had gone,
 * was already answered, is being answered by the daemon (the call whose
 * callback returned gs_stop_reply), or is not a call to this server.
 */
static inline int gs_reply_to(gs_server *self, gs_from from, gs_value reply)
{
    return gs_host->reply(self, from, reply);
}

/* Milliseconds the caller will still wait: GS_INFINITY if it waits
 * forever, 0 if it has given up or gone. Timeouts are capped at 2^31 - 1. */
static inline int64_t gs_from_deadline(gs_server *self, gs_from from)
{
    return gs_host->from_deadline(self, from);
}

/* Now, in milliseconds on the daemon's monotonic clock (not the time of
 * day): the clock of gs_deadline(). Under the test
 * harness (gsd/test.h) it is the harness's virtual clock. */
static inline int64_t gs_now(gs_server *self)
{
    return gs_host->now(self);
}

/* False once nobody will read a reply to from: skip work nobody wants. */
static inline bool gs_from_waiting(gs_server *self, gs_from from)
{
    return gs_host->from_waiting(self, from);
}

/* Delivers msg (copied now) to this server's handle_info after ms (at
 * most 2^31 - 1). Returns a timer ref (> 0) for gs_timer_cancel, or 0 if
 * msg is over the message limits (see below) or the server already has as
 * many timers pending as the daemon allows (65536 by default). Timers end
 * with the server. */
static inline uint64_t gs_timer_start(gs_server *self, uint64_t ms, gs_value msg)
{
    return gs_host->timer_start(self, ms, msg);
}

/* Cancels a timer that has not fired: 0, else -1 (unknown or fired). */
static inline int gs_timer_cancel(gs_server *self, uint64_t ref)
{
    return gs_host->timer_cancel(self, ref);
}

/*
 * Messages to another server (or this one). server is a name (gs_str) or
 * an id (gs_uint); the message is copied now. They return 0 once it is in
 * the target's mailbox, -1 if no such server is running or the message is
 * over the limits. In an isolated server (one that runs in a worker
 * process) the daemon finds the target only after the callback: there
 * they return 0 for any message within the limits, as GenServer.cast
 * does, and a message to no one is dropped. They never block and never
 * fail on a full mailbox:
 * messages between servers are always accepted (flow control applies to
 * clients only).
 *
 * Message limits: every value a module hands the daemon (messages, replies,
 * reasons) may nest at most 30 arrays and maps deep and encode to less than
 * the daemon's message size (16 MiB by default). A reply or reason over
 * them is replaced by the string "reply_too_large" or "reason_too_large".
 */
static inline int gs_cast(gs_server *self, gs_value server, gs_value request)
{
    return gs_host->cast(self, server, request);
}
static inline int gs_send(gs_server *self, gs_value server, gs_value msg)
{
    return gs_host->send(self, server, msg);
}

/*
 * Calls another server without blocking: returns a ref (> 0) at once, and
 * the answer comes later to handle_info as
 *     ["reply", ref, nil, reply]            on success,
 *     ["reply", ref, [code, detail], nil]   on failure (noproc, timeout, exit),
 * the same shape as a wire response. timeout_ms may be GS_INFINITY. A call
 * to this server itself (by name or id) could only time out: it is
 * answered at once, error exit with reason "calling_self", as in OTP.
 */
static inline uint64_t gs_call(gs_server *self, gs_value server, gs_value request,
                               int64_t timeout_ms)
{
    return gs_host->call(self, server, request, timeout_ms);
}

/* Watches another server: when it ends, handle_info gets
 * ["down", ref, id, reason] (reason "noproc" at once if it is not
 * running; id 0 if no server held that name). Returns the ref (> 0). */
static inline uint64_t gs_monitor(gs_server *self, gs_value server)
{
    return gs_host->monitor(self, server);
}
static inline int gs_demonitor(gs_server *self, uint64_t ref)
{
    return gs_host->demonitor(self, ref);
}

/* n bytes from the scratch arena (16-byte aligned, never NULL), valid until
 * the current callback's result has been read. */
static inline void *gs_scratch_alloc(gs_server *self, size_t n)
{
    return gs_host->scratch_alloc(self, n);
}
/* n nil items in the scratch arena, for gs_array(). */
static inline gs_value *gs_scratch_array(gs_server *self, uint32_t n)
{
    gs_value *a = (gs_value *)gs_scratch_alloc(self, n * sizeof *a);
    for (uint32_t i = 0; i < n; i++)
        a[i] = gs_nil();
    return a;
}
static inline gs_pair *gs_scratch_pairs(gs_server *self, uint32_t n)
{
    gs_pair *p = (gs_pair *)gs_scratch_alloc(self, n * sizeof *p);
    for (uint32_t i = 0; i < n; i++)
        p[i].key = p[i].val = gs_nil();
    return p;
}

/* ---- building values to return (in the scratch arena) ---------------- *
 * A value a callback returns is read after the callback has returned: it
 * must not live on its stack. These build it in the scratch arena, which
 * lives until then. The values given them are copied shallowly: what they
 * point at (a string, another array) must live as long; gs_scratch_copy
 * copies deep. */

/* [item, ...]: n values. gs_tuple(self, 2, gs_str("ok"), gs_int(n)). */
static inline gs_value gs_tuple(gs_server *self, uint32_t n, ...)
{
    gs_value *a = (gs_value *)gs_scratch_alloc(self, n * sizeof *a);
    va_list ap;
    va_start(ap, n);
    for (uint32_t i = 0; i < n; i++)
        a[i] = va_arg(ap, gs_value);
    va_end(ap);
    return gs_array(a, n);
}

/* An Erlang tuple of n items, for a peer:
 * gs_erl_tuple(self, 2, gs_atom("add"), gs_int(1)) reaches it as {add, 1}.
 * In the scratch arena, as gs_tuple. */
static inline gs_value gs_erl_tuple(gs_server *self, uint32_t n, ...)
{
    gs_value *a = (gs_value *)gs_scratch_alloc(self, (n + 1) * sizeof *a);
    a[0].type = MSGPACK_OBJECT_EXT;
    a[0].via.ext.type = GS_EXT_TUPLE;
    a[0].via.ext.ptr = "";
    a[0].via.ext.size = 0;
    va_list ap;
    va_start(ap, n);
    for (uint32_t i = 1; i <= n; i++)
        a[i] = va_arg(ap, gs_value);
    va_end(ap);
    return gs_array(a, n + 1);
}

/* One entry for gs_map_of: the key a string (not copied). */
static inline gs_pair gs_kv(const char *key, gs_value val)
{
    gs_pair p;
    p.key = gs_str(key);
    p.val = val;
    return p;
}

/* {key: val, ...}: n entries, each gs_kv(key, val). */
static inline gs_value gs_map_of(gs_server *self, uint32_t n, ...)
{
    gs_pair *p = (gs_pair *)gs_scratch_alloc(self, n * sizeof *p);
    va_list ap;
    va_start(ap, n);
    for (uint32_t i = 0; i < n; i++)
        p[i] = va_arg(ap, gs_pair);
    va_end(ap);
    return gs_map(p, n);
}

/* ["error", [code, detail]]: how a module answers a request it cannot
 * serve, e.g. gs_reply(gs_error_reply(self, "unknown_call", *request)). */
static inline gs_value gs_error_reply(gs_server *self, const char *code, gs_value detail)
{
    return gs_tuple(self, 2, gs_str("error"), gs_tuple(self, 2, gs_str(code), detail));
}

/* A deep copy of v in the scratch arena: to return a value that points at
 * your stack, or at memory you free before returning (as SQLite's
 * SQLITE_TRANSIENT asks for a copy). gs_scratch_bytes copies n bytes. */
static inline const char *gs_scratch_bytes(gs_server *self, const char *p, uint32_t n)
{
    return (const char *)memcpy(gs_scratch_alloc(self, n), p, n);
}
static inline gs_value gs_scratch_copy(gs_server *self, const gs_value *v)
{
    gs_value c = *v;
    switch (v->type) {
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN:
        c.via.str.ptr = gs_scratch_bytes(self, v->via.str.ptr, v->via.str.size);
        break;
    case MSGPACK_OBJECT_EXT:
        c.via.ext.ptr = gs_scratch_bytes(self, v->via.ext.ptr, v->via.ext.size);
        break;
    case MSGPACK_OBJECT_ARRAY: {
        gs_value *a = (gs_value *)gs_scratch_alloc(self, v->via.array.size * sizeof *a);
        for (uint32_t i = 0; i < v->via.array.size; i++)
            a[i] = gs_scratch_copy(self, &v->via.array.ptr[i]);
        c.via.array.ptr = a;
        break;
    }
    case MSGPACK_OBJECT_MAP: {
        gs_pair *p = (gs_pair *)gs_scratch_alloc(self, v->via.map.size * sizeof *p);
        for (uint32_t i = 0; i < v->via.map.size; i++) {
            p[i].key = gs_scratch_copy(self, &v->via.map.ptr[i].key);
            p[i].val = gs_scratch_copy(self, &v->via.map.ptr[i].val);
        }
        c.via.map.ptr = p;
        break;
    }
    default:
        break;
    }
    return c;
}

/* A deep copy of v in one allocation, yours to keep; free it with
 * gs_value_free (NULL is ignored). Never NULL. */
static inline gs_value *gs_value_copy(const gs_value *v)
{
    return gs_host->value_copy(v);
}
static inline void gs_value_free(gs_value *v)
{
    gs_host->value_free(v);
}
/* Structural equality (integers compare by value, str equals bin). */
static inline bool gs_value_equal(const gs_value *a, const gs_value *b)
{
    return gs_host->value_equal(a, b);
}

/* The map entry of v whose key is the string key, or NULL. */
static inline const gs_value *gs_map_get(const gs_value *v, const char *key)
{
    if (v == NULL || v->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < v->via.map.size; i++)
        if (gs_is(&v->via.map.ptr[i].key, key))
            return &v->via.map.ptr[i].val;
    return NULL;
}

#ifdef __cplusplus
}
#endif
#endif /* GSD_MODULE_H */
