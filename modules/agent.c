/*
 * agent — a named worker with a memory and an inbox of tasks.
 *
 * args: the agent's name as a string, or a map {"name": str, "memory": map}
 * whose "memory" (optional) is what the agent starts out remembering.
 *
 *   cast ["remember", key, value]          memory[key] = value
 *   call ["recall", key]                   -> memory[key], or nil
 *   cast ["send_task", action, params]     queue the task {"id": "task-N",
 *                                          "action": action, "params": params}
 *   call "inbox_count"                     -> tasks queued
 *   call "process_next"                    -> ["empty", nil], or
 *                                             ["ok", task, result]
 *   call "state"                           -> {"name", "status", "memory",
 *                                              "inbox", "processed_count"}
 *
 * process_next takes the oldest task. Its result is ["ok", "Search results
 * for: " + params.query] for action "search", ["ok", "Analysis of: " +
 * params.data] for "analyze" (["error", ["bad_params", params]] if that
 * field is not a string), ["error", ["unknown_action", action]] otherwise;
 * it is remembered under "last_result". Tasks run inside the call, so the
 * agent is never busy between messages and "status" is always "idle".
 * A call it does not know answers ["error", ["unknown_call", request]];
 * other casts are logged and dropped. get_state shows what "state" does.
 */
#include <gsd/module.h>
#include <stdio.h>
#include <stdlib.h>

struct agent_fact {
    gs_value *key;   /* owned copy */
    gs_value *value; /* owned copy */
};

struct agent {
    gs_value *name;            /* owned copy of the name string */
    struct agent_fact *memory; /* in the order first remembered */
    uint32_t nmemory;          /* facts in use */
    uint32_t memory_cap;       /* facts allocated */
    gs_value **inbox;          /* owned tasks, oldest first */
    uint32_t ninbox;           /* tasks queued */
    uint32_t inbox_cap;        /* tasks allocated */
    uint64_t processed;        /* tasks processed */
    uint64_t next_task;        /* number of the next task id */
};

/* items, grown if full to hold n + 1 of size bytes; NULL if out of memory. */
static void *agent_grow(void *items, uint32_t n, uint32_t *cap, size_t size)
{
    uint32_t grown = *cap ? 2 * *cap : 8;

    if (n < *cap)
        return items;
    if ((items = realloc(items, grown * size)) != NULL)
        *cap = grown;
    return items;
}

/* Remembers a copy of value under key, replacing what key held. */
static int agent_remember(struct agent *a, const gs_value *key, const gs_value *value)
{
    struct agent_fact *f;

    for (f = a->memory; f < a->memory + a->nmemory; f++)
        if (gs_value_equal(f->key, key))
            break;
    if (f == a->memory + a->nmemory) {
        if ((f = agent_grow(a->memory, a->nmemory, &a->memory_cap, sizeof *f)) == NULL)
            return -1;
        a->memory = f;
        f = &a->memory[a->nmemory++];
        f->key = gs_value_copy(key);
    } else {
        gs_value_free(f->value);
    }
    f->value = gs_value_copy(value);
    return 0;
}

static const gs_value *agent_recall(const struct agent *a, const gs_value *key)
{
    for (uint32_t i = 0; i < a->nmemory; i++)
        if (gs_value_equal(a->memory[i].key, key))
            return a->memory[i].value;
    return NULL;
}

static void agent_free(struct agent *a)
{
    for (uint32_t i = 0; i < a->nmemory; i++) {
        gs_value_free(a->memory[i].key);
        gs_value_free(a->memory[i].value);
    }
    for (uint32_t i = 0; i < a->ninbox; i++)
        gs_value_free(a->inbox[i]);
    gs_value_free(a->name);
    free(a->memory);
    free(a->inbox);
    free(a);
}

/* ["ok", prefix + params[field]], or ["error", ["bad_params", params]]. */
static gs_value agent_run(gs_server *self, const char *prefix, const gs_value *params,
                          const char *field)
{
    const gs_value *arg = gs_map_get(params, field);
    size_t n = strlen(prefix);
    char *text;

    if (arg == NULL || arg->type != MSGPACK_OBJECT_STR)
        return gs_error_reply(self, "bad_params", *params);
    text = gs_scratch_alloc(self, n + arg->via.str.size);
    memcpy(text, prefix, n);
    memcpy(text + n, arg->via.str.ptr, arg->via.str.size);
    return gs_tuple(self, 2, gs_str("ok"), gs_strn(text, (uint32_t)(n + arg->via.str.size)));
}

/* What doing task gives, in the scratch arena. */
static gs_value agent_result(gs_server *self, const gs_value *task)
{
    const gs_value *action = gs_map_get(task, "action");
    const gs_value *params = gs_map_get(task, "params");

    if (gs_is(action, "search"))
        return agent_run(self, "Search results for: ", params, "query");
    if (gs_is(action, "analyze"))
        return agent_run(self, "Analysis of: ", params, "data");
    return gs_error_reply(self, "unknown_action", *action);
}

