/*
 * gsctl.c — the command line of gsd: one command per protocol method.
 *
 *     gsctl [-s PATH] [-t MS] [--pretty|--msgpack|--quiet] COMMAND ARGS...
 *     gsctl [OPTIONS] batch [FILE]
 *
 * Options may come before or after the command: after it, a word is an
 * option when it starts with '-' and a letter ("-t", "--pretty"), so "-1",
 * "[...]" and every other JSON value stay arguments; "--" ends the options.
 * Values (REQUEST, ARGS, MSG, REASON) are JSON; text that is not JSON is a
 * string, except text that starts with [, { or ", which must be JSON (a
 * usage error otherwise). The result is one line of JSON on stdout. Exit
 * status: 0 success, 1 the daemon answered an error (stderr: "CODE:
 * detail", naming the server), 2 usage error, 3 cannot connect or the
 * connection broke.
 *
 * Every command is an asynchronous request of libgsclient: one command
 * waits for its own completion; batch keeps up to BATCH_WINDOW of them in
 * flight on one connection and prints their results in input order.
 */
#include "gsclient.h"
#include "gsp.h"
#include "json.h"
#include "top.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_DAEMON = 1, EXIT_USAGE = 2, EXIT_CONN = 3 };

#define MAX_ARGS 3        /* positional arguments any command takes */
#define MAX_WORDS 64      /* words on one batch line */
#define BATCH_WINDOW 1024 /* batch requests in flight at once */
#define BATCH_READ 65536  /* bytes of input read at a time */
#define LIST_PAGE 1000    /* servers asked for at a time by list and complete servers */

enum output { OUT_JSON, OUT_PRETTY, OUT_MSGPACK, OUT_QUIET };

/* One command line (or batch line), parsed. */
struct ctx {
    const char *socket;        /* -s, or NULL for the usual resolution */
    int timeout_ms;            /* -t: -1 infinity, 0 none given */
    bool timeout_given;        /* -t was given */
    enum output output;        /* how results are printed */
    gsc *c;                    /* the connection */
    msgpack_zone *zone;        /* holds the arguments parsed */
    const char *arg[MAX_ARGS]; /* positional arguments */
    int nargs;
    msgpack_object options;         /* start: the options map, or nil */
    msgpack_object value[MAX_ARGS]; /* the positional arguments that are values, as values */
    const char *subject;            /* the server (or module) errors name, or NULL */
    bool in_batch;                  /* a batch line: -t alone of the options */
    char err[1024];                 /* a usage error, or "" */
};

/* What sets a command apart from "send one request, print its answer". */
enum {
    CMD_START_OPTS = 0x1, /* takes start's --options (start_flag) */
    CMD_REF_ARG = 0x2,    /* its argument is a monitor ref: a usage error unless a u64 */
    CMD_WAIT_DOWN = 0x4,  /* prints the down event its answer (a ref) names, not the answer */
    CMD_LOCAL = 0x8,      /* exec may answer without the daemon: tried first with x->c NULL */
    CMD_TEXT = 0x10,      /* its answer is text, printed as it is (metrics) */
};

/* Bits of command.values: which positional arguments are JSON values. */
#define VALUE(i) (1u << (i))

/* One entry of the command table. */
struct command {
    const char *name;
    const char *synopsis; /* arguments, for usage */
    const char *help;     /* what it does */
    int min, max;         /* positional arguments */
    unsigned values;      /* VALUE(i): argument i is a JSON value (REQUEST, ARGS, ...) */
    int subject;          /* 1 + the argument a daemon error names (SERVER), or 0 */
    /* Queues the request; 0 if c cannot send. NULL for a command that is
     * not one request: exec runs it. */
    uint32_t (*run)(struct ctx *x, gsc_done_fn *done, void *arg);
    /* Runs the whole command and returns the exit status (-1 from a
     * CMD_LOCAL command that needs the connection after all). */
    int (*exec)(struct ctx *x);
    unsigned flags; /* CMD_* */
};

static const char *progname = "gsctl";

__attribute__((noreturn, format(printf, 2, 3))) static void usage_error(const struct command *cmd,
                                                                        const char *fmt, ...);

/* Records a usage error in x; returns false for the caller to pass on. */
__attribute__((format(printf, 2, 3))) static bool bad(struct ctx *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err, sizeof x->err, fmt, ap);
    va_end(ap);
    return false;
}

/* ---- the commands ------------------------------------------------------- */

/* The value of positional argument i (parsed in parse_args). */
static const msgpack_object *value_arg(struct ctx *x, int i)
{
    return &x->value[i];
}

static uint32_t run_ping(struct ctx *x, gsc_done_fn *done, void *arg)
{
    return gsc_ping_async(x->c, done, arg);
}

static uint32_t run_version(struct ctx *x, gsc_done_fn *done, void *arg)
{
    return gsc_version_async(x->c, done, arg);
}

static uint32_t run_call(struct ctx *x, gsc_done_fn *done, void *arg)
{
    return gsc_call_async(x->c, x->arg[0], value_arg(x, 1), x->timeout_ms, done, arg);
}

static uint32_t run_cast(struct ctx *x, gsc_done_fn *done, void *arg)
{
    return gsc_cast_async(x->c, x->arg[0], value_arg(x, 1), done, arg);
}

static uint32_t run_send(struct ctx *x, gsc_done_fn *done, void *arg)
{
    return gsc_send_async(x->c, x->arg[0], value_arg(x, 1), done, arg);
}

static uint32_t run_start(struct ctx *x, gsc_done_fn *done, void *arg)
{
    const char *name = x->nargs >= 2 && strcmp(x->arg[1], "-") != 0 ? x->arg[1] : NULL;
    return gsc_start_async(x->c, x->arg[0], name, x->nargs >= 3 ? value_arg(x, 2) : NULL,
                           x->options.type == MSGPACK_OBJECT_NIL ? NULL : &x->options, done, arg);
}

static uint32_t run_stop(struct ctx *x, gsc_done_fn *done, void *arg)
{
    return gsc_stop_async(x->c, x->arg[0], x->nargs >= 2 ? value_arg(x, 1) : NULL, x->timeout_ms,
                          done, arg);
}

static uint32_t run_whereis(struct ctx *x, gsc_done_fn *done, void *arg)
{
    return gsc_whereis_async(x->c, x->arg[0], done, arg);
}

static uint32_t run_list(struct ctx *x, gsc_done_fn *done, void *arg)
{
    return gsc_which_async(x->c, done, arg);
}

static int run_list_pages(struct ctx *x);

static uint32_t run_info(struct ctx *x, gsc_done_fn *done, void *arg)
{
    return gsc_info_async(x->c, x->arg[0], done, arg);
}

static uint32_t run_state(struct ctx *x, gsc_done_fn *done, void *arg)
{
    return gsc_get_state_async(x->c, x->arg[0], done, arg);
}

static uint32_t run_modules(struct ctx *x, gsc_done_fn *done, void *arg)
{
    return gsc_modules_async(x->c, done, arg);
}

static uint32_t run_load(struct ctx *x, gsc_done_fn *done, void *arg)
{
    return gsc_load_async(x->c, x->arg[0], done, arg);
}

static uint32_t run_reload(struct ctx *x, gsc_done_fn *done, void *arg)
{
    return gsc_reload_async(x->c, x->arg[0], done, arg);
}

