#!/usr/bin/env bash
# bench/run.sh BUILD_DIR: runs the benchmarks already built in BUILD_DIR (`make
# bench` builds first) and rewrites their sections of docs/benchmarks.md, each
# between its marker comments; the rest of the file is kept as it is.
#
#   BENCH_RPC_ARGS="--rounds 9 --seconds 3" bench/run.sh build   # extra options
#   BENCH_WRITE_ARGS="--rounds 7" bench/run.sh build             # likewise for bench_write
#   BENCH_INDEX_ARGS="--rounds 5" bench/run.sh build             # likewise for bench_index
#   BENCH_PEERS_ARGS="--rounds 1 --seconds 1 --docs 5000" bench/run.sh build  # bench_peers
#   BENCH_RESTART_ARGS="--rounds 5" bench/run.sh build           # likewise for bench_restart
#   BENCH_FAILOVER_ARGS="--rounds 5" bench/run.sh build          # likewise for bench_failover
#   BENCH_TAIL_ARGS="--rounds 5" bench/run.sh build              # likewise for bench_tail
#   BENCH_RANGE_ARGS="--rounds 5" bench/run.sh build             # likewise for bench_range
#   BENCH_HOT_ARGS="--rounds 3 --cpu-quota 0.25" bench/run.sh build  # likewise for bench_hot
#   BENCH_RETENTION_ARGS="--repeat 3" bench/run.sh build          # likewise for bench_retention
#   BENCH_SNAPSHOT_ARGS="--repeat 3" bench/run.sh build           # likewise for bench_snapshot
#   BENCH_BACKFILL_ARGS="--docs 200000" bench/run.sh build       # likewise for bench_backfill
#   BENCH_ONLY="index" bench/run.sh build                        # only these sections (rpc write index peers restart failover tail range retention snapshot backfill hot)
#
# Plots: bench_index and bench_peers also write TSV files (--tsv), which
# bench/plot.sh draws into docs/*.png (gnuplot) once each benchmark has run;
# their sections show them.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
build_arg=$1
doc=$root/docs/benchmarks.md

bin=$build/bench/bench_rpc
write_bin=$build/bench/bench_write
index_bin=$build/bench/bench_index
peers_bin=$build/bench/bench_peers
only=" ${BENCH_ONLY:-rpc write index peers restart failover tail range retention snapshot backfill hot} "
selected() { [[ $only == *" $1 "* ]]; }
for name in rpc write index peers restart failover tail range retention snapshot backfill hot; do
    b=$build/bench/bench_$name
    if selected "$name" && [ ! -x "$b" ]; then
        echo "run.sh: $b is not built (make bench builds it; bench_peers needs libpq-dev)" >&2
        exit 1
    fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Machine description, shared by every section.
model=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
grpc_pkg=$(dpkg-query -W -f='${Version}' libgrpc-dev 2>/dev/null || echo unknown)
machine="$(nproc) CPUs, ${model:-unknown model}, Linux $(uname -r), gRPC core $(pkg-config --modversion grpc 2>/dev/null || echo '?') (Debian libgrpc-dev ${grpc_pkg})"

# Replaces the text between <!-- bench:NAME:begin --> and <!-- bench:NAME:end -->
# in $doc with the file $2 (markers included in $2), or appends it.
replace_section() {
    local name=$1 body=$2
    local begin="<!-- bench:${name}:begin -->" end="<!-- bench:${name}:end -->"
    if [ ! -f "$doc" ]; then
        mkdir -p "$(dirname "$doc")"
        printf '# Benchmarks\n\nSee /work/shared/BENCHMARKING.md for how we measure.\n' >"$doc"
    fi
    if grep -qF "$begin" "$doc"; then
        awk -v begin="$begin" -v end="$end" -v body="$body" '
            $0 == begin { while ((getline line < body) > 0) print line; skip = 1; next }
            $0 == end   { skip = 0; next }
            !skip       { print }
        ' "$doc" >"$tmp/doc"
    else
        { cat "$doc"; printf '\n'; cat "$body"; } >"$tmp/doc"
    fi
    cp "$tmp/doc" "$doc"
}

