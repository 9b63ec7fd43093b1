#!/bin/sh
# The node scenario of `cargo xtask vm`, run as root by vm.service once the guest (Debian 13,
# systemd as PID 1, no network device) has reached multi-user.target. It acts and records;
# the xtask judges every outcome after the guest has powered off, from $OUT:
# each step's output in STEP.log and exit status in STEP.rc, the CRI client's records in
# STEP.json, copies of the config and the registry hosts files, listings of the tree, the
# kernel's modules and settings, the registry's log.
#
#   first, the images pushed into the registry on loopback (Debian's docker-registry) with
#     skopeo, from the OCI archives: the guest's only registry, and the mirror of
#     docker.io and registry.k8s.io that debconf is preseeded with;
#   for each set of real binaries in CYCLES: install revision 1, what the next boot would
#     apply of the kernel prerequisites, a pod up over the CRI (its sandbox image pulled at
#     RunPodSandbox, its container's image by PullImage, both through the mirror), a
#     hosts file edited, debconf's answers changed, the kernel settings reset to 0, the
#     upgrade to revision 2 while the pod runs, the pod still there, taken down, and again
#     what the next boot would apply; then
#   on BREAK_SET, the breakages (no sandbox image and no mirror for its registry, no CNI
#     config, the cgroupfs driver), each one undone before the next;
#   on MAJOR_FROM, the major upgrade: the config edited, MAJOR_TO's revision 1 installed
#     over the installed revision 2, a pod brought up on the images pulled before and
#     taken down;
#   and purge, with a hosts file of the administrator's own in place.
#
# Variables (from /vm/env): PACKAGE, CYCLES, DEB_<set>_<revision> (file names in /vm/debs),
# BREAK_SET (one of CYCLES, or empty), MAJOR_FROM and MAJOR_TO (or empty), SANDBOX_IMAGE
# and IMAGE (references) with their archives /vm/images/sandbox.tar and image.tar,
# REGISTRY (the registry's address), SANDBOX_PUSH and IMAGE_PUSH (where the images go in
# it), MIRRORS_INSTALL and MIRRORS_UPGRADE (debconf's registry_mirrors answer before the
# installation and before the upgrades), KERNEL_INSTALL, KERNEL_UPGRADE and KERNEL_MAJOR
# (its kernel_prerequisites answer before each), HOSTS_EDITED and HOSTS_EDIT_LINE (the
# registry whose hosts file the administrator edits, and the line added), ADMIN_HOST (the
# registry the administrator writes a hosts file for), EDIT_LINE and LOG_LINE_SIZE (the
# administrator's edit of the config).
set -u

# shellcheck source=/dev/null
. /vm/env

OUT=/vm/out
CONFIG=/etc/containerd/config.toml
CERTS_D=/etc/containerd/certs.d
# The links that turn the package's modules-load.d and sysctl.d files off.
KERNEL_LINKS="/etc/modules-load.d/$PACKAGE.conf /etc/sysctl.d/99-$PACKAGE.conf"
SYSCTLS="net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables"
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

# Each of KERNEL_LINKS: a link and its target, a file, or absent.
links() {
    for link in $KERNEL_LINKS; do
        if [ -L "$link" ]; then
            echo "$link -> $(readlink "$link")"
        elif [ -e "$link" ]; then
            echo "$link is a file"
        else
            echo "$link absent"
        fi
    done
}