static uint32_t run_monitor(struct ctx *x, gsc_done_fn *done, void *arg)
{
    return gsc_monitor_async(x->c, x->arg[0], done, arg);
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

static uint32_t run_demonitor(struct ctx *x, gsc_done_fn *done, void *arg)
{
    uint64_t ref = 0;
    parse_u64(x->arg[0], &ref); /* checked in parse_args */
    return gsc_demonitor_async(x->c, ref, done, arg);
}

/* A method of one param, the server (restart, suspend, resume): wait_ms
 * bounds the wait (-1: as long as it takes). */
static uint32_t run_on_server(struct ctx *x, const char *method, int wait_ms, gsc_done_fn *done,
                              void *arg)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    gsc_pack_server(&pk, x->arg[0]);
    msgpack_object params;
    size_t off = 0;
    uint32_t id = 0;
    if (msgpack_unpack(sb.data, sb.size, &off, x->zone, &params) == MSGPACK_UNPACK_SUCCESS)
        id = gsc_request_async(x->c, method, &params, wait_ms, done, arg);
    msgpack_sbuffer_destroy(&sb);
    return id;
}

/* restart: as long as terminate and init take, unless -t says otherwise. */
static uint32_t run_restart(struct ctx *x, gsc_done_fn *done, void *arg)
{
    return run_on_server(x, "restart", x->timeout_given ? x->timeout_ms : -1, done, arg);
}

static uint32_t run_suspend(struct ctx *x, gsc_done_fn *done, void *arg)
{
    return run_on_server(x, "suspend", 5000, done, arg);
}

static uint32_t run_resume(struct ctx *x, gsc_done_fn *done, void *arg)
{
    return run_on_server(x, "resume", 5000, done, arg);
}

static uint32_t run_stats(struct ctx *x, gsc_done_fn *done, void *arg)
{
    return gsc_request_async(x->c, "stats", NULL, 5000, done, arg);
}

static uint32_t run_clients(struct ctx *x, gsc_done_fn *done, void *arg)
{
    return gsc_request_async(x->c, "clients", NULL, 5000, done, arg);
}

static uint32_t run_metrics(struct ctx *x, gsc_done_fn *done, void *arg)
{
    return gsc_request_async(x->c, "metrics", NULL, 5000, done, arg);
}

static uint32_t run_nodes(struct ctx *x, gsc_done_fn *done, void *arg)
{
    return gsc_request_async(x->c, "nodes", NULL, 5000, done, arg);
}

/* top [INTERVAL_MS]: top.c's live view. */
static int run_top(struct ctx *x)
{
    uint64_t ms = 1000;
    if (x->nargs >= 1 && (!parse_u64(x->arg[0], &ms) || ms < 100 || ms > 3600000)) {
        fprintf(stderr, "%s: top: the interval is ms, from 100 to 3600000\n", progname);
        return EXIT_USAGE;
    }
    return top_run(x->c, (int)ms, 0);
}

static int run_names(struct ctx *x);
static uint32_t run_slowlog(struct ctx *x, gsc_done_fn *done, void *arg);
static int run_trace(struct ctx *x);
static int run_batch_file(struct ctx *x);

