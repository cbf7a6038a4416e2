#!/bin/sh
# bench/dist.sh [BUILD] — gsd as an Erlang node, side by side with a BEAM
# node, in one run. `make bench-dist` runs it.
#
# 1. An Elixir client node calls GenServer.call(dest, :get) in a loop from
#    1 and from 50 processes, dest being (a) gsd's counter on the gsd node
#    gsdA@localhost, (b) an Elixir GenServer counter on another BEAM node
#    (beam@localhost, an `elixir` OS process of its own): calls/s, p50 and
#    p99, and the server's CPU time per call (its OS process's utime +
#    stime, from /proc). Rounds are interleaved (A B A B) so drift
#    cancels; the table holds the median of the rounds, and gsd / BEAM.
#    The goal is gsd >= 1.5x BEAM-to-BEAM at 50 callers: printed, not
#    enforced. The client node is started once (bench/dist_bench.exs does
#    the rounds), as is each server.
# 2. gsd to gsd: a second daemon (gsdB@localhost, its own socket) whose
#    probe calls gsdA's counter through distribution (["call",
#    ["counter", "gsdA@localhost"], "get", 5000]), driven by gsbench at
#    1 x 1 and 50 x 1 (raw mode: the request's bytes fixed, its answer
#    ["ok", 0], 9 bytes), interleaved with the same counter get called
#    over gsdA's own socket, for what the distribution hop costs. Each
#    dist run is checked against the calls gsdA's counter handled (a
#    short or wrong answer would frame the rest wrongly). If gsd cannot
#    yet call a remote reference, the section says so and the script
#    exits 1 after the first table.
#
# A private epmd on a free loopback port (ERL_EPMD_PORT, ERL_EPMD_ADDRESS
# =127.0.0.1), HOME and the cookie (mode 0600, read by the daemons as
# cookie_file and by the BEAM nodes as ~/.erlang.cookie) in a temporary
# directory; everything started is stopped by PID and the directory
# removed. With PIN=1 (the default, on 2 CPUs or more) the servers (gsdA,
# the BEAM node) run on CPU 0, the callers' side (the client node, gsdB,
# gsbench) on CPU 1.
# Environment: ROUNDS (3), SECS per run (3), WARM warm-up (0.5), CALLERS
# ("1 50"), PIN (1), KEEP=1 keeps the raw TSV and the logs.
set -eu
B=${1:-build}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-3}
WARM=${WARM:-0.5}
CALLERS=${CALLERS:-1 50}
PIN=${PIN:-1}
here=$(cd "$(dirname "$0")" && pwd)
EXS="$here/dist_bench.exs"
NODE_A=gsdA@localhost
NODE_B=gsdB@localhost
BEAM=beam@localhost
CLIENT=client@localhost

for f in gsd gsctl gsbench modules/counter.so modules/probe.so; do
    [ -e "$B/$f" ] || { echo "bench-dist: no $B/$f (make BUILD=$B)" >&2; exit 1; }
done
for c in elixir epmd timeout; do
    command -v "$c" >/dev/null 2>&1 || { echo "bench-dist: no $c on the PATH (scripts/deps.sh)" >&2; exit 1; }
done
B=$(cd "$B" && pwd)

dir=$(mktemp -d /tmp/gsdist.XXXXXX)
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    if [ "${KEEP:-}" = 1 ]; then echo "raw results and logs kept in $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

on0="" on1="" cpu1=-1
if [ "$PIN" = 1 ] && command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
    on0="taskset -c 0" on1="taskset -c 1" cpu1=1
fi
TICK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime

# ---- epmd, on a free loopback port ---------------------------------------------
listening() { # port: is anything listening on it (IPv4 or IPv6)?
    awk -v p="$(printf '%04X' "$1")" '$4 == "0A" && substr($2, length($2) - 3) == p { f = 1 }
        END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
export ERL_EPMD_ADDRESS=127.0.0.1 HOME="$dir"
epmd_pid="" tries=0
while [ -z "$epmd_pid" ] && [ $tries -lt 20 ]; do
    tries=$((tries + 1))
    port=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 30000))
    ! listening "$port" || continue
    epmd -port "$port" -address 127.0.0.1 2>/dev/null &
    p=$!
    i=0
    while [ $i -lt 50 ] && kill -0 "$p" 2>/dev/null && ! listening "$port"; do sleep 0.05; i=$((i + 1)); done
    sleep 0.1
    if kill -0 "$p" 2>/dev/null && listening "$port"; then
        epmd_pid=$p pids="$pids $p"
    else
        kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true
    fi
done
[ -n "$epmd_pid" ] || { echo "bench-dist: could not start epmd on a free port" >&2; exit 1; }
export ERL_EPMD_PORT="$port"

cookie="$dir/.erlang.cookie"
(umask 077 && od -An -N18 -tx1 /dev/urandom | tr -d ' \n' >"$cookie")
chmod 600 "$cookie"

# ---- the servers ---------------------------------------------------------------
cat >"$dir/a.conf" <<EOF
distribution = { node = "$NODE_A"; cookie_file = "$cookie"; listen = "127.0.0.1"; };
servers = ( { name = "counter"; module = "counter"; } );
EOF
cat >"$dir/b.conf" <<EOF
distribution = { node = "$NODE_B"; cookie_file = "$cookie"; listen = "127.0.0.1"; };
servers = ( { name = "probe"; module = "probe"; } );
EOF
$on0 "$B/gsd" -c "$dir/a.conf" -s "$dir/a.sock" -M "$B/modules" 2>"$dir/a.log" &
a_pid=$!; pids="$pids $a_pid"
$on1 "$B/gsd" -c "$dir/b.conf" -s "$dir/b.sock" -M "$B/modules" 2>"$dir/b.log" &
b_pid=$!; pids="$pids $b_pid"

# The BEAM's lifetime: the client's time limit and some; it also halts
# when the client node goes.
limit=$(awk -v r="$ROUNDS" -v s="$SECS" -v w="$WARM" -v c="$CALLERS" \
    'BEGIN { print int(r * split(c, x, " ") * 2 * (s + w + 1) + 60) }')
$on0 elixir --sname "$BEAM" "$EXS" server $((limit + 30)) >"$dir/beam.log" 2>&1 &
beam_pid=$!; pids="$pids $beam_pid"

joined() { # log pid: up to 10 s for a daemon to publish its node
    i=0
    while ! grep -q 'distribution: node .* listening' "$1" 2>/dev/null && [ $i -lt 200 ]; do
        kill -0 "$2" 2>/dev/null || break
        sleep 0.05; i=$((i + 1))
    done
    grep -q 'distribution: node .* listening' "$1" 2>/dev/null ||
        { echo "bench-dist: the daemon did not join ($1):" >&2; cat "$1" >&2; exit 1; }
}
joined "$dir/a.log" "$a_pid"
joined "$dir/b.log" "$b_pid"

# ---- 1. Elixir client: gsd against the BEAM ---------------------------------------
echo "bench-dist: $ROUNDS rounds x {gsd, BEAM} x {$CALLERS} callers, ${SECS} s each (+${WARM} s warm-up)"
if ! $on1 timeout -s KILL "$limit" elixir --sname "$CLIENT" "$EXS" client \
    "$NODE_A" "$a_pid" "$BEAM" "$beam_pid" "$ROUNDS" "$SECS" "$WARM" "$CALLERS" "$TICK" \
    >"$dir/results.tsv" 2>"$dir/client.log"; then
    echo "bench-dist: the Elixir client failed:" >&2
    cat "$dir/client.log" "$dir/results.tsv" >&2
    exit 1
fi