# Runs bench_NAME from the root with BENCH_<NAME>_ARGS, its report in
# $tmp/NAME.out. When it fails its output goes to stderr and run.sh stops,
# leaving NAME's section as it was. Sets bench_cmd (the command as the
# section names it), load_before and load_after (1, 5, 15 min).
run_bench() {
    local bin=$build/bench/bench_$1 var
    var=BENCH_$(echo "$1" | tr '[:lower:]' '[:upper:]')_ARGS
    # shellcheck disable=SC2206  # word splitting of the extra options is intended
    local args=(${!var:-})
    bench_cmd="${bin#"$root"/}${args[*]:+ ${args[*]}}"
    echo "run.sh: $bench_cmd" >&2
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    if ! (cd "$root" && "$bin" "${args[@]}") >"$tmp/$1.out"; then
        cat "$tmp/$1.out" >&2
        echo "run.sh: bench_$1 failed; its section of docs/benchmarks.md left as it was" >&2
        exit 1
    fi
    load_after=$(cut -d' ' -f1-3 /proc/loadavg)
}

# Writes section NAME of $doc after run_bench NAME: the title, the date, the
# command, the lines on stdin (machine, subject, baseline), the report.
write_section() {
    local name=$1 title=$2
    {
        echo "<!-- bench:$name:begin -->"
        echo "## $title"
        echo
        echo "Written by \`bench/run.sh\`; do not edit by hand."
        echo
        echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "- Command: \`$bench_cmd\` (run by \`make bench\`, i.e. \`bench/run.sh $build_arg\`; \`BENCH_ONLY=$name\` for this section alone)"
        cat
        echo
        cat "$tmp/$name.out"
        echo "<!-- bench:$name:end -->"
    } >"$tmp/$name.md"
    replace_section "$name" "$tmp/$name.md"
    echo "run.sh: wrote the $name section of ${doc#"$root"/}" >&2
}