static const struct command commands[] = {
    {
        .name = "ping",
        .synopsis = "",
        .help = "checks that the daemon answers: prints \"pong\"",
        .min = 0,
        .max = 0,
        .run = run_ping,
    },
    {
        .name = "version",
        .synopsis = "",
        .help = "the daemon's version and protocol",
        .min = 0,
        .max = 0,
        .run = run_version,
    },
    {
        .name = "call",
        .synopsis = "SERVER REQUEST",
        .help = "calls a server and prints its reply (-t: timeout)",
        .min = 2,
        .max = 2,
        .values = VALUE(1),
        .subject = 1,
        .run = run_call,
    },
    {
        .name = "cast",
        .synopsis = "SERVER REQUEST",
        .help = "casts a request to a server (no reply)",
        .min = 2,
        .max = 2,
        .values = VALUE(1),
        .subject = 1,
        .run = run_cast,
    },
    {
        .name = "send",
        .synopsis = "SERVER MSG",
        .help = "sends a raw message, handled by handle_info",
        .min = 2,
        .max = 2,
        .values = VALUE(1),
        .subject = 1,
        .run = run_send,
    },
    {
        .name = "start",
        .synopsis = "[OPTIONS] MODULE [NAME|-] [ARGS]",
        .help = "starts a server and prints its id; NAME - or omitted: anonymous\n"
                "  --link                 stop it when this connection closes"
                " (i.e. when gsctl exits)\n"
                "  --timeout MS           time allowed for init (here, after start)\n"
                "  --restart permanent|transient|temporary\n"
                "  --mailbox-limit N      mailbox length limit\n"
                "  --hibernate-after MS   hibernate after MS without a message\n"
                "  --isolate[=GROUP]      run it in a worker process of its own (or GROUP's);\n"
                "                         --isolate=false: in the daemon, whatever its module's "
                "default",
        .min = 1,
        .max = 3,
        .values = VALUE(2),
        .subject = 2,
        .run = run_start,
        .flags = CMD_START_OPTS,
    },
    {
        .name = "stop",
        .synopsis = "SERVER [REASON]",
        .help = "stops a server (reason default \"normal\"; -t: timeout)",
        .min = 1,
        .max = 2,
        .values = VALUE(1),
        .subject = 1,
        .run = run_stop,
    },
    {
        .name = "whereis",
        .synopsis = "NAME",
        .help = "the id registered under NAME, or null",
        .min = 1,
        .max = 1,
        .run = run_whereis,
    },
    {
        .name = "list",
        .synopsis = "",
        .help = "every running server: {id, name, module, status}, in id order",
        .min = 0,
        .max = 0,
        .run = run_list, /* in a batch: one request, which [] */
        .exec = run_list_pages,
    },
    {
        .name = "info",
        .synopsis = "SERVER",
        .help = "a server's id, name, module, status and mailbox length",
        .min = 1,
        .max = 1,
        .subject = 1,
        .run = run_info,
    },
    {
        .name = "state",
        .synopsis = "SERVER",
        .help = "a server's state, as its module shows it",
        .min = 1,
        .max = 1,
        .subject = 1,
        .run = run_state,
    },
    {
        .name = "modules",
        .synopsis = "",
        .help = "the loaded modules",
        .min = 0,
        .max = 0,
        .run = run_modules,
    },
    {
        .name = "load",
        .synopsis = "MODULE",
        .help = "loads a module from the module directories",
        .min = 1,
        .max = 1,
        .run = run_load,
    },
    {
        .name = "reload",
        .synopsis = "MODULE",
        .help = "reloads a module, upgrading its running servers",
        .min = 1,
        .max = 1,
        .run = run_reload,
    },
    {
        .name = "monitor",
        .synopsis = "SERVER",
        .help = "monitors a server, waits for it to end and prints the down event\n"
                "  as {\"ref\":..,\"id\":..,\"name\":..,\"reason\":..} (-t: give up after MS)",
        .min = 1,
        .max = 1,
        .subject = 1,
        .run = run_monitor,
        .flags = CMD_WAIT_DOWN,
    },
    {
        .name = "demonitor",
        .synopsis = "REF",
        .help = "removes a monitor (of this connection)",
        .min = 1,
        .max = 1,
        .run = run_demonitor,
        .flags = CMD_REF_ARG,
    },
    {
        .name = "slowlog",
        .synopsis = "[N]",
        .help = "the slowest recent callbacks, newest first (at most N)",
        .min = 0,
        .max = 1,
        .values = VALUE(0),
        .run = run_slowlog,
    },
    {
        .name = "trace",
        .synopsis = "SERVER",
        .help = "prints each event of a server as one line of JSON,\n"
                "  {\"id\":..,\"name\":..,\"event\":..,\"data\":..}, until interrupted or it ends",
        .min = 1,
        .max = 1,
        .subject = 1,
        .exec = run_trace,
    },
    {
        .name = "restart",
        .synopsis = "SERVER",
        .help = "stops a server (reason \"restart\") and starts it again with the same\n"
                "  module, name, args and options; prints the new id (-t: give up after MS)",
        .min = 1,
        .max = 1,
        .subject = 1,
        .run = run_restart,
    },
    {
        .name = "suspend",
        .synopsis = "SERVER",
        .help = "holds a server's mailbox: messages queue until resume",
        .min = 1,
        .max = 1,
        .subject = 1,
        .run = run_suspend,
    },
    {
        .name = "resume",
        .synopsis = "SERVER",
        .help = "handles what a suspended server's mailbox held, and what comes",
        .min = 1,
        .max = 1,
        .subject = 1,
        .run = run_resume,
    },
    {
        .name = "stats",
        .synopsis = "",
        .help = "the daemon's figures: servers, connections, memory, message and error counts",
        .min = 0,
        .max = 0,
        .run = run_stats,
    },
    {
        .name = "metrics",
        .synopsis = "",
        .help = "the daemon's figures in Prometheus's text format, printed as they are",
        .min = 0,
        .max = 0,
        .run = run_metrics,
        .flags = CMD_TEXT,
    },
    {
        .name = "nodes",
        .synopsis = "",
        .help = "the Erlang nodes connected now (distribution)",
        .min = 0,
        .max = 0,
        .run = run_nodes,
    },
    {
        .name = "clients",
        .synopsis = "",
        .help = "one map per connection: id, pid, uid, gid, admin, age_ms, pending,\n"
                "  in_bytes, out_bytes, held, links, monitors",
        .min = 0,
        .max = 0,
        .run = run_clients,
    },
    {
        .name = "top",
        .synopsis = "[INTERVAL_MS]",
        .help = "a live view of the busiest servers, refreshed every second (or INTERVAL_MS):\n"
                "  keys m sort by messages/s, b by mailbox, s by slow callbacks, r by restarts,\n"
                "  i by id, n by name; q quits. Not on a terminal: one snapshot as text",
        .min = 0,
        .max = 1,
        .exec = run_top,
    },
    {
        .name = "batch",
        .synopsis = "[FILE]",
        .help = "runs one command per line of FILE (default stdin), pipelined on one\n"
                "  connection, and prints one result per line, in order:\n"
                "  {\"ok\":RESULT} or {\"error\":CODE,\"detail\":DETAIL}. Words are split as\n"
                "  a shell does ('...', \"...\", \\); blank lines and # comments are skipped.\n"
                "  Exit 1 if any command failed, 3 if the connection broke",
        .min = 0,
        .max = 1,
        .exec = run_batch_file,
    },
    {
        .name = "complete",
        .synopsis = "commands|servers|modules",
        .help = "prints names one per line, for shell completion (asks the daemon)",
        .min = 1,
        .max = 1,
        .exec = run_names,
        .flags = CMD_LOCAL, /* complete commands lists this table */
    },
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* ---- usage -------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: %s [OPTIONS] COMMAND ARGS... [OPTIONS]\n"
        "\n"
        "options, before or after the command:\n"
        "  -s, --socket PATH   the daemon's socket (default: $GSD_SOCKET; else, for root,\n"
        "                      " GSC_SYSTEM_SOCKET "; else $XDG_RUNTIME_DIR/gsd.sock, or\n"
        "                      " GSC_SYSTEM_SOCKET " when that does not exist)\n"
        "  -t, --timeout MS    call/stop timeout in ms, or \"infinity\"; how long monitor waits\n"
        "                      (default: 5000 for call; as long as terminate takes for stop;\n"
        "                      forever for monitor)\n"
        "  -p, --pretty        indented JSON output\n"
        "  -m, --msgpack       raw msgpack output: each result as one msgpack value\n"
        "  -q, --quiet         no output: the exit status says how it went (usage and\n"
        "                      connection errors are still explained on stderr)\n"
        "  -h, --help          this help; COMMAND -h: help on one command\n"
        "\n"
        "commands:\n",
        progname);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].synopsis);
    fprintf(f, "\n"
               "Options may come before or after the command. After it, a word that starts\n"
               "with - and a letter is an option (-t 100, --pretty); anything else, -1 and\n"
               "other JSON included, is an argument. -- ends the options: put it before an\n"
               "argument that starts with - and a letter. After start, --timeout is init's.\n"
               "\n"
               "SERVER: all digits is an id, NAME@ALIVE@HOST a name on another node\n"
               "(cache@gsd@db1), anything else a name. REQUEST, ARGS, MSG and REASON are\n"
               "JSON; text that is not JSON is a string (call c get sends \"get\"),\n"
               "but text that starts with [, { or \" must be valid JSON (usage error).\n"
               "Exit: 0 ok, 1 the daemon answered an error (stderr: CODE: SERVER: detail),\n"
               "2 usage, 3 connection failed.\n");
}

