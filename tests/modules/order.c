/*
 * order — a deliberately slow sink that checks the order of what it gets.
 *
 * args: nil, or {"work_us": n}: each cast busies the loop that long.
 *
 *   cast ["seq", client, n]   client 0-63; n must be the client's last n + 1
 *                             (its first is 0), else it counts as out of order
 *   call "report"             -> [handled, out_of_order]
 */
#include <gsd/module.h>
#include <stdlib.h>
#include <time.h>

#define ORDER_CLIENTS 64

struct order {
    int64_t work_us;
    uint64_t handled, bad;
    int64_t next[ORDER_CLIENTS];
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static gs_result order_init(gs_server *self, const gs_value *args, void **state)
{
    (void)self;
    struct order *o = calloc(1, sizeof *o);
    if (o == NULL)
        return gs_stop(gs_str("enomem"));
    gs_get_int(gs_map_get(args, "work_us"), &o->work_us);
    *state = o;
    return gs_ok();
}

static gs_result order_cast(gs_server *self, const gs_value *req, void **state)
{
    (void)self;
    struct order *o = *state;
    int64_t client, n;
    if (!gs_is_tuple(req, "seq", 3) || !gs_get_int(gs_at(req, 1), &client) ||
        !gs_get_int(gs_at(req, 2), &n) || client < 0 || client >= ORDER_CLIENTS)
        return gs_noreply();
    if (n != o->next[client])
        o->bad++;
    o->next[client] = n + 1;
    o->handled++;
    for (int64_t end = now_us() + o->work_us; now_us() < end;)
        ;
    return gs_noreply();
}

static gs_result order_call(gs_server *self, const gs_value *req, gs_from from, void **state)
{
    (void)from;
    struct order *o = *state;
    if (!gs_is(req, "report"))
        return gs_reply(gs_nil());
    gs_value *r = gs_scratch_array(self, 2);
    r[0] = gs_uint(o->handled);
    r[1] = gs_uint(o->bad);
    return gs_reply(gs_array(r, 2));
}

static void order_terminate(gs_server *self, const gs_value *reason, void **state)
{
    (void)self, (void)reason;
    free(*state);
}

GS_MODULE(.name = "order", .vsn = 1, .init = order_init, .handle_cast = order_cast,
          .handle_call = order_call, .terminate = order_terminate);
