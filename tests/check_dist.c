/*
 * check_dist.c — gsd as a hidden Erlang node, driven by real Elixir nodes.
 *
 * Each test starts a private epmd on a free loopback port (ERL_EPMD_PORT
 * and ERL_EPMD_ADDRESS are set for everything it starts), a daemon with a
 * distribution section and a cookie file of mode 0600, and one `elixir`
 * script bounded by timeout(1) whose stdout it reads. Everything is
 * stopped by PID. Without elixir on the PATH the suite fails, saying so.
 *
 * "outbound" turns it around: gsd's clients and modules call, cast to, send
 * to and monitor servers on other nodes by remote reference (NAME@NODE to
 * gsctl, [name, node] in requests): a second daemon on the same epmd, a
 * node that cannot be reached, one killed mid-call, and a GenServer in an
 * Elixir script run in the background (elixir_bg) while the test drives
 * gsctl.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define COOKIE "gsd-test-cookie"

static pid_t epmd_pid = -1;
static char dir[128], node[64]; /* the daemon's (A's) */
static struct gsd *d;
static char dir_b[128], node_b[64]; /* a second daemon's, B's (start_b) */
static struct gsd *d_b;
static const char *extra_conf = ""; /* appended to the configuration start() writes */
static int dist_port;               /* the daemon's distribution listener */

static void epmd_stop(void)
{
    if (epmd_pid > 0) {
        kill(epmd_pid, SIGTERM);
        waitpid(epmd_pid, NULL, 0);
        epmd_pid = -1;
    }
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    ck_assert_int_eq(chmod(path, mode), 0);
}

/* A new directory for a daemon's cookie and configuration, in buf. */
static void make_dir(char *buf, size_t n)
{
    const char *root = getenv("GSD_TEST_ROOT");
    snprintf(buf, n, "%s/dist-XXXXXX", root && *root ? root : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(buf));
}

/* Writes where/cookie (mode cookie_mode) and where/gsd.conf: node name,
 * with counter, probe, icounter (a counter in a worker), iprobe (a probe in
 * a worker) and victim (a probe) declared, and extra_conf. */
static void node_config(const char *where, const char *name, mode_t cookie_mode)
{
    char path[256], conf[1024];
    snprintf(path, sizeof path, "%s/cookie", where);
    write_file(path, COOKIE "\n", cookie_mode);
    snprintf(conf, sizeof conf,
             "distribution = { node = \"%s\"; cookie_file = \"%s\"; tick_ms = 4000; };\n"
             "servers = ( { name = \"counter\"; module = \"counter\"; },\n"
             "  { name = \"probe\"; module = \"probe\"; },\n"
             "  { name = \"icounter\"; module = \"counter\"; isolate = true; },\n"
             "  { name = \"iprobe\"; module = \"probe\"; isolate = true; },\n"
             "  { name = \"victim\"; module = \"probe\"; restart = \"temporary\"; } );\n%s",
             name, path, extra_conf);
    snprintf(path, sizeof path, "%s/gsd.conf", where);
    write_file(path, conf, 0644);
}

/* Starts a daemon on where/gsd.conf and waits until it has published its
 * node; its distribution port in *port (if port). */
static struct gsd *node_run(const char *where, int *port)
{
    char path[256], cmd[256];
    snprintf(path, sizeof path, "%s/gsd.conf", where);
    struct gsd *g = gsd_start_with((const char *const[]){"-c", path, NULL});
    /* Its socket may answer a moment before the node is published. */
    snprintf(cmd, sizeof cmd,
             "sed -n 's/.*distribution: node .* listening on 127.0.0.1:\\([0-9]*\\).*/\\1/p' '%s'",
             g->log);
    int st, p = 0;
    for (int i = 0; i < 200 && (p = atoi(shell_output(cmd, &st))) == 0; i++)
        usleep(50000);
    ck_assert_msg(p > 0, "the daemon did not join: no distribution line in its log");
    if (port)
        *port = p;
    return g;
}

/* epmd, then a daemon (node_config, node_run) on node gsdPID@localhost. */
static void start(mode_t cookie_mode, bool expect_start)
{
    char port[16];
    make_dir(dir, sizeof dir);
    snprintf(node, sizeof node, "gsd%d@localhost", (int)getpid());
    int p = free_port();
    snprintf(port, sizeof port, "%d", p);
    setenv("ERL_EPMD_PORT", port, 1);
    setenv("ERL_EPMD_ADDRESS", "127.0.0.1", 1);
    setenv("HOME", dir, 1); /* the BEAM writes .erlang.cookie there otherwise */
    epmd_pid = fork();
    ck_assert_int_ge(epmd_pid, 0);
    if (epmd_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);       /* gone with the test, even one Check kills */
        if (!freopen("/dev/null", "w", stderr)) /* its notes on every probe of the port */
            _exit(127);
        execlp("epmd", "epmd", "-port", port, "-address", "127.0.0.1", (char *)NULL);
        _exit(127);
    }
    atexit(epmd_stop);
    for (int i = 0; i < 100 && !port_open(p); i++)
        usleep(50000);
    ck_assert_msg(port_open(p), "epmd did not start");
    node_config(dir, node, cookie_mode);
    if (expect_start)
        d = node_run(dir, &dist_port);
}

/* A second daemon, B, on node gsdbPID@localhost: the same epmd, cookie and
 * servers. After start(). */
static void start_b(void)
{
    make_dir(dir_b, sizeof dir_b);
    snprintf(node_b, sizeof node_b, "gsdb%d@localhost", (int)getpid());
    node_config(dir_b, node_b, 0600);
    d_b = node_run(dir_b, NULL);
}

/* Stops a daemon with SIGTERM: a clean exit, under valgrind no error and
 * no leak (its log, if not). NULL is ignored. */
static void node_stop(struct gsd **g)
{
    if (*g == NULL)
        return;
    int st = gsd_wait_exit(*g, SIGTERM, 30000);
    if (st != 0) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "cat '%s' >&2", (*g)->log);
        ck_assert_int_ge(system(cmd), 0);
    }
    gsd_stop(g);
    ck_assert_int_eq(st, 0);
}

static void stop(void)
{
    node_stop(&d_b);
    node_stop(&d);
    epmd_stop();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    if (*dir_b) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir_b);
        ck_assert_int_eq(system(cmd), 0);
    }
}

/* Runs an Elixir script (n is the daemon's node, connected first) on a
 * node of its own; its stdout and stderr. */
