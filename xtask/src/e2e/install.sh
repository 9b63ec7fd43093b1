#!/bin/sh
# The install scenario of `cargo xtask e2e`, run as root by a oneshot unit once the booted
# Debian has reached multi-user.target: install, upgrade, edit, preseed and purge the two
# revisions with apt-get, recording what happens (see lib.sh).
# Variables (from /e2e/env): PACKAGE, DEB1 and DEB2 (the two revisions, in /e2e),
# PRESEEDED_IMAGE, EDIT_LINE.
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

say "scenario finished"
: >"$OUT/finished"
