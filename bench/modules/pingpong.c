/*
 * pingpong — two servers casting a ball back and forth inside the daemon,
 * to measure server-to-server messages per second.
 *
 * args: nil.
 *
 *   call ["serve", peer, n]  casts ["ball", self, n] to peer (a name or
 *                            id); the reply comes once the ball has made
 *                            n round trips: [messages, nanoseconds].
 *   cast ["ball", from, k]   casts ["ball", self, k - 1] back to from,
 *                            or, at 0, ends the rally.
 *
 * A server that receives the ball and did not serve it just returns it,
 * so one "serve" drives the pair.
 */
#include <gsd/module.h>
#include <stdlib.h>
#include <time.h>

struct pingpong {
    gs_from server; /* the caller of "serve", answered at the end */
    bool serving;
    uint64_t started; /* ns */
    uint64_t messages;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static gs_result pingpong_init(gs_server *self, const gs_value *args, void **state)
{
    (void)self, (void)args;
    struct pingpong *p = calloc(1, sizeof *p);
    if (p == NULL)
        return gs_stop(gs_str("enomem"));
    *state = p;
    return gs_ok();
}

/* ["ball", self, k] to peer. */
static void hit(gs_server *self, const gs_value *peer, int64_t k)
{
    gs_value ball[3] = {gs_str("ball"), gs_uint(gs_self(self)), gs_int(k)};
    gs_cast(self, *peer, gs_array(ball, 3));
}

static gs_result pingpong_call(gs_server *self, const gs_value *request, gs_from from, void **state)
{
    struct pingpong *p = *state;
    int64_t n;
    if (!gs_is_tuple(request, "serve", 3) || !gs_get_int(gs_at(request, 2), &n) || n < 1 ||
        p->serving)
        return gs_reply(gs_str("badarg"));
    p->server = from;
    p->serving = true;
    p->messages = 0;
    p->started = now_ns();
    hit(self, gs_at(request, 1), n);
    return gs_noreply();
}

static gs_result pingpong_cast(gs_server *self, const gs_value *request, void **state)
{
    struct pingpong *p = *state;
    int64_t k;
    if (!gs_is_tuple(request, "ball", 3) || !gs_get_int(gs_at(request, 2), &k))
        return gs_noreply();
    p->messages++;
    if (!p->serving) { /* return it */
        hit(self, gs_at(request, 1), k);
        return gs_noreply();
    }
    if (k > 1) {
        hit(self, gs_at(request, 1), k - 1);
        return gs_noreply();
    }
    /* Every ball the server got was returned by the peer: twice as many
     * messages went round as the server counted. */
    gs_value *r = gs_scratch_array(self, 2);
    r[0] = gs_uint(2 * p->messages);
    r[1] = gs_uint(now_ns() - p->started);
    p->serving = false;
    gs_reply_to(self, p->server, gs_array(r, 2));
    return gs_noreply();
}

static void pingpong_terminate(gs_server *self, const gs_value *reason, void **state)
{
    (void)self, (void)reason;
    free(*state);
}

GS_MODULE(.name = "pingpong", .vsn = 1, .init = pingpong_init, .handle_call = pingpong_call,
          .handle_cast = pingpong_cast, .terminate = pingpong_terminate);
