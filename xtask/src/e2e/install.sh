#!/bin/sh
# The install scenario of `cargo xtask e2e`, run as root by a oneshot unit once the booted
# Debian has reached multi-user.target. It only acts and records: each step's output goes
# to $OUT/STEP.log and its exit status to $OUT/STEP.rc, and the xtask judges them after
# the guest has powered off. Progress lines go to the console, which the xtask echoes.
# Variables (from /e2e/env): PACKAGE, DEB1 and DEB2 (the two revisions, in /e2e),
# PRESEEDED_IMAGE, EDIT_LINE.
#
# debconf's teletype frontend with no input, not the noninteractive one: a question at
# the default priority (a ucf conflict, say) then prints its text into the apt log, where
# the xtask looks for it, instead of being answered silently. dpkg's own conffile prompt
# prints whatever the frontend.
set -u

# shellcheck source=/dev/null
. /e2e/env
OUT=/e2e/out
CONFIG=/etc/containerd/config.toml
export DEBIAN_FRONTEND=teletype LANG=C.UTF-8
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() {
    printf 'e2e: %s\n' "$*" >/dev/console
}

# record STEP COMMAND…: runs COMMAND with no input, its output in STEP.log, status in STEP.rc.
record() {
    record_step=$1
    shift
    "$@" >"$OUT/$record_step.log" 2>&1 </dev/null
    echo "$?" >"$OUT/$record_step.rc"
}

# snapshot NAME: every path on the root filesystem but /e2e, sorted, in NAME.tree.
snapshot() {
    find / -xdev -path /e2e -prune -o -print | LC_ALL=C sort >"$OUT/$1.tree"
}

# state STEP: what an administrator looks at after STEP.
state() {
    record "$1.is-enabled" systemctl is-enabled containerd.service
    record "$1.is-active" systemctl is-active containerd.service
    record "$1.ctr-version" ctr version
    record "$1.config-dump" containerd config dump
    # shellcheck disable=SC2016 # dpkg-query's own ${Field} syntax
    record "$1.dpkg-status" dpkg-query -W -f='${Status} ${Version}\n' "$PACKAGE"
    record "$1.etc-containerd" ls -la /etc/containerd
    for state_file in "$CONFIG" "$CONFIG.ucf-dist"; do
        if [ -e "$state_file" ]; then
            cp "$state_file" "$OUT/$1.${state_file##*/}"
        fi
    done
}

# apt_get STEP ARGS…: apt-get -y ARGS…, then the state after it.
apt_get() {
    apt_step=$1
    shift
    say "$apt_step: apt-get $*"
    record "$apt_step" apt-get -y "$@"
    state "$apt_step"
}

preseed() {
    printf '%s %s/sandbox_image string %s\n' "$PACKAGE" "$PACKAGE" "$PRESEEDED_IMAGE" \
        | debconf-set-selections
}

edit() {
    printf '%s\n' "$EDIT_LINE" >>"$CONFIG" && cp "$CONFIG" "$OUT/edited.config.toml"
}

# The records of debconf and ucf that must be gone after a purge.
records() {
    grep -h "^Name: $PACKAGE/" /var/cache/debconf/config.dat /var/cache/debconf/templates.dat
    ucfq --with-colons "$PACKAGE"
}

# purge STEP: apt-get purge, what is left of the package, and the tree after it.
purge() {
    apt_get "$1" purge "$PACKAGE"
    record "$1.records" records
    snapshot "$1"
}

say "booted; recording the tree before installation"
snapshot before

# The defaults: installed, then upgraded untouched (revision 2 has a new default), purged.
apt_get install install "/e2e/$DEB1"
apt_get upgrade install "/e2e/$DEB2"
purge purge

# An edited config meets a newly generated one: kept, without a question.
apt_get reinstall install "/e2e/$DEB1"
say "editing $CONFIG"
record edit edit
apt_get edited-upgrade install "/e2e/$DEB2"
purge edited-purge

# A preseeded answer: in effect on a fresh installation, and kept on upgrade.
say "preseeding $PACKAGE/sandbox_image"
record preseed preseed
apt_get preseeded-install install "/e2e/$DEB1"
apt_get preseeded-upgrade install "/e2e/$DEB2"
purge final-purge

say "scenario finished"
: >"$OUT/finished"
