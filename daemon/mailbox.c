/* mailbox.c — a server's queue of encoded messages, with its counters and
 * the connections held up until it has room. */
#include "gsd.h"

#include <stdlib.h>
#include <string.h>

/* Messages with up to SMALL bytes of data take a block of one size, and
 * freed blocks are kept (up to SPARE_MAX) for the next ones. */
#define SMALL (128 - sizeof(struct msg))
#define SPARE_MAX 4096
static struct msg *spare;
static unsigned nspare;

struct msg *msg_new(enum msg_kind kind, uint64_t waiter, const void *data, size_t len)
{
    struct msg *m;
    if (len <= SMALL && spare) {
        m = spare;
        spare = STAILQ_NEXT(m, link);
        nspare--;
    } else
        m = xmalloc(sizeof *m + (len <= SMALL ? SMALL : len));
    budget_charge(sizeof *m + len);
    m->kind = kind;
    m->waiter = waiter;
    m->len = (uint32_t)len;
    if (len)
        memcpy(m->data, data, len);
    return m;
}

void msg_free(struct msg *m)
{
    budget_release(sizeof *m + m->len);
    if (m->len <= SMALL && nspare < SPARE_MAX) {
        STAILQ_NEXT(m, link) = spare;
        spare = m;
        nspare++;
    } else
        free(m);
}

void mailbox_init(struct mailbox *mb)
{
    memset(mb, 0, sizeof *mb);
    STAILQ_INIT(&mb->q);
    TAILQ_INIT(&mb->blocked);
    mb->limit = limits.mailbox;
}

bool mailbox_full(const struct mailbox *mb)
{
    return (mb->limit && mb->len >= mb->limit) ||
           (limits.mailbox_bytes && mb->bytes >= limits.mailbox_bytes);
}

/* Half the limit: room for a burst, so connections do not flap on and off
 * with every message. */
static bool has_room(const struct mailbox *mb)
{
    return (!mb->limit || mb->len <= mb->limit / 2) &&
           (!limits.mailbox_bytes || mb->bytes <= limits.mailbox_bytes / 2);
}

static void unblock_all(struct mailbox *mb)
{
    struct conn *c;
    while ((c = TAILQ_FIRST(&mb->blocked)) != NULL)
        conn_unblock(c);
}

static void counted(struct mailbox *mb, const struct msg *m)
{
    mb->len++;
    mb->bytes += m->len;
    if (mb->len > mb->len_high)
        mb->len_high = mb->len;
    if (mb->bytes > mb->bytes_high)
        mb->bytes_high = mb->bytes;
}

void mailbox_put(struct mailbox *mb, struct msg *m)
{
    STAILQ_INSERT_TAIL(&mb->q, m, link);
    counted(mb, m);
}

void mailbox_put_first(struct mailbox *mb, struct msg *m)
{
    STAILQ_INSERT_HEAD(&mb->q, m, link);
    counted(mb, m);
}

void mailbox_pass(struct mailbox *mb, const struct msg *m)
{
    if (mb->len_high == 0)
        mb->len_high = 1;
    if (m->len > mb->bytes_high)
        mb->bytes_high = m->len;
}

struct msg *mailbox_take(struct mailbox *mb)
{
    struct msg *m = STAILQ_FIRST(&mb->q);
    if (m == NULL)
        return NULL;
    STAILQ_REMOVE_HEAD(&mb->q, link);
    mb->len--;
    mb->bytes -= m->len;
    if (!TAILQ_EMPTY(&mb->blocked) && has_room(mb))
        unblock_all(mb);
    return m;
}

void mailbox_clear(struct mailbox *mb)
{
    struct msg *m;
    while ((m = mailbox_take(mb)) != NULL)
        msg_free(m);
    unblock_all(mb);
}
