#!/bin/sh
# make demo: a 3-worker local cluster loaded with this machine's Debian package
# catalogue, read back, a leader killed, the answers unchanged (deploy/demo.py).
set -eu
BUILD=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd)
exec /usr/bin/python3 "$here/deploy/demo.py" "$BUILD"
