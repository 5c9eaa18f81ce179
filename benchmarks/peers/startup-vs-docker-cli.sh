#!/usr/bin/env bash
# Container and VM startup: edgemeter's Docker Engine API phases against the docker CLI, timed in the
# same run, then Docker, LXC and QEMU (TCG) medians side by side.
#   1. hyperfine: `docker run --rm --network none edgemeter-base:latest /bin/true` (CLI: create,
#      attach, start, wait, remove) vs `edgemeter startup docker -n 1 --ready exit` (a whole edgemeter
#      process: API create, start, running, ready = exit 0, stop, remove, report files).
#   2. edgemeter in one process, RUNS attempts: per-phase medians; create→ready (`total`) and
#      create→remove (the span `docker run --rm` covers) next to hyperfine's docker run median.
#   3. docker, lxc, qemu (--accel tcg) with ready = marker line, medians per phase.
#   benchmarks/peers/startup-vs-docker-cli.sh [RUNS] [QEMU_RUNS]
# Needs root, scripts/setup-engines.sh done once, hyperfine. Sends no traffic anywhere.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-10}
qruns=${2:-3}
bin=.build/release/edgemeter
if [ ! -x "$bin" ] || ! "$bin" startup --help >/dev/null 2>&1; then swift build -c release --product edgemeter >/dev/null; fi
command -v hyperfine >/dev/null || { echo "hyperfine not found: apt-get install -y hyperfine" >&2; exit 2; }
./scripts/setup-engines.sh >/dev/null 2>&1 || { echo "scripts/setup-engines.sh failed: run it by hand to see why" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" image build >/dev/null

p50() { # summary.csv target phase -> p50 ms
  awk -F, -v t="$2" -v p="$3" '$2=="startup" && $3==t && $4=="startup" && $5==p {printf "%.1f", $14}' "$1"
}

echo "== 1. docker run (CLI) vs edgemeter startup docker (whole process), hyperfine, $runs runs each, $(nproc) cores shared"
hyperfine -N --warmup 2 --runs "$runs" --export-json "$tmp/hf.json" \
  -n "docker run --rm" "docker run --rm --network none edgemeter-base:latest /bin/true" \
  -n "edgemeter startup docker -n 1" "$bin startup docker -n 1 --ready exit --json --out $tmp/hf-run" \
  --prepare "rm -rf $tmp/hf-run" 2>&1 | grep -vE '^\s*$'
cli_med=$(python3 -c "import json,sys; d=json.load(open('$tmp/hf.json')); print('%.1f' % (d['results'][0]['median']*1000))")

echo
echo "== 2. edgemeter in one process: $runs attempts, Engine API, ready = exit 0"
"$bin" startup docker -n "$runs" --ready exit --out "$tmp/docker" >/dev/null 2>&1
s="$tmp/docker/summary.csv"
printf '%-10s %8s %8s %8s %8s %8s %8s %10s %14s %16s\n' phase create start running ready stop remove "total" "create→remove" "docker run --rm"
c=$(p50 "$s" docker create); st=$(p50 "$s" docker start); r=$(p50 "$s" docker running); rd=$(p50 "$s" docker ready)
sp=$(p50 "$s" docker stop); rm_=$(p50 "$s" docker remove); tot=$(p50 "$s" docker total)
full=$(awk -v a="$tot" -v b="$sp" -v c="$rm_" 'BEGIN {printf "%.1f", a + b + c}')
printf '%-10s %8s %8s %8s %8s %8s %8s %10s %14s %16s\n' "p50 ms" "$c" "$st" "$r" "$rd" "$sp" "$rm_" "$tot" "$full" "$cli_med"
awk -v a="$full" -v b="$cli_med" 'BEGIN {printf "docker run --rm / edgemeter create→remove = %.2f (the CLI adds its own process start, attach and wait)\n", b / a}'

echo
echo "== 3. side by side, ready = marker line: docker and lxc $runs runs, qemu (tcg) $qruns runs"
"$bin" startup docker lxc -n "$runs" --ready marker --out "$tmp/side" >/dev/null 2>&1
"$bin" startup qemu -n "$qruns" --ready marker --accel tcg --out "$tmp/sideq" >/dev/null 2>&1
printf '%-8s %8s %8s %8s %8s %8s %8s %10s\n' backend create start running ready stop remove "total p50"
for b in docker lxc qemu; do
  f="$tmp/side/summary.csv"; [ "$b" = qemu ] && f="$tmp/sideq/summary.csv"
  printf '%-8s %8s %8s %8s %8s %8s %8s %10s\n' "$b" "$(p50 "$f" $b create)" "$(p50 "$f" $b start)" "$(p50 "$f" $b running)" \
    "$(p50 "$f" $b ready)" "$(p50 "$f" $b stop)" "$(p50 "$f" $b remove)" "$(p50 "$f" $b total)"
done
dt=$(p50 "$tmp/side/summary.csv" docker total); lt=$(p50 "$tmp/side/summary.csv" lxc total); qt=$(p50 "$tmp/sideq/summary.csv" qemu total)
awk -v d="$dt" -v l="$lt" -v q="$qt" 'BEGIN {printf "ratios of total medians: lxc/docker %.1f×, qemu/docker %.1f×, qemu/lxc %.1f×\n", l/d, q/d, q/l}'
