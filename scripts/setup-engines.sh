#!/usr/bin/env bash
# Prepares the engines edgemeter's startup probes use. Idempotent: run it as often as you like.
#   - starts dockerd if it is not running and waits for its socket (DOCKER_HOST or /var/run/docker.sock)
#   - creates the LXC bridge lxcbr0 if missing (lxc-start fails without it)
#   - downloads the Debian kernel (linux-image-6.1.0-*-amd64) once into the kernel cache
#     (EDGEMETER_KERNEL_CACHE, default /var/cache/edgemeter/kernel) and unpacks it with dpkg -x
#   - on a hybrid cgroup host (v1 controllers + cgroup v2 at /sys/fs/cgroup/unified), mounts the
#     controllers that sit on v2 (hugetlb here) as v1 hierarchies: crun refuses the host otherwise
#   - mounts every cgroup v1 hierarchy the kernel has (/proc/cgroups) that nothing mounts (left so by
#     scripts/reset-host.sh, whose umount cannot destroy a hierarchy that still has child cgroups):
#     containerd's shim cannot load a container's cgroup then, and `docker stats` shows 0B
#   - does the cgroup steps before starting dockerd (dockerd reads the cgroup layout once, at start)
#   - builds the local image edgemeter-base:latest in dockerd when it is missing and an edgemeter
#     binary is at hand (EDGEMETER_BIN, else .build/release/edgemeter, else .build/debug/edgemeter)
#   - starts podman's Docker-compatible API (podman system service) on /run/podman/podman.sock and
#     waits for /_ping; copies edgemeter-base:latest from dockerd into podman when only dockerd has it
# What it starts and mounts is recorded under /run/edgemeter/ so scripts/reset-host.sh undoes exactly that.
# Needs root and the packages docker.io, lxc, qemu-system-x86, busybox-static, cpio (podman, crun optional).
#
#   scripts/setup-engines.sh                     set up (the default)
#   scripts/setup-engines.sh --check             change nothing; one line per precondition,
#                                                "ok      WHAT" or "missing WHAT: FIX"; exit 0 if all ok, else 1
#   scripts/setup-engines.sh --cgroup-plan ROOT [ROOT_FSTYPE UNIFIED_FSTYPE]
#                                                change nothing; print the cgroup v2 controllers setup would
#                                                mount as v1 hierarchies under ROOT, or "none: WHY"
#                                                (filesystem types default to what stat -f reports)
#   scripts/setup-engines.sh --cgroup-orphans [MOUNTINFO PROC_CGROUPS]
#                                                change nothing; print the v1 hierarchies setup would mount
#                                                because no mount carries them (one per line, controllers
#                                                comma-separated), or "none: WHY" (defaults: /proc/self/mountinfo,
#                                                /proc/cgroups)
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE="${EDGEMETER_KERNEL_CACHE:-/var/cache/edgemeter/kernel}"
SOCK="/var/run/docker.sock"
if [[ "${DOCKER_HOST:-}" == unix://* ]]; then SOCK="${DOCKER_HOST#unix://}"; fi
PODSOCK=/run/podman/podman.sock
IMAGE=edgemeter-base:latest
STATE=/run/edgemeter

say() { printf 'setup-engines: %s\n' "$*" >&2; }

# --- probes shared by the set-up and --check (none of them changes anything) ---------------------
docker_up() {
    if command -v curl >/dev/null; then
        curl -s --max-time 2 --unix-socket "$SOCK" http://docker/_ping 2>/dev/null | grep -q OK
    else
        DOCKER_HOST="unix://$SOCK" timeout 5 docker version >/dev/null 2>&1
    fi
}
# A daemon started from a directory that was later removed (a CI clone) keeps running with a deleted
# working directory; podman's conmon then fails every container start ("Failed to get working
# directory", crun "write child: broken pipe"). Daemons are started from / for that reason, and a
# podman service found in that state is restarted.
cwd_deleted() { local pid; for pid in $(pgrep -f "$1"); do readlink "/proc/$pid/cwd" 2>/dev/null | grep -q ' (deleted)$' && return 0; done; return 1; }
podman_stale() { cwd_deleted '^podman system service'; }
podman_up() {
    if command -v curl >/dev/null; then
        curl -s --max-time 2 --unix-socket "$PODSOCK" http://podman/_ping 2>/dev/null | grep -q OK
    else
        timeout 5 podman --remote --url "unix://$PODSOCK" version >/dev/null 2>&1
    fi
}
docker_has_image() {
    if command -v curl >/dev/null; then
        [[ $(curl -s --max-time 5 -o /dev/null -w '%{http_code}' --unix-socket "$SOCK" "http://docker/images/$IMAGE/json" 2>/dev/null) == 200 ]]
    else
        DOCKER_HOST="unix://$SOCK" timeout 10 docker image inspect "$IMAGE" >/dev/null 2>&1
    fi
}
podman_has_image() { command -v podman >/dev/null && timeout 20 podman image exists "$IMAGE" 2>/dev/null; }
kernel_cached() { ls "$CACHE"/boot/vmlinuz-* >/dev/null 2>&1 && [[ -f "$CACHE/modules/e1000.ko" ]]; }
edgemeter_binary() {
    local c
    for c in "${EDGEMETER_BIN:-}" "$REPO/.build/release/edgemeter" "$REPO/.build/debug/edgemeter"; do
        [[ -n $c && -x $c ]] && { echo "$c"; return 0; }
    done
    return 1
}

# --- cgroups for crun ------------------------------------------------------------------------------
# crun 1.8 stops with "cgroups in hybrid mode not supported, drop all controllers from cgroupv2" when
# the v2 hierarchy of a hybrid host owns controllers. A controller that no v2 cgroup uses can be
# mounted as a v1 hierarchy instead, as systemd's hybrid layout does; runc and dockerd are unaffected.
#
# cgroup_plan ROOT [ROOT_FSTYPE UNIFIED_FSTYPE] prints the controllers to mount (one line, space
# separated), "none: WHY" when there is nothing to do, or "blocked: WHY" when crun will refuse the
# host and moving the controllers cannot help. Files on cgroupfs report size 0 whatever they hold,
# so the controller lists are read, never sized with `test -s`.
cgroup_plan() {
    local root=${1:?cgroup_plan needs a root directory} rtype=${2:-} utype=${3:-}
    root=${root%/}
    [[ -d $root ]] || { echo "none: $root does not exist (no cgroups mounted?)"; return 0; }
    [[ -n $rtype ]] || rtype=$(stat -f -c %T "$root" 2>/dev/null || echo unknown)
    case $rtype in
        cgroup2fs) echo "none: $root is cgroup v2 only (unified); crun accepts it as is"; return 0 ;;
        tmpfs) ;;
        *) echo "none: $root is not a cgroup mount (filesystem $rtype)"; return 0 ;;
    esac
    local u=$root/unified
    if [[ ! -d $u ]]; then echo "none: cgroup v1 only (no $u); crun accepts it as is"; return 0; fi
    [[ -n $utype ]] || utype=$(stat -f -c %T "$u" 2>/dev/null || echo unknown)
    if [[ $utype != cgroup2fs ]]; then echo "none: cgroup v1 only ($u is $utype, not cgroup2); crun accepts it as is"; return 0; fi
    local controllers used
    controllers=$( { cat "$u/cgroup.controllers" 2>/dev/null || true; } | tr -s ' \t\n' ' ' | sed 's/^ *//; s/ *$//')
    if [[ -z $controllers ]]; then echo "none: hybrid, and cgroup2 at $u owns no controllers; crun accepts it as is"; return 0; fi
    used=$( { cat "$u/cgroup.subtree_control" 2>/dev/null || true; } | tr -s ' \t\n' ' ' | sed 's/^ *//; s/ *$//')
    if [[ -n $used ]]; then
        echo "blocked: cgroup2 at $u owns $controllers and enables $used in cgroup.subtree_control (v2 cgroups use them, so they cannot move to v1); crun will refuse this host: disable them there or boot with systemd.unified_cgroup_hierarchy=0/1"
        return 0
    fi
    echo "$controllers"
}

