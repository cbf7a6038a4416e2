/*
 * minimal — a module with init and nothing else, to test the defaults:
 * a call stops it with "undef_handle_call", a cast with
 * "undef_handle_cast", messages are ignored, get_state is unsupported.
 */
#include <gsd/module.h>

static gs_result minimal_init(gs_server *self, const gs_value *args, void **state)
{
    (void)self;
    (void)args;
    *state = NULL;
    return gs_ok();
}

GS_MODULE(.name = "minimal", .vsn = 1, .init = minimal_init);
