#!/bin/bash
# in_root.sh STEP: the checks test_packages.sh runs inside the Debian root
# (chrooted, in namespaces of their own: PID, mounts and network, so that the
# daemons it starts die with it and their ports clash with nothing on the
# host). Not a test by itself. STEP:
#   installed  after `dpkg -i`: every binary's --help, the user, the conffiles,
#              the units (not enabled), the state directories; then the daemons
#              with the packaged configurations, unchanged, as the shardex user,
#              until `shardex status` sees the worker;
#   removed    after `dpkg -r`: binaries gone; configuration and state kept;
#   purged     after `dpkg -P`: configuration and state gone, the user kept.
set -euo pipefail

fail() {
    echo "in_root: $*" >&2
    exit 1
}

# owner_mode PATH: "user:group mode", e.g. "shardex:shardex 750".
owner_mode() { stat -c '%U:%G %a' "$1"; }

check_installed() {
    local bin role conf unit out
    for bin in shardex shardex-coordinator shardex-worker; do
        out=$("$bin" --help 2>&1) || fail "$bin --help exited $?"
        [ -n "$out" ] || fail "$bin --help printed nothing"
        echo "ok: $bin --help"
    done

    [ -x /usr/share/shardex/certs.sh ] || fail "/usr/share/shardex/certs.sh is missing"
    out=$(/usr/share/shardex/certs.sh --help) || fail "/usr/share/shardex/certs.sh --help exited $?"
    [[ $out == *"certs.sh DIR ca"* ]] || fail "/usr/share/shardex/certs.sh --help: no usage"
    [ -f /usr/share/shardex/shardex.protoset ] || fail "/usr/share/shardex/shardex.protoset is missing"
    echo "ok: /usr/share/shardex: certs.sh, shardex.protoset"

    local pw
    pw=$(getent passwd shardex) || fail "no shardex user"
    IFS=: read -r _ _ uid gid _ home shell <<<"$pw"
    [ "$uid" -lt 1000 ] || fail "shardex is not a system user (uid $uid)"
    [ "$(getent group shardex | cut -d: -f3)" = "$gid" ] || fail "shardex's group is not shardex"
    [ "$home" = /var/lib/shardex ] || fail "shardex's home is $home"
    [ "$shell" = /usr/sbin/nologin ] || fail "shardex's shell is $shell"
    echo "ok: system user shardex (uid $uid), home $home, shell $shell"

    [ "$(owner_mode /var/lib/shardex)" = "root:root 755" ] ||
        fail "/var/lib/shardex is $(owner_mode /var/lib/shardex)"
    for role in coordinator worker; do
        conf=/etc/shardex/$role.conf
        unit=/lib/systemd/system/shardex-$role.service
        [ -f "$conf" ] || fail "$conf is missing"
        dpkg-query -W -f='${Conffiles}\n' "shardex-$role" | grep -q "^ $conf " ||
            fail "$conf is not a conffile of shardex-$role"
        [ -f "$unit" ] || fail "$unit is missing"
        grep -qx "ExecStart=/usr/bin/shardex-$role --config $conf" "$unit" ||
            fail "$unit does not run /usr/bin/shardex-$role with $conf"
        # Installed, not enabled (deploy/debian/daemon.postinst.in says why).
        [ ! -e "/etc/systemd/system/multi-user.target.wants/shardex-$role.service" ] ||
            fail "shardex-$role.service was enabled"
        [ "$(owner_mode "/var/lib/shardex/$role")" = "shardex:shardex 750" ] ||
            fail "/var/lib/shardex/$role is $(owner_mode "/var/lib/shardex/$role")"
        echo "ok: shardex-$role: conffile $conf, unit $unit (not enabled), state dir"
    done
    run_daemons
}

# The daemons as their units would run them (user, configuration, state
# directory), but without systemd: the root has none, and PID 1 here is not
# systemd anyway. The coordinator listens on 127.0.0.1:7000 and the worker on
# 127.0.0.1:7100, as the packaged files say: this network namespace is ours.
run_daemons() {
    local log=/tmp/daemons.log i t0
    t0=$(date +%s%N)
    runuser -u shardex -- shardex-coordinator --config /etc/shardex/coordinator.conf \
        >>"$log" 2>&1 &
    runuser -u shardex -- shardex-worker --config /etc/shardex/worker.conf >>"$log" 2>&1 &
    for i in $(seq 1 150); do
        if shardex --timeout-ms 300 status --json 2>/dev/null |
            grep -Eq '"address": *"127\.0\.0\.1:7100"'; then
            break
        fi
        [ "$i" -lt 150 ] || { cat "$log" >&2; fail "no worker in shardex status after 150 tries"; }
        sleep 0.1
    done
    echo "ok: the daemons run as shardex with the packaged configurations;" \
        "shardex status saw the worker after $((($(date +%s%N) - t0) / 1000000)) ms"
    t0=$(date +%s%N)
    kill %1 %2
    wait || true
    echo "ok: both stopped on SIGTERM after $((($(date +%s%N) - t0) / 1000000)) ms"
    # What they wrote belongs to shardex (purge must remove it: test_packages.sh).
    local stray
    stray=$(find /var/lib/shardex/coordinator /var/lib/shardex/worker ! -user shardex)
    [ -z "$stray" ] || fail "not owned by shardex: $stray"
    [ -n "$(ls -A /var/lib/shardex/worker)" ] || fail "the worker wrote nothing in its state dir"
}

check_removed() {
    local bin role
    for bin in shardex shardex-coordinator shardex-worker; do
        ! command -v "$bin" >/dev/null || fail "$bin is still installed"
    done
    for role in coordinator worker; do
        [ -f "/etc/shardex/$role.conf" ] || fail "remove deleted /etc/shardex/$role.conf"
        [ -n "$(ls -A "/var/lib/shardex/$role")" ] || fail "remove deleted $role's state"
    done
    echo "ok: removed: binaries gone, configurations and state kept"
}

check_purged() {
    [ ! -e /etc/shardex ] || fail "purge left /etc/shardex"
    [ ! -e /var/lib/shardex ] || fail "purge left /var/lib/shardex"
    getent passwd shardex >/dev/null || fail "purge removed the shardex user"
    echo "ok: purged: configurations and state gone, the shardex user kept"
}

case "${1:-}" in
installed) check_installed ;;
removed) check_removed ;;
purged) check_purged ;;
*) fail "usage: in_root.sh installed|removed|purged" ;;
esac
