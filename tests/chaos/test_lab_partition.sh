#!/usr/bin/env bash
# test_lab_partition.sh BUILD: the first scenario on separate hosts. A
# 3-worker cluster in the lab (tests/chaos/lab-cluster.sh); documents written
# before, during and after worker 1 (a leader of some partitions) is isolated
# from every other host, coordinator included, for 3 leases; then heal. Every
# acknowledged document reads back, every partition gets a whole ISR again,
# and `shardex verify` finds no difference. Prints the longest stretch with
# no acknowledged write and the recovery time. Root only (label chaos).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 BUILD" >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"
build="$(cd "$1" && pwd)"
lc="$here/lab-cluster.sh"
lab="$(cd "$here/../../deploy" && pwd)/lab.sh" # the hosts: shared with deploy/
dir=$(mktemp -d /tmp/sx-lab-XXXXXX)
sx() { "$lc" client "$dir" "$build/client/shardex" --timeout-ms 3000 "$@"; }
fail() {
    echo "test_lab_partition: FAIL: $*" >&2
    for f in "$dir"/*.log; do echo "--- $f" >&2; tail -n 40 "$f" >&2; done
    "$lc" stop "$dir" || true
    echo "test_lab_partition: logs kept in $dir" >&2
    exit 1
}
trap '"$lc" stop "$dir" >/dev/null 2>&1 || true' EXIT
now_ms() { date +%s%3N; }

"$lc" start "$build" "$dir" 3 >/dev/null
settled() { # every partition led, ISR whole, every worker alive
    sx --json status 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
ok = all(w["alive"] for w in d["workers"]) and all(
    p.get("available") and all(r.get("in_sync") for r in p["replicas"])
    for p in d["log_partitions"])
sys.exit(0 if ok else 1)'
}
wait_settled() {
    local until=$(($(now_ms) + $1))
    while [ "$(now_ms)" -lt "$until" ]; do settled && return 0; sleep 0.2; done
    return 1
}
wait_settled 20000 || fail "the cluster did not settle"

acked=()
last_ok=$(now_ms)
longest=0
write() { # write ID: one Put; recorded when acknowledged
    if sx put "$1" v="$1" >/dev/null 2>&1; then
        acked+=("$1")
        local t
        t=$(now_ms)
        [ $((t - last_ok)) -gt "$longest" ] && longest=$((t - last_ok))
        last_ok=$t
    fi
}
for i in $(seq 1 30); do write "before-$i"; done
[ ${#acked[@]} -eq 30 ] || fail "only ${#acked[@]} of 30 writes acknowledged before any fault"

"$lab" isolate 1
cut_at=$(now_ms)
while [ $(($(now_ms) - cut_at)) -lt 3000 ]; do write "during-$(now_ms)"; done
"$lab" heal
healed_at=$(now_ms)
wait_settled 30000 || fail "no whole ISR within 30 s of the heal"
recovery=$(($(now_ms) - healed_at))
for i in $(seq 1 30); do write "after-$i"; done

missing=0
for id in "${acked[@]}"; do
    sx get "$id" >/dev/null 2>&1 || { echo "acknowledged $id does not read back" >&2; missing=$((missing + 1)); }
done
[ "$missing" -eq 0 ] || fail "$missing acknowledged documents lost"
sx verify >"$dir/verify.out" 2>&1 || fail "shardex verify found a difference: $(tail -n 5 "$dir/verify.out")"
echo "test_lab_partition: ${#acked[@]} writes acknowledged, none lost; longest gap between" \
    "acknowledged writes ${longest} ms; whole ISRs ${recovery} ms after the heal"
echo "test_lab_partition: 1 passed, 0 failed"
rm -rf "$dir"
