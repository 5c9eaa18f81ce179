#!/usr/bin/env bash
# edgemeter report vs GNU datamash on the same samples.csv: ROWS ping-shaped rows (as `edgemeter ping`
# writes them, ~1% timeouts; written by the hidden `edgemeter generate-samples`), wall time and peak
# RSS (/usr/bin/time) of
#   edgemeter report DIR        summary.csv + summary.md: per group (scenario, probe, target, metric,
#                               phase, unit) sent/received/loss, exact min/mean/max/mdev/sum,
#                               p50/p90/p99/p99.9 (HDR, 3 digits), median CI, failures by status
#   awk | datamash              the same file: awk keeps the ok rows (datamash refuses the empty value of
#                               a timeout row), datamash -g 2,3,4,5,6,8 count/mean/min/max/pstdev/
#                               perc:50/90/99 of column 7 (exact percentiles over values it keeps in
#                               memory). The file holds one group in order, so datamash runs without
#                               -s (sorting would cost it more); edgemeter needs no order.
# in ROUNDS rounds, the side that goes first alternating (odd rounds edgemeter, even rounds datamash).
# Medians over all rounds (none dropped); both sides' ok/rounds printed; the verdict FAILS (exit 1) on
# any failure or when the two disagree on the count, the mean (1e-6 relative) or p50/p90/p99 (0.2 %,
# HDR's resolution plus interpolation). Then, once, the whole-file reader edgemeter had before
# streaming (`edgemeter report --whole-file`, hidden) on the first BASELINE_ROWS rows (it holds every
# row in memory: 10 million rows would need ~11 GB).
# Goal (issue 14): 10 million rows summarised in < 3 s with < 200 MB.
# BIN=PATH runs another edgemeter binary (default .build/release/edgemeter, built when missing).
#   [SAMPLES=DIR] [BIN=PATH] benchmarks/peers/report-vs-datamash.sh [ROWS=10000000] [ROUNDS=3] [BASELINE_ROWS=1000000]
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=${1:-10000000}
rounds=${2:-3}
baseline_rows=${3:-1000000}
bin=${BIN:-.build/release/edgemeter}
if [ ! -x "$bin" ]; then swift build -c release --product edgemeter >/dev/null; fi
command -v datamash >/dev/null || { echo "datamash missing: apt-get install -y datamash (scripts/setup.sh lists it)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time missing: apt-get install -y time" >&2; exit 2; }
tmp=$(mktemp -d)
# Its edgemeter runs are recorded (as a user's are) in a history under $tmp, not in the user's own.
export EDGEMETER_DB=${EDGEMETER_DB:-$tmp/history.sqlite}
trap 'rm -rf "$tmp"' EXIT
dir=$tmp/run

# SAMPLES=DIR: reuse a samples.csv written before by `edgemeter generate-samples --shape ping` (its
# first ROWS rows are used).
if [ -n "${SAMPLES:-}" ]; then
  mkdir -p "$dir"; head -n $((rows + 1)) "$SAMPLES/samples.csv" >"$dir/samples.csv"
else
  /usr/bin/time -f "generated in %e s" "$bin" generate-samples --rows "$rows" --shape ping "$dir" 2>&1
fi
echo "file: $(stat -c %s "$dir/samples.csv") bytes, $rows rows"
# Read it once so both sides start from the page cache.
cat "$dir/samples.csv" >/dev/null

median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f\n", m}'; }
for f in emw emm dmw dmm; do : >"$tmp/$f.txt"; done
em_ok=0; dm_ok=0; failures=0
run_em() {
  /usr/bin/time -o "$tmp/emt$r" -f "%e %M" "$bin" report "$dir" >"$tmp/em$r.md" 2>"$tmp/em$r.log" || echo "failed" >>"$tmp/emt$r"
}
run_dm() {
  /usr/bin/time -o "$tmp/dmt$r" -f "%e %M" sh -c "awk -F, 'NR > 1 && \$10 == \"ok\"' '$dir/samples.csv' \
    | datamash -t, -g 2,3,4,5,6,8 count 7 mean 7 min 7 max 7 pstdev 7 perc:50 7 perc:90 7 perc:99 7" \
    >"$tmp/dm$r.csv" 2>"$tmp/dm$r.log" || echo "failed" >>"$tmp/dmt$r"
}
for r in $(seq 1 "$rounds"); do
  if (( r % 2 )); then run_em; run_dm; else run_dm; run_em; fi
  bad=0
  if grep -q -e failed -e "non-zero" "$tmp/emt$r" || [ ! -s "$dir/summary.csv" ]; then
    bad=1; failures=$((failures + 1)); echo "round $r: edgemeter report FAILED: $(tail -2 "$tmp/em$r.log" | tr '\n' ' ')"
  else em_ok=$((em_ok + 1)); fi
  if grep -q -e failed -e "non-zero" "$tmp/dmt$r" || [ ! -s "$tmp/dm$r.csv" ]; then
    bad=1; failures=$((failures + 1)); echo "round $r: datamash FAILED: $(tail -2 "$tmp/dm$r.log" | tr '\n' ' ')"
  else dm_ok=$((dm_ok + 1)); fi
  [ "$bad" = 0 ] || continue
  read -r emw emm <"$tmp/emt$r"; read -r dmw dmm <"$tmp/dmt$r"
  echo "round $r ($( (( r % 2 )) && echo edgemeter || echo datamash) first): edgemeter ${emw} s, $((emm / 1024)) MB peak | awk+datamash ${dmw} s, $((dmm / 1024)) MB peak (largest process)"
  echo "$emw" >>"$tmp/emw.txt"; echo "$emm" >>"$tmp/emm.txt"; echo "$dmw" >>"$tmp/dmw.txt"; echo "$dmm" >>"$tmp/dmm.txt"
