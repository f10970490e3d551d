#!/bin/sh
# make demo: what shardex can show today. The cluster demo (a coordinator, three
# workers, the Debian package catalogue indexed LOCAL and GLOBAL) replaces this
# as the coordinator, log and indexes land.
#
# Today: the rpc layer over the gRPC C core serving the test Echo service,
# called by a gRPC stack the project did not write (Debian's python3-grpcio).
set -eu
BUILD=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd)
echo "== shardex demo: the rpc layer answering Python's grpcio"
echo "   (the cluster demo arrives with the coordinator and workers)"
/usr/bin/python3 "$here/tests/integration/test_interop.py" --build-dir "$BUILD" \
    --proto-dir "$here/proto" -v
