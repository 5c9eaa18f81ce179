#!/usr/bin/env bash
# Prepares the engines edgemeter's startup probes use. Idempotent: run it as often as you like.
#   - starts dockerd if it is not running and waits for its socket (DOCKER_HOST or /var/run/docker.sock)
#   - creates the LXC bridge lxcbr0 if missing (lxc-start fails without it)
#   - downloads the Debian kernel (linux-image-6.1.0-*-amd64) once into the kernel cache
#     (EDGEMETER_KERNEL_CACHE, default /var/cache/edgemeter/kernel) and unpacks it with dpkg -x
#   - on a hybrid cgroup host (v1 controllers + cgroup v2 at /sys/fs/cgroup/unified), mounts the
#     controllers that sit on v2 (hugetlb here) as v1 hierarchies: crun refuses the host otherwise
#   - starts podman's Docker-compatible API (podman system service) on /run/podman/podman.sock and
#     waits for /_ping; copies edgemeter-base:latest from dockerd into podman when only dockerd has it
# Needs root and the packages docker.io, lxc, qemu-system-x86, busybox-static, cpio (podman, crun optional).
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

# --- cgroups for crun --------------------------------------------------------------------------
# crun 1.8 stops with "cgroups in hybrid mode not supported, drop all controllers from cgroupv2" when
# the v2 hierarchy of a hybrid host owns controllers. A controller that no v2 cgroup uses can be
# mounted as a v1 hierarchy instead, as systemd's hybrid layout does; runc and dockerd are unaffected.
U=/sys/fs/cgroup/unified
if [[ -f $U/cgroup.controllers && -s $U/cgroup.controllers && ! -s $U/cgroup.subtree_control ]] \
   && mountpoint -q /sys/fs/cgroup && [[ $(stat -f -c %T /sys/fs/cgroup) == tmpfs ]]; then
    for c in $(cat $U/cgroup.controllers); do
        say "mounting cgroup controller $c as a v1 hierarchy (crun refuses v2 controllers on a hybrid host)"
        mkdir -p "/sys/fs/cgroup/$c"
        mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" || say "could not mount $c; crun may refuse this host"
    done
fi

# --- podman's Docker-compatible API ------------------------------------------------------------
PODSOCK=/run/podman/podman.sock
podman_up() {
    if command -v curl >/dev/null; then
        curl -s --max-time 2 --unix-socket "$PODSOCK" http://podman/_ping 2>/dev/null | grep -q OK
    else
        timeout 5 podman --remote --url "unix://$PODSOCK" version >/dev/null 2>&1
    fi
}
if ! command -v podman >/dev/null; then
    say "podman not installed (apt-get install -y podman crun): the podman backend will be reported as not run"
elif podman_up; then
    say "podman API already answers on $PODSOCK"
else
    mkdir -p "$(dirname "$PODSOCK")"
    say "starting podman system service on $PODSOCK (log: /var/log/podman-service.log)"
    nohup podman system service --time=0 "unix://$PODSOCK" >/var/log/podman-service.log 2>&1 &
    for _ in $(seq 1 60); do podman_up && break; sleep 0.5; done
    podman_up || { say "podman API did not answer on $PODSOCK within 30 s; see /var/log/podman-service.log"; exit 1; }
    say "podman API answers on $PODSOCK"
fi
if command -v podman >/dev/null && ! podman image exists edgemeter-base:latest 2>/dev/null \
   && DOCKER_HOST="unix://$SOCK" docker image inspect edgemeter-base:latest >/dev/null 2>&1; then
    say "copying edgemeter-base:latest from dockerd into podman"
    DOCKER_HOST="unix://$SOCK" docker save edgemeter-base:latest | podman load >/dev/null
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