# ---- 2. gsd to gsd ------------------------------------------------------------------
G="$B/gsctl -s $dir/b.sock"
want='["ok",0]'
got=$($G call probe "[\"call\", [\"counter\", \"$NODE_A\"], \"get\", 5000]" 2>&1) || true
dist_ok=0
if [ "$got" = "$want" ]; then
    dist_ok=1
    echo "bench-dist: then gsd to gsd: $ROUNDS rounds x {via $NODE_B, over gsdA's socket} x {1x1, 50x1}"
    # [0, 1, "call", ["probe", ["call", ["counter", NODE_A], "get", 5000], nil]]
    str() { printf '\\x%02x%s' $((0xa0 + ${#1})) "$1"; } # fixstr: under 32 bytes
    REQ="\\x94\\x00\\x01$(str call)\\x93$(str probe)\\x94$(str call)\\x92$(str counter)$(str "$NODE_A")"
    REQ="$REQ$(str get)\\xcd\\x13\\x88\\xc0"
    # [1, 1, nil, ["ok", 0]]
    REPLYLEN=9
    handled() { "$B/gsctl" -s "$dir/a.sock" info counter | grep -o '"handled":{"call":[0-9]*' | grep -o '[0-9]*$'; }
    run2() { # target conns
        if [ "$1" = dist ]; then
            set -- "$@" -s "$dir/b.sock" -m raw -R "$REQ" -L "$REPLYLEN"
        else
            set -- "$@" -s "$dir/a.sock" -m call -S counter
        fi
        t=$1 c=$2
        shift 2
        h0=$(handled) a0=$(cpu_ticks "$a_pid") b0=$(cpu_ticks "$b_pid")
        line=$("$B/gsbench" "$@" -c "$c" -P 1 -C "$cpu1" -t "$SECS" -w "$WARM" -T "$t" | grep '^tsv')
        h1=$(handled) a1=$(cpu_ticks "$a_pid") b1=$(cpu_ticks "$b_pid")
        echo "$line" | awk -v a=$((a1 - a0)) -v b=$((b1 - b0)) -v h=$((h1 - h0)) -v hz="$TICK" \
            -F'\t' -v OFS='\t' '{ print "gsb", $0, ($13 > 0 ? a * 1e6 / hz / $13 : 0),
                ($13 > 0 ? b * 1e6 / hz / $13 : 0), h }' >>"$dir/results.tsv"
    }
    r=1
    while [ $r -le "$ROUNDS" ]; do
        for c in 1 50; do
            for t in dist local; do run2 "$t" "$c"; done
        done
        r=$((r + 1))
    done
fi

# ---- the tables -------------------------------------------------------------------------
awk -v callers="$CALLERS" -v dist_ok="$dist_ok" -v got="$got" -v node_a="$NODE_A" -v node_b="$NODE_B" -F'\t' '
function median(list,   a, k, i, j, t) {
    k = split(list, a, " ")
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return k ? a[int((k + 1) / 2)] : 0
}
function rate(x) { return x >= 1e6 ? sprintf("%.2f M/s", x / 1e6) : x >= 1e3 ? sprintf("%.1f k/s", x / 1e3) : sprintf("%.0f /s", x) }
$1 == "tsv" {
    key = $2 SUBSEP $3
    r[key] = r[key] " " $7; p50[key] = p50[key] " " $8; p99[key] = p99[key] " " $9; us[key] = us[key] " " $10
    cl[key] = cl[key] " " $11
}
$1 == "gsb" {
    # gsb tsv label mode conns inflight requests seconds req_per_s p50 p99 p999 errors answers cpuA cpuB handled
    key = $3 SUBSEP $5
    r2[key] = r2[key] " " $9; q50[key] = q50[key] " " $10; q99[key] = q99[key] " " $11
    ua[key] = ua[key] " " $15; ub[key] = ub[key] " " $16
    if ($3 == "dist" && $17 != $14) bad = bad sprintf("\n  %s x1: gsbench counted %d answers, %s handled %d calls", $5, $14, node_a, $17)
    if ($3 == "dist" && $17 == $14) checked++
}
END {
    n = split(callers, cs, " ")
    printf "\nGenServer.call(dest, :get) from an Elixir node (client@localhost), dest gsd'"'"'s counter on %s\n", node_a
    printf "or an Elixir GenServer on another BEAM node (beam@localhost); median of the rounds:\n\n"
    printf "| callers | gsd | BEAM | gsd / BEAM | goal | p50 gsd | p50 BEAM | p99 gsd | p99 BEAM | server CPU per call gsd | BEAM | gsd / BEAM by CPU | client node busy, gsd | BEAM |\n"
    printf "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    for (i = 1; i <= n; i++) {
        c = cs[i]
        g = median(r["gsd", c]); e = median(r["beam", c])
        gu = median(us["gsd", c]); eu = median(us["beam", c])
        goal = c == 50 ? sprintf(">= 1.5x: %s", e && g / e >= 1.5 ? "met" : "NOT met") : "-"
        printf "| %d | %s | %s | %.2fx | %s | %.1f us | %.1f us | %.1f us | %.1f us | %.2f us | %.2f us | %.2fx | %.2f CPU | %.2f CPU |\n", c,
            rate(g), rate(e), e ? g / e : 0, goal, median(p50["gsd", c]), median(p50["beam", c]),
            median(p99["gsd", c]), median(p99["beam", c]), gu, eu, gu ? eu / gu : 0,
            median(cl["gsd", c]), median(cl["beam", c])
    }
    printf "\n(calls/s per round, gsd | BEAM:"
    for (i = 1; i <= n; i++) printf " %d caller%s:%s |%s;", cs[i], (cs[i] > 1 ? "s" : ""), r["gsd", cs[i]], r["beam", cs[i]]
    printf ")\n(server CPU per call: the OS process'"'"'s utime + stime over the window, over the calls measured;\n"
    printf "the BEAM'"'"'s includes its schedulers'"'"' busy-waiting. Client node busy: its own utime + stime over\n"
    printf "the window, in CPUs; near the CPUs it may use (1 when pinned), the client is the bottleneck: the\n"
    printf "calls/s ratio then tends to 1 whatever the servers cost, and the CPU-per-call ratio says more.)\n"

    printf "\ngsd to gsd: gsbench -> %s probe -> [\"counter\", \"%s\"] through distribution,\n", node_b, node_a
    printf "against the same counter get over %s'"'"'s own socket; median of the rounds:\n\n", node_a
    if (!dist_ok) {
        printf "NOT MEASURED: the probe on %s answered %s to a call of [\"counter\", \"%s\"] (wanted [\"ok\",0]):\n", node_b, got, node_a
        printf "the daemon cannot call a remote reference yet.\n"
        exit 1
    }
    printf "| shape | gsd -> gsd | p50 | p99 | CPU per call %s (caller) | %s (counter) | direct to %s | p99 direct | CPU per call direct |\n", node_b, node_a, node_a
    printf "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    split("1 50", ss, " ")
    for (i = 1; i <= 2; i++) {
        c = ss[i]
        printf "| %d conn%s x 1 in flight | %s | %.1f us | %.1f us | %.2f us | %.2f us | %s | %.1f us | %.2f us |\n", c, (c > 1 ? "s" : ""),
            rate(median(r2["dist", c])), median(q50["dist", c]), median(q99["dist", c]), median(ub["dist", c]),
            median(ua["dist", c]), rate(median(r2["local", c])), median(q99["local", c]), median(ua["local", c])
    }
    if (bad != "") { printf "\nbench-dist: answers and calls differ:%s\n", bad; exit 1 }
    printf "\n(every gsd -> gsd run checked: the answers gsbench framed = the calls %s'"'"'s counter handled, %d runs)\n", node_a, checked
}' "$dir/results.tsv"
