#!/usr/bin/env bash
# Nothing left behind, and how fast: `lab up two-subnet` cycles with SIGKILL at random moments.
#
#   sudo benchmarks/lab-cycles.sh [CYCLES=100]
#
# 1. Takes `edgemeter lab inventory` before anything.
# 2. CYCLES times: starts `lab up two-subnet`, sends SIGKILL after a random delay of 0-450 ms from
#    the start (past the end of a debug build's `lab up` now and then, so some cycles complete and
#    are taken down with `lab down`), then runs `edgemeter cleanup` when it was killed. After each
#    cycle the inventory is taken again and compared with the first one.
# 3. Speed: 5 rounds of `lab up two-subnet`, `reach two-subnet` (7 nodes + the host) and
#    `lab down two-subnet`, wall time of each command (process start to exit, `date +%s%N`), median.
#
# The diff compared is the whole inventory; the machine may be shared with other runs, so the lines
# that name this topology (its namespaces `edgemeter-two-subnet*`, links `em-<tag>-*`, state files
# and any dot-file temporaries under /run/edgemeter/lab,
# rules with its subnets) or this binary's processes are counted separately: those must be zero
# (exit 1 otherwise); the others are printed as "other users of the host".
# Traffic: only `reach`, whose probes stay inside the lab's namespaces and host link.
set -euo pipefail
CYCLES=${1:-${CYCLES:-100}}
cd "$(dirname "$0")/.."
BIN=${EDGEMETER_BIN:-}
if [[ -z "$BIN" ]]; then
    for c in .build/release/edgemeter .build/debug/edgemeter; do [[ -x $c ]] && { BIN=$PWD/$c; break; }; done
fi
[[ -n "$BIN" && -x "$BIN" ]] || { echo "no edgemeter binary: run swift build (or set EDGEMETER_BIN)" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "needs root (network namespaces): sudo $0 $CYCLES" >&2; exit 2; }
[[ "$CYCLES" =~ ^[0-9]+$ ]] || { echo "CYCLES must be a whole number, got \"$CYCLES\"" >&2; exit 2; }
NAME=two-subnet
# The topology's interface tag: FNV-1a of the name, folded to 16 bits (as TopologyPlan does).
h=2166136261
for ((i = 0; i < ${#NAME}; i++)); do
    printf -v c '%d' "'${NAME:i:1}"
    h=$(( ((h ^ c) * 16777619) & 0xffffffff ))
done
TAG=$(printf '%04x' $(( (h >> 16) ^ (h & 0xffff) )))
OURS="edgemeter-$NAME|em-$TAG|^[<>] process edgemeter|/run/edgemeter/lab/($NAME\.|\.)|10\.203\.|192\.168\.[12]\."
WORK=$(mktemp -d /tmp/lab-cycles.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
echo "binary: $BIN; topology $NAME (tag $TAG); $CYCLES cycles; work dir $WORK"
[[ -e /run/edgemeter/lab/$NAME.json ]] && "$BIN" lab down "$NAME" >/dev/null
"$BIN" lab inventory > "$WORK/before.txt"
echo "inventory: $(grep -vc '^#' "$WORK/before.txt") objects; $(grep -c '^#' "$WORK/before.txt" || true) not checked"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
killed=0 completed=0 dirty=0 other=0 cleanup_ms=()
t0=$(now_ms)
for ((n = 1; n <= CYCLES; n++)); do
    delay_ms=$(( RANDOM % 450 ))
    "$BIN" lab up "$NAME" > "$WORK/up.out" 2>&1 &
    pid=$!
    sleep "$(printf '0.%03d' "$delay_ms")"
    if kill -KILL "$pid" 2>/dev/null; then :; fi
    set +e; wait "$pid" 2>/dev/null; rc=$?; set -e
    s=$(now_ms)
    if [[ $rc == 137 ]]; then
        killed=$((killed + 1))
        "$BIN" cleanup > "$WORK/cleanup.out" 2>&1 || { echo "cycle $n: cleanup failed:"; cat "$WORK/cleanup.out"; }
    else
        completed=$((completed + 1))
        "$BIN" lab down "$NAME" > "$WORK/down.out" 2>&1 || { echo "cycle $n: lab up exit $rc, lab down failed:"; cat "$WORK/up.out" "$WORK/down.out"; }
    fi
    cleanup_ms+=($(( $(now_ms) - s )))
    "$BIN" lab inventory > "$WORK/after.txt"
    if ! diff "$WORK/before.txt" "$WORK/after.txt" > "$WORK/diff.txt"; then
        if grep -E "$OURS" "$WORK/diff.txt" > "$WORK/ours.txt"; then
            dirty=$((dirty + 1))
            echo "cycle $n (SIGKILL after $delay_ms ms, lab up exit $rc): LEFT BEHIND:"; sed 's/^/    /' "$WORK/ours.txt"
        else
            other=$((other + 1))
            echo "cycle $n: inventory changed by other users of the host (not this topology):"; grep '^[<>]' "$WORK/diff.txt" | head -5 | sed 's/^/    /'
        fi
        cp "$WORK/after.txt" "$WORK/before.txt"   # compare the next cycle with the host as it is now
    fi
done
t1=$(now_ms)
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "cycles: $CYCLES in $(( (t1 - t0) / 1000 )) s; killed during lab up: $killed (then cleanup), completed before the kill: $completed (then lab down)"
echo "cleanup/down after a cycle: median $(median "${cleanup_ms[@]}") ms, max $(printf '%s\n' "${cleanup_ms[@]}" | sort -n | tail -1) ms"
echo "cycles leaving something of $NAME behind: $dirty; cycles where other users changed the host: $other"

ups=() reaches=() downs=()
for r in 1 2 3 4 5; do
    s=$(now_ms); "$BIN" lab up "$NAME" > "$WORK/up.out" 2>&1 || { cat "$WORK/up.out"; exit 1; }; ups+=($(( $(now_ms) - s )))
    s=$(now_ms); "$BIN" reach "$NAME" --out "$WORK/reach" > "$WORK/reach.out" 2>&1 || { cat "$WORK/reach.out"; exit 1; }; reaches+=($(( $(now_ms) - s )))
    s=$(now_ms); "$BIN" lab down "$NAME" > "$WORK/down.out" 2>&1 || { cat "$WORK/down.out"; exit 1; }; downs+=($(( $(now_ms) - s )))
done
echo "speed (wall time of the command, median of 5, each run listed):"
echo "  lab up $NAME:   $(median "${ups[@]}") ms  (${ups[*]})   target < 2000 ms"
echo "  reach $NAME:    $(median "${reaches[@]}") ms  (${reaches[*]})   target < 5000 ms; $(grep -o '[0-9]* probes' "$WORK/reach.out" | head -1)"
echo "  lab down $NAME: $(median "${downs[@]}") ms  (${downs[*]})   target < 1000 ms"
"$BIN" lab inventory > "$WORK/after.txt"
if diff "$WORK/before.txt" "$WORK/after.txt" | grep -E "$OURS" ; then dirty=$((dirty + 1)); echo "LEFT BEHIND after the speed rounds (above)"; fi
if [[ $dirty -gt 0 ]]; then echo "verdict: FAIL ($dirty leftovers)"; exit 1; fi
echo "verdict: ok, inventory diff empty for $NAME after every cycle"
