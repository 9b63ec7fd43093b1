#!/bin/sh
# The node scenario of `cargo xtask vm`, run as root by vm.service once the guest (Debian 13,
# systemd as PID 1, no network device) has reached multi-user.target. It acts and records;
# the xtask judges every outcome after the guest has powered off, from $OUT:
# each step's output in STEP.log and exit status in STEP.rc, the CRI client's records in
# STEP.json, copies of the config, listings of the tree.
#
#   for each set of real binaries in CYCLES: install revision 1, import the images, bring a
#     pod up over the CRI, upgrade to revision 2 while it runs, check it is still there,
#     take it down; then
#   on BREAK_SET, the breakages (no sandbox image, no CNI config, the cgroupfs driver), each
#     one undone before the next;
#   on MAJOR_FROM, the major upgrade: the config edited, MAJOR_TO's revision 1 installed
#     over the installed revision 2, a pod brought up on the images imported before and
#     taken down;
#   and purge.
#
# Variables (from /vm/env): PACKAGE, CYCLES, DEB_<set>_<revision> (file names in /vm/debs),
# BREAK_SET (one of CYCLES, or empty), MAJOR_FROM and MAJOR_TO (or empty), SANDBOX_IMAGE
# and IMAGE (references) with their archives /vm/images/sandbox.tar and image.tar,
# EDIT_LINE and LOG_LINE_SIZE (the administrator's edit).
set -u

# shellcheck source=/dev/null
. /vm/env

OUT=/vm/out
CONFIG=/etc/containerd/config.toml
CONFLIST=/etc/cni/net.d/10-containerd-net.conflist
# Where the breakages keep what they take away.
ASIDE=/root/aside
export DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# say TEXT: a progress line on the console, after the guest's uptime in seconds.
say() {
    printf 'vm: [%s] %s\n' "$(cut -d ' ' -f 1 /proc/uptime)" "$*" >/dev/console
}

# record STEP COMMAND…: runs COMMAND with no input, its output in STEP.log, status in STEP.rc.
record() {
    record_step=$1
    shift
    "$@" >"$OUT/$record_step.log" 2>&1 </dev/null
    echo "$?" >"$OUT/$record_step.rc"
}

# record_stdout STEP COMMAND…: as record, with stderr apart in STEP.err (for output that
# is parsed, such as a TOML dump, beside warnings).
record_stdout() {
    record_step=$1
    shift
    "$@" >"$OUT/$record_step.log" 2>"$OUT/$record_step.err" </dev/null
    echo "$?" >"$OUT/$record_step.rc"
}

main_pid() {
    systemctl show --property=MainPID --value containerd.service
}

# state STEP: what an administrator looks at after STEP.
state() {
    record "$1.is-active" systemctl is-active containerd.service
    record "$1.main-pid" main_pid
    record "$1.ctr-version" ctr version
    record_stdout "$1.config-dump" containerd config dump
    # shellcheck disable=SC2016 # dpkg-query's own ${Field} syntax
    record "$1.dpkg-status" dpkg-query -W -f='${Status} ${Version}\n' "$PACKAGE"
    if [ -e "$CONFIG" ]; then
        cp "$CONFIG" "$OUT/$1.config.toml"
    fi
}

# apt_get STEP ARGS…: apt-get -y ARGS…, then the state after it.
apt_get() {
    apt_step=$1
    shift
    say "$apt_step: apt-get $*"
    record "$apt_step" apt-get -y "$@"
    state "$apt_step"
}

# cri STEP PHASE STATE: the CRI client's PHASE, its record in STEP.json.
cri() {
    say "$1: CRI $2"
    record "$1" python3 /vm/cri.py "$2" "$OUT/$3" "$OUT/$1.json" \
        --sandbox-image "$SANDBOX_IMAGE" --image "$IMAGE"
}

# import STEP ARCHIVE…: ctr imports each image archive into the CRI's namespace, under
# its reference.
import_images() {
    for archive in "$@"; do
        case "$archive" in
            sandbox) ref=$SANDBOX_IMAGE ;;
            *) ref=$IMAGE ;;
        esac
        # The archive's one ref name is the reference's tag; ctr prefixes the rest.
        ctr --namespace k8s.io images import --base-name "${ref%:*}" "/vm/images/$archive.tar" \
            || return 1
    done
    ctr --namespace k8s.io images list
}

# snapshot NAME: every path on the root filesystem, sorted, in NAME.tree (-xdev leaves out
# /vm, /proc, /sys, /dev, /run and /tmp, which are other filesystems).
snapshot() {
    find / -xdev -print | LC_ALL=C sort >"$OUT/$1.tree"
}

