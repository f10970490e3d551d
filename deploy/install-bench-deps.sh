#!/bin/sh
# Installs what `make bench` needs beyond the build and test dependencies
# (deploy/install-deps.sh): PostgreSQL 15 and libpq for bench_peers, the peer
# it measures shardex against, and gnuplot for the plots in docs/. Not part of
# `make test`. Idempotent and quick when everything is present: it asks dpkg
# first and runs `apt-get update` only when something is missing. Uses sudo
# when not run as root.
#
# The benchmark starts its own PostgreSQL server in a temporary directory, so
# the package's own service is not wanted: while installing, a policy-rc.d
# (see invoke-rc.d(8)) forbids service starts, as DESIGN.md does for etcd.
set -eu

PKGS="postgresql libpq-dev gnuplot-nox"

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

policy=/usr/sbin/policy-rc.d
made_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# deploy/install-bench-deps.sh: no service starts while installing\nexit 101\n' |
        $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    made_policy=1
fi
cleanup() { [ -z "$made_policy" ] || $SUDO rm -f "$policy"; }
trap cleanup EXIT INT TERM

echo "install-bench-deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-bench-deps: done" >&2
