#!/bin/sh
# The container check of `cargo xtask e2e`: runs a container with the packaged containerd,
# runc and CNI bridge config. The xtask starts it with `unshare --net --mount --pid --fork`,
# so it runs in namespaces of its own: every process it starts dies with the PID namespace
# when it exits, every mount with the mount namespace, and the cni0 bridge, the veth pair,
# addresses and iptables rules with the network namespace. Traffic only flows between the
# container and its gateway, both inside that network namespace.
#
# ROOT is a throwaway Debian tree (the boot rootfs): the package is installed into it with
# dpkg, so its postinst generates the config, and containerd runs chrooted there — ctr
# --cni reads /etc/cni/net.d and /opt/cni/bin, which must be the package's and not the
# host's; host-local IPAM keeps its state in ROOT/var/lib/cni. Each step's output goes to
# ROOT/e2e/out/STEP.log and its status to STEP.rc; the first failure ends the script.
# Usage: container.sh ROOT PACKAGE CGROUP (in ROOT: /e2e/package.deb, /e2e/image.tar)
set -u

ROOT=$1
PACKAGE=$2
# The container's cgroup (cgroupfs driver): absolute, so the xtask knows where to look.
CGROUP=$3
OUT=$ROOT/e2e/out
SOCKET=/e2e/containerd/containerd.sock
IMAGE=cs-e2e/busybox:e2e

say() {
    printf 'e2e: %s\n' "$*"
}

# step STEP COMMAND…: runs COMMAND with no input, output in STEP.log, status in STEP.rc;
# stops the script when it fails.
step() {
    step_name=$1
    shift
    "$@" >"$OUT/$step_name.log" 2>&1 </dev/null
    step_rc=$?
    echo "$step_rc" >"$OUT/$step_name.rc"
    if [ "$step_rc" != 0 ]; then
        exit 1
    fi
    say "$step_name"
}

# in_root COMMAND…: COMMAND in ROOT, with a clean environment.
in_root() {
    chroot "$ROOT" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

ctr() {
    in_root ctr --address "$SOCKET" "$@"
}

# The namespace's own filesystems: ROOT a mount point (runc changes the propagation of
# its root), a procfs and a sysfs of this PID and network namespace, the host's cgroups
# (runc's cgroupfs driver), /dev, and a /run of its own.
mounts() {
    ip link set lo up \
        && mount --bind "$ROOT" "$ROOT" \
        && mount -t proc proc "$ROOT/proc" \
        && mount -t sysfs sysfs "$ROOT/sys" \
        && mount --rbind /sys/fs/cgroup "$ROOT/sys/fs/cgroup" \
        && mount --rbind /dev "$ROOT/dev" \
        && mount -t tmpfs tmpfs "$ROOT/run"
}

# The postinst generates the config; the cgroupfs driver is preseeded, since nothing
# here runs systemd.
install_package() {
    echo "$PACKAGE $PACKAGE/systemd_cgroup boolean false" | in_root debconf-set-selections \
        && in_root dpkg -i /e2e/package.deb
}

start_containerd() {
    mkdir -p "$ROOT/e2e/containerd"
    in_root containerd --config /etc/containerd/config.toml \
        --root /e2e/containerd/root --state /e2e/containerd/state --address "$SOCKET" \
        >"$OUT/containerd.log" 2>&1 </dev/null &
    CONTAINERD=$!
    waited=0
    while [ ! -S "$ROOT$SOCKET" ]; do
        if ! kill -0 "$CONTAINERD" 2>/dev/null || [ "$waited" -ge 100 ]; then
            echo "containerd did not open $SOCKET within 20 s; its log:"
            cat "$OUT/containerd.log"
            return 1
        fi
        sleep 0.2
        waited=$((waited + 1))
    done
}

stop_containerd() {
    if [ -n "${CONTAINERD:-}" ]; then
        kill "$CONTAINERD" 2>/dev/null
        wait "$CONTAINERD"
        stop_rc=$?
        CONTAINERD=
        # containerd ends on SIGTERM by the signal's default action once it has shut down.
        case "$stop_rc" in
            0 | 143) ;;
            *)
                echo "containerd exited with status $stop_rc on SIGTERM; its log:"
                cat "$OUT/containerd.log"
                return 1
                ;;
        esac
    fi
}
trap stop_containerd EXIT

mkdir -p "$OUT"
step mounts mounts
step install install_package
step config-dump in_root containerd config dump
step start-containerd start_containerd
step ctr-version ctr version
step import ctr images import --base-name cs-e2e/busybox /e2e/image.tar
step run ctr run --rm --cni --cgroup "$CGROUP" "$IMAGE" cs-e2e \
    sh -c 'ip -4 addr show eth0 && ping -c 1 -W 5 10.88.0.1'
step bridge ip -4 addr show cni0
step stop-containerd stop_containerd
