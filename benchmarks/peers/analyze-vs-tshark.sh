#!/usr/bin/env bash
# edgemeter analyze vs tshark on the same 1-million-packet pcap (synthetic HTTP/1.1 on Ethernet/IPv4
# with known timings, written by `edgemeter pcap-generate`): wall time of
#   edgemeter analyze --no-samples FILE   (flows, handshakes, retransmissions, HTTP timings; writes
#                                          flows.csv, handshakes.csv, http.csv and summary.md)
#   tshark -r FILE -q -z conv,tcp         (the TCP conversation table only)
# in ROUNDS rounds, the side that goes first alternating (odd rounds edgemeter, even rounds tshark),
# then checks that both give the same handshake RTT for every connection (tshark's
# tcp.analysis.initial_rtt vs edgemeter's handshake_ms, to the nanosecond).
# Not the same work: edgemeter's command does the whole analysis and writes its tables; tshark's
# conv,tcp only tallies conversations, so the ratio understates edgemeter's lead, if anything. The
# tshark pass that extracts the initial RTTs (the check at the end) is timed once too.
# Medians over all rounds (no round dropped); each side's ok/attempts (a non-zero exit or a missing
# output is a failure) is printed; the verdict FAILS (exit 1) on any failure or any RTT that differs.
# Goal: edgemeter >= 10x faster with the same RTTs.
#   benchmarks/peers/analyze-vs-tshark.sh [PACKETS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
packets=${1:-1000000}
rounds=${2:-5}
bin=.build/release/edgemeter
if [ ! -x "$bin" ]; then swift build -c release --product edgemeter >/dev/null; fi
command -v tshark >/dev/null || { echo "tshark missing: apt-get install -y tshark" >&2; exit 2; }
tmp=$(mktemp -d)
# Its edgemeter runs are recorded (as a user's are) in a history under $tmp, not in the user's own.
export EDGEMETER_DB=${EDGEMETER_DB:-$tmp/history.sqlite}
trap 'rm -rf "$tmp"' EXIT
pcap=$tmp/bench.pcap

"$bin" pcap-generate "$pcap" --packets "$packets" 2>&1
echo "file: $(stat -c %s "$pcap") bytes"

median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f\n", m}'; }
: >"$tmp/em.txt"; : >"$tmp/ts.txt"; : >"$tmp/emcpu.txt"; : >"$tmp/tscpu.txt"; : >"$tmp/inner.txt"
# /usr/bin/time: wall seconds, then user+system CPU seconds (less sensitive to other load on the machine).
em_ok=0; ts_ok=0; failures=0
run_em() { /usr/bin/time -o "$tmp/emt$r" -f "%e %U %S" "$bin" analyze --no-samples --out "$tmp/em$r" "$pcap" 2>"$tmp/em$r.log" || echo "failed" >>"$tmp/emt$r"; }
run_ts() { /usr/bin/time -o "$tmp/tst$r" -f "%e %U %S" tshark -r "$pcap" -q -z conv,tcp >"$tmp/conv$r.txt" 2>"$tmp/ts$r.log" || echo "failed" >>"$tmp/tst$r"; }
for r in $(seq 1 "$rounds"); do
  if (( r % 2 )); then run_em; run_ts; else run_ts; run_em; fi
  # /usr/bin/time writes "Command exited with non-zero status N" before the figures when the command fails.
  bad=0
  if grep -q -e failed -e "non-zero" "$tmp/emt$r" || [ ! -s "$tmp/em$r/flows.csv" ]; then
    bad=1; failures=$((failures + 1)); echo "round $r: edgemeter analyze FAILED: $(tail -2 "$tmp/em$r.log" | tr '\n' ' ')"
  else em_ok=$((em_ok + 1)); fi
  if grep -q -e failed -e "non-zero" "$tmp/tst$r" || ! grep -q '<->' "$tmp/conv$r.txt"; then
    bad=1; failures=$((failures + 1)); echo "round $r: tshark FAILED: $(tail -2 "$tmp/ts$r.log" | tr '\n' ' ')"
  else ts_ok=$((ts_ok + 1)); fi
  [ "$bad" = 0 ] || continue   # a round's figures count only when both sides ran
  read -r emw emu ems <"$tmp/emt$r"; read -r tsw tsu tss <"$tmp/tst$r"
  emc=$(awk -v u="$emu" -v s="$ems" 'BEGIN {printf "%.2f", u+s}'); tsc=$(awk -v u="$tsu" -v s="$tss" 'BEGIN {printf "%.2f", u+s}')
  inner=$(sed -n 's/^analysed [0-9]* frames in \([0-9.]*\) s.*/\1/p' "$tmp/em$r.log")
  echo "round $r ($( (( r % 2 )) && echo edgemeter || echo tshark) first): edgemeter ${emw} s wall, ${emc} s CPU (analysis itself ${inner} s) | tshark conv,tcp ${tsw} s wall, ${tsc} s CPU"
  echo "$emw" >>"$tmp/em.txt"; echo "$tsw" >>"$tmp/ts.txt"; echo "$emc" >>"$tmp/emcpu.txt"; echo "$tsc" >>"$tmp/tscpu.txt"; echo "$inner" >>"$tmp/inner.txt"
