#!/bin/sh
# Helpers every guest scenario of `cargo xtask e2e` sources (as /e2e/lib.sh), after
# /e2e/env, which sets PACKAGE. A scenario only acts and records: each step's output goes to
# $OUT/STEP.log and its exit status to $OUT/STEP.rc, and the xtask judges them after the
# guest has powered off. Progress lines go to the console, which the xtask echoes.
#
# debconf's teletype frontend with no input, not the noninteractive one: a question at the
# default priority (a ucf conflict, say) then prints its text into the apt log, where the
# xtask looks for it, instead of being answered silently. Debian 13's teletype frontend
# refuses to start unless its input is a terminal (it falls back to noninteractive), so
# apt-get and dpkg run on a terminal whose input ends at once (on_tty). dpkg's own
# conffile prompt prints whatever the frontend.

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

# on_tty COMMAND…: COMMAND on a terminal of its own (script(1)), its input at its end.
on_tty() {
    on_tty_command=
    for on_tty_arg in "$@"; do
        on_tty_command="$on_tty_command '$(printf '%s' "$on_tty_arg" | sed "s/'/'\\\\''/g")'"
    done
    script -qec "$on_tty_command" /dev/null
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
    record "$apt_step" on_tty apt-get -y "$@"
    state "$apt_step"
}

# ask_host NAME: has the xtask run its hook NAME on the host and waits for it to finish;
# fails when the hook did. The xtask watches /e2e/requests while the guest runs.
ask_host() {
    say "asking the host: $1"
    mkdir -p /e2e/requests
    : >"/e2e/requests/$1"
    while [ ! -e "/e2e/replies/$1" ]; do
        sleep 0.2
    done
    [ "$(cat "/e2e/replies/$1")" = ok ]
}
