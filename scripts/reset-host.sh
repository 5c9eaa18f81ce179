#!/usr/bin/env bash
# Undoes what scripts/setup-engines.sh set up, so the next scripts/setup.sh starts from a bare host:
#   - removes edgemeter's leftovers first: docker and podman containers named edgemeter-* or labelled
#     edgemeter, LXC containers edgemeter-*, runc/crun containers edgemeter-*, QEMU guests named
#     edgemeter-*, network namespaces edgemeter-*, links edgemeter-* (bridges, veths), /tmp/edgemeter-oci-*
#   - removes local images whose name starts with edgemeter (edgemeter-base:latest, test and snapshot
#     images) from dockerd and podman
#   - stops podman's API service on /run/podman/podman.sock and dockerd on /var/run/docker.sock (the
#     processes that own those sockets or pid files, found by pid; SIGTERM, then up to 20 s to exit)
#   - unmounts the cgroup hierarchies setup-engines.sh mounted (recorded in /run/edgemeter/cgroup-mounts)
#     and removes the directories it created for them
#   - deletes the bridge lxcbr0
#   - removes the VM kernel cache (EDGEMETER_KERNEL_CACHE, default /var/cache/edgemeter/kernel: only
#     the boot/ and modules/ that setup put there)
# It does NOT uninstall any apt package (docker.io, podman, lxc, qemu, ... stay installed) and does not
# touch containers, images or links that are not edgemeter's. Idempotent: what is already gone is
# reported as such. Prints each thing it did. Needs root.
#   scripts/reset-host.sh          then: scripts/setup-engines.sh --check   (shows what is now missing)
#                                  and:  scripts/setup.sh                   (brings everything back)
set -uo pipefail

