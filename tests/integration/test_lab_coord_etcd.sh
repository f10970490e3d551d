#!/usr/bin/env bash
# test_lab_coord_etcd.sh BUILD: issue 13's partition case on the lab's hosts
# (deploy/lab.sh up 3 --coordinators 3: workers on hosts 1..3, a coordinator
# and an etcd member on each of hosts 4..6, the client on host 7). Under a
# steady stream of writes from the client host, the leading coordinator's
# host is cut from the two other coordinator hosts (the etcd majority) but
# not from the workers. Then:
#   - the old leader stops acting within its etcd lease (2 s) and a margin:
#     asked directly, it says it does not lead (it stepped down and follows),
#     or it has exited; either way its log says why;
#   - one of the other two becomes the leader: etcd's leader key names it,
#     with a newer create revision (epoch) than the old leader's;
#   - writes go on, and every acknowledged write, before and after, reads
#     back;
#   - healed, the old coordinator (started again if it had exited) follows
#     the new leader, and `shardex verify` finds nothing wrong.
# Prints when, from the cut, the old leader stopped acting and the new one
# led (by their logs, and as this test saw them), and the longest stretch
# with no acknowledged write (no assertion on them). Root only (exit 77
# otherwise), in a lab of its own (the first free from 40 up); the lab goes on every exit. About 30 s.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 BUILD" >&2; exit 2; }
build="$(cd "$1" && pwd)"
src="$(cd "$(dirname "$0")/../.." && pwd)"
lab="$src/deploy/lab.sh"
me=test_lab_coord_etcd
[ "$(id -u)" -eq 0 ] || { echo "$me: skipped: the lab needs root (network namespaces)" >&2; exit 77; }
command -v nft >/dev/null || { echo "$me: skipped: nft is not installed (deploy/install-deps.sh installs nftables)" >&2; exit 77; }
{ command -v etcd >/dev/null && command -v etcdctl >/dev/null; } ||
    { echo "$me: skipped: etcd is not installed (deploy/install-deps.sh installs it)" >&2; exit 77; }
# A lab of its own, held for this run (deploy/lab-claim.sh).
. "$src/deploy/lab-claim.sh"
sx_lab_claim 40 99 SX_LAB || exit 1
export SX_LAB
state=$(mktemp -d /tmp/sx-lab-coord-etcd-XXXXXX)
export SX_LAB_DIR=$state/lab
t0=$SECONDS
writer=""

