#!/bin/sh
# test_units.sh BUILD_DIR: the systemd units in deploy/systemd pass
# `systemd-analyze verify` with nothing to say (it exits 0 on an unknown key or
# a bad value and only prints them, so any output fails), with ExecStart
# pointed at this build's binaries (verify checks that the command exists).
# A unit with a misspelt key must fail, so that the check is known to bite.
set -eu
build=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
command -v systemd-analyze >/dev/null 2>&1 || {
    echo "test_units: systemd-analyze is missing (Debian's systemd package)" >&2
    exit 1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# verify UNIT_FILE: 0 when systemd-analyze accepts it silently.
verify() {
    out=$(systemd-analyze verify --man=no "$1" 2>&1) && [ -z "$out" ] && return 0
    printf '%s\n' "$out" >&2
    return 1
}

for unit in "$src"/deploy/systemd/*.service; do
    name=$(basename "$unit")
    sed -e "s|/usr/bin/shardex-worker|$build/worker/shardex-worker|" \
        -e "s|/usr/bin/shardex-coordinator|$build/coordinator/shardex-coordinator|" \
        "$unit" >"$tmp/$name"
    grep -q '^Type=notify$' "$tmp/$name" || { echo "test_units: $name is not Type=notify" >&2; exit 1; }
    verify "$tmp/$name" || { echo "test_units: $name: systemd-analyze verify complained" >&2; exit 1; }
    echo "ok: $name"
done

sed 's/^NoNewPrivileges=/NoNewPrivilegez=/' "$tmp/shardex-worker.service" >"$tmp/misspelt.service"
if verify "$tmp/misspelt.service" 2>/dev/null; then
    echo "test_units: a misspelt key passed: the check does not bite" >&2
    exit 1
fi
echo "ok: a misspelt key is caught"
