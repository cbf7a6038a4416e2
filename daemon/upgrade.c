/* upgrade.c — hot code upgrade: every server of a module moves to the new
 * code, its state converted by the new code's code_change, or none does.
 *
 * It runs between two messages by construction: the loop runs one callback
 * at a time and a reload arrives from a socket, so no callback of the
 * module is on the stack. It is never started half-way: code_change builds
 * each new state beside the old one, and only once every server has agreed
 * are the servers switched and the old states freed. If one refuses, the
 * new states built so far are freed and nothing else has changed. */
#include "gsd.h"

#include <stdlib.h>

#define SELF(s) ((gs_server *)(s))

struct moving {
    struct module *from;
    struct server **s;
    void **state; /* the state each will have on the new code */
    size_t n, cap;
};

static void collect(struct server *s, void *arg)
{
    struct moving *mv = arg;
    if (s->mod != mv->from || s->status == SERVER_ENDED || mv->n == mv->cap)
        return;
    mv->s[mv->n] = s;
    mv->state[mv->n++] = s->state;
}

/* Asks the new code for s's new state; false with the reason if refused.
 * New code without code_change takes the state as it is: only if its
 * layout is the old code's (else it would read one layout as another). */
static bool convert(struct server *s, struct module *to, void **state, struct gsp_span *reason)
{
    if (s->status == SERVER_STARTING)
        return true; /* init has not run: it will, in the new code */
    gs_result r;
    gs_value vsns[3];
    if (to->desc->code_change) {
        gs_value extra = gs_nil();
        running_enter(s, CB_CODE_CHANGE);
        r = to->desc->code_change(SELF(s), s->mod->desc->vsn, state, &extra);
        running_leave();
    } else if (module_state_vsn(s->mod) == module_state_vsn(to)) {
        return true;
    } else {
        vsns[0] = gs_str("no_code_change");
        vsns[1] = gs_uint(s->mod->desc->vsn);
        vsns[2] = gs_uint(to->desc->vsn);
        r = gs_error(gs_array(vsns, 3));
    }
    if (r.action == GS_OK)
        return true;
    gs_value why = r.action == GS_ERROR ? r.reason : gs_str("bad_return_value");
    gs_value instead = gs_str("reason_too_large");
    *reason = server_encode(s, &why, "reason_too_large");
    if (!value_fits(reason->ptr, reason->len, GSP_WRAP_ERROR_MAP))
        *reason = server_encode(s, &instead, "reason_too_large");
    *state = s->state; /* whatever it built, it freed; the old state stays */
    return false;
}

struct server *server_upgrade(struct module *from, struct module *to, unsigned *moved,
                              struct gsp_span *reason)
{
    struct server *failed = NULL;
    size_t cap = from->servers;
    struct moving mv = {from, xcalloc(cap + 1, sizeof *mv.s), xcalloc(cap + 1, sizeof *mv.state), 0,
                        cap};
    *moved = 0;
    registry_foreach(false, collect, &mv);
    size_t done = 0;
    while (done < mv.n && convert(mv.s[done], to, &mv.state[done], reason))
        done++;
    if (done < mv.n) {
        failed = mv.s[done]; /* the caller names it: ending it is for another loop turn */
        for (size_t i = 0; i < done; i++)
            if (mv.state[i] != mv.s[i]->state) {
                running_enter(mv.s[i], CB_FREE_STATE);
                to->desc->free_state(SELF(mv.s[i]), to->desc->vsn, mv.state[i]);
                running_leave();
            }
    } else {
        for (size_t i = 0; i < mv.n; i++) {
            struct server *s = mv.s[i];
            void *old = s->state;
            s->state = mv.state[i];
            s->mod = to;
            from->servers--;
            to->servers++;
            if (old != s->state) {
                running_enter(s, CB_FREE_STATE);
                to->desc->free_state(SELF(s), from->desc->vsn, old);
                running_leave();
            }
        }
        *moved = (unsigned)mv.n;
    }
    free(mv.s);
    free(mv.state);
    return failed;
}
