/* remote.c — references to names on other nodes, [name, node]: read here,
 * reached through dist.c. Without distribution every node is down. */
#include "gsd.h"

#include <string.h>

#define NODE_MAX 255 /* ei's MAXNODELEN */

/* "alive@host": the alive part [A-Za-z0-9_-], the host [A-Za-z0-9._-]. */
static bool node_valid(const char *s, size_t len)
{
    const char *at = memchr(s, '@', len);
    if (len > NODE_MAX || at == NULL || at == s || at == s + len - 1)
        return false;
    for (const char *p = s; p < s + len; p++) {
        char c = *p;
        bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
        if (!(word || p == at || (p > at && c == '.')))
            return false;
    }
    return true;
}

static bool is_str(const gs_value *v)
{
    return v->type == MSGPACK_OBJECT_STR || v->type == MSGPACK_OBJECT_BIN;
}

bool remote_ref(gs_value *v, struct remote *to)
{
    if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size != 2)
        return false;
    const gs_value *name = &v->via.array.ptr[0], *node = &v->via.array.ptr[1];
    if (!is_str(name) || !is_str(node) || !gsp_name_valid(name->via.str.ptr, name->via.str.size) ||
        !node_valid(node->via.str.ptr, node->via.str.size))
        return false;
    if (dist_hooks && dist_hooks->is_self(node->via.str.ptr, node->via.str.size)) {
        *v = *name;
        return false;
    }
    *to = (struct remote){name->via.str.ptr, node->via.str.ptr, name->via.str.size,
                          node->via.str.size};
    return true;
}

static const char not_node[] = "this daemon is not a distribution node (no distribution section)";

void remote_call(const struct remote *to, struct gsp_span req, bool module, struct waiter *w)
{
    w->call = true;
    if (dist_hooks) {
        w->remote = true;
        dist_hooks->call(to, req, module, w);
    } else
        waiter_error_str(w, GSP_NODEDOWN, not_node);
}

bool remote_post(const struct remote *to, enum msg_kind kind, struct gsp_span msg, bool module,
                 struct waiter *w)
{
    if (dist_hooks)
        return dist_hooks->post(to, kind, msg, module, w);
    if (w)
        waiter_error_str(w, GSP_NODEDOWN, not_node);
    return false;
}

void remote_monitor(const struct remote *to, uint64_t mref, struct waiter *w)
{
    if (dist_hooks)
        dist_hooks->monitor(to, mref, w);
    else
        monitor_unreachable(mref, to->name, to->name_len, w, not_node);
}