# cgroup_orphans [MOUNTINFO PROC_CGROUPS] prints the cgroup v1 hierarchies the kernel has (controllers
# with a non-zero hierarchy ID in /proc/cgroups, enabled) that no cgroup mount in MOUNTINFO carries, one
# per line with its controllers comma-separated ("hugetlb", "cpu,cpuacct"), or "none: WHY". Such a
# hierarchy still lists every process in /proc/PID/cgroup, but containerd's shim (containerd/cgroups
# Load) looks each listed controller up in mountinfo, fails with "cannot find cgroup mount destination",
# keeps no cgroup for the container, and dockerd then answers GET /containers/ID/stats with empty
# memory_stats (`docker stats` shows 0B). scripts/reset-host.sh leaves exactly this: its umount of
# /sys/fs/cgroup/hugetlb detaches the mount, but the hierarchy lives on while it has child cgroups.
cgroup_orphans() {
    local mi=${1:-/proc/self/mountinfo} pc=${2:-/proc/cgroups}
    [[ -r $pc ]] || { echo "none: $pc is not readable (no cgroups?)"; return 0; }
    local mounted groups g c found out=""
    # the super options (the field after fstype and source) of every v1 cgroup mount, one option a line
    mounted=$(awk '{ for (i = 1; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup") print $(i + 3); break } }' "$mi" 2>/dev/null | tr ',' '\n')
    # hierarchy ID -> controllers, for enabled controllers bound to a v1 hierarchy (ID 0: v2 or none)
    groups=$(awk '!/^#/ && NF >= 4 && $2 != 0 && $4 == 1 { print $2, $1 }' "$pc" | sort -n -k1,1 -k2,2 |
        awk '{ if ($1 == h) l = l "," $2; else { if (l != "") print l; h = $1; l = $2 } } END { if (l != "") print l }')
    [[ -n $groups ]] || { echo "none: $pc lists no controller bound to a v1 hierarchy"; return 0; }
    for g in $groups; do
        found=0
        for c in ${g//,/ }; do grep -qx -- "$c" <<<"$mounted" && { found=1; break; }; done
        [[ $found == 1 ]] || out+="$g"$'\n'
    done
    if [[ -z $out ]]; then echo "none: every v1 hierarchy in $pc is mounted"; else printf '%s' "$out"; fi
}

# --- --check ---------------------------------------------------------------------------------------
check() {
    local bad=0 plan
    ok() { printf 'ok      %s\n' "$1"; }
    missing() { printf 'missing %s: %s\n' "$1" "$2"; bad=1; }

    if ! command -v dockerd >/dev/null; then
        missing "dockerd (package docker.io)" "apt-get install -y docker.io (or scripts/setup.sh)"
    elif docker_up; then
        ok "dockerd answers on $SOCK"
    else
        missing "dockerd answering on $SOCK" "scripts/setup-engines.sh"
    fi

    if ip link show lxcbr0 >/dev/null 2>&1; then
        ok "bridge lxcbr0 exists"
    else
        missing "bridge lxcbr0" "scripts/setup-engines.sh (or: ip link add lxcbr0 type bridge && ip addr add 10.0.3.1/24 dev lxcbr0 && ip link set lxcbr0 up)"
    fi

    plan=$(cgroup_plan /sys/fs/cgroup)
    case $plan in
        none:*) ok "cgroup layout crun accepts (${plan#none: })" ;;
        blocked:*) missing "cgroup layout crun accepts" "${plan#blocked: }" ;;
        *) missing "cgroup layout crun accepts (cgroup2 at /sys/fs/cgroup/unified owns: $plan)" "scripts/setup-engines.sh (mounts $plan as v1 hierarchies)" ;;
    esac

    plan=$(cgroup_orphans)
    case $plan in
        none:*) ok "cgroup v1 hierarchies all mounted (${plan#none: }; docker stats can read memory)" ;;
        *) missing "cgroup v1 hierarchies all mounted ($(echo $plan) bound but not mounted: docker stats shows 0B)" "scripts/setup-engines.sh (mounts them at /sys/fs/cgroup/NAME)" ;;
    esac

    if ! command -v podman >/dev/null; then
        missing "podman (optional backend)" "apt-get install -y podman crun (or scripts/setup.sh)"
    elif podman_up && podman_stale; then
        missing "podman service in a live directory (its working directory was deleted: container starts fail)" "scripts/setup-engines.sh (restarts it from /)"
    elif podman_up; then
        ok "podman API answers on $PODSOCK"
    else
        missing "podman API answering on $PODSOCK" "scripts/setup-engines.sh (or: podman system service --time=0 unix://$PODSOCK &)"
    fi

    if kernel_cached; then
        ok "VM kernel cache: $(ls "$CACHE"/boot/vmlinuz-* | head -1) and $CACHE/modules/e1000.ko"
    else
        missing "VM kernel cache in $CACHE (vmlinuz + e1000.ko)" "scripts/setup-engines.sh"
    fi

    if ! docker_up; then
        missing "image $IMAGE in dockerd (dockerd not answering)" "scripts/setup-engines.sh, then .build/release/edgemeter image build"
    elif docker_has_image; then
        ok "image $IMAGE in dockerd"
    else
        missing "image $IMAGE in dockerd" ".build/release/edgemeter image build (swift build -c release --product edgemeter first)"
    fi

    if ! command -v podman >/dev/null; then
        missing "image $IMAGE in podman (podman not installed)" "apt-get install -y podman crun, then scripts/setup-engines.sh"
    elif podman_has_image; then
        ok "image $IMAGE in podman"
    elif docker_up && docker_has_image; then
        missing "image $IMAGE in podman" "scripts/setup-engines.sh (copies it from dockerd; or: docker save $IMAGE | podman load)"
    else
        missing "image $IMAGE in podman" ".build/release/edgemeter image build, then scripts/setup-engines.sh"
    fi
    return $bad
}