static void command_usage(FILE *f, const struct command *cmd)
{
    fprintf(f, "usage: %s [OPTIONS] %s %s [OPTIONS]\n  %s\n", progname, cmd->name, cmd->synopsis,
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
    msgpack_object_kv *kv = msgpack_zone_malloc(x->zone, (n + 1) * sizeof *kv);
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

/* A start flag; returns how many argv entries it used, or 0 after a
 * usage error (in x->err). */
static int start_flag(struct ctx *x, int argc, char **argv, int i)
{
    const char *flag = argv[i];
    const char *eq = strchr(flag, '=');
    size_t len = eq ? (size_t)(eq - flag) : strlen(flag);
    msgpack_object v = {.type = MSGPACK_OBJECT_NIL};
    int used = 1;
    bool isolate = len == 9 && memcmp(flag, "--isolate", 9) == 0;
    /* --isolate alone: a worker of its own; --isolate=GROUP: that group's. */
    bool takes_value = !(len == 6 && memcmp(flag, "--link", 6) == 0) && !isolate;
    const char *val = NULL;
    if (takes_value) {
        if (eq)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[i + 1], used = 2;
        else
            return bad(x, "%.*s needs a value", (int)len, flag);
    } else if (eq && !isolate) {
        return bad(x, "--link takes no value");
    }
    uint64_t n;
    if (len == 6 && memcmp(flag, "--link", 6) == 0) {
        v.type = MSGPACK_OBJECT_BOOLEAN;
        v.via.boolean = true;
        add_option(x, "link", v);
    } else if (len == 9 && memcmp(flag, "--timeout", 9) == 0) {
        if (!parse_u64(val, &n))
            return bad(x, "--timeout wants ms, not \"%s\"", val);
        v.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        v.via.u64 = n;
        add_option(x, "timeout", v);
    } else if (len == 9 && memcmp(flag, "--restart", 9) == 0) {
        if (strcmp(val, "permanent") && strcmp(val, "transient") && strcmp(val, "temporary"))
            return bad(x, "--restart is permanent, transient or temporary, not \"%s\"", val);
        v.type = MSGPACK_OBJECT_STR;
        v.via.str.ptr = val;
        v.via.str.size = (uint32_t)strlen(val);
        add_option(x, "restart", v);
    } else if (isolate) {
        if (eq && strcmp(eq + 1, "false") != 0 && strcmp(eq + 1, "true") != 0) {
            v.type = MSGPACK_OBJECT_STR;
            v.via.str.ptr = eq + 1;
            v.via.str.size = (uint32_t)strlen(eq + 1);
        } else if (eq) {
            v.type = MSGPACK_OBJECT_BOOLEAN;
            v.via.boolean = strcmp(eq + 1, "true") == 0;
        } else {
            v.type = MSGPACK_OBJECT_BOOLEAN;
            v.via.boolean = true;
        }
        add_option(x, "isolate", v);
    } else if (len == 15 && memcmp(flag, "--mailbox-limit", 15) == 0) {
        if (!parse_u64(val, &n))
            return bad(x, "--mailbox-limit wants a count, not \"%s\"", val);
        v.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        v.via.u64 = n;
        add_option(x, "mailbox_limit", v);
    } else if (len == 17 && memcmp(flag, "--hibernate-after", 17) == 0) {
        if (!parse_u64(val, &n))
            return bad(x, "--hibernate-after wants ms, not \"%s\"", val);
        v.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        v.via.u64 = n;
        add_option(x, "hibernate_after", v);
    } else {
        return bad(x, "unknown option %.*s", (int)len, flag);
    }
    return used;
}

/* True for a word that is an option: '-' and a letter ("-t", "-pq"), or
 * "--" and a letter ("--pretty", "--socket=PATH"). Everything else is an
 * argument: "-1", "-", "[...]", "{...}", any JSON value. */
static bool is_option(const char *a)
{
    const char *p = a[0] == '-' ? a + 1 + (a[1] == '-') : NULL;
    return p && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'));
}

/* Which word of a command line or batch line an option is read from. */
enum { OPT_DONE = 0, OPT_HELP = -1 };

/* The options of gsctl itself (-s -t -p -m -q -h and their long forms),
 * wherever they come. Reads the option at argv[i]; returns how many words
 * it used, OPT_HELP for -h/--help, or OPT_DONE (0) after a usage error
 * (in x->err). */
static int global_option(struct ctx *x, int argc, char **argv, int i)
{
    const char *a = argv[i];
    /* One option a loop round: a cluster of short ones (-pq, -t100, -sPATH)
     * or one long one (--timeout 100, --timeout=100). */
    static const struct {
        const char *name;
        char letter;
        bool takes_value;
    } opts[] = {
        {"socket", 's', true},   {"timeout", 't', true}, {"pretty", 'p', false},
        {"msgpack", 'm', false}, {"quiet", 'q', false},  {"help", 'h', false},
    };
    int used = 1;
    const char *p = a + 1;
    bool long_form = a[1] == '-';
    while (*p) {
        const char *val = NULL;
        size_t k, nopts = sizeof opts / sizeof opts[0];
        if (long_form) {
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            for (k = 0; k < nopts; k++)
                if (strlen(opts[k].name) == len && memcmp(opts[k].name, a + 2, len) == 0)
                    break;
            if (k == nopts)
                return bad(x, "unknown option %.*s", (int)len + 2, a);
            if (eq && !opts[k].takes_value)
                return bad(x, "--%s takes no value", opts[k].name);
            val = eq ? eq + 1 : NULL;
            p = a + strlen(a);
        } else {
            for (k = 0; k < nopts; k++)
                if (opts[k].letter == *p)
                    break;
            if (k == nopts)
                return bad(x, "unknown option -%c (put -- before an argument that starts with -)",
                           *p);
            p++;
            if (opts[k].takes_value && *p)
                val = p, p += strlen(p);
        }
        if (opts[k].takes_value && val == NULL) {
            if (i + used >= argc)
                return bad(x, "%s needs a value", a);
            val = argv[i + used++];
        }
        char letter = opts[k].letter;
        if (x->in_batch && letter != 't')
            return bad(x, "%s is an option of gsctl's command line, not of a batch line", a);
        switch (letter) {
        case 's':
            x->socket = val;
            break;
        case 't':
            if (!parse_timeout(val, &x->timeout_ms))
                return bad(x, "-t wants ms (at least 1) or \"infinity\", not \"%s\"", val);
            x->timeout_given = true;
            break;
        case 'p':
            x->output = OUT_PRETTY;
            break;
        case 'm':
            x->output = OUT_MSGPACK;
            break;
        case 'q':
            x->output = OUT_QUIET;
            break;
        case 'h':
        default:
            return OPT_HELP;
        }
    }
    return used;
}

/* Sorts a command's arguments into options and positional arguments and
 * reads the values. A word that starts with '-' and a letter is an option
 * (gsctl's own, or start's flags after start); "--" ends the options
 * (opts false: they have ended already). -h/--help prints the command's
 * usage and exits. Returns false with x->err set on a usage error. */
static bool parse_args(struct ctx *x, const struct command *cmd, int argc, char **argv, bool opts)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (opts && strcmp(a, "--") == 0) {
            opts = false;
            continue;
        }
        if (!opts || !is_option(a)) {
            if (x->nargs >= cmd->max)
                return bad(x, "too many arguments");
            x->arg[x->nargs++] = a;
            continue;
        }
        int used;
        /* After start, its flags: --timeout there is init's (-t is gsctl's). */
        if ((cmd->flags & CMD_START_OPTS) && a[1] == '-' && strncmp(a, "--socket", 8) != 0 &&
            strncmp(a, "--pretty", 8) != 0 && strncmp(a, "--msgpack", 9) != 0 &&
            strncmp(a, "--quiet", 7) != 0 && strcmp(a, "--help") != 0)
            used = start_flag(x, argc, argv, i);
        else
            used = global_option(x, argc, argv, i);
        if (used == OPT_HELP) {
            if (x->in_batch)
                return bad(x, "%s: no help in a batch line", a);
            command_usage(stdout, cmd);
            exit(0);
        }
        if (used == OPT_DONE)
            return false;
        i += used - 1;
    }
    if (x->nargs < cmd->min)
        return bad(x, "missing arguments");
    uint64_t ref;
    if ((cmd->flags & CMD_REF_ARG) && !parse_u64(x->arg[0], &ref))
        return bad(x, "REF is a number, not \"%s\"", x->arg[0]);
    /* A bad value is a usage error before anything is sent. */
    for (int i = 0; i < x->nargs; i++)
        if ((cmd->values & VALUE(i)) &&
            !json_mp_arg(x->arg[i], x->zone, &x->value[i], x->err, sizeof x->err))
            return false;
    /* What a daemon error names: the server (start's NAME, if not "-"). */
    x->subject = NULL;
    if (cmd->subject > 0 && cmd->subject <= x->nargs && strcmp(x->arg[cmd->subject - 1], "-"))
        x->subject = x->arg[cmd->subject - 1];
    return true;
}

/* ---- output ------------------------------------------------------------- */

/* Prints a result on stdout as the output mode says: one line of JSON
 * (indented with --pretty), one msgpack value, or nothing. */
static void print_value(const struct ctx *x, const msgpack_object *v)
{
    size_t n;
    uint8_t *bytes;
    switch (x->output) {
    case OUT_QUIET:
        break;
    case OUT_MSGPACK:
        bytes = gsp_encode(v, &n);
        fwrite(bytes, 1, n, stdout);
        free(bytes);
        break;
    case OUT_PRETTY:
    case OUT_JSON:
    default:
        json_mp_print(stdout, v, x->output == OUT_PRETTY ? JSON_MP_PRETTY : 0);
        putchar('\n');
        break;
    }
}

