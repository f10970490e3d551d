#!/usr/bin/env bash
# run.sh BUILD: the partition-failure scenarios on the lab's hosts, each with
# several seeds: a 3-worker cluster (P=8, R=3, min_isr 2, lease 1 s) in the
# lab (lab-cluster.sh), the workload (sx_chaos_workload run) writing from the
# client host while the scenario's nemesis acts, then heal, wait until every
# ISR is whole (the recovery time), and check (sx_chaos_workload check: A, U,
# L, G, D and shardex verify). Prints one line per run and a table per
# scenario; with --doc FILE, writes the table between the chaos markers.
#
#   SEEDS=N (default 3)  SCENARIO=name[,name]  (default: all)
#   SHARDEX_TEST_SEED=S  the first seed (then S+1, ...); a run is replayed by
#                        its scenario and seed: SCENARIO=cut SHARDEX_TEST_SEED=S SEEDS=1
#
# A failing run keeps its directory (history, every node's log, the nemesis
# schedule) and says how to replay it. Root only (the lab is).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BUILD [--doc FILE]" >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"
build="$(cd "$1" && pwd)"
doc=""
[ "${2:-}" = "--doc" ] && doc=${3:?--doc FILE}
lc="$here/lab-cluster.sh"
lab="$here/lab.sh"
W="$build/tests/chaos/sx_chaos_workload"
SX="$build/client/shardex"
ALL="kill pause isolate cut split deaf flap coord-isolate coord-kill mixed"
scenarios=${SCENARIO:-$ALL}
scenarios=${scenarios//,/ }
seeds=${SEEDS:-3}
first=${SHARDEX_TEST_SEED:-$(($(date +%s) % 100000))}
N=3 # workers: hosts 1..3; coordinator host 4; client host 5
for s in $scenarios; do
    [[ " $ALL " == *" $s "* ]] || { echo "run.sh: unknown scenario '$s' (one of: $ALL)" >&2; exit 2; }
done
[ -x "$W" ] || { echo "run.sh: $W is not built" >&2; exit 2; }
now_ms() { date +%s%3N; }
pick() { echo $((RANDOM % $1 + 1)); } # a worker, 1..$1
log() { echo "$*" >>"$dir/nemesis.log"; }

# The nemeses: each acts for about 3 s, past the 1 s lease, then heals.
nemesis() {
    local s=$1 a b c t
    a=$(pick $N)
    b=$((a % N + 1))
    c=$((b % N + 1))
    case "$s" in
    kill) log "kill -9 worker $a; restart 2 s later"
        "$lc" kill "$dir" "$a"; sleep 2; "$lc" restart "$dir" "$a" ;;
    pause) log "SIGSTOP worker $a for 3 s"
        "$lc" pause "$dir" "$a"; sleep 3; "$lc" resume "$dir" "$a" ;;
    isolate) log "isolate worker $a from every host for 3 s"
        "$lab" isolate "$a"; sleep 3; "$lab" heal ;;
    cut) log "cut workers $a and $b from each other (both reach the coordinator) for 3 s"
        "$lab" cut "$a" "$b"; sleep 3; "$lab" heal ;;
    split) log "split {worker $a, coordinator} | {workers $b, $c} for 3 s"
        "$lab" cut "$a" "$b"; "$lab" cut "$a" "$c"; "$lab" cut 4 "$b"; "$lab" cut 4 "$c"
        sleep 3; "$lab" heal ;;
    deaf) log "worker $a hears nothing from the coordinator for 3 s (one way)"
        "$lab" deaf "$a" 4; sleep 3; "$lab" heal ;;
    flap) log "isolate worker $a and heal, every 0.5 s for 4 s"
        for t in 1 2 3 4; do "$lab" isolate "$a"; sleep 0.5; "$lab" heal; sleep 0.5; done ;;
    coord-isolate) log "isolate the coordinator for 3 s"
        "$lab" isolate 4; sleep 3; "$lab" heal ;;
    coord-kill) log "kill -9 the coordinator; restart 2 s later"
        "$lc" kill "$dir" c; sleep 2; "$lc" restart "$dir" c ;;
    mixed)
        local pool=(kill pause isolate cut split deaf coord-isolate coord-kill) k
        for k in 1 2; do nemesis "${pool[$((RANDOM % ${#pool[@]}))]}"; sleep 1; done ;;
    esac
}

settled() {
    "$lc" client "$dir" "$SX" --timeout-ms 2000 --json status 2>/dev/null | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
ok = "workers" in d and all(w["alive"] for w in d["workers"]) and all(
    p.get("available") and all(r.get("in_sync") for r in p["replicas"])
    for p in d["log_partitions"])
sys.exit(0 if ok else 1)'
}

