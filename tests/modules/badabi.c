/*
 * badabi — a module built for another ABI: the daemon must refuse it
 * (load and start answer "module"). The descriptor is written by hand,
 * as GS_MODULE would, but with the wrong abi.
 */
#include <gsd/module.h>

static gs_result badabi_init(gs_server *self, const gs_value *args, void **state)
{
    (void)self;
    (void)args;
    *state = NULL;
    return gs_ok();
}

__attribute__((visibility("hidden"))) const struct gs_api *gs_host;
__attribute__((visibility("default"))) const gs_module gs_module_info = {
    .abi = GS_ABI_VERSION + 1,
    .size = sizeof(gs_module),
    .api = &gs_host,
    .name = "badabi",
    .vsn = 1,
    .init = badabi_init,
};