/* Pushes stdout out: 0, or EXIT_FAILURE if it cannot be written. */
static int flush_stdout(void)
{
    if (fflush(stdout) != 0) {
        fprintf(stderr, "%s: writing the result: %s\n", progname, strerror(errno));
        return EXIT_FAILURE;
    }
    return 0;
}

/* Prints a daemon error as "CODE: detail" on stderr; for a command about
 * a server, "CODE: SERVER: detail", so that the error says which. */
static void print_error(const struct ctx *x, const gsc_reply *r)
{
    if (x->output == OUT_QUIET)
        return;
    fprintf(stderr, "%s: ", r->code);
    if (x->subject && r->detail.type == MSGPACK_OBJECT_NIL) {
        fprintf(stderr, "%s\n", x->subject);
        return;
    }
    if (x->subject)
        fprintf(stderr, "%s: ", x->subject);
    if (r->detail.type == MSGPACK_OBJECT_STR)
        fwrite(r->detail.via.str.ptr, 1, r->detail.via.str.size, stderr);
    else
        json_mp_print(stderr, &r->detail, 0);
    fputc('\n', stderr);
}

/* A str object pointing at s (which must outlive it). */
static msgpack_object str_obj(const char *s)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_STR};
    o.via.str.ptr = s;
    o.via.str.size = (uint32_t)strlen(s);
    return o;
}

/* monitor: after the ref, waits for its down event and prints it. */
static int wait_down(struct ctx *x, uint64_t ref)
{
    int wait_ms = x->timeout_given ? x->timeout_ms : -1;
    for (;;) {
        gsc_down *d;
        int status = gsc_next_down(x->c, wait_ms, &d);
        if (status == GSC_ERROR) {
            if (x->output != OUT_QUIET)
                fprintf(stderr, "timeout: %s: no down event within %d ms\n", x->subject, wait_ms);
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
            {.key = str_obj("ref"),
             .val = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = d->ref}},
            {.key = str_obj("id"),
             .val = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = d->id}},
            {.key = str_obj("name"), .val = d->name},
            {.key = str_obj("reason"), .val = d->reason},
        };
        msgpack_object event = {.type = MSGPACK_OBJECT_MAP, .via.map = {4, kv}};
        print_value(x, &event);
        gsc_down_destroy(&d);
        return flush_stdout();
    }
}

/* ---- slowlog and trace ------------------------------------------------------ */

static uint32_t run_slowlog(struct ctx *x, gsc_done_fn *done, void *arg)
{
    msgpack_object n = {.type = MSGPACK_OBJECT_NIL};
    if (x->nargs >= 1)
        n = *value_arg(x, 0);
    msgpack_object params = {.type = MSGPACK_OBJECT_ARRAY, .via.array = {1, &n}};
    return gsc_request_async(x->c, "slowlog", &params, x->timeout_given ? x->timeout_ms : -1, done,
                             arg);
}

static volatile sig_atomic_t trace_interrupted;

static void trace_signal(int sig)
{
    (void)sig;
    trace_interrupted = 1;
}

/* One message from the daemon, for trace: 0 to go on, else the exit
 * status (-1: done, exit 0). */
static int trace_message(struct ctx *x, const msgpack_object *m)
{
    if (m->type != MSGPACK_OBJECT_ARRAY || m->via.array.size < 3)
        return 0;
    const msgpack_object *a = m->via.array.ptr;
    if (a[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER && a[0].via.u64 == 1 &&
        m->via.array.size == 4) { /* [1, msgid, error, result] */
        if (a[2].type == MSGPACK_OBJECT_NIL)
            return 0;
        gsc_reply r = {0};
        char code[64] = "error";
        const msgpack_object *e = &a[2];
        if (e->type == MSGPACK_OBJECT_ARRAY && e->via.array.size >= 1 &&
            e->via.array.ptr[0].type == MSGPACK_OBJECT_STR)
            snprintf(code, sizeof code, "%.*s", (int)e->via.array.ptr[0].via.str.size,
                     e->via.array.ptr[0].via.str.ptr);
        r.code = code;
        r.detail.type = MSGPACK_OBJECT_NIL;
        if (e->type == MSGPACK_OBJECT_ARRAY && e->via.array.size >= 2)
            r.detail = e->via.array.ptr[1];
        print_error(x, &r);
        return EXIT_DAEMON;
    }
    bool is_trace = a[1].type == MSGPACK_OBJECT_STR && a[1].via.str.size == 5 &&
                    memcmp(a[1].via.str.ptr, "trace", 5) == 0;
    bool is_down = a[1].type == MSGPACK_OBJECT_STR && a[1].via.str.size == 4 &&
                   memcmp(a[1].via.str.ptr, "down", 4) == 0;
    if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[0].via.u64 != 2)
        return 0;
    if (is_down) /* the server ended: its "stop" event came first, unless dropped */
        return -1;
    if (!is_trace || a[2].type != MSGPACK_OBJECT_ARRAY || a[2].via.array.size != 4)
        return 0;
    const msgpack_object *p = a[2].via.array.ptr;
    msgpack_object_kv kv[4] = {
        {.key = str_obj("id"), .val = p[0]},
        {.key = str_obj("name"), .val = p[1]},
        {.key = str_obj("event"), .val = p[2]},
        {.key = str_obj("data"), .val = p[3]},
    };
    msgpack_object event = {.type = MSGPACK_OBJECT_MAP, .via.map = {4, kv}};
    print_value(x, &event);
    int rc = flush_stdout();
    if (rc)
        return rc;
    bool stop = p[2].type == MSGPACK_OBJECT_STR && p[2].via.str.size == 4 &&
                memcmp(p[2].via.str.ptr, "stop", 4) == 0;
    return stop ? -1 : 0;
}

/* trace: [server, true] and a monitor of it, spoken on the connection's
 * socket directly (libgsclient keeps no trace notifications), then one
 * line per event until SIGINT/SIGTERM, the server's end, or the daemon's. */
static int run_trace(struct ctx *x)
{
    int fd = gsc_fd(x->c);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, 1);
    gsp_pack_str(&pk, "trace");
    msgpack_pack_array(&pk, 2);
    gsc_pack_server(&pk, x->arg[0]);
    msgpack_pack_true(&pk);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, 2);
    gsp_pack_str(&pk, "monitor");
    msgpack_pack_array(&pk, 1);
    gsc_pack_server(&pk, x->arg[0]);
    struct sigaction sa = {.sa_handler = trace_signal}; /* no SA_RESTART: poll wakes */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    size_t off = 0;
    while (off < sb.size) {
        struct pollfd w = {.fd = fd, .events = POLLOUT};
        ssize_t n = write(fd, sb.data + off, sb.size - off);
        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && (errno == EAGAIN || errno == EINTR))
            poll(&w, 1, 1000);
        else {
            msgpack_sbuffer_destroy(&sb);
            fprintf(stderr, "%s: writing to the daemon: %s\n", progname, strerror(errno));
            return EXIT_CONN;
        }
    }
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacker up;
    msgpack_unpacker_init(&up, 65536);
    msgpack_unpacked m;
    msgpack_unpacked_init(&m);
    int rc = 0;
    while (!trace_interrupted) {
        struct pollfd r = {.fd = fd, .events = POLLIN};
        if (poll(&r, 1, -1) < 0 && errno == EINTR)
            continue;
        msgpack_unpacker_reserve_buffer(&up, 65536);
        ssize_t n = read(fd, msgpack_unpacker_buffer(&up), msgpack_unpacker_buffer_capacity(&up));
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0) {
            fprintf(stderr, "%s: the daemon closed the connection\n", progname);
            rc = EXIT_CONN;
            break;
        }
        msgpack_unpacker_buffer_consumed(&up, (size_t)n);
        msgpack_unpack_return ur;
        while (rc == 0 && (ur = msgpack_unpacker_next(&up, &m)) == MSGPACK_UNPACK_SUCCESS)
            rc = trace_message(x, &m.data);
        if (rc == 0 && ur == MSGPACK_UNPACK_PARSE_ERROR) {
            fprintf(stderr, "%s: the daemon sent bytes that are not msgpack\n", progname);
            rc = EXIT_CONN;
        }
        if (rc)
            break;
    }
    msgpack_unpacked_destroy(&m);
    msgpack_unpacker_destroy(&up);
    return rc < 0 ? 0 : rc;
}

