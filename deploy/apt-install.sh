#!/bin/sh
# apt-install.sh TAG PKG...: installs the Debian packages among PKG that are
# missing, for the project's install scripts (install-deps.sh, the build and
# test dependencies; install-bench-deps.sh, the benchmarks'). Idempotent and
# quick when everything is present: it asks dpkg first and runs `apt-get
# update` only when something is missing. Uses sudo when not run as root.
# TAG names the caller in its messages.
#
# While installing, a policy-rc.d (invoke-rc.d(8)) forbids service starts: a
# package such as postgresql would otherwise start a system server that
# nothing here uses (benchmarks and tests start their own, in temporary
# directories).
set -eu

[ $# -ge 1 ] || { echo "usage: $0 TAG PKG..." >&2; exit 2; }
tag=$1
shift

missing=""
for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -n "$missing" ] || exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

policy=/usr/sbin/policy-rc.d
made_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# deploy/apt-install.sh: no service starts while installing\nexit 101\n' |
        $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    made_policy=1
fi
cleanup() { [ -z "$made_policy" ] || $SUDO rm -f "$policy"; }
trap cleanup EXIT INT TERM

echo "$tag: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "$tag: done" >&2
