/*
 * stack — a last-in, first-out stack of arbitrary values.
 *
 * args: the initial items as an array, top first (default []).
 *
 *   call "pop"           -> the top item, removed; nil when empty
 *   call "size"          -> how many items
 *   cast ["push", item]  item becomes the top
 *
 * A call it does not know answers ["error", ["unknown_call", request]];
 * other casts are logged and dropped. get_state shows the items, top first.
 */
#include <gsd/module.h>
#include <stdlib.h>

struct stack {
    gs_value **items; /* owned copies, bottom first: the top is items[n - 1] */
    uint32_t n;       /* items in use */
    uint32_t cap;     /* items allocated */
    gs_value *popped; /* the last pop's reply: the daemon reads it after we
                         return, so it is freed on the next pop, not at once */
};

/* Pushes an owned copy of v; -1 if out of memory. */
static int stack_push(struct stack *s, const gs_value *v)
{
    if (s->n == s->cap) {
        uint32_t cap = s->cap ? 2 * s->cap : 8;
        gs_value **items = realloc(s->items, cap * sizeof *items);
        if (items == NULL)
            return -1;
        s->items = items;
        s->cap = cap;
    }
    s->items[s->n++] = gs_value_copy(v);
    return 0;
}

/* ["error", ["unknown_call", request]], built in the scratch arena. */
static gs_value stack_unknown_call(gs_server *self, const gs_value *request)
{
    gs_value *why = gs_scratch_array(self, 2);
    gs_value *err = gs_scratch_array(self, 2);

    why[0] = gs_str("unknown_call");
    why[1] = *request;
    err[0] = gs_str("error");
    err[1] = gs_array(why, 2);
    return gs_array(err, 2);
}

static void stack_free(struct stack *s)
{
    for (uint32_t i = 0; i < s->n; i++)
        gs_value_free(s->items[i]);
    gs_value_free(s->popped);
    free(s->items);
    free(s);
}

static gs_result stack_init(gs_server *self, const gs_value *args, void **state)
{
    struct stack *s;

    if (!gs_is_nil(args) && args->type != MSGPACK_OBJECT_ARRAY) {
        gs_value *reason = gs_scratch_array(self, 2);
        reason[0] = gs_str("badarg");
        reason[1] = *args;
        return gs_stop(gs_array(reason, 2));
    }
    if ((s = calloc(1, sizeof *s)) == NULL)
        return gs_stop(gs_str("enomem"));
    /* args is top first: push from its end so its first item ends on top. */
    for (uint32_t i = gs_is_nil(args) ? 0 : args->via.array.size; i > 0; i--) {
        if (stack_push(s, gs_at(args, i - 1)) != 0) {
            stack_free(s); /* terminate will not run after a failed init */
            return gs_stop(gs_str("enomem"));
        }
    }
    *state = s;
    return gs_ok();
}

static gs_result stack_call(gs_server *self, const gs_value *request, gs_from from, void **state)
{
    struct stack *s = *state;

    (void)from;
    if (gs_is(request, "size"))
        return gs_reply(gs_uint(s->n));
    if (gs_is(request, "pop")) {
        gs_value_free(s->popped); /* the previous reply has long been sent */
        s->popped = s->n ? s->items[--s->n] : NULL;
        return gs_reply(s->popped ? *s->popped : gs_nil());
    }

    return gs_reply(stack_unknown_call(self, request));
}

static gs_result stack_cast(gs_server *self, const gs_value *request, void **state)
{
    if (!gs_is_tuple(request, "push", 2))
        gs_log(self, GS_LOG_WARNING, "unknown cast ignored");
    else if (stack_push(*state, gs_at(request, 1)) != 0)
        return gs_stop(gs_str("enomem"));
    return gs_noreply();
}

static void stack_terminate(gs_server *self, const gs_value *reason, void **state)
{
    (void)self;
    (void)reason;
    stack_free(*state);
    *state = NULL;
}

/* The items, top first, as an array in the scratch arena over our copies. */
static gs_value stack_format_state(gs_server *self, void *state)
{
    struct stack *s = state;
    gs_value *items = gs_scratch_array(self, s->n);

    for (uint32_t i = 0; i < s->n; i++)
        items[i] = *s->items[s->n - 1 - i];
    return gs_array(items, s->n);
}

GS_MODULE(.name = "stack", .vsn = 1, .init = stack_init, .handle_call = stack_call,
          .handle_cast = stack_cast, .terminate = stack_terminate,
          .format_state = stack_format_state);
