#!/usr/bin/env bash
# How much of `docker run` is the daemon and how much the OCI runtime: docker (dockerd + containerd
# + shim + runc), podman (its API service + conmon + crun), runc and crun driven directly with no
# daemon, all running the same busybox-static rootfs (edgemeter-base) with no network.
#   1. the CLIs as a user types them, RUNS rounds after 2 warm-up rounds, one run of each command per
#      round in an order that rotates each round; wall time from spawn to exit (peerstats.py alternate):
#        docker run --rm --network none edgemeter-base:latest /bin/true
#        podman run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 edgemeter-base:latest /bin/true
#        runc run ID / crun run ID   (a bundle from `runc spec` + the image's files, read-only rootfs)
#   2. edgemeter in one process per round, PER attempts per backend, ready = exit 0, the backends'
#      order rotating per round, ceil(RUNS/PER) rounds:
#        edgemeter startup docker podman runc crun -n PER --ready exit   (then podman runc crun docker, ...)
#      per-phase medians over the successful attempts, and what the daemons add on top of the bare runtime.
#   3. the same with a network and ready = first TCP connect to the container's port 22: docker on
#      docker0, podman on its bridge, runc/crun on a veth into edgemeter-oci0 (created by the run).
# Every failed attempt (a CLI's non-zero exit, an edgemeter attempt whose phases are not all ok) is
# counted and printed with its reason per backend as ok/attempts; medians are of the successful
# attempts; the verdict at the end FAILS (exit 1) when any attempt failed.
#   benchmarks/peers/startup-runtime-vs-daemon.sh [RUNS=10] [PER=5]
# Needs root, scripts/setup-engines.sh (dockerd, podman's API service, cgroups crun accepts),
# podman, crun, python3. Sends traffic only to the containers it starts, over their bridges.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-10}
per=${2:-5}
stats=benchmarks/peers/peerstats.py
bin=.build/release/edgemeter
if [ ! -x "$bin" ] || ! "$bin" startup --help 2>/dev/null | grep crun >/dev/null; then swift build -c release --product edgemeter >/dev/null; fi
for t in podman crun runc python3; do
  command -v $t >/dev/null || { echo "$t not found: apt-get install -y $t (or scripts/setup.sh)" >&2; exit 2; }
done
./scripts/setup-engines.sh >/dev/null 2>&1 || { echo "scripts/setup-engines.sh failed: run it by hand to see why" >&2; exit 2; }
tmp=$(mktemp -d /tmp/edgemeter-bench-XXXXXX)
# Its edgemeter runs are recorded (as a user's are) in a history under $tmp, not in the user's own.
export EDGEMETER_DB=${EDGEMETER_DB:-$tmp/history.sqlite}
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

failures=0
echo "== 1. the CLIs, $runs rounds (+2 warm-up), order rotating per round, $(nproc) cores shared, no network, /bin/true"
python3 "$stats" alternate --runs "$runs" --warmup 2 --json "$tmp/cli.json" \
  "docker run --rm=docker run --rm --network none edgemeter-base:latest /bin/true" \
  "podman run --rm=podman run --rm --network none $podman_limits edgemeter-base:latest /bin/true" \
  "runc run=runc run --bundle $tmp/bundle edgemeter-bench-runc" \
  "crun run=crun run --bundle $tmp/bundle edgemeter-bench-crun"
n=$(python3 - "$tmp/cli.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
m = {k: v["median"] for k, v in r.items()}
def ratio(a, b): return f"{m[a] / m[b]:.1f}x" if m[a] and m[b] else "— (a side has no successful run)"
print(f"docker run / runc run = {ratio('docker run --rm', 'runc run')}, podman run / crun run = {ratio('podman run --rm', 'crun run')}", file=sys.stderr)
print(sum(len(v["failures"]) for v in r.values()))
EOF
)
failures=$((failures + n))

backends=(docker podman runc crun)
side() { # title json ready-args...
  local title=$1 json=$2; shift 2
  echo
  echo "== $title"
  local rounds=$(( (runs + per - 1) / per )) dirs=() r j order rc
  for r in $(seq 1 "$rounds"); do
    order=()
    for j in 0 1 2 3; do order+=("${backends[$(( (j + r - 1) % 4 ))]}"); done
    rc=0
    "$bin" startup "${order[@]}" -n "$per" "$@" --out "$tmp/side-$json-r$r" >"$tmp/side-$json-r$r.log" 2>&1 || rc=$?
    echo "round $r: edgemeter startup ${order[*]} -n $per: exit $rc"
    [ "$rc" = 0 ] || grep -E "^edgemeter:" "$tmp/side-$json-r$r.log" | head -3 | sed 's/^/    /'
    dirs+=("$tmp/side-$json-r$r")
  done
  python3 "$stats" startup --json "$tmp/$json.json" $(printf -- '--expect %s=%d ' docker $((rounds * per)) podman $((rounds * per)) runc $((rounds * per)) crun $((rounds * per))) "${dirs[@]}"
  n=$(python3 - "$tmp/$json.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
t = {b: (r.get(b) or {}).get("p50", {}).get("total") for b in ["docker", "podman", "runc", "crun"]}
def q(a, b): return f"{t[a] / t[b]:.2f}×" if t[a] and t[b] else "—"
def d(a, b): return f"{t[a] - t[b]:.0f} ms" if t[a] and t[b] else "—"
print(f"create→ready (p50 total): docker/runc {q('docker', 'runc')}, podman/crun {q('podman', 'crun')}, crun/runc {q('crun', 'runc')}", file=sys.stderr)
print(f"what the daemon adds on top of its runtime (p50 total difference): dockerd+containerd {d('docker', 'runc')} over runc, podman {d('podman', 'crun')} over crun", file=sys.stderr)
print(sum(len(v["failures"]) for v in r.values()))
EOF
)
failures=$((failures + n))
}
side "2. edgemeter in one process per round: $runs attempts per backend ($per per round), no network, ready = exit 0 (p50 ms)" exit --ready exit
side "3. with a network: $runs attempts per backend ($per per round), ready = first TCP connect to port 22 (p50 ms)" tcp --ready tcp --port 22

echo
if [ "$failures" -gt 0 ]; then
  echo "verdict: FAIL: $failures failed attempts (listed above with their reasons); the medians cover the successful ones only"
  exit 1
fi
echo "verdict: every attempt of every side succeeded; figures above are medians of all of them"
