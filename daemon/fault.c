/* fault.c — what a crash in module code leaves behind: one line naming
 * the module, the server and the callback. */
#include "gsd.h"

const char *const callback_names[CB_COUNT] = {
    [CB_NONE] = "-",
    [CB_INIT] = "init",
    [CB_HANDLE_CALL] = "handle_call",
    [CB_HANDLE_CAST] = "handle_cast",
    [CB_HANDLE_INFO] = "handle_info",
    [CB_TERMINATE] = "terminate",
    [CB_FORMAT_STATE] = "format_state",
    [CB_CODE_CHANGE] = "code_change",
    [CB_HIBERNATE] = "hibernate",
    [CB_FREE_STATE] = "free_state",
};

volatile struct running running;