# kernel_state STEP: the modules loaded, the settings the package is about, the links.
# lsmod's stderr is kept apart: libkmod reports there a module that udev is still
# loading, unbuffered, ahead of the header on stdout.
kernel_state() {
    record_stdout "$1.lsmod" lsmod
    # shellcheck disable=SC2086 # the names are words
    record "$1.sysctl" sysctl $SYSCTLS
    record "$1.links" links
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
    record "$1.etc-containerd" find /etc/containerd
    if [ -d "$CERTS_D" ]; then
        cp -a "$CERTS_D" "$OUT/$1.certs.d"
    fi
    kernel_state "$1"
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

# registry_ready: waits until the registry answers /v2/ (it starts with the guest); an
# answer other than 200 (an auth challenge, say) ends the wait at once.
registry_ready() {
    python3 -c '
import sys, time, urllib.error, urllib.request
url = "http://" + sys.argv[1] + "/v2/"
deadline = time.monotonic() + 300
while True:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            print(f"{url}: HTTP {answer.status}")
            break
    except urllib.error.HTTPError as e:
        sys.exit(f"{url}: HTTP {e.code}")
    except OSError as e:
        if time.monotonic() > deadline:
            sys.exit(f"{url}: no answer within 300 s: {e}")
        time.sleep(1)
' "$REGISTRY"
}

# push: the images into the registry, from their archives (whose one ref name is the
# reference's tag).
push() {
    registry_ready \
        && skopeo copy --dest-tls-verify=false \
            "oci-archive:/vm/images/sandbox.tar:${SANDBOX_IMAGE##*:}" "docker://$SANDBOX_PUSH" \
        && skopeo copy --dest-tls-verify=false \
            "oci-archive:/vm/images/image.tar:${IMAGE##*:}" "docker://$IMAGE_PUSH"
}

# The registry's log so far: its access log names each request and its client.
registry_log() {
    journalctl --unit=docker-registry.service --output=cat --no-pager
}

# preseed MIRRORS KERNEL: debconf's registry_mirrors and kernel_prerequisites answers, as
# an administrator gives them before apt-get.
preseed() {
    printf '%s %s %s\n' \
        "$PACKAGE" "$PACKAGE/registry_mirrors" "string $1" \
        "$PACKAGE" "$PACKAGE/kernel_prerequisites" "boolean $2" \
        | debconf-set-selections
}

# undo: what the package's files apply, taken back: br_netfilter unloaded (when loaded)
# and IP forwarding off, as on a fresh boot before systemd applies anything.
undo() {
    if lsmod | grep -q '^br_netfilter '; then
        modprobe -r br_netfilter || return 1
    fi
    sysctl -w net.ipv4.ip_forward=0
}

# boot STEP: what the next boot makes of the shipped modules-load.d and sysctl.d files,
# without a reboot: what they apply is undone, then systemd's own units that apply them at
# boot run again, so that only the units can bring it back.
boot() {
    record "$1.undo" undo
    kernel_state "$1.undone"
    record "$1" systemctl restart systemd-modules-load.service systemd-sysctl.service
    kernel_state "$1"
}

# reset: the three settings at 0 (the bridge ones only while br_netfilter makes them
# exist; the CNI bridge plugin turns IP forwarding on for its pods), so that whether the
# next installation applies the sysctl file shows.
reset() {
    # shellcheck disable=SC2086 # the names are words
    for key in $SYSCTLS; do
        if [ -e "/proc/sys/$(echo "$key" | tr . /)" ]; then
            sysctl -w "$key=0" || return 1
        fi
    done
}

# edit_hosts SET: the administrator's edit of one generated hosts file, and a copy of it.
edit_hosts() {
    printf '%s\n' "$HOSTS_EDIT_LINE" >>"$CERTS_D/$HOSTS_EDITED/hosts.toml" \
        && cp "$CERTS_D/$HOSTS_EDITED/hosts.toml" "$OUT/$1.hosts-edited.toml"
}

# import_sandbox: ctr imports the sandbox image's archive into the CRI's namespace, under
# its reference (the archive's one ref name is the tag; ctr prefixes the rest).
import_sandbox() {
    ctr --namespace k8s.io images import --base-name "${SANDBOX_IMAGE%:*}" /vm/images/sandbox.tar \
        && ctr --namespace k8s.io images list
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

# purge STEP: apt-get purge with a hosts file of the administrator's own in place, what is
# left; then the administrator's file goes, and the tree after it is listed; then what an
# administrator deletes by hand to start afresh (README: purge keeps images, and the CNI
# plugins' state).
purge() {
    record "$1.admin-hosts" sh -c "mkdir -p '$CERTS_D/$ADMIN_HOST' && printf 'server = \"https://%s\"\n' '$ADMIN_HOST' >'$CERTS_D/$ADMIN_HOST/hosts.toml' && cp '$CERTS_D/$ADMIN_HOST/hosts.toml' '$OUT/$1.admin-hosts.toml'"
    apt_get "$1" purge "$PACKAGE"
    record "$1.remains" remains
    rm -rf /etc/containerd
    snapshot "$1"
    rm -rf /var/lib/containerd /var/lib/cni /var/log/pods
}

# cycle SET: one set's install, pod, upgrade under the running pod, pod down, purge.
cycle() {
    eval "deb1=\$DEB_$1_1 deb2=\$DEB_$1_2"
    record "$1.install.preseed" preseed "$MIRRORS_INSTALL" "$KERNEL_INSTALL"
    # shellcheck disable=SC2154 # set by the eval above
    apt_get "$1.install" install "/vm/debs/$deb1"
    boot "$1.boot"
    cri "$1.up" up "$1.state"
    record "$1.up.registry" registry_log
    record "$1.before-upgrade.main-pid" main_pid
    record "$1.hosts-edit" edit_hosts "$1"
    record "$1.upgrade.reset" reset
    record "$1.upgrade.preseed" preseed "$MIRRORS_UPGRADE" "$KERNEL_UPGRADE"
    # shellcheck disable=SC2154
    apt_get "$1.upgrade" install "/vm/debs/$deb2"
    cri "$1.after" after-upgrade "$1.state"
    cri "$1.down" down "$1.state"
    boot "$1.down.boot"
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
    record major.upgrade.reset reset
    record major.upgrade.preseed preseed "$MIRRORS_UPGRADE" "$KERNEL_MAJOR"
    # shellcheck disable=SC2154 # set by the eval above
    apt_get major.upgrade install "/vm/debs/$to"
    cri major.up up major.state
    record major.up.registry registry_log
    cri major.down down major.state
}

# Each breakage restarts containerd, so that it starts from what was broken: its view of
# images, CNI config and cgroup driver is then the broken one, whatever it noticed before.
breakages() {
    mkdir -p "$ASIDE"
    # The registry the sandbox image is named after.
    sandbox_registry=${SANDBOX_IMAGE%%/*}

    # The sandbox image is gone, and its registry has no mirror: the pod cannot start, as
    # the node has no route to registry.k8s.io itself.
    record break.no-sandbox-image.remove sh -c "ctr --namespace k8s.io images rm '$SANDBOX_IMAGE' \
        && mv '$CERTS_D/$sandbox_registry' '$ASIDE/' && ls -a '$CERTS_D' \
        && systemctl restart containerd.service"
    record break.no-sandbox-image.images ctr --namespace k8s.io images list
    cri break.no-sandbox-image.up up break.no-sandbox-image.state
    cri break.no-sandbox-image.down down break.no-sandbox-image.state
    # The air gap's other way (README): the image imported with ctr. The registry's hosts
    # file stays aside until the breakages are undone, so that the pods until then can only
    # run on the imported image.
    record break.no-sandbox-image.restore import_sandbox

    # No CNI config.
    record break.no-cni.remove sh -c "mv '$CONFLIST' '$ASIDE/' && ls -la /etc/cni/net.d \
        && systemctl restart containerd.service"
    cri break.no-cni.up up break.no-cni.state
    cri break.no-cni.down down break.no-cni.state
    record break.no-cni.restore sh -c "mv '$ASIDE/${CONFLIST##*/}' /etc/cni/net.d/ \
        && systemctl restart containerd.service"

    # The cgroupfs driver where the kubelet asks for systemd's.
    record break.cgroupfs.edit sh -c "cp '$CONFIG' '$ASIDE/' \
        && sed -i 's/SystemdCgroup = true/SystemdCgroup = false/' '$CONFIG' \
        && systemctl restart containerd.service && ls -a '$CERTS_D'"
    state break.cgroupfs.edit
    cri break.cgroupfs.up up break.cgroupfs.state
    cri break.cgroupfs.down down break.cgroupfs.state
    record break.cgroupfs.restore sh -c "cp '$ASIDE/${CONFIG##*/}' '$CONFIG' \
        && mv '$ASIDE/$sandbox_registry' '$CERTS_D/' && systemctl restart containerd.service"
    state break.restored
    rm -rf "$ASIDE"
}

mkdir -p "$OUT"
say "scenario started"
: >"$OUT/started"
say "push: the images into the registry at $REGISTRY"
record push push
# The node before the package is the booted one with udev's coldplug done: the unit
# starts after multi-user.target, while udev may still be loading modules (floppy, late,
# under emulation).
record settle udevadm settle --timeout=300
snapshot before
kernel_state before
for set in $CYCLES; do
    cycle "$set"
done
say "finished"
: >"$OUT/finished"
