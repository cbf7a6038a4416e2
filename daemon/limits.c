/* limits.c — the defaults of every configurable limit. */
#include "gsd.h"

struct limits limits = {
    .message = {GSP_MAX_SIZE_DEFAULT, GSP_MAX_DEPTH_DEFAULT},
    .connections = 4096,
    .pending = 65536,
    .timers = 65536,
    .mailbox = 100000,
    .mailbox_bytes = 64u << 20,
    .partial_bytes = 256u << 20,
    .partial_ms = 30000,
    .output_bytes = 64u << 20,
    .shutdown_ms = 5000,
    .monitors = 65536,
    .slowlog_len = 128,
    .slowlog_message_bytes = 256,
};

void limits_init(void)
{
    limits.memory = budget_default();
}
