#!/usr/bin/env bash
# test_local_cluster_ha.sh BUILD: deploy/local-cluster.sh start --coordinators 3
# (three etcd members, three coordinators electing one leader, three workers
# given every coordinator's address): a write, the leading coordinator
# killed -9, `shardex status --check` passing again (another leads, every
# worker alive), a second write, both read back, and `stop` leaving no
# process behind. About 10 s.
set -euo pipefail

build=$(cd "${1:?usage: test_local_cluster_ha.sh BUILD}" && pwd)
here=$(cd "$(dirname "$0")/../.." && pwd)
cluster=$here/deploy/local-cluster.sh
shardex=$build/client/shardex
dir=$(mktemp -d /tmp/shardex-lcha-XXXXXX)
trap '"$cluster" stop --dir "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT

fail() {
    echo "test_local_cluster_ha: FAIL: $*" >&2
    "$cluster" status --dir "$dir" >&2 || true
    tail -n 20 "$dir"/coord*.log "$dir"/w*.log >&2 || true
    exit 1
}

command -v etcd >/dev/null || fail "etcd is not installed (deploy/install-deps.sh installs it)"
server=$("$cluster" start --coordinators 3 --workers 3 --partitions 4 --dir "$dir" \
    --build "$build" | tail -n 1) || fail "start --coordinators 3"
[ "$(tr ',' '\n' <"$dir/coords" | wc -l)" -eq 3 ] || fail "not three coordinator addresses"

"$shardex" --server "$server" put ha-1 v=one >/dev/null || fail "the first put"
killed=$("$cluster" kill-coordinator --dir "$dir") || fail "kill-coordinator"
echo "$killed"

deadline=$((SECONDS + 60))
until "$shardex" --server "$server" --timeout-ms 2000 status --check >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "no coordinator led every worker again within 60 s"
    sleep 0.2
done
"$shardex" --server "$server" put ha-2 v=two >/dev/null || fail "the put after the failover"
for id in ha-1 ha-2; do
    out=$("$shardex" --server "$server" get "$id") || fail "get $id"
    [[ $out == *"id: $id"* ]] || fail "get $id: $out"
done

pids=$(cat "$dir"/*.pid)
[ "$(echo "$pids" | wc -l)" -eq 9 ] || fail "expected 9 pid files (3 etcd, 3 coordinators, 3 workers)"
"$cluster" stop --dir "$dir" >/dev/null
for p in $pids; do
    ! kill -0 "$p" 2>/dev/null || fail "process $p still runs after stop"
done
echo "test_local_cluster_ha: ok ($SECONDS s)"
