/* stats.c — the operator's view: `stats`, the daemon's figures and counts
 * since start, and `clients`, one map per connection. */
#include "gsd.h"

#include <stdio.h>
#include <unistd.h>

struct counters counters;
static int64_t started_ms;

void stats_init(void)
{
    started_ms = now_ms();
}

uint64_t stats_rss(void)
{
    unsigned long long size, rss;
    FILE *f = fopen("/proc/self/statm", "re");
    int n = f ? fscanf(f, "%llu %llu", &size, &rss) : 0;
    if (f)
        fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return n == 2 && page > 0 ? (uint64_t)rss * (uint64_t)page : 0;
}

static void kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    gsp_pack_str(pk, k);
    msgpack_pack_uint64(pk, v);
}

static void kv_bool(msgpack_packer *pk, const char *k, bool v)
{
    gsp_pack_str(pk, k);
    if (v)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

void stats_pack(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 17);
    gsp_pack_str(pk, "version");
    gsp_pack_str(pk, GSD_VERSION);
    kv_u64(pk, "pid", (uint64_t)getpid());
    kv_u64(pk, "uptime_ms", (uint64_t)(now_ms() - started_ms));
    kv_u64(pk, "servers", registry_count());
    kv_u64(pk, "connections", conn_count());
    kv_u64(pk, "workers", worker_count());
    kv_u64(pk, "nodes", dist_hooks ? dist_hooks->count() : 0); /* distribution peers */
    gsp_pack_str(pk, "memory");
    msgpack_pack_map(pk, 3);
    kv_u64(pk, "rss", stats_rss());
    kv_u64(pk, "budget", limits.memory);
    kv_u64(pk, "used", budget_used);
    kv_u64(pk, "calls", counters.calls);
    kv_u64(pk, "casts", counters.casts);
    kv_u64(pk, "sends", counters.sends);
    kv_u64(pk, "crashes", counters.crashes);
    kv_u64(pk, "restarts", counters.restarts);
    /* Only the codes answered so far: a client must accept codes it does
     * not know, so it cannot rely on a zero for each anyway. */
    uint32_t codes = 0;
    for (int i = GSP_OK + 1; i < GSP_CODE_COUNT; i++)
        codes += gsp_errors_packed[i] != 0;
    gsp_pack_str(pk, "errors");
    msgpack_pack_map(pk, codes);
    for (int i = GSP_OK + 1; i < GSP_CODE_COUNT; i++)
        if (gsp_errors_packed[i])
            kv_u64(pk, gsp_code_name((enum gsp_code)i), gsp_errors_packed[i]);
    kv_u64(pk, "overloaded_answers", overloaded_answers);
    kv_u64(pk, "dropped_notifications", dropped_notifications);
    kv_u64(pk, "slow_threshold_ms", (uint64_t)slow_callback_ms);
}

static void count_one(struct conn *c, void *arg)
{
    (void)c;
    (*(uint32_t *)arg)++;
}

static void client_one(struct conn *c, void *arg)
{
    msgpack_packer *pk = arg;
    msgpack_pack_map(pk, 12);
    kv_u64(pk, "id", c->id);
    gsp_pack_str(pk, "pid");
    msgpack_pack_int64(pk, c->pid);
    kv_u64(pk, "uid", c->uid);
    kv_u64(pk, "gid", c->gid);
    kv_bool(pk, "admin", auth_admin(c->fd, c->uid, c->gid)); /* as configured now */
    kv_u64(pk, "age_ms", (uint64_t)(now_ms() - c->since_ms));
    kv_u64(pk, "pending", c->pending);
    kv_u64(pk, "in_bytes", c->in.len);
    kv_u64(pk, "out_bytes", c->out.len - c->out_off);
    kv_bool(pk, "held", c->blocked != NULL);
    kv_u64(pk, "links", conn_live_links(c));
    kv_u64(pk, "monitors", c->nmonitors);
}

void clients_pack(msgpack_packer *pk)
{
    uint32_t n = 0;
    conn_foreach(count_one, &n);
    msgpack_pack_array(pk, n);
    conn_foreach(client_one, pk);
}
