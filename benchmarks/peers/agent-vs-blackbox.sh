#!/usr/bin/env bash
# edgemeter agent vs Debian's prometheus-blackbox-exporter, same targets, same contract (GET /probe
# ?target=…&module=icmp, one echo per scrape), same place: both run inside the `vehicle` namespace of
# a copy of edge-cloud (named ag3-bb, so it cannot collide with another run of the built-in), listening
# on that namespace's own 127.0.0.1, scraped from inside it with curl. Targets: 127.0.0.1 (the
# namespace's loopback, nothing injected) and node_1, node_2, node_3, cloud (injected round trips
# 10, 60, 160, 80 ms through the lab's impairment forwarder).
#
# Per target and side, PROBES scrapes in turn (the sides alternate scrape by scrape, so both see the
# same moments of the host's load): the reported RTT (probe_icmp_duration_seconds{phase="rtt"}) is
# compared with the injected round trip: median and p90 of (reported − injected), successes.
# What each reports per probe is printed from one real answer of each (series count, names).
# Cost: CPU seconds (utime+stime of the process, /proc/PID/stat) per 1000 /probe scrapes, and the
# resident set (VmRSS, VmHWM; anonymous vs file-backed) at the end. The agent's own schedule (1 Hz ping of every target, its
# histogram and loss counters on /metrics) runs during the comparison: its CPU is charged to it.
# The wire: a capture of the vehicle's eth0 during the scrapes (edgemeter capture) gives each echo's
# request→reply time on the wire; the medians are printed beside the reported ones when it worked.
#   sudo benchmarks/peers/agent-vs-blackbox.sh [PROBES=50] [BIN]
# Needs root (namespaces, raw ICMP), prometheus-blackbox-exporter, curl, python3, ethtool.
set -euo pipefail
cd "$(dirname "$0")/../.."
probes=${1:-50}
bin=${2:-.build/release/edgemeter}
[ -x "$bin" ] || bin=.build/debug/edgemeter
[ -x "$bin" ] || { echo "no edgemeter binary: swift build -c release --product edgemeter" >&2; exit 2; }
command -v prometheus-blackbox-exporter >/dev/null || { echo "apt-get install -y prometheus-blackbox-exporter" >&2; exit 2; }
command -v curl >/dev/null || { echo "apt-get install -y curl" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "needs root (lab namespaces, raw ICMP): run with sudo" >&2; exit 2; }
name=ag3-bb
tmp=$(mktemp -d)
# Its edgemeter runs are recorded (as a user's are) in a history under $tmp, not in the user's own.
export EDGEMETER_DB=${EDGEMETER_DB:-$tmp/history.sqlite}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  "$bin" lab down "$name" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
sed "s/^name: edge-cloud/name: $name/" benchmarks/topologies/edge-cloud.yaml >"$tmp/$name.yaml"
[ -f /run/edgemeter/lab/$name.json ] && "$bin" lab down "$name" >/dev/null
"$bin" lab up "$tmp/$name.yaml" | head -1
ns=$(python3 -c "import json,sys; s=json.load(open('/run/edgemeter/lab/$name.json')); print([n['namespace'] for n in s['nodes'] if n['name']=='vehicle'][0])")
echo "binary: $bin; prober namespace: $ns; $probes scrapes per target and side"

cat >"$tmp/bb.yml" <<'EOF'
modules:
  icmp:
    prober: icmp
    timeout: 5s
    icmp:
      preferred_ip_protocol: ip4
EOF
targets="127.0.0.1 10.204.0.1 10.204.0.2 10.204.0.3 10.204.0.100"
cat >"$tmp/agent.yaml" <<EOF
listen: 127.0.0.1:19427
interval: 1s
probe_cidrs: [127.0.0.0/8, 10.204.0.0/24]
probes:
  - {name: nodes, kind: ping, targets: [127.0.0.1, 10.204.0.1, 10.204.0.2, 10.204.0.3, 10.204.0.100]}
EOF
ip netns exec "$ns" prometheus-blackbox-exporter --config.file="$tmp/bb.yml" --web.listen-address=127.0.0.1:19115 >"$tmp/bb.log" 2>&1 &
bbpid=$!; pids+=("$bbpid")
ip netns exec "$ns" "$bin" agent --config "$tmp/agent.yaml" >"$tmp/agent.log" 2>&1 &
agpid=$!; pids+=("$agpid")
ip netns exec "$ns" "$bin" capture -i eth0 -f icmp --duration 3600 -w "$tmp/wire.pcap" >"$tmp/cap.log" 2>&1 &
cappid=$!; pids+=("$cappid")
nsget() { ip netns exec "$ns" curl -s --max-time 10 "$1"; }
for i in $(seq 1 100); do
  if nsget http://127.0.0.1:19115/metrics >/dev/null && nsget http://127.0.0.1:19427/metrics >/dev/null; then break; fi
  sleep 0.1
