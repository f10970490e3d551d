#!/bin/sh
# Installs every build and test dependency of shardex from Debian packages.
# Idempotent and quick when everything is present: it asks dpkg first and runs
# `apt-get update` only when something is missing (a fresh machine may have
# empty package lists). Uses sudo when not run as root.
set -eu

PKGS="build-essential gcc make cmake pkg-config git
libgrpc-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
libleveldb-dev libcmocka-dev libxxhash-dev libjansson-dev
python3 python3-grpcio python3-protobuf
iproute2 procps nftables"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

echo "install-deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps: done" >&2
