/*
 * gsp.h — the gsd wire protocol: the one place that knows it.
 *
 * msgpack-rpc over a Unix stream socket, objects back to back:
 *     request       [0, msgid, method, params]
 *     response      [1, msgid, error, result]    error: nil or [code, detail]
 *     notification  [2, method, params]
 *
 * Input is handled in three steps, so bytes are checked before they cost
 * memory:
 *   1. gsp_framer finds where a message ends and checks its size and
 *      nesting depth, allocating nothing (msgpack-c's unpacker would
 *      allocate count × 24 bytes for an array header alone);
 *   2. gsp_envelope reads a complete frame's envelope in place: type,
 *      msgid, method, and the params (or error and result) as byte spans;
 *   3. gsp_decode turns a span into msgpack objects, only when needed.
 *
 * Output is packed with msgpack-c into a gsp_buf: every envelope (request,
 * response, notification, down, and the shapes a server is told a call's
 * answer and a down in) by a gsp_pack_* function here, read back by the
 * gsp_*_read functions, by the daemon and libgsclient alike.
 *
 * Don't forget to bump GSP_PROTOCOL_VERSION when the wire changes.
 */
#ifndef GSD_PROTOCOL_H
#define GSD_PROTOCOL_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GSP_PROTOCOL_VERSION 1

enum gsp_type { GSP_REQUEST = 0, GSP_RESPONSE = 1, GSP_NOTIFY = 2 };

/* Error codes, as sent on the wire by gsp_code_name(). */
enum gsp_code {
    GSP_OK = 0,
    GSP_BADARG,
    GSP_UNKNOWN_METHOD,
    GSP_NOPROC,
    GSP_TIMEOUT,
    GSP_EXIT,
    GSP_ALREADY_STARTED,
    GSP_INIT_STOP,
    GSP_IGNORE,
    GSP_MODULE,
    GSP_CODE_CHANGE,
    GSP_UNSUPPORTED,
    GSP_UNAUTHORIZED,
    GSP_TOO_LARGE,
    GSP_PROTOCOL,
    GSP_SHUTTING_DOWN,
    GSP_OVERLOADED,
    GSP_NODEDOWN,
    GSP_CODE_COUNT
};

/* "badarg", ...; "unknown" for a value outside the enum. Static string. */
const char *gsp_code_name(enum gsp_code code);
/* Error responses this process has packed (gsp_pack_error_begin), by code:
 * the daemon's `stats` shows them. */
extern uint64_t gsp_errors_packed[GSP_CODE_COUNT];

/* ---- limits ------------------------------------------------------------ */

#define GSP_MAX_SIZE_DEFAULT (16u << 20) /* bytes in one message */
#define GSP_MAX_DEPTH_DEFAULT 32u        /* nested arrays and maps */
#define GSP_MAX_DEPTH_HARD 32u           /* msgpack-c's own stack: deeper fails there */
#define GSP_CALL_TIMEOUT_DEFAULT 5000    /* ms, when a call's timeout is nil */
#define GSP_NAME_MAX 255                 /* bytes in a server name */

struct gsp_limits {
    size_t max_size;    /* a message longer than this is too_large */
    unsigned max_depth; /* deeper nesting is too_large; <= GSP_MAX_DEPTH_HARD */
};

/* Decoded, every item of an array or map is a msgpack_object (24 bytes for
 * a one-byte nil): a message may hold as many items as take 4 × max_size
 * bytes that way, or 1 MiB if more (a small max_size must still let
 * ordinary messages through). Past that it is too_large. Every item takes
 * a byte, so a message no longer than this many bytes is within it. */
static inline uint64_t gsp_max_items(const struct gsp_limits *lim)
{
    uint64_t decoded = (uint64_t)lim->max_size * 4;
    return (decoded > (1u << 20) ? decoded : (1u << 20)) / sizeof(msgpack_object);
}

/* ---- framing ------------------------------------------------------------ */

enum gsp_scan {
    GSP_SCAN_DONE,      /* a whole message: *frame_len bytes */
    GSP_SCAN_MORE,      /* no error so far; feed again when more bytes arrive */
    GSP_SCAN_INVALID,   /* not msgpack (0xc1, or a reserved form) */
    GSP_SCAN_TOO_LARGE, /* over max_size, or over gsp_max_items */
    GSP_SCAN_TOO_DEEP,  /* over max_depth */
};

