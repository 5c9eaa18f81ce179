#!/usr/bin/env bash
# What a halted vCPU's wake-up costs, with and without the PM QoS request the forwarder, the proxy
# and `calibrate` hold (CPULatencyHold). Alternates the two sides ROUNDS times; each side: 200
# rounds of "sleep 10 ms (SCHED_FIFO 10), send a datagram on loopback to a SCHED_FIFO reader".
#   recv-wake  = reader's clock after recvmsg returns − the datagram's kernel stamp
#   timer-late = the sleeper's clock after clock_nanosleep − the deadline
# Run it on an idle machine (the figure is the idle cost). Needs root and gcc.
#   sudo benchmarks/impair/idle-wake.sh [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-3}
bin=$(mktemp)
trap 'rm -f "$bin"' EXIT
gcc -O2 -pthread -o "$bin" idle-wake.c
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$rounds"); do RT=1 "$bin" 0; RT=1 "$bin" 1; done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
