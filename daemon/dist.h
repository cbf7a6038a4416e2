/* dist.h — what the distribution's three files share: dist.c (the node's
 * connections: handshakes, framing, ticks), dist_in.c (what peers ask of
 * gsd's servers) and dist_out.c (what gsd's clients and servers ask of
 * names on other nodes). Nothing outside them includes it. */
#ifndef GSD_DIST_H
#define GSD_DIST_H

#include "gsd.h"

#include <ei.h>

/* Control messages' operations (erl_ext_dist). */
enum {
    OP_LINK = 1,
    OP_SEND = 2,
    OP_REG_SEND = 6,
    OP_SEND_TT = 12,
    OP_REG_SEND_TT = 16,
    OP_MONITOR_P = 19,
    OP_DEMONITOR_P = 20,
    OP_MONITOR_P_EXIT = 21,
    OP_SEND_SENDER = 22,
    OP_SEND_SENDER_TT = 23,
    OP_ALIAS_SEND = 33,
    OP_ALIAS_SEND_TT = 34
};

/* A connection to another node, made by either end. */
struct node {
    char name[MAXNODELEN + 1];
    int fd;           /* -1 while connecting */
    bool outbound;    /* we connected (else the peer did) */
    uint64_t attempt; /* connecting: the attempt a thread reports on */
    struct event *rev, *wev, *tick, *flush, *resume;
    struct gsp_buf in, out;
    size_t out_off;
    int64_t heard_ms, said_ms;
    struct atom_set atoms; /* what it has sent: what may go back to it as atoms */
    struct pending *calls; /* by mref */
    LIST_HEAD(, pending) pending;
    uint32_t npending;
    struct dmon *mons; /* by ref */
    LIST_HEAD(, dmon) monitors;
    uint32_t nmons;
    struct watch *watches; /* ours on it, by ref */
    LIST_HEAD(, watch) watching;
    uint64_t *askers; /* connecting: clients' casts and sends, answered nil once connected */
    size_t naskers;
    struct event *connect_timer;
    bool held, closing;
    size_t charged; /* its buffers, charged to the memory budget */
    LIST_ENTRY(node) link;
};

/* How a message read was handled: done, held (a full mailbox: retried
 * later), or not a message (the connection is closed). */
enum handled { DONE, HOLD, BAD };

/* ---- dist.c ---- */
/* This node: its name, this run's creation, and its pid (the sender of
 * everything gsd sends), encoded. */
struct dist_self {
    const char *name;
    size_t name_len;
    unsigned creation;
    uint8_t pid[MAXNODELEN + 32];
    size_t pid_len;
};
extern struct dist_self self;
/* Queues 'p', control, payload (payload may be NULL) for n. */
void node_send(struct node *n, const struct gsp_buf *ctl, const struct gsp_buf *payload);
void node_close(struct node *n, const char *why);
/* The node `to` names, connected or connecting (fd -1); NULL, with why,
 * if a connection cannot be asked for now. */
struct node *node_for(const struct remote *to, const char **why);
/* The term at p (to end) as msgpack in *out (valid until the next call),
 * its atoms noted as n's, its tuples and binaries in marks if asked;
 * false if malformed or over the message limits. */
bool node_convert(struct node *n, const uint8_t *p, const uint8_t *end, struct term_marks *marks,
                  struct gsp_span *out);
/* What a value going to n may become (mp_to_term): n's atoms, the
 * daemon's own words (exit reasons) if words, a module's GS_EXT_ATOMs if
 * made_atoms. */
struct term_ctx node_ctx(const struct node *n, bool words, bool made_atoms);
/* The zone for decoding values on their way out, cleared. */
msgpack_zone *dist_zone(void);
static inline void be32_put(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = v;
}
static inline uint32_t be32_get(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- dist_in.c: peers' calls, casts, sends and monitors ---- */
enum handled in_reg_send(struct node *n, struct gsp_span to, struct gsp_span msg);
void in_monitor(struct node *n, const struct gsp_span *el);
void in_demonitor(struct node *n, const struct gsp_span *el);
/* n is gone: its calls are dropped (gs_from_waiting turns false), its
 * monitors forgotten. */
void in_lost(struct node *n);
void in_answer(uint64_t key, enum gsp_code code, struct gsp_span v);
void in_server_ended(struct server *s, struct gsp_span reason);

/* ---- dist_out.c: ours, to names on other nodes ---- */
/* A message to our pid: a reply to a call of ours, or nothing. */
enum handled out_send(struct node *n, struct gsp_span msg);
enum handled out_monitor_exit(struct node *n, struct gsp_span ref, struct gsp_span reason);
/* n has connected: those who waited for it hear so. */
void out_connected(struct node *n);
/* n is gone (up: it was connected; else never was, for why). */
void out_lost(struct node *n, bool up, const char *why);
void out_call(const struct remote *to, struct gsp_span req, bool module, struct waiter *w);
bool out_post(const struct remote *to, enum msg_kind kind, struct gsp_span msg, bool module,
              struct waiter *w);
void out_monitor(const struct remote *to, uint64_t mref, struct waiter *w);
void out_unwatch(uint64_t mref);
void out_call_gone(uint64_t waiter);

#endif /* GSD_DIST_H */
