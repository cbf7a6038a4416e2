/*
 * fuzz_request.c — libFuzzer target for the daemon's whole request path:
 * the input is what a client writes on its connection; it goes through
 * conn.c's framing, method.c's dispatch, the servers' mailboxes and the
 * reference modules (loaded from FUZZ_MODULES), and the responses are
 * read back and dropped. Every input ends with its connection closed and
 * every server stopped, so each run starts from an empty daemon.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gsd.h"

#ifndef FUZZ_MODULES
#define FUZZ_MODULES "build-fuzz/fuzz-modules"
#endif

static void end_one(struct server *s, void *arg)
{
    (void)arg;
    server_end(s, enc_shutdown, NULL);
    scratch_reset();
}

/* A few loop turns: enough for every message queued to be handled. */
static void turns(int fd, int n)
{
    char sink[65536];
    for (int i = 0; i < n; i++) {
        event_base_loop(loop_base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        while (read(fd, sink, sizeof sink) > 0)
            ;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    signal(SIGPIPE, SIG_IGN);
    log_level = LOG_ERR - 1; /* quiet: the fuzzer's own output matters */
    loop_init();
    sched_init();
    const char *dirs = getenv("FUZZ_MODULES");
    module_set_dirs(dirs ? dirs : FUZZ_MODULES);
    limits.message.max_size = 1 << 16;
    workers_enabled = false; /* a worker would be this fuzzer run again */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    conn_new(sv[0]);
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(sv[1], data + off, size - off);
        if (w > 0)
            off += (size_t)w;
        else if (w < 0 && errno != EAGAIN)
            break;
        turns(sv[1], 4);
    }
    turns(sv[1], 16);
    close(sv[1]);
    turns(-1, 4);
    conn_close_all();
    registry_foreach(true, end_one, NULL);
    turns(-1, 4);
    return 0;
}
