/* main.c — flags and the configuration file, start-up, reloads on SIGHUP
 * and an orderly shutdown. */
#include "gsd.h"

#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: gsd [-s PATH] [-M DIR[:DIR...]] [-c FILE] [-t] [-v] [-V] [-h]\n"
               "  -s PATH   socket (default: the file's, $GSD_SOCKET, /run/gsd/gsd.sock for\n"
               "            root, else $XDG_RUNTIME_DIR/gsd.sock or /tmp/gsd-$UID/gsd.sock)\n"
               "  -M DIRS   module directories, colon-separated (default: the file's, or\n"
               "            " GSD_MODULE_DIR ")\n"
               "  -c FILE   configuration file (default " GSD_CONFIG_FILE ", if it exists)\n"
               "  -t        check the configuration file and exit: 0 good, 2 with its\n"
               "            FILE:LINE errors on stderr (starts nothing, makes no socket)\n"
               "  -v        log debug lines too\n"
               "  -V, --version  print the version and exit\n"
               "  -h        this help\n"
               "Flags override the file. Runs in the foreground, logs to stderr. SIGHUP\n"
               "re-reads the file (one with errors is refused). SIGTERM or SIGINT stops\n"
               "every server once its mailbox is handled (terminate gets \"shutdown\"),\n"
               "removes the socket, exits 0; a second one does not wait.\n"
               "Exit status: 1 cannot listen, 2 bad flags or a bad configuration file.\n");
}

/* What the command line said: it overrides the file, reloads included. */
static struct {
    const char *config, *socket, *dirs;
    bool debug, test;
} flags;
static struct config cfg; /* the file in force */

/* Applies what a reload can change; the socket only changes at a restart. */
static void apply(const struct config *c, const struct config *old)
{
    log_level = flags.debug ? LOG_DEBUG : c->log_level;
    limits = c->limits;
    slow_callback_ms = c->slow_callback_ms;
    intensity_default = c->intensity;
    worker_configure(&c->workers, c->isolate, c->nisolate);
    auth_set(c->admin_uids, c->nadmin_uids, c->admin_gids, c->nadmin_gids);
    module_set_dirs(flags.dirs ? flags.dirs : c->module_dirs ? c->module_dirs : GSD_MODULE_DIR);
    if (old && !flags.socket &&
        ((old->socket == NULL) != (c->socket == NULL) ||
         (c->socket && strcmp(old->socket, c->socket) != 0)))
        log_msg(LOG_WARN, "%s: socket.path changes at the next start", flags.config);
    if (old && (old->socket_mode != c->socket_mode || old->socket_group != c->socket_group))
        log_msg(LOG_WARN, "%s: socket.mode and socket.group change at the next start",
                flags.config);
    if (old && ((old->metrics_listen == NULL) != (c->metrics_listen == NULL) ||
                (c->metrics_listen && strcmp(old->metrics_listen, c->metrics_listen) != 0)))
        log_msg(LOG_WARN, "%s: metrics.listen changes at the next start", flags.config);
    if (old && !dist_reload(&old->dist, &c->dist))
        log_msg(LOG_WARN, "%s: distribution (but tick_ms) changes at the next start", flags.config);
    supervise_configure(c->servers, c->nservers);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig, (void)what, (void)arg;
    if (shutting_down)
        return;
    struct config next;
    char err[512];
    log_msg(LOG_INFO, "SIGHUP: reading %s", flags.config); /* it must exist now */
    notify_watchdog();
    if (config_load(flags.config, true, &next, err, sizeof err) < 0) {
        log_flush(); /* every bad line counted, however many */
        log_msg(LOG_ERR, "%s has errors: refused, the running configuration stays", flags.config);
        return;
    }
    apply(&next, &cfg);
    config_free(&cfg);
    cfg = next;
    log_msg(LOG_INFO, "%s applied: %zu servers declared, %u running", flags.config, cfg.nservers,
            registry_count());
    notify_watchdog();
    conn_flush_all();
}

static void ready(void *arg)
{
    (void)arg;
    notify_ready();
}

/* The signal only schedules this; it runs on the loop like everything. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what, (void)arg;
    if (shutting_down) {
        log_msg(LOG_INFO, "%s again: not waiting for the mailboxes", strsignal((int)sig));
        shutdown_now();
        return;
    }
    notify_stopping();
    if (limits.shutdown_ms)
        log_msg(LOG_INFO,
                "%s: stopping %u servers, each once its mailbox is handled (%u ms in all)",
                strsignal((int)sig), registry_count(), limits.shutdown_ms);
    else
        log_msg(LOG_INFO, "%s: stopping %u servers, each once its mailbox is handled",
                strsignal((int)sig), registry_count());
    shutdown_begin();
    conn_flush_all();
}

/* A descriptor 0-2 the daemon was started without would be the next it
 * opens (its socket, a module's file), and log lines or a module's printf
 * would go there: /dev/null stands in. */