done
nsget http://127.0.0.1:19427/metrics >/dev/null || { echo "the agent did not answer:"; cat "$tmp/agent.log"; exit 2; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)

# One real answer of each, for "what each reports per probe".
nsget "http://127.0.0.1:19115/probe?target=10.204.0.1&module=icmp" >"$tmp/bb-answer.txt"
nsget "http://127.0.0.1:19427/probe?target=10.204.0.1&module=icmp" >"$tmp/ag-answer.txt"

# The agent's own schedule alone (5 echoes a second), no scrapes: its CPU rate, charged separately.
idle=${IDLE_S:-20}
ai0=$(cpu $agpid); ti0=$(date +%s.%N); bi0=$(cpu $bbpid)
sleep "$idle"
ai1=$(cpu $agpid); ti1=$(date +%s.%N); bi1=$(cpu $bbpid)
bb0=$(cpu $bbpid); ag0=$(cpu $agpid); t0=$(date +%s.%N)
: >"$tmp/rows.txt"
for t in $targets; do
  for i in $(seq 1 "$probes"); do
    for side in bb ag; do
      port=$([ $side = bb ] && echo 19115 || echo 19427)
      a=$(nsget "http://127.0.0.1:$port/probe?target=$t&module=icmp" || true)
      ok=$(printf '%s\n' "$a" | awk '$1=="probe_success"{print $2}')
      rtt=$(printf '%s\n' "$a" | awk '$1=="probe_icmp_duration_seconds{phase=\"rtt\"}"{print $2}')
      echo "$side $t ${ok:-0} ${rtt:-nan}" >>"$tmp/rows.txt"
    done
  done
done
t1=$(date +%s.%N); bb1=$(cpu $bbpid); ag1=$(cpu $agpid)
nsget http://127.0.0.1:19427/metrics >"$tmp/ag-metrics.txt"
kill -INT "$cappid" 2>/dev/null || true; wait "$cappid" 2>/dev/null || true
# Echo request → reply on the vehicle's eth0 (both sides' echoes; they alternate, so they share it).
if command -v tshark >/dev/null && [ -s "$tmp/wire.pcap" ]; then
  tshark -r "$tmp/wire.pcap" -Y icmp -T fields -e frame.time_epoch -e icmp.type -e ip.src -e ip.dst -e icmp.ident -e icmp.seq \
    >"$tmp/wire.txt" 2>/dev/null || true
fi
rss() { awk -v k="$2:" '$1==k{print $2}' "/proc/$1/status"; }
echo "scrape loop: $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s"
python3 - "$tmp" "$probes" "$tck" "$bb0" "$bb1" "$ag0" "$ag1" "$(rss $bbpid VmRSS)" "$(rss $bbpid VmHWM)" "$(rss $agpid VmRSS)" "$(rss $agpid VmHWM)" \
  "$ai0" "$ai1" "$ti0" "$ti1" "$t0" "$t1" "$bi0" "$bi1" "$(rss $bbpid RssAnon)" "$(rss $bbpid RssFile)" "$(rss $agpid RssAnon)" "$(rss $agpid RssFile)" <<'PY'