/* ---- one command ---------------------------------------------------------- */

/* A request's completion, as the callback saw it. */
struct outcome {
    bool done;
    int status;       /* GSC_* */
    gsc_reply *reply; /* GSC_OK, GSC_ERROR */
    char *err;        /* batch: a usage error on the line (malloc'd), or NULL */
};

static void outcome_done(gsc *c, uint32_t msgid, int status, gsc_reply *reply, void *arg)
{
    (void)c, (void)msgid;
    struct outcome *o = arg;
    o->done = true;
    o->status = status;
    o->reply = reply;
}

/* Runs one command and turns its outcome into output and an exit status. */
static int run_one(struct ctx *x, const struct command *cmd)
{
    struct outcome o = {0};
    if (cmd->run(x, outcome_done, &o) != 0)
        gsc_run(x->c, -1); /* the request's own deadline bounds the wait */
    int rc;
    if (o.done && o.status == GSC_OK && (cmd->flags & CMD_WAIT_DOWN)) {
        const msgpack_object *v = &o.reply->result;
        rc = wait_down(x, v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? v->via.u64 : 0);
    } else if (o.done && o.status == GSC_OK && (cmd->flags & CMD_TEXT) && x->output == OUT_JSON &&
               o.reply->result.type == MSGPACK_OBJECT_STR) { /* -m, -q, -p as for any answer */
        fwrite(o.reply->result.via.str.ptr, 1, o.reply->result.via.str.size, stdout);
        rc = flush_stdout();
    } else if (o.done && o.status == GSC_OK) {
        print_value(x, &o.reply->result);
        rc = flush_stdout();
    } else if (o.done && o.status == GSC_ERROR) {
        print_error(x, o.reply);
        rc = EXIT_DAEMON;
    } else if (o.done && o.status == GSC_TIMEOUT) {
        fprintf(stderr, "%s: no response in time\n", progname);
        rc = EXIT_CONN;
    } else {
        fprintf(stderr, "%s: %s\n", progname, gsc_errmsg(x->c));
        rc = EXIT_CONN;
    }
    gsc_reply_destroy(&o.reply);
    return rc;
}

/* ---- list: every server, a page at a time ------------------------------------ */

/* The id in an entry of which, or 0. */
static uint64_t entry_id(const msgpack_object *e)
{
    for (uint32_t k = 0; e->type == MSGPACK_OBJECT_MAP && k < e->via.map.size; k++) {
        const msgpack_object_kv *kv = &e->via.map.ptr[k];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 2 &&
            memcmp(kv->key.via.str.ptr, "id", 2) == 0 &&
            kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            return kv->val.via.u64;
    }
    return 0;
}

/* Hands each page of the servers (an array), LIST_PAGE of them at a time,
 * to fn (last: no page follows), asking for the next only once fn is done
 * with it: memory stays that of one page however many servers there are.
 * A daemon that does not page (which [] only) answers in one page.
 * Returns 0, or the exit status of a failure, explained on stderr. */
static int each_page(struct ctx *x,
                     void (*fn)(struct ctx *x, const msgpack_object *page, bool last, void *arg),
                     void *arg)
{
    uint64_t after = 0;
    for (bool first = true;; first = false) {
        gsc_reply *r = NULL;
        int status = gsc_which_page(x->c, after, LIST_PAGE, &r);
        bool paged = true;
        if (first && status == GSC_ERROR && strcmp(r->code, "badarg") == 0) {
            gsc_reply_destroy(&r); /* a daemon older than paging */
            status = gsc_which(x->c, &r);
            paged = false;
        }
        if (status != GSC_OK) {
            if (status == GSC_ERROR)
                print_error(x, r);
            else
                fprintf(stderr, "%s: %s\n", progname, gsc_errmsg(x->c));
            gsc_reply_destroy(&r);
            return status == GSC_ERROR ? EXIT_DAEMON : EXIT_CONN;
        }
        const msgpack_object *page = &r->result;
        uint32_t n = page->type == MSGPACK_OBJECT_ARRAY ? page->via.array.size : 0;
        bool last = !paged || n < LIST_PAGE;
        uint64_t id = n ? entry_id(&page->via.array.ptr[n - 1]) : 0;
        if (page->type != MSGPACK_OBJECT_ARRAY || (!last && id <= after)) {
            /* not a page; or one that would be asked for again and again */
            fprintf(stderr, "%s: which answered something other than a page of servers\n",
                    progname);
            gsc_reply_destroy(&r);
            return EXIT_CONN;
        }
        fn(x, page, last, arg);
        after = id;
        gsc_reply_destroy(&r);
        if (last)
            return 0;
    }
}

/* How far list has printed its one array. */
struct list_out {
    uint32_t entries; /* printed so far */
    FILE *spool;      /* --msgpack: the entries, until their count is known */
    struct gsp_buf buf;
};

/* Prints a page's entries as part of the one array list prints, exactly
 * as print_value would print the whole array. */
static void list_page(struct ctx *x, const msgpack_object *page, bool last, void *arg)
{
    struct list_out *o = arg;
    uint32_t n = page->via.array.size;
    if (o->entries == 0 && o->spool == NULL && last) { /* one page: the array as it came */
        print_value(x, page);
        return;
    }
    if (x->output == OUT_MSGPACK) { /* its header comes first: count first */
        if (o->spool == NULL && (o->spool = tmpfile()) == NULL) {
            fprintf(stderr, "%s: a temporary file for the list: %s\n", progname, strerror(errno));
            exit(EXIT_FAILURE);
        }
        o->buf.len = 0;
        for (uint32_t i = 0; i < n; i++)
            gsp_buf_pack(&o->buf, &page->via.array.ptr[i]);
        fwrite(o->buf.data, 1, o->buf.len, o->spool);
    } else if (x->output != OUT_QUIET && n > 0) {
        /* The page's array as JSON, less its brackets (and, indented, the
         * newline before the closing one): [a,b] + [c] = [a,b,c]. */
        bool pretty = x->output == OUT_PRETTY;
        char *text = json_mp_dump(page, pretty ? JSON_MP_PRETTY : 0);
        fputs(o->entries == 0 ? "[" : ",", stdout);
        fwrite(text + 1, 1, strlen(text) - (pretty ? 3 : 2), stdout);
        free(text);
    }
    o->entries += n;
}

