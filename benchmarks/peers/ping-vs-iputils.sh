#!/usr/bin/env bash
# edgemeter ping vs iputils ping on 127.0.0.1, in the same run, at 1 ms, 100 ms and 1 s intervals.
# Three sides per round: iputils ping, edgemeter --spin off, edgemeter --spin on; the order rotates
# each round so no side always runs first (on a cold or a warm machine).
#
# Same span on both sides: a user-space clock read just before the send -> the kernel's receive stamp
# of the reply (iputils: gettimeofday into the payload, SO_TIMESTAMP; edgemeter: CLOCK_REALTIME,
# SO_TIMESTAMPNS). Like with like: iputils prints each RTT as the difference of two stamps truncated to
# whole microseconds, which is an unbiased µs figure (its error is spread over (-1, +1) µs, mean 0);
# edgemeter's samples.csv has nanoseconds. So the comparison is the ratio of the MEANS of every echo
# (all rounds pooled, nothing dropped), with a 95 % bootstrap confidence interval (resampling echoes on
# both sides, 1000 resamples). Medians are printed too, but ping's sit on a 1 µs grid.
# Goal: edgemeter's mean <= iputils' (ratio <= 1.0): "met" when the whole CI is <= 1, "not met" when
# it is > 1, "inconclusive" when it straddles 1. Every side's ok/attempts and errors (lost, timed-out,
# unreachable, error echoes, a failed exit) are printed; the verdict FAILS on any error on any side.
#   benchmarks/peers/ping-vs-iputils.sh [ROUNDS=3] [ECHOES_1MS=1000] [ECHOES_100MS=50] [ECHOES_1S=10]
# (echoes per side per round; defaults take ≈ 3 min: 3 × (3 × 1 + 3 × 5 + 3 × 10) s of echoes)
# Loopback only; needs root (raw ICMP sockets; iputils' -i below 0.2 s).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
n1=${2:-1000}
n100=${3:-50}
n1s=${4:-10}
bin=.build/release/edgemeter
if [ ! -x "$bin" ]; then swift build -c release --product edgemeter >/dev/null; fi
command -v ping >/dev/null || { echo "iputils ping missing: apt-get install iputils-ping" >&2; exit 2; }
ping -V 2>&1 | grep -q iputils || { echo "ping is not iputils ping: apt-get install iputils-ping" >&2; exit 2; }
tmp=$(mktemp -d)
# Its edgemeter runs are recorded (as a user's are) in a history under $tmp, not in the user's own.
export EDGEMETER_DB=${EDGEMETER_DB:-$tmp/history.sqlite}
trap 'rm -rf "$tmp"' EXIT
target=127.0.0.1

# One side, one round: writes $out.values (RTT ms, one per line) and $out.counts ("ok attempts errors").
run_side() { # side interval_ms count out
  local side=$1 ims=$2 n=$3 out=$4 rc=0
  case $side in
    iputils)
      ping -c "$n" -i "$(awk -v m="$ims" 'BEGIN {printf "%g", m / 1000}')" "$target" >"$out.txt" 2>"$out.err" || rc=$?
      sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' "$out.txt" >"$out.values"
      python3 - "$out.txt" "$rc" >"$out.counts" <<'PY'
import re, sys
text, rc = open(sys.argv[1]).read(), int(sys.argv[2])
m = re.search(r"(\d+) packets transmitted, (\d+) received(?:, \+(\d+) duplicates)?(?:, \+(\d+) corrupted)?(?:, \+(\d+) errors)?", text)
if not m:
    print(0, 0, 1); sys.exit()
sent, recv = int(m.group(1)), int(m.group(2))
extra = sum(int(g or 0) for g in m.group(3, 4, 5))
print(recv, sent, sent - recv + extra + (1 if rc != 0 else 0))
PY
      ;;
    spin-off|spin-on)
      "$bin" ping -c "$n" -i "${ims}ms" --spin "${side#spin-}" -q "$target" --out "$out.run" >"$out.txt" 2>"$out.err" || rc=$?
      python3 - "$out.run/samples.csv" "$rc" "$out.values" >"$out.counts" <<'PY'
import csv, os, sys
path, rc, values = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [r for r in csv.DictReader(open(path))] if os.path.exists(path) else []
echo = [r for r in rows if r["phase"] == "echo"]
ok = [r for r in echo if r["status"] == "ok"]
with open(values, "w") as f:
    for r in ok: f.write(r["value"] + "\n")
labels = dict(kv.split("=", 1) for kv in ok[0]["labels"].split(";")) if ok else {}
open(values + ".labels", "w").write(f"socket={labels.get('socket','?')} timestamp={labels.get('timestamp','?')} spin={labels.get('spin','?')}")
print(len(ok), len(echo), len(echo) - len(ok) + (1 if rc != 0 else 0))
PY
      ;;
  esac
}

