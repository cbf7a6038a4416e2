/* main.c — flags, start-up and an orderly shutdown. */
#include "gsd.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: gsd [-s PATH] [-M DIR[:DIR...]] [-c FILE] [-v] [-h]\n"
               "  -s PATH   socket (default: $GSD_SOCKET, /run/gsd/gsd.sock for root,\n"
               "            else $XDG_RUNTIME_DIR/gsd.sock or /tmp/gsd-$UID/gsd.sock)\n"
               "  -M DIRS   module directories, colon-separated (default " GSD_MODULE_DIR ")\n"
               "  -c FILE   configuration file\n"
               "  -v        log debug lines too\n"
               "  -h        this help\n"
               "Runs in the foreground, logs to stderr. SIGTERM or SIGINT stops every\n"
               "server (terminate gets \"shutdown\"), removes the socket and exits 0.\n");
}

static void end_one(struct server *s, void *arg)
{
    (void)arg;
    server_end(s, enc_shutdown, NULL);
    scratch_reset();
}

/* The signal only schedules this; it runs on the loop like everything. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what, (void)arg;
    if (shutting_down)
        return;
    shutting_down = true;
    notify_stopping();
    log_msg(LOG_INFO, "%s: stopping %u servers", strsignal((int)sig), registry_count());
    registry_foreach(true, end_one, NULL); /* the last started stops first */
    conn_flush_all();
    event_base_loopbreak(loop_base);
}

int main(int argc, char **argv)
{
    const char *sock_flag = NULL, *dirs = NULL, *config = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "s:M:c:vh")) != -1) {
        switch (opt) {
        case 's':
            sock_flag = optarg;
            break;
        case 'M':
            dirs = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'v':
            log_level = LOG_DEBUG;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (config) {
        fprintf(stderr, "gsd: -c %s: configuration files are not supported by this build\n",
                config);
        return 2;
    }
    char path[108];
    if (gsp_socket_path(sock_flag, path, sizeof path) < 0) {
        fprintf(stderr, "gsd: socket path too long\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    loop_init();
    sched_init();
    notify_init();
    module_set_dirs(dirs ? dirs : GSD_MODULE_DIR);
    if (listen_open(path) < 0)
        return 1;
    struct event *term = evsignal_new(loop_base, SIGTERM, on_signal, NULL);
    struct event *intr = evsignal_new(loop_base, SIGINT, on_signal, NULL);
    event_add(term, NULL);
    event_add(intr, NULL);
    log_msg(LOG_INFO, "gsd %s serving, modules from %s", GSD_VERSION, dirs ? dirs : GSD_MODULE_DIR);
    notify_ready();

    event_base_dispatch(loop_base);

    listen_close();
    conn_close_all();
    event_free(term);
    event_free(intr);
    notify_free();
    sched_free();
    scratch_free();
    module_unload_all();
    loop_free();
    log_msg(LOG_INFO, "stopped");
    return 0;
}