# Markdown image lines for the plots among NAME TITLE pairs whose data
# (DATA_DIR/NAME.tsv) this run wrote; bench/plot.sh drew them into docs/.
plot_links() {
    local data=$1
    shift
    while [ $# -ge 2 ]; do
        if [ -f "$data/$1.tsv" ]; then
            echo
            echo "![$2]($1.png)"
        fi
        shift 2
    done
}

# ---- RPC layer vs raw gRPC core ----
if selected rpc; then
# shellcheck disable=SC2206  # word splitting of the extra options is intended
rpc_args=(--pin ${BENCH_RPC_ARGS:-})
rel_bin=${bin#"$root"/}
echo "run.sh: $rel_bin ${rpc_args[*]}" >&2
if ! (cd "$root" && "$bin" "${rpc_args[@]}") >"$tmp/rpc.out"; then
    cat "$tmp/rpc.out" >&2
    echo "run.sh: bench_rpc failed; docs/benchmarks.md left as it was" >&2
    exit 1
fi
{
    echo "<!-- bench:rpc:begin -->"
    echo "## RPC layer vs raw gRPC core"
    echo
    echo "Written by \`bench/run.sh\`; do not edit by hand."
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Command: \`$rel_bin ${rpc_args[*]}\` (run by \`make bench\`, i.e. \`bench/run.sh $1\`)"
    echo "- Machine: $machine"
    echo "- Subject: \`sx_rpc_server\` serving the test Echo service (\`Echo\` is an inline handler),"
    echo "  called with \`sx_rpc_invoke\` (sequential) and \`sx_rpc_invoke_async\` (in flight)."
    echo "- Baseline: a minimal echo on the bare gRPC C core in the same binary: a server with one"
    echo "  registered method (\`GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER\`) and one completion-queue"
    echo "  thread replying with the bytes it received; a client making one 6-op batch per call on a"
    echo "  registered call handle (a reused pluck queue when sequential, one queue thread keeping the"
    echo "  calls in flight otherwise). Same method path, same request bytes, same 5 s deadline,"
    echo "  retries off in both clients; each server and each client is its own process."
    echo "- Ratios are layer / raw: throughput below 1 and CPU above 1 are the layer's cost."
    echo "  Server CPU is utime + stime of the server process (\`/proc/PID/stat\`, 10 ms ticks);"
    echo "  client CPU is \`getrusage\` of the client process; both per completed call."
    echo
    cat "$tmp/rpc.out"
    echo "<!-- bench:rpc:end -->"
} >"$tmp/rpc.md"
replace_section rpc "$tmp/rpc.md"
echo "run.sh: wrote the rpc section of ${doc#"$root"/}" >&2
fi

# ---- Write path: acknowledged documents per second vs raw LevelDB ----
if selected write; then
# shellcheck disable=SC2206  # word splitting of the extra options is intended
write_args=(${BENCH_WRITE_ARGS:-})
rel_write_bin=${write_bin#"$root"/}
echo "run.sh: $rel_write_bin ${write_args[*]}" >&2
if ! (cd "$root" && "$write_bin" "${write_args[@]}") >"$tmp/write.out"; then
    cat "$tmp/write.out" >&2
    echo "run.sh: bench_write failed; its section of docs/benchmarks.md left as it was" >&2
    exit 1
fi
leveldb_pkg=$(dpkg-query -W -f='${Version}' libleveldb-dev 2>/dev/null || echo unknown)
tmp_fs=$(df -PT "${TMPDIR:-/tmp}" | awk 'NR == 2 { print $2 " on " $1 }')
{
    echo "<!-- bench:write:begin -->"
    echo "## Write path: acknowledged documents per second"
    echo
    echo "Written by \`bench/run.sh\`; do not edit by hand."
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Command: \`$rel_write_bin${write_args[*]:+ ${write_args[*]}}\` (run by \`make bench\`, i.e. \`bench/run.sh $1\`)"
    echo "- Machine: $machine; LevelDB $leveldb_pkg (Debian libleveldb-dev); data in ${TMPDIR:-/tmp} ($tmp_fs)"
    echo "- Subject: \`Put\` on real clusters started by the benchmark (\`tests/support/cluster.h\`): a"
    echo "  coordinator and 3 workers as processes on loopback, R=1 (min_isr 1) and R=3 (min_isr 2),"
    echo "  both settled (every ISR whole) before the first window. A document counts once its"
    echo "  Put is acknowledged: committed by min_isr replicas and applied by the leader."
    echo "- Baseline: raw LevelDB through \`common/store.h\` in the benchmark process: one thread, one"
    echo "  store, synced batches of the same documents, as many per batch as per Put, in a replica's"
    echo "  key layout (\`worker/plog.h\`: per document \`L\` offset -> epoch + LogOp and \`D\` id ->"
    echo "  version + Document; the two \`M\` keys per batch), i.e. a replica's append and apply"
    echo "  folded into one synced write. Ratios are cluster / raw in the same round."
    echo "- Goals: R=1 at least 0.5x raw LevelDB, R=3 at least 0.25x."
    echo "- CPU: cluster = utime + stime of its coordinator and workers (\`/proc/PID/stat\`, 10 ms"
    echo "  ticks); bench process = the load generator (for raw: the writer and LevelDB's"
    echo "  compaction thread), \`getrusage\`; both per acknowledged (written) document."
    echo
    cat "$tmp/write.out"
    echo "<!-- bench:write:end -->"
} >"$tmp/write.md"
replace_section write "$tmp/write.md"
echo "run.sh: wrote the write section of ${doc#"$root"/}" >&2
fi

# run_plotted NAME BIN ARGS...: runs a benchmark that writes TSV for the plots
# (--tsv), its Markdown into $tmp/NAME.out, then draws its plots into docs/.
# A failed run leaves its section of docs/benchmarks.md as it was.
run_plotted() {
    local name=$1 bin=$2
    shift 2
    mkdir -p "$tmp/$name-data"
    echo "run.sh: ${bin#"$root"/} $*" >&2
    if ! (cd "$root" && "$bin" "$@" --tsv "$tmp/$name-data") >"$tmp/$name.out"; then
        cat "$tmp/$name.out" >&2
        echo "run.sh: bench_$name failed; its section of docs/benchmarks.md left as it was" >&2
        exit 1
    fi
    "$root/bench/plot.sh" "$tmp/$name-data" "$root/docs"
}

# ---- Indexes: GLOBAL lag behind acknowledged writes; LOCAL vs GLOBAL queries by P ----
if selected index; then
# shellcheck disable=SC2206  # word splitting of the extra options is intended
index_args=(${BENCH_INDEX_ARGS:-})
rel_index_bin=${index_bin#"$root"/}
load_before=$(cut -d' ' -f1 /proc/loadavg)
run_plotted index "$index_bin" "${index_args[@]}"
leveldb_pkg=$(dpkg-query -W -f='${Version}' libleveldb-dev 2>/dev/null || echo unknown)
tmp_fs=$(df -PT "${TMPDIR:-/tmp}" | awk 'NR == 2 { print $2 " on " $1 }')
load_after=$(cut -d' ' -f1 /proc/loadavg)
{
    echo "<!-- bench:index:begin -->"
    echo "## Indexes: GLOBAL lag behind writes, LOCAL vs GLOBAL queries"
    echo
    echo "Written by \`bench/run.sh\`; do not edit by hand."
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Command: \`$rel_index_bin${index_args[*]:+ ${index_args[*]}}\` (run by \`make bench\`, i.e. \`bench/run.sh $1\`; plus \`--tsv\` for the plots)"
    echo "- Machine: $machine; LevelDB $leveldb_pkg (Debian libleveldb-dev); data in ${TMPDIR:-/tmp} ($tmp_fs);"
    echo "  1-minute load average $load_before before the run, $load_after after it (other work shares"
    echo "  the machine). Two shared cores run the 4 cluster processes, the load and the probes"
    echo "  together: absolute figures are **noisy** (15% or more between runs, much more while other"
    echo "  work runs); read the same-run ratios first. No CPU pinning."
    echo "- Subject: a fresh cluster per configuration started by the benchmark (\`tests/support/cluster.h\`):"
    echo "  a coordinator and 3 workers as processes on loopback, settled (every ISR whole) before"
    echo "  anything is written; documents preloaded, then indexes created and backfilled (READY)."
    echo "- Baselines, in the same run: for the GLOBAL index's lag, the same probe measuring when the"
    echo "  write is visible in the LOCAL index (applied before the Put is acknowledged, so this is the"
    echo "  probe's own floor), in alternating windows under the same Put load; for GLOBAL queries,"
    echo "  LOCAL queries on the same cluster and data, in alternating windows."
    echo "- Goals (from the issue): GLOBAL visible p50 <= 5 ms and p99 <= 50 ms after the Put's"
    echo "  acknowledgement at half the maximum ingest rate; GLOBAL query p99 flat in P (P=16 within"
    echo "  1.2x of P=2)."
    echo "- CPU: cluster = utime + stime of its coordinator and workers (\`/proc/PID/stat\`, 10 ms"
    echo "  ticks); bench = this load generator (\`getrusage\`); per query, or per acknowledged document."
    echo
    cat "$tmp/index.out"
    plot_links "$tmp/index-data" index_partitions "Equality query latency against log partitions P, GLOBAL and LOCAL" \
        index_lag "GLOBAL index lag against offered load"
    echo "<!-- bench:index:end -->"
} >"$tmp/index.md"
replace_section index "$tmp/index.md"
echo "run.sh: wrote the index section of ${doc#"$root"/}" >&2
fi

# ---- shardex against PostgreSQL on the Debian catalogue ----
if selected peers; then
# shellcheck disable=SC2206  # word splitting of the extra options is intended
peers_args=(${BENCH_PEERS_ARGS:-})
rel_peers_bin=${peers_bin#"$root"/}
load_before=$(cut -d' ' -f1 /proc/loadavg)
run_plotted peers "$peers_bin" "${peers_args[@]}"
pg_pkg=$(dpkg-query -W -f='${Version}' postgresql-15 2>/dev/null || echo unknown)
tmp_fs=$(df -PT "${TMPDIR:-/tmp}" | awk 'NR == 2 { print $2 " on " $1 }')
load_after=$(cut -d' ' -f1 /proc/loadavg)
{
    echo "<!-- bench:peers:begin -->"
    echo "## shardex against PostgreSQL on the Debian catalogue"
    echo
    echo "Written by \`bench/run.sh\`; do not edit by hand."
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Command: \`$rel_peers_bin${peers_args[*]:+ ${peers_args[*]}}\` (run by \`make bench\`, i.e. \`bench/run.sh $1\`; plus \`--tsv\` for the plots)"
    echo "- Machine: $machine; PostgreSQL $pg_pkg (Debian postgresql-15); data in ${TMPDIR:-/tmp} ($tmp_fs);"
    echo "  1-minute load average $load_before before the run, $load_after after it. Two shared cores run"
    echo "  the server under test and this load generator together: absolute figures are **noisy**;"
    echo "  read the same-run ratios first. No CPU pinning."
    echo "- Subject: shardex clusters started by the benchmark (\`tests/support/cluster.h\`): a coordinator"
    echo "  and 3 workers as processes on loopback, P=8, R=1 (min_isr 1) and R=3 (min_isr 2), default"
    echo "  \`--fsync batch\`; indexes maintainer and section (strings) and installed-size (int), each"
    echo "  LOCAL and GLOBAL, as \`make demo\` creates them."
    echo "- Baseline, in the same run: PostgreSQL, the peer a user would pick instead, on the same"
    echo "  machine and the same documents: a private server the benchmark starts (\`initdb\` and"
    echo "  \`pg_ctl\` in a temporary directory, a Unix socket only, \`fsync\` and"
    echo "  \`synchronous_commit\` on, other settings at their defaults) and removes at the end; table"
    echo "  \`docs(id text primary key, body jsonb)\` with btree indexes on \`(body->>'Maintainer')\`,"
    echo "  \`(body->>'Section')\` and \`((body->>'Installed-Size')::bigint)\`."
    echo "- Clients, all in the benchmark process: for shardex a **plain gRPC client** that knows nothing"
    echo "  of the map (each Put or Query page straight to the next worker, round-robin, as a grpcio or"
    echo "  grpcurl user does: the goals are for it) and **libshardex**; for PostgreSQL libpq."
    echo "- Ratios are shardex / PostgreSQL in the same round: above 1 shardex does more work per"
    echo "  second; for latency, below 1 shardex answers sooner."
    echo "- Goals (issue 12): ingest at 4 clients at least 1.0x PostgreSQL with R=1 and 0.5x with R=3;"
    echo "  GLOBAL equality at least 1.0x PostgreSQL's queries/s at 8 clients and a p50 at most 1.5x"
    echo "  PostgreSQL's at 1 client; the hottest value and the range at least 1.0x at 8 clients."
    echo "- CPU: server = PostgreSQL's postmaster and every process below it (backends included), or"
    echo "  the cluster's coordinator and workers, from \`/proc\` (10 ms ticks); bench = this load"
    echo "  generator (\`getrusage\`: the client threads); per document or per query."
    echo
    cat "$tmp/peers.out"
    plot_links "$tmp/peers-data" peers_throughput "Throughput against clients, PostgreSQL and shardex" \
        peers_latency "Latency p50 and p99 against clients, PostgreSQL and shardex"
    echo "<!-- bench:peers:end -->"
} >"$tmp/peers.md"
replace_section peers "$tmp/peers.md"
echo "run.sh: wrote the peers section of ${doc#"$root"/}" >&2
fi

# ---- Rolling restart: the write pause, graceful against kill -9 ----
if selected restart; then
run_bench restart
tmp_fs=$(df -PT "${TMPDIR:-/tmp}" | awk 'NR == 2 { print $2 " on " $1 }')
write_section restart "Rolling restart: the write pause, graceful against kill -9" <<EOF
- Machine: $machine; data in ${TMPDIR:-/tmp} ($tmp_fs);
  load average (1, 5, 15 min) $load_before before the run, $load_after after it. Other work
  shares the 2 cores: absolute figures are **noisy**; read the same-run ratio first.
- Subject: a **graceful** stop (SIGTERM): the worker admits no new write as a leader, answers
  the ones it accepted, asks the coordinator to move its leaderships and term partitions at
  once (\`Coordinator.LeaveWorker\`), installs the answer and exits (issue 15).
- Baseline, in the same run (alternate rolling restarts): **kill -9**, what a crash or an
  unmanaged restart costs: the leaders drop the dead follower from their ISRs when it lags,
  and its leaderships move when the coordinator's lease on it runs out.
- Must hold: no write fails during a graceful stop (the verdict line below the tables; every
  failed write is listed). The run itself fails (exit 1, this section left as it was) only
  when an acknowledged document is not read back at the end (Get through libshardex, fields
  checked) or the replicas disagree (\`tests/support/checker.h\`).
EOF
fi

# ---- Coordinator failover: the write pause a kill -9 of the leader causes ----
if selected failover; then
run_bench failover
etcd_pkg=$(dpkg-query -W -f='${Version}' etcd-server 2>/dev/null || echo unknown)
tmp_fs=$(df -PT "${TMPDIR:-/tmp}" | awk 'NR == 2 { print $2 " on " $1 }')
write_section failover "Coordinator failover: the write pause a kill -9 of the leader causes" <<EOF
- Machine: $machine; etcd $etcd_pkg (Debian etcd-server); data in ${TMPDIR:-/tmp} ($tmp_fs);
  load average (1, 5, 15 min) $load_before before the run, $load_after after it. Other work
  shares the 2 cores: absolute figures are **noisy**; read the same-run ratio first.
- Subject: three coordinators on a three-member etcd cluster (\`--metadata etcd://...\`,
  \`--metadata-lease 2s\`), the leader (the one etcd's leader key names) killed -9 each round;
  a follower takes over once the leader's etcd lease has run out, and the killed one is
  started again and follows (issue 13).
- Baseline, in the same run (alternate rounds): one coordinator on its embedded store killed
  -9 and started again at once on its port and data, as a supervisor would: the pause a
  crash of today's single coordinator costs when it comes straight back.
- Goal (issue 13): write pause p99 <= 3 s over 20 rounds, nothing lost. The run itself fails
  (exit 1, this section left as it was) when an acknowledged document is not read back at
  the end or the replicas disagree (\`tests/support/checker.h\`).
EOF
fi

# ---- LOCAL query tail latency with one slow worker: budgets and hedging ----
if selected tail; then
run_bench tail
write_section tail "LOCAL query tail latency with one slow worker: budgets and hedged reads" <<EOF
- Machine: $machine; load average (1, 5, 15 min) $load_before before the run, $load_after after it
  (other work shares the machine: absolute figures are noisy; read the same-run ratios first).
  No CPU pinning.
- Subject: \`QueryRequest.budget_ms\` (partial answers naming the missing partitions) and
  \`max_staleness_ms\` (a slow leader's scan hedged to a follower that proves its staleness),
  docs/architecture.md "Budgets, partial answers and hedged reads".
- Baseline, in the same run: the same queries with no budget (a LOCAL query waits for its
  slowest partition); the reference rows have no slow worker. Load: closed loop (each caller
  sends its next query when the last returns), so a configuration that answers faster also
  sends more queries.
EOF
fi

# ---- GLOBAL range queries: hash vs range partitioning against the range's width ----
if selected range; then
run_bench range
write_section range "GLOBAL range queries: hash vs range partitioning" <<EOF
- Machine: $machine; load average (1, 5, 15 min) $load_before before the run, $load_after after it
  (other work shares the machine: absolute figures are noisy; read the same-run ratios first).
  No CPU pinning.
- Subject: \`IndexSpec.partitioning = PARTITIONING_RANGE\` (docs/indexes.md, "Range
  partitioning"): a range query reads only the term partitions whose value ranges it meets.
- Baseline, in the same run: the same queries on a hash-partitioned index of the same field
  with as many term partitions, which reads all of them for any range.
- Second table, the online split (docs/indexes.md "Online split"): queries inside the range
  index's first term partition before it splits and after the swap (every worker planning with
  the new layout), on the same cluster; the baseline is the same queries before the split.
EOF
fi

# ---- One hot value of a GLOBAL index, unsalted and salted, on shared and capped cores ----
if selected hot; then
# bench_hot puts each worker of its capped configuration in a cgroup of its
# own (shardex-bench-hot.PID.wN) and removes them on every exit it controls;
# after a kill -9 of it the workers die with it, leaving empty groups: remove
# those on any exit of run.sh (rmdir refuses a group that still has processes).
trap 'rm -rf "$tmp"; rmdir /sys/fs/cgroup/cpu/shardex-bench-hot.* 2>/dev/null || true' EXIT
run_bench hot
write_section hot "One hot value of a GLOBAL index: unsalted against salted, shared and capped cores" <<EOF
- Machine: $machine; load average (1, 5, 15 min) $load_before before the run, $load_after after it
  (other work shares the machine: absolute figures are noisy; read the same-run ratios first).
  No CPU pinning.
- Subject: \`shardex index salt\` (docs/indexes.md, "Hot values"): the value's entries spread
  over K = 8 term partitions (the default \`--hot-value-ways\`, all of the index's 8) by a hash of
  the id, so over every owner; an equality query on it reads all 8.
- Baseline, in the same run on the same cluster, alternating windows: the same writes of the
  same hot value to a second, unsalted index, every entry going to its one term partition on
  one owner.
- Configurations, each on a fresh cluster of 8 workers (P = M = 8: each leads one log partition,
  follows two and owns one term partition of each index, so the hot value's owner does the
  others' work plus indexing every change of the value). **Uncapped, R=3**: every process shares
  the machine's cores, so the owner borrows the CPU the others leave idle. **Capped**: each worker
  in a cgroup v1 cpu group of its own with a CFS quota (a share of one core per 10 ms period),
  which models separate small machines: the owner has only its own share, while the load
  generator and the coordinator keep the rest of the cores; at R=3, and at R=1, where a worker
  has only its own leaders' log work (1/8 of it, about a machine's share of a 24-machine cluster
  at R=3), so indexing is a larger part of the owner's work. Skipped, with the reason, when not
  root or no cgroup v1 cpu controller.
- Reading it: acked docs/s is what the writers saw acknowledged; indexed docs/s counts a
  window's writes over the time until the term partitions had them all, and the catch-up is the
  part of that after the last acknowledgement (the owner's backlog); the read-your-writes wait is
  how long an eq query with every token acknowledged so far waited during the writes. The owner's
  CPU per document against each other worker's is the ceiling of salting's write gain: salting
  can take at most that difference off the owner.
EOF
fi

# ---- Log retention: disk use and write rate against keeping the whole log ----
if selected retention; then
run_bench retention
write_section retention "Log retention: disk use and write rate when the same documents are overwritten" <<EOF
- Machine: $machine; load average (1, 5, 15 min) $load_before before the run, $load_after after it
  (other work shares the machine: absolute figures are noisy; read the same-run ratios first).
  No CPU pinning.
- Subject: \`--log-retention-entries\` (docs/architecture.md "Log retention"); each
  configuration on a fresh cluster (3 workers, P=4, R=3), one caller, Puts of 50 documents.
- Baseline, in the same run: retention off (every replica keeps its whole log).
- Reading it: the pad of each document is one repeated letter, which LevelDB's snappy
  compresses, so bytes understate both rows; disk falls only once trims pass 65,536
  entries per partition (the plog then compacts the trimmed range), and what remains is
  mostly LevelDB's write-ahead logs and memtables (up to about 8 MiB per store).
- A new replica's catch-up time, from a snapshot against a full-log copy: the next section.
EOF
fi

# ---- Snapshots: a new replica's catch-up time against a copy of the whole log ----
if selected snapshot; then
run_bench snapshot
write_section snapshot "Snapshots: a new replica's catch-up time against log size and live data" <<EOF
- Machine: $machine; load average (1, 5, 15 min) $load_before before the run, $load_after after it
  (other work shares the machine: absolute figures are noisy; read the same-run ratios first).
  No CPU pinning.
- Subject: \`--log-retention min\`: the leaders keep about 1,000 entries beyond what every
  replica applied, and a replica the log no longer reaches copies a snapshot of the leader's
  store (docs/architecture.md "Snapshots"); each configuration on a fresh cluster (3 workers,
  P=2, R=3), worker 2 emptied and restarted after the writes.
- Baseline, in the same run: \`--log-retention off\`: the new replica copies and applies the
  whole log.
- Reading it: the time runs from the restart until the map has worker 2 in every ISR, so it
  includes the worker's start and registration (the same in both rows); a snapshot's cost
  follows the live data, a log copy's the number of writes.
EOF
fi

# ---- Index backfill: its rate, and the write latency beside it ----
if selected backfill; then
run_bench backfill
write_section backfill "Index backfill in chunks: its rate and the write p99 beside it" <<EOF
- Machine: $machine; load average (1, 5, 15 min) $load_before before the run, $load_after after it
  (other work shares the machine: absolute figures are noisy; read the same-run ratios first).
  No CPU pinning.
- Subject: an index created on a loaded partition (docs/indexes.md, "Backfill in chunks"),
  backfilled by the worker's backfill thread throttled by \`--backfill-max-write-p99\`
  (the default 50ms, and 5ms, which the throttle must act on) and unthrottled (0); each on a
  fresh cluster, rotating the order.
- Baseline, in the same run: the same caller's Puts for a few seconds before the index is
  created (no backfill).
- Reading it: the backfill's time runs from CreateIndex to READY as ListIndexes shows it, so
  it includes the marker's append and up to a heartbeat of reporting. A bound near the writes'
  own p99 (5ms on a loaded machine) holds the throttle at its floor for long stretches (chunks
  of 10, pauses up to 1 s): the rounds of that row vary most in time.
EOF
fi
