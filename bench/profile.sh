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
trap 'kill $gsd 2>/dev/null || true; wait $gsd 2>/dev/null || true; rm -rf "$dir"' EXIT
while [ ! -S "$dir/gsd.sock" ]; do sleep 0.05; done
"$B/gsctl" -s "$dir/gsd.sock" start counter counter 0 >/dev/null
perf record -e cpu-clock -F 4999 --call-graph fp -p $gsd -o "$dir/perf.data" 2>/dev/null &
perf=$!
sleep 0.3
"$B/gsbench" -s "$dir/gsd.sock" -S counter -C 1 -t 3 -w 0.2 "$@" | head -1
kill -INT $perf
wait $perf 2>/dev/null || true
echo "== by area (self time, % of gsd's CPU)"
perf report -i "$dir/perf.data" --no-children --stdio --sort dso,symbol -g none 2>/dev/null |
    awk '/^ *[0-9.]+%/ {
        pct = $1 + 0; dso = $2; sym = $NF
        for (i = 3; i <= NF; i++) if ($i == "[k]" || $i == "[.]") { sym = $(i + 1); kern = ($i == "[k]") }
        if (kern) a = "kernel: socket read/write, epoll, wake-ups"
        else if (sym ~ /^(gsp_framer_feed|gsp_head_read|head|gsp_get_|gsp_envelope_read|gsp_request_read|skip|gsp_is_nil|gsp_decode)/) a = "protocol: framing, envelope, decoding"
        else if (sym ~ /^(method_dispatch|m_|arg_|find|ok|registry_|gsp_name_valid|gsp_method_is)/) a = "method: params, server lookup"
        else if (sym ~ /^(waiter_|heap_|answer|arm|table_grow)/) a = "waiter: a caller waiting"
        else if (sym ~ /^(msg_|mailbox_|sched_|server_|run$|may_run|after_callback|dispatch|encode|init_result)/) a = "mailbox, scheduler, server"
        else if (sym ~ /^(api_|gsp_buf_|gsp_pack_|value_fits|scratch_|buf_write|put_|now_)/) a = "encoding replies, scratch, clock"
        else if (sym ~ /^(conn_|listen_)/) a = "connections"
        else if (dso ~ /counter|pingpong|modules/) a = "the module (counter)"
        else if (dso ~ /libevent/) a = "libevent"
        else if (dso ~ /msgpack/) a = "msgpack-c"
        else if (dso ~ /libc|vdso/) a = "libc (memcpy, malloc, clock)"
        else a = "other"
        t[a] += pct
    } END { for (a in t) printf "%6.1f%%  %s\n", t[a], a }' | sort -rn
echo "== self"
perf report -i "$dir/perf.data" --no-children --stdio --sort symbol -g none 2>/dev/null |
    grep -v '^#' | grep -v '^$' | head -"${LINES:-40}"
echo "== with children"
perf report -i "$dir/perf.data" --children --stdio --sort symbol -g none 2>/dev/null |
    grep -v '^#' | grep -v '^$' | head -"${LINES:-40}"