static char *elixir_as(const char *cookie, const char *body, int *status)
{
    static int seq;
    char path[256], cmd[1024];
    snprintf(path, sizeof path, "%s/t%d.exs", dir, ++seq);
    char *script = NULL;
    ck_assert_int_ge(asprintf(&script,
                              "n = :\"%s\"\n"
                              "IO.puts(\"connect=#{Node.connect(n)}\")\n"
                              "%s\n",
                              node, body),
                     0);
    write_file(path, script, 0644);
    free(script);
    snprintf(cmd, sizeof cmd, "timeout -s KILL 60 elixir --sname t%d_%d --cookie %s %s 2>&1",
             (int)getpid(), seq, cookie, path);
    return shell_output(cmd, status);
}

static char *elixir(const char *body)
{
    int st;
    char *out = elixir_as(COOKIE, body, &st);
    ck_assert_msg(strstr(out, "connect=true"), "no connection: %s", out);
    return out;
}

#define HAS(out, s) ck_assert_msg(strstr((out), (s)) != NULL, "wanted %s in:\n%s", (s), (out))

START_TEST(call_and_cast)
{
    start(0600, true);
    char *out = elixir("IO.puts(\"a=#{GenServer.call({:counter, n}, :get)}\")\n"
                       "IO.puts(\"b=#{GenServer.call({:counter, n}, :increment)}\")\n"
                       "GenServer.cast({:counter, n}, :increment)\n"
                       "GenServer.cast({:counter, n}, {:add, 5})\n"
                       "IO.puts(\"c=#{GenServer.call({:counter, n}, :get)}\")\n"
                       "IO.puts(\"d=#{GenServer.call({:counter, n}, {:add, -7})}\")\n"
                       "{r, []} = GenServer.multi_call([n], :counter, :get)\n"
                       "GenServer.abcast([n], :counter, :increment)\n"
                       "IO.puts(\"e=#{inspect(r)} f=#{GenServer.call({:counter, n}, :get)}\")\n"
                       "GenServer.cast({:icounter, n}, {:add, 2})\n"
                       "IO.puts(\"g=#{GenServer.call({:icounter, n}, :increment)}\")\n");
    HAS(out, "a=0");
    HAS(out, "b=1");
    HAS(out, "c=7");
    HAS(out, "d=0");
    HAS(out, "e=[gsd");
    HAS(out, "@localhost: 0] f=1");
    HAS(out, "g=3"); /* an isolated server: its worker runs the callbacks */
    stop();
}
END_TEST

START_TEST(send_to_info)
{
    start(0600, true);
    char *out = elixir("send({:probe, n}, :hello)\n"
                       "send({:probe, n}, {:tagged, \"text\", 3})\n"
                       "IO.puts(\"infos=#{inspect(GenServer.call({:probe, n}, :infos))}\")\n");
    /* A send has no request to compare with: its tuple comes back a list. */
    HAS(out, "infos=[:hello, [:tagged, \"text\", 3]]");
    stop();
}
END_TEST

START_TEST(noproc_at_once)
{
    start(0600, true);
    char *out = elixir(
        "t = System.monotonic_time(:millisecond)\n"
        "r = try do GenServer.call({:nobody, n}, :x, 3000) catch :exit, {e, _} -> e end\n"
        "ref = Process.monitor({:nobody, n})\n"
        "m = receive do {:DOWN, ^ref, :process, who, why} -> {who, why} after 3000 -> :none end\n"
        "IO.puts(\"call=#{inspect(r)} down=#{inspect(m)} "
        "fast=#{System.monotonic_time(:millisecond) "
        "- t < 2000}\")\n");
    HAS(out, "call=:noproc down={{:nobody, :");
    HAS(out, ":noproc} fast=true");
    stop();
}
END_TEST

START_TEST(monitor_down_reason)
{
    start(0600, true);
    char *out = elixir("ref = Process.monitor({:victim, n})\n"
                       "GenServer.cast({:victim, n}, {:stop, {:shutdown, :bye}})\n"
                       "m = receive do {:DOWN, ^ref, :process, _, why} -> why after 3000 -> :none "
                       "end\n"
                       "IO.puts(\"down=#{inspect(m)}\")\n"
                       "ref2 = Process.monitor({:counter, n})\n"
                       "Process.demonitor(ref2)\n"
                       "IO.puts(\"get=#{GenServer.call({:counter, n}, :get)}\")\n");
    HAS(out, "down={:shutdown, :bye}");
    HAS(out, "get=0");
    stop();
}
END_TEST

START_TEST(round_trips)
{
    start(0600, true);
    char *out = elixir(
        "vs = [:foo, :\"with space\", {1, :a, \"b\"}, {}, {{:nested}, [1]}, [1, 2, 3], [], "
        "'chars', \"bin\", <<255, 0>>, <<>>, %{\"k\" => [2], :a => {1}}, %{}, 0, 255, 256, -1, "
        "2147483647, -2147483648, 9223372036854775807, 18446744073709551615, "
        "Bitwise.bsl(1, 80), -Bitwise.bsl(1, 70), 3.14, -0.5, self(), make_ref(), "
        "hd(Port.list()), fn x -> x end, &IO.puts/1, nil, true, false, [1 | 2]]\n"
        "for v <- vs do\n"
        "  r = GenServer.call({:probe, n}, {:echo, v})\n"
        "  IO.puts(\"#{if r === v, do: \"same\", else: \"DIFFERENT\"} #{inspect(v)} -> "
        "#{inspect(r)}\")\n"
        "end\n");
    ck_assert_msg(strstr(out, "DIFFERENT") == NULL, "%s", out);
    HAS(out, "same :foo");
    HAS(out, "same {1, :a, \"b\"}");
    HAS(out, "same #PID<");
    HAS(out, "same #Reference<");
    HAS(out, "same 1208925819614629174706176");
    HAS(out, "same [1 | 2]");
    stop();
}
END_TEST

START_TEST(wrong_cookie)
{
    start(0600, true);
    int st;
    char *out = elixir_as("not-the-cookie", "IO.puts(\"still=up\")\n", &st);
    HAS(out, "connect=false");
    char *ping = NULL;
    ck_assert_int_eq(run_gsctl(d, &ping, NULL, "ping", NULL), 0);
    ck_assert_int_ge(log_count(d, "handshake from"), 1);
    stop();
}
END_TEST

START_TEST(cookie_mode_refused)
{
    start(0644, false);
    char path[256], cmd[512];
    snprintf(path, sizeof path, "%s/gsd.conf", dir);
    snprintf(cmd, sizeof cmd, "timeout 10 %s/gsd -c %s -s %s/x.sock 2>&1", gsd_build(), path, dir);
    int st;
    char *out = shell_output(cmd, &st);
    ck_assert_int_ne(WEXITSTATUS(st), 0);
    HAS(out, "no one else");
    stop();
}
END_TEST

