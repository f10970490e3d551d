#!/usr/bin/env bash
# test_deploy_lab.sh BUILD: the deployment lab (deploy/lab.sh) as
# docs/deploy.md walks through it: `up 3` (each daemon on a host of its own,
# started with a config made from deploy/*.conf.example), `shardex status
# --check` from the client host, a document written and queried by address
# from there, a worker stopped (an alarm) and started again (none), `status`,
# and `down` leaving no namespace, process or state behind. Root only: exit 77
# (skipped) otherwise. Its own lab number, so that it runs beside the chaos
# smoke test (labs 51, 52) and make chaos-lab (1..8).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 BUILD" >&2; exit 2; }
build="$(cd "$1" && pwd)"
src="$(cd "$(dirname "$0")/../.." && pwd)"
lab="$src/deploy/lab.sh"
[ "$(id -u)" -eq 0 ] || { echo "test_deploy_lab: skipped: the lab needs root (network namespaces)" >&2; exit 77; }
command -v nft >/dev/null || { echo "test_deploy_lab: skipped: nft is not installed (deploy/install-deps.sh installs nftables)" >&2; exit 77; }
# A lab of its own, held for this run (deploy/lab-claim.sh).
. "$src/deploy/lab-claim.sh"
sx_lab_claim 40 99 SX_LAB || exit 1
export SX_LAB
state=$(mktemp -d /tmp/sx-deploy-lab-XXXXXX)
export SX_LAB_DIR=$state/lab
t0=$SECONDS

fail() {
    echo "test_deploy_lab: FAIL: $*" >&2
    "$lab" status >&2 || true
    for f in "$SX_LAB_DIR"/h*/*.log; do
        [ -f "$f" ] || continue
        echo "--- $f" >&2
        tail -n 30 "$f" >&2
    done
    exit 1
}
# Every exit path: the lab goes (down is idempotent), then the directory.
trap '"$lab" down >/dev/null 2>&1 || true; rm -rf "$state"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
sx() { "$lab" client shardex --timeout-ms 3000 "$@"; }

# check_within SECONDS: `shardex status --check` on the client host passes.
check_within() {
    local until=$((SECONDS + $1))
    until sx status --check >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$until" ] || return 1
        sleep 0.2
    done
}

"$lab" up 3 --build "$build" >"$state/up.out" || fail "up 3: $(cat "$state/up.out")"
check_within 30 || fail "status --check does not pass after up: $(sx status --check 2>&1)"

# The configs: each example with only its host's keys set (the rest commented out).
keys() { grep -E '^[a-z-]+ *=' "$1" | sed 's/ *=.*//' | sort | tr '\n' ' '; }
[ "$(keys "$SX_LAB_DIR/h1/worker.conf")" = "advertise coordinator data-dir listen " ] ||
    fail "worker.conf sets: $(keys "$SX_LAB_DIR/h1/worker.conf")"
[ "$(keys "$SX_LAB_DIR/h4/coordinator.conf")" = "data-dir listen " ] ||
    fail "coordinator.conf sets: $(keys "$SX_LAB_DIR/h4/coordinator.conf")"
grep -qx "coordinator = 10.200.$SX_LAB.4:7000" "$SX_LAB_DIR/h2/worker.conf" || fail "worker 2's coordinator"

# From the client host (10.200.$SX_LAB.5), by address: an index, a write, a query
# through another worker, a read through a third.
sx index create lab_color --field color --wait >/dev/null || fail "index create"
token=$(sx put lab-doc-1 color=red) || fail "put"
out=$("$lab" exec 5 shardex --server 10.200.$SX_LAB.2:7100 query --index lab_color --eq red \
    --mode global --after "$token") || fail "query by address"
grep -q 'lab-doc-1' <<<"$out" || fail "the query does not find lab-doc-1: $out"
out=$("$lab" exec 5 shardex --server 10.200.$SX_LAB.3:7100 get lab-doc-1 --after "$token") ||
    fail "get by address"
grep -q 'red' <<<"$out" || fail "get lab-doc-1: $out"

# A worker stopped is an alarm; started again on its data, the alarms clear.
"$lab" stop 3
until=$((SECONDS + 15))
while sx status --check >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$until" ] || fail "no alarm 15 s after worker 3 stopped"
    sleep 0.2
done
"$lab" start 3
check_within 30 || fail "status --check does not pass after worker 3 restarted: $(sx status --check 2>&1)"
"$lab" exec 5 shardex --server 10.200.$SX_LAB.3:7100 get lab-doc-1 >/dev/null || fail "get through worker 3 after its restart"

"$lab" status >"$state/status.out" || fail "status exited non-zero: $(cat "$state/status.out")"
for want in "shardex-worker --config $SX_LAB_DIR/h1/worker.conf" \
    "shardex-worker --config $SX_LAB_DIR/h3/worker.conf" \
    "shardex-coordinator --config $SX_LAB_DIR/h4/coordinator.conf" \
    "lab $SX_LAB: plaintext; binaries $build (build tree)" "3/3 workers alive"; do
    grep -qF -- "$want" "$state/status.out" || fail "status lacks '$want': $(cat "$state/status.out")"
done

"$lab" down
left=$(ip netns list | grep -c "^sxlab$SX_LAB-" || true)
[ "$left" -eq 0 ] || fail "$left namespaces of lab $SX_LAB left after down"
# (pgrep only looks: the processes, if any, would be this test's own)
! pgrep -f "$SX_LAB_DIR/" >/dev/null || fail "processes left after down: $(pgrep -af "$SX_LAB_DIR/")"
[ ! -e "$SX_LAB_DIR" ] || fail "down left $SX_LAB_DIR"
echo "test_deploy_lab: 1 passed, 0 failed ($((SECONDS - t0)) s)"
