/*
 * gsctl.c — the command line of gsd: one command per protocol method.
 *
 *     gsctl [-s PATH] [-t MS] [--pretty] COMMAND ARGS...
 *
 * Values (REQUEST, ARGS, MSG, REASON) are JSON; text that is not JSON is a
 * string. The result is one line of JSON on stdout. Exit status: 0 success,
 * 1 the daemon answered an error (stderr: "CODE: detail"), 2 usage error,
 * 3 cannot connect or the connection broke.
 */
#include "gsclient.h"
#include "gsp.h"
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

enum { EXIT_DAEMON = 1, EXIT_USAGE = 2, EXIT_CONN = 3 };

#define MAX_ARGS 3 /* positional arguments any command takes */

/* What the command line asked for. */
struct ctx {
    const char *socket;        /* -s, or NULL for the usual resolution */
    int timeout_ms;            /* -t: -1 infinity, 0 none given */
    bool timeout_given;        /* -t was given */
    unsigned json;             /* JSON_MP_PRETTY or 0 */
    gsc *c;                    /* the connection */
    msgpack_zone zone;         /* arguments parsed from the command line */
    const char *arg[MAX_ARGS]; /* positional arguments */
    int nargs;
    msgpack_object options; /* start: the options map, or nil */
};

struct command {
    const char *name;
    const char *synopsis; /* arguments, for usage */
    const char *help;     /* what it does */
    int min, max;         /* positional arguments */
    int (*run)(struct ctx *x, gsc_reply **out);
};

static const char *progname = "gsctl";

__attribute__((noreturn, format(printf, 2, 3))) static void usage_error(const struct command *cmd,
                                                                        const char *fmt, ...);

/* ---- the commands ------------------------------------------------------- */

/* A value argument: JSON, or the text as a string. */
static msgpack_object value_arg(struct ctx *x, const char *text)
{
    msgpack_object o;
    if (!json_mp_arg(text, &x->zone, &o))
        usage_error(NULL, "a number in %s is out of range (64-bit integers, doubles)", text);
    return o;
}

static int run_ping(struct ctx *x, gsc_reply **out)
{
    return gsc_ping(x->c, out);
}

static int run_version(struct ctx *x, gsc_reply **out)
{
    return gsc_version(x->c, out);
}

static int run_call(struct ctx *x, gsc_reply **out)
{
    msgpack_object req = value_arg(x, x->arg[1]);
    return gsc_call(x->c, x->arg[0], &req, x->timeout_ms, out);
}

static int run_cast(struct ctx *x, gsc_reply **out)
{
    msgpack_object req = value_arg(x, x->arg[1]);
    return gsc_cast(x->c, x->arg[0], &req, out);
}

static int run_send(struct ctx *x, gsc_reply **out)
{
    msgpack_object msg = value_arg(x, x->arg[1]);
    return gsc_send(x->c, x->arg[0], &msg, out);
}

static int run_start(struct ctx *x, gsc_reply **out)
{
    const char *name = x->nargs >= 2 && strcmp(x->arg[1], "-") != 0 ? x->arg[1] : NULL;
    msgpack_object args;
    if (x->nargs >= 3)
        args = value_arg(x, x->arg[2]);
    return gsc_start(x->c, x->arg[0], name, x->nargs >= 3 ? &args : NULL,
                     x->options.type == MSGPACK_OBJECT_NIL ? NULL : &x->options, out);
}

static int run_stop(struct ctx *x, gsc_reply **out)
{
    msgpack_object reason;
    if (x->nargs >= 2)
        reason = value_arg(x, x->arg[1]);
    return gsc_stop(x->c, x->arg[0], x->nargs >= 2 ? &reason : NULL, x->timeout_ms, out);
}

static int run_whereis(struct ctx *x, gsc_reply **out)
{
    return gsc_whereis(x->c, x->arg[0], out);
}

static int run_list(struct ctx *x, gsc_reply **out)
{
    return gsc_which(x->c, out);
}

static int run_info(struct ctx *x, gsc_reply **out)
{
    return gsc_info(x->c, x->arg[0], out);
}

static int run_state(struct ctx *x, gsc_reply **out)
{
    return gsc_get_state(x->c, x->arg[0], out);
}

static int run_modules(struct ctx *x, gsc_reply **out)
{
    return gsc_modules(x->c, out);
}

static int run_load(struct ctx *x, gsc_reply **out)
{
    return gsc_load(x->c, x->arg[0], out);
}

static int run_reload(struct ctx *x, gsc_reply **out)
{
    return gsc_reload(x->c, x->arg[0], out);
}

static int run_monitor(struct ctx *x, gsc_reply **out)
{
    return gsc_monitor(x->c, x->arg[0], out);
}