case "${1:-}" in
    --check) check; exit $? ;;
    --cgroup-plan) shift; [[ $# -ge 1 ]] || { echo "usage: $0 --cgroup-plan ROOT [ROOT_FSTYPE UNIFIED_FSTYPE]" >&2; exit 2; }
                   cgroup_plan "$@"; exit 0 ;;
    --cgroup-orphans) shift; cgroup_orphans "$@"; exit 0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    "") ;;
    *) echo "setup-engines: unknown argument \"$1\": use --check, --cgroup-plan ROOT, --cgroup-orphans or no argument (see --help)" >&2; exit 2 ;;
esac

if [[ $(id -u) != 0 ]]; then say "needs root to start engines, create bridges and mount cgroups: run it with sudo"; exit 2; fi
mkdir -p "$STATE"

# --- cgroups for crun --------------------------------------------------------------------------
plan=$(cgroup_plan /sys/fs/cgroup)
case $plan in
    none:*) say "cgroups: ${plan#none: }" ;;
    blocked:*) say "cgroups: ${plan#blocked: }" ;;
    *)
        for c in $plan; do
            say "mounting cgroup controller $c as a v1 hierarchy at /sys/fs/cgroup/$c (crun refuses v2 controllers on a hybrid host)"
            [[ -d /sys/fs/cgroup/$c ]] || { mkdir "/sys/fs/cgroup/$c"; echo "/sys/fs/cgroup/$c" >>"$STATE/cgroup-dirs"; }
            if mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"; then
                echo "/sys/fs/cgroup/$c" >>"$STATE/cgroup-mounts"
            else
                say "could not mount $c; crun may refuse this host (scripts/setup-engines.sh --check shows the layout)"
            fi
        done ;;
