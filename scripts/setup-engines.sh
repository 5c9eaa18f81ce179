#!/usr/bin/env bash
# Prepares the engines edgemeter's startup probes use. Idempotent: run it as often as you like.
#   - starts dockerd if it is not running and waits for its socket (DOCKER_HOST or /var/run/docker.sock)
#   - creates the LXC bridge lxcbr0 if missing (lxc-start fails without it)
#   - downloads the Debian kernel (linux-image-6.1.0-*-amd64) once into the kernel cache
#     (EDGEMETER_KERNEL_CACHE, default /var/cache/edgemeter/kernel) and unpacks it with dpkg -x
# Needs root and the packages docker.io, lxc, qemu-system-x86, busybox-static, cpio.
set -euo pipefail

CACHE="${EDGEMETER_KERNEL_CACHE:-/var/cache/edgemeter/kernel}"
SOCK="/var/run/docker.sock"
if [[ "${DOCKER_HOST:-}" == unix://* ]]; then SOCK="${DOCKER_HOST#unix://}"; fi

say() { printf 'setup-engines: %s\n' "$*" >&2; }

# --- dockerd -----------------------------------------------------------------------------------
if ! command -v dockerd >/dev/null; then
    say "dockerd not found: apt-get install -y docker.io"; exit 1
fi
docker_up() {
    if command -v curl >/dev/null; then
        curl -s --max-time 2 --unix-socket "$SOCK" http://docker/_ping 2>/dev/null | grep -q OK
    else
        DOCKER_HOST="unix://$SOCK" timeout 5 docker version >/dev/null 2>&1
    fi
}
if docker_up; then
    say "dockerd already answers on $SOCK"
else
    if ! pgrep -x dockerd >/dev/null; then
        say "starting dockerd (log: /var/log/dockerd.log)"
        nohup dockerd -H "unix://$SOCK" >/var/log/dockerd.log 2>&1 &
    fi
    for _ in $(seq 1 120); do docker_up && break; sleep 0.5; done
    docker_up || { say "dockerd did not answer on $SOCK within 60 s; see /var/log/dockerd.log"; exit 1; }
    say "dockerd answers on $SOCK"
fi

# --- lxcbr0 -------------------------------------------------------------------------------------
if ip link show lxcbr0 >/dev/null 2>&1; then
    say "bridge lxcbr0 exists"
else
    say "creating bridge lxcbr0 (10.0.3.1/24)"
    ip link add lxcbr0 type bridge
    ip addr add 10.0.3.1/24 dev lxcbr0
    ip link set lxcbr0 up
fi

# --- Debian kernel for the QEMU guest ------------------------------------------------------------
if ls "$CACHE"/boot/vmlinuz-* >/dev/null 2>&1 && [[ -f "$CACHE/modules/e1000.ko" ]]; then
    say "kernel cached: $(ls "$CACHE"/boot/vmlinuz-* | head -1)"
else
    mkdir -p "$CACHE"
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-6\.1\.0-[0-9]+-amd64/ {print $2; exit}')
    if [[ -z "$pkg" ]]; then
        apt-get update -qq
        pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-6\.1\.0-[0-9]+-amd64/ {print $2; exit}')
    fi
    [[ -n "$pkg" ]] || { say "cannot find a linux-image-6.1.0-*-amd64 package; check /etc/apt/sources.list"; exit 1; }
    tmp=$(mktemp -d)
    chown _apt "$tmp" 2>/dev/null || chmod 777 "$tmp"   # apt downloads as the _apt user
    say "downloading $pkg into $CACHE"
    (cd "$tmp" && apt-get download "$pkg" >/dev/null)
    dpkg -x "$tmp"/*.deb "$tmp/x"
    mkdir -p "$CACHE/boot" "$CACHE/modules"
    cp "$tmp"/x/boot/vmlinuz-* "$CACHE/boot/"
    # The guest's NIC driver (QEMU -nic model=e1000) is a module in Debian's kernel; the initramfs
    # edgemeter builds loads it with busybox insmod. It has no module dependencies.
    cp "$tmp"/x/lib/modules/*/kernel/drivers/net/ethernet/intel/e1000/e1000.ko "$CACHE/modules/"
    rm -rf "$tmp"
    say "kernel cached: $(ls "$CACHE"/boot/vmlinuz-* | head -1)"
fi