/* Reads a decimal uint64: the whole text, nothing else. */
static bool parse_u64(const char *s, uint64_t *v)
{
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long long n = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *v = n;
    return true;
}

static int run_demonitor(struct ctx *x, gsc_reply **out)
{
    uint64_t ref = 0;
    parse_u64(x->arg[0], &ref); /* checked in parse_args */
    return gsc_demonitor(x->c, ref, out);
}

static const struct command commands[] = {
    {"ping", "", "checks that the daemon answers: prints \"pong\"", 0, 0, run_ping},
    {"version", "", "the daemon's version and protocol", 0, 0, run_version},
    {"call", "SERVER REQUEST", "calls a server and prints its reply (-t: timeout)", 2, 2, run_call},
    {"cast", "SERVER REQUEST", "casts a request to a server (no reply)", 2, 2, run_cast},
    {"send", "SERVER MSG", "sends a raw message, handled by handle_info", 2, 2, run_send},
    {"start", "[OPTIONS] MODULE [NAME|-] [ARGS]",
     "starts a server and prints its id; NAME - or omitted: anonymous\n"
     "  --link                 stop it when this connection closes (i.e. when gsctl exits)\n"
     "  --timeout MS           time allowed for init\n"
     "  --restart permanent|transient|temporary\n"
     "  --mailbox-limit N      mailbox length limit",
     1, 3, run_start},
    {"stop", "SERVER [REASON]", "stops a server (reason default \"normal\"; -t: timeout)", 1, 2,
     run_stop},
    {"whereis", "NAME", "the id registered under NAME, or null", 1, 1, run_whereis},
    {"list", "", "every running server", 0, 0, run_list},
    {"info", "SERVER", "a server's id, name, module, status and mailbox length", 1, 1, run_info},
    {"state", "SERVER", "a server's state, as its module shows it", 1, 1, run_state},
    {"modules", "", "the loaded modules", 0, 0, run_modules},
    {"load", "MODULE", "loads a module from the module directories", 1, 1, run_load},
    {"reload", "MODULE", "reloads a module, upgrading its running servers", 1, 1, run_reload},
    {"monitor", "SERVER",
     "monitors a server, waits for it to end and prints the down event\n"
     "  as {\"ref\":..,\"id\":..,\"name\":..,\"reason\":..} (-t: give up after MS)",
     1, 1, run_monitor},
    {"demonitor", "REF", "removes a monitor (of this connection)", 1, 1, run_demonitor},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* ---- usage -------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: %s [-s PATH] [-t MS] [--pretty] COMMAND ARGS...\n"
        "\n"
        "  -s, --socket PATH   the daemon's socket (default: $GSD_SOCKET, else the per-user one)\n"
        "  -t, --timeout MS    call/stop timeout in ms, or \"infinity\"; how long monitor waits\n"
        "                      (default: 5000 for call; as long as terminate takes for stop;\n"
        "                      forever for monitor)\n"
        "  -p, --pretty        indented JSON output\n"
        "  -h, --help          this help; COMMAND -h: help on one command\n"
        "\n"
        "commands:\n",
        progname);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].synopsis);
    fprintf(f, "\n"
               "SERVER: all digits is an id, anything else a name. REQUEST, ARGS, MSG and\n"
               "REASON are JSON; text that is not JSON is a string (call c get sends \"get\").\n"
               "Put -- before a value that starts with --.\n"
               "Exit: 0 ok, 1 the daemon answered an error, 2 usage, 3 connection failed.\n");
}

static void command_usage(FILE *f, const struct command *cmd)
{
    fprintf(f, "usage: %s [-s PATH] [-t MS] %s %s\n  %s\n", progname, cmd->name, cmd->synopsis,
            cmd->help);
}

/* Complains about the command line and exits 2. */
__attribute__((noreturn, format(printf, 2, 3))) static void usage_error(const struct command *cmd,
                                                                        const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", progname);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (cmd)
        command_usage(stderr, cmd);
    else
        usage(stderr);
    exit(EXIT_USAGE);
}

/* ---- arguments ---------------------------------------------------------- */

/* Reads -t's value: ms, or "infinity" (also -1) for no limit. */
static bool parse_timeout(const char *s, int *ms)
{
    uint64_t v;
    if (strcmp(s, "infinity") == 0 || strcmp(s, "-1") == 0) {
        *ms = -1;
        return true;
    }
    if (!parse_u64(s, &v) || v == 0 || v > INT_MAX)
        return false; /* 0 would mean "the daemon's default" to the library */
    *ms = (int)v;
    return true;
}

