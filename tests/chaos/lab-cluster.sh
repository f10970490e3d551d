#!/usr/bin/env bash
# lab-cluster.sh: a shardex cluster on the lab's hosts (deploy/lab.sh hosts),
# for the partition-failure suite. Not deploy/lab.sh up, which runs the
# packages' configs for people: the scenarios want settings of their own (a
# 1 s lease), a directory per run that a failing run keeps, tmpfs disks to
# fill, and kill -9 / SIGSTOP of one process.
#
# Workers run on hosts 1..N, the coordinator on host N+1, clients (the
# shardex tool, workloads) on host N+2; every process listens on its host's
# address with port 0 and writes a port file, so nothing guesses a port.
# State lives in DIR: DIR/coord, DIR/wK (data), DIR/*.log, DIR/*.pid,
# DIR/servers (the workers' addresses, comma-separated).
#
#   lab-cluster.sh start BUILD DIR N [P R MIN_ISR LEASE_MS]
#                                   make the lab (N+2 hosts) and start the cluster
#   lab-cluster.sh kill DIR K       kill -9 worker K (K = c: the coordinator)
#   lab-cluster.sh restart DIR K    start worker K (or c) again on its data
#   lab-cluster.sh pause DIR K      SIGSTOP;  resume DIR K: SIGCONT
#   lab-cluster.sh alive DIR K      exit 0 when worker K (or c) runs
#   lab-cluster.sh addr DIR K       worker K's HOST:PORT
#   lab-cluster.sh client DIR CMD...  run CMD on the client host, with
#                                   SHARDEX_SERVER set to the workers
#   lab-cluster.sh fill DIR K       fill worker K's disk (SX_LAB_DISK_MB)
#   lab-cluster.sh unfill DIR K     give the space back
#   lab-cluster.sh stop DIR         kill everything, unmount, remove the lab
#
# SX_LAB_DISK_MB=M at start: each worker's data directory is a tmpfs of M
# MiB, so that `fill` gives it a full disk (ENOSPC) without touching the
# machine's own disks.
#
# Root only (the lab is). Partitions: deploy/lab.sh cut / deaf / isolate /
# heal on the hosts named above.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
lab="$(cd "$here/../../deploy" && pwd)/lab.sh" # the hosts: shared with deploy/

die() {
    echo "lab-cluster.sh: $*" >&2
    exit 2
}

# wait_port FILE: the port a process wrote, within 10 s.
wait_port() {
    for _ in $(seq 100); do
        if [ -s "$1" ]; then
            cat "$1"
            return 0
        fi
        sleep 0.1
    done
    die "no port in $1 after 10 s (see its log)"
}

n_of() { cat "$1/n"; }
build_of() { cat "$1/build"; }

# host_of DIR K: the lab host of worker K, or of the coordinator (c).
host_of() {
    local n
    n=$(n_of "$1")
    if [ "$2" = c ]; then echo $((n + 1)); else echo "$2"; fi
}

start_coordinator() {
    local dir=$1 n host addr
    n=$(n_of "$dir")
    host=$((n + 1))
    addr=$("$lab" addr "$host")
    # A restart keeps the port the kernel chose the first time: the workers
    # know the coordinator by it (nothing else listens in this namespace).
    local port=0 was
    if [ -f "$dir/coord.addr" ]; then
        was=$(cat "$dir/coord.addr")
        port=${was##*:}
    fi
    rm -f "$dir/coord.port"
    # shellcheck disable=SC2046 # coord.flags holds several flags, one word each
    ("$lab" exec "$host" "$(build_of "$dir")/coordinator/shardex-coordinator" \
        --listen "$addr:$port" --port-file "$dir/coord.port" --data-dir "$dir/coord" \
        $(cat "$dir/coord.flags") >>"$dir/coord.log" 2>&1 &
        echo $! >"$dir/c.pid")
    echo "$addr:$(wait_port "$dir/coord.port")" >"$dir/coord.addr"
}

start_worker() {
    local dir=$1 k=$2 addr
    addr=$("$lab" addr "$k")
    rm -f "$dir/w$k.port"
    ("$lab" exec "$k" "$(build_of "$dir")/worker/shardex-worker" \
        --coordinator "$(cat "$dir/coord.addr")" --listen "$addr:0" \
        --port-file "$dir/w$k.port" --data-dir "$dir/w$k" --allow-faults >>"$dir/w$k.log" 2>&1 &
        echo $! >"$dir/$k.pid")
    wait_port "$dir/w$k.port" >/dev/null
}

start() {
    local build dir n
    build=$(cd "$1" && pwd)
    dir=$2
    n=$3
    { [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 32 ]; } || die "start: N must be in 1..32"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ -n "${SX_LAB_DISK_MB:-}" ]; then
        { [[ $SX_LAB_DISK_MB =~ ^[0-9]+$ ]] && [ "$SX_LAB_DISK_MB" -ge 8 ]; } ||
            die "SX_LAB_DISK_MB='$SX_LAB_DISK_MB': expected MiB, at least 8"
        local k
        for k in $(seq 1 "$n"); do
            mkdir -p "$dir/w$k"
            mount -t tmpfs -o "size=${SX_LAB_DISK_MB}m" "sxlab-disk" "$dir/w$k"
        done
    fi
    echo "$build" >"$dir/build"
    echo "$n" >"$dir/n"
    echo "--partitions ${4:-8} --replication ${5:-3} --min-isr ${6:-2} --lease-ms ${7:-1000}" \
        >"$dir/coord.flags"
    "$lab" hosts $((n + 2))
    start_coordinator "$dir"
    local servers="" k
    for k in $(seq 1 "$n"); do
        start_worker "$dir" "$k"
        servers="$servers${servers:+,}$("$lab" addr "$k"):$(cat "$dir/w$k.port")"
    done
    echo "$servers" >"$dir/servers"
    echo "$servers"
}

