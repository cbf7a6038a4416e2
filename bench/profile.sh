#!/bin/sh
# bench/profile.sh [BUILD] [gsbench args...] — where gsd's time goes under
# load: perf (cpu-clock samples, which work on VMs without hardware
# counters) while gsbench calls counter get; prints the top functions,
# self and with children. Default load: 50 connections x 16 in flight.
# For call chains through the daemon, build it with frame pointers:
#   make BUILD=build-prof OPT="-O2 -g -fno-omit-frame-pointer"
set -eu
B=${1:-build}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- -c 50 -P 16
dir=$(mktemp -d /tmp/gsprof.XXXXXX)
taskset -c 0 "$B/gsd" -s "$dir/gsd.sock" -M "$B/modules:$B/bench-modules" 2>"$dir/gsd.log" &
gsd=$!
trap 'kill $gsd 2>/dev/null; wait $gsd 2>/dev/null; rm -rf "$dir"' EXIT
while [ ! -S "$dir/gsd.sock" ]; do sleep 0.05; done
"$B/gsctl" -s "$dir/gsd.sock" start counter counter 0 >/dev/null
perf record -e cpu-clock -F 4999 --call-graph fp -p $gsd -o "$dir/perf.data" 2>/dev/null &
perf=$!
sleep 0.3
"$B/gsbench" -s "$dir/gsd.sock" -S counter -C 1 -t 3 -w 0.2 "$@" | head -1
kill -INT $perf
wait $perf 2>/dev/null || true
echo "== self"
perf report -i "$dir/perf.data" --no-children --stdio --sort symbol -g none 2>/dev/null |
    grep -v '^#' | grep -v '^$' | head -40
echo "== with children"
perf report -i "$dir/perf.data" --children --stdio --sort symbol -g none 2>/dev/null |
    grep -v '^#' | grep -v '^$' | head -40
