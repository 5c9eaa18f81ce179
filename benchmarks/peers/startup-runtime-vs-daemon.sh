#!/usr/bin/env bash
# How much of `docker run` is the daemon and how much the OCI runtime: docker (dockerd + containerd
# + shim + runc), podman (its API service + conmon + crun), runc and crun driven directly with no
# daemon, all running the same busybox-static rootfs (edgemeter-base) with no network.
#   1. hyperfine, the CLIs as a user types them, $RUNS runs each:
#        docker run --rm --network none edgemeter-base:latest /bin/true
#        podman run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 edgemeter-base:latest /bin/true
#        runc run ID / crun run ID   (a bundle from `runc spec` + the image's files, read-only rootfs)
#   2. edgemeter in one process, $RUNS attempts per backend, ready = exit 0:
#        edgemeter startup docker podman runc crun -n RUNS --ready exit
#      per-phase medians side by side, and what the daemons add on top of the bare runtime.
#   3. the same with a network and ready = first TCP connect to the container's port 22: docker on
#      docker0, podman on its bridge, runc/crun on a veth into edgemeter-oci0 (created by the run).
#   benchmarks/peers/startup-runtime-vs-daemon.sh [RUNS]
# Needs root, scripts/setup-engines.sh (dockerd, podman's API service, cgroups crun accepts),
# hyperfine, podman, crun. Sends traffic only to the containers it starts, over their bridges.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-10}
bin=.build/release/edgemeter
if [ ! -x "$bin" ] || ! "$bin" startup --help 2>/dev/null | grep -q crun; then swift build -c release --product edgemeter >/dev/null; fi
for t in hyperfine podman crun runc; do
  command -v $t >/dev/null || { echo "$t not found: apt-get install -y $t (or scripts/setup.sh)" >&2; exit 2; }
done
./scripts/setup-engines.sh >/dev/null 2>&1 || { echo "scripts/setup-engines.sh failed: run it by hand to see why" >&2; exit 2; }
tmp=$(mktemp -d /tmp/edgemeter-bench-XXXXXX)
cleanup() {
  runc delete --force edgemeter-bench-runc >/dev/null 2>&1 || true
  crun delete --force edgemeter-bench-crun >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
"$bin" image build >/dev/null
podman image exists edgemeter-base:latest && podman rmi -f edgemeter-base:latest >/dev/null
docker save edgemeter-base:latest | podman load >/dev/null 2>&1   # the image just built, not an older copy
# podman asks for RLIMIT_NOFILE 1048576 / RLIMIT_NPROC 4194304 by default, above this host's hard
# limits (start fails with EPERM): the same small limits edgemeter's podman backend asks for.
podman_limits="--ulimit nofile=1024:1024 --ulimit nproc=4096:4096"

# A bundle for the bare runtimes: the image's files (docker export) and `runc spec` with /bin/true.
mkdir -p "$tmp/bundle/rootfs"
cid=$(docker create --network none edgemeter-base:latest /bin/true)
docker export "$cid" | tar -x -C "$tmp/bundle/rootfs"
docker rm "$cid" >/dev/null
(cd "$tmp/bundle" && runc spec)
python3 - "$tmp/bundle/config.json" <<'EOF'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["root"]["readonly"] = True
json.dump(c, open(p, "w"), indent=1)
EOF

echo "== 1. the CLIs, hyperfine, $runs runs each, $(nproc) cores shared, no network, /bin/true"
hyperfine -N --warmup 2 --runs "$runs" --export-json "$tmp/hf.json" \
  -n "docker run --rm" "docker run --rm --network none edgemeter-base:latest /bin/true" \
  -n "podman run --rm" "podman run --rm --network none $podman_limits edgemeter-base:latest /bin/true" \
  -n "runc run" "runc run --bundle $tmp/bundle edgemeter-bench-runc" \
  -n "crun run" "crun run --bundle $tmp/bundle edgemeter-bench-crun" 2>&1 | grep -vE '^\s*$'
python3 - "$tmp/hf.json" <<'EOF'
import json, sys
r = {x["command"]: x["median"] * 1000 for x in json.load(open(sys.argv[1]))["results"]}
print("medians ms: " + "  ".join(f"{k} {v:.1f}" for k, v in r.items()))
print(f"docker run / runc run = {r['docker run --rm'] / r['runc run']:.1f}x, podman run / crun run = {r['podman run --rm'] / r['crun run']:.1f}x")
EOF

side() { # title ready-args...
  echo
  echo "== $1"
  shift
  rm -rf "$tmp/side"
  "$bin" startup docker podman runc crun -n "$runs" "$@" --out "$tmp/side" >/dev/null 2>&1 || true
  s="$tmp/side/summary.csv"
  table
}
p50() { awk -F, -v t="$1" -v p="$2" '$2=="startup" && $3==t && $4=="startup" && $5==p {printf "%.1f", $14}' "$s"; }
table() {
printf '%-8s %8s %8s %8s %8s %8s %8s %10s %14s\n' backend create start running ready stop remove "total" "create→remove"
for b in docker podman runc crun; do
  tot=$(p50 $b total); sp=$(p50 $b stop); rm_=$(p50 $b remove)
  full=$(awk -v a="$tot" -v b="$sp" -v c="$rm_" 'BEGIN { if (a == "") print "—"; else printf "%.1f", a + b + c }')
  printf '%-8s %8s %8s %8s %8s %8s %8s %10s %14s\n' "$b" "$(p50 $b create)" "$(p50 $b start)" "$(p50 $b running)" \
    "$(p50 $b ready)" "$sp" "$rm_" "$tot" "$full"
done
awk -v d="$(p50 docker total)" -v p="$(p50 podman total)" -v r="$(p50 runc total)" -v c="$(p50 crun total)" 'BEGIN {
  printf "create→ready: docker/runc %.1f×, podman/crun %.1f×, crun/runc %.2f×\n", d / r, p / c, c / r
  printf "what the daemon adds on top of its runtime (p50 total difference): dockerd+containerd %.0f ms over runc, podman %.0f ms over crun\n", d - r, p - c
}'
}
side "2. edgemeter in one process: $runs attempts per backend, no network, ready = exit 0 (p50 ms)" --ready exit
side "3. with a network: $runs attempts per backend, ready = first TCP connect to port 22 (p50 ms)" --ready tcp --port 22
