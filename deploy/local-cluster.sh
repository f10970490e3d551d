#!/bin/sh
# A local shardex cluster on loopback: one coordinator and N workers, each a
# process with its data, log, port file and pid file under DIR.
#
#   deploy/local-cluster.sh start [--workers N] [--dir DIR] [--partitions P]
#                                 [--replication R] [--build BUILD]
#                                 [--coordinators C]
#   deploy/local-cluster.sh status|stop [--dir DIR]
#   deploy/local-cluster.sh kill-worker N | restart-worker N [--dir DIR] [--build BUILD]
#   deploy/local-cluster.sh kill-coordinator [--dir DIR]   (the leading one)
#
# With --coordinators C > 1, the metadata lives in etcd: C etcd members (one
# cluster) and C coordinators on it, which elect one leader; the workers are
# given every coordinator's address. `start` waits until every partition has
# a leader and a whole ISR, then prints the address clients should use.
# `stop` stops exactly the processes it started (from their pid files).
set -eu

cmd=${1:-}
[ -n "$cmd" ] && shift
case $cmd in -h|--help|help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
workers=3 dir=.demo/cluster partitions=8 replication=3 build=build n="" coordinators=1
while [ $# -gt 0 ]; do
    case $1 in
    --workers) workers=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --partitions) partitions=$2; shift 2 ;;
    --replication) replication=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --coordinators) coordinators=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

# Loopback ports free now (bound with port 0 and released), one a line.
free_ports() { # count
    /usr/bin/python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

# The coordinators' addresses, comma-separated (what workers are given).
coordinators_list() {
    if [ -s "$dir/coords" ]; then cat "$dir/coords"; else echo "127.0.0.1:$(cat "$dir/coord.port")"; fi
}

# C etcd members as one cluster, then C coordinators on it (each listens and
# writes its port file at once; the followers answer with the leader's
# address); returns once one of them leads.
start_ha() {
    command -v etcd >/dev/null || { echo "etcd is not installed (deploy/install-deps.sh)" >&2; exit 1; }
    ports=$(free_ports $((coordinators * 3)))
    initial="" endpoints="" coords="" cp="" pp="" sp=""
    k=0
    for p in $ports; do
        eval "port_$k=$p"
        k=$((k + 1))
    done
    k=0
    while [ $k -lt "$coordinators" ]; do
        eval "cp=\$port_$((k * 3)) pp=\$port_$((k * 3 + 1)) sp=\$port_$((k * 3 + 2))"
        initial="$initial${initial:+,}e$k=http://127.0.0.1:$pp"
        endpoints="$endpoints${endpoints:+,}127.0.0.1:$cp"
        coords="$coords${coords:+,}127.0.0.1:$sp"
        k=$((k + 1))
    done
    echo "$coords" >"$dir/coords"
    echo "$endpoints" >"$dir/etcd-endpoints"
    k=0
    while [ $k -lt "$coordinators" ]; do
        eval "cp=\$port_$((k * 3)) pp=\$port_$((k * 3 + 1))"
        etcd --name "e$k" --data-dir "$dir/etcd$k" \
            --listen-client-urls "http://127.0.0.1:$cp" --advertise-client-urls "http://127.0.0.1:$cp" \
            --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
            --initial-cluster "$initial" --initial-cluster-state new \
            --initial-cluster-token "shardex-local-$$" --pre-vote --logger zap --log-level warn \
            >>"$dir/etcd$k.log" 2>&1 &
        echo $! >"$dir/etcd$k.pid"
        k=$((k + 1))
    done
    k=0
    while [ $k -lt "$coordinators" ]; do
        eval "sp=\$port_$((k * 3 + 2))"
        rm -f "$dir/coord$k.port"
        "$build/coordinator/shardex-coordinator" --listen "127.0.0.1:$sp" \
            --metadata "etcd://$endpoints" --cluster local --metadata-lease 2s \
            --port-file "$dir/coord$k.port" --partitions "$partitions" \
            --replication "$replication" --min-isr "$min_isr" --lease-ms 1000 \
            >>"$dir/coord$k.log" 2>&1 &
        echo $! >"$dir/coord$k.pid"
        k=$((k + 1))
    done
    sh_n=0
    until [ -n "$(leader_addr)" ]; do
        sh_n=$((sh_n + 1))
        [ $sh_n -gt 300 ] && { echo "no coordinator became the leader in 30 s; see $dir/coord*.log" >&2; exit 1; }
        sleep 0.1
    done
}

# The leading coordinator's address, as etcd records it (the leader key); ""
# when none leads or etcd does not answer.
leader_addr() {
    ETCDCTL_API=3 etcdctl --endpoints "$(cat "$dir/etcd-endpoints")" --command-timeout=2s \
        get /shardex/local/leader --print-value-only 2>/dev/null || true
}

start_worker() { # index
    sw_i=$1
    rm -f "$dir/w$sw_i.port"
    "$build/worker/shardex-worker" --coordinator "$(coordinators_list)" \
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
    if { [ -s "$dir/coord.pid" ] && kill -0 "$(cat "$dir/coord.pid")" 2>/dev/null; } ||
        { [ -s "$dir/coord0.pid" ] && kill -0 "$(cat "$dir/coord0.pid")" 2>/dev/null; }; then
        echo "a cluster is already running in $dir (stop it first)" >&2; exit 1
    fi
    rm -f "$dir/coord.port" "$dir/coords" "$dir"/coord[0-9]*.port
    if [ "$coordinators" -gt 1 ]; then
        start_ha
    else
        "$build/coordinator/shardex-coordinator" --listen 127.0.0.1:0 --data-dir "$dir/coord" \
            --port-file "$dir/coord.port" --partitions "$partitions" --replication "$replication" \
            --min-isr "$min_isr" --lease-ms 1000 >>"$dir/coord.log" 2>&1 &
        echo $! >"$dir/coord.pid"
        wait_file "$dir/coord.port" "$(cat "$dir/coord.pid")"
    fi
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
    # Workers first (they hand over through a coordinator), etcd last.
    for f in "$dir"/w*.pid "$dir"/coord*.pid; do
        [ -e "$f" ] || continue
        kill "$(cat "$f")" 2>/dev/null || true
    done
    for f in "$dir"/w*.pid "$dir"/coord*.pid "$dir"/etcd*.pid; do
        [ -e "$f" ] || continue
        p=$(cat "$f"); st_n=0
        kill "$p" 2>/dev/null || true # etcd's first: the coordinators needed it to resign
        while kill -0 "$p" 2>/dev/null && [ $st_n -lt 100 ]; do sleep 0.1; st_n=$((st_n + 1)); done
        kill -9 "$p" 2>/dev/null || true
        rm -f "$f"
    done
    ;;
kill-coordinator)
    # The leader: the one etcd names (or the only one, without etcd).
    if [ -s "$dir/coords" ]; then
        leader=$(leader_addr)
        [ -n "$leader" ] || { echo "no coordinator leads now" >&2; exit 1; }
        kc_k=0
        for a in $(tr ',' ' ' <"$dir/coords"); do
            [ "$a" = "$leader" ] && name="coord$kc_k"
            kc_k=$((kc_k + 1))
        done
    else
        name=coord
    fi
    kill -9 "$(cat "$dir/$name.pid")" 2>/dev/null || true
    rm -f "$dir/$name.port"
    echo "killed $name"
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
    echo "usage: local-cluster.sh start|status|stop|kill-worker N|restart-worker N|kill-coordinator [--help]" >&2
    exit 2
    ;;
esac