sides=(iputils spin-off spin-on)
name() { case $1 in iputils) echo "iputils ping";; spin-off) echo "edgemeter --spin off";; spin-on) echo "edgemeter --spin on";; esac; }
errors_total=0
report=$tmp/report.txt
: >"$report"

compare_interval() { # interval_ms echoes_per_round label
  local ims=$1 n=$2 label=$3 r k s
  echo "== $label: $rounds rounds x $n echoes per side, order rotating per round; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
  for s in "${sides[@]}"; do : >"$tmp/$ims-$s.all"; echo "0 0 0" >"$tmp/$ims-$s.tot"; done
  for r in $(seq 1 "$rounds"); do
    local line="round $r:"
    for k in 0 1 2; do
      s=${sides[$(( (k + r - 1) % 3 ))]}
      run_side "$s" "$ims" "$n" "$tmp/$ims-$s-r$r"
      cat "$tmp/$ims-$s-r$r.values" >>"$tmp/$ims-$s.all"
      read -r ok att err <"$tmp/$ims-$s-r$r.counts"
      read -r tok tatt terr <"$tmp/$ims-$s.tot"
      echo "$((tok + ok)) $((tatt + att)) $((terr + err))" >"$tmp/$ims-$s.tot"
      line+=" $(name "$s") $ok/$att ok, $err errors, mean $(awk '{s+=$1; n++} END {if (n) printf "%.4f", s/n; else printf "nan"}' "$tmp/$ims-$s-r$r.values") ms |"
    done
    echo "${line% |}"
  done
  [ -f "$tmp/$ims-spin-off-r1.values.labels" ] && echo "edgemeter: $(cat "$tmp/$ims-spin-off-r1.values.labels" | sed 's/ spin=.*//')"
  python3 - "$label" "$tmp/$ims-iputils.all" "$tmp/$ims-spin-off.all" "$tmp/$ims-spin-on.all" \
    "$(cat "$tmp/$ims-iputils.tot")" "$(cat "$tmp/$ims-spin-off.tot")" "$(cat "$tmp/$ims-spin-on.tot")" <<'PY' | tee -a "$report"
import random, statistics, sys
label = sys.argv[1]
data = [[float(x) for x in open(p) if x.strip()] for p in sys.argv[2:5]]
tots = [list(map(int, t.split())) for t in sys.argv[5:8]]
names = ["iputils ping", "edgemeter --spin off", "edgemeter --spin on"]
for nm, d, (ok, att, err) in zip(names, data, tots):
    mean = statistics.fmean(d) if d else float("nan")
    med = statistics.median(d) if d else float("nan")
    print(f"{label}: {nm:22s} {ok}/{att} ok, {err} errors; mean {mean*1000:.2f} µs, median {med*1000:.2f} µs over {len(d)} echoes")
rng = random.Random(1)
def boot(a, b, reps=1000):
    na, nb = len(a), len(b)
    out = []
    for _ in range(reps):
        sa = sum(rng.choices(a, k=na)) / na
        sb = sum(rng.choices(b, k=nb)) / nb
        out.append(sa / sb)
    out.sort()
    return out[int(0.025 * reps)], out[int(0.975 * reps) - 1]
ip = data[0]
for nm, d in zip(names[1:], data[1:]):
    if not d or not ip:
        print(f"{label}: {nm} / iputils: no data"); continue
    r = statistics.fmean(d) / statistics.fmean(ip)
    lo, hi = boot(d, ip)
    goal = "met" if hi <= 1.0 else "not met" if lo > 1.0 else "inconclusive"
    rm = statistics.median(d) / statistics.median(ip)
    print(f"{label}: ratio of means {nm} / iputils = {r:.3f} [95% CI {lo:.3f}, {hi:.3f}] (goal <= 1.0: {goal}); ratio of medians {rm:.3f}")
PY
  for s in "${sides[@]}"; do read -r _ _ e <"$tmp/$ims-$s.tot"; errors_total=$((errors_total + e)); done
  echo
}

compare_interval 1 "$n1" "1 ms"
compare_interval 100 "$n100" "100 ms"
compare_interval 1000 "$n1s" "1 s"

echo "== summary (as measured, every echo of every round)"
grep -E 'ratio of means' "$report"
if [ "$errors_total" -gt 0 ]; then
  echo "verdict: FAIL: $errors_total errors (lost echoes or failed runs) across the sides; see the ok/attempts lines above"
  exit 1
fi
echo "verdict: no errors on any side; the goal per comparison is in the ratio lines above"
