#!/usr/bin/env bash
# run.sh BUILD: the partition-failure scenarios on the lab's hosts, each with
# several seeds: a 3-worker cluster (P=8, R=3, min_isr 2, lease 1 s; each
# worker's data on a 128 MiB tmpfs) in the lab (lab-cluster.sh), the workload
# (sx_chaos_workload run, 6 writers) writing from the client host while the
# scenario's nemesis acts, then heal, wait until every worker is alive and
# every ISR whole (the recovery time), stop the writers, and check
# (sx_chaos_workload check: A, U, L, G, D and shardex verify). Prints one line
# per run and a table per scenario; with --doc FILE, writes the table between
# the chaos markers. The nemeses: kill -9, SIGSTOP, isolate, cut, split,
# bridge, one-way loss, flapping, coordinator isolated or killed, lossy, slow
# or duplicating rpc (the fault layer), a full disk, corrupt or deleted
# partition stores on restart, and mixed (three drawn at random).
#
#   SEEDS=N (default 3)  SCENARIO=name[,name]  (default: all)
#   LANES=N (default 1)  run N labs at once, the scenarios dealt among them
#                        (the first N labs free from SX_LAB_BASE+1; SX_LAB_BASE default 0)
#   SX_CHAOS_KEEP=1      keep every run's directory, not only the failing ones
#   SHARDEX_TEST_SEED=S  the first seed (then S+1, ...); a run is replayed by
#                        its scenario and seed: SCENARIO=cut SHARDEX_TEST_SEED=S SEEDS=1
#
# A failing run keeps its directory (history, every node's log, the nemesis
# schedule, the workers' data) and says how to replay it. Root only (the lab
# is). SX_LAB=L runs in a lab of its own (lab.sh), beside another suite.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BUILD [--doc FILE]" >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"
build="$(cd "$1" && pwd)"
doc=""
[ "${2:-}" = "--doc" ] && doc=${3:?--doc FILE}
lc="$here/lab-cluster.sh"
lab="$(cd "$here/../../deploy" && pwd)/lab.sh" # the hosts: shared with deploy/
W="$build/tests/chaos/sx_chaos_workload"
SX="$build/client/shardex"
ALL="kill pause isolate cut split bridge deaf flap coord-isolate coord-kill rpc-lossy rpc-slow rpc-dup disk-full store-corrupt store-lost mixed"
scenarios=${SCENARIO:-$ALL}
scenarios=${scenarios//,/ }
seeds=${SEEDS:-3}
first=${SHARDEX_TEST_SEED:-$(($(date +%s) % 100000))}
N=3 # workers: hosts 1..3; coordinator host 4; client host 5
DISK_MB=128 # each worker's data directory is a tmpfs this large (disk-full fills it)
for s in $scenarios; do
    [[ " $ALL " == *" $s "* ]] || { echo "run.sh: unknown scenario '$s' (one of: $ALL)" >&2; exit 2; }
done
[ -x "$W" ] || { echo "run.sh: $W is not built" >&2; exit 2; }
# 77: ctest's "skipped" (integration.test_chaos_smoke), so that make test says
# why instead of failing where namespaces cannot be made.
[ "$(id -u)" -eq 0 ] || { echo "run.sh: skipped: the lab needs root (network namespaces, nftables)" >&2; exit 77; }
command -v nft >/dev/null || { echo "run.sh: skipped: nft is not installed (deploy/install-deps.sh installs nftables)" >&2; exit 77; }
now_ms() { date +%s%3N; }
pick() { echo $((RANDOM % $1 + 1)); } # a worker, 1..$1
log() { echo "$*" >>"$dir/nemesis.log"; }

# supervise K: restart worker K if it exited (as systemd's Restart=on-failure
# would: a worker stops itself when its disk fails it).
supervise() {
    if ! "$lc" alive "$dir" "$1"; then
        log "  worker $1 had exited; restarted"
        "$lc" restart "$dir" "$1"
    fi
}

# faults K SPEC: worker K's outgoing calls get the rpc fault layer's rules.
faults() {
    "$lc" client "$dir" "$W" faults --servers "$("$lc" addr "$dir" "$1")" --spec "$2" \
        >/dev/null 2>>"$dir/faults.err" || log "  could not set faults \"$2\" on worker $1"
}

# clear_faults K: the heal of the fault layer; retried, since a fault left in
# place would be judged as if healed.
clear_faults() {
    local i
    for i in 1 2 3 4 5; do
        "$lc" client "$dir" "$W" faults --servers "$("$lc" addr "$dir" "$1")" --spec "" \
            >/dev/null 2>>"$dir/faults.err" && return 0
    done
    log "  could not clear the faults of worker $1"
}

# damage K HOW: the partition stores of 1..3 partitions of worker K (killed
# first) corrupted (CURRENT overwritten: LevelDB cannot open them) or deleted.
damage() {
    local k=$1 how=$2 i p d
    for i in $(seq "$(pick 3)"); do
        p=$((RANDOM % 8))
        d=$(printf '%s/w%s/partitions/p%04u' "$dir" "$k" "$p")
        log "  $how the store of partition $p on worker $k"
        if [ "$how" = corrupt ]; then
            [ -f "$d/CURRENT" ] && echo MANIFEST-garbage >"$d/CURRENT"
        else
            rm -rf "$d"
        fi
    done
}

# The nemeses: each acts for about 3 s, past the 1 s lease, then heals.
nemesis() {
    local s=$1 a b c t seed
    a=$(pick $N)
    b=$((a % N + 1))
    c=$((b % N + 1))
    seed=$RANDOM
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
    bridge) log "bridge for 3 s: cut workers $a-$c and worker $b-coordinator (each node sees three of the four, no two the same three)"
        "$lab" cut "$a" "$c"; "$lab" cut "$b" 4; sleep 3; "$lab" heal ;;
    deaf) log "worker $a hears nothing from the coordinator for 3 s (one way)"
        "$lab" deaf "$a" 4; sleep 3; "$lab" heal ;;
    flap) log "isolate worker $a and heal, every 0.5 s for 4 s"
        for t in 1 2 3 4; do "$lab" isolate "$a"; sleep 0.5; "$lab" heal; sleep 0.5; done ;;
    coord-isolate) log "isolate the coordinator for 3 s"
        "$lab" isolate 4; sleep 3; "$lab" heal ;;
    coord-kill) log "kill -9 the coordinator; restart 2 s later"
        "$lc" kill "$dir" c; sleep 2; "$lc" restart "$dir" c ;;
    rpc-lossy) log "every worker's calls: 20% lost, 20% of replies lost, for 3 s (faults seed $seed)"
        for t in $(seq $N); do faults "$t" "seed=$((seed + t));drop=0.2,drop_reply=0.2"; done
        sleep 3; for t in $(seq $N); do faults "$t" ""; done ;;
    rpc-slow) log "worker $a's calls delayed 50-600 ms, for 3 s (faults seed $seed)"
        faults "$a" "seed=$seed;delay=1,delay_ms=50-600"; sleep 3; faults "$a" "" ;;
    rpc-dup) log "every worker's calls: 50% sent twice, for 3 s (faults seed $seed)"
        for t in $(seq $N); do faults "$t" "seed=$((seed + t));dup=0.5"; done
        sleep 3; for t in $(seq $N); do faults "$t" ""; done ;;
    disk-full) log "worker $a's disk full for 3 s"
        "$lc" fill "$dir" "$a"; sleep 3; "$lc" unfill "$dir" "$a"; supervise "$a" ;;
    store-corrupt|store-lost) log "kill -9 worker $a; ${s#store-} partition stores; restart 2 s later"
        "$lc" kill "$dir" "$a"; sleep 1
        if [ "$s" = store-corrupt ]; then damage "$a" corrupt; else damage "$a" delete; fi
        sleep 1; "$lc" restart "$dir" "$a" ;;
    mixed)
        local pool k
        read -ra pool <<<"${ALL/ mixed/}"
        for k in 1 2 3; do nemesis "${pool[$((RANDOM % ${#pool[@]}))]}"; sleep 1; done ;;
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

