#!/usr/bin/env bash
# Container and VM startup: edgemeter's Docker Engine API phases against the docker CLI, timed in the
# same run, then Docker, LXC and QEMU (TCG) medians side by side. Same image, same command
# (edgemeter-base:latest, /bin/true, no network) on both sides.
#   1. Whole processes, RUNS rounds after 2 warm-up rounds, the two in an order that rotates per round
#      (peerstats.py alternate: wall time from spawn to exit):
#        docker run --rm --network none edgemeter-base:latest /bin/true
#          covers: the docker CLI's own start, create, attach, start, wait for the exit, the daemon's
#          auto-remove (the CLI waits for it), the CLI's exit
#        edgemeter startup docker -n 1 --ready exit --out DIR
#          covers: edgemeter's start, the image check, the events stream, create, start, running,
#          ready (= exited 0), stop, remove, writing the four report files, its exit
#      Not the same work; printed because it is what a user of either tool waits for.
#   2. The same span, per attempt: from the API create request to the container's removal.
#        docker run --rm wall time (as in 1; includes the CLI process start and attach, which the API
#          client does not have: the figure bounds what the CLI adds)
#        edgemeter, in one process, each attempt's own create+start+running+ready+stop+remove
#          (total + stop + remove of that attempt, not a sum of medians)
#      in ceil(RUNS/PER) rounds of PER attempts per side, the side that goes first alternating.
#   3. docker and lxc (order rotating per round) and qemu (--accel tcg) with ready = marker line.
# Every failed attempt is counted and printed with its reason as ok/attempts per side; medians are of
# the successful attempts; the verdict at the end FAILS (exit 1) when any attempt failed.
#   benchmarks/peers/startup-vs-docker-cli.sh [RUNS=10] [QEMU_RUNS=3] [PER=5]
# Needs root, scripts/setup-engines.sh done once, python3. Sends no traffic anywhere.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-10}
qruns=${2:-3}
per=${3:-5}
stats=benchmarks/peers/peerstats.py
bin=$PWD/.build/release/edgemeter
if [ ! -x "$bin" ] || ! "$bin" startup --help >/dev/null 2>&1; then swift build -c release --product edgemeter >/dev/null; fi
./scripts/setup-engines.sh >/dev/null 2>&1 || { echo "scripts/setup-engines.sh failed: run it by hand to see why" >&2; exit 2; }
tmp=$(mktemp -d)
# Its edgemeter runs are recorded (as a user's are) in a history under $tmp, not in the user's own.
export EDGEMETER_DB=${EDGEMETER_DB:-$tmp/history.sqlite}
trap 'rm -rf "$tmp"' EXIT
"$bin" image build >/dev/null
docker_cmd="docker run --rm --network none edgemeter-base:latest /bin/true"
failures=0
count_failures() { python3 -c 'import json,sys; print(sum(len(v["failures"]) for v in json.load(open(sys.argv[1])).values()))' "$1"; }

echo "== 1. whole processes: docker run --rm (CLI) vs edgemeter startup docker -n 1, $runs rounds (+2 warm-up), order rotating, $(nproc) cores shared, load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$stats" alternate --runs "$runs" --warmup 2 --json "$tmp/whole.json" \
  "docker run --rm=$docker_cmd" \
  "edgemeter startup docker -n 1=$bin startup docker -n 1 --ready exit --json --out $tmp/whole-{n}"
failures=$((failures + $(count_failures "$tmp/whole.json")))

echo
echo "== 2. the same span per attempt (create request -> removed): docker run --rm wall vs edgemeter in-process create→remove, $runs attempts each"
rounds=$(( (runs + per - 1) / per ))
dirs=()
for r in $(seq 1 "$rounds"); do
  em() { rc=0; "$bin" startup docker -n "$per" --ready exit --out "$tmp/span-r$r" >"$tmp/span-r$r.log" 2>&1 || rc=$?; echo "round $r: edgemeter startup docker -n $per: exit $rc"; }
  cli() { python3 "$stats" alternate --runs "$per" --json "$tmp/span-cli-r$r.json" "docker run --rm=$docker_cmd" | sed "s/^/round $r: /"; }
  if (( r % 2 )); then cli; em; else em; cli; fi
  dirs+=("$tmp/span-r$r")
done
python3 "$stats" startup --json "$tmp/span.json" --expect docker=$((rounds * per)) "${dirs[@]}"
failures=$((failures + $(count_failures "$tmp/span.json")))
n=$(python3 - "$tmp/span.json" "$tmp"/span-cli-r*.json <<'EOF'
import json, statistics, sys
em = json.load(open(sys.argv[1])).get("docker", {})
cli_ok, cli_att, cli_fail = [], 0, []
for p in sys.argv[2:]:
    r = json.load(open(p))["docker run --rm"]
    cli_ok += r["ok_ms"]; cli_att += r["attempts"]; cli_fail += r["failures"]
c2r = em.get("create_to_remove", [])
def s(v): return f"median {statistics.median(v):.1f} ms (range {min(v):.1f} … {max(v):.1f}, n={len(v)})" if v else "no successful attempt"
print(f"docker run --rm (wall, CLI process):          {len(cli_ok)}/{cli_att} ok, {len(cli_fail)} failed; {s(cli_ok)}", file=sys.stderr)
print(f"edgemeter create→remove (in-process, per attempt): {em.get('ok', 0)}/{em.get('attempts', 0)} ok; {s(c2r)}", file=sys.stderr)
if cli_ok and c2r:
    print(f"docker run --rm / edgemeter create→remove = {statistics.median(cli_ok) / statistics.median(c2r):.2f} (ratio of medians; the CLI's figure also holds its own process start and attach)", file=sys.stderr)
print(len(cli_fail))
EOF
)
failures=$((failures + n))

echo
echo "== 3. side by side, ready = marker line: docker and lxc $runs runs (order rotating, $per per round), qemu (tcg) $qruns runs"
dirs=()
for r in $(seq 1 "$rounds"); do
  if (( r % 2 )); then order=(docker lxc); else order=(lxc docker); fi
  rc=0
  "$bin" startup "${order[@]}" -n "$per" --ready marker --out "$tmp/side-r$r" >"$tmp/side-r$r.log" 2>&1 || rc=$?
  echo "round $r: edgemeter startup ${order[*]} -n $per: exit $rc"
  dirs+=("$tmp/side-r$r")
done
rc=0
"$bin" startup qemu -n "$qruns" --ready marker --accel tcg --out "$tmp/sideq" >"$tmp/sideq.log" 2>&1 || rc=$?
echo "qemu: edgemeter startup qemu -n $qruns --accel tcg: exit $rc"
python3 "$stats" startup --json "$tmp/side.json" --expect docker=$((rounds * per)) --expect lxc=$((rounds * per)) --expect qemu="$qruns" "${dirs[@]}" "$tmp/sideq"
failures=$((failures + $(count_failures "$tmp/side.json")))
python3 - "$tmp/side.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
t = {b: (r.get(b) or {}).get("p50", {}).get("total") for b in ["docker", "lxc", "qemu"]}
def q(a, b): return f"{t[a] / t[b]:.1f}×" if t[a] and t[b] else "—"
print(f"ratios of total (create→ready) medians: lxc/docker {q('lxc', 'docker')}, qemu/docker {q('qemu', 'docker')}, qemu/lxc {q('qemu', 'lxc')}")
EOF

echo
if [ "$failures" -gt 0 ]; then
  echo "verdict: FAIL: $failures failed attempts (listed above with their reasons); the medians cover the successful ones only"
  exit 1
fi
echo "verdict: every attempt of every side succeeded; figures above are medians of all of them"