/* Adds one entry to the start options map. */
static void add_option(struct ctx *x, const char *key, msgpack_object val)
{
    msgpack_object *m = &x->options;
    uint32_t n = m->type == MSGPACK_OBJECT_MAP ? m->via.map.size : 0;
    msgpack_object_kv *kv = msgpack_zone_malloc(&x->zone, (n + 1) * sizeof *kv);
    if (kv == NULL)
        abort(); /* out of memory ends the process */
    if (n)
        memcpy(kv, m->via.map.ptr, n * sizeof *kv);
    kv[n].key.type = MSGPACK_OBJECT_STR;
    kv[n].key.via.str.ptr = key;
    kv[n].key.via.str.size = (uint32_t)strlen(key);
    kv[n].val = val;
    m->type = MSGPACK_OBJECT_MAP;
    m->via.map.ptr = kv;
    m->via.map.size = n + 1;
}

/* A start flag; returns how many argv entries it used. */
static int start_flag(struct ctx *x, const struct command *cmd, int argc, char **argv, int i)
{
    const char *flag = argv[i];
    const char *eq = strchr(flag, '=');
    size_t len = eq ? (size_t)(eq - flag) : strlen(flag);
    msgpack_object v = {.type = MSGPACK_OBJECT_NIL};
    int used = 1;
    bool takes_value = !(len == 6 && memcmp(flag, "--link", 6) == 0);
    const char *val = NULL;
    if (takes_value) {
        if (eq)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[i + 1], used = 2;
        else
            usage_error(cmd, "%.*s needs a value", (int)len, flag);
    } else if (eq) {
        usage_error(cmd, "--link takes no value");
    }
    uint64_t n;
    if (len == 6 && memcmp(flag, "--link", 6) == 0) {
        v.type = MSGPACK_OBJECT_BOOLEAN;
        v.via.boolean = true;
        add_option(x, "link", v);
    } else if (len == 9 && memcmp(flag, "--timeout", 9) == 0) {
        if (!parse_u64(val, &n))
            usage_error(cmd, "--timeout wants ms, not \"%s\"", val);
        v.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        v.via.u64 = n;
        add_option(x, "timeout", v);
    } else if (len == 9 && memcmp(flag, "--restart", 9) == 0) {
        if (strcmp(val, "permanent") && strcmp(val, "transient") && strcmp(val, "temporary"))
            usage_error(cmd, "--restart is permanent, transient or temporary, not \"%s\"", val);
        v.type = MSGPACK_OBJECT_STR;
        v.via.str.ptr = val;
        v.via.str.size = (uint32_t)strlen(val);
        add_option(x, "restart", v);
    } else if (len == 15 && memcmp(flag, "--mailbox-limit", 15) == 0) {
        if (!parse_u64(val, &n))
            usage_error(cmd, "--mailbox-limit wants a count, not \"%s\"", val);
        v.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        v.via.u64 = n;
        add_option(x, "mailbox_limit", v);
    } else {
        usage_error(cmd, "unknown option %.*s", (int)len, flag);
    }
    return used;
}

/* Sorts a command's arguments into flags and positional arguments. Only
 * "-h"/"--help", "--" and (for start) its flags are options: "-5" and
 * other text starting with one '-' are values. */
static void parse_args(struct ctx *x, const struct command *cmd, int argc, char **argv)
{
    bool opts = true;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (opts && strcmp(a, "--") == 0) {
            opts = false;
            continue;
        }
        if (opts && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
            command_usage(stdout, cmd);
            exit(0);
        }
        if (opts && strncmp(a, "--", 2) == 0) {
            if (cmd->run != run_start)
                usage_error(cmd, "unknown option %s", a);
            i += start_flag(x, cmd, argc, argv, i) - 1;
            continue;
        }
        if (x->nargs >= cmd->max)
            usage_error(cmd, "too many arguments");
        x->arg[x->nargs++] = a;
    }
    if (x->nargs < cmd->min)
        usage_error(cmd, "missing arguments");
    uint64_t ref;
    if (cmd->run == run_demonitor && !parse_u64(x->arg[0], &ref))
        usage_error(cmd, "REF is a number, not \"%s\"", x->arg[0]);
    for (int i = 0; i < x->nargs; i++)
        value_arg(x, x->arg[i]); /* a bad value is a usage error before connecting */
}

/* ---- output ------------------------------------------------------------- */

/* Prints a value as one line of JSON on stdout. */
static int print_json(struct ctx *x, const msgpack_object *v)
{
    json_mp_print(stdout, v, x->json);
    putchar('\n');
    if (fflush(stdout) != 0) {
        fprintf(stderr, "%s: writing the result: %s\n", progname, strerror(errno));
        return EXIT_FAILURE;
    }
    return 0;
}

/* Prints a daemon error as "CODE: detail" on stderr. */
static void print_error(const gsc_reply *r)
{
    fprintf(stderr, "%s: ", r->code);
    if (r->detail.type == MSGPACK_OBJECT_STR)
        fwrite(r->detail.via.str.ptr, 1, r->detail.via.str.size, stderr);
    else
        json_mp_print(stderr, &r->detail, 0);
    fputc('\n', stderr);
}

