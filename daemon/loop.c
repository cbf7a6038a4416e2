/* loop.c — the one event loop. */
#include "gsd.h"

struct event_base *loop_base;
bool shutting_down;

void loop_init(void)
{
    struct event_config *cfg = event_config_new();
    /* One thread: no locks. */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    loop_base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (loop_base == NULL) {
        log_msg(LOG_ERR, "cannot create the event loop");
        abort();
    }
}

void loop_free(void)
{
    if (loop_base)
        event_base_free(loop_base);
    loop_base = NULL;
}

void loop_arm(struct event *ev, int64_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    event_add(ev, &tv);
}
