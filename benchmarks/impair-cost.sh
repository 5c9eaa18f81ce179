#!/usr/bin/env bash
# The impairment forwarder's own cost, on benchmarks/impair/forwarder-cost.yaml (traffic stays
# inside the lab's namespaces):
#  1. added round trip at delay 0: ICMP RTT client -> `forwarded` (through the forwarder, both
#     directions) minus client -> `direct` (bridge only), COUNT echoes each, iputils ping;
#  2. CPU at an exact 10k packets/s: iperf3 UDP from client to `forwarded` at PPS packets/s
#     (default 10 000: -b = PPS x LEN x 8 bit/s of LEN-byte payloads, default 125 B, paced every
#     100 us) for SECONDS_LOAD s; the forwarder's utime+stime from /proc/<pid>/stat before and after,
#     and the frames it forwarded (GET /links), so CPU is given per second and per frame actually moved.
#     MODE=ping uses the older load instead: PARALLEL pings at -i INTERVAL.
# DELAY=5ms sets that delay before the load (the CPU then includes timed releases and the spin).
# Usage: benchmarks/impair-cost.sh [BIN] (default .build/debug/edgemeter). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-.build/debug/edgemeter}
COUNT=${COUNT:-500}
INTERVAL=${INTERVAL:-0.001}
PARALLEL=${PARALLEL:-5}
SECONDS_LOAD=${SECONDS_LOAD:-10}
PPS=${PPS:-10000}
LEN=${LEN:-125}
MODE=${MODE:-iperf3}
TOPO=benchmarks/impair/forwarder-cost.yaml
SOCK=/run/edgemeter/lab/fwdcost.sock
CLIENT=edgemeter-fwdcost-client

"$BIN" lab up "$TOPO" >/dev/null
trap '"$BIN" lab down fwdcost >/dev/null' EXIT
pid=$(python3 -c 'import json;print(json.load(open("/run/edgemeter/lab/fwdcost.json"))["impairment"]["pid"])')
echo "# machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), binary $BIN, forwarder pid $pid ($(chrt -p "$pid" | tail -2 | tr '\n' ' '))"

rtts() { # address -> sorted RTTs in ms
  ip netns exec "$CLIENT" ping -n -q -c 3 -i 0.01 "$1" >/dev/null   # ARP and caches warm
  ip netns exec "$CLIENT" ping -n -c "$COUNT" -i 0.01 "$1" | grep -o 'time=[0-9.]*' | cut -d= -f2 | sort -n
}
q() { awk -v q="$1" '{v[NR]=$1} END {i=int(q*NR); if (i<1) i=1; printf "%.3f", v[i]}'; }
d=$(rtts 10.209.0.1); f=$(rtts 10.209.0.2)
dp50=$(echo "$d" | q 0.5); fp50=$(echo "$f" | q 0.5); dp99=$(echo "$d" | q 0.99); fp99=$(echo "$f" | q 0.99)
echo "rtt direct   : p50 $dp50 ms, p99 $dp99 ms ($COUNT echoes)"
echo "rtt forwarded: p50 $fp50 ms, p99 $fp99 ms ($COUNT echoes)"
echo "added by the forwarder (both directions): p50 $(echo "$fp50 - $dp50" | bc -l) ms, p99 $(echo "$fp99 - $dp99" | bc -l) ms"

if [ -n "${DELAY:-}" ]; then "$BIN" lab link set fwdcost forwarded --delay "$DELAY"; fi   # the load then pays the release timer too
fwd() { curl -s --unix-socket "$SOCK" http://forwarder/links | python3 -c 'import json,sys;l=json.load(sys.stdin)[0];print(l["to_network"]["forwarded"]+l["to_node"]["forwarded"])'; }
cpu() { awk '{print $14+$15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
f0=$(fwd); c0=$(cpu); t0=$(date +%s.%N)
if [ "$MODE" = iperf3 ]; then
  command -v iperf3 >/dev/null || { echo "iperf3 is not installed: run scripts/setup.sh (it installs Debian's iperf3)" >&2; exit 1; }
  ip netns exec edgemeter-fwdcost-forwarded iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
  srv=$!
  sleep 0.5
  f0=$(fwd); c0=$(cpu); t0=$(date +%s.%N)
  ip netns exec "$CLIENT" iperf3 -u -c 10.209.0.2 -p 5201 -l "$LEN" -b "$((PPS * LEN * 8))" --pacing-timer 100 \
    -t "$SECONDS_LOAD" | grep -E 'sender|receiver' | sed 's/^/iperf3: /'
  wait "$srv" || true
else
  n=$(python3 -c "print(int($SECONDS_LOAD / $INTERVAL))")
  for _ in $(seq "$PARALLEL"); do ip netns exec "$CLIENT" ping -n -q -c "$n" -i "$INTERVAL" 10.209.0.2 | grep transmitted & done
  wait
fi
t1=$(date +%s.%N); c1=$(cpu); f1=$(fwd)
python3 - "$f0" "$f1" "$c0" "$c1" "$t0" "$t1" "$hz" <<'PY'
import sys
f0, f1, c0, c1, t0, t1, hz = map(float, sys.argv[1:])
secs = t1 - t0; frames = f1 - f0; cpu = (c1 - c0) / hz
pps = frames / secs
print(f"load: {frames:.0f} frames forwarded in {secs:.2f} s = {pps:.0f} frames/s; forwarder CPU {cpu:.2f} s = {100*cpu/secs:.1f} % of a core")
print(f"CPU per 10k frames/s: {100*cpu/secs * 10000/pps:.1f} % of a core ({1e6*cpu/frames:.2f} us per frame)")
PY
