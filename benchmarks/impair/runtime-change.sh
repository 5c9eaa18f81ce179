#!/usr/bin/env bash
# The edge-cloud links at their declared delays, and a runtime change of one under a running load.
# Traffic stays inside the lab's namespaces (the vehicle to the nodes over the lab's own bridge).
#  1. `lab up edge-cloud`; `serve calculator --role sum` on port 8000 of every node; from the vehicle,
#     iputils ping (kernel receive stamps, COUNT echoes every 20 ms) and `edgemeter tcping` (COUNT
#     connects) to each node: p50 against 2 x the declared per-direction delay (5/30/80/40 ms).
#  2. `edgemeter load -c 4 -R RATE -d DURATION` from the vehicle to node_1's /healthz; CHANGE_AT
#     seconds in, `lab link set edge-cloud node_1 --delay 60ms`; the load's errors must be 0 (no
#     connection dropped or reset, no request lost) and its per-second latency moves from ~10 to ~120 ms.
# Usage: sudo benchmarks/impair/runtime-change.sh [BIN] (default .build/debug/edgemeter).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-.build/debug/edgemeter}
COUNT=${COUNT:-100}
RATE=${RATE:-200}
DURATION=${DURATION:-12}
CHANGE_AT=${CHANGE_AT:-4}
NS=edgemeter-edge-cloud
[ -e /run/edgemeter/lab/edge-cloud.json ] && { echo "edge-cloud is up already (someone else's run?); not touching it" >&2; exit 2; }
"$BIN" lab up edge-cloud
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; "$BIN" lab down edge-cloud >/dev/null' EXIT
echo "# $(date -u +%FT%TZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), binary $BIN"
for n in node_1 node_2 node_3 cloud; do
  ip netns exec "$NS-$n" "$BIN" serve calculator --role sum --host 0.0.0.0 --port 8000 >/dev/null 2>&1 &
  pids+=($!)
done
sleep 2
declare -A ADDR=([node_1]=10.204.0.1 [node_2]=10.204.0.2 [node_3]=10.204.0.3 [cloud]=10.204.0.100)
declare -A DECL=([node_1]=5 [node_2]=30 [node_3]=80 [cloud]=40)
p50() { sort -n | awk '{v[NR]=$1} END {printf "%.3f", (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
echo "| node | declared per direction | predicted RTT | ICMP p50 (n=$COUNT) | TCP connect p50 (n=$COUNT) |"
echo "|---|---|---|---|---|"
for n in node_1 node_2 node_3 cloud; do
  a=${ADDR[$n]}
  ip netns exec "$NS-vehicle" ping -n -q -c 3 -i 0.02 "$a" >/dev/null
  icmp=$(ip netns exec "$NS-vehicle" ping -n -c "$COUNT" -i 0.02 "$a" | grep -o 'time=[0-9.]*' | cut -d= -f2 | p50)
  tcp=$(ip netns exec "$NS-vehicle" "$BIN" tcping -c "$COUNT" -i 20ms "$a:8000" | grep -o 'time=[0-9.]*' | cut -d= -f2 | p50)
  echo "| $n | ${DECL[$n]} ms | $((2 * DECL[$n])) ms | $icmp ms | $tcp ms |"
done
echo
echo "# load on node_1 (5 ms each way), delay set to 60 ms at ${CHANGE_AT} s of ${DURATION} s"
( sleep "$CHANGE_AT"; echo "[$(date -u +%T.%N | cut -c1-12)] $("$BIN" lab link set edge-cloud node_1 --delay 60ms)" ) &
changer=$!
ip netns exec "$NS-vehicle" "$BIN" load -c 4 -R "$RATE" -d "${DURATION}s" --expect-status 200 http://10.204.0.1:8000/healthz
wait "$changer"
"$BIN" lab status | grep -A0 'node_1:edge'
