/*
 * wlink.h — the link between the daemon and a worker (worker.c, the
 * daemon's side; worker_main.c, the worker's): frames over a socketpair,
 * each one msgpack array whose first item is its op. Values travel as the
 * msgpack they are. The daemon reads what a worker writes as it reads a
 * client: framed within limits before it costs memory (a worker runs code
 * the daemon does not trust).
 *
 * daemon -> worker
 *   [HOST, sid, name|nil]                  a server to host; with it, by
 *                                          SCM_RIGHTS, its module's file
 *   [RUN, sid, kind, from, deadline, tref, value]
 *                                          run the callback for one message
 *                                          (enum msg_kind); from: a call's
 *                                          gs_from; deadline: its caller's,
 *                                          CLOCK_MONOTONIC ms, -1 none;
 *                                          tref: the timer that sent an info
 *   [END, sid, reason]                     run terminate (if init returned
 *                                          ok), free the server
 *   [GONE, sid, from]                      that caller has gone: it waits
 *                                          no more (gs_from_waiting)
 *   [UPGRADE, sid, old_vsn]                a reload: build the state on the
 *                                          new code (its file by SCM_RIGHTS)
 *                                          beside the old one
 *   [SWITCH, sid, commit]                  keep the new code and state, or
 *                                          drop them
 * worker -> daemon, a server's requests before its RESULT, in the order
 * its callback made them
 *   [RESULT, sid, action, flags, reply, reason, timeout_ms, timeout_msg,
 *    took_us]                              flags: WL_HAS_REPLY...; reply,
 *                                          reason, timeout_msg: nil when
 *                                          absent. With WL_CONTINUE the
 *                                          worker runs handle_continue at
 *                                          once: its RESULT comes next
 *   [ENDED, sid]                [PREPARED, sid, ok, reason|nil]
 *   [REPLY, sid, from, value]   [CAST, sid, server, value]
 *   [SEND, sid, server, value]  [CALL, sid, ref, server, request, timeout]
 *   [MONITOR, sid, ref, server] [DEMONITOR, sid, ref]
 *   [TIMER, sid, ref, ms, msg]  [CANCEL, sid, ref]
 *   [LOG, sid, level, text]
 *
 * Refs a worker makes (calls, monitors, timers) carry WLINK_REF_BIT and the
 * worker's number, so they never meet the daemon's own (next_ref) nor, but
 * for a worker started a million workers later, another live worker's.
 */
#ifndef GSD_WLINK_H
#define GSD_WLINK_H

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum wlink_op {
    WL_HOST = 1,
    WL_RUN,
    WL_END,
    WL_GONE,
    WL_UPGRADE,
    WL_SWITCH,
    WL_RESULT = 16,
    WL_ENDED,
    WL_PREPARED,
    WL_REPLY,
    WL_CAST,
    WL_SEND,
    WL_CALL,
    WL_MONITOR,
    WL_DEMONITOR,
    WL_TIMER,
    WL_CANCEL,
    WL_LOG,
};

/* A RESULT's flags: gs_result's booleans (WL_CONTINUE only where the
 * result is allowed and goes on: result_continues). */
enum wlink_result_flag {
    WL_HAS_REPLY = 1,
    WL_HIBERNATE = 2,
    WL_CONTINUE = 4,
    WL_TIMEOUT_MSG = 8,
    WL_TIMEOUT_AT = 16,
};

/* An integer as msgpack's shortest form, at p; returns the end (at most 9
 * bytes; it may write 8 past p + 1, so leave that much room). The link's frames are built with it a
 * few writes at a time, not an item per write, and read on the reader's fast paths (small ints). */
static inline uint8_t *wlink_put_int(uint8_t *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    int n;
    if (v >= -32 && v < 128) {
        *p = (uint8_t)v; /* a positive or negative fixint */
        return p + 1;
    } else if (v < 0) {
        *p = 0xd3, n = 8;
    } else if (u < 1u << 8) {
        *p = 0xcc, n = 1;
    } else if (u < 1u << 16) {
        *p = 0xcd, n = 2;
    } else if (u < 1ull << 32) {
        *p = 0xce, n = 4;
    } else {
        *p = 0xcf, n = 8;
    }
    u = htobe64(u << (64 - 8 * n)); /* its n low bytes, big-endian, first in memory */
    memcpy(p + 1, &u, 8);           /* the bytes past n are written over after */
    return p + 1 + n;
}

/* The head of a RUN frame, all but its value: one write of at most
 * WLINK_RUN_HEAD bytes for the frame the daemon sends most, where packing
 * it item by item took seven. Returns its length. */
#define WLINK_RUN_HEAD 39
static inline size_t wlink_run_head(uint8_t p[WLINK_RUN_HEAD], uint64_t sid, uint8_t kind,
                                    uint64_t from, int64_t deadline, uint64_t tref)
{
    uint8_t *q = p;
    *q++ = 0x97;   /* an array of 7 */
    *q++ = WL_RUN; /* a positive fixint, as kind */
    q = wlink_put_int(q, (int64_t)sid);
    *q++ = kind;
    q = wlink_put_int(q, (int64_t)from);
    q = wlink_put_int(q, deadline);
    q = wlink_put_int(q, (int64_t)tref);
    return (size_t)(q - p);
}

/* Refs stay below 2^53, where every client (JSON's numbers included) reads
 * them exactly; the daemon's own count from 1 and never get near. */
#define WLINK_REF_BIT (1ull << 52)
/* A worker's n-th ref: its number in bits 32-51, n below. */
static inline uint64_t wlink_ref(uint64_t worker_no, uint32_t n)
{
    return WLINK_REF_BIT | (worker_no & 0xfffffu) << 32 | n;
}

/* The page a worker shares with the daemon: what it runs now, written
 * before and after each callback, read by the daemon only once the worker
 * has died (to name the callback that killed it). cb: enum callback. */
struct wlink_mark {
    volatile uint64_t sid;
    volatile uint32_t cb;
};

/* The file descriptors a worker is started with. */
enum { WLINK_FD_SOCK = 3, WLINK_FD_MARK = 4 };

#endif /* GSD_WLINK_H */
