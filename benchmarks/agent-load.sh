#!/usr/bin/env bash
# One agent probing 1000 targets at 1 Hz: CPU, memory over time, scrape size and time.
#
#   sudo benchmarks/agent-load.sh [DURATION_S=120]      # the record: DURATION_S=600 (10 minutes)
#
# Everything runs inside a network namespace of its own, `agent-bench` (only its loopback, so no
# packet leaves it and no other engineer's port is touched): the namespace allows unprivileged ICMP
# datagram sockets there (net.ipv4.ping_group_range is per namespace), so each ping target has a
# datagram socket that sees only its own replies (raw sockets would each see every reply).
#
# Targets: 500 ping targets 127.0.1.1 … 127.0.2.244 (every 127/8 address answers on lo) and 500
# tcping targets 127.0.0.1:20000 … 20499, served by one python3 listener that accepts and closes.
# Every SAMPLE_S seconds: the agent's CPU time (utime+stime from /proc/PID/stat), its RSS
# (VmRSS), and one scrape of /metrics (bytes, curl's time_total). At the end: probes made (from
# the agent's own counters), CPU seconds per 1000 probes, RSS first/last/max.
set -euo pipefail
DURATION_S=${1:-${DURATION_S:-120}}
SAMPLE_S=${SAMPLE_S:-10}
cd "$(dirname "$0")/.."
BIN=${EDGEMETER_BIN:-}
if [[ -z "$BIN" ]]; then
    for c in .build/release/edgemeter .build/debug/edgemeter; do [[ -x $c ]] && { BIN=$PWD/$c; break; }; done
fi
[[ -n "$BIN" && -x "$BIN" ]] || { echo "no edgemeter binary: run swift build (or set EDGEMETER_BIN)" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "needs root (a network namespace): sudo $0 $DURATION_S" >&2; exit 2; }
[[ "$DURATION_S" =~ ^[0-9]+$ && "$DURATION_S" -ge "$SAMPLE_S" ]] || { echo "DURATION_S must be a whole number ≥ $SAMPLE_S, got \"$DURATION_S\"" >&2; exit 2; }
NS=agent-bench
PORT=9427
WORK=$(mktemp -d /tmp/agent-load.XXXXXX)
AGENT=""; LISTENER=""
cleanup() {
    [[ -n "$AGENT" ]] && kill "$AGENT" 2>/dev/null && wait "$AGENT" 2>/dev/null || true
    [[ -n "$LISTENER" ]] && kill "$LISTENER" 2>/dev/null && wait "$LISTENER" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
ip netns del "$NS" 2>/dev/null || true
ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" sysctl -qw net.ipv4.ping_group_range="0 2147483647"

# The tcping listener: 500 ports on 127.0.0.1 in one thread (accept, close).
cat > "$WORK/listener.py" <<'EOF'
import selectors, socket, sys
sel = selectors.DefaultSelector()
for port in range(20000, 20500):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(128); s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
print("listening", flush=True)
while True:
    for key, _ in sel.select():
        try:
            c, _ = key.fileobj.accept(); c.close()
        except OSError:
            pass
EOF
ip netns exec "$NS" python3 "$WORK/listener.py" > "$WORK/listener.out" 2>&1 &
LISTENER=$!
for _ in $(seq 50); do grep -q listening "$WORK/listener.out" 2>/dev/null && break; sleep 0.1; done

{
    echo "listen: 127.0.0.1:$PORT"
    echo "node: bench"
    echo "interval: 1s"
    echo "probes:"
    printf '  - name: ping\n    kind: ping\n    socket: datagram\n    targets: ['
    for i in $(seq 0 499); do a=$(( 257 + i )); printf '%s127.0.%d.%d' "$([[ $i -gt 0 ]] && echo ', ')" $(( a / 256 )) $(( a % 256 )); done
    printf ']\n  - name: tcp\n    kind: tcping\n    targets: ['
    for i in $(seq 0 499); do printf '%s"127.0.0.1:%d"' "$([[ $i -gt 0 ]] && echo ', ')" $(( 20000 + i )); done
    printf ']\n'
} > "$WORK/agent.yaml"

ip netns exec "$NS" "$BIN" agent --config "$WORK/agent.yaml" > "$WORK/agent.out" 2>&1 &
AGENT=$!
for _ in $(seq 100); do ip netns exec "$NS" curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done
TICKS=$(getconf CLK_TCK)
cpu_s() { awk -v t="$TICKS" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$AGENT/stat"; }
rss_mb() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$AGENT/status"; }
attempts() { awk '/^edgemeter_attempts_total/ && /phase="(echo|connect)"/ { s += $NF } END { printf "%d", s }' "$1"; }

echo "binary: $BIN; $(grep -c . "$WORK/agent.yaml") config lines, 1000 targets at 1 Hz, ${DURATION_S}s, a row every ${SAMPLE_S}s"
printf '%6s %9s %8s %8s %11s %9s %10s\n' t_s cpu_s cpu_% rss_mb scrape_kb scrape_ms probes
ip netns exec "$NS" curl -s -o "$WORK/metrics.txt" "http://127.0.0.1:$PORT/metrics"
start=$(date +%s.%N); cpu0=$(cpu_s); prev_cpu=$cpu0; prev_t=$start; probes0=$(attempts "$WORK/metrics.txt")
rss_first=""; rss_max=0; rss_last=0
for ((k = SAMPLE_S; k <= DURATION_S; k += SAMPLE_S)); do
    sleep "$(awk -v s="$start" -v k="$k" -v n="$(date +%s.%N)" 'BEGIN { d = s + k - n; print (d > 0 ? d : 0) }')"
    now=$(date +%s.%N); cpu=$(cpu_s); rss=$(rss_mb)
    read -r bytes secs < <(ip netns exec "$NS" curl -s -o "$WORK/metrics.txt" -w '%{size_download} %{time_total}\n' "http://127.0.0.1:$PORT/metrics")
    pct=$(awk -v c="$cpu" -v p="$prev_cpu" -v n="$now" -v t="$prev_t" 'BEGIN { printf "%.1f", (c - p) / (n - t) * 100 }')
    printf '%6d %9s %8s %8s %11.0f %9.1f %10s\n' "$k" "$cpu" "$pct" "$rss" "$(awk -v b="$bytes" 'BEGIN { print b / 1024 }')" \
        "$(awk -v s="$secs" 'BEGIN { print s * 1000 }')" "$(attempts "$WORK/metrics.txt")"
    prev_cpu=$cpu; prev_t=$now
    [[ -z "$rss_first" ]] && rss_first=$rss
    rss_last=$rss
    rss_max=$(awk -v a="$rss_max" -v b="$rss" 'BEGIN { print (b > a ? b : a) }')
done
probes=$(( $(attempts "$WORK/metrics.txt") - probes0 ))
cpu=$(cpu_s)
echo
echo "probes counted by the agent during the run: $probes (1000 targets × ${DURATION_S} s = $(( 1000 * DURATION_S )) due)"
awk -v c="$cpu" -v c0="$cpu0" -v p="$probes" 'BEGIN { printf "CPU: %.2f s for %d probes = %.3f CPU s per 1000 probes\n", c - c0, p, (c - c0) / p * 1000 }'
echo "RSS: first row $rss_first MB, last $rss_last MB, max $rss_max MB"
echo "lost/errors: $(awk '/^edgemeter_lost_total/ { l += $NF } /^edgemeter_errors_total/ { e += $NF } END { printf "%d lost, %d errors", l, e }' "$WORK/metrics.txt")"
