#!/usr/bin/env bash
# edgemeter load vs wrk (Debian's wrk 4.1) in the same run, same connections, threads and duration,
# closed loop, against two servers on loopback that this script starts itself:
#   1. the calculator front end (`edgemeter serve calculator --role all`, free ports), POST 5+6;
#   2. a static page served by nginx (temporary config, 127.0.0.1, a free port), GET /index.html.
# Runs alternate wrk / edgemeter for ROUNDS rounds per server so both see the same machine state,
# then prints each side's total requests/s and the ratio edgemeter/wrk (goal >= 1.0).
#   benchmarks/peers/load-vs-wrk.sh [DURATION_SECONDS] [CONNECTIONS] [THREADS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
dur=${1:-10}
conns=${2:-32}
threads=${3:-2}
rounds=${4:-2}
bin=.build/release/edgemeter
command -v wrk >/dev/null || { echo "wrk missing: apt-get install wrk" >&2; exit 2; }
command -v nginx >/dev/null || { echo "nginx missing: apt-get install nginx-light" >&2; exit 2; }
if [ ! -x "$bin" ]; then swift build -c release --product edgemeter >/dev/null; fi
tmp=$(mktemp -d)
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

wrk_rps() { sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p'; }
em_rps() { awk -F, '$5=="throughput" && $6=="achieved" {print $7}' "$1/samples.csv"; }

compare() { # name url method body
  local name=$1 url=$2 method=$3 body=$4 w_total=0 e_total=0
  for r in $(seq 1 "$rounds"); do
    if [ "$method" = POST ]; then
      w=$(wrk -t"$threads" -c"$conns" -d"${dur}s" -s "$tmp/post.lua" "$url" | tee "$tmp/wrk-$name-$r.txt" | wrk_rps)
      "$bin" load -t "$threads" -c "$conns" -d "${dur}s" --body "$body" -H 'Content-Type: text/plain' --out "$tmp/em-$name-$r" "$url" >"$tmp/em-$name-$r.txt" 2>&1
    else
      w=$(wrk -t"$threads" -c"$conns" -d"${dur}s" "$url" | tee "$tmp/wrk-$name-$r.txt" | wrk_rps)
      "$bin" load -t "$threads" -c "$conns" -d "${dur}s" --out "$tmp/em-$name-$r" "$url" >"$tmp/em-$name-$r.txt" 2>&1
    fi
    e=$(em_rps "$tmp/em-$name-$r")
    errs=$(awk -F, '$5=="errors" {s+=$7} END {print s+0}' "$tmp/em-$name-$r/samples.csv")
    wnon=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$tmp/wrk-$name-$r.txt"); wnon=${wnon:-0}
    printf '%s round %d: wrk %.0f req/s (non-2xx %s) | edgemeter %.0f req/s (errors %s)\n' "$name" "$r" "$w" "$wnon" "$e" "$errs"
    w_total=$(awk -v a="$w_total" -v b="$w" 'BEGIN{print a+b}')
    e_total=$(awk -v a="$e_total" -v b="$e" 'BEGIN{print a+b}')
  done
  awk -v n="$name" -v w="$w_total" -v e="$e_total" -v r="$rounds" 'BEGIN {
    ratio = e / w
    printf "%s: wrk %.0f req/s, edgemeter load %.0f req/s (mean of %d rounds); ratio edgemeter/wrk = %.3f (goal >= 1.0: %s)\n",
      n, w / r, e / r, r, ratio, (ratio >= 1.0 ? "met" : "NOT met") }'
}

echo "edgemeter load vs wrk: ${threads} threads, ${conns} connections, ${dur} s, ${rounds} alternating rounds; $(nproc) cores shared by server and client"
compare calculator "$calc_url" POST "5+6"
compare nginx "http://127.0.0.1:$nport/index.html" GET ""
