#!/usr/bin/env bash
# A longer fuzz run of HTTP1Parser with libFuzzer (coverage-guided), outside the package and CI.
#   benchmarks/fuzz/run.sh [SECONDS=300] [extra libFuzzer flags...]
# Builds benchmarks/fuzz/.build/http1-fuzz from Sources/EdgeMeterHTTP/HTTP1Parser.swift and
# HTTP1ParserFuzz.swift with -sanitize=fuzzer,address, seeds a corpus with valid traffic, and runs
# for SECONDS. A crash or a broken invariant leaves crash-* in benchmarks/fuzz/.build/ (replay it
# with `.build/http1-fuzz crash-...`); the corpus grows in benchmarks/fuzz/.build/corpus.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-300}
shift || true
mkdir -p .build/corpus
swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name HTTP1Fuzz \
  ../../Sources/EdgeMeterHTTP/HTTP1Parser.swift HTTP1ParserFuzz.swift -o .build/http1-fuzz \
  2> >(grep -v "Cannot export local symbol" >&2)
# Seeds: byte 0 picks the kind (even request, odd response) and a split point.
seed() { printf '%b' "$2" >".build/corpus/seed-$1"; }
seed req-pipelined '\x00GET /sum?a=5&b=6 HTTP/1.1\r\nHost: x\r\n\r\nPOST /c HTTP/1.1\r\nContent-Length: 7\r\n\r\n(5+6)*2'
seed req-chunked '\x10POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n0\r\nT: v\r\n\r\nGET / HTTP/1.0\n\n'
seed resp-length '\x01HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhelloHTTP/1.1 204 No Content\r\n\r\n'
seed resp-chunked '\x21HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nuntil close'
seed resp-101 '\x41HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello'
cd .build
exec ./http1-fuzz -max_total_time="$seconds" -max_len=2048 -print_final_stats=1 "$@" corpus
