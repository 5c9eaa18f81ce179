#!/usr/bin/env bash
# The calculator front end's throughput and latency at single-operation expressions, measured by
# edgemeter load (closed loop) against `edgemeter serve calculator --role all` on loopback (free
# ports), and the same operation called directly on its operation service, so the ratio shows what
# the front end's hop costs: ratio = front end req/s / direct operation service req/s.
# The side that goes first alternates per expression (sum: front first, sub: direct first, ...); each
# run has a 1 s warm-up that is not recorded. Both sides' completed requests and errors (connect,
# timeout, reset, status, body) are printed; the verdict FAILS (exit 1) on any error on either side.
#   benchmarks/peers/calculator-throughput.sh [DURATION_SECONDS] [CONNECTIONS] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/../.."
dur=${1:-5}
conns=${2:-16}
threads=${3:-1}
bin=.build/release/edgemeter
if [ ! -x "$bin" ]; then swift build -c release --product edgemeter >/dev/null; fi
tmp=$(mktemp -d)
# Its edgemeter runs are recorded (as a user's are) in a history under $tmp, not in the user's own.
export EDGEMETER_DB=${EDGEMETER_DB:-$tmp/history.sqlite}
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

"$bin" serve calculator --role all --port 0 >"$tmp/calc.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "front listening" "$tmp/calc.log" 2>/dev/null && break; sleep 0.1; done
front=$(sed -n 's/^calculator front listening on \(http:[^ ]*\).*/\1/p' "$tmp/calc.log")
[ -n "$front" ] || { echo "the calculator did not start:" >&2; cat "$tmp/calc.log" >&2; exit 2; }
svc() { sed -n "s/^calculator $1 listening on \(http:[^ ]*\).*/\1/p" "$tmp/calc.log"; }

# "achieved req/s, uncorrected p50 ms, p99 ms, completed requests, errors" of one load run directory
counts() {
  python3 - "$1/samples.csv" <<'PY'
import csv, os, sys
if not os.path.exists(sys.argv[1]):
    print("0 0 0 0 1"); sys.exit()
rows = list(csv.DictReader(open(sys.argv[1])))
v = lambda r: float(r["value"] or 0)
get = lambda m, p: sum(v(r) for r in rows if r["metric"] == m and r["phase"] == p)
req = sum(v(r) for r in rows if r["metric"] == "responses")
err = sum(v(r) for r in rows if r["metric"] == "errors")
print(f"{get('throughput', 'achieved'):.2f} {get('latency', 'uncorrected_p50'):.3f} {get('latency', 'uncorrected_p99'):.3f} {req:.0f} {err:.0f}")
PY
}
load() { # out url [body]
  local out=$1 url=$2 rc=0
  if [ $# -ge 3 ]; then
    "$bin" load -t "$threads" -c "$conns" -d "${dur}s" --warmup 1s --body "$3" --expect-status 200 --out "$out" "$url" >"$out.txt" 2>&1 || rc=$?
  else
    "$bin" load -t "$threads" -c "$conns" -d "${dur}s" --warmup 1s --expect-status 200 --out "$out" "$url" >"$out.txt" 2>&1 || rc=$?
  fi
  echo "$rc" >"$out.rc"
}

echo "calculator on loopback: edgemeter load, ${threads} thread(s), ${conns} connections, ${dur} s + 1 s warm-up per run, first side alternating; $(nproc) cores shared, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-8s %-7s %12s %10s %10s %16s %12s %16s %8s\n' op expr first "front req/s" "p50 ms" "p99 ms" "front req/err" "direct req/s" "direct req/err" ratio
total_errors=0
k=0
for pair in "sum:5+6:5:6" "sub:7-2:7:2" "mul:3*4:3:4" "div:8/2:8:2"; do
  IFS=: read -r op expr a b <<<"$pair"
  k=$((k + 1))
  if (( k % 2 )); then
    first=front; load "$tmp/front-$op" "$front" "$expr"; load "$tmp/direct-$op" "$(svc "$op")/$op?a=$a&b=$b"
  else
    first=direct; load "$tmp/direct-$op" "$(svc "$op")/$op?a=$a&b=$b"; load "$tmp/front-$op" "$front" "$expr"
  fi
  read -r f p50 p99 freq ferr < <(counts "$tmp/front-$op")
  read -r d _ _ dreq derr < <(counts "$tmp/direct-$op")
  [ "$(cat "$tmp/front-$op.rc")" = 0 ] || ferr=$((ferr + 1))
  [ "$(cat "$tmp/direct-$op.rc")" = 0 ] || derr=$((derr + 1))
  total_errors=$((total_errors + ferr + derr))
  awk -v op="$op" -v e="$expr" -v first="$first" -v f="$f" -v p50="$p50" -v p99="$p99" -v fr="$freq/$ferr" -v d="$d" -v dr="$dreq/$derr" \
    'BEGIN { printf "%-6s %-8s %-7s %12.0f %10.3f %10.3f %16s %12.0f %16s %8.3f\n", op, e, first, f, p50, p99, fr, d, dr, (d > 0 ? f / d : 0) }'
done
echo "(req/err = completed requests / errors in the measured span)"
if [ "$total_errors" -gt 0 ]; then
  echo "verdict: FAIL: $total_errors errors across both sides (see req/err above; each run's report is in its load output)"
  exit 1
fi
echo "verdict: no errors on either side"