# one SCENARIO SEED: prints "scenario seed violations partition_gap_ms cluster_gap_ms
# recovery_ms ok unknown fail" (the gaps: check's availability line)
one() {
    local s=$1 seed=$2 healed recovery=-1 rc=0 k
    dir=$(mktemp -d "/tmp/sx-chaos-$s-$seed-XXXX")
    cur=$dir
    RANDOM=$seed
    echo "scenario=$s seed=$seed (replay: SCENARIO=$s SHARDEX_TEST_SEED=$seed SEEDS=1 $0 $build)" \
        >"$dir/nemesis.log"
    SX_LAB_DISK_MB=$DISK_MB "$lc" start "$build" "$dir" $N >/dev/null
    local until=$(($(now_ms) + 20000))
    while ! settled && [ "$(now_ms)" -lt "$until" ]; do sleep 0.2; done
    "$lc" client "$dir" "$W" run --history "$dir/history" --seconds 300 --writers 6 --keys 20 \
        --seed "$seed" --run "$s-$seed" --timeout-ms 2000 >"$dir/run.out" 2>&1 &
    local wl=$!
    sleep 3
    nemesis "$s"
    "$lab" heal
    for k in $(seq $N); do "$lc" alive "$dir" "$k" && clear_faults "$k"; done
    healed=$(now_ms)
    until=$((healed + 60000))
    while [ "$(now_ms)" -lt "$until" ]; do
        if settled; then recovery=$(($(now_ms) - healed)); break; fi
        sleep 0.2
    done
    # The writers go on through the recovery and one second more, then stop.
    sleep 1
    kill -TERM "$wl" 2>/dev/null || true
    wait "$wl" || true
    "$lc" client "$dir" "$W" check --history "$dir/history" --settle-ms 60000 --verify "$SX" \
        >"$dir/check.out" 2>&1 || rc=$?
    local viol pgap cgap ok unk fail
    if [ "$rc" -ne 0 ]; then # keep the data: the tmpfs goes with stop
        for k in $(seq $N); do cp -a "$dir/w$k" "$dir/w$k-data" 2>/dev/null || true; done
    fi
    "$lc" stop "$dir" >/dev/null 2>&1 || true
    cur=""
    viol=$(sed -n 's/^violations: .*total=\([0-9]*\).*/\1/p' "$dir/check.out")
    [ -n "$viol" ] || viol="E"
    [ "$rc" -eq 0 ] || [ "$viol" != 0 ] || viol="E"
    read -r pgap cgap < <(sed -n 's/^availability: .*partition-gap-ms=\([0-9]*\) cluster-gap-ms=\([0-9]*\).*/\1 \2/p' \
        "$dir/check.out")
    read -r ok fail unk < <(sed -n 's/^operations: ok=\([0-9]*\) fail=\([0-9]*\) unknown=\([0-9]*\).*/\1 \2 \3/p' \
        "$dir/run.out" | tail -n 1)
    sed -n '2,$s/^/  # /p' "$dir/nemesis.log" >&2 # the schedule, as run (its seed replays it)
    echo "$s $seed $viol ${pgap:-0} ${cgap:-0} $recovery ${ok:-0} ${unk:-0} ${fail:-0}" | tee -a "$results"
    if [ "$viol" = 0 ] && [ "$recovery" -ge 0 ] && [ -z "${SX_CHAOS_KEEP:-}" ]; then
        rm -rf "$dir"
    else
        echo "run.sh: $s seed $seed: violations=$viol recovery=$recovery; kept $dir (nemesis.log," \
            "history, check.out, *.log); replay: SCENARIO=$s SHARDEX_TEST_SEED=$seed SEEDS=1 $0 $build" >&2
    fi
}

