#!/bin/sh
# The install scenario of `cargo xtask e2e`, run as root by a oneshot unit once the booted
# Debian has reached multi-user.target: install, upgrade, edit, preseed and purge the two
# revisions with apt-get, recording what happens (see lib.sh).
# Variables (from /e2e/env): PACKAGE, DEB1 and DEB2 (the two revisions, in /e2e),
# PRESEEDED_IMAGE, EDIT_LINE, OLD_DEBS (Debian's own containerd and runc packages, in /e2e,
# that the package replaces).
set -u

# shellcheck source=/dev/null
. /e2e/env
# shellcheck source=lib.sh
. /e2e/lib.sh

# snapshot NAME: every path on the root filesystem but /e2e, sorted, in NAME.tree.
snapshot() {
    find / -xdev -path /e2e -prune -o -print | LC_ALL=C sort >"$OUT/$1.tree"
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

# The defaults: installed, upgraded untouched (revision 2 has a new default), removed,
# then purged.
apt_get install install "/e2e/$DEB1"
apt_get upgrade install "/e2e/$DEB2"
apt_get remove remove "$PACKAGE"
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

# Coming from Debian's containerd, whose config.toml is a conffile: an edited one is kept
# and an unedited one replaced by the generated config; either way an upgrade treats the
# file as one the package generated, and purging the replaced package afterwards leaves
# the file containerd runs with in place.
# diversion STEP: which package diverts $CONFIG and the replaced package's unit (none: an
# empty log), and whether this package's unit is there.
diversion() {
    record "$1.diversion" dpkg-divert --listpackage "$CONFIG"
    record "$1.unit-diversion" dpkg-divert --listpackage "$OLD_UNIT"
    record "$1.unit" ls "$UNIT"
}
# migrate PREFIX HOW: Debian's containerd, then this package over it with HOW: apt-get
# (which removes the replaced packages before unpacking this one) or dpkg (which removes
# them after: the unit's old name, /lib/systemd/system/…, is then deleted while this
# package's unit is already there under its other name); then the upgrade to revision 2,
# the old packages purged and the package purged.
migrate() {
    # shellcheck disable=SC2086 # OLD_DEBS is a list of paths
    apt_get "$1-old" install $OLD_DEBS
    if [ "$1" = migrate-edited ]; then
        say "editing Debian's $CONFIG"
        printf '%s\n' "$EDIT_LINE" >>"$CONFIG"
        cp "$CONFIG" "$OUT/$1.edited.config.toml"
    fi
    if [ "$2" = dpkg ]; then
        say "$1: dpkg -i /e2e/$DEB1"
        record "$1" on_tty dpkg -i "/e2e/$DEB1"
        state "$1"
    else
        apt_get "$1" install "/e2e/$DEB1"
    fi
    diversion "$1"
    apt_get "$1-upgrade" install "/e2e/$DEB2"
    say "$1: purging the replaced packages"
    record "$1-purge-old" on_tty dpkg --purge containerd runc
    state "$1-purge-old"
    record "$1-restart" systemctl restart containerd.service
    state "$1-restart"
    apt_get "$1-purge" purge "$PACKAGE"
    diversion "$1-purge"
}
OLD_UNIT=/lib/systemd/system/containerd.service
UNIT=/usr/lib/systemd/system/containerd.service
migrate migrate-edited apt-get
# The edited file was the administrator's, so it outlived the purge; they remove it.
rm -f "$CONFIG"
migrate migrate-default dpkg

say "scenario finished"
: >"$OUT/finished"