# What of containerd is still running or mounted: processes by name, mounts and cgroups.
remains() {
    for comm in /proc/[0-9]*/comm; do
        read -r name <"$comm" 2>/dev/null || continue
        case "$name" in
            containerd* | runc* | sleep) echo "process ${comm%/comm}: $name" ;;
        esac
    done
    awk '$5 ~ /containerd|kubepods/ { print "mount " $5 }' /proc/self/mountinfo
    find /sys/fs/cgroup -name 'cri-containerd-*' -printf 'cgroup %p\n'
}

# purge STEP: apt-get purge, what is left, the tree after it; then what an administrator
# deletes by hand to start afresh (README: purge keeps images, and the CNI plugins' state).
purge() {
    apt_get "$1" purge "$PACKAGE"
    record "$1.remains" remains
    snapshot "$1"
    rm -rf /var/lib/containerd /var/lib/cni /var/log/pods
}

# cycle SET: one set's install, pod, upgrade under the running pod, pod down, purge.
cycle() {
    eval "deb1=\$DEB_$1_1 deb2=\$DEB_$1_2"
    # shellcheck disable=SC2154 # set by the eval above
    apt_get "$1.install" install "/vm/debs/$deb1"
    record "$1.import" import_images sandbox image
    cri "$1.up" up "$1.state"
    record "$1.before-upgrade.main-pid" main_pid
    # shellcheck disable=SC2154
    apt_get "$1.upgrade" install "/vm/debs/$deb2"
    cri "$1.after" after-upgrade "$1.state"
    cri "$1.down" down "$1.state"
    if [ "$1" = "$BREAK_SET" ]; then
        breakages
    fi
    if [ "$1" = "$MAJOR_FROM" ]; then
        major
    fi
    purge "$1.purge"
}

# The administrator's edit of the generated config: a comment, and a value changed.
edit() {
    printf '%s\n' "$EDIT_LINE" >>"$CONFIG" \
        && sed -i "s/^\( *max_container_log_line_size = \).*/\1$LOG_LINE_SIZE/" "$CONFIG" \
        && grep -q "max_container_log_line_size = $LOG_LINE_SIZE" "$CONFIG" \
        && systemctl restart containerd.service \
        && cp "$CONFIG" "$OUT/major.edited.config.toml"
}

major() {
    eval "to=\$DEB_${MAJOR_TO}_1"
    say "major.edit: editing $CONFIG"
    record major.edit edit
    state major.edit
    # shellcheck disable=SC2154 # set by the eval above
    apt_get major.upgrade install "/vm/debs/$to"
    cri major.up up major.state
    cri major.down down major.state
}

# Each breakage restarts containerd, so that it starts from what was broken: its view of
# images, CNI config and cgroup driver is then the broken one, whatever it noticed before.
breakages() {
    mkdir -p "$ASIDE"

    # The sandbox image is gone: the pod cannot start without the network.
    record break.no-sandbox-image.remove sh -c "ctr --namespace k8s.io images rm '$SANDBOX_IMAGE' && systemctl restart containerd.service"
    record break.no-sandbox-image.images ctr --namespace k8s.io images list
    cri break.no-sandbox-image.up up break.no-sandbox-image.state
    cri break.no-sandbox-image.down down break.no-sandbox-image.state
    record break.no-sandbox-image.restore import_images sandbox

    # No CNI config.
    record break.no-cni.remove sh -c "mv '$CONFLIST' '$ASIDE/' && ls -la /etc/cni/net.d && systemctl restart containerd.service"
    cri break.no-cni.up up break.no-cni.state
    cri break.no-cni.down down break.no-cni.state
    record break.no-cni.restore sh -c "mv '$ASIDE/${CONFLIST##*/}' /etc/cni/net.d/ && systemctl restart containerd.service"

    # The cgroupfs driver where the kubelet asks for systemd's.
    record break.cgroupfs.edit sh -c "cp '$CONFIG' '$ASIDE/' && sed -i 's/SystemdCgroup = true/SystemdCgroup = false/' '$CONFIG' && systemctl restart containerd.service"
    state break.cgroupfs.edit
    cri break.cgroupfs.up up break.cgroupfs.state
    cri break.cgroupfs.down down break.cgroupfs.state
    record break.cgroupfs.restore sh -c "cp '$ASIDE/${CONFIG##*/}' '$CONFIG' && systemctl restart containerd.service"
    state break.restored
    rm -rf "$ASIDE"
}

mkdir -p "$OUT"
say "scenario started"
: >"$OUT/started"
snapshot before
for set in $CYCLES; do
    cycle "$set"
done
say "finished"
: >"$OUT/finished"
