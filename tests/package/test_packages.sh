#!/bin/bash
# test_packages.sh BUILD_DIR: the Debian packages (deploy/debian/package.cmake,
# docs/packages.md) built from BUILD_DIR install, run and go away cleanly in a
# fresh Debian root:
#   1. cpack makes the three packages (into a temporary directory, so that
#      `make package`'s own stay as they are);
#   2. a Debian root of this machine's suite, from this machine's own apt
#      sources, with the Essential packages and exactly the packages the three
#      name in Depends, comes from a cached tarball, made with mmdebstrap when
#      missing (keyed by suite, architecture, sources and that list);
#   3. `dpkg -i` of the three succeeds there with nothing else installed: so
#      their Depends are complete; then in_root.sh checks the binaries, the
#      user, the conffiles, the units, the state directories, and runs the
#      daemons with the packaged configurations; installing again (as an
#      upgrade) keeps an edited conffile and the state;
#   4. `dpkg -r` keeps exactly configuration and state; `dpkg -P` leaves no
#      file that was not there before the install, and removes none that was;
#   5. on this machine, a program builds against libshardex as the shardex
#      package installs it (pkg-config) and runs.
# Root only (chroot, namespaces): exits 77 (skipped) otherwise. Prints how long
# each step took. Cache: SX_PACKAGE_TEST_CACHE (default /var/cache/shardex-test),
# root tarballs unused for 30 days are deleted.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
if [ "$(id -u)" -ne 0 ]; then
    echo "test_packages: skipped: needs root (chroot, namespaces)"
    exit 77
fi
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
cache=${SX_PACKAGE_TEST_CACHE:-/var/cache/shardex-test}
# Bump when the way the root is made changes, so that old tarballs go unused.
recipe=1

fail() {
    echo "test_packages: $*" >&2
    exit 1
}
for tool in cpack mmdebstrap dpkg-deb unshare chroot ip flock gcc pkg-config; do
    command -v "$tool" >/dev/null || fail "$tool is missing (deploy/install-deps.sh installs it)"
done

start=$(date +%s.%N)
last=$start
# lap NAME: how long the step that just ended took.
lap() {
    local now
    now=$(date +%s.%N)
    awk -v n="$1" -v a="$last" -v b="$now" 'BEGIN { printf "time: %-28s %6.1f s\n", n, b - a }'
    last=$now
}

# A run killed outright (ctest's timeout sends SIGKILL) leaves its directory:
# none lives two hours (TIMEOUT is 10 minutes).
find "${TMPDIR:-/var/tmp}" -maxdepth 1 -name 'shardex-pkgtest.*' -mmin +120 \
    -exec rm -rf --one-file-system {} +
tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/shardex-pkgtest.XXXXXX")
root=$tmp/root
# Nothing is mounted in $root from out here: in_root mounts /proc in a mount
# namespace of its own, which goes away with its last process, however the
# test ends. --one-file-system is a second guard all the same.
cleanup() { rm -rf --one-file-system "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# in_root CMD...: CMD in the root, in new PID, mount and network namespaces
# (its daemons die with it, its /proc is its own, the packaged ports are free),
# with a clean environment.
in_root() {
    # shellcheck disable=SC2016 # the inner sh expands them
    unshare --pid --mount --net --fork --mount-proc="$root/proc" \
        sh -c 'ip link set lo up && exec chroot "$0" /usr/bin/env -i \
            PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
            DEBIAN_FRONTEND=noninteractive "$@"' "$root" "$@"
}

# -- 1. the packages
pkgs=$tmp/packages
cpack --config "$build/CPackConfig.cmake" -B "$pkgs" >"$tmp/cpack.log" 2>&1 ||
    { cat "$tmp/cpack.log" >&2; fail "cpack failed"; }
debs=("$pkgs"/*.deb)
[ "${#debs[@]}" -eq 3 ] || fail "want 3 packages, cpack made: ${debs[*]}"
names=()
for deb in "${debs[@]}"; do
    names+=("$(dpkg-deb -f "$deb" Package)")
done
echo "packages: ${names[*]}"
lap "cpack"

# The Depends of the three, by name (first alternative, no version), without
# the three themselves.
deps=$(for deb in "${debs[@]}"; do dpkg-deb -f "$deb" Depends | tr ',' '\n'; done |
    sed -e 's/|.*//' -e 's/(.*)//' -e 's/[[:space:]]//g' -e '/^$/d' | LC_ALL=C sort -u |
    grep -vxF -f <(printf '%s\n' "${names[@]}") || true)
[ -n "$deps" ] || fail "the packages depend on nothing: dpkg-shlibdeps did not run?"
echo "depends: $(echo "$deps" | paste -sd' ')"

# -- 2. the root
# This machine's suite and its apt sources for it (the suite, -updates,
# -security...): one-line entries from *.list, deb822 stanzas from *.sources,
# kept verbatim. Other suites (third-party repositories) are left out.
# shellcheck disable=SC1091
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ -n "$suite" ] || fail "no VERSION_CODENAME in /etc/os-release"
shopt -s nullglob
lists=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list)
stanzas=(/etc/apt/sources.list.d/*.sources)
shopt -u nullglob
: >"$tmp/host.list"
: >"$tmp/host.sources"
for f in "${lists[@]}"; do
    [ -f "$f" ] || continue
    # Options in brackets may hold blanks: drop them to find the suite ($3).
    awk -v s="$suite" '{ l = $0; gsub(/\[[^]]*\]/, "") }
        $1 == "deb" && ($3 == s || index($3, s "-") == 1) { print l }' "$f" >>"$tmp/host.list"
done
for f in "${stanzas[@]}"; do
    awk -v s="$suite" '
        function flush(  i) {
            if (n && deb && ours && on) { for (i = 1; i <= n; i++) print line[i]; print "" }
            n = 0; deb = 0; ours = 0; on = 1
        }
        BEGIN { on = 1 }
        /^[[:space:]]*$/ { flush(); next }
        { line[++n] = $0; k = tolower($1) }
        k == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
        k == "suites:" { for (i = 2; i <= NF; i++) if ($i == s || index($i, s "-") == 1) ours = 1 }
        k == "enabled:" && tolower($2) == "no" { on = 0 }
        END { flush() }' "$f" >>"$tmp/host.sources"
done
mirrors=()
[ -s "$tmp/host.list" ] && mirrors+=("$tmp/host.list")
[ -s "$tmp/host.sources" ] && mirrors+=("$tmp/host.sources")
[ "${#mirrors[@]}" -gt 0 ] || fail "no apt source for $suite in /etc/apt/sources.list*"

# mmdebstrap reads none of the host's apt configuration: pass on what decides
# whether those sources are reached and trusted as apt here reaches them
# (proxies; Valid-Until, off for a snapshot mirror).
aptopts=()
for opt in Acquire::http::Proxy Acquire::https::Proxy Acquire::Check-Valid-Until; do
    val=$(apt-config dump --format '%v%n' "$opt" | head -n 1)
    [ -z "$val" ] || aptopts+=("--aptopt=$opt \"$val\"")
done

arch=$(dpkg --print-architecture)
key=$( (printf '%s\n' "recipe $recipe" "$suite" "$arch" "$deps" && cat "${mirrors[@]}") |
    sha256sum | cut -c1-16)
tarball=$cache/root-$suite-$arch-$key.tar
mkdir -p "$cache"
if [ ! -f "$tarball" ]; then
    # One maker at a time (another worktree's test may want the same root).
    exec {lock}>"$cache/lock"
    flock "$lock"
    if [ ! -f "$tarball" ]; then
        echo "making the root $tarball (mmdebstrap, once)"
        # mmdebstrap makes a tarball of a name that ends in .tar, a directory else.
        part=$cache/making-$key.tar
        mmdebstrap --variant=essential --include="$(echo "$deps" | paste -sd,)" \
            ${aptopts[@]+"${aptopts[@]}"} "$suite" "$part" "${mirrors[@]}" >"$tmp/mmdebstrap.log" 2>&1 ||
            { tail -n 30 "$tmp/mmdebstrap.log" >&2; rm -f "$part"; fail "mmdebstrap failed"; }
        mv "$part" "$tarball"
    fi
    flock -u "$lock"
    lap "root: mmdebstrap (cold cache)"
fi
touch "$tarball" # in use: not pruned below
find "$cache" -maxdepth 1 -name 'root-*.tar' -mtime +30 -delete
mkdir "$root"
tar -C "$root" --numeric-owner -xf "$tarball"
lap "root: unpack"

# snapshot: every path in the root but those that change by themselves
# (dpkg's database, logs, caches, the passwd backups adduser leaves).
snapshot() {
    (cd "$root" && find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev -o -path ./run \
        -o -path ./tmp -o -path ./var/lib/dpkg -o -path ./var/log -o -path ./var/cache/debconf \
        -o -path ./var/cache/ldconfig \) -prune -o -print) |
        grep -Ev '^\./etc/(passwd|group|shadow|gshadow|subuid|subgid)-$|^\./etc/\.pwd\.lock$' |
        LC_ALL=C sort
}
snapshot >"$tmp/before"

# -- 3. install and check
mkdir "$root/tmp/packages"
cp "${debs[@]}" "$root/tmp/packages/"
cp "$here/in_root.sh" "$root/tmp/in_root.sh"
in_root sh -c 'dpkg -i /tmp/packages/*.deb' >"$tmp/dpkg-i.log" 2>&1 ||
    { cat "$tmp/dpkg-i.log" >&2; fail "dpkg -i failed (are the Depends complete?)"; }
echo "ok: dpkg -i ${names[*]} (nothing installed but Essential and the Depends)"
lap "dpkg -i"
# The files as in the tree, where test_units runs `systemd-analyze verify` on
# the units (the root has no systemd to verify them with) and test_config
# checks the configurations against --help.
for role in coordinator worker; do
    cmp "$root/lib/systemd/system/shardex-$role.service" "$src/deploy/systemd/shardex-$role.service"
    cmp "$root/etc/shardex/$role.conf" "$src/deploy/$role.conf.example"
done
echo "ok: units and configurations installed as deploy/ has them"
in_root bash /tmp/in_root.sh installed
lap "checks and daemons"

# Installing again runs the scripts as an upgrade does ("configure" with the
# old version): an operator's edit of a conffile and the daemons' state
# survive it.
echo "# an operator's edit" >>"$root/etc/shardex/worker.conf"
(cd "$root/var/lib/shardex" && find . -printf '%p %u %m %s\n' | LC_ALL=C sort) >"$tmp/state1"
in_root sh -c 'dpkg -i /tmp/packages/*.deb' >"$tmp/dpkg-i2.log" 2>&1 ||
    { cat "$tmp/dpkg-i2.log" >&2; fail "dpkg -i over the installed packages failed"; }
[ "$(tail -n 1 "$root/etc/shardex/worker.conf")" = "# an operator's edit" ] ||
    fail "installing again replaced the edited /etc/shardex/worker.conf"
(cd "$root/var/lib/shardex" && find . -printf '%p %u %m %s\n' | LC_ALL=C sort) >"$tmp/state2"
diff -u "$tmp/state1" "$tmp/state2" || fail "installing again changed the state (above)"
echo "ok: installed again: the edited conffile and the state are kept"
lap "install again"

# -- 4. remove, purge
in_root dpkg -r "${names[@]}" >"$tmp/dpkg-r.log" 2>&1 ||
    { cat "$tmp/dpkg-r.log" >&2; fail "dpkg -r failed"; }
in_root bash /tmp/in_root.sh removed
snapshot >"$tmp/removed"
gone=$(comm -23 "$tmp/before" "$tmp/removed")
[ -z "$gone" ] || fail "dpkg -r deleted files that were there before: $gone"
# Kept on remove: configuration, state, and deb-systemd-helper's record of the
# units (which purge clears) and their mask (Debian's way to keep a removed
# package's enabled unit from starting).
kept=$(comm -13 "$tmp/before" "$tmp/removed" |
    grep -Ev '^\./etc/shardex(/(coordinator|worker)\.conf)?$|^\./var/lib/shardex(/.*)?$' |
    grep -Ev '^\./etc/systemd/system/shardex-(coordinator|worker)\.service$' |
    grep -Ev '^\./var/lib/systemd(/deb-systemd-helper-(enabled|masked)(/shardex-(coordinator|worker)\.service(\.dsh-also)?)?)?$' ||
    true)
[ -z "$kept" ] || fail "dpkg -r left more than configuration and state: $kept"
echo "ok: dpkg -r kept only configuration and state"

in_root dpkg -P "${names[@]}" >"$tmp/dpkg-p.log" 2>&1 ||
    { cat "$tmp/dpkg-p.log" >&2; fail "dpkg -P failed"; }
in_root bash /tmp/in_root.sh purged
snapshot >"$tmp/purged"
if ! diff -u "$tmp/before" "$tmp/purged" >"$tmp/purge.diff"; then
    cat "$tmp/purge.diff" >&2
    fail "the root after dpkg -P differs from the root before dpkg -i (above)"
fi
echo "ok: dpkg -P left the root as it was (but for the shardex user)"
lap "remove and purge"

# -- 5. libshardex as packaged
lib=$tmp/unpacked
dpkg-deb -x "$pkgs"/shardex_*.deb "$lib"
cat >"$tmp/uses_lib.c" <<'EOF'
#include <shardex.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
    const char *servers[] = {"127.0.0.1:1"};
    sx_client_opts opts = {.servers = servers, .nservers = 1};
    sx_client *c = NULL;
    if (sx_client_open(&opts, &c, NULL) != SX_OK)
        return 1;
    sx_client_close(c);
    puts(sx_status_name(SX_OK));
    return 0;
}
EOF
pc=$(find "$lib" -name shardex.pc)
[ -n "$pc" ] || fail "the shardex package has no shardex.pc"
# shellcheck disable=SC2046 # pkg-config's output is a list of words
gcc -std=c11 -Wall -Werror -o "$tmp/uses_lib" "$tmp/uses_lib.c" \
    $(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --cflags --libs --static shardex) ||
    fail "a program does not build against the packaged libshardex"
out=$("$tmp/uses_lib") || fail "the program built against libshardex failed"
[ "$out" = OK ] || fail "the program built against libshardex printed '$out'"
echo "ok: a program builds against the packaged libshardex (pkg-config shardex) and runs"
lap "libshardex"

awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "time: %-28s %6.1f s\n", "total", b - a }'