fail() {
    echo "$me: FAIL: $*" >&2
    "$lab" status >&2 || true
    for f in "$SX_LAB_DIR"/h*/*.log; do
        [ -f "$f" ] || continue
        echo "--- $f" >&2
        tail -n 30 "$f" >&2
    done
    [ ! -s "$state/put-errors" ] || { echo "--- put errors (last 10)" >&2; tail -n 10 "$state/put-errors" >&2; }
    exit 1
}
# Every exit path: the writer stops, the lab goes (down is idempotent), then
# the directory.
cleanup() {
    touch "$state/stop"
    [ -z "$writer" ] || wait "$writer" 2>/dev/null || true
    "$lab" down >/dev/null 2>&1 || true
    rm -rf "$state"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
sx() { "$lab" client shardex --timeout-ms 3000 "$@"; }
now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
alive() { [ -f "$SX_LAB_DIR/h$1/pid" ] && kill -0 "$(cat "$SX_LAB_DIR/h$1/pid")" 2>/dev/null; }
# ask_coord HOST: `shardex status` of the coordinator on HOST itself, asked
# from worker host 1: the leader answers it, a follower names the leader.
ask_coord() { "$lab" exec 1 shardex --server "10.200.$SX_LAB.$1:7000" --timeout-ms 1000 status 2>&1; }
# log_ms LINE: the time (ms since the epoch) a daemon's log line starts with.
log_ms() { date -d "${1%% *}" +%s%3N; }

"$lab" up 3 --coordinators 3 --build "$build" >"$state/up.out" 2>&1 || fail "up 3 --coordinators 3: $(cat "$state/up.out")"

for i in $(seq 1 10); do
    sx put "pre-$i" "v=$i" >/dev/null || fail "put pre-$i"
    echo "pre-$i" >>"$state/acked"
done

l=$("$lab" leader) || fail "no leader after up"
read -r old_name old_host old_addr old_epoch <<<"$l"
others=()
for h in 4 5 6; do [ "$h" -eq "$old_host" ] || others+=("$h"); done
echo "$me: $old_name (host $old_host, $old_addr) leads, epoch $old_epoch; cutting it from hosts ${others[*]}"

# The writer, on the client host: one put after another, each with a 1 s
# deadline; an acknowledged one is logged with the time of its answer (ms).
cat >"$state/writer.sh" <<'EOF'
dir=$1 i=0
while [ ! -e "$dir/stop" ]; do
    i=$((i + 1))
    if shardex --timeout-ms 1000 put "w-$i" "v=$i" >/dev/null 2>>"$dir/put-errors"; then
        echo "$((${EPOCHREALTIME/./} / 1000)) w-$i" >>"$dir/acks"
    fi
done
EOF
: >"$state/acks"
"$lab" client bash "$state/writer.sh" "$state" &
writer=$!

# acks_after MS: the writes acknowledged after MS.
acks_after() { awk -v t="$1" '$1 > t' "$state/acks" | wc -l; }
until=$((SECONDS + 20))
until [ "$(acks_after 0)" -ge 20 ]; do
    [ $SECONDS -lt $until ] || fail "the writer got fewer than 20 acknowledgements in 20 s"
    sleep 0.1
done

cut_ms=$(now_ms)
for h in "${others[@]}"; do "$lab" cut "$old_host" "$h"; done

# The old leader stops acting before its lease can run out: asked directly
# (from worker host 1, which no rule cuts off), it answers that it does not
# lead (it stepped down and follows), or it has exited. A call it takes while
# still leading may wait on etcd past the probe's deadline: that is no answer
# either way, so the probe goes on.
until=$((SECONDS + 20))
while :; do
    out=$(ask_coord "$old_host") || true
    [[ $out != *"not the leading coordinator"* ]] || break
    alive "$old_host" || break
    [ $SECONDS -lt $until ] || fail "$old_name still acts 20 s after it was cut from the etcd majority: $out"
    sleep 0.05
done
stop_ms=$(now_ms)
if alive "$old_host"; then how="stepped down, follows"; else how="exited"; fi
# Its gate refuses as soon as the lease is not surely held; the main loop
# logs the step-down when it next looks (after an etcd call in flight, up to
# a third of the lease): wait for the line, not for the same instant.
until=$((SECONDS + 10))
while ! line=$(grep -m1 -E "stepping down: the etcd lease|stopping: the etcd lease" \
    "$SX_LAB_DIR/h$old_host/coordinator.log"); do
    [ $SECONDS -lt $until ] || fail "$old_name stopped acting ($how) without saying why in its log"
    sleep 0.05
done
stop_log_ms=$(log_ms "$line")

# Another becomes the leader by etcd's record (asked of the majority's members).
until=$((SECONDS + 30))
new=""
while [ -z "$new" ]; do
    for h in "${others[@]}"; do
        if l=$("$lab" leader $((h - 3)) 2>/dev/null); then
            read -r name _ _ epoch <<<"$l"
            if [ "$name" != "$old_name" ] && [ "$epoch" -gt "$old_epoch" ]; then
                new=$l
                break
            fi
        fi
    done
    [ -n "$new" ] || [ $SECONDS -lt $until ] || fail "no other coordinator leads 30 s after the cut (etcd: ${l:-no answer})"
    [ -n "$new" ] || sleep 0.05
done
leader_ms=$(now_ms)
read -r new_name new_host new_addr new_epoch <<<"$new"
[[ " ${others[*]} " == *" $new_host "* ]] || fail "the new leader $new_name is not one of hosts ${others[*]}"
line=$(grep -m1 "meta: leading key=/shardex/lab/leader epoch=$new_epoch " "$SX_LAB_DIR/h$new_host/coordinator.log") ||
    fail "$new_name leads by etcd's record, but its log does not say so (epoch $new_epoch)"
leader_log_ms=$(log_ms "$line")

# Writes go on under the new leader.
until=$((SECONDS + 30))
until [ "$(acks_after "$leader_ms")" -ge 20 ]; do
    [ $SECONDS -lt $until ] || fail "fewer than 20 writes acknowledged in 30 s after $new_name took over"
    sleep 0.1
done
touch "$state/stop"
wait "$writer" || true
writer=""

# Healed, the old coordinator follows the new leader: it stayed up as a
# follower, or it exited and is started again.
"$lab" heal
if ! alive "$old_host"; then
    "$lab" start "$old_name" || fail "start $old_name after heal" # (until it listens or follows)
fi
until=$((SECONDS + 20))
until [[ $(ask_coord "$old_host") == *"not the leading coordinator; leader=$new_addr"* ]]; do
    [ $SECONDS -lt $until ] || fail "$old_name does not follow $new_name 20 s after the heal: $(ask_coord "$old_host")"
    sleep 0.1
done
l=$("$lab" leader) || fail "no leader after the heal"
[ "$l" = "$new" ] || fail "the leader changed after the heal: '$l', was '$new'"

until=$((SECONDS + 30))
until sx status --check >/dev/null 2>&1; do
    [ $SECONDS -lt $until ] || fail "status --check does not pass 30 s after heal: $(sx status --check 2>&1)"
    sleep 0.2
done

for h in 4 5 6; do alive "$h" || fail "the coordinator on host $h exited after the heal"; done

# Every acknowledged write reads back (one client process for all of them).
awk '{print $2}' "$state/acks" >>"$state/acked"
# (It gives up after 5 misses: with no coordinator each get takes its deadline.)
cat >"$state/reader.sh" <<'EOF'
miss=0
while read -r id; do
    out=$(shardex --timeout-ms 3000 get "$id" 2>&1) && [[ $out == *"id: $id"* ]] && continue
    echo "$id: $out"
    miss=$((miss + 1))
    [ $miss -lt 5 ] || { echo "(gave up after 5)"; break; }
done
EOF
"$lab" client bash "$state/reader.sh" <"$state/acked" >"$state/missing"
[ ! -s "$state/missing" ] || fail "$(wc -l <"$state/missing") acknowledged writes do not read back: $(head -n 5 "$state/missing")"
sx verify >"$state/verify.out" 2>&1 || fail "verify: $(tail -n 20 "$state/verify.out")"
for h in 4 5 6; do alive "$h" || fail "the coordinator on host $h is not running at the end"; done

# The figures: the longest stretch with no acknowledged write, from the
# writer's start to its end (the cut is inside it).
gap=$(awk 'NR > 1 && $1 - p > g { g = $1 - p; at = p } { p = $1 } END { printf "%.0f %.0f\n", g, at }' "$state/acks")
read -r gap_ms gap_at <<<"$gap"
echo "$me: cut at 0 ms; $old_name $how at $((stop_log_ms - cut_ms)) ms by its log" \
    "(seen at $((stop_ms - cut_ms)) ms); $new_name ($new_addr) led, epoch $old_epoch -> $new_epoch," \
    "at $((leader_log_ms - cut_ms)) ms by its log (seen in etcd at $((leader_ms - cut_ms)) ms);" \
    "longest stretch with no acknowledged write $gap_ms ms (from $((gap_at - cut_ms)) ms);" \
    "$(wc -l <"$state/acked") acknowledged writes read back, verify clean"
# The puts that failed meanwhile, by kind (numbers and ids as #).
if [ -s "$state/put-errors" ]; then
    echo "$me: $(wc -l <"$state/put-errors") puts failed (not acknowledged):"
    sed -E 's/[0-9]+/#/g' "$state/put-errors" | sort | uniq -c | sort -rn | head -n 5
fi

"$lab" down
echo "$me: 1 passed, 0 failed ($((SECONDS - t0)) s)"
