/* registry.c — every live server, by id and by name. */
#include "gsd.h"

#include <stdlib.h>
#include <string.h>

static struct server *by_id, *by_name;
static TAILQ_HEAD(, server) in_order = TAILQ_HEAD_INITIALIZER(in_order); /* start order */
static uint64_t last_id;
/* The server last found by name: most calls name the one the call before
 * named. Forgotten when it leaves the registry. */
static struct server *last_found;
static size_t last_found_len;

uint64_t registry_next_id(void)
{
    return ++last_id;
}

void registry_add(struct server *s)
{
    HASH_ADD(hh_id, by_id, id, sizeof s->id, s);
    TAILQ_INSERT_TAIL(&in_order, s, reg_link);
    if (s->name)
        HASH_ADD_KEYPTR(hh_name, by_name, s->name, strlen(s->name), s);
}

void registry_remove(struct server *s)
{
    if (s == last_found)
        last_found = NULL;
    HASH_DELETE(hh_id, by_id, s);
    TAILQ_REMOVE(&in_order, s, reg_link);
    if (s->name)
        HASH_DELETE(hh_name, by_name, s);
}

struct server *registry_by_id(uint64_t id)
{
    struct server *s;
    HASH_FIND(hh_id, by_id, &id, sizeof id, s);
    return s;
}

struct server *registry_by_name(const char *name, size_t len)
{
    struct server *s = last_found;
    if (s && len == last_found_len && memcmp(s->name, name, len) == 0)
        return s;
    HASH_FIND(hh_name, by_name, name, len, s);
    if (s) {
        last_found = s;
        last_found_len = len;
    }
    return s;
}

unsigned registry_count(void)
{
    return HASH_CNT(hh_id, by_id);
}

void registry_foreach(bool reverse, void (*fn)(struct server *s, void *arg), void *arg)
{
    /* A snapshot, so that fn may end servers (they are freed only once the
     * loop gets back control: sched_reap). */
    unsigned n = registry_count(), i = 0;
    struct server **all = xmalloc(n * sizeof *all), *s;
    TAILQ_FOREACH(s, &in_order, reg_link)
    all[i++] = s;
    for (i = 0; i < n; i++) {
        struct server *x = all[reverse ? n - 1 - i : i];
        if (x->status != SERVER_ENDED)
            fn(x, arg);
    }
    free(all);
}