/*
 * Incremental framer: remembers how far it got, so a message arriving in
 * many reads is scanned once in total. Zero-initialise, or gsp_framer_reset
 * after every message.
 */
struct gsp_framer {
    size_t pos;                            /* bytes of the current message scanned */
    uint64_t items;                        /* items its containers have announced */
    unsigned depth;                        /* open containers */
    uint64_t left[GSP_MAX_DEPTH_HARD + 1]; /* items still due at each depth */
    bool atom; /* the message holds an ext of type GSP_EXT_ATOM; kept after DONE */
};

/* The ext type of an atom a module built for an Erlang peer (module.h's
 * GS_EXT_ATOM): the daemon refuses it from clients, which may not make
 * atoms. gsp_request_read leaves a message holding one to the framer. */
#define GSP_EXT_ATOM 0x16

void gsp_framer_reset(struct gsp_framer *f);

/*
 * Scans buf[0..len), which holds the start of the current message (the
 * same bytes as last time, maybe with more after them). On GSP_SCAN_DONE,
 * *frame_len is the message's length and the framer is reset for the next
 * one. Allocates nothing, reads each byte at most once overall. A header
 * that announces more bytes or items than the limits allow is too_large
 * at once, before they arrive.
 */
enum gsp_scan gsp_framer_feed(struct gsp_framer *f, const uint8_t *buf, size_t len,
                              const struct gsp_limits *lim, size_t *frame_len);

/* ---- reading in place --------------------------------------------------- */

/* Bytes of one encoded msgpack value, inside a frame it does not own. */
struct gsp_span {
    const uint8_t *ptr;
    size_t len;
};

static inline bool gsp_span_is_nil(struct gsp_span s)
{
    return s.len == 1 && s.ptr[0] == 0xc0;
}

/* A reader over a complete, framed message. Every get advances past what it
 * read, or returns false and leaves the cursor where it was. */
struct gsp_cursor {
    const uint8_t *p, *end;
};

bool gsp_get_array(struct gsp_cursor *c, uint32_t *n);
bool gsp_get_map(struct gsp_cursor *c, uint32_t *n);
bool gsp_get_uint(struct gsp_cursor *c, uint64_t *v);                  /* any int >= 0 */
bool gsp_get_int(struct gsp_cursor *c, int64_t *v);                    /* any int in int64 */
bool gsp_get_bool(struct gsp_cursor *c, bool *v);
bool gsp_get_str(struct gsp_cursor *c, const char **s, uint32_t *len); /* str or bin */
bool gsp_get_nil(struct gsp_cursor *c);
bool gsp_is_nil(const struct gsp_cursor *c);
/* Steps over one whole value, returning its bytes. */
bool gsp_get_span(struct gsp_cursor *c, struct gsp_span *out);

/* One message's envelope, pointing into its frame. */
struct gsp_envelope {
    enum gsp_type type;
    bool has_msgid;     /* a msgid could be read (even if the rest is bad) */
    uint32_t msgid;     /* request, response */
    const char *method; /* request, notification: not NUL-terminated */
    uint32_t method_len;
    uint32_t nparams;         /* request, notification: params array length */
    struct gsp_cursor params; /* positioned at the first param */
    struct gsp_span error;    /* response: nil or [code, detail] */
    struct gsp_span result;   /* response */
};

/*
 * Reads a framed message's envelope. Returns true if it has one of the
 * three forms; false if it is valid msgpack of the wrong shape (then
 * env->has_msgid says whether a badarg response can be addressed).
 */
bool gsp_envelope_read(const uint8_t *frame, size_t len, struct gsp_envelope *env);

/*
 * Framing and gsp_envelope_read in one pass, for the messages clients send
 * most: a complete request [0, msgid, method, params] or notification
 * [2, method, params] at the start of buf[0..avail), with a uint32 msgid,
 * a fixstr method and a fixarray of params, within lim. True with
 * *frame_len and env just as gsp_framer_feed and gsp_envelope_read would
 * give them; false for anything else (unfinished, another form, over a
 * limit, not msgpack), which the caller frames the usual way. Allocates
 * nothing, reads each byte once. It reads no further than gsp_max_items
 * bytes, so what it reads is within that limit too: it never takes a
 * message the framer would refuse.
 */
