#!/bin/sh
# The apt repository scenario of `cargo xtask e2e`: a client set up the way `repo publish`
# tells users to (keyring and .sources fetched from the repository, apt's own downloader
# standing in for curl), `apt-get install` from the signed repository, then a second
# publish with a newer revision, picked up by `apt-get upgrade`. The guest shares the
# host's network namespace and reaches only the repository the xtask serves on loopback:
# Debian's own sources are set aside (the package's dependencies are in the rootfs).
# Variables (from /e2e/env): PACKAGE, REPO_URL.
set -u

# shellcheck source=/dev/null
. /e2e/env
# shellcheck source=lib.sh
. /e2e/lib.sh

fetch() {
    /usr/lib/apt/apt-helper download-file "$REPO_URL/$1" "$2" && chmod 0644 "$2"
}

say "setting up the client from $REPO_URL"
record sources-aside mv /etc/apt/sources.list /e2e/debian-sources.list
record keyring fetch containerd-stack.gpg /etc/apt/keyrings/containerd-stack.gpg
record sources fetch containerd-stack.sources /etc/apt/sources.list.d/containerd-stack.sources
say "update: apt-get update"
record update apt-get update
apt_get install install "$PACKAGE"

if ask_host publish-revision-2; then
    echo 0 >"$OUT/publish.rc"
else
    echo 1 >"$OUT/publish.rc"
fi
say "update-2: apt-get update"
record update-2 apt-get update
apt_get upgrade upgrade

say "scenario finished"
: >"$OUT/finished"