done
echo "edgemeter analyze: $em_ok/$rounds rounds ok; tshark conv,tcp: $ts_ok/$rounds rounds ok"
[ -s "$tmp/em.txt" ] || { echo "verdict: FAIL: no round where both sides succeeded"; exit 1; }
em=$(median <"$tmp/em.txt"); ts=$(median <"$tmp/ts.txt"); inner=$(median <"$tmp/inner.txt")
emc=$(median <"$tmp/emcpu.txt"); tsc=$(median <"$tmp/tscpu.txt")
last=$(dirname "$(ls "$tmp"/em[0-9]*/flows.csv | head -1)")
convs=$(grep -c '<->' "$(grep -l '<->' "$tmp"/conv*.txt | head -1)" || true)
flows=$(($(wc -l <"$last/flows.csv") - 1))
echo "conversations: tshark $convs, edgemeter $flows flows"
awk -v a="$em" -v b="$ts" -v i="$inner" -v c="$emc" -v d="$tsc" 'BEGIN { printf "median wall: edgemeter %.3f s (analysis %.3f s), tshark %.3f s: %.1fx faster whole command (goal >= 10x: %s), %.1fx analysis only\nmedian CPU: edgemeter %.2f s, tshark %.2f s: %.1fx less CPU\n", a, i, b, b/a, (b/a>=10?"met":"NOT met"), b/i, c, d, d/c}'

# Same handshake RTTs: tshark's initial RTT per connection (first packet that carries it) vs edgemeter's.
echo "comparing handshake RTTs with tshark -T fields -e tcp.analysis.initial_rtt (one more tshark pass, timed) ..."
/usr/bin/time -o "$tmp/irtt.time" -f "%e %U %S" tshark -r "$pcap" -n -Y tcp.analysis.initial_rtt -T fields -E separator=, \
  -e ip.src -e tcp.srcport -e ip.dst -e tcp.dstport -e tcp.analysis.initial_rtt 2>/dev/null >"$tmp/irtt.csv" || failures=$((failures + 1))
read -r iw iu is <"$tmp/irtt.time" || true
echo "tshark initial_rtt extraction: ${iw:-?} s wall (edgemeter's analyze gives these and more in its median ${em} s)"
rc=0
python3 - "$tmp/irtt.csv" "$last/handshakes.csv" <<'PY' || rc=$?
import csv, sys
theirs = {}
for src, sp, dst, dp, rtt in csv.reader(open(sys.argv[1])):
    key = (src, sp) if dp == "8080" else (dst, dp)      # the client side
    theirs.setdefault(key, round(float(rtt) * 1e9))
mine = {}
for row in csv.DictReader(open(sys.argv[2])):
    if row["handshake_ms"]:
        ms, frac = row["handshake_ms"].split(".")
        mine[(row["client"], row["client_port"])] = int(ms) * 1_000_000 + int(frac)
same = sum(1 for k, v in mine.items() if theirs.get(k) == v)
diff = [(k, v, theirs.get(k)) for k, v in mine.items() if theirs.get(k) != v]
print(f"handshake RTTs: edgemeter {len(mine)}, tshark {len(theirs)}, identical to the ns: {same}, different: {len(diff)}")
for d in diff[:5]: print("  differs:", d)
sys.exit(0 if same == len(mine) == len(theirs) else 1)
PY
if [ "$rc" != 0 ] || [ "$failures" -gt 0 ]; then
  echo "verdict: FAIL: $failures failed runs, handshake RTTs $([ "$rc" = 0 ] && echo identical || echo "differ (above)")"
  exit 1
fi
echo "verdict: every run of both sides succeeded and every handshake RTT is identical to the ns"