/* The "state" map, in the scratch arena over our own copies. */
static gs_value agent_state(gs_server *self, const struct agent *a)
{
    gs_pair *memory = gs_scratch_pairs(self, a->nmemory);
    gs_pair *state = gs_scratch_pairs(self, 5);

    for (uint32_t i = 0; i < a->nmemory; i++) {
        memory[i].key = *a->memory[i].key;
        memory[i].val = *a->memory[i].value;
    }
    state[0].key = gs_str("name");
    state[0].val = *a->name;
    state[1].key = gs_str("status");
    state[1].val = gs_str("idle");
    state[2].key = gs_str("memory");
    state[2].val = gs_map(memory, a->nmemory);
    state[3].key = gs_str("inbox");
    state[3].val = gs_uint(a->ninbox);
    state[4].key = gs_str("processed_count");
    state[4].val = gs_uint(a->processed);
    return gs_map(state, 5);
}

static gs_result agent_init(gs_server *self, const gs_value *args, void **state)
{
    const gs_value *name = args, *memory = NULL;
    struct agent *a;

    if (args->type == MSGPACK_OBJECT_MAP) {
        name = gs_map_get(args, "name");
        memory = gs_map_get(args, "memory");
    }
    if (name == NULL || name->type != MSGPACK_OBJECT_STR ||
        !(gs_is_nil(memory) || memory->type == MSGPACK_OBJECT_MAP))
        return gs_stop(gs_tuple(self, 2, gs_str("badarg"), *args));
    if ((a = calloc(1, sizeof *a)) == NULL)
        return gs_stop(gs_str("enomem"));
    a->name = gs_value_copy(name);
    a->next_task = 1;
    for (uint32_t i = 0; !gs_is_nil(memory) && i < memory->via.map.size; i++) {
        if (agent_remember(a, &memory->via.map.ptr[i].key, &memory->via.map.ptr[i].val) != 0) {
            agent_free(a); /* terminate will not run after a failed init */
            return gs_stop(gs_str("enomem"));
        }
    }
    *state = a;
    return gs_ok();
}

static gs_result agent_call(gs_server *self, const gs_value *request, gs_from from, void **state)
{
    struct agent *a = *state;

    (void)from;
    if (gs_is_tuple(request, "recall", 2)) {
        const gs_value *value = agent_recall(a, gs_at(request, 1));
        return gs_reply(value ? *value : gs_nil());
    }
    if (gs_is(request, "inbox_count"))
        return gs_reply(gs_uint(a->ninbox));
    if (gs_is(request, "state"))
        return gs_reply(agent_state(self, a));
    if (gs_is(request, "process_next")) {
        if (a->ninbox == 0)
            return gs_reply(gs_tuple(self, 2, gs_str("empty"), gs_nil()));
        /* The daemon reads the reply after we return: the task goes in it
         * as a copy in the scratch arena, and is freed now. */
        gs_value *taken = a->inbox[0];
        gs_value task = gs_scratch_copy(self, taken);
        gs_value_free(taken);
        memmove(a->inbox, a->inbox + 1, --a->ninbox * sizeof *a->inbox);
        gs_value result = agent_result(self, &task);
        gs_value key = gs_str("last_result");
        if (agent_remember(a, &key, &result) != 0)
            return gs_stop(gs_str("enomem"));
        a->processed++;

        gs_value *reply = gs_scratch_array(self, 3);
        reply[0] = gs_str("ok");
        reply[1] = task;
        reply[2] = result;
        return gs_reply(gs_array(reply, 3));
    }
    return gs_reply(gs_error_reply(self, "unknown_call", *request));
}

static gs_result agent_cast(gs_server *self, const gs_value *request, void **state)
{
    struct agent *a = *state;

    if (gs_is_tuple(request, "remember", 3)) {
        if (agent_remember(a, gs_at(request, 1), gs_at(request, 2)) != 0)
            return gs_stop(gs_str("enomem"));
    } else if (gs_is_tuple(request, "send_task", 3)) {
        gs_value **inbox = agent_grow(a->inbox, a->ninbox, &a->inbox_cap, sizeof *inbox);
        char id[32];
        if (inbox == NULL)
            return gs_stop(gs_str("enomem"));
        a->inbox = inbox;
        snprintf(id, sizeof id, "task-%llu", (unsigned long long)a->next_task++);
        /* Built on our stack: fine, since what we keep is a copy. */
        gs_pair task[3] = {
            {gs_str("id"), gs_str(id)},
            {gs_str("action"), *gs_at(request, 1)},
            {gs_str("params"), *gs_at(request, 2)},
        };
        gs_value value = gs_map(task, 3);
        a->inbox[a->ninbox++] = gs_value_copy(&value);
    } else {
        gs_log(self, GS_LOG_WARNING, "unknown cast ignored");
    }
    return gs_noreply();
}

static void agent_terminate(gs_server *self, const gs_value *reason, void **state)
{
    (void)self;
    (void)reason;
    agent_free(*state);
    *state = NULL;
}

static gs_value agent_format_state(gs_server *self, void *state)
{
    return agent_state(self, state);
}

GS_MODULE(.name = "agent", .vsn = 1, .init = agent_init, .handle_call = agent_call,
          .handle_cast = agent_cast, .terminate = agent_terminate,
          .format_state = agent_format_state);
