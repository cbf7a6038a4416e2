/*
 * e2e.h — what the end-to-end suites (check_e2e_*.c) share: a real gsd on
 * a throwaway socket, spoken to through libgsclient and, where bytes
 * matter, a raw socket.
 *
 * Each test starts its own daemon with the checked fixture e2e_setup /
 * e2e_teardown, and checks at the end that it still exits 0 on SIGTERM.
 * The helpers below act on that daemon (D) through its client (C), and
 * fail the current test as the harness's do.
 */
#ifndef GSD_TESTS_E2E_H
#define GSD_TESTS_E2E_H

#include "harness.h"

extern struct gsd *D; /* this test's daemon */
extern gsc *C;        /* a client of it */

/* The fixture: starts D and connects C; closes C and stops D, which must
 * exit 0. */
void e2e_setup(void);
void e2e_teardown(void);

/* A file in the daemon's directory, for terminate logs. */
const char *path(const char *name);

/* Starts a probe (a forms) server named name (NULL: anonymous), logging
 * its terminate reasons to the file log in the daemon's directory (NULL:
 * none). Returns its id. */
uint64_t probe(const char *name, const char *log);
uint64_t forms(const char *name, const char *log);

/* whereis name: the id, or nil. */
const msgpack_object *whereis(const char *name);
bool registered(const char *name);

/* info on a server, and whether its status is the one given. */
const msgpack_object *info(const char *server);
bool status_is(const char *server, const char *status);

/* The terminate log's lines, blanks squeezed out. */
const char *tlog(const char *name);

/* cast, send and stop, each wanting the answer nil. */
void cast(const char *server, const msgpack_object *req);
void send_msg(const char *server, const msgpack_object *msg);
void stop(const char *server, const msgpack_object *reason);

/* Asserts that m is the error response [1, msgid, [code, _], nil]. */
#define CK_ERR_RESP(m, id, code)                                                                   \
    do {                                                                                           \
        const msgpack_object *m_ = (m);                                                            \
        ck_assert_msg(                                                                             \
            mp_eq(mp_item(m_, 0), "1") && mp_eq(mp_item(m_, 1), "%u", (uint64_t)(id)) &&           \
                mp_eq(mp_item(mp_item(m_, 2), 0), "%s", (code)) && mp_eq(mp_item(m_, 3), "nil"),   \
            "wanted an error response %s to msgid %d, got %s", (code), (int)(id), mp_str(m_));     \
    } while (0)

/* Asserts that m is the notification [2, "error", [code, _]]. */
#define CK_ERR_NOTE(m, code)                                                                       \
    do {                                                                                           \
        const msgpack_object *m_ = (m);                                                            \
        ck_assert_msg(mp_eq(mp_item(m_, 0), "2") && mp_eq(mp_item(m_, 1), "'error'") &&            \
                          mp_eq(mp_item(mp_item(m_, 2), 0), "%s", (code)),                         \
                      "wanted an error notification %s, got %s", (code), mp_str(m_));              \
    } while (0)

/* A request a peer that is not an admin makes, and what it must get: "ok",
 * or an error code. */
struct as_nobody {
    const char *method, *params, *want;
};
/* Makes each request in order, from a child running as uid and gid nobody
 * on a connection of its own to D (its socket opened to that user); fails
 * the test naming the first that did not get what it wanted. */
void as_nobody(const struct as_nobody *reqs, size_t n);

/* The ping that proves a raw connection still works: no other message first. */
void raw_ping_ok(struct raw *r, uint32_t msgid);

#endif /* GSD_TESTS_E2E_H */