CACHE="${EDGEMETER_KERNEL_CACHE:-/var/cache/edgemeter/kernel}"
SOCK="/var/run/docker.sock"
if [[ "${DOCKER_HOST:-}" == unix://* ]]; then SOCK="${DOCKER_HOST#unix://}"; fi
PODSOCK=/run/podman/podman.sock
STATE=/run/edgemeter

did() { printf 'reset: %s\n' "$*"; }
if [[ $(id -u) != 0 ]]; then echo "reset: needs root (it stops dockerd and unmounts cgroups): run it with sudo" >&2; exit 2; fi

docker_up() { curl -s --max-time 2 --unix-socket "$SOCK" http://docker/_ping 2>/dev/null | grep -q OK; }
podman_up() { curl -s --max-time 2 --unix-socket "$PODSOCK" http://podman/_ping 2>/dev/null | grep -q OK; }

# Waits for PID to exit after SIGTERM (up to 20 s), then SIGKILL. $2 names it.
stop_pid() {
    local pid=$1 what=$2
    kill -TERM "$pid" 2>/dev/null || { did "$what (pid $pid) had already exited"; return 0; }
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || { did "stopped $what (pid $pid)"; return 0; }; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null && did "killed $what (pid $pid): it did not exit within 20 s of SIGTERM"
}

# The pid in a pid file (dockerd writes its own without a trailing newline), nothing if absent.
pid_file() { local p=""; [[ -r $1 ]] && { read -r p <"$1" || true; }; [[ $p =~ ^[0-9]+$ ]] && echo "$p"; return 0; }

# PIDs whose command line is exactly a program + arguments containing WORD (read from /proc, no pattern
# matching on other processes' names): $1 = program basename, $2 = an argument it must have.
pids_of() {
    local prog=$1 arg=$2 d
    for d in /proc/[0-9]*; do
        [[ -r $d/cmdline ]] || continue
        local argv=()
        mapfile -d '' -t argv <"$d/cmdline" 2>/dev/null || continue
        [[ ${#argv[@]} -gt 0 && ${argv[0]##*/} == "$prog" ]] || continue
        local a
        for a in "${argv[@]:1}"; do [[ $a == "$arg" ]] && { echo "${d#/proc/}"; break; }; done
    done
}

# --- edgemeter's leftovers: containers, guests, namespaces, links ----------------------------------
if command -v docker >/dev/null && docker_up; then
    ids=$( { DOCKER_HOST="unix://$SOCK" docker ps -aq --filter label=edgemeter; DOCKER_HOST="unix://$SOCK" docker ps -aq --filter name='^edgemeter-'; } | sort -u)
    for id in $ids; do DOCKER_HOST="unix://$SOCK" docker rm -f "$id" >/dev/null 2>&1 && did "removed docker container $id"; done
    for ref in $(DOCKER_HOST="unix://$SOCK" docker images --format '{{.Repository}}:{{.Tag}}' | grep '^edgemeter' || true); do
        DOCKER_HOST="unix://$SOCK" docker rmi -f "$ref" >/dev/null 2>&1 && did "removed docker image $ref"
    done
else
    did "dockerd not answering on $SOCK: no docker containers or images to remove"
fi
if command -v podman >/dev/null; then
    ids=$( { podman ps -aq --filter label=edgemeter; podman ps -aq --filter name='^edgemeter-'; } 2>/dev/null | sort -u)
    for id in $ids; do podman rm -f "$id" >/dev/null 2>&1 && did "removed podman container $id"; done
    for ref in $(podman images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null | sed 's|^localhost/||' | grep '^edgemeter' || true); do
        podman rmi -f "$ref" >/dev/null 2>&1 && did "removed podman image $ref"
    done
fi
if command -v lxc-ls >/dev/null; then
    for name in $(lxc-ls -1 2>/dev/null | grep '^edgemeter-' || true); do
        lxc-stop -k -n "$name" >/dev/null 2>&1
        lxc-destroy -n "$name" >/dev/null 2>&1 && did "removed lxc container $name"
    done
fi
for rt in runc crun; do
    command -v "$rt" >/dev/null || continue
    for id in $("$rt" list -q 2>/dev/null | grep '^edgemeter-' || true); do
        "$rt" delete --force "$id" >/dev/null 2>&1 && did "removed $rt container $id"
    done
done
for d in /proc/[0-9]*; do   # QEMU guests started with -name edgemeter-*
    [[ -r $d/cmdline ]] || continue
    mapfile -d '' -t argv <"$d/cmdline" 2>/dev/null || continue
    [[ ${#argv[@]} -gt 0 && ${argv[0]##*/} == qemu-system-* ]] || continue
    for ((i = 1; i + 1 < ${#argv[@]}; i++)); do
        if [[ ${argv[i]} == -name && ${argv[i+1]} == edgemeter-* ]]; then
            kill -KILL "${d#/proc/}" 2>/dev/null && did "killed qemu guest ${argv[i+1]} (pid ${d#/proc/})"
        fi
    done
done
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^edgemeter-' || true); do
    ip netns del "$ns" && did "deleted network namespace $ns"
done
for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep '^edgemeter-' || true); do
    ip link del "$link" 2>/dev/null && did "deleted link $link"
done
for b in /tmp/edgemeter-oci-* /tmp/edgemeter-qemu-*; do
    [[ -e $b ]] && rm -rf "$b" && did "removed $b"
done

# --- podman's API service and dockerd ----------------------------------------------------------------
pods=$( { pid_file "$STATE/podman-service.pid"; pids_of podman "unix://$PODSOCK"; } | sort -u)
found=0
for pid in $pods; do
    [[ $(cat /proc/"$pid"/comm 2>/dev/null) == podman ]] || continue
    found=1; stop_pid "$pid" "podman system service"
done
[[ $found == 1 ]] || did "podman API service not running"
rm -f "$STATE/podman-service.pid"
if podman_up; then did "something still answers on $PODSOCK (not started by setup?): left alone"; else rm -f "$PODSOCK"; fi

dpids=$( { pid_file /var/run/docker.pid; pid_file "$STATE/dockerd.pid"; pids_of dockerd "unix://$SOCK"; } | sort -u)
found=0
for pid in $dpids; do
    [[ $(cat /proc/"$pid"/comm 2>/dev/null) == dockerd ]] || continue
    found=1; stop_pid "$pid" dockerd   # dockerd stops the containerd it started
done
[[ $found == 1 ]] || did "dockerd not running"
rm -f "$STATE/dockerd.pid"
if docker_up; then did "something still answers on $SOCK (systemd's docker.service? stop it with systemctl stop docker)"; fi

# --- cgroups -----------------------------------------------------------------------------------------
if [[ -s $STATE/cgroup-mounts ]]; then
    while read -r m; do
        [[ -n $m ]] || continue
        if mountpoint -q "$m"; then
            # The kernel keeps a v1 hierarchy (and its controller) alive while cgroups remain in it,
            # so cgroup2 gets the controller back only once those are gone (or after a reboot).
            umount "$m" && did "unmounted cgroup hierarchy $m" || did "could not unmount $m (in use?)"
        else
            did "cgroup hierarchy $m was not mounted"
        fi
    done <"$STATE/cgroup-mounts"
    rm -f "$STATE/cgroup-mounts"
else
    did "no cgroup hierarchy mounted by setup-engines.sh"
fi
if [[ -s $STATE/cgroup-dirs ]]; then
    while read -r d; do
        [[ -n $d ]] && ! mountpoint -q "$d" && rmdir "$d" 2>/dev/null && did "removed directory $d"
    done <"$STATE/cgroup-dirs"
    rm -f "$STATE/cgroup-dirs"
fi

# --- lxcbr0 ------------------------------------------------------------------------------------------
if ip link show lxcbr0 >/dev/null 2>&1; then
    ip link del lxcbr0 && did "deleted bridge lxcbr0"
else
    did "bridge lxcbr0 not present"
fi
rm -f "$STATE/lxcbr0.created"

# --- the VM kernel cache -----------------------------------------------------------------------------
# Only what setup-engines.sh puts there (boot/vmlinuz-*, modules/e1000.ko); the directory itself goes
# when that leaves it empty, so a mistaken EDGEMETER_KERNEL_CACHE cannot take anything else with it.
if [[ -d $CACHE/boot || -d $CACHE/modules ]]; then
    rm -f "$CACHE"/boot/vmlinuz-* "$CACHE"/modules/e1000.ko
    rmdir "$CACHE/boot" "$CACHE/modules" 2>/dev/null
    rmdir "$CACHE" 2>/dev/null
    did "removed the kernel cache $CACHE"
else
    did "no kernel cache in $CACHE"
fi
rmdir "$STATE" 2>/dev/null
did "done; apt packages are untouched. Check: scripts/setup-engines.sh --check; restore: scripts/setup.sh"