esac
# A v1 hierarchy the kernel still has but nothing mounts (after scripts/reset-host.sh): mounting it
# again re-attaches the same hierarchy (same cgroups, same processes).
orphans=$(cgroup_orphans)
case $orphans in
    none:*) say "cgroups: ${orphans#none: }" ;;
    *)
        for g in $orphans; do
            say "mounting the cgroup v1 hierarchy $g at /sys/fs/cgroup/$g: the kernel has it but nothing mounts it, so containerd cannot load containers' cgroups (docker stats 0B)"
            [[ -d /sys/fs/cgroup/$g ]] || { mkdir "/sys/fs/cgroup/$g"; echo "/sys/fs/cgroup/$g" >>"$STATE/cgroup-dirs"; }
            if mount -t cgroup -o "$g" cgroup "/sys/fs/cgroup/$g"; then
                echo "/sys/fs/cgroup/$g" >>"$STATE/cgroup-mounts"
            else
                say "could not mount $g; docker stats will show 0B (scripts/setup-engines.sh --check shows the layout)"
            fi
        done
        if docker_up; then say "containers dockerd started before this keep empty stats; new ones are measured"; fi ;;
esac

# --- dockerd -----------------------------------------------------------------------------------
if ! command -v dockerd >/dev/null; then
    say "dockerd not found: apt-get install -y docker.io"; exit 1
