#!/usr/bin/env bash
# edgemeter load vs wrk (Debian's wrk 4.1) in the same run, same connections, threads and duration,
# closed loop, against three servers on loopback that this script starts itself, all in one run:
#   1. the calculator front end (`edgemeter serve calculator --role all`, free ports), POST 5+6;
#   2. a static page served by nginx (temporary config, 127.0.0.1, a free port), GET /index.html;
#   3. one operation service alone (`edgemeter serve calculator --role sum`, a free port),
#      GET /sum?a=5&b=6.
# After one unrecorded warm-up run of each side (2 s, so neither measures a cold server), ROUNDS rounds
# per server (default 4, so each side goes first equally often) alternate which side goes first (odd
# rounds wrk, even rounds edgemeter). Same span on both sides: requests completed during the -d
# duration, from each tool's own report. Per round and side it prints requests/s, completed requests
# and errors (wrk: socket connect/read/write/timeout errors + non-2xx/3xx responses; edgemeter: errors
# connect/timeout/reset/status/body) and the client's own CPU per completed request (user and sys µs,
# /usr/bin/time of the whole client process, start-up and report included, divided by its completed
# requests), then each side's mean over all rounds and the ratio of those means edgemeter/wrk (goal
# >= 1.0) - every round counted, never the best - with the lowest and highest round ratio beside it.
# The verdict FAILS (exit 1) on any error on either side.
#   benchmarks/peers/load-vs-wrk.sh [DURATION_SECONDS] [CONNECTIONS] [THREADS] [ROUNDS]
# EDGEMETER_BIN=path runs another build of edgemeter (e.g. an older one, for a before/after in one session).
set -euo pipefail
cd "$(dirname "$0")/../.."
dur=${1:-10}
conns=${2:-32}
threads=${3:-2}
rounds=${4:-4}
bin=${EDGEMETER_BIN:-.build/release/edgemeter}
command -v wrk >/dev/null || { echo "wrk missing: apt-get install wrk" >&2; exit 2; }
command -v nginx >/dev/null || { echo "nginx missing: apt-get install nginx-light" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time missing: apt-get install time" >&2; exit 2; }
if [ ! -x "$bin" ] && [ -z "${EDGEMETER_BIN:-}" ]; then swift build -c release --product edgemeter >/dev/null; fi
[ -x "$bin" ] || { echo "no edgemeter binary at $bin" >&2; exit 2; }
tmp=$(mktemp -d)
# Its edgemeter runs are recorded (as a user's are) in a history under $tmp, not in the user's own.
export EDGEMETER_DB=${EDGEMETER_DB:-$tmp/history.sqlite}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# The calculator, all five services on free ports.
"$bin" serve calculator --role all --port 0 >"$tmp/calc.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q "front listening" "$tmp/calc.log" 2>/dev/null && break; sleep 0.1; done
calc_url=$(sed -n 's/^calculator front listening on \(http:[^ ]*\).*/\1/p' "$tmp/calc.log")
[ -n "$calc_url" ] || { echo "the calculator did not start:" >&2; cat "$tmp/calc.log" >&2; exit 2; }

# One operation service alone (sum), on a free port.
"$bin" serve calculator --role sum --port 0 >"$tmp/sum.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q "sum listening" "$tmp/sum.log" 2>/dev/null && break; sleep 0.1; done
sum_url=$(sed -n 's/^calculator sum listening on \(http:[^ ]*\).*/\1/p' "$tmp/sum.log")
[ -n "$sum_url" ] || { echo "the sum service did not start:" >&2; cat "$tmp/sum.log" >&2; exit 2; }
curl -sf "$sum_url/sum?a=5&b=6" >/dev/null || { echo "the sum service does not answer GET $sum_url/sum?a=5&b=6" >&2; exit 2; }

# nginx with a temporary config serving one static page.
nport=$(free_port)
mkdir -p "$tmp/www"
chmod 755 "$tmp" "$tmp/www"   # nginx workers run as www-data
head -c 600 /dev/zero | tr '\0' 'x' >"$tmp/www/index.html"
cat >"$tmp/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$nport; root $tmp/www; }
}
CONF
nginx -c "$tmp/nginx.conf" -p "$tmp" &
pids+=($!)
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$nport/index.html" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$nport/index.html" >/dev/null || { echo "nginx did not start:" >&2; tail -5 "$tmp/nginx-error.log" >&2; exit 2; }

