/*
 * journal — an append-only list of entries.
 *
 * args: none (ignored).
 *
 *   call ["add_entry", text]  -> every entry so far, newest first
 *
 * A call it does not know answers ["error", ["unknown_call", request]];
 * casts are logged and dropped. get_state shows the entries, newest first.
 */
#include <gsd/module.h>
#include <stdlib.h>

struct journal {
    gs_value **entries; /* owned copies, oldest first */
    uint32_t n;         /* entries in use */
    uint32_t cap;       /* entries allocated */
};

/* The entries, newest first, as an array in the scratch arena. */
static gs_value journal_entries(gs_server *self, const struct journal *j)
{
    gs_value *items = gs_scratch_array(self, j->n);

    for (uint32_t i = 0; i < j->n; i++)
        items[i] = *j->entries[j->n - 1 - i];
    return gs_array(items, j->n);
}

static gs_result journal_init(gs_server *self, const gs_value *args, void **state)
{
    (void)self;
    (void)args;
    if ((*state = calloc(1, sizeof(struct journal))) == NULL)
        return gs_stop(gs_str("enomem"));
    return gs_ok();
}

static gs_result journal_call(gs_server *self, const gs_value *request, gs_from from, void **state)
{
    struct journal *j = *state;

    (void)from;
    if (gs_is_tuple(request, "add_entry", 2)) {
        if (j->n == j->cap) {
            uint32_t cap = j->cap ? 2 * j->cap : 16;
            gs_value **entries = realloc(j->entries, cap * sizeof *entries);
            if (entries == NULL)
                return gs_stop(gs_str("enomem"));
            j->entries = entries;
            j->cap = cap;
        }
        j->entries[j->n++] = gs_value_copy(gs_at(request, 1));
        return gs_reply(journal_entries(self, j));
    }

    return gs_reply(gs_error_reply(self, "unknown_call", *request));
}

static gs_result journal_cast(gs_server *self, const gs_value *request, void **state)
{
    (void)request;
    (void)state;
    gs_log(self, GS_LOG_WARNING, "unknown cast ignored");
    return gs_noreply();
}

static void journal_terminate(gs_server *self, const gs_value *reason, void **state)
{
    struct journal *j = *state;

    (void)self;
    (void)reason;
    for (uint32_t i = 0; i < j->n; i++)
        gs_value_free(j->entries[i]);
    free(j->entries);
    free(j);
    *state = NULL;
}

static gs_value journal_format_state(gs_server *self, void *state)
{
    return journal_entries(self, state);
}

GS_MODULE(.name = "journal", .vsn = 1, .init = journal_init, .handle_call = journal_call,
          .handle_cast = journal_cast, .terminate = journal_terminate,
          .format_state = journal_format_state);