static void fill_std_fds(void)
{
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0)
            _exit(1);
}

static int run(int argc, char **argv)
{
    limits_init();
    /* Buffers of a MiB and more (a large message, a slow reader's output)
     * are mapped on their own, so that freeing one gives it back to the
     * system at once: glibc's adaptive threshold would keep them in the
     * heap after the first, and the memory budget would not bound RSS. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    static const struct option longopts[] = {
        {"version", no_argument, NULL, 'V'}, {"help", no_argument, NULL, 'h'}, {0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "s:M:c:tvVh", longopts, NULL)) != -1) {
        switch (opt) {
        case 's':
            flags.socket = optarg;
            break;
        case 'M':
            flags.dirs = optarg;
            break;
        case 'c':
            flags.config = optarg;
            break;
        case 't':
            flags.test = true;
            break;
        case 'v':
            flags.debug = true;
            log_level = LOG_DEBUG;
            break;
        case 'V':
            printf("gsd %s\n", GSD_VERSION); /* the version method's "version" */
            return 0;
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
    /* A missing default file means the defaults; a missing -c file is an error. */
    bool must_exist = flags.config != NULL;
    if (flags.config == NULL)
        flags.config = GSD_CONFIG_FILE;
    char err[512], path[108];
    if (config_load(flags.config, must_exist, &cfg, err, sizeof err) < 0) {
        log_flush(); /* every bad line counted, however many */
        fprintf(stderr, "gsd: %s: %s\n", flags.config,
                flags.test ? "configuration has errors"
                           : "refusing to start on a bad configuration file");
        return 2;
    }
    if (gsp_socket_path(flags.socket ? flags.socket : cfg.socket, path, sizeof path) < 0) {
        fprintf(stderr, "gsd: socket path too long\n");
        config_free(&cfg);
        return 2;
    }
    if (flags.test) { /* nginx -t: the file is good; nothing starts */
        printf("gsd: %s: configuration ok (%zu servers declared, socket %s)\n", flags.config,
               cfg.nservers, path);
        config_free(&cfg);
        return 0;
    }
    stats_init();
    metrics_init();
    signal(SIGPIPE, SIG_IGN);
    loop_init();
    sched_init();
    /* Caught before the socket accepts: whoever sees it answer may signal. */
    struct event *sigs[] = {
        loop_event(LOOP_PRIO_OWN, SIGTERM, EV_SIGNAL | EV_PERSIST, on_signal, NULL),
        loop_event(LOOP_PRIO_OWN, SIGINT, EV_SIGNAL | EV_PERSIST, on_signal, NULL),
        loop_event(LOOP_PRIO_OWN, SIGHUP, EV_SIGNAL | EV_PERSIST, on_hup, NULL)};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        event_add(sigs[i], NULL);
    notify_init();
    listen_set_access(cfg.socket_mode, cfg.socket_group);
    int rc = listen_open(path) < 0 ? 1 : 0;
    if (rc == 0 && cfg.metrics_listen && metrics_http_open(cfg.metrics_listen) < 0) {
        listen_close(); /* logged: a start error, as the socket's own */
        rc = 1;
    }
    if (rc == 0 && cfg.dist.node && dist_start(&cfg.dist) < 0) {
        listen_close(); /* logged, as the socket's own */
        metrics_http_close();
        rc = 1;
    }
    if (rc == 0) {
        log_msg(LOG_INFO, "gsd %s listening on %s, configuration %s%s", GSD_VERSION, path,
                flags.config,
                must_exist || access(flags.config, F_OK) == 0 ? "" : " (absent: defaults)");
        supervise_on_ready(ready, NULL); /* READY=1 once every declared server runs */
        apply(&cfg, NULL);               /* declared servers start in file order */
        event_base_dispatch(loop_base);
        listen_close();
        metrics_http_close();
        dist_stop();
        conn_close_all();
    }
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        event_free(sigs[i]);
    shutdown_free();
    notify_free();
    slowlog_free();
    supervise_free();
    auth_free();
    config_free(&cfg);
    worker_free_all();
    sched_free();
    scratch_free();
    module_unload_all();
    loop_free();
    if (rc == 0)
        log_msg(LOG_INFO, "stopped");
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--worker") == 0)
        return worker_main(argc, argv);
    fill_std_fds(); /* first: the handlers' line goes to descriptor 2 */
    fault_init();
    worker_init();
    int rc = run(argc, argv);
    fault_exiting(); /* every return of run is an orderly end, whatever its status */
    return rc;
}
