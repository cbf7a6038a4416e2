#!/bin/sh
# bench/scaling.sh [BUILD] — how isolated servers scale with workers: N
# servers of the burn module (each call burns BURN_US of CPU in its
# callback) called at once, all N in one worker ("isolate": "oneN") against
# each in a worker of its own ("isolate": true), for each N in NS. Prints
# one markdown table: calls/s of each, their ratio (at most min(N, cores),
# less what the daemon and the client take of the same cores), and the CPU
# per call of the daemon and of the workers. bench/run.sh runs it with
# NS="1 2"; on a bigger machine run it alone.
#
# Its own daemon, on no particular CPU (workers inherit the daemon's
# affinity); the client on none either. Connection i calls server i mod N;
# CONNS_PER connections per server, INFLIGHT requests in flight on each.
# A burn call runs until its thread's CPU time has grown by BURN_US, so
# the work per call is the same in every worker, preempted or not.
# Environment: NS ("1 2 4 8 16"), BURN_US (20), ROUNDS (3), SECS (1.5),
# WARM (0.3), CONNS_PER (4), INFLIGHT (4), KEEP=1 keeps the raw TSV.
# Needs nothing but the build: gsd, gsctl, gsbench, bench-modules/burn.so.
set -eu
B=${1:-build}
NS=${NS:-1 2 4 8 16}
BURN_US=${BURN_US:-20}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-1.5}
WARM=${WARM:-0.3}
CONNS_PER=${CONNS_PER:-4}
INFLIGHT=${INFLIGHT:-4}

for f in gsd gsctl gsbench bench-modules/burn.so; do
    [ -e "$B/$f" ] || { echo "scaling: no $B/$f (make BUILD=$B)" >&2; exit 1; }
done

dir=$(mktemp -d /tmp/gsscale.XXXXXX)
gsd_pid=""
cleanup() {
    [ -n "$gsd_pid" ] && { kill "$gsd_pid" 2>/dev/null || true; wait "$gsd_pid" 2>/dev/null || true; }
    [ "${KEEP:-}" = 1 ] && echo "raw results kept in $dir" >&2 || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

"$B/gsd" -s "$dir/gsd.sock" -M "$B/bench-modules" 2>"$dir/gsd.log" &
gsd_pid=$!
i=0
while [ ! -S "$dir/gsd.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
[ -S "$dir/gsd.sock" ] || { echo "scaling: gsd did not start" >&2; exit 1; }
G="$B/gsctl -s $dir/gsd.sock"

TICK=$(getconf CLK_TCK)
ticks() { # pids: their utime + stime, summed
    t=0
    for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
    echo $t
}
worker_of() { $G info "$1" | grep -o '"worker":[0-9]*' | cut -d: -f2; }

for n in $NS; do
    one="" own="" k=1
    while [ $k -le "$n" ]; do
        $G start --isolate="one$n" burn "g$n.$k" "$BURN_US" >/dev/null
        $G start --isolate burn "w$n.$k" "$BURN_US" >/dev/null
        one="$one${one:+,}g$n.$k" own="$own${own:+,}w$n.$k"
        k=$((k + 1))
    done
    one_pids=$(worker_of "g$n.1")
    own_pids=""
    for s in $(echo "$own" | tr , ' '); do own_pids="$own_pids $(worker_of "$s")"; done
    r=1
    while [ $r -le "$ROUNDS" ]; do
        for cfg in one own; do
            if [ $cfg = one ]; then list=$one wp=$one_pids; else list=$own wp=$own_pids; fi
            d0=$(ticks $gsd_pid) w0=$(ticks $wp)
            line=$("$B/gsbench" -s "$dir/gsd.sock" -m call -S "$list" -c $((n * CONNS_PER)) \
                -P "$INFLIGHT" -t "$SECS" -w "$WARM" -T "$cfg" | grep '^tsv')
            d1=$(ticks $gsd_pid) w1=$(ticks $wp)
            # n, then gsbench's line, then the daemon's and the workers' CPU us per answer
            echo "$line" | awk -v n="$n" -v d=$((d1 - d0)) -v w=$((w1 - w0)) -v hz="$TICK" \
                -F'\t' -v OFS='\t' '{ print n, $0, d * 1e6 / hz / $13, w * 1e6 / hz / $13 }' \
                >>"$dir/scaling.tsv"
        done
        r=$((r + 1))
    done
    for s in $(echo "$one,$own" | tr , ' '); do $G stop "$s" >/dev/null; done
done

awk -v burn="$BURN_US" -v cpus="$(nproc)" -v rounds="$ROUNDS" -v secs="$SECS" \
    -v cp="$CONNS_PER" -v inf="$INFLIGHT" -F'\t' '
function median(list,   a, k, i, j, t) {
    k = split(list, a, " ")
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return k ? a[int((k + 1) / 2)] : 0
}
function rate(x) { return x >= 1e6 ? sprintf("%.2f M/s", x / 1e6) : sprintf("%.1f k/s", x / 1e3) }
$2 == "tsv" {
    n = $1; key = n SUBSEP $3
    if (!(n in seen)) { seen[n] = 1; order[++nn] = n }
    r[key] = r[key] " " $9; d[key] = d[key] " " $15; w[key] = w[key] " " $16; err += $13
}
END {
    printf "\nScaling: N burn servers (%d us of CPU per call), %d connections per server x %d in flight, %d CPUs; median of %d rounds of %s s:\n\n", burn, cp, inf, cpus, rounds, secs
    printf "| N | 1 worker (all N in one group) | N workers (one each) | N workers / 1 worker | daemon CPU per call (1 / N workers) | workers CPU per call (1 / N workers) |\n"
    printf "|---:|---:|---:|---:|---:|---:|\n"
    for (i = 1; i <= nn; i++) {
        n = order[i]
        a = median(r[n, "one"]); b = median(r[n, "own"])
        printf "| %d | %s | %s | %.2fx | %.2f / %.2f us | %.2f / %.2f us |\n", n, rate(a), rate(b), a ? b / a : 0,
            median(d[n, "one"]), median(d[n, "own"]), median(w[n, "one"]), median(w[n, "own"])
    }
    if (err) printf "\nscaling: %d requests answered with an error\n", err
}' "$dir/scaling.tsv"
