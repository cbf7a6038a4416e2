/*
 * top.h — `gsctl top`: a live view of a daemon's busiest servers, like
 * top(1).
 *
 * Every interval it asks the daemon for `stats`, `which` and an `info` of
 * each server (pipelined on the one connection), and shows the daemon's
 * figures on top and one row per server below: messages handled per
 * second since the last look, mailbox length and high-water mark, slow
 * callbacks, restarts, status. On a terminal the screen is redrawn in
 * place (plain ANSI escapes, the alternate screen) and keys act at once:
 *
 *     m  sort by messages per second (the default)   b  by mailbox length
 *     s  by slow callbacks    r  by restarts    i  by id    n  by name
 *     q  quit (so do Ctrl-C and SIGTERM)
 *
 * The terminal is restored however top ends. When stdout is not a
 * terminal, top looks twice, one interval apart, prints one snapshot as
 * plain text and exits.
 */
#ifndef GSD_CLIENT_TOP_H
#define GSD_CLIENT_TOP_H

#include "gsclient.h"

#include <stdbool.h>

/* Runs top on c until q, a signal, or (plain) after one snapshot; rows:
 * the most servers shown in plain output (0: every one). Returns gsctl's
 * exit status: 0, 1 the daemon answered an error, 3 the connection broke. */
int top_run(gsc *c, int interval_ms, int rows);

#endif /* GSD_CLIENT_TOP_H */