stop() {
    local dir=$1 m
    "$lab" down
    # The tmpfs data directories (SX_LAB_DISK_MB), deepest first.
    for m in $(findmnt -rn -o TARGET | grep "^$(cd "$dir" && pwd)/" | sort -r); do
        umount "$m"
    done
}

# fill DIR K: write zeros into worker K's data directory until it is full.
fill() {
    mountpoint -q "$1/w$2" || die "fill: $1/w$2 is not a tmpfs (start with SX_LAB_DISK_MB)"
    dd if=/dev/zero of="$1/w$2/sxlab-fill" bs=64k 2>/dev/null || true
}

signal() { # signal DIR K SIG
    local pidf="$1/$2.pid"
    [ -f "$pidf" ] || die "no process $2 in $1"
    kill "-$3" "$(cat "$pidf")" 2>/dev/null || true
}

cmd=${1:-}
[ -n "$cmd" ] || die "usage: lab-cluster.sh start BUILD DIR N [P R MIN_ISR LEASE_MS] | kill|restart|pause|resume|alive|addr|fill|unfill DIR K | client DIR CMD... | stop DIR"
shift
case "$cmd" in
start)
    [ $# -ge 3 ] || die "usage: lab-cluster.sh start BUILD DIR N [P R MIN_ISR LEASE_MS]"
    start "$@"
    ;;
kill) signal "$1" "$2" KILL ;;
pause) signal "$1" "$2" STOP ;;
resume) signal "$1" "$2" CONT ;;
restart)
    [ $# -eq 2 ] || die "usage: lab-cluster.sh restart DIR K"
    if [ "$2" = c ]; then start_coordinator "$1"; else start_worker "$1" "$2"; fi
    ;;
client)
    [ $# -ge 2 ] || die "usage: lab-cluster.sh client DIR CMD..."
    dir=$1
    shift
    SHARDEX_SERVER=$(cat "$dir/servers") exec "$lab" exec $(($(n_of "$dir") + 2)) "$@"
    ;;
stop)
    [ $# -eq 1 ] || die "usage: lab-cluster.sh stop DIR"
    stop "$1"
    ;;
alive)
    [ $# -eq 2 ] || die "usage: lab-cluster.sh alive DIR K"
    [ -f "$1/$2.pid" ] && kill -0 "$(cat "$1/$2.pid")" 2>/dev/null
    ;;
addr)
    [ $# -eq 2 ] || die "usage: lab-cluster.sh addr DIR K"
    echo "$("$lab" addr "$2"):$(cat "$1/w$2.port")"
    ;;
fill)
    [ $# -eq 2 ] || die "usage: lab-cluster.sh fill DIR K"
    fill "$1" "$2"
    ;;
unfill)
    [ $# -eq 2 ] || die "usage: lab-cluster.sh unfill DIR K"
    rm -f "$1/w$2/sxlab-fill"
    ;;
host) host_of "$@" ;;
*) die "unknown command '$cmd'" ;;
esac