fi
if docker_up; then
    say "dockerd already answers on $SOCK"
else
    if ! pgrep -x dockerd >/dev/null; then
        say "starting dockerd (log: /var/log/dockerd.log)"
        (cd / && exec nohup dockerd -H "unix://$SOCK" >/var/log/dockerd.log 2>&1) &
        echo $! >"$STATE/dockerd.pid"
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
    touch "$STATE/lxcbr0.created"
fi

# --- the local image in dockerd ----------------------------------------------------------------
if docker_has_image; then
    say "image $IMAGE present in dockerd"
elif bin=$(edgemeter_binary); then
    say "building $IMAGE in dockerd with $bin image build"
    "$bin" image build >/dev/null || say "image build failed; run $bin image build by hand to see why"
else
    say "image $IMAGE is not in dockerd and no edgemeter binary is built: after swift build -c release --product edgemeter, run .build/release/edgemeter image build"
fi

# --- podman's Docker-compatible API ------------------------------------------------------------
if ! command -v podman >/dev/null; then
    say "podman not installed (apt-get install -y podman crun): the podman backend will be reported as not run"
elif podman_up && ! podman_stale; then
    say "podman API already answers on $PODSOCK"
else
    if podman_stale; then
        say "podman system service runs in a deleted directory (a removed clone): restarting it"
        pkill -f '^podman system service' || true
        for _ in $(seq 1 20); do pgrep -f '^podman system service' >/dev/null || break; sleep 0.25; done
    fi
    mkdir -p "$(dirname "$PODSOCK")"
    say "starting podman system service on $PODSOCK (log: /var/log/podman-service.log)"
    (cd / && exec nohup podman system service --time=0 "unix://$PODSOCK" >/var/log/podman-service.log 2>&1) &
    echo $! >"$STATE/podman-service.pid"
    for _ in $(seq 1 60); do podman_up && break; sleep 0.5; done
    podman_up || { say "podman API did not answer on $PODSOCK within 30 s; see /var/log/podman-service.log"; exit 1; }
    say "podman API answers on $PODSOCK"
fi
if command -v podman >/dev/null && ! podman_has_image && docker_has_image; then
    say "copying $IMAGE from dockerd into podman"
    DOCKER_HOST="unix://$SOCK" docker save "$IMAGE" | podman load -q >/dev/null
fi

# --- Debian kernel for the QEMU guest ------------------------------------------------------------
if kernel_cached; then
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
