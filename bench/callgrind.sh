#!/bin/sh
# bench/callgrind.sh [BUILD] [gsbench args...] — gsd's instructions per
# call in user space, counted by callgrind while gsbench calls counter get
# (default 50 connections x 16 in flight, 4 s). Unlike time, the count does
# not move with other load on the machine: compare two builds with it.
# ISOLATE=1 starts the counter isolated: the daemon's side of each call is
# counted (its worker runs outside valgrind).
# Everything gsd runs is counted (start-up too, a few million instructions),
# divided by the answers gsbench saw. Prints the top functions (self).
set -eu
B=${1:-build}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- -c 50 -P 16
dir=$(mktemp -d /tmp/gscg.XXXXXX)
taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" \
    "$B/gsd" -s "$dir/gsd.sock" -M "$B/modules" 2>"$dir/gsd.log" &
gsd=$!
trap 'kill $gsd 2>/dev/null || true; wait $gsd 2>/dev/null || true; [ -n "${KEEP:-}" ] && cp "$dir/cg.out" "$KEEP"; rm -rf "$dir"' EXIT
i=0
while [ ! -S "$dir/gsd.sock" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
"$B/gsctl" -s "$dir/gsd.sock" start counter counter 0 ${ISOLATE:+--isolate} >/dev/null
"$B/gsbench" -s "$dir/gsd.sock" -S counter -C 1 -t "${SECS:-4}" -w 0 "$@" | grep '^tsv' >"$dir/tsv"
kill $gsd
wait $gsd 2>/dev/null || true
calls=$(awk -F'\t' '{print $13}' "$dir/tsv")
callgrind_annotate "$dir/cg.out" 2>/dev/null >"$dir/report"
awk -v n="$calls" '/PROGRAM TOTALS/ { gsub(",", "", $1); printf "%d calls, %.0f instructions per call\n", n, $1 / n }' "$dir/report"
awk -v n="$calls" '/^ *[0-9,]+ \(/ && !/PROGRAM TOTALS/ && k < (ENVIRON["LINES"] ? ENVIRON["LINES"] : 25) {
    x = $1; gsub(",", "", x); f = $0; sub(/^[^)]*\) */, "", f); sub(/ .*/, "", f)
    sub(/.*\//, "", f); printf "%7.1f  %s\n", x / n, f; k++ }' "$dir/report"
