#!/usr/bin/env bash
# edgemeter capture vs tcpdump on the same traffic: both capture lo at once (same filter, snap length
# and ring size, immediate mode) while a UDP sender blasts small datagrams at a loopback address of
# this run as fast as one core allows for DURATION seconds. Compares what each wrote and the drops
# each kernel ring reported (pcap_stats), as in tcpdump's closing lines.
#   benchmarks/peers/capture-vs-tcpdump.sh [DURATION_S] [RING_KIB] [matched|tcpdump-defaults]
# matched: tcpdump --immediate-mode -B RING_KIB -s 65535 (edgemeter's settings);
# tcpdump-defaults: tcpdump with its own defaults (no immediate mode, 2 MiB ring, -s 262144).
set -euo pipefail
cd "$(dirname "$0")/../.."
dur=${1:-5}
ring=${2:-32768}
mode=${3:-matched}
bin=.build/release/edgemeter
if [ ! -x "$bin" ]; then swift build -c release --product edgemeter >/dev/null; fi
command -v tcpdump >/dev/null || { echo "tcpdump missing: apt-get install -y tcpdump" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "capturing needs root (or CAP_NET_RAW+CAP_NET_ADMIN on both binaries)" >&2; exit 2; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
# Traffic only to a loopback address no one else uses (127/8 all answers on lo).
addr="127.$((RANDOM % 100 + 100)).$((RANDOM % 250)).$((RANDOM % 250 + 1))"
port=$((30000 + RANDOM % 20000))
filter="udp and dst host $addr and dst port $port"

if [ "$mode" = matched ]; then tdopts=(--immediate-mode -B "$ring" -s 65535); else tdopts=(); fi
tcpdump -i lo -n -w "$tmp/tcpdump.pcap" "${tdopts[@]}" "$filter" 2>"$tmp/tcpdump.log" &
pids+=($!); td=$!
"$bin" capture -i lo -f "$filter" --snaplen 65535 --buffer-size "$ring" -w "$tmp/edgemeter.pcap" --out "$tmp/run" 2>"$tmp/edgemeter.log" &
pids+=($!); em=$!
sleep 2 # both handles open

sent=$(python3 - "$addr" "$port" "$dur" <<'PY'
import socket, sys, time
addr, port, dur = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # bound so the kernel sends no port-unreachable
rx.bind((addr, port))
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
tx.connect((addr, port))
payload = b"x" * 32
n = 0
end = time.monotonic() + dur
while True:
    for _ in range(1000):
        try:
            tx.send(payload); n += 1
        except OSError:
            pass
    if time.monotonic() >= end:
        break
print(n)
PY
)
sleep 1
kill -INT "$td" "$em"
wait "$td" || true
wait "$em" || true
pids=()

rate=$(awk -v n="$sent" -v d="$dur" 'BEGIN {printf "%.0f", n/d}')
echo "sent $sent datagrams in ${dur} s (${rate}/s) to $addr:$port; mode $mode, ring ${ring} KiB"
td_cap=$(sed -n 's/^\([0-9]*\) packets captured.*/\1/p' "$tmp/tcpdump.log")
td_recv=$(sed -n 's/^\([0-9]*\) packets received by filter.*/\1/p' "$tmp/tcpdump.log")
td_drop=$(sed -n 's/^\([0-9]*\) packets dropped by kernel.*/\1/p' "$tmp/tcpdump.log")
em_line=$(grep 'packets captured' "$tmp/edgemeter.log" || true)
em_cap=$(echo "$em_line" | sed -n 's/^\([0-9]*\) packets captured.*/\1/p')
em_recv=$(echo "$em_line" | sed -n 's/.*received \([0-9]*\),.*/\1/p')
em_drop=$(echo "$em_line" | sed -n 's/.*, dropped \([0-9]*\),.*/\1/p')
td_file=$(capinfos -c -M "$tmp/tcpdump.pcap" 2>/dev/null | sed -n 's/^Number of packets: *//p')
em_file=$(capinfos -c -M "$tmp/edgemeter.pcap" 2>/dev/null | sed -n 's/^Number of packets: *//p')
printf '%-10s %12s %18s %14s %12s\n' tool captured "pcap_stats recv" "kernel drops" "in file"
printf '%-10s %12s %18s %14s %12s\n' tcpdump "$td_cap" "$td_recv" "$td_drop" "$td_file"
printf '%-10s %12s %18s %14s %12s\n' edgemeter "$em_cap" "$em_recv" "$em_drop" "$em_file"
echo "(on lo the kernel counts each packet twice in pcap_stats' received; drops are ring overflows)"
awk -v s="$sent" -v a="$td_cap" -v b="$em_cap" 'BEGIN { printf "captured of sent: tcpdump %.1f%%, edgemeter %.1f%%\n", 100*a/s, 100*b/s }'