/* Turns a request's outcome into output and an exit status. */
static int finish(struct ctx *x, int status, gsc_reply *r)
{
    if (status == GSC_OK)
        return print_json(x, &r->result);
    if (status == GSC_ERROR) {
        print_error(r);
        return EXIT_DAEMON;
    }
    fprintf(stderr, "%s: %s\n", progname, gsc_errmsg(x->c));
    return EXIT_CONN;
}

/* monitor: after the ref, waits for its down event and prints it. */
static int wait_down(struct ctx *x, uint64_t ref)
{
    int wait_ms = x->timeout_given ? x->timeout_ms : -1;
    for (;;) {
        gsc_down *d;
        int status = gsc_next_down(x->c, wait_ms, &d);
        if (status == GSC_ERROR) {
            fprintf(stderr, "timeout: no down event within %d ms\n", wait_ms);
            return EXIT_DAEMON;
        }
        if (status != GSC_OK) {
            fprintf(stderr, "%s: %s\n", progname, gsc_errmsg(x->c));
            return EXIT_CONN;
        }
        if (d->ref != ref) {
            gsc_down_destroy(&d); /* not ours (there is only one, but be sure) */
            continue;
        }
        msgpack_object_kv kv[4] = {
            {.key = {.type = MSGPACK_OBJECT_STR, .via.str = {3, "ref"}},
             .val = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = d->ref}},
            {.key = {.type = MSGPACK_OBJECT_STR, .via.str = {2, "id"}},
             .val = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = d->id}},
            {.key = {.type = MSGPACK_OBJECT_STR, .via.str = {4, "name"}}, .val = d->name},
            {.key = {.type = MSGPACK_OBJECT_STR, .via.str = {6, "reason"}}, .val = d->reason},
        };
        msgpack_object event = {.type = MSGPACK_OBJECT_MAP, .via.map = {4, kv}};
        int rc = print_json(x, &event);
        gsc_down_destroy(&d);
        return rc;
    }
}

/* ---- main --------------------------------------------------------------- */

/* A closed stdin, stdout or stderr would be taken by the socket, and the
 * result written into it: hold them open on /dev/null first. */
static void hold_std_fds(void)
{
    int fd;
    while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2)
        ;
    if (fd > 2)
        close(fd);
}

int main(int argc, char **argv)
{
    hold_std_fds();
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},
        {"timeout", required_argument, NULL, 't'},
        {"pretty", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct ctx x = {.options = {.type = MSGPACK_OBJECT_NIL}};
    int ch;
    /* "+": stop at the command, so its arguments (say "-5") stay its own. */
    while ((ch = getopt_long(argc, argv, "+s:t:ph", longopts, NULL)) != -1) {
        switch (ch) {
        case 's':
            x.socket = optarg;
            break;
        case 't':
            if (!parse_timeout(optarg, &x.timeout_ms))
                usage_error(NULL, "-t wants ms (at least 1) or \"infinity\", not \"%s\"",
                            optarg);
            x.timeout_given = true;
            break;
        case 'p':
            x.json = JSON_MP_PRETTY;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        usage_error(NULL, "no command");
    const char *name = argv[optind++];
    const struct command *cmd = NULL;
    for (size_t i = 0; i < NCOMMANDS && cmd == NULL; i++)
        if (strcmp(commands[i].name, name) == 0)
            cmd = &commands[i];
    if (strcmp(name, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (cmd == NULL)
        usage_error(NULL, "unknown command \"%s\"", name);

    if (!msgpack_zone_init(&x.zone, MSGPACK_ZONE_CHUNK_SIZE))
        abort();
    parse_args(&x, cmd, argc - optind, argv + optind);

    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    if (gsp_socket_path(x.socket, path, sizeof path) < 0) {
        fprintf(stderr, "%s: socket path too long\n", progname);
        msgpack_zone_destroy(&x.zone);
        return EXIT_CONN;
    }
    x.c = gsc_connect(path);
    if (x.c == NULL) {
        fprintf(stderr, "%s: connect %s: %s\n", progname, path, strerror(errno));
        msgpack_zone_destroy(&x.zone);
        return EXIT_CONN;
    }

    gsc_reply *r = NULL;
    int status = cmd->run(&x, &r);
    int rc;
    if (cmd->run == run_monitor && status == GSC_OK) {
        uint64_t ref = r->result.type == MSGPACK_OBJECT_POSITIVE_INTEGER ? r->result.via.u64 : 0;
        rc = wait_down(&x, ref);
    } else {
        rc = finish(&x, status, r);
    }
    gsc_reply_destroy(&r);
    gsc_close(&x.c);
    msgpack_zone_destroy(&x.zone);
    return rc;
}
