/* config.c — the configuration file, read with libconfig: every key
 * checked, every bad line logged as FILE:LINE, nothing applied here (main.c
 * applies a file only once all of it has been read without error). */
#include "gsd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <jansson.h>
#include <libconfig.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"

/* A declared server's name, hashed: a file of many servers is read in
 * linear time (a scan of those before each one was quadratic). */
struct seen {
    const char *name; /* the spec's own copy, in cfg->servers */
    UT_hash_handle hh;
};

struct reader {
    const char *file;
    int errors;
    char *err; /* the first error */
    size_t errlen;
    struct seen *names; /* every name in cfg->servers so far */
    struct seen *pool;  /* one entry per item of the servers list */
};

__attribute__((format(printf, 3, 4))) static void bad(struct reader *rd, const config_setting_t *st,
                                                      const char *fmt, ...)
{
    char what[512], line[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const char *name = st ? config_setting_name(st) : NULL;
    snprintf(line, sizeof line, "%s:%u: %s%s%s", rd->file, st ? config_setting_source_line(st) : 0u,
             name ? name : "", name ? ": " : "", what);
    log_msg(LOG_ERR, "%s", line);
    if (rd->errors++ == 0)
        snprintf(rd->err, rd->errlen, "%s", line);
}

/* Reports every key of group that is not in known (NULL-terminated). */
static void only(struct reader *rd, const config_setting_t *group, const char *const *known)
{
    for (int i = 0; i < config_setting_length(group); i++) {
        const config_setting_t *st = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(st);
        size_t k = 0;
        while (known[k] && strcmp(known[k], name) != 0)
            k++;
        if (known[k] == NULL)
            bad(rd, st, "unknown key");
    }
}

static bool is_int(const config_setting_t *st)
{
    return config_setting_type(st) == CONFIG_TYPE_INT ||
           config_setting_type(st) == CONFIG_TYPE_INT64;
}

/* group.key as an integer in [min, max], into *out; absent leaves *out. */
static void get_uint(struct reader *rd, const config_setting_t *group, const char *key,
                     uint64_t min, uint64_t max, uint64_t *out)
{
    const config_setting_t *st = group ? config_setting_get_member(group, key) : NULL;
    if (st == NULL)
        return;
    long long v = config_setting_get_int64(st);
    if (!is_int(st) || v < 0 || (uint64_t)v < min || (uint64_t)v > max)
        bad(rd, st, "must be an integer from %llu to %llu", (unsigned long long)min,
            (unsigned long long)max);
    else
        *out = (uint64_t)v;
}

static void get_u32(struct reader *rd, const config_setting_t *group, const char *key, uint32_t min,
                    uint32_t *out)
{
    uint64_t v = *out;
    get_uint(rd, group, key, min, UINT32_MAX, &v);
    *out = (uint32_t)v;
}

/* group.key as a string; NULL if absent or (reported) not a string. */
static const char *get_str(struct reader *rd, const config_setting_t *group, const char *key)
{
    const config_setting_t *st = group ? config_setting_get_member(group, key) : NULL;
    if (st == NULL)
        return NULL;
    if (config_setting_type(st) != CONFIG_TYPE_STRING) {
        bad(rd, st, "must be a string");
        return NULL;
    }
    return config_setting_get_string(st);
}

/* A group setting (or absent: NULL). */
static const config_setting_t *get_group(struct reader *rd, const config_setting_t *parent,
                                         const char *key, const char *const *known)
{
    const config_setting_t *st = config_setting_get_member(parent, key);
    if (st == NULL)
        return NULL;
    if (!config_setting_is_group(st)) {
        bad(rd, st, "must be a group { key = value; ... }");
        return NULL;
    }
    only(rd, st, known);
    return st;
}

static void read_socket(struct reader *rd, const config_setting_t *root, struct config *cfg)
{
    static const char *const keys[] = {"path", "mode", "group", NULL};
    const config_setting_t *g = get_group(rd, root, "socket", keys);
    const char *path = get_str(rd, g, "path");
    if (path && (path[0] != '/' || strlen(path) >= 108))
        bad(rd, config_setting_get_member(g, "path"), "must be an absolute path under 108 bytes");
    else if (path)
        cfg->socket = xstrndup(path, strlen(path));
    const char *mode = get_str(rd, g, "mode");
    if (mode) {
        char *end;
        unsigned long m = strtoul(mode, &end, 8);
        if (*mode == '\0' || *end != '\0' || m > 0777 || (m & 0600) != 0600)
            bad(rd, config_setting_get_member(g, "mode"),
                "must be octal digits like \"0660\", with read and write for the owner");
        else
            cfg->socket_mode = (mode_t)m;
    }
    const config_setting_t *group = g ? config_setting_get_member(g, "group") : NULL;
    if (group && is_int(group) && config_setting_get_int64(group) >= 0)
        cfg->socket_group = (gid_t)config_setting_get_int64(group);
    else if (group && config_setting_type(group) == CONFIG_TYPE_STRING) {
        struct group *gr = getgrnam(config_setting_get_string(group));
        if (gr)
            cfg->socket_group = gr->gr_gid;
        else
            bad(rd, group, "no group named \"%s\"", config_setting_get_string(group));
    } else if (group)
        bad(rd, group, "must be a group name or a gid");
}

static void read_module_dirs(struct reader *rd, const config_setting_t *root, struct config *cfg)
{
    const config_setting_t *st = config_setting_get_member(root, "module_dirs");
    if (st == NULL)
        return;
    if (!config_setting_is_array(st) && !config_setting_is_list(st)) {
        bad(rd, st, "must be a list of directories [\"/dir\", ...]");
        return;
    }
    size_t len = 1;
    for (int i = 0; i < config_setting_length(st); i++) {
        const config_setting_t *e = config_setting_get_elem(st, (unsigned)i);
        const char *d = config_setting_get_string(e);
        if (d == NULL || d[0] != '/' || strchr(d, ':')) {
            bad(rd, st, "item %d must be an absolute directory without ':'", i + 1);
            return;
        }
        len += strlen(d) + 1;
    }
    if (config_setting_length(st) == 0) {
        bad(rd, st, "must name at least one directory");
        return;
    }
    cfg->module_dirs = xcalloc(1, len);
    for (int i = 0; i < config_setting_length(st); i++) {
        if (i)
            strcat(cfg->module_dirs, ":");
        strcat(cfg->module_dirs, config_setting_get_string_elem(st, (unsigned)i));
    }
}

static void read_log_level(struct reader *rd, const config_setting_t *root, struct config *cfg)
{
    static const struct {
        const char *name;
        int level;
    } levels[] = {
        {"error", LOG_ERR}, {"warning", LOG_WARN}, {"info", LOG_INFO}, {"debug", LOG_DEBUG}};
    const char *s = get_str(rd, root, "log_level");
    if (s == NULL)
        return;
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        if (strcmp(s, levels[i].name) == 0) {
            cfg->log_level = levels[i].level;
            return;
        }
    bad(rd, config_setting_get_member(root, "log_level"),
        "must be \"error\", \"warning\", \"info\" or \"debug\"");
}

/* A list of names or numbers, resolved by lookup (getpwnam or getgrnam). */
static void read_ids(struct reader *rd, const config_setting_t *admins, const char *key, bool users,
                     unsigned **out, size_t *n)
{
    const config_setting_t *st = admins ? config_setting_get_member(admins, key) : NULL;
    if (st == NULL)
        return;
    if (!config_setting_is_array(st) && !config_setting_is_list(st)) {
        bad(rd, st, "must be a list [\"name\", 1000, ...]");
        return;
    }
    *out = xcalloc((size_t)config_setting_length(st) + 1, sizeof **out);
    for (int i = 0; i < config_setting_length(st); i++) {
        const config_setting_t *e = config_setting_get_elem(st, (unsigned)i);
        const char *name = config_setting_get_string(e);
        if (is_int(e) && config_setting_get_int64(e) >= 0 &&
            config_setting_get_int64(e) < UINT32_MAX)
            (*out)[(*n)++] = (unsigned)config_setting_get_int64(e);
        else if (name && users && getpwnam(name))
            (*out)[(*n)++] = getpwnam(name)->pw_uid;
        else if (name && !users && getgrnam(name))
            (*out)[(*n)++] = getgrnam(name)->gr_gid;
        else if (name)
            bad(rd, st, "no %s named \"%s\"", users ? "user" : "group", name);
        else
            bad(rd, st, "item %d must be a name or a number", i + 1);
    }
}

static void read_limits(struct reader *rd, const config_setting_t *root, struct config *cfg)
{
    static const char *const keys[] = {"message_size",
                                       "message_depth",
                                       "connections",
                                       "pending",
                                       "timers",
                                       "mailbox",
                                       "mailbox_bytes",
                                       "partial_bytes",
                                       "partial_ms",
                                       "output_bytes",
                                       "slow_callback_ms",
                                       "shutdown_timeout_ms",
                                       "memory",
                                       "monitors",
                                       "slowlog_len",
                                       "slowlog_message_bytes",
                                       NULL};
    const config_setting_t *g = get_group(rd, root, "limits", keys);
    struct limits *l = &cfg->limits;
    uint64_t v = l->message.max_size;
    get_uint(rd, g, "message_size", 16, UINT32_MAX, &v);
    l->message.max_size = (size_t)v;
    v = l->message.max_depth;
    get_uint(rd, g, "message_depth", 1, GSP_MAX_DEPTH_HARD, &v);
    l->message.max_depth = (unsigned)v;
    get_u32(rd, g, "connections", 0, &l->connections);
    get_u32(rd, g, "pending", 0, &l->pending);
    get_u32(rd, g, "timers", 0, &l->timers);
    get_u32(rd, g, "mailbox", 0, &l->mailbox);
    get_uint(rd, g, "mailbox_bytes", 0, UINT64_MAX >> 1, &l->mailbox_bytes);
    get_uint(rd, g, "partial_bytes", 0, UINT64_MAX >> 1, &l->partial_bytes);
    get_u32(rd, g, "partial_ms", 0, &l->partial_ms);
    get_uint(rd, g, "output_bytes", 0, UINT64_MAX >> 1, &l->output_bytes);
    get_u32(rd, g, "shutdown_timeout_ms", 0, &l->shutdown_ms);
    get_uint(rd, g, "memory", 0, UINT64_MAX >> 1, &l->memory);
    get_u32(rd, g, "monitors", 0, &l->monitors);
    v = l->slowlog_len;
    get_uint(rd, g, "slowlog_len", 0, 1u << 20, &v);
    l->slowlog_len = (uint32_t)v;
    v = l->slowlog_message_bytes;
    get_uint(rd, g, "slowlog_message_bytes", 16, 1u << 20, &v);
    l->slowlog_message_bytes = (uint32_t)v;
    v = (uint64_t)cfg->slow_callback_ms;
    get_uint(rd, g, "slow_callback_ms", 1, INT32_MAX, &v);
    cfg->slow_callback_ms = (int64_t)v;
}

/* The intensity keys, in the supervision group or a server's. */
#define INTENSITY_KEYS "intensity", "period_ms", "backoff_ms", "backoff_max_ms"

static void read_intensity(struct reader *rd, const config_setting_t *g, struct intensity *in)
{
    if (g == NULL)
        return;
    get_u32(rd, g, "intensity", 0, &in->max_restarts);
    get_u32(rd, g, "period_ms", 1, &in->period_ms);
    get_u32(rd, g, "backoff_ms", 0, &in->backoff_ms);
    get_u32(rd, g, "backoff_max_ms", 0, &in->backoff_max_ms);
    if (in->backoff_max_ms < in->backoff_ms)
        bad(rd, g, "backoff_max_ms must be at least backoff_ms");
}

/* A libconfig value as msgpack: groups become maps keyed by setting name. */
static void pack_setting(msgpack_packer *pk, const config_setting_t *st)
{
    switch (config_setting_type(st)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        msgpack_pack_int64(pk, config_setting_get_int64(st));
        break;
    case CONFIG_TYPE_FLOAT:
        msgpack_pack_double(pk, config_setting_get_float(st));
        break;
    case CONFIG_TYPE_STRING:
        gsp_pack_str(pk, config_setting_get_string(st));
        break;
    case CONFIG_TYPE_BOOL:
        if (config_setting_get_bool(st))
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        break;
    case CONFIG_TYPE_GROUP:
        msgpack_pack_map(pk, (size_t)config_setting_length(st));
        for (int i = 0; i < config_setting_length(st); i++) {
            const config_setting_t *e = config_setting_get_elem(st, (unsigned)i);
            gsp_pack_str(pk, config_setting_name(e));
            pack_setting(pk, e);
        }
        break;
    default: /* array, list */
        msgpack_pack_array(pk, (size_t)config_setting_length(st));
        for (int i = 0; i < config_setting_length(st); i++)
            pack_setting(pk, config_setting_get_elem(st, (unsigned)i));
    }
}

/* A server's args: `args` (libconfig's own values), or `args_json`, or nil. */
static void read_args(struct reader *rd, const config_setting_t *g, struct child_spec *sp)
{
    const config_setting_t *native = config_setting_get_member(g, "args");
    const config_setting_t *json = config_setting_get_member(g, "args_json");
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (native && json)
        bad(rd, json, "give args or args_json, not both");
    if (native)
        pack_setting(&pk, native);
    else if (json && config_setting_type(json) != CONFIG_TYPE_STRING)
        bad(rd, json, "must be a string of JSON");
    else if (json) {
        json_error_t jerr;
        json_t *j = json_loads(config_setting_get_string(json), JSON_DECODE_ANY, &jerr);
        if (j == NULL)
            bad(rd, json, "not JSON: %s (column %d)", jerr.text, jerr.column);
        else {
            msgpack_zone *z = msgpack_zone_new(4096);
            if (z == NULL)
                gsp_oom(4096);
            msgpack_object o;
            json_mp_from_json(j, z, &o);
            msgpack_pack_object(&pk, o);
            msgpack_zone_free(z);
            json_decref(j);
        }
    }
    if (sb.size == 0)
        msgpack_pack_nil(&pk);
    if (!value_fits(sb.data, sb.size, 1))
        bad(rd, native ? native : json, "over the message limits");
    sp->args = (uint8_t *)sb.data; /* msgpack_sbuffer allocates with malloc */
    sp->args_len = sb.size;
}

static void spec_free(struct child_spec *sp)
{
    free(sp->isolate);
    free(sp->module);
    free(sp->name);
    free(sp->args);
}

/* isolate = true (a worker of its own: ""), "GROUP" or false (NULL). */
static char *read_isolate(struct reader *rd, const config_setting_t *st)
{
    if (config_setting_type(st) == CONFIG_TYPE_BOOL)
        return config_setting_get_bool(st) ? xstrndup("", 0) : NULL;
    const char *group = config_setting_get_string(st); /* NULL if not a string */
    if (group && gsp_name_valid(group, strlen(group)))
        return xstrndup(group, strlen(group));
    bad(rd, st, "must be true, false or a worker group's name");
    return NULL;
}

static char *isolate_default(const struct config *cfg, const char *module)
{
    for (size_t i = 0; i < cfg->nisolate; i++)
        if (strcmp(cfg->isolate[i].module, module) == 0)
            return cfg->isolate[i].group
                       ? xstrndup(cfg->isolate[i].group, strlen(cfg->isolate[i].group))
                       : NULL;
    return NULL;
}

/* isolate = { MODULE = true | "GROUP" | false; ... }: each module's default. */
static void read_isolate_defaults(struct reader *rd, const config_setting_t *root,
                                  struct config *cfg)
{
    const config_setting_t *g = config_setting_get_member(root, "isolate");
    if (g == NULL)
        return;
    if (!config_setting_is_group(g)) {
        bad(rd, g, "must be a group { MODULE = true | \"GROUP\" | false; ... }");
        return;
    }
    unsigned n = (unsigned)config_setting_length(g);
    cfg->isolate = xcalloc(n + 1, sizeof *cfg->isolate);
    for (unsigned i = 0; i < n; i++) {
        const config_setting_t *st = config_setting_get_elem(g, i);
        const char *module = config_setting_name(st);
        if (!gsp_module_name_valid(module, strlen(module))) {
            bad(rd, st, "must be a module's name");
            continue;
        }
        struct isolate_default *d = &cfg->isolate[cfg->nisolate++];
        d->module = xstrndup(module, strlen(module));
        d->group = read_isolate(rd, st);
    }
}

/* workers = { memory = BYTES; user = "NAME"; } */
static void read_workers(struct reader *rd, const config_setting_t *root, struct config *cfg)
{
    static const char *const keys[] = {"memory", "user", NULL};
    const config_setting_t *g = get_group(rd, root, "workers", keys);
    get_uint(rd, g, "memory", 0, UINT64_MAX >> 1, &cfg->workers.memory);
    const char *user = get_str(rd, g, "user");
    struct passwd *pw = user ? getpwnam(user) : NULL;
    if (user && pw == NULL)
        bad(rd, config_setting_get_member(g, "user"), "no such user \"%s\"", user);
    if (pw) {
        cfg->workers.uid = pw->pw_uid;
        cfg->workers.gid = pw->pw_gid;
    }
}

/* metrics = { listen = "HOST:PORT"; } */
static void read_metrics(struct reader *rd, const config_setting_t *root, struct config *cfg)
{
    static const char *const keys[] = {"listen", NULL};
    const config_setting_t *g = get_group(rd, root, "metrics", keys);
    const char *listen = get_str(rd, g, "listen");
    char host[256];
    uint16_t port;
    if (listen && !metrics_parse_listen(listen, host, sizeof host, &port))
        bad(rd, config_setting_get_member(g, "listen"),
            "must be \"HOST:PORT\" (an IPv6 address in brackets: \"[::1]:9464\")");
    else if (listen)
        cfg->metrics_listen = xstrndup(listen, strlen(listen));
}

/* distribution = { node = "gsd@host"; cookie_file = "..."; listen = "127.0.0.1"; port = 0;
 * tick_ms = 60000; } (dist.c reads the cookie file itself, at start) */
static void read_distribution(struct reader *rd, const config_setting_t *root, struct config *cfg)
{
    static const char *const keys[] = {"node", "cookie_file", "listen", "port", "tick_ms", NULL};
    const config_setting_t *g = get_group(rd, root, "distribution", keys);
    if (g == NULL)
        return;
    const char *node = get_str(rd, g, "node"), *cookie = get_str(rd, g, "cookie_file");
    const char *listen = get_str(rd, g, "listen");
    const char *at = node ? strchr(node, '@') : NULL;
    struct in_addr a;
    if (node == NULL || at == NULL || at == node || at[1] == 0 || strlen(node) > 255 ||
        strchr(at + 1, '@'))
        bad(rd, node ? config_setting_get_member(g, "node") : g,
            "must be \"name@host\" (at most 255 bytes)");
    if (cookie == NULL || cookie[0] != '/')
        bad(rd, cookie ? config_setting_get_member(g, "cookie_file") : g,
            "must be an absolute path");
    if (listen && inet_pton(AF_INET, listen, &a) != 1)
        bad(rd, config_setting_get_member(g, "listen"), "must be an IPv4 address");
    uint64_t port = 0, tick = 60000;
    get_uint(rd, g, "port", 0, 65535, &port);
    get_uint(rd, g, "tick_ms", 1000, 3600000, &tick);
    cfg->dist.node = node ? xstrndup(node, strlen(node)) : NULL;
    cfg->dist.cookie_file = cookie ? xstrndup(cookie, strlen(cookie)) : NULL;
    if (listen == NULL)
        listen = "127.0.0.1";
    cfg->dist.listen = xstrndup(listen, strlen(listen));
    cfg->dist.port = (uint16_t)port;
    cfg->dist.tick_ms = (uint32_t)tick;
}

static void read_server(struct reader *rd, const config_setting_t *g, struct config *cfg)
{
    static const char *const keys[] = {"name",
                                       "module",
                                       "args",
                                       "args_json",
                                       "restart",
                                       "mailbox_limit",
                                       "init_timeout_ms",
                                       "isolate",
                                       "hibernate_after_ms",
                                       INTENSITY_KEYS,
                                       NULL};
    if (!config_setting_is_group(g)) {
        bad(rd, g, "each server must be a group { name = ...; module = ...; }");
        return;
    }
    only(rd, g, keys);
    struct child_spec sp = {.restart = RESTART_PERMANENT,
                            .init_timeout = -1,
                            .hibernate_after = -1,
                            .intensity = cfg->intensity};
    struct seen *dup = NULL;
    const char *name = get_str(rd, g, "name"), *module = get_str(rd, g, "module");
    if (name == NULL)
        bad(rd, g, "a server needs a name = \"...\"");
    else if (!gsp_name_valid(name, strlen(name)))
        bad(rd, config_setting_get_member(g, "name"),
            "must be 1-255 bytes of UTF-8, not all digits");
    else {
        HASH_FIND_STR(rd->names, name, dup);
        if (dup)
            bad(rd, config_setting_get_member(g, "name"), "\"%s\" is declared twice", name);
        sp.name = xstrndup(name, strlen(name));
    }
    if (module == NULL)
        bad(rd, g, "a server needs a module = \"...\"");
    else if (!gsp_module_name_valid(module, strlen(module)))
        bad(rd, config_setting_get_member(g, "module"), "must be a name of [A-Za-z0-9_-]");
    else
        sp.module = xstrndup(module, strlen(module));
    const char *restart = get_str(rd, g, "restart");
    bool ok = true;
    if (restart)
        sp.restart = restart_from_name(restart, strlen(restart), &ok);
    if (!ok)
        bad(rd, config_setting_get_member(g, "restart"),
            "must be \"permanent\", \"transient\" or \"temporary\"");
    get_u32(rd, g, "mailbox_limit", 0, &sp.mailbox_limit);
    uint64_t t = UINT64_MAX;
    get_uint(rd, g, "init_timeout_ms", 0, INT32_MAX, &t);
    sp.init_timeout = t == UINT64_MAX ? -1 : (int64_t)t;
    t = UINT64_MAX;
    get_uint(rd, g, "hibernate_after_ms", 0, INT32_MAX, &t);
    sp.hibernate_after = t == UINT64_MAX ? -1 : (int64_t)t;
    read_intensity(rd, g, &sp.intensity);
    const config_setting_t *iso = config_setting_get_member(g, "isolate");
    if (iso)
        sp.isolate = read_isolate(rd, iso);
    else if (sp.module)
        sp.isolate = isolate_default(cfg, sp.module);
    read_args(rd, g, &sp);
    if (sp.name == NULL || sp.module == NULL) {
        spec_free(&sp);
        return;
    }
    if (!dup) { /* the first declaration is the one a later one is reported against */
        struct seen *e = &rd->pool[cfg->nservers];
        e->name = sp.name;
        HASH_ADD_KEYPTR(hh, rd->names, e->name, strlen(e->name), e);
    }
    cfg->servers[cfg->nservers++] = sp; /* room for the whole list: config_load */
}

/* The compiled-in defaults, saved before any configuration changes them. */
static void defaults(struct config *cfg)
{
    static struct limits lim;
    static int64_t slow;
    static int level;
    static struct intensity in;
    static bool saved;
    if (!saved) {
        lim = limits;
        slow = slow_callback_ms;
        level = log_level;
        in = intensity_default;
        saved = true;
    }
    memset(cfg, 0, sizeof *cfg);
    cfg->socket_mode = 0660;
    cfg->socket_group = (gid_t)-1;
    cfg->limits = lim;
    cfg->slow_callback_ms = slow;
    cfg->log_level = level;
    cfg->intensity = in;
    cfg->workers = (struct worker_settings){0, (uid_t)-1, (gid_t)-1};
}

int config_load(const char *path, bool must_exist, struct config *cfg, char *err, size_t errlen)
{
    struct reader rd = {.file = path, .err = err, .errlen = errlen};
    defaults(cfg);
    if (!must_exist && access(path, F_OK) < 0 && errno == ENOENT)
        return 0;
    config_t lc;
    config_init(&lc);
    if (config_read_file(&lc, path) != CONFIG_TRUE) {
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        else
            snprintf(err, errlen, "%s:%d: %s",
                     config_error_file(&lc) ? config_error_file(&lc) : path, config_error_line(&lc),
                     config_error_text(&lc));
        log_msg(LOG_ERR, "%s", err);
        config_destroy(&lc);
        return -1;
    }
    static const char *const keys[] = {"socket",  "module_dirs", "log_level",    "admins",
                                       "limits",  "supervision", "workers",      "isolate",
                                       "servers", "metrics",     "distribution", NULL};
    static const char *const admin_keys[] = {"users", "groups", NULL};
    static const char *const sup_keys[] = {INTENSITY_KEYS, NULL};
    const config_setting_t *root = config_root_setting(&lc);
    only(&rd, root, keys);
    read_socket(&rd, root, cfg);
    read_module_dirs(&rd, root, cfg);
    read_log_level(&rd, root, cfg);
    const config_setting_t *admins = get_group(&rd, root, "admins", admin_keys);
    read_ids(&rd, admins, "users", true, &cfg->admin_uids, &cfg->nadmin_uids);
    read_ids(&rd, admins, "groups", false, &cfg->admin_gids, &cfg->nadmin_gids);
    read_limits(&rd, root, cfg);
    read_intensity(&rd, get_group(&rd, root, "supervision", sup_keys), &cfg->intensity);
    read_workers(&rd, root, cfg);
    read_isolate_defaults(&rd, root, cfg); /* before the servers, whose default it is */
    read_metrics(&rd, root, cfg);
    read_distribution(&rd, root, cfg);
    const config_setting_t *servers = config_setting_get_member(root, "servers");
    if (servers && !config_setting_is_list(servers))
        bad(&rd, servers, "must be a list ( { name = ...; module = ...; }, ... )");
    else if (servers && config_setting_length(servers) > 0) {
        /* Sized once: growing by one per server copies the array each time. */
        size_t n = (size_t)config_setting_length(servers);
        cfg->servers = xcalloc(n, sizeof *cfg->servers);
        rd.pool = xcalloc(n, sizeof *rd.pool);
        for (size_t i = 0; i < n; i++)
            read_server(&rd, config_setting_get_elem(servers, (unsigned)i), cfg);
        HASH_CLEAR(hh, rd.names);
        free(rd.pool);
    }
    config_destroy(&lc);
    if (rd.errors) {
        config_free(cfg);
        return -1;
    }
    return 0;
}

void config_free(struct config *cfg)
{
    free(cfg->socket);
    free(cfg->module_dirs);
    free(cfg->admin_uids);
    free(cfg->admin_gids);
    for (size_t i = 0; i < cfg->nservers; i++)
        spec_free(&cfg->servers[i]);
    free(cfg->servers);
    for (size_t i = 0; i < cfg->nisolate; i++) {
        free(cfg->isolate[i].module);
        free(cfg->isolate[i].group);
    }
    free(cfg->isolate);
    free(cfg->metrics_listen);
    free(cfg->dist.node);
    free(cfg->dist.cookie_file);
    free(cfg->dist.listen);
    memset(cfg, 0, sizeof *cfg);
}