# The rows: SX_CHAOS_ROWS=FILE (a lane's, kept for its parent), else a
# temporary file.
results=${SX_CHAOS_ROWS:-$(mktemp)}
cur=""
lane_pids=()
# own_lab: this process runs scenarios in lab SX_LAB, so its exit removes that
# lab. A parent of lanes has none: its `down` would remove lab SX_LAB (0 when
# unset), which may be another suite's, or a deploy/lab.sh up of someone's.
own_lab=0
trap '[ ${#lane_pids[@]} -eq 0 ] || { kill -TERM "${lane_pids[@]}" 2>/dev/null; wait; }
      [ -z "$cur" ] || "$lc" stop "$cur" >/dev/null 2>&1 || true
      [ "$own_lab" = 0 ] || "$lab" down >/dev/null 2>&1 || true
      [ -n "${SX_CHAOS_ROWS:-}" ] || rm -f "$results"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
echo "scenario seed violations partition-gap-ms cluster-gap-ms recovery-ms ok unknown fail"
lanes=${LANES:-1}
{ [[ $lanes =~ ^[0-9]+$ ]] && [ "$lanes" -ge 1 ] && [ "$lanes" -le 8 ]; } ||
    { echo "run.sh: LANES='$lanes': expected 1..8" >&2; exit 2; }
