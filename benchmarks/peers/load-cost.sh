#!/usr/bin/env bash
# What one request costs `edgemeter load` itself, for one or more builds (before/after a change), in
# counts that do not depend on how busy the machine is, plus CPU time (which does). Closed loop
# -t 2 -c 32 against one operation service (`serve calculator --role sum`, GET /sum?a=5&b=6, a free
# port on 127.0.0.1); every figure is (X(N2) - X(N1)) / (N2 - N1), so start-up and the report after
# the run cancel out:
#   - mallocs per request on the event-loop threads (uprobe on glibc malloc; closed loop, and open
#     loop at --rate 20000), and in the whole process;
#   - syscalls per request (read, write, sendto, recvfrom, epoll_wait, epoll_ctl, and their sum) and
#     context switches per request, with wrk's beside them;
#   - user and sys CPU µs per request, ROUNDS rounds, builds alternating (noisy on a shared machine).
# Needs root (perf probe), perf (linux-perf) and wrk.
#   benchmarks/peers/load-cost.sh [ROUNDS=3] [BIN...]   (default BIN: .build/release/edgemeter)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
shift || true
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=(.build/release/edgemeter)
for b in "${bins[@]}"; do [ -x "$b" ] || { echo "no edgemeter binary at $b (swift build -c release)" >&2; exit 2; }; done
command -v perf >/dev/null || { echo "perf missing: apt-get install linux-perf" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk missing: apt-get install wrk" >&2; exit 2; }
libc=$(ldconfig -p | sed -n 's/.*libc.so.6 (libc6,x86-64) => \(.*\)/\1/p' | head -1)
# The uprobe on malloc is a change to the host: the script removes it again if it added it.
added_probe=
if ! perf probe -l 2>/dev/null | grep -q 'probe_libc:malloc'; then perf probe -q -x "$libc" malloc && added_probe=1; fi
tmp=$(mktemp -d)
# Its edgemeter runs are recorded (as a user's are) in a history under $tmp, not in the user's own.
export EDGEMETER_DB=${EDGEMETER_DB:-$tmp/history.sqlite}
# ... and its run directories under $tmp, not in reports/ (where they would move reports/latest).
runout() { mktemp -u -p "$tmp" run.XXXXXX; }
spid=
cleanup() {
  [ -n "$spid" ] && kill "$spid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"
  [ -n "$added_probe" ] && perf probe -q -d probe_libc:malloc
  true
}
trap cleanup EXIT

"${bins[0]}" serve calculator --role sum --port 0 >"$tmp/sum.log" 2>&1 &
spid=$!
for _ in $(seq 1 100); do grep -q "sum listening" "$tmp/sum.log" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's/^calculator sum listening on \(http:[^ ]*\).*/\1/p' "$tmp/sum.log")
[ -n "$base" ] || { echo "the sum service did not start:" >&2; cat "$tmp/sum.log" >&2; exit 2; }
url="$base/sum?a=5&b=6"
"${bins[0]}" load -t 2 -c 32 -d 1s --out "$(runout)" "$url" >/dev/null 2>&1   # warm the server
echo "load-cost: closed loop -t 2 -c 32 on $url; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

errors() { grep -h "Errors:" "$@" 2>/dev/null | head -1 || true; }

echo "== mallocs per request: (M(120000) - M(20000)) / 100000"
for bin in "${bins[@]}"; do
  for mode in closed open; do
    extra=(); [ $mode = open ] && extra=(--rate 20000)
    for n in 20000 120000; do
      perf record -q -e probe_libc:malloc -o "$tmp/m.data" -- "$bin" load -t 2 -c 32 -n $n "${extra[@]}" --out "$(runout)" "$url" >"$tmp/o.$n" 2>&1
      perf report -i "$tmp/m.data" --stdio --sort comm -F sample,comm 2>/dev/null \
        | awk '/^ *[0-9]/ { all += $1 } /NIO-ELT/ { loops += $1 } END { print loops + 0, all + 0 }' >"$tmp/c.$n"
    done
    read -r l1 a1 <"$tmp/c.20000"; read -r l2 a2 <"$tmp/c.120000"
    awk -v b="$bin" -v m=$mode -v l1="$l1" -v l2="$l2" -v a1="$a1" -v a2="$a2" -v e="$(errors "$tmp/o.20000" "$tmp/o.120000")" 'BEGIN {
      printf "%s %s loop: event-loop threads %.3f mallocs/request (%d at 20000, %d at 120000), whole process %.3f %s\n",
        b, m, (l2 - l1) / 100000, l1, l2, (a2 - a1) / 100000, e }'
  done
done

echo "== syscalls per request (100000 requests; wrk: 3 s)"
# The epoll engine sends and receives with sendto/recvfrom, the NIO engine and wrk with write/read.
ev=syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_ctl,context-switches
# "NAME PER-REQUEST ..., all syscalls SUM" from perf stat's CSV: per_request_counts LABEL STATFILE REQUESTS
per_request_counts() {
  awk -F, -v b="$1" -v n="$3" '/^[0-9]/ { name = $3; sys = sub("syscalls:sys_enter_", "", name); line = line sprintf(" %s %.3f", name, $1 / n); if (sys) all += $1 }
    END { printf "%s:%s; all syscalls %.3f\n", b, line, all / n }' "$2"
}
for bin in "${bins[@]}"; do
  perf stat -x, -e $ev -o "$tmp/s.stat" -- "$bin" load -t 2 -c 32 -n 100000 --out "$(runout)" "$url" >"$tmp/o.s" 2>&1
  per_request_counts "$bin" "$tmp/s.stat" 100000
done
perf stat -x, -e $ev -o "$tmp/w.stat" -- wrk -t2 -c32 -d3s "$url" >"$tmp/w.txt" 2>&1
wreq=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$tmp/w.txt")
per_request_counts wrk "$tmp/w.stat" "${wreq:-1}"

echo "== CPU per request: (CPU(150000) - CPU(15000)) / 135000, $rounds rounds, builds alternating"
for r in $(seq 1 "$rounds"); do
  for bin in "${bins[@]}"; do
    /usr/bin/time -f "%U %S" -o "$tmp/t1" "$bin" load -t 2 -c 32 -n 15000 --out "$(runout)" "$url" >"$tmp/o1" 2>&1
    /usr/bin/time -f "%U %S" -o "$tmp/t2" "$bin" load -t 2 -c 32 -n 150000 --out "$(runout)" "$url" >"$tmp/o2" 2>&1
    read -r u1 s1 <"$tmp/t1"; read -r u2 s2 <"$tmp/t2"
    awk -v b="$bin" -v r="$r" -v u1="$u1" -v u2="$u2" -v s1="$s1" -v s2="$s2" -v l="$(cut -d' ' -f1 /proc/loadavg)" -v e="$(errors "$tmp/o1" "$tmp/o2")" 'BEGIN {
      printf "round %d %s: user %.2f us/request, sys %.2f us/request (load %s) %s\n", r, b, (u2 - u1) * 1e6 / 135000, (s2 - s1) * 1e6 / 135000, l, e }'
  done
  /usr/bin/time -f "%U %S" -o "$tmp/tw" wrk -t2 -c32 -d4s "$url" >"$tmp/w.txt" 2>&1
  read -r wu ws <"$tmp/tw"
  wreq=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$tmp/w.txt")
  awk -v r="$r" -v u="$wu" -v s="$ws" -v n="${wreq:-1}" 'BEGIN { printf "round %d wrk (4 s, start-up included): user %.2f us/request, sys %.2f us/request\n", r, u * 1e6 / n, s * 1e6 / n }'
done
