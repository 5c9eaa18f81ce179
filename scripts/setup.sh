#!/usr/bin/env bash
# Installs what edgemeter's lab and tests need, idempotently: Debian packages, then the engines
# (dockerd, podman's API, the LXC bridge, cgroups crun accepts, the VM kernel cache, the local image
# when an edgemeter binary is built) through scripts/setup-engines.sh.
# Safe to run again: it installs only what is missing and starts only what is not running.
# `scripts/setup-engines.sh --check` shows what is in place without changing anything;
# scripts/reset-host.sh undoes the engine set-up (it never removes packages).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  iproute2 iputils-ping fping tcpdump tshark wrk hyperfine
  libpcap-dev libsqlite3-dev pkg-config
  docker.io lxc busybox-static cpio qemu-system-x86 qemu-utils
  nginx-light iptables procps curl linux-perf time sysstat
  podman crun docker-compose ethtool iperf3
  prometheus  # promtool checks /metrics; the agent tests run its server on loopback
  prometheus-blackbox-exporter  # the agent's /probe is compared with it (benchmarks/peers)
  chromium  # headless: report.html is rendered and checked offline
  datamash  # the peer for streaming summaries (benchmarks/peers/report-vs-datamash.sh)
)

if [ "$(id -u)" != 0 ]; then
  echo "setup: needs root to install packages and start engines: run with sudo" >&2
  exit 2
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer no without a prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v swift >/dev/null || { echo "setup: swift not found on PATH: install Swift 6 (e.g. /opt/swift/usr/bin)" >&2; exit 2; }

if [ -x scripts/setup-engines.sh ]; then
  scripts/setup-engines.sh
fi
echo "setup: ok"