/* The end of list's array. */
static void list_end(struct ctx *x, struct list_out *o)
{
    if (o->spool) {
        msgpack_sbuffer head;
        msgpack_sbuffer_init(&head);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &head, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, o->entries);
        fwrite(head.data, 1, head.size, stdout);
        msgpack_sbuffer_destroy(&head);
        rewind(o->spool);
        char chunk[65536];
        size_t got;
        while ((got = fread(chunk, 1, sizeof chunk, o->spool)) > 0)
            fwrite(chunk, 1, got, stdout);
        fclose(o->spool);
    } else if (x->output != OUT_QUIET && o->entries > 0) {
        fputs(x->output == OUT_PRETTY ? "\n]\n" : "]\n", stdout);
    }
}

/* list: the servers as one array, printed a page at a time (a batch's
 * list is one request, which []). */
static int run_list_pages(struct ctx *x)
{
    struct list_out o = {0};
    int rc = each_page(x, list_page, &o);
    if (rc == 0)
        list_end(x, &o);
    else if (o.spool)
        fclose(o.spool);
    gsp_buf_free(&o.buf);
    int f = flush_stdout();
    return rc ? rc : f;
}

/* complete: the names in a list of maps (a page of servers, the
 * modules), one per line. */
static void print_names(struct ctx *x, const msgpack_object *list, bool last, void *arg)
{
    (void)x, (void)last, (void)arg;
    for (uint32_t i = 0; list->type == MSGPACK_OBJECT_ARRAY && i < list->via.array.size; i++) {
        const msgpack_object *m = &list->via.array.ptr[i];
        for (uint32_t k = 0; m->type == MSGPACK_OBJECT_MAP && k < m->via.map.size; k++) {
            const msgpack_object *key = &m->via.map.ptr[k].key, *val = &m->via.map.ptr[k].val;
            if (key->type == MSGPACK_OBJECT_STR && key->via.str.size == 4 &&
                memcmp(key->via.str.ptr, "name", 4) == 0 && val->type == MSGPACK_OBJECT_STR)
                printf("%.*s\n", (int)val->via.str.size, val->via.str.ptr);
        }
    }
}

/* complete WHAT: names one per line, for shell completion. */
static int run_names(struct ctx *x)
{
    const char *what = x->arg[0];
    if (strcmp(what, "commands") == 0) {
        for (size_t i = 0; i < NCOMMANDS; i++)
            printf("%s\n", commands[i].name);
        return flush_stdout();
    }
    if (x->c == NULL)
        return -1; /* connect first: a connection error comes before a bad WHAT */
    if (strcmp(what, "servers") == 0) {
        int rc = each_page(x, print_names, NULL);
        int f = flush_stdout();
        return rc ? rc : f;
    }
    if (strcmp(what, "modules") != 0)
        usage_error(NULL, "complete wants commands, servers or modules, not \"%s\"", what);
    gsc_reply *r = NULL;
    int status = gsc_modules(x->c, &r);
    if (status != GSC_OK) {
        gsc_reply_destroy(&r);
        return status == GSC_ERROR ? EXIT_DAEMON : EXIT_CONN;
    }
    print_names(x, &r->result, true, NULL);
    gsc_reply_destroy(&r);
    return flush_stdout();
}

/* ---- batch ------------------------------------------------------------------ */

/* Input read in chunks and cut into lines, so the batch loop can poll it. */
struct lines {
    int fd;
    char *buf;
    size_t len, off, cap; /* bytes held, start of the next line, size */
    bool eof;
};

/* The next whole line (NUL-terminated, valid until the next lines_fill),
 * or NULL if none is buffered. At the end of input a last line without a
 * newline counts. */
static char *lines_next(struct lines *in)
{
    char *start = in->buf + in->off;
    size_t avail = in->len - in->off;
    char *nl = avail ? memchr(start, '\n', avail) : NULL;
    if (nl) {
        *nl = '\0';
        in->off += (size_t)(nl - start) + 1;
        return start;
    }
    if (in->eof && avail > 0) {
        start[avail] = '\0'; /* lines_fill keeps a byte free for this */
        in->off = in->len;
        return start;
    }
    return NULL;
}

/* True if lines_next has a line to give. */
static bool lines_ready(const struct lines *in)
{
    size_t avail = in->len - in->off;
    return avail > 0 && (in->eof || memchr(in->buf + in->off, '\n', avail) != NULL);
}

/* Reads what the input has: false on a read error (errno set). */
static bool lines_fill(struct lines *in)
{
    if (in->off > 0) {
        memmove(in->buf, in->buf + in->off, in->len - in->off);
        in->len -= in->off;
        in->off = 0;
    }
    if (in->cap - in->len < BATCH_READ + 1) {
        in->cap = in->len + BATCH_READ + 1;
        in->buf = realloc(in->buf, in->cap);
        if (in->buf == NULL)
            abort(); /* out of memory ends the process */
    }
    ssize_t n = read(in->fd, in->buf + in->len, in->cap - in->len - 1);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n <= 0) {
        in->eof = true;
        return n == 0;
    }
    in->len += (size_t)n;
    return true;
}

/* Splits a line into words, in place, as a shell would: blanks separate
 * words, '...' is literal, "..." honours \" and \\, a backslash outside
 * quotes takes the next character as is, and # starting a word begins a
 * comment. Returns the number of words, or -1 with *why set. */
static int split_words(char *line, char **words, int max, const char **why)
{
    int n = 0;
    char *r = line, *w = line;
    for (;;) {
        while (*r == ' ' || *r == '\t' || *r == '\r')
            r++;
        if (*r == '\0' || *r == '#')
            return n;
        if (n == max) {
            *why = "too many words";
            return -1;
        }
        words[n++] = w;
        while (*r && *r != ' ' && *r != '\t' && *r != '\r') {
            if (*r == '\'') {
                char *end = strchr(r + 1, '\'');
                if (end == NULL) {
                    *why = "unterminated '";
                    return -1;
                }
                memmove(w, r + 1, (size_t)(end - r - 1));
                w += end - r - 1;
                r = end + 1;
            } else if (*r == '"') {
                for (r++; *r && *r != '"'; r++) {
                    if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
                        r++;
                    *w++ = *r;
                }
                if (*r != '"') {
                    *why = "unterminated \"";
                    return -1;
                }
                r++;
            } else if (*r == '\\' && r[1]) {
                *w++ = r[1];
                r += 2;
            } else {
                *w++ = *r++;
            }
        }
        /* The terminator may overwrite the blank after the word, never
         * text not yet read: w never passes r. */
        bool end = *r == '\0';
        *w++ = '\0';
        if (end)
            return n;
        r++;
    }
}

/* Parses one batch line and queues its request. Returns false for a line
 * with nothing to do (blank, comment). */
