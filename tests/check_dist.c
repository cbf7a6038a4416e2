/*
 * check_dist.c — gsd as a hidden Erlang node, driven by real Elixir nodes.
 *
 * Each test starts a private epmd on a free loopback port (ERL_EPMD_PORT
 * and ERL_EPMD_ADDRESS are set for everything it starts), a daemon with a
 * distribution section and a cookie file of mode 0600, and one `elixir`
 * script bounded by timeout(1) whose stdout it reads. Everything is
 * stopped by PID. Without elixir on the PATH the suite fails, saying so.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
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
static char dir[128], node[64];
static struct gsd *d;
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

/* epmd, then a daemon with counter, probe, icounter (a counter in a worker)
 * and victim (a probe) declared. */
static void start(mode_t cookie_mode, bool expect_start)
{
    char port[16], path[256], conf[1024];
    const char *root = getenv("GSD_TEST_ROOT");
    snprintf(dir, sizeof dir, "%s/dist-XXXXXX", root && *root ? root : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
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
    snprintf(path, sizeof path, "%s/cookie", dir);
    write_file(path, COOKIE "\n", cookie_mode);
    snprintf(conf, sizeof conf,
             "distribution = { node = \"%s\"; cookie_file = \"%s\"; tick_ms = 4000; };\n"
             "servers = ( { name = \"counter\"; module = \"counter\"; },\n"
             "  { name = \"probe\"; module = \"probe\"; },\n"
             "  { name = \"icounter\"; module = \"counter\"; isolate = true; },\n"
             "  { name = \"victim\"; module = \"probe\"; restart = \"temporary\"; } );\n%s",
             node, path, extra_conf);
    snprintf(path, sizeof path, "%s/gsd.conf", dir);
    write_file(path, conf, 0644);
    if (!expect_start)
        return;
    d = gsd_start_with((const char *const[]){"-c", path, NULL});
    /* Its socket may answer a moment before the node is published. */
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "sed -n 's/.*distribution: node .* listening on 127.0.0.1:\\([0-9]*\\).*/\\1/p' '%s'",
             d->log);
    int st;
    for (int i = 0; i < 200 && (dist_port = atoi(shell_output(cmd, &st))) == 0; i++)
        usleep(50000);
    ck_assert_msg(dist_port > 0, "the daemon did not join: no distribution line in its log");
}

static void stop(void)
{
    if (d) { /* a clean exit: under valgrind, no error and no leak (its log, if not) */
        int st = gsd_wait_exit(d, SIGTERM, 30000);
        if (st != 0) {
            char cmd[256];
            snprintf(cmd, sizeof cmd, "cat '%s' >&2", d->log);
            ck_assert_int_ge(system(cmd), 0);
        }
        gsd_stop(&d);
        ck_assert_int_eq(st, 0);
    }
    epmd_stop();
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
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
    char cmd[256];
    snprintf(cmd, sizeof cmd, "grep -c 'handshake from' '%s'", d->log);
    ck_assert_int_ge(atoi(shell_output(cmd, &st)), 1);
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
    char cmd[256];
    snprintf(cmd, sizeof cmd, "grep -c 'disconnected' '%s'", d->log);
    ck_assert_int_ge(atoi(shell_output(cmd, &st)), 1);
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
    int st;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "grep -c 'over the limit' '%s'", d->log);
    ck_assert_int_ge(atoi(shell_output(cmd, &st)), 1);
    char *o = NULL;
    ck_assert_int_eq(run_gsctl(d, &o, NULL, "call", "probe", "infos", NULL), 0);
    ck_assert_msg(strstr(o, "[]"), "the message arrived: %s", o);
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
