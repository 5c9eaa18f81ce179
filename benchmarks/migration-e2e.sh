#!/usr/bin/env bash
# The delay-driven migration end to end, and its interruption over many moves (docs/migration.md,
# "End to end").
#
#   sudo benchmarks/migration-e2e.sh [MOVES=10]
#
# 1. `edgemeter migrate-demo`: the scenario (edge-cloud lab with container nodes at 5/30/80 ms each
#    way, requirement 20ms@p90, app on node_2 → node_1; node_1's link to 60 ms → alert, moves to
#    node_2, the least-bad; "can't migrate service! Best node is the one active node_2" at 20 ms;
#    requirement 100 ms → stays), the vehicle at 100 requests/s through the proxy throughout.
# 2. `edgemeter migrate-demo --moves MOVES`: node_1 and node_2 swap 5 and 30 ms MOVES times; the app
#    follows, one move per swap; per-move interruption with a 95 % CI (Student's t).
# Each writes report.md, moves.csv, decisions.csv, delay-windows.csv, vehicle.csv, events.csv,
# controller.log and decisions.json under OUT (default /tmp/migration-e2e). Exit 1 when a request
# failed or a step did not happen. Only the lab's namespaces, its containers and loopback are used.
set -euo pipefail
MOVES=${1:-${MOVES:-10}}
OUT=${OUT:-/tmp/migration-e2e}
cd "$(dirname "$0")/.."
BIN=${EDGEMETER_BIN:-}
if [[ -z "$BIN" ]]; then
    for c in .build/release/edgemeter .build/debug/edgemeter; do [[ -x $c ]] && { BIN=$PWD/$c; break; }; done
fi
[[ -n "$BIN" && -x "$BIN" ]] || { echo "no edgemeter binary: run swift build (or set EDGEMETER_BIN)" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "needs root (lab namespaces, the Docker socket): sudo $0 $MOVES" >&2; exit 2; }
[[ "$MOVES" =~ ^[0-9]+$ && "$MOVES" -ge 2 ]] || { echo "MOVES must be a whole number ≥ 2, got \"$MOVES\"" >&2; exit 2; }
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), load average: $(cut -d' ' -f1-3 /proc/loadavg), binary $BIN"
status=0
"$BIN" migrate-demo --out "$OUT/scenario" || status=1
"$BIN" migrate-demo --moves "$MOVES" --out "$OUT/moves" --step-timeout 90s || status=1
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), load average: $(cut -d' ' -f1-3 /proc/loadavg); reports in $OUT/scenario and $OUT/moves"
exit $status