bool gsp_request_read(const uint8_t *buf, size_t avail, const struct gsp_limits *lim,
                      struct gsp_envelope *env, size_t *frame_len);

/* True if the method named in env is `name`. */
bool gsp_method_is(const struct gsp_envelope *env, const char *name);

/* A response's error, [code, detail], read in place: the code (a str,
 * not NUL-terminated) and the detail's span (nil when absent). False if
 * the error is not that shape (nil included: no error). */
bool gsp_error_read(struct gsp_span error, const char **code, uint32_t *code_len,
                    struct gsp_span *detail);

/* An error notification's params, [code, detail], read in place as
 * gsp_error_read reads a response's error. */
bool gsp_error_notify_read(const struct gsp_envelope *env, const char **code, uint32_t *code_len,
                           struct gsp_span *detail);

/* A down notification's params, [ref, id, name, reason], read in place.
 * Only the ref is required (it is what a watcher matches on): a missing or
 * non-uint id reads as 0, a missing name or reason as an empty span. */
struct gsp_down {
    uint64_t ref, id;
    struct gsp_span name, reason;
};
bool gsp_down_read(const struct gsp_envelope *env, struct gsp_down *d);

/*
 * Decodes one framed value into msgpack objects allocated in zone (which
 * the caller owns and clears). The span must have passed the framer:
 * memory is then bounded by about 24 bytes per encoded byte. Strings, bins
 * and exts are not copied: they point into ptr, which must outlive them.
 * A fixint, nil or fixstr needs no zone: with zone NULL, they are the only
 * values that decode (anything else returns false).
 */
bool gsp_decode(const uint8_t *ptr, size_t len, msgpack_zone *zone, msgpack_object *out);

/* ---- writing ------------------------------------------------------------ */

/* Running out of memory ends the process: protocol/ calls gsp_oom with the
 * bytes it could not have, which calls gsp_oom_hook if a program set one
 * (the daemon logs a line), then aborts. */
extern void (*gsp_oom_hook)(size_t n);
_Noreturn void gsp_oom(size_t n);

/* A growable byte buffer; zero-initialise. Running out of memory is gsp_oom. */
struct gsp_buf {
    uint8_t *data;
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated */
};

/* Room for `more` bytes past len; gsp_buf_grow makes it when there is not. */
void gsp_buf_grow(struct gsp_buf *b, size_t more);
/* The capacity b will have once it has room for `more` bytes past len. */
size_t gsp_buf_cap_for(const struct gsp_buf *b, size_t more);
static inline void gsp_buf_reserve(struct gsp_buf *b, size_t more)
{
    if (b->cap - b->len < more)
        gsp_buf_grow(b, more);
}
void gsp_buf_append(struct gsp_buf *b, const void *p, size_t n);
void gsp_buf_consume(struct gsp_buf *b, size_t n); /* drops the first n bytes */
void gsp_buf_free(struct gsp_buf *b);

/* Points a msgpack packer at a buffer: everything packed is appended. */
void gsp_packer_init(msgpack_packer *pk, struct gsp_buf *b);

/* Appends already-encoded bytes (a span, a stored value) to pk's output. */
void gsp_pack_raw(msgpack_packer *pk, const void *p, size_t n);
void gsp_pack_str(msgpack_packer *pk, const char *s);
void gsp_pack_strn(msgpack_packer *pk, const char *s, size_t n);