if [ "$lanes" -gt 1 ]; then
    # Each lane is this script in a lab of its own with every lane-th
    # scenario; their rows are gathered into one table. The labs are the
    # first free from SX_LAB_BASE+1, held by this process until it exits
    # (deploy/lab-claim.sh: another run at once takes others).
    . "$(dirname "$lab")/lab-claim.sh"
    read -ra list <<<"$scenarios"
    lane_lab=${SX_LAB_BASE:-0}
    for l in $(seq "$lanes"); do
        mine=""
        for i in $(seq $((l - 1)) "$lanes" $((${#list[@]} - 1))); do mine="$mine ${list[$i]}"; done
        [ -n "$mine" ] || continue
        : >"$results.$l"
        sx_lab_claim $((lane_lab + 1)) 99 lane_lab || exit 1
        SX_LAB=$lane_lab LANES=1 SCENARIO="${mine# }" SHARDEX_TEST_SEED=$first SEEDS=$seeds \
            SX_CHAOS_ROWS="$results.$l" "$0" "$build" > >(grep --line-buffered -E '^[a-z-]+ [0-9]+ ') &
        lane_pids+=($!)
    done
    wait "${lane_pids[@]}" || true
    lane_pids=()
    cat "$results".* >"$results"
    rm -f "$results".*
else
    own_lab=1
    for s in $scenarios; do
        for i in $(seq 0 $((seeds - 1))); do one "$s" $((first + i)); done
    done
fi

table=$(python3 - "$results" "$ALL" <<'EOF'
import sys
order = sys.argv[2].split()
rows = sorted((l.split() for l in open(sys.argv[1]) if l.strip()),
              key=lambda r: (order.index(r[0]), int(r[1])))
def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))] if v else 0
out = ["| scenario | runs | violations | runs not recovered | partition write outage p50 / p99 ms | cluster-wide write outage p50 / p99 ms | recovery p50 / p99 ms | ok / unknown / fail ops |",
       "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
by = {}
for r in rows:
    by.setdefault(r[0], []).append(r)
for s, rs in by.items():
    viol = sum(int(r[2]) if r[2].isdigit() else 1 for r in rs)
    pg = [int(r[3]) for r in rs]
    cg = [int(r[4]) for r in rs]
    rec = [int(r[5]) for r in rs if int(r[5]) >= 0]
    lost = sum(1 for r in rs if int(r[5]) < 0)
    ops = [sum(int(r[i]) for r in rs) for i in (6, 7, 8)]
    out.append(f"| {s} | {len(rs)} | {viol} | {lost} | {pct(pg, .5)} / {pct(pg, .99)} | "
               f"{pct(cg, .5)} / {pct(cg, .99)} | {pct(rec, .5)} / {pct(rec, .99)} | "
               f"{ops[0]} / {ops[1]} / {ops[2]} |")
print("\n".join(out))
EOF
)
echo
echo "$table"
if [ -n "$doc" ]; then
    body=$(mktemp)
    {
        echo "<!-- chaos:begin -->"
        echo "Run $(date -u +%Y-%m-%d) on $(nproc) CPUs: \`SEEDS=$seeds LANES=$lanes SHARDEX_TEST_SEED=$first make chaos-lab\`" \
            "(seeds $first..$((first + seeds - 1)) per scenario; \"partition write outage\" is, per run," \
            "the longest time one log partition went without an acknowledged write, \"cluster-wide\"" \
            "the longest time with no acknowledged write anywhere; \"recovery\" the time from the" \
            "heal until every worker was alive and every ISR whole)."
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
# Exit 1 when a run found a violation or never recovered.
! awk '$3 != "0" || $6 < 0' "$results" | grep -q .