import sys, os, re, glob, csv, statistics as st
tmp, probes, tck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
bb0, bb1, ag0, ag1 = map(float, sys.argv[4:8])
rss = list(map(int, sys.argv[8:12]))
ai0, ai1, ti0, ti1, t0, t1, bi0, bi1 = map(float, sys.argv[12:20])
anon = list(map(int, sys.argv[20:24]))   # bb RssAnon, bb RssFile, agent RssAnon, agent RssFile (KiB)
sched_rate = (ai1 - ai0) / tck / (ti1 - ti0)      # agent CPU s per s with only its schedule running
injected = {"127.0.0.1": 0.0, "10.204.0.1": 10.0, "10.204.0.2": 60.0, "10.204.0.3": 160.0, "10.204.0.100": 80.0}
names = {"127.0.0.1": "loopback", "10.204.0.1": "node_1", "10.204.0.2": "node_2", "10.204.0.3": "node_3", "10.204.0.100": "cloud"}
rows = [l.split() for l in open(f"{tmp}/rows.txt")]
def pct(v, p):
    v = sorted(v); return v[min(len(v) - 1, max(0, int(-(-p / 100 * len(v) // 1)) - 1))] if v else float("nan")
# wire: request→reply per (dst, seq) from the capture's samples, if any
wire = {}   # target → [request→reply ms]
try:
    req = {}
    for l in open(f"{tmp}/wire.txt"):
        f = l.split("\t")
        if len(f) < 6: continue
        ts, typ, src, dst, ident, seq = float(f[0]), f[1].strip(), f[2], f[3], f[4], f[5].strip()
        if typ == "8": req[(dst, ident, seq)] = ts
        elif typ == "0" and (src, ident, seq) in req: wire.setdefault(src, []).append((ts - req.pop((src, ident, seq))) * 1000)
except FileNotFoundError:
    pass
print("\n| target | injected RTT ms | side | ok/scrapes | reported p50 ms | p90 ms | p50 − injected ms | p90 − injected ms | wire p50 ms | p50 − wire ms |")
print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
for t, inj in injected.items():
    for side, label in (("bb", "blackbox_exporter 0.23.0"), ("ag", "edgemeter agent")):
        r = [x for x in rows if x[0] == side and x[1] == t]
        ok = sum(1 for x in r if float(x[2]) == 1)
        v = [float(x[3]) * 1000 for x in r if float(x[2]) == 1 and x[3] != "nan"]
        p50, p90 = pct(v, 50), pct(v, 90)
        w = pct(wire.get(t, []), 50)
        ws, wd = (f"{w:.3f}", f"{p50 - w:+.3f}") if wire.get(t) else ("—", "—")
        print(f"| {names[t]} | {inj:.0f} | {label} | {ok}/{len(r)} | {p50:.3f} | {p90:.3f} | {p50 - inj:+.3f} | {p90 - inj:+.3f} | {ws} | {wd} |")
for side, label in (("bb", "blackbox_exporter"), ("ag", "edgemeter agent")):
    r = [x for x in rows if x[0] == side]
    print(f"{label}: {sum(1 for x in r if float(x[2]) != 1)} failed of {len(r)} /probe scrapes (probe_success 0 or no answer)")
n = len(injected) * probes
ag_probe = (ag1 - ag0) / tck - sched_rate * (t1 - t0)
print(f"\nCPU per 1000 /probe scrapes (curl's own time not counted): blackbox_exporter {(bb1 - bb0) / tck / n * 1000:.3f} s, "
      f"edgemeter agent {ag_probe / n * 1000:.3f} s (its schedule's share removed; with it {(ag1 - ag0) / tck / n * 1000:.3f} s)")
print(f"the agent's schedule alone: {sched_rate * 1000 / 5:.3f} CPU s per 1000 scheduled echoes (5 echoes/s for {ti1 - ti0:.0f} s); "
      f"blackbox_exporter idle over the same time: {(bi1 - bi0) / tck:.2f} CPU s")
print(f"memory at the end: blackbox_exporter RSS {rss[0] / 1024:.1f} MiB (peak {rss[1] / 1024:.1f}), "
      f"edgemeter agent RSS {rss[2] / 1024:.1f} MiB (peak {rss[3] / 1024:.1f})")
print(f"  of which anonymous (heap, stacks) / file-backed (the binary and its shared libraries' pages): blackbox_exporter "
      f"{anon[0] / 1024:.1f} / {anon[1] / 1024:.1f} MiB, edgemeter agent {anon[2] / 1024:.1f} / {anon[3] / 1024:.1f} MiB")
for side, f in (("blackbox_exporter", "bb-answer.txt"), ("edgemeter agent", "ag-answer.txt")):
    lines = [l for l in open(f"{tmp}/{f}") if l.strip() and not l.startswith("#")]
    fams = sorted({re.split(r"[{ ]", l)[0] for l in lines})
    print(f"\n{side}: one /probe answer = {len(lines)} series: {', '.join(fams)}")
m = [l for l in open(f"{tmp}/ag-metrics.txt") if l.strip() and not l.startswith("#")]
fams = sorted({re.split(r"[{ ]", l)[0] for l in m})
print(f"\nedgemeter agent /metrics (its own 1 Hz schedule): {len(m)} series in {len(fams)} families: {', '.join(fams)}")
for l in m:
    if "_count" in l or "lost_total" in l:
        print("  " + l.rstrip())
PY
