#!/usr/bin/env bash
# The calculator front end's throughput and latency at single-operation expressions, measured by
# edgemeter load (closed loop) against `edgemeter serve calculator --role all` on loopback (free
# ports), and the same operation called directly on its operation service, so the ratio shows what
# the front end's hop costs: ratio = front end req/s / direct operation service req/s.
#   benchmarks/peers/calculator-throughput.sh [DURATION_SECONDS] [CONNECTIONS] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/../.."
dur=${1:-5}
conns=${2:-16}
threads=${3:-1}
bin=.build/release/edgemeter
if [ ! -x "$bin" ]; then swift build -c release --product edgemeter >/dev/null; fi
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

"$bin" serve calculator --role all --port 0 >"$tmp/calc.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "front listening" "$tmp/calc.log" 2>/dev/null && break; sleep 0.1; done
front=$(sed -n 's/^calculator front listening on \(http:[^ ]*\).*/\1/p' "$tmp/calc.log")
[ -n "$front" ] || { echo "the calculator did not start:" >&2; cat "$tmp/calc.log" >&2; exit 2; }
svc() { sed -n "s/^calculator $1 listening on \(http:[^ ]*\).*/\1/p" "$tmp/calc.log"; }

field() { awk -F, -v p="$2" '$5 ~ /^(throughput|latency)$/ && $6==p {print $7}' "$1/samples.csv"; }

echo "calculator on loopback: edgemeter load, ${threads} thread(s), ${conns} connections, ${dur} s + 1 s warm-up per expression; $(nproc) cores shared"
printf '%-6s %-8s %12s %10s %10s %12s %8s\n' op expr "front req/s" "p50 ms" "p99 ms" "direct req/s" ratio
for pair in "sum:5+6:5:6" "sub:7-2:7:2" "mul:3*4:3:4" "div:8/2:8:2"; do
  IFS=: read -r op expr a b <<<"$pair"
  "$bin" load -t "$threads" -c "$conns" -d "${dur}s" --warmup 1s --body "$expr" --expect-status 200 \
    --out "$tmp/front-$op" "$front" >/dev/null 2>&1
  "$bin" load -t "$threads" -c "$conns" -d "${dur}s" --warmup 1s --expect-status 200 \
    --out "$tmp/direct-$op" "$(svc "$op")/$op?a=$a&b=$b" >/dev/null 2>&1
  f=$(field "$tmp/front-$op" achieved); d=$(field "$tmp/direct-$op" achieved)
  p50=$(field "$tmp/front-$op" uncorrected_p50); p99=$(field "$tmp/front-$op" uncorrected_p99)
  errs=$(awk -F, '$5=="errors" {s+=$7} END {print s+0}' "$tmp/front-$op/samples.csv")
  [ "$errs" = 0 ] || echo "warning: $errs errors in the $op run" >&2
  awk -v op="$op" -v e="$expr" -v f="$f" -v p50="$p50" -v p99="$p99" -v d="$d" \
    'BEGIN { printf "%-6s %-8s %12.0f %10.3f %10.3f %12.0f %8.3f\n", op, e, f, p50, p99, d, f / d }'
done