cat >"$tmp/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "5+6"
wrk.headers["Content-Type"] = "text/plain"
LUA

wrk_rps() { sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$1"; }
# wrk: "N requests in", socket errors and non-2xx/3xx responses -> "requests errors"
wrk_counts() {
  local req sock non
  req=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$1")
  sock=$(sed -n 's/^ *Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' "$1" | awk '{print $1+$2+$3+$4}')
  non=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$1")
  echo "${req:-0} $(( ${sock:-0} + ${non:-0} + (${req:-0} == 0 ? 1 : 0) ))"
}
# edgemeter load: achieved req/s, completed responses, errors (all five kinds) -> "rps requests errors"
em_counts() {
  python3 - "$1/samples.csv" <<'PY'
import csv, os, sys
if not os.path.exists(sys.argv[1]):
    print("0 0 1"); sys.exit()
rows = list(csv.DictReader(open(sys.argv[1])))
v = lambda r: float(r["value"] or 0)
rps = sum(v(r) for r in rows if r["metric"] == "throughput" and r["phase"] == "achieved")
req = sum(v(r) for r in rows if r["metric"] == "responses")
err = sum(v(r) for r in rows if r["metric"] == "errors")
print(f"{rps:.2f} {req:.0f} {err:.0f}")
PY
}

# Client CPU (user and sys seconds of the whole process) goes to OUT.cpu.
run_wrk() { # out url method
  local out=$1 url=$2 method=$3 rc=0
  if [ "$method" = POST ]; then /usr/bin/time -f "%U %S" -o "$out.cpu" wrk -t"$threads" -c"$conns" -d"${dur}s" -s "$tmp/post.lua" "$url" >"$out" 2>&1 || rc=$?
  else /usr/bin/time -f "%U %S" -o "$out.cpu" wrk -t"$threads" -c"$conns" -d"${dur}s" "$url" >"$out" 2>&1 || rc=$?; fi
  [ "$rc" = 0 ] || echo "wrk exited $rc" >>"$out"
  return 0
}
run_em() { # dir url method body
  local dir=$1 url=$2 method=$3 body=$4 rc=0
  if [ "$method" = POST ]; then
    /usr/bin/time -f "%U %S" -o "$dir.cpu" "$bin" load -t "$threads" -c "$conns" -d "${dur}s" --body "$body" -H 'Content-Type: text/plain' --out "$dir" "$url" >"$dir.txt" 2>&1 || rc=$?
  else
    /usr/bin/time -f "%U %S" -o "$dir.cpu" "$bin" load -t "$threads" -c "$conns" -d "${dur}s" --out "$dir" "$url" >"$dir.txt" 2>&1 || rc=$?
  fi
  echo "$rc" >"$dir.rc"
}
# "user sys" CPU µs per completed request: cpu_per_request CPUFILE REQUESTS
cpu_per_request() { awk -v n="$2" '{ if (n > 0) printf "%.2f %.2f\n", $1 * 1e6 / n, $2 * 1e6 / n; else print "0 0" }' "$1" 2>/dev/null || echo "0 0"; }

total_errors=0
summary=()
compare() { # name url method body
  local name=$1 url=$2 method=$3 body=$4 w_total=0 e_total=0 w_errs=0 e_errs=0 r w wreq werr e ereq eerr erc line
  local wu ws eu es ratio ratios=() wcpu=() ecpu=()
  # Warm-up, not recorded: both sides once, 2 s each, so the first measured side meets a warm server.
  local saved=$dur; dur=2
  run_wrk "$tmp/warm-wrk-$name.txt" "$url" "$method"; run_em "$tmp/warm-em-$name" "$url" "$method" "$body"
  dur=$saved
  for r in $(seq 1 "$rounds"); do
    if (( r % 2 )); then
      run_wrk "$tmp/wrk-$name-$r.txt" "$url" "$method"; run_em "$tmp/em-$name-$r" "$url" "$method" "$body"; first=wrk
    else
      run_em "$tmp/em-$name-$r" "$url" "$method" "$body"; run_wrk "$tmp/wrk-$name-$r.txt" "$url" "$method"; first=edgemeter
    fi
    w=$(wrk_rps "$tmp/wrk-$name-$r.txt"); w=${w:-0}
    read -r wreq werr < <(wrk_counts "$tmp/wrk-$name-$r.txt")
    read -r e ereq eerr < <(em_counts "$tmp/em-$name-$r")
    erc=$(cat "$tmp/em-$name-$r.rc"); [ "$erc" = 0 ] || eerr=$((eerr + 1))
    total_errors=$((total_errors + werr + eerr))
    w_errs=$((w_errs + werr)); e_errs=$((e_errs + eerr))
    read -r wu ws < <(cpu_per_request "$tmp/wrk-$name-$r.txt.cpu" "$wreq")
    read -r eu es < <(cpu_per_request "$tmp/em-$name-$r.cpu" "$ereq")
    ratio=$(awk -v a="$e" -v b="$w" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}')
    ratios+=("$ratio"); wcpu+=("$wu $ws"); ecpu+=("$eu $es")
    printf '%s round %d (%s first): wrk %.0f req/s, %s requests, %s errors, CPU/req user %s sys %s us | edgemeter %.0f req/s, %s requests, %s errors (exit %s), CPU/req user %s sys %s us | ratio %s\n' \
      "$name" "$r" "$first" "$w" "$wreq" "$werr" "$wu" "$ws" "$e" "$ereq" "$eerr" "$erc" "$eu" "$es" "$ratio"
    w_total=$(awk -v a="$w_total" -v b="$w" 'BEGIN{print a+b}')
    e_total=$(awk -v a="$e_total" -v b="$e" 'BEGIN{print a+b}')
  done
  line=$(awk -v n="$name" -v w="$w_total" -v e="$e_total" -v r="$rounds" -v we="$w_errs" -v ee="$e_errs" \
      -v rs="${ratios[*]}" -v wc="${wcpu[*]}" -v ec="${ecpu[*]}" 'BEGIN {
    ratio = (w > 0 ? e / w : 0)
    k = split(rs, x, " "); lo = x[1]; hi = x[1]; for (i = 2; i <= k; i++) { if (x[i] < lo) lo = x[i]; if (x[i] > hi) hi = x[i] }
    k = split(wc, a, " "); wu = 0; wsy = 0; for (i = 1; i <= k; i += 2) { wu += a[i]; wsy += a[i + 1] }
    k = split(ec, b, " "); eu = 0; esy = 0; for (i = 1; i <= k; i += 2) { eu += b[i]; esy += b[i + 1] }
    printf "%s: wrk %.0f req/s (%d errors), edgemeter load %.0f req/s (%d errors) (means of all %d rounds); ratio edgemeter/wrk = %.3f (rounds %s to %s) (goal >= 1.0: %s); client CPU/req (mean of rounds) user/sys us: wrk %.2f/%.2f, edgemeter %.2f/%.2f",
      n, w / r, we, e / r, ee, r, ratio, lo, hi, (ratio >= 1.0 ? "met" : "NOT met"), wu / r, wsy / r, eu / r, esy / r }')
  echo "$line"
  summary+=("$line")
}

echo "edgemeter load ($bin) vs wrk: ${threads} threads, ${conns} connections, ${dur} s, ${rounds} rounds alternating who goes first, after a 2 s warm-up of each; $(nproc) cores shared by server and client, load $(cut -d' ' -f1-3 /proc/loadavg)"
compare calculator "$calc_url" POST "5+6"
compare nginx "http://127.0.0.1:$nport/index.html" GET ""
compare sum "$sum_url/sum?a=5&b=6" GET ""
echo "== the three cases of this run (load at the end $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%s\n' "${summary[@]}"
if [ "$total_errors" -gt 0 ]; then
  echo "verdict: FAIL: $total_errors errors across both sides and all three cases (per round above)"
  exit 1
fi
echo "verdict: no errors on either side in any round; the ratios above are as measured"
