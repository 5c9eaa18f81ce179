#!/usr/bin/env bash
# edgemeter ping vs iputils ping on 127.0.0.1, in the same run: 1000 echoes each at 1 ms,
# in alternating A/B rounds (default 3 rounds of 1000) so both see the same machine state.
# Prints both medians and the ratio (goal: edgemeter's median <= ping's, ratio <= 1.0).
#   benchmarks/peers/ping-vs-iputils.sh [ROUNDS] [ECHOES_PER_ROUND]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
per=${2:-1000}
bin=.build/release/edgemeter
if [ ! -x "$bin" ]; then swift build -c release --product edgemeter >/dev/null; fi
command -v ping >/dev/null || { echo "iputils ping missing: apt-get install iputils-ping" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print "nan"; exit} m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.4f\n", m}'; }

em_all=$tmp/em.txt; ip_all=$tmp/ip.txt
: >"$em_all"; : >"$ip_all"
for r in $(seq 1 "$rounds"); do
  "$bin" ping -c "$per" -i 1ms -q 127.0.0.1 --out "$tmp/run$r" >/dev/null 2>&1
  awk -F, 'NR>1 && $6=="echo" && $10=="ok" {print $7}' "$tmp/run$r/samples.csv" >"$tmp/em$r.txt"
  ping -c "$per" -i 0.001 127.0.0.1 | sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' >"$tmp/ip$r.txt"
  socket=$(awk -F, 'NR>1 && $6=="echo" {print $12; exit}' "$tmp/run$r/samples.csv")
  printf 'round %d: edgemeter median %s ms (%d echoes; %s) | iputils ping median %s ms (%d echoes)\n' \
    "$r" "$(median <"$tmp/em$r.txt")" "$(wc -l <"$tmp/em$r.txt")" "$socket" "$(median <"$tmp/ip$r.txt")" "$(wc -l <"$tmp/ip$r.txt")"
  cat "$tmp/em$r.txt" >>"$em_all"; cat "$tmp/ip$r.txt" >>"$ip_all"
done
em=$(median <"$em_all"); ipm=$(median <"$ip_all")
# iputils prints each time truncated to whole microseconds; truncate edgemeter's the same way so
# the medians compare like with like (the ns-resolution median is printed too).
emt=$(awk '{printf "%.3f\n", int($1*1000)/1000}' "$em_all" | median)
echo "overall: edgemeter median ${em} ms (${emt} ms truncated to us as ping prints), iputils ping median ${ipm} ms"
awk -v a="$emt" -v b="$ipm" 'BEGIN { r=a/b; printf "ratio edgemeter/ping (both truncated to us) = %.3f (goal <= 1.0: %s)\n", r, (r<=1.0?"met":"NOT met") }' 