static bool batch_line(const struct ctx *base, char *line, struct outcome *o)
{
    struct ctx x = *base;
    x.nargs = 0;
    x.in_batch = true;
    x.options.type = MSGPACK_OBJECT_NIL;
    x.err[0] = '\0';
    msgpack_zone_clear(x.zone);
    char *words[MAX_WORDS];
    const char *why = NULL;
    int n = split_words(line, words, MAX_WORDS, &why);
    if (n == 0)
        return false;
    *o = (struct outcome){0};
    const struct command *cmd = NULL;
    for (size_t i = 0; n > 0 && i < NCOMMANDS && cmd == NULL; i++)
        if (strcmp(commands[i].name, words[0]) == 0)
            cmd = &commands[i];
    if (n < 0)
        bad(&x, "%s", why);
    else if (cmd == NULL)
        bad(&x, "unknown command \"%s\"", words[0]);
    else if (cmd->run == NULL || (cmd->flags & CMD_WAIT_DOWN)) /* a line: one request, its answer */
        bad(&x, "%s cannot run in a batch", cmd->name);
    else if (parse_args(&x, cmd, n - 1, words + 1, true) && cmd->run(&x, outcome_done, o) == 0)
        o->done = true, o->status = GSC_BROKEN;
    if (x.err[0]) {
        o->done = true;
        o->err = strdup(x.err);
        if (o->err == NULL)
            abort(); /* out of memory ends the process */
    }
    return true;
}

/* Prints one batch result: {"ok": result} or {"error": code, "detail": d}.
 * Returns the exit status it calls for. */
static int batch_print(const struct ctx *x, struct outcome *o)
{
    msgpack_object_kv kv[2];
    msgpack_object env = {.type = MSGPACK_OBJECT_MAP, .via.map = {2, kv}};
    int rc = EXIT_DAEMON;
    kv[0].key = str_obj("error");
    kv[1].key = str_obj("detail");
    if (o->err) {
        kv[0].val = str_obj("usage");
        kv[1].val = str_obj(o->err);
    } else if (o->status == GSC_OK) {
        env.via.map.size = 1;
        kv[0].key = str_obj("ok");
        kv[0].val = o->reply->result;
        rc = 0;
    } else if (o->status == GSC_ERROR) {
        kv[0].val = str_obj(o->reply->code);
        kv[1].val = o->reply->detail;
    } else if (o->status == GSC_TIMEOUT) {
        kv[0].val = str_obj("timeout");
        kv[1].val = str_obj("no response in time");
    } else {
        kv[0].val = str_obj("connection");
        kv[1].val = str_obj(gsc_errmsg(x->c));
        rc = EXIT_CONN;
    }
    print_value(x, &env);
    gsc_reply_destroy(&o->reply);
    free(o->err);
    *o = (struct outcome){0};
    return rc;
}

/* batch [FILE]: every line a command, pipelined, results in input order. */
static int run_batch_file(struct ctx *x)
{
    struct lines in = {.fd = 0};
    if (x->nargs == 1 && strcmp(x->arg[0], "-") != 0) {
        in.fd = open(x->arg[0], O_RDONLY | O_CLOEXEC);
        if (in.fd < 0) {
            fprintf(stderr, "%s: %s: %s\n", progname, x->arg[0], strerror(errno));
            return EXIT_USAGE;
        }
    }
    /* A ring of outcomes: seq % BATCH_WINDOW; printed from `shown` on. */
    struct outcome *ring = calloc(BATCH_WINDOW, sizeof *ring);
    if (ring == NULL)
        abort(); /* out of memory ends the process */
    unsigned long long seq = 0, shown = 0;
    int rc = 0;
    for (;;) {
        char *line;
        while (seq - shown < BATCH_WINDOW && (line = lines_next(&in)) != NULL)
            if (batch_line(x, line, &ring[seq % BATCH_WINDOW]))
                seq++;
        while (shown < seq && ring[shown % BATCH_WINDOW].done) {
            int r = batch_print(x, &ring[shown % BATCH_WINDOW]);
            rc = r > rc ? r : rc;
            shown++;
        }
        if (seq - shown < BATCH_WINDOW && lines_ready(&in))
            continue; /* room again: queue more before waiting */
        if (in.eof && shown == seq && !lines_ready(&in))
            break;
        /* About to wait: what is printed goes out now, so a script that
         * feeds one line and reads one result is answered. */
        if (flush_stdout() != 0) {
            rc = EXIT_FAILURE;
            break;
        }
        struct pollfd pfd[2] = {{.fd = gsc_fd(x->c), .events = gsc_events(x->c)}, {.fd = -1}};
        bool want_input = !in.eof && seq - shown < BATCH_WINDOW;
        if (want_input)
            pfd[1] = (struct pollfd){.fd = in.fd, .events = POLLIN};
        poll(pfd, 2, gsc_next_timeout(x->c));
        if (pfd[1].revents && !lines_fill(&in))
            fprintf(stderr, "%s: reading the batch: %s\n", progname, strerror(errno));
        gsc_process(x->c);
    }
    for (unsigned long long i = shown; i < seq; i++) /* only after a write error */
        gsc_reply_destroy(&ring[i % BATCH_WINDOW].reply), free(ring[i % BATCH_WINDOW].err);
    free(ring);
    free(in.buf);
    if (in.fd > 0)
        close(in.fd);
    int f = flush_stdout();
    return rc ? rc : f;
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
    msgpack_zone zone;
    struct ctx x = {.options = {.type = MSGPACK_OBJECT_NIL}, .zone = &zone};
    /* The options before the command; those after it are parse_args'. */
    int i = 1;
    bool opts = true;
    while (i < argc && is_option(argv[i])) {
        int used = global_option(&x, argc, argv, i);
        if (used == OPT_HELP) {
            usage(stdout);
            return 0;
        }
        if (used == OPT_DONE)
            usage_error(NULL, "%s", x.err);
        i += used;
    }
    if (i < argc && strcmp(argv[i], "--") == 0)
        opts = false, i++;
    if (i >= argc)
        usage_error(NULL, "no command");
    const char *name = argv[i++];
    const struct command *cmd = NULL;
    for (size_t k = 0; k < NCOMMANDS && cmd == NULL; k++)
        if (strcmp(commands[k].name, name) == 0)
            cmd = &commands[k];
    if (strcmp(name, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (cmd == NULL)
        usage_error(NULL, "unknown command \"%s\"", name);

    if (!msgpack_zone_init(&zone, MSGPACK_ZONE_CHUNK_SIZE))
        abort();
    if (!parse_args(&x, cmd, argc - i, argv + i, opts))
        usage_error(cmd, "%s", x.err);
    int rc;
    if ((cmd->flags & CMD_LOCAL) && (rc = cmd->exec(&x)) >= 0) {
        msgpack_zone_destroy(&zone);
        return rc;
    }

    /* -s, $GSD_SOCKET, or the default: for a user whose own socket does
     * not exist, the system daemon's (the library's one resolution). */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    if (gsc_socket_path(x.socket, path, sizeof path) < 0) {
        fprintf(stderr, "%s: socket path too long\n", progname);
        msgpack_zone_destroy(&zone);
        return EXIT_CONN;
    }
    x.c = gsc_connect(path);
    if (x.c == NULL) {
        int e = errno;
        const char *env = getenv("GSD_SOCKET");
        bool fell_back = !(x.socket && *x.socket) && !(env && *env) && geteuid() != 0 &&
                         strcmp(path, GSC_SYSTEM_SOCKET) != 0 && (e == ENOENT || e == ENOTDIR);
        fprintf(stderr, "%s: connect %s: %s%s\n", progname, path, strerror(e),
                fell_back ? " (nor is there a system daemon at " GSC_SYSTEM_SOCKET ")" : "");
        msgpack_zone_destroy(&zone);
        return EXIT_CONN;
    }

    rc = cmd->exec ? cmd->exec(&x) : run_one(&x, cmd);
    gsc_close(&x.c);
    msgpack_zone_destroy(&zone);
    return rc;
}
