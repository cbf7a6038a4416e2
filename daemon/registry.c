/* registry.c — every live server, by id and by name. */
#include "gsd.h"

#include <stdlib.h>

static struct server *by_id, *by_name;
static uint64_t last_id;

uint64_t registry_next_id(void)
{
    return ++last_id;
}

void registry_add(struct server *s)
{
    HASH_ADD(hh_id, by_id, id, sizeof s->id, s);
    if (s->name)
        HASH_ADD_KEYPTR(hh_name, by_name, s->name, strlen(s->name), s);
}

void registry_remove(struct server *s)
{
    HASH_DELETE(hh_id, by_id, s);
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
    struct server *s;
    HASH_FIND(hh_name, by_name, name, len, s);
    return s;
}

unsigned registry_count(void)
{
    return HASH_CNT(hh_id, by_id);
}

static int by_id_order(struct server *a, struct server *b)
{
    return a->id < b->id ? -1 : a->id > b->id;
}

void registry_foreach(bool reverse, void (*fn)(struct server *s, void *arg), void *arg)
{
    /* Keep start order without a second index: the table is kept sorted by
     * id (ids only grow, so sorting is cheap after the first time). Take a
     * snapshot so fn may end servers. */
    HASH_SRT(hh_id, by_id, by_id_order);
    unsigned n = registry_count(), i = 0;
    struct server **all = xmalloc(n * sizeof *all), *s, *tmp;
    HASH_ITER(hh_id, by_id, s, tmp) {
        server_ref(s);
        all[i++] = s;
    }
    for (i = 0; i < n; i++) {
        struct server *x = all[reverse ? n - 1 - i : i];
        if (x->status != SERVER_ENDED)
            fn(x, arg);
    }
    for (i = 0; i < n; i++)
        server_unref(all[i]);
    free(all);
}