/* [0, msgid, method, [ — then pack nparams values. */
void gsp_pack_request(msgpack_packer *pk, uint32_t msgid, const char *method, uint32_t nparams);
/* [2, method, [ — then pack nparams values. */
void gsp_pack_notify(msgpack_packer *pk, const char *method, uint32_t nparams);
/* [1, msgid, nil, — then pack the result. */
void gsp_pack_result(msgpack_packer *pk, uint32_t msgid);
/* [1, msgid, [code, — then pack the detail, then call gsp_pack_error_end. */
void gsp_pack_error_begin(msgpack_packer *pk, uint32_t msgid, enum gsp_code code);
void gsp_pack_error_end(msgpack_packer *pk); /* closes with nil */
/* A whole error response with a printf-formatted string detail. */
void gsp_pack_error(msgpack_packer *pk, uint32_t msgid, enum gsp_code code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A whole response around an encoded value: the result when code is
 * GSP_OK, else the error's detail. */
void gsp_pack_response(msgpack_packer *pk, uint32_t msgid, enum gsp_code code, const void *v,
                       size_t len);

/* [2, "error", [code, detail]]: an error no request can carry (a bad
 * stream, a refused connection); detail is a string. */
void gsp_pack_error_notify(msgpack_packer *pk, enum gsp_code code, const char *detail);

/* How deep a value sits in what carries it: a value that nests within
 * max_depth - GSP_WRAP_* levels fits. */
#define GSP_WRAP_RESULT 1    /* a response's result; a down's reason */
#define GSP_WRAP_ERROR 2     /* an error's detail: [1, msgid, [code, detail], nil] */
#define GSP_WRAP_ERROR_MAP 3 /* a value in an error's detail map */

/*
 * A down: a monitored server has ended.
 *   to a connection:  [2, "down", [ref, id, name, reason]]  (name nil if none)
 *   to a server:      ["down", ref, id, reason]             (its handle_info)
 * reason is encoded. When no server had the name asked for, id is 0.
 */
void gsp_pack_down(msgpack_packer *pk, uint64_t ref, uint64_t id, const char *name, size_t name_len,
                   const void *reason, size_t len);
void gsp_pack_down_info(msgpack_packer *pk, uint64_t ref, uint64_t id, const void *reason,
                        size_t len);
/* The answer to a server's gs_call, as its handle_info gets it, in a
 * response's shape: ["reply", ref, nil, result] when code is GSP_OK, else
 * ["reply", ref, [code, detail], nil]. v is encoded. */
void gsp_pack_call_reply(msgpack_packer *pk, uint64_t ref, enum gsp_code code, const void *v,
                         size_t len);

/* Appends v encoded: the bytes msgpack_pack_object writes, without a
 * packer's callback per fragment. */
void gsp_buf_pack(struct gsp_buf *b, const msgpack_object *v);
/* The same if it takes at most max bytes; else false, with b's length as
 * it was. Stops as soon as the bytes pass max, before a str, bin or ext
 * body that would pass it is copied: a huge value costs about max. */
bool gsp_buf_pack_max(struct gsp_buf *b, const msgpack_object *v, size_t max);

/* Encodes obj into a fresh malloc'd buffer (*len bytes); the caller frees. */
uint8_t *gsp_encode(const msgpack_object *obj, size_t *len);

/* ---- values ------------------------------------------------------------- */

/* A deep copy of v in a single malloc'd block (free() it). Never NULL. */
msgpack_object *gsp_value_copy(const msgpack_object *v);
/* Structural equality; integers by value, str and bin alike. */
bool gsp_value_equal(const msgpack_object *a, const msgpack_object *b);

/* ---- names and sockets -------------------------------------------------- */

/* Bytes of the valid UTF-8 sequence at s[0..n) (1 to 4), or 0 if it is
 * not one: strict, no overlongs, surrogates or code points past U+10FFFF. */
size_t gsp_utf8_seq(const unsigned char *s, size_t n);

/* A server name: 1–255 bytes of UTF-8 without NUL, not all decimal digits. */
bool gsp_name_valid(const char *s, size_t len);
/* A module name: 1–255 bytes of [A-Za-z0-9_-]. */
bool gsp_module_name_valid(const char *s, size_t len);

/*
 * Resolves the socket path as every gsd program does: explicit (a flag,
 * may be NULL), else $GSD_SOCKET, else /run/gsd/gsd.sock for root, else
 * $XDG_RUNTIME_DIR/gsd.sock, else /tmp/gsd-$UID/gsd.sock. Writes it to out;
 * returns 0, or -1 if it does not fit in n bytes (or in a sockaddr_un).
 */
int gsp_socket_path(const char *explicit_path, char *out, size_t n);

#endif /* GSD_PROTOCOL_H */