START_TEST(admin_unreachable)
{
    start(0600, true);
    char *out = elixir(
        "r = :rpc.call(n, :erlang, :halt, [], 2000)\n"
        "IO.puts(\"rpc=#{elem(r, 0)}\")\n"
        "s = try do GenServer.call({:stop, n}, \"counter\", 2000) catch :exit, {e, _} -> e end\n"
        "IO.puts(\"stop=#{inspect(s)}\")\n"
        "IO.puts(\"get=#{GenServer.call({:counter, n}, :get)}\")\n");
    HAS(out, "rpc=badrpc");
    HAS(out, "stop=:noproc");
    HAS(out, "get=0");
    char *info = NULL;
    ck_assert_int_eq(run_gsctl(d, &info, NULL, "info", "counter", NULL), 0);
    stop();
}
END_TEST

START_TEST(peer_killed)
{
    start(0600, true);
    /* The call waits 1.5 s in the probe; its node is killed meanwhile. */
    int st;
    char *out = elixir_as(
        COOKIE,
        "spawn(fn -> GenServer.call({:probe, n}, {:reply_after, 1500, :late}, 10000) end)\n"
        "Process.sleep(300)\n"
        "IO.puts(\"killing\")\n"
        ":os.cmd(String.to_charlist(\"kill -9 #{System.pid()}\"))\n"
        "Process.sleep(5000)\n",
        &st);
    HAS(out, "killing");
    sleep(2); /* the late reply has gone nowhere */
    char *o = NULL;
    ck_assert_int_eq(run_gsctl(d, &o, NULL, "call", "probe", "[\"echo\", 5]", NULL), 0);
    ck_assert_msg(strstr(o, "5"), "%s", o);
    ck_assert_int_ge(log_count(d, "disconnected"), 1);
    /* Its gs_from_waiting is false: a second caller still gets served. */
    out = elixir("IO.puts(\"echo=#{GenServer.call({:probe, n}, {:echo, :ok})}\")\n");
    HAS(out, "echo=ok");
    stop();
}
END_TEST

START_TEST(caller_gives_up)
{
    start(0600, true);
    char *out = elixir("r = try do GenServer.call({:probe, n}, {:reply_after, 800, :late}, 200) "
                       "catch :exit, {e, _} "
                       "-> e end\n"
                       "Process.sleep(1200)\n"
                       "late = receive do m -> m after 0 -> :nothing end\n"
                       "IO.puts(\"r=#{inspect(r)} late=#{inspect(late)}\")\n");
    HAS(out, "r=:timeout late=:nothing");
    stop();
}
END_TEST

START_TEST(nodes_method)
{
    start(0600, true);
    char body[1024];
    snprintf(body, sizeof body,
             "{o, _} = System.cmd(\"%s/gsctl\", [\"-s\", \"%s\", \"nodes\"])\n"
             "{st, _} = System.cmd(\"%s/gsctl\", [\"-s\", \"%s\", \"stats\"])\n"
             "IO.puts(\"count=#{Regex.run(~r/\"nodes\":\\d+/, st)} nodes=#{String.trim(o)} "
             "me=#{node()}\")\n",
             gsd_build(), d->sock, gsd_build(), d->sock);
    char *out = elixir(body);
    char *at = strstr(out, "me=");
    ck_assert_ptr_nonnull(at);
    char me[128];
    snprintf(me, sizeof me, "%s", at + 3);
    me[strcspn(me, "\n")] = 0;
    HAS(out, me);
    HAS(out, "count=\"nodes\":1 "); /* stats counts it too */
    ck_assert_msg(strstr(out, "nodes=") && strstr(strstr(out, "nodes="), me) < at, "%s", out);
    char *o = NULL;
    for (int i = 0; i < 30; i++) { /* the node's close is seen as it exits */
        ck_assert_int_eq(run_gsctl(d, &o, NULL, "nodes", NULL), 0);
        if (strstr(o, "[]"))
            break;
        usleep(100000);
    }
    ck_assert_msg(strstr(o, "[]"), "after: %s", o);
    stop();
}
END_TEST

START_TEST(message_over_the_limit)
{
    extra_conf = "limits = { message_size = 65536; };\n";
    start(0600, true);
    char *out = elixir("Node.monitor(n, true)\n"
                       "send({:probe, n}, :binary.copy(\"x\", 200000))\n"
                       "r = receive do {:nodedown, ^n} -> :nodedown after 5000 -> :up end\n"
                       "IO.puts(\"r=#{r}\")\n");
    HAS(out, "r=nodedown");
    ck_assert_int_ge(log_count(d, "over the limit"), 1);
    char *o = NULL;
    ck_assert_int_eq(run_gsctl(d, &o, NULL, "call", "probe", "infos", NULL), 0);
    ck_assert_msg(strstr(o, "[]"), "the message arrived: %s", o);
    stop();
}
END_TEST

/* A peer holds at most limits.monitors monitors: the next is answered at
 * once with :system_limit, the others stay. A reload applies tick_ms at
 * once (and says nothing of the next start). */
START_TEST(monitor_limit_and_tick_reload)
{
    extra_conf = "limits = { monitors = 2; };\n";
    start(0600, true);
    char *out =
        elixir("r = for _ <- 1..3, do: Process.monitor({:counter, n})\n"
               "d = receive do {:DOWN, _, :process, _, why} -> why after 2000 -> :none end\n"
               "d2 = receive do {:DOWN, _, :process, _, why} -> why after 500 -> :none end\n"
               "IO.puts(\"monitors=#{length(r)} down=#{inspect(d)} more=#{inspect(d2)}\")\n");
    HAS(out, "monitors=3 down=:system_limit more=:none");
    char path[256], cmd[512];
    snprintf(path, sizeof path, "%s/gsd.conf", dir);
    snprintf(cmd, sizeof cmd, "sed -i 's/tick_ms = 4000/tick_ms = 8000/' '%s'", path);
    ck_assert_int_eq(system(cmd), 0);
    kill(d->pid, SIGHUP);
    for (int i = 0; i < 100 && log_count(d, "distribution: tick 8000 ms") == 0; i++)
        usleep(50000);
    ck_assert_int_eq(log_count(d, "distribution: tick 8000 ms"), 1);
    ck_assert_int_eq(log_count(d, "changes at the next start"), 0);
    stop();
}
END_TEST

/* Connections that never finish their handshake hold up nothing: the
 * daemon's socket answers at once, and a real peer is served. */
