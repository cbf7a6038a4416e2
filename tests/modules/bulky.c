/*
 * bulky — a server whose state is as many bytes as its args say (an
 * integer; each byte written, so that all of them are resident), which
 * format_state shows whole as one bin: a state as large as a test wants,
 * for get_state over the message limits.
 */
#include <gsd/module.h>
#include <stdlib.h>
#include <string.h>

struct bulky {
    uint32_t size;
    char bytes[];
};

static gs_result bulky_init(gs_server *self, const gs_value *args, void **state)
{
    int64_t n;
    struct bulky *b;

    (void)self;
    if (!gs_get_int(args, &n) || n < 0 || n > UINT32_MAX)
        return gs_stop(gs_str("badarg"));
    if ((b = malloc(sizeof *b + (size_t)n)) == NULL)
        return gs_stop(gs_str("enomem"));
    b->size = (uint32_t)n;
    memset(b->bytes, 'x', b->size);
    *state = b;
    return gs_ok();
}

static void bulky_terminate(gs_server *self, const gs_value *reason, void **state)
{
    (void)self, (void)reason;
    free(*state);
    *state = NULL;
}

static gs_value bulky_format_state(gs_server *self, void *state)
{
    struct bulky *b = state;
    gs_value v;

    (void)self;
    v.type = MSGPACK_OBJECT_BIN;
    v.via.bin.size = b->size;
    v.via.bin.ptr = b->bytes;
    return v;
}

GS_MODULE(.name = "bulky", .vsn = 1, .init = bulky_init, .terminate = bulky_terminate,
          .format_state = bulky_format_state);
