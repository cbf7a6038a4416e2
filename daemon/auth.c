/* auth.c — who is an admin peer: root, the daemon's own uid, and the
 * uids and groups the configuration names. */
#include "gsd.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static uid_t *uids;
static size_t nuids;
static gid_t *gids;
static size_t ngids;

void auth_set(const uid_t *admin_uids, size_t n_uids, const gid_t *admin_gids, size_t n_gids)
{
    free(uids);
    free(gids);
    uids = xmalloc(n_uids * sizeof *uids + 1);
    gids = xmalloc(n_gids * sizeof *gids + 1);
    if (n_uids)
        memcpy(uids, admin_uids, n_uids * sizeof *uids);
    if (n_gids)
        memcpy(gids, admin_gids, n_gids * sizeof *gids);
    nuids = n_uids;
    ngids = n_gids;
}

void auth_free(void)
{
    free(uids);
    free(gids);
    uids = NULL;
    gids = NULL;
    nuids = ngids = 0;
}

static bool admin_gid(gid_t g)
{
    for (size_t i = 0; i < ngids; i++)
        if (gids[i] == g)
            return true;
    return false;
}

/* The peer's supplementary groups come from the socket too (SO_PEERGROUPS,
 * Linux 4.13): no lookup in the user database on the loop. */
static bool admin_groups(int fd)
{
#ifdef SO_PEERGROUPS
    gid_t groups[256];
    socklen_t len = sizeof groups;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
        return false;
    for (size_t i = 0; i < len / sizeof groups[0]; i++)
        if (admin_gid(groups[i]))
            return true;
#else
    (void)fd;
#endif
    return false;
}

bool auth_admin(int fd, uid_t uid, gid_t gid)
{
    if (uid == 0 || uid == geteuid())
        return true;
    for (size_t i = 0; i < nuids; i++)
        if (uids[i] == uid)
            return true;
    return ngids && (admin_gid(gid) || admin_groups(fd));
}
