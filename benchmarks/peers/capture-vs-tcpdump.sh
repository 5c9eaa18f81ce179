#!/usr/bin/env bash
# edgemeter capture vs tcpdump on the same traffic: both capture lo at once (same filter, snap length
# and ring size, immediate mode) while a UDP sender blasts small datagrams at a loopback address of
# this run as fast as one core allows for DURATION seconds. Compares what each wrote and the drops
# each kernel ring reported (pcap_stats), as in tcpdump's closing lines.
# ROUNDS rounds; which of the two opens its handle first alternates per round (odd: tcpdump first).
# Per round and side: captured/sent, the kernel ring's drops and the packets in the written file.
# An error is a capturer that fails (non-zero exit, no closing statistics) or a file holding fewer
# packets than the capturer says it captured (lost data); the verdict FAILS (exit 1) on any error on
# either side. Drops are the measured figure, not errors.
#   benchmarks/peers/capture-vs-tcpdump.sh [DURATION_S=5] [RING_KIB=32768] [matched|tcpdump-defaults] [ROUNDS=2]
# matched: tcpdump --immediate-mode -B RING_KIB -s 65535 (edgemeter's settings);
# tcpdump-defaults: tcpdump with its own defaults (no immediate mode, 2 MiB ring, -s 262144).
set -euo pipefail
cd "$(dirname "$0")/../.."
dur=${1:-5}
ring=${2:-32768}
mode=${3:-matched}
rounds=${4:-2}
bin=.build/release/edgemeter
if [ ! -x "$bin" ]; then swift build -c release --product edgemeter >/dev/null; fi
command -v tcpdump >/dev/null || { echo "tcpdump missing: apt-get install -y tcpdump" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "capturing needs root (or CAP_NET_RAW+CAP_NET_ADMIN on both binaries)" >&2; exit 2; }
tmp=$(mktemp -d)
# Its edgemeter runs are recorded (as a user's are) in a history under $tmp, not in the user's own.
export EDGEMETER_DB=${EDGEMETER_DB:-$tmp/history.sqlite}
pids=()
cleanup() { for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
# Traffic only to a loopback address no one else uses (127/8 all answers on lo).
addr="127.$((RANDOM % 100 + 100)).$((RANDOM % 250)).$((RANDOM % 250 + 1))"
port=$((30000 + RANDOM % 20000))
filter="udp and dst host $addr and dst port $port"

if [ "$mode" = matched ]; then tdopts=(--immediate-mode -B "$ring" -s 65535); else tdopts=(); fi
start_td() { tcpdump -i lo -n -w "$tmp/tcpdump-$r.pcap" "${tdopts[@]}" "$filter" 2>"$tmp/tcpdump-$r.log" & td=$!; pids+=("$td"); }
start_em() { "$bin" capture -i lo -f "$filter" --snaplen 65535 --buffer-size "$ring" -w "$tmp/edgemeter-$r.pcap" --out "$tmp/run-$r" 2>"$tmp/edgemeter-$r.log" & em=$!; pids+=("$em"); }

echo "capture on lo, ${dur} s of 32-byte UDP datagrams to $addr:$port per round; mode $mode, ring ${ring} KiB; $rounds rounds; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-10s %-10s %22s %18s %14s %12s %8s\n' round tool "opened" "captured/sent" "pcap_stats recv" "kernel drops" "in file" errors
errors=0
for r in $(seq 1 "$rounds"); do
  if (( r % 2 )); then start_td; start_em; first=tcpdump; else start_em; start_td; first=edgemeter; fi
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
  td_rc=0; em_rc=0
  wait "$td" || td_rc=$?
  wait "$em" || em_rc=$?
  pids=()
  td_cap=$(sed -n 's/^\([0-9]*\) packets captured.*/\1/p' "$tmp/tcpdump-$r.log")
  td_recv=$(sed -n 's/^\([0-9]*\) packets received by filter.*/\1/p' "$tmp/tcpdump-$r.log")
  td_drop=$(sed -n 's/^\([0-9]*\) packets dropped by kernel.*/\1/p' "$tmp/tcpdump-$r.log")
  em_line=$(grep 'packets captured' "$tmp/edgemeter-$r.log" || true)
  em_cap=$(echo "$em_line" | sed -n 's/^\([0-9]*\) packets captured.*/\1/p')
  em_recv=$(echo "$em_line" | sed -n 's/.*received \([0-9]*\),.*/\1/p')
  em_drop=$(echo "$em_line" | sed -n 's/.*, dropped \([0-9]*\),.*/\1/p')
  td_file=$(capinfos -c -M "$tmp/tcpdump-$r.pcap" 2>/dev/null | sed -n 's/^Number of packets: *//p')
  em_file=$(capinfos -c -M "$tmp/edgemeter-$r.pcap" 2>/dev/null | sed -n 's/^Number of packets: *//p')
  # tcpdump exits 0 on SIGINT; edgemeter capture exits 0 when it stopped cleanly.
  td_err=0; em_err=0
  [ "$td_rc" = 0 ] && [ -n "$td_cap" ] && [ "${td_file:-0}" -ge "${td_cap:-1}" ] || td_err=1
  [ "$em_rc" = 0 ] && [ -n "$em_cap" ] && [ "${em_file:-0}" -ge "${em_cap:-1}" ] || em_err=1
  errors=$((errors + td_err + em_err))
  for side in tcpdump edgemeter; do
    if [ $side = tcpdump ]; then c=$td_cap; rv=$td_recv; dr=$td_drop; f=$td_file; e=$td_err; rc=$td_rc; else c=$em_cap; rv=$em_recv; dr=$em_drop; f=$em_file; e=$em_err; rc=$em_rc; fi
    pct=$(awk -v c="${c:-0}" -v s="$sent" 'BEGIN {printf "%.1f%%", (s > 0 ? 100 * c / s : 0)}')
    printf '%-6s %-10s %-10s %22s %18s %14s %12s %8s\n' "$r" "$side" "$([ "$side" = "$first" ] && echo first || echo second)" \
      "${c:-?}/$sent ($pct)" "${rv:-?}" "${dr:-?}" "${f:-?}" "$e$([ "$e" = 0 ] || echo " (exit $rc)")"
  done
  [ "$td_err" = 0 ] || tail -3 "$tmp/tcpdump-$r.log" | sed 's/^/    tcpdump: /'
  [ "$em_err" = 0 ] || tail -3 "$tmp/edgemeter-$r.log" | sed 's/^/    edgemeter: /'
done
echo "(on lo the kernel counts each packet twice in pcap_stats' received; drops are ring overflows)"
if [ "$errors" -gt 0 ]; then
  echo "verdict: FAIL: $errors errors (a capturer failed or its file holds fewer packets than it captured)"
  exit 1
fi
echo "verdict: both capturers ran cleanly in every round; captured/sent above is the comparison, as measured"
