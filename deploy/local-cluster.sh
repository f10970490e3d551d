#!/bin/sh
# A local shardex cluster on loopback: one coordinator and N workers, each a
# process with its data, log, port file and pid file under DIR.
#
#   deploy/local-cluster.sh start [--workers N] [--dir DIR] [--partitions P]
#                                 [--replication R] [--build BUILD]
#   deploy/local-cluster.sh status|stop [--dir DIR]
#   deploy/local-cluster.sh kill-worker N | restart-worker N [--dir DIR] [--build BUILD]
#
# `start` waits until every partition has a leader and a whole ISR, then
# prints the address clients should use. `stop` stops exactly the processes it
# started (from their pid files).
set -eu

cmd=${1:-}
[ -n "$cmd" ] && shift
case $cmd in -h|--help|help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
workers=3 dir=.demo/cluster partitions=8 replication=3 build=build n=""
while [ $# -gt 0 ]; do
    case $1 in
    --workers) workers=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --partitions) partitions=$2; shift 2 ;;
    --replication) replication=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    [0-9]*) n=$1; shift ;;
    *) echo "local-cluster.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
here=$(cd "$(dirname "$0")/.." && pwd)
min_isr=$(( replication < 2 ? 1 : 2 ))

# (sh has no local variables: each function uses names of its own)
wait_file() { # path pid
    wf_n=0
    while [ ! -s "$1" ]; do
        kill -0 "$2" 2>/dev/null || { echo "process $2 exited; see its log" >&2; return 1; }
        wf_n=$((wf_n + 1))
        [ $wf_n -gt 400 ] && { echo "timed out waiting for $1" >&2; return 1; }
        sleep 0.05
    done
}

start_worker() { # index
    sw_i=$1
    rm -f "$dir/w$sw_i.port"
    "$build/worker/shardex-worker" --coordinator "127.0.0.1:$(cat "$dir/coord.port")" \
        --listen 127.0.0.1:0 --data-dir "$dir/w$sw_i" --port-file "$dir/w$sw_i.port" \
        >>"$dir/w$sw_i.log" 2>&1 &
    echo $! >"$dir/w$sw_i.pid"
    wait_file "$dir/w$sw_i.port" "$(cat "$dir/w$sw_i.pid")"
}

ready() {
    /usr/bin/python3 - "$dir" "$workers" <<'PY'
import sys, time, glob, os
sys.path.insert(0, os.path.join(os.environ["SHARDEX_HOME"], "examples", "python"))
from shardex_client import Client
d, want = sys.argv[1], int(sys.argv[2])
addr = "127.0.0.1:" + open(d + "/w0.port").read().strip()
c = Client(addr, timeout=2)
end = time.time() + 60
while time.time() < end:
    try:
        s = c.status()
        alive = sum(w.alive for w in s.workers)
        ok = alive >= want and all(p.available and p.leader and all(r.in_sync for r in p.replicas)
                                   for p in s.log_partitions)
        if ok:
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.2)
print("the cluster did not become ready within 60 s", file=sys.stderr)
sys.exit(1)
PY
}

export SHARDEX_HOME="$here"
case $cmd in
start)
    mkdir -p "$dir"
    if [ -s "$dir/coord.pid" ] && kill -0 "$(cat "$dir/coord.pid")" 2>/dev/null; then
        echo "a cluster is already running in $dir (stop it first)" >&2; exit 1
    fi
    rm -f "$dir/coord.port"
    "$build/coordinator/shardex-coordinator" --listen 127.0.0.1:0 --data-dir "$dir/coord" \
        --port-file "$dir/coord.port" --partitions "$partitions" --replication "$replication" \
        --min-isr "$min_isr" --lease-ms 1000 >>"$dir/coord.log" 2>&1 &
    echo $! >"$dir/coord.pid"
    wait_file "$dir/coord.port" "$(cat "$dir/coord.pid")"
    echo "$workers" >"$dir/workers"
    i=0
    while [ $i -lt "$workers" ]; do start_worker $i; i=$((i + 1)); done
    ready
    echo "127.0.0.1:$(cat "$dir/w0.port")"
    ;;
status)
    for f in "$dir"/*.pid; do
        [ -e "$f" ] || continue
        name=$(basename "$f" .pid)
        if kill -0 "$(cat "$f")" 2>/dev/null; then st=running; else st=stopped; fi
        port=$(cat "$dir/$name.port" 2>/dev/null || echo -)
        echo "$name pid=$(cat "$f") port=$port $st"
    done
    ;;
stop)
    for f in "$dir"/w*.pid "$dir"/coord.pid; do
        [ -e "$f" ] || continue
        kill "$(cat "$f")" 2>/dev/null || true
    done
    for f in "$dir"/w*.pid "$dir"/coord.pid; do
        [ -e "$f" ] || continue
        p=$(cat "$f"); st_n=0
        while kill -0 "$p" 2>/dev/null && [ $st_n -lt 100 ]; do sleep 0.1; st_n=$((st_n + 1)); done
        kill -9 "$p" 2>/dev/null || true
        rm -f "$f"
    done
    ;;
kill-worker)
    [ -n "$n" ] || { echo "kill-worker needs a worker number" >&2; exit 2; }
    kill -9 "$(cat "$dir/w$n.pid")"
    ;;
restart-worker)
    [ -n "$n" ] || { echo "restart-worker needs a worker number" >&2; exit 2; }
    kill -9 "$(cat "$dir/w$n.pid")" 2>/dev/null || true
    start_worker "$n"
    ;;
*)
    echo "usage: local-cluster.sh start|status|stop|kill-worker N|restart-worker N [--help]" >&2
    exit 2
    ;;
esac