START_TEST(stalled_handshakes)
{
    start(0600, true);
    int port = dist_port, fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        ck_assert_int_eq(connect(fds[i], (struct sockaddr *)&a, sizeof a), 0);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(run_gsctl(d, NULL, NULL, "ping", NULL), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    ck_assert_msg(ms < 2500, "ping took %ld ms", ms); /* a handshake on the loop: 5 s */
    char *out = elixir("IO.puts(\"get=#{GenServer.call({:counter, n}, :get)}\")\n");
    HAS(out, "get=0");
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    stop();
}
END_TEST

/* ---- outbound: gsd's clients and modules calling other nodes ----------- */

/* gsctl -s G's socket ARGV...: fails the test at the caller's line unless
 * it exits with rc and, where want is not NULL, its stdout is exactly want
 * (one line; the newline aside). Returns its stdout without the newline,
 * and its stderr in *err if err. */
static char *ctl_at(const char *file, int line, struct gsd *g, int rc, const char *want, char **err,
                    const char *const *argv)
{
    char cmdline[1024] = "";
    for (int i = 0; argv[i]; i++)
        snprintf(cmdline + strlen(cmdline), sizeof cmdline - strlen(cmdline), " %s", argv[i]);
    struct proc *p = gsctl_spawn(g->sock, argv);
    char *out = NULL, *e = NULL;
    int st = gsctl_wait(&p, 20000, &out, &e);
    size_t n = strlen(out);
    if (n > 0 && out[n - 1] == '\n')
        out[n - 1] = '\0';
    if (st != rc || (want && strcmp(out, want) != 0)) {
        char msg[4096];
        snprintf(msg, sizeof msg,
                 "gsctl%s: exit %d, stdout <%s>, stderr <%s>; wanted exit %d%s%s%s", cmdline, st,
                 out, e, rc, want ? ", stdout <" : "", want ? want : "", want ? ">" : "");
        _ck_assert_failed(file, line, "Failed", "%s", msg);
    }
    if (err)
        *err = e;
    return out;
}
#define CTL(g, rc, want, ...)                                                                      \
    ctl_at(__FILE__, __LINE__, (g), (rc), (want), NULL, (const char *const[]){__VA_ARGS__, NULL})

/* The same for a request the daemon answers with an error: exit 1, nothing
 * on stdout, stderr "CODE: ...". Returns its stderr. */
static char *ctl_err_at(const char *file, int line, struct gsd *g, const char *code,
                        const char *const *argv)
{
    char *err = NULL;
    ctl_at(file, line, g, 1, "", &err, argv);
    size_t n = strlen(code);
    if (strncmp(err, code, n) != 0 || strncmp(err + n, ": ", 2) != 0) {
        char msg[2048];
        snprintf(msg, sizeof msg, "gsctl %s: wanted error %s, stderr <%s>", argv[0], code, err);
        _ck_assert_failed(file, line, "Failed", "%s", msg);
    }
    return err;
}
#define CTL_ERR(g, code, ...)                                                                      \
    ctl_err_at(__FILE__, __LINE__, (g), (code), (const char *const[]){__VA_ARGS__, NULL})

/* A monitor of server from client c; its ref. */
static uint64_t monitor_of(gsc *c, const char *server)
{
    gsc_reply *r = NULL;
    const msgpack_object *ref = OK(gsc_monitor(c, server, &r), &r);
    ck_assert_msg(ref->type == MSGPACK_OBJECT_POSITIVE_INTEGER, "monitor %s: %s", server,
                  mp_str(ref));
    return ref->via.u64;
}

/* The next down notification of c, which must be for ref, name and reason
 * (reason as mp text). */
#define WANT_DOWN(c, ref, nm, ...)                                                                 \
    do {                                                                                           \
        gsc_down *dn_ = DOWN((c), 8000);                                                           \
        ck_assert_uint_eq(dn_->ref, (ref));                                                        \
        ck_assert_uint_eq(dn_->id, 0); /* a remote process has no id here */                       \
        ck_assert_mp_eq(&dn_->name, "%s", (nm));                                                   \
        ck_assert_mp_eq(&dn_->reason, __VA_ARGS__);                                                \
        gsc_down_destroy(&dn_);                                                                    \
    } while (0)

/* Polls `gsctl call SERVER infos` on g for up to ms until it prints want;
 * fails with what it printed last. */
#define WANT_INFOS(g, server, ms, want)                                                            \
    do {                                                                                           \
        char *inf_ = NULL;                                                                         \
        WAIT_UNTIL((ms),                                                                           \
                   strcmp(inf_ = CTL((g), 0, NULL, "call", (server), "infos"), (want)) == 0);      \
        ck_assert_str_eq(inf_, (want));                                                            \
    } while (0)

/* An Elixir script run in the background by elixir_bg. */
struct bg {
    pid_t pid;
    char out[256];  /* the file its stdout and stderr go to */
    char node[128]; /* its node, from the line node=NAME it prints */
};

/* Starts an Elixir script on a node of its own in the background (stdout
 * and stderr to a file), and returns once it has printed node=NAME, which
 * the script does when it is ready for the test. The script ends by itself
 * (bound its waits); bg_stop ends it by PID if it has not. It dies with the
 * test, too: `elixir` execs the BEAM in the process we fork, which has
 * PR_SET_PDEATHSIG. */
static void elixir_bg(const char *body, struct bg *b)
{
    static int seq;
    char path[256], name[64];
    snprintf(path, sizeof path, "%s/bg%d.exs", dir, ++seq);
    snprintf(b->out, sizeof b->out, "%s/bg%d.out", dir, seq);
    snprintf(name, sizeof name, "bg%d_%d", (int)getpid(), seq);
    write_file(path, body, 0644);
    pid_t parent = getpid();
    b->pid = fork();
    ck_assert_int_ge(b->pid, 0);
    if (b->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(b->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int null = open("/dev/null", O_RDONLY);
        if (getppid() != parent || fd < 0 || null < 0)
            _exit(127);
        dup2(null, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execlp("elixir", "elixir", "--sname", name, "--cookie", COOKIE, path, (char *)NULL);
        _exit(127);
    }
    b->node[0] = '\0';
    int64_t end = now_ms() + 30000;
    char *text = NULL;
    while (now_ms() < end) {
        text = file_read(b->out);
        char *at = text ? strstr(text, "node=") : NULL;
        if (at && strchr(at, '\n')) {
            snprintf(b->node, sizeof b->node, "%.*s", (int)strcspn(at + 5, "\n"), at + 5);
            return;
        }
        if (waitpid(b->pid, NULL, WNOHANG) == b->pid) {
            b->pid = -1;
            break;
        }
        sleep_ms(50);
    }
    ck_abort_msg("the Elixir script never said node=: %s", text ? text : "(no output)");
}

/* Waits up to ms for the script to end; its output, or NULL if it is still
 * running. */
static char *bg_wait(struct bg *b, int ms)
{
    int64_t end = now_ms() + ms;
    while (b->pid > 0) {
        if (waitpid(b->pid, NULL, WNOHANG) == b->pid)
            b->pid = -1;
        else if (now_ms() >= end)
            return NULL;
        else
            sleep_ms(20);
    }
    char *text = file_read(b->out);
    return text ? text : "";
}

/* Ends the script (by its PID) if it is still running. */
static void bg_stop(struct bg *b)
{
    if (b->pid > 0) {
        kill(b->pid, SIGTERM);
        if (bg_wait(b, 10000) == NULL) {
            kill(b->pid, SIGKILL);
            waitpid(b->pid, NULL, 0);
            b->pid = -1;
        }
    }
}

/* Two daemons on one epmd: A's clients and modules reach B's servers as
 * NAME@NODE or [name, node]. */
START_TEST(two_daemons)
{
    start(0600, true);
    start_b();
    char counter_b[128], probe_b[128];
    snprintf(counter_b, sizeof counter_b, "counter@%s", node_b);
    snprintf(probe_b, sizeof probe_b, "probe@%s", node_b);
    ck_assert_str_eq(CTL(d, 0, NULL, "nodes"), "[]"); /* connected on demand */
    CTL(d, 0, "0", "call", counter_b, "get");
    CTL(d, 0, "1", "call", counter_b, "increment");
    CTL(d, 0, "null", "cast", counter_b, "[\"add\", 40]");
    CTL(d, 0, "41", "call", counter_b, "get");   /* one connection: the cast came first */
    CTL(d_b, 0, "41", "call", "counter", "get"); /* B's own counter it is */
    CTL(d, 0, "0", "call", "counter", "get");    /* A's is untouched */
    CTL(d, 0, "null", "send", probe_b, "[\"hi\", 1]");
    CTL(d, 0, "[[\"hi\",1]]", "call", probe_b, "infos");
    CTL(d, 0, "[1,\"x\",{\"a\":2.5}]", "call", probe_b, "[\"echo\", [1, \"x\", {\"a\": 2.5}]]");
    /* B's {hello, [1, "x"]}: an atom and a tuple from Erlang, as a client sees them. */
    CTL(d, 0, "[\"hello\",[1,\"x\"]]", "call", probe_b, "[\"tagged\", \"hello\", [1, \"x\"]]");
    char *err = CTL_ERR(d, "noproc", "call", fmt("nothere@%s", node_b), "get");
    HAS(err, fmt("nothere on %s", node_b));
    /* As in Erlang, a cast or send to a name that is not there is lost. */
    CTL(d, 0, "null", "cast", fmt("nothere@%s", node_b), "x");
    CTL(d, 0, "null", "send", fmt("nothere@%s", node_b), "x");
    /* A call past its timeout, and one whose server stops without a reply. */
    int64_t t0 = now_ms();
    HAS(CTL_ERR(d, "timeout", "-t", "500", "call", probe_b, "[\"reply_after\", 3000, 1]"), probe_b);
    ck_assert_int_lt(now_ms() - t0, 2500);
    HAS(CTL_ERR(d, "exit", "call", fmt("iprobe@%s", node_b), "[\"stop_noreply\", \"boom\"]"),
        ": boom");
    /* [name, own node] is local: A's counter, and no connection to itself. */
    CTL(d, 0, "0", "call", fmt("counter@%s", node), "get");
    CTL(d, 0, "null", "cast", fmt("counter@%s", node), "increment");
    CTL(d, 0, "1", "call", "counter", "get");
    CTL(d, 0, fmt("[\"%s\"]", node_b), "nodes");
    CTL(d_b, 0, fmt("[\"%s\"]", node), "nodes");

    /* Modules: the probe (in the loop) and iprobe (in a worker) call B. */
    CTL(d, 0, "[\"ok\",41]", "call", "probe",
        fmt("[\"call\", [\"counter\", \"%s\"], \"get\", 5000]", node_b));
    CTL(d, 0, "[\"ok\",42]", "call", "iprobe",
        fmt("[\"call\", [\"counter\", \"%s\"], \"increment\", 5000]", node_b));
    CTL(d, 0, "[\"ok\",3]", "call", "iprobe",
        fmt("[\"call\", [\"icounter\", \"%s\"], [\"add\", 3], 5000]", node_b));
    CTL(d, 0, "[\"error\",\"noproc\"]", "call", "probe",
        fmt("[\"call\", [\"nothere\", \"%s\"], \"get\", 5000]", node_b));
    CTL(d, 0, "[\"error\",\"noproc\"]", "call", "iprobe",
        fmt("[\"call\", [\"nothere\", \"%s\"], \"get\", 5000]", node_b));
    t0 = now_ms();
    CTL(d, 0, "[\"error\",\"timeout\"]", "call", "probe",
        fmt("[\"call\", [\"probe\", \"%s\"], [\"reply_after\", 3000, 1], 500]", node_b));
    ck_assert_int_lt(now_ms() - t0, 2500);
    CTL(d, 0, "[\"ok\",1]", "call", "probe",
        fmt("[\"call\", [\"counter\", \"%s\"], \"get\", 5000]", node)); /* A's own */

    /* Monitors: a missing name is down at once with noproc; a server that
     * stops is down with its reason, for a client and for a module. */
    char *down = CTL(d, 0, NULL, "-t", "3000", "monitor", fmt("nothere@%s", node_b));
    HAS(down, "\"id\":0,\"name\":\"nothere\",\"reason\":\"noproc\"}");
    gsc *c = CLIENT(d);
    gsc_reply *r = NULL;
    uint64_t undone = monitor_of(c, fmt("icounter@%s", node_b));
    OK(gsc_demonitor(c, undone, &r), &r);
    uint64_t ref = monitor_of(c, probe_b);
    char *mref =
        CTL(d, 0, NULL, "call", "probe", fmt("[\"monitor\", [\"victim\", \"%s\"]]", node_b));
    char *iref =
        CTL(d, 0, NULL, "call", "iprobe", fmt("[\"monitor\", [\"victim\", \"%s\"]]", node_b));
    ck_assert_int_gt(atoi(mref), 0);
    ck_assert_int_gt(atoi(iref), 0);
    /* A's signals to B go in order on one connection: once this call is
     * answered, B has the monitors. */
    CTL(d, 0, "5", "call", probe_b, "[\"echo\", 5]");
    CTL(d_b, 0, "null", "stop", "icounter", "\"undone\""); /* no down: demonitored */
    CTL(d_b, 0, "null", "stop", "probe", "\"bye\"");
    WANT_DOWN(c, ref, "probe", "'bye'"); /* the first down to come */
    CTL(d_b, 0, "null", "stop", "victim", "[\"shutdown\", \"gone\"]");
    WANT_INFOS(d, "probe", 5000, fmt("[[\"down\",%s,0,[\"shutdown\",\"gone\"]]]", mref));
    WANT_INFOS(d, "iprobe", 5000, fmt("[[\"down\",%s,0,[\"shutdown\",\"gone\"]]]", iref));
    CTL_ERR(d, "noproc", "call", probe_b, "infos"); /* gone, as B says */
    client_close(&c);
    stop();
}
END_TEST

/* A node that cannot be reached (epmd has no such name): nodedown at once,
 * for clients and modules. */
START_TEST(nodedown)
{
    start(0600, true);
    char gone[128];
    snprintf(gone, sizeof gone, "counter@nosuch%d@localhost", (int)getpid());
    int64_t t0 = now_ms();
    HAS(CTL_ERR(d, "nodedown", "call", gone, "get"), fmt("nosuch%d@localhost", (int)getpid()));
    ck_assert_int_lt(now_ms() - t0, 3000);
    t0 = now_ms();
    CTL_ERR(d, "nodedown", "cast", gone, "increment");
    CTL_ERR(d, "nodedown", "send", gone, "hello");
    CTL_ERR(d, "nodedown", "-t", "3000", "monitor", gone);
    CTL(d, 0, "[\"error\",\"nodedown\"]", "call", "probe",
        fmt("[\"call\", [\"counter\", \"nosuch%d@localhost\"], \"get\", 5000]", (int)getpid()));
    CTL(d, 0, "[\"error\",\"nodedown\"]", "call", "iprobe",
        fmt("[\"call\", [\"counter\", \"nosuch%d@localhost\"], \"get\", 5000]", (int)getpid()));
    ck_assert_int_lt(now_ms() - t0, 4000); /* all six together */
    /* A module's monitor of it: down at once, noconnection (as Erlang). */
    char *mref = CTL(d, 0, NULL, "call", "probe",
                     fmt("[\"monitor\", [\"counter\", \"nosuch%d@localhost\"]]", (int)getpid()));
    WANT_INFOS(d, "probe", 3000, fmt("[[\"down\",%s,0,\"noconnection\"]]", mref));
    CTL(d, 0, "[]", "nodes");
    CTL(d, 0, "0", "call", "counter", "get"); /* and the daemon serves on */
    stop();
}
END_TEST

/* B killed (SIGKILL) while A waits on it: the waiting calls exit with
 * noconnection, monitors are down with noconnection, A serves on, and a B
 * started again is reached afresh. */
START_TEST(node_killed)
{
    start(0600, true);
    start_b();
    char counter_b[128], probe_b[128];
    snprintf(counter_b, sizeof counter_b, "counter@%s", node_b);
    snprintf(probe_b, sizeof probe_b, "probe@%s", node_b);
    CTL(d, 0, "0", "call", counter_b, "get");
    gsc *c = CLIENT(d);
    uint64_t ref = monitor_of(c, counter_b);
    char *mref =
        CTL(d, 0, NULL, "call", "probe", fmt("[\"monitor\", [\"counter\", \"%s\"]]", node_b));
    char *iref =
        CTL(d, 0, NULL, "call", "iprobe", fmt("[\"monitor\", [\"counter\", \"%s\"]]", node_b));
    struct proc *relay =
        gsctl_spawn(d->sock, (const char *const[]){"-t", "20000", "call", "probe",
                                                   fmt("[\"call\", [\"probe\", \"%s\"], "
                                                       "[\"reply_after\", 5000, 1], 15000]",
                                                       node_b),
                                                   NULL});
    struct proc *irelay =
        gsctl_spawn(d->sock, (const char *const[]){"-t", "20000", "call", "iprobe",
                                                   fmt("[\"call\", [\"probe\", \"%s\"], "
                                                       "[\"reply_after\", 5000, 2], 15000]",
                                                       node_b),
                                                   NULL});
    struct proc *direct =
        gsctl_spawn(d->sock, (const char *const[]){"-t", "20000", "call", probe_b,
                                                   "[\"reply_after\", 5000, 3]", NULL});
    /* All three wait in B's probe (each is a call it has handled). */
    char *info = NULL;
    WAIT_UNTIL(5000, strstr(info = CTL(d_b, 0, NULL, "info", "probe"), "\"call\":3,") != NULL);
    HAS(info, "\"call\":3,");
    int64_t t0 = now_ms();
    ck_assert_int_eq(kill(d_b->pid, SIGKILL), 0);
    ck_assert_int_eq(gsd_wait_exit(d_b, 0, 5000), 128 + SIGKILL);
    d_b->status = 0; /* killed on purpose: not an exit gsd_stop should report */
    gsd_stop(&d_b);

    char *out = NULL, *err = NULL;
    ck_assert_int_eq(gsctl_wait(&relay, 4000, &out, &err), 0);
    ck_assert_str_eq(out, "[\"error\",\"noconnection\"]\n");
    ck_assert_int_eq(gsctl_wait(&irelay, 4000, &out, &err), 0);
    ck_assert_str_eq(out, "[\"error\",\"noconnection\"]\n");
    ck_assert_int_eq(gsctl_wait(&direct, 4000, &out, &err), 1);
    ck_assert_str_eq(out, "");
    ck_assert_msg(strncmp(err, "exit: ", 6) == 0 && strstr(err, "noconnection"), "%s", err);
    WANT_DOWN(c, ref, "counter", "'noconnection'");
    ck_assert_int_lt(now_ms() - t0, 4000); /* the node's loss ended them, not a timeout */
    WANT_INFOS(d, "probe", 3000, fmt("[[\"down\",%s,0,\"noconnection\"]]", mref));
    WANT_INFOS(d, "iprobe", 3000, fmt("[[\"down\",%s,0,\"noconnection\"]]", iref));

    /* A serves on; B is gone from its nodes, then from epmd. */
    CTL(d, 0, "0", "call", "counter", "get");
    CTL(d, 0, "[\"ok\",0]", "call", "probe", "[\"call\", \"counter\", \"get\", 1000]");
    CTL(d, 0, "[]", "nodes");
    int st = -1;
    WAIT_UNTIL(3000, (st = run_gsctl(d, NULL, NULL, "call", counter_b, "get", NULL)) == 1);
    CTL_ERR(d, "nodedown", "call", counter_b, "get");
    /* B again, same name: a new connection. */
    d_b = node_run(dir_b, NULL);
    CTL(d, 0, "1", "call", counter_b, "increment");
    CTL(d, 0, fmt("[\"%s\"]", node_b), "nodes");
    client_close(&c);
    stop();
}
END_TEST

/* An Elixir GenServer, :echo, for to_elixir: replies {:got, m}, prints the
 * casts and infos it gets, and stops with {:shutdown, :bye} when sent
 * "quit" (a binary: a client's string). The script prints node=NAME when
 * :echo is registered, then how :echo ended. */
#define ECHO_EXS                                                                                   \
    "defmodule Echo do\n"                                                                          \
    "  use GenServer\n"                                                                            \
    "  def init(x), do: {:ok, x}\n"                                                                \
    "  def handle_call(m, _from, s), do: {:reply, {:got, m}, s}\n"                                 \
    "  def handle_cast(m, s) do\n"                                                                 \
    "    IO.puts(\"cast=#{inspect(m)}\")\n"                                                        \
    "    {:noreply, s}\n"                                                                          \
    "  end\n"                                                                                      \
    "  def handle_info(\"quit\", s), do: {:stop, {:shutdown, :bye}, s}\n"                          \
    "  def handle_info(m, s) do\n"                                                                 \
    "    IO.puts(\"info=#{inspect(m)}\")\n"                                                        \
    "    {:noreply, s}\n"                                                                          \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "{:ok, pid} = GenServer.start(Echo, nil, name: :echo)\n"                                       \
    "ref = Process.monitor(pid)\n"                                                                 \
    "IO.puts(\"node=#{node()}\")\n"                                                                \
    "receive do\n"                                                                                 \
    "  {:DOWN, ^ref, :process, _, why} -> IO.puts(\"ended=#{inspect(why)}\")\n"                    \
    "after 30000 -> IO.puts(\"ended=never\")\n"                                                    \
    "end\n"

/* gsd calls, casts to, sends to and monitors a GenServer on an Elixir
 * node (NAME@HOST, HOST the machine's hostname). */
/* A lost node's answers go out at once, with nothing else happening on
 * the daemon: a lone client monitor hears its down. */
START_TEST(lone_monitor_hears_loss)
{
    start(0600, true);
    start_b();
    char counter_b[128];
    snprintf(counter_b, sizeof counter_b, "counter@%s", node_b);
    CTL(d, 0, "0", "call", counter_b, "get");
    gsc *c = CLIENT(d);
    uint64_t ref = monitor_of(c, counter_b);
    int64_t t0 = now_ms();
    ck_assert_int_eq(kill(d_b->pid, SIGKILL), 0);
    ck_assert_int_eq(gsd_wait_exit(d_b, 0, 5000), 128 + SIGKILL);
    d_b->status = 0;
    gsd_stop(&d_b);
    WANT_DOWN(c, ref, "counter", "'noconnection'");
    ck_assert_int_lt(now_ms() - t0, 2000);
    /* a@b is a local name (no node name follows the @): noproc, not badarg */
    CTL_ERR(d, "noproc", "info", "a@b");
    stop();
}
END_TEST

/* Two daemons that first call each other at the same moment: both calls
 * are answered, over one connection. */
START_TEST(connect_at_once)
{
    start(0600, true);
    start_b();
    const char *req = "[\"reply_after\", 300, 7]";
    for (int round = 0; round < 2; round++) {
        struct proc *ab =
            gsctl_spawn(d->sock, (const char *const[]){"call", fmt("probe@%s", node_b), req, NULL});
        struct proc *ba =
            gsctl_spawn(d_b->sock, (const char *const[]){"call", fmt("probe@%s", node), req, NULL});
        char *out = NULL, *err = NULL;
        int st = gsctl_wait(&ab, 10000, &out, &err);
        ck_assert_msg(st == 0 && strcmp(out, "7\n") == 0, "a to b: %d <%s> <%s>", st, out, err);
        st = gsctl_wait(&ba, 10000, &out, &err);
        ck_assert_msg(st == 0 && strcmp(out, "7\n") == 0, "b to a: %d <%s> <%s>", st, out, err);
        CTL(d, 0, fmt("[\"%s\"]", node_b), "nodes");
        CTL(d_b, 0, fmt("[\"%s\"]", node), "nodes");
        if (round == 0) { /* again, from scratch: B restarted */
            node_stop(&d_b);
            ck_assert_int_eq(system(fmt("rm -rf '%s'", dir_b)), 0);
            WAIT_UNTIL(5000, strcmp(CTL(d, 0, NULL, "nodes"), "[]") == 0);
            start_b();
        }
    }
    stop();
}
END_TEST

START_TEST(to_elixir)
{
    start(0600, true);
    struct bg ex;
    elixir_bg(ECHO_EXS, &ex);
    ck_assert_msg(strchr(ex.node, '@') != NULL, "node=%s", ex.node);
    char echo[160];
    snprintf(echo, sizeof echo, "echo@%s", ex.node);
    CTL(d, 0, "[\"got\",[\"x\",1,{\"a\":2.5}]]", "call", echo, "[\"x\", 1, {\"a\": 2.5}]");
    CTL(d, 0, "[\"got\",\"plain\"]", "call", echo, "plain");
    CTL(d, 0, "[\"ok\",[\"got\",[\"via\",3]]]", "call", "probe",
        fmt("[\"call\", [\"echo\", \"%s\"], [\"via\", 3], 5000]", ex.node));
    CTL(d, 0, "[\"ok\",[\"got\",4]]", "call", "iprobe",
        fmt("[\"call\", [\"echo\", \"%s\"], 4, 5000]", ex.node));
    HAS(CTL_ERR(d, "noproc", "call", fmt("nothere@%s", ex.node), "x"),
        fmt("nothere on %s", ex.node));
    CTL(d, 0, "[\"error\",\"noproc\"]", "call", "probe",
        fmt("[\"call\", [\"nothere\", \"%s\"], 1, 5000]", ex.node));
    CTL(d, 0, "null", "cast", echo, "[\"hello\", 2]");
    CTL(d, 0, "null", "send", echo, "[\"note\", 3.5]");
    /* "got" is an atom the node has sent (in the replies): it goes back as
     * that atom, where "hello" went as a binary. */
    CTL(d, 0, "null", "cast", echo, "[\"got\", \"hello\"]");
    CTL(d, 0, fmt("[\"%s\"]", ex.node), "nodes");

    /* Monitors of :echo, a client's and a module's, then it stops. */
    gsc *c = CLIENT(d);
    uint64_t ref = monitor_of(c, echo);
    char *mref =
        CTL(d, 0, NULL, "call", "probe", fmt("[\"monitor\", [\"echo\", \"%s\"]]", ex.node));
    CTL(d, 0, "[\"got\",\"sync\"]", "call", echo, "sync"); /* the monitors are in place */
    CTL(d, 0, "null", "send", echo, "quit");
    WANT_DOWN(c, ref, "echo", "['shutdown', 'bye']");
    WANT_INFOS(d, "probe", 5000, fmt("[[\"down\",%s,0,[\"shutdown\",\"bye\"]]]", mref));
    char *out = bg_wait(&ex, 15000);
    ck_assert_msg(out != NULL, "the Elixir script did not end");
    HAS(out, "cast=[\"hello\", 2]\n");
    HAS(out, "info=[\"note\", 3.5]\n");
    HAS(out, "cast=[:got, \"hello\"]\n");
    HAS(out, "ended={:shutdown, :bye}\n");
    ck_assert_msg(strstr(out, "info=\"quit\"") == NULL, "%s", out);
    /* Its node gone: no longer connected, and not reachable. */
    ck_assert(WAIT_UNTIL(5000, strcmp(CTL(d, 0, NULL, "nodes"), "[]") == 0));
    WAIT_UNTIL(3000, run_gsctl(d, NULL, NULL, "call", echo, "x", NULL) == 1);
    CTL_ERR(d, "nodedown", "call", echo, "x");
    client_close(&c);
    bg_stop(&ex);
    stop();
}
END_TEST

/* A module's atoms and tuples (gs_atomn, gs_erl_tuple) reach Erlang as
 * atoms and tuples; a msgpack client sees them as ext values. */
START_TEST(atoms_and_tuples)
{
    start(0600, true);
    char *out = elixir("r = GenServer.call({:probe, n}, {:tagged, \"hello\", {1, \"x\"}})\n"
                       "IO.puts(\"r=#{inspect(r)} exact=#{r === {:hello, {1, \"x\"}}}\")\n"
                       "r = GenServer.call({:iprobe, n}, {:tagged, \"hello\", [:a, \"b\"]})\n"
                       "IO.puts(\"i=#{inspect(r)} exact=#{r === {:hello, [:a, \"b\"]}}\")\n"
                       "r = GenServer.call({:probe, n}, [:tagged, \"a new tag\", 1])\n"
                       "IO.puts(\"l=#{inspect(r)} exact=#{r === {:\"a new tag\", 1}}\")\n"
                       "r = GenServer.call({:probe, n}, {:echo, \"hello\"})\n"
                       "IO.puts(\"e=#{inspect(r)}\")\n");
    HAS(out, "r={:hello, {1, \"x\"}} exact=true\n");
    HAS(out, "i={:hello, [:a, \"b\"]} exact=true\n");
    HAS(out, "l={:\"a new tag\", 1} exact=true\n"); /* a module may make atoms */
    HAS(out, "e=\"hello\"\n");                      /* what came as a binary goes back one */
    /* To a msgpack client: [<ext 0x17>, <ext 0x16 "hello">, v]. */
    CTL(d, 0, "[{\"ext\":23,\"base64\":\"\"},{\"ext\":22,\"base64\":\"aGVsbG8=\"},[1,\"x\"]]",
        "call", "probe", "[\"tagged\", \"hello\", [1, \"x\"]]");
    gsc *c = CLIENT(d);
    const msgpack_object *v = CALL(c, "iprobe", mp("['tagged', 'ok', 7]"));
    ck_assert_int_eq(v->type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(v->via.array.size, 3);
    const msgpack_object *t = mp_item(v, 0), *a = mp_item(v, 1);
    ck_assert_int_eq(t->type, MSGPACK_OBJECT_EXT);
    ck_assert_int_eq(t->via.ext.type, 0x17);
    ck_assert_uint_eq(t->via.ext.size, 0);
    ck_assert_int_eq(a->type, MSGPACK_OBJECT_EXT);
    ck_assert_int_eq(a->via.ext.type, 0x16);
    ck_assert_uint_eq(a->via.ext.size, 2);
    ck_assert(memcmp(a->via.ext.ptr, "ok", 2) == 0);
    ck_assert_mp_eq(mp_item(v, 2), "7");
    client_close(&c);
    stop();
}
END_TEST

/* Without a distribution section, a remote reference is nodedown. */
START_TEST(without_distribution)
{
    struct gsd *g = gsd_start();
    CTL(g, 0, NULL, "start", "counter", "counter");
    CTL(g, 0, NULL, "start", "probe", "probe");
    HAS(CTL_ERR(g, "nodedown", "call", "counter@x@localhost", "get"), "counter@x@localhost");
    CTL_ERR(g, "nodedown", "cast", "counter@x@localhost", "increment");
    CTL_ERR(g, "nodedown", "send", "counter@x@localhost", "hello");
    CTL_ERR(g, "nodedown", "-t", "2000", "monitor", "counter@x@localhost");
    CTL(g, 0, "[\"error\",\"nodedown\"]", "call", "probe",
        "[\"call\", [\"counter\", \"x@localhost\"], \"get\", 1000]");
    CTL(g, 0, "[\"ok\",0]", "call", "probe", "[\"call\", \"counter\", \"get\", 1000]");
    CTL(g, 0, "0", "call", "counter", "get"); /* the cast did not reach it */
    CTL(g, 0, "[]", "nodes");
    ck_assert_int_eq(gsd_stop(&g), 0);
}
END_TEST

static Suite *dist_suite(void)
{
    Suite *s = suite_create("dist");
    TCase *tc = tcase_create("inbound");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, call_and_cast);
    tcase_add_test(tc, send_to_info);
    tcase_add_test(tc, noproc_at_once);
    tcase_add_test(tc, monitor_down_reason);
    tcase_add_test(tc, round_trips);
    tcase_add_test(tc, wrong_cookie);
    tcase_add_test(tc, cookie_mode_refused);
    tcase_add_test(tc, admin_unreachable);
    tcase_add_test(tc, peer_killed);
    tcase_add_test(tc, caller_gives_up);
    tcase_add_test(tc, nodes_method);
    tcase_add_test(tc, message_over_the_limit);
    tcase_add_test(tc, stalled_handshakes);
    tcase_add_test(tc, monitor_limit_and_tick_reload);
    suite_add_tcase(s, tc);
    tc = tcase_create("outbound");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, two_daemons);
    tcase_add_test(tc, nodedown);
    tcase_add_test(tc, node_killed);
    tcase_add_test(tc, lone_monitor_hears_loss);
    tcase_add_test(tc, connect_at_once);
    tcase_add_test(tc, to_elixir);
    tcase_add_test(tc, atoms_and_tuples);
    tcase_add_test(tc, without_distribution);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (system("command -v elixir >/dev/null 2>&1 && command -v epmd >/dev/null 2>&1") != 0) {
        fprintf(stderr, "check_dist: elixir or epmd is not installed: run scripts/deps.sh\n");
        return 1; /* never a silent pass */
    }
    return run_suite(dist_suite());
}