# one SCENARIO SEED: prints "scenario seed violations longest_gap_ms recovery_ms ok unknown fail"
one() {
    local s=$1 seed=$2 t0 healed recovery=-1 rc=0
    dir=$(mktemp -d "/tmp/sx-chaos-$s-$seed-XXXX")
    RANDOM=$seed
    echo "scenario=$s seed=$seed (replay: SCENARIO=$s SHARDEX_TEST_SEED=$seed SEEDS=1 $0 $build)" \
        >"$dir/nemesis.log"
    "$lc" start "$build" "$dir" $N >/dev/null
    local until=$(($(now_ms) + 20000))
    while ! settled && [ "$(now_ms)" -lt "$until" ]; do sleep 0.2; done
    "$lc" client "$dir" "$W" run --history "$dir/history" --seconds 9 --writers 3 --keys 20 \
        --seed "$seed" --run "$s-$seed" --timeout-ms 2000 >"$dir/run.out" 2>&1 &
    local wl=$!
    sleep 3
    nemesis "$s"
    "$lab" heal
    healed=$(now_ms)
    until=$((healed + 60000))
    while [ "$(now_ms)" -lt "$until" ]; do
        if settled; then recovery=$(($(now_ms) - healed)); break; fi
        sleep 0.2
    done
    wait "$wl" || true
    "$lc" client "$dir" "$W" check --history "$dir/history" --settle-ms 60000 --verify "$SX" \
        >"$dir/check.out" 2>&1 || rc=$?
    "$lc" stop "$dir" >/dev/null 2>&1 || true
    local viol gap ok unk fail
    viol=$(sed -n 's/^violations: .*total=\([0-9]*\).*/\1/p' "$dir/check.out")
    [ -n "$viol" ] || viol="E"
    [ "$rc" -eq 0 ] || [ "$viol" != 0 ] || viol="E"
    gap=$(awk '/^WRITER/ {on=1; next} on && NF >= 7 {if ($7 > m) m = $7} END {print m + 0}' "$dir/check.out")
    read -r ok fail unk < <(sed -n 's/^operations: ok=\([0-9]*\) fail=\([0-9]*\) unknown=\([0-9]*\).*/\1 \2 \3/p' \
        "$dir/run.out" | tail -n 1)
    echo "$s $seed $viol $gap $recovery ${ok:-0} ${unk:-0} ${fail:-0}"
    if [ "$viol" = 0 ] && [ "$recovery" -ge 0 ]; then
        rm -rf "$dir"
    else
        echo "run.sh: $s seed $seed: violations=$viol recovery=$recovery; kept $dir (nemesis.log," \
            "history, check.out, *.log); replay: SCENARIO=$s SHARDEX_TEST_SEED=$seed SEEDS=1 $0 $build" >&2
    fi
}

results=$(mktemp)
trap '"$lab" down >/dev/null 2>&1 || true; rm -f "$results"' EXIT
echo "scenario seed violations longest-gap-ms recovery-ms ok unknown fail"
for s in $scenarios; do
    for i in $(seq 0 $((seeds - 1))); do
        one "$s" $((first + i)) | tee -a "$results"
    done
done

table=$(python3 - "$results" "$seeds" "$first" <<'EOF'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))] if v else 0
out = ["| scenario | runs | violations | runs not recovered | write outage p50 / p99 ms | recovery p50 / p99 ms | ok / unknown / fail ops |",
       "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
by = {}
for r in rows:
    by.setdefault(r[0], []).append(r)
for s, rs in by.items():
    viol = sum(int(r[2]) if r[2].isdigit() else 1 for r in rs)
    gaps = [int(r[3]) for r in rs]
    rec = [int(r[4]) for r in rs if int(r[4]) >= 0]
    lost = sum(1 for r in rs if int(r[4]) < 0)
    ops = [sum(int(r[i]) for r in rs) for i in (5, 6, 7)]
    out.append(f"| {s} | {len(rs)} | {viol} | {lost} | {pct(gaps, .5)} / {pct(gaps, .99)} | "
               f"{pct(rec, .5)} / {pct(rec, .99)} | {ops[0]} / {ops[1]} / {ops[2]} |")
print("\n".join(out))
EOF
)
echo
echo "$table"
if [ -n "$doc" ]; then
    body=$(mktemp)
    {
        echo "<!-- chaos:begin -->"
        echo "Run $(date -u +%Y-%m-%d) on $(nproc) CPUs: \`SEEDS=$seeds SHARDEX_TEST_SEED=$first make chaos-lab\`" \
            "(seeds $first..$((first + seeds - 1)) per scenario; \"write outage\" is the longest" \
            "time any writer went without an acknowledged write, \"recovery\" the time from the heal" \
            "until every ISR was whole)."
        echo
        echo "$table"
        echo "<!-- chaos:end -->"
    } >"$body"
    if grep -q '<!-- chaos:begin -->' "$doc"; then
        awk -v body="$body" '
            /<!-- chaos:begin -->/ { while ((getline l < body) > 0) print l; skip = 1; next }
            /<!-- chaos:end -->/ { skip = 0; next }
            !skip { print }' "$doc" >"$doc.new" && mv "$doc.new" "$doc"
    else
        { echo; cat "$body"; } >>"$doc"
    fi
    rm -f "$body"
fi
! grep -qvE '^[^ ]+ [0-9]+ 0 ' "$results"
