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

static void stack_free(struct stack *s)
{
    for (uint32_t i = 0; i < s->n; i++)
        gs_value_free(s->items[i]);
    free(s->items);
    free(s);
}

static gs_result stack_init(gs_server *self, const gs_value *args, void **state)
{
    struct stack *s;

    if (!gs_is_nil(args) && args->type != MSGPACK_OBJECT_ARRAY) {
        return gs_stop(gs_tuple(self, 2, gs_str("badarg"), *args));
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
        if (s->n == 0)
            return gs_reply(gs_nil());
        /* The daemon reads the reply after we return: a copy in the
         * scratch arena outlives the item, freed now. */
        gs_value *top = s->items[--s->n];
        gs_value reply = gs_scratch_copy(self, top);
        gs_value_free(top);
        return gs_reply(reply);
    }

    return gs_reply(gs_error_reply(self, "unknown_call", *request));
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