done
echo "edgemeter report: $em_ok/$rounds rounds ok; awk+datamash: $dm_ok/$rounds rounds ok"
[ -s "$tmp/emw.txt" ] || { echo "verdict: FAIL: no round where both sides succeeded"; exit 1; }

# Same figures: edgemeter's summary.csv row vs datamash's line.
last=$(ls "$tmp"/dm[0-9]*.csv | head -1)
check=0
python3 - "$dir/summary.csv" "$last" <<'PY' || check=$?
import csv, sys
em = next(csv.DictReader(open(sys.argv[1])))
dm = next(csv.reader(open(sys.argv[2])))
count, mean, lo, hi, sd, p50, p90, p99 = dm[6:14]
print(f"edgemeter: sent {em['sent']}, received {em['received']}, mean {em['mean']}, min {em['min']}, max {em['max']}, mdev {em['mdev']}, p50 {em['p50']}, p90 {em['p90']}, p99 {em['p99']} (ms)")
print(f"datamash:  count {count}, mean {float(mean):.6f}, min {lo}, max {hi}, pstdev {float(sd):.6f}, p50 {p50}, p90 {p90}, p99 {p99} (ms)")
bad = []
if int(em["received"]) != int(count): bad.append("count")
if abs(float(em["mean"]) - float(mean)) > 1e-6 * float(mean) + 1e-6: bad.append("mean")
for k, v in (("min", lo), ("max", hi)):
    if abs(float(em[k]) - float(v)) > 1e-9: bad.append(k)
for k, v in (("p50", p50), ("p90", p90), ("p99", p99)):
    if abs(float(em[k]) - float(v)) > 0.002 * float(v): bad.append(k)
print("figures agree" if not bad else "figures DIFFER: " + ", ".join(bad))
sys.exit(1 if bad else 0)
PY
[ "$check" = 0 ] || failures=$((failures + 1))

emw=$(median <"$tmp/emw.txt"); emm=$(median <"$tmp/emm.txt"); dmw=$(median <"$tmp/dmw.txt"); dmm=$(median <"$tmp/dmm.txt")
awk -v a="$emw" -v am="$emm" -v b="$dmw" -v bm="$dmm" -v n="$rows" 'BEGIN {
  printf "median over %d rows: edgemeter report %.3f s, %.0f MB peak; awk+datamash %.3f s, %.0f MB peak\n", n, a, am / 1024, b, bm / 1024
  printf "ratio datamash/edgemeter: %.2fx the time, %.2fx the memory\n", b / a, bm / am
  if (n >= 10000000) printf "goal (10M rows < 3 s, < 200 MB): %s\n", (a < 3 && am / 1024 < 200) ? "met" : "NOT met"
}'

# The reader edgemeter had before streaming, once, on the first BASELINE_ROWS rows.
if [ "$baseline_rows" -gt 0 ]; then
  base=$tmp/base
  mkdir -p "$base"
  head -n $((baseline_rows + 1)) "$dir/samples.csv" >"$base/samples.csv"
  for side in stream whole; do
    flag=""; [ "$side" = whole ] && flag="--whole-file"
    /usr/bin/time -o "$tmp/base-$side" -f "%e %M" "$bin" report $flag "$base" >/dev/null 2>"$tmp/base-$side.log" || { echo "baseline $side FAILED: $(tail -2 "$tmp/base-$side.log")"; failures=$((failures + 1)); continue; }
    cp "$base/summary.csv" "$tmp/base-$side.csv"
  done
  if [ -s "$tmp/base-stream" ] && [ -s "$tmp/base-whole" ]; then
    read -r sw sm <"$tmp/base-stream"; read -r ww wm <"$tmp/base-whole"
    same=$(cmp -s "$tmp/base-stream.csv" "$tmp/base-whole.csv" && echo "identical summary.csv" || echo "summary.csv DIFFERS")
    [ "$same" = "identical summary.csv" ] || failures=$((failures + 1))
    awk -v n="$baseline_rows" -v sw="$sw" -v sm="$sm" -v ww="$ww" -v wm="$wm" -v same="$same" 'BEGIN {
      printf "before streaming, %d rows: whole-file reader %.2f s, %.0f MB peak; streamed %.3f s, %.0f MB peak (%.0fx faster, %.0fx less memory; %s)\n", n, ww, wm / 1024, sw, sm / 1024, ww / sw, wm / sm, same }'
  fi
fi
if [ "$failures" -gt 0 ]; then echo "verdict: FAIL ($failures failures)"; exit 1; fi
echo "verdict: ok"
