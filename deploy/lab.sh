#!/usr/bin/env bash
# lab.sh: a shardex cluster on several hosts of one machine (docs/deploy.md),
# and the hosts themselves, which the partition-failure suite shares
# (tests/chaos/lab-cluster.sh builds its own cluster on them).
#
# Each host is a network namespace (sxlab-h1 .. sxlab-hN) with one address,
# 10.200.0.K/24, on a bridge that lives in a namespace of its own (sxlab-br),
# so the machine's own network is never touched and nothing is sent anywhere
# but between these namespaces. Partitions are nftables drop rules inside the
# hosts' namespaces (table inet sxlab); there is no netem here, so slow and
# lossy links come from the RPC fault layer instead.
#
# The cluster:
#   lab.sh up [N] [--coordinators C] [--tls] [--build DIR | --installed]
#                          N workers (default 3) on hosts 1..N, the coordinator
#                          on host N+1, a client host N+2; each daemon runs
#                          with --config FILE, a copy of deploy/*.conf.example
#                          (what the packages install as /etc/shardex/*.conf)
#                          with only its host's keys set; returns once
#                          `shardex status --check` passes on the client host.
#                          --coordinators C (1..7, default 1): C coordinator
#                          hosts N+1..N+C, named c1..cC, each with an etcd
#                          member (one etcd cluster: client port 2379 and peer
#                          port 2380 on the host's address, data in
#                          STATE/hK/etcd) and a coordinator whose metadata is
#                          every member (cluster = lab, metadata-lease = 2s):
#                          they elect one leader; the workers are given every
#                          coordinator's address; the client host is N+C+1.
#                          etcd needs /usr/bin/etcd and etcdctl
#                          (deploy/install-deps.sh)
#                          --tls: a CA, a node certificate per host (its lab
#                          address as IP SAN), an admin client certificate and
#                          a read and a write token (deploy/certs.sh, in
#                          STATE/tls), and the daemons serve TLS only; not with
#                          --coordinators C > 1 (etcd and the coordinators'
#                          etcd client speak plaintext only)
#   lab.sh status          hosts, addresses, processes, binaries, TLS or not,
#                          the etcd members and the leading coordinator (with
#                          --coordinators), and `shardex status` from the
#                          client host
#   lab.sh client [--as WHO] CMD...
#                          run CMD on the client host with SHARDEX_SERVER set to
#                          the workers (e.g. `lab.sh client shardex get id1`);
#                          in a TLS lab also SHARDEX_TLS_* and SHARDEX_TOKEN
#                          for WHO: admin (the default: the admin client
#                          certificate), node (the client host's node
#                          certificate, which `shardex verify` needs), read or
#                          write (no certificate, that role's token), none (the
#                          CA only), plain (no TLS at all)
#   lab.sh leader [J]      the leading coordinator by etcd's record (its key
#                          /shardex/lab/leader): `cK HOST ADDRESS EPOCH`, the
#                          epoch being the key's create revision; exit 1 when
#                          none leads or no member with quorum answers
#                          (--coordinators C > 1 only). Each member is asked
#                          in turn (one without quorum takes 2 s to fail);
#                          with J, only member J, from its own host
#   lab.sh stop K          SIGTERM worker K, as systemctl stop; K may also be
#                          cJ (coordinator J), c (the coordinator; with
#                          --coordinators, the leading one), eJ (the etcd
#                          member on coordinator host J)
#   lab.sh start K         start it again, on its config and data (a
#                          coordinator: until it listens, or follows another)
#   lab.sh down            stop the cluster, kill every process in the lab,
#                          remove the hosts and the lab's state directory
# The hosts:
#   lab.sh hosts N         make N bare hosts (removes a stale lab first)
#   lab.sh exec K CMD...   run CMD inside host K
#   lab.sh addr K          host K's address
#   lab.sh cut A B         A and B no longer hear each other (both ways)
#   lab.sh deaf A B        A hears nothing from B; B still hears A (one way)
#   lab.sh isolate K       K hears nobody and nobody hears K
#   lab.sh heal [K]        remove every rule (of host K only, when given)
#   lab.sh rules [K]       print the rules in force
#
# Binaries: --build DIR (or SX_LAB_BUILD=DIR), a build tree; --installed (or
# SX_LAB_BUILD=installed), /usr/bin from the packages; by default this
# checkout's build/ when it holds them, else the packages'. `exec` and
# `client` put them first on PATH, so `shardex` names the lab's tool. `exec`
# sets no SHARDEX_ variable: in a TLS lab, `client shardex --server ADDR ...`
# calls one worker.
# State (configs, data, logs, pid files): SX_LAB_DIR, default /run/sxlab.
# SX_LAB_WAIT=S: how long `up` waits for the cluster (default 60 s).
# SX_LAB_KEEP=1: a failed `up` leaves the lab as it is, to look at.
#
# Root only. Everything the lab makes carries the sxlab- prefix, and `up`,
# `hosts` and `down` remove whatever an earlier run left, also after a crash.
#
# SX_LAB=L (0..99, default 0) names another lab beside the first: prefix
# sxlabL-, addresses 10.200.L.K, state /run/sxlabL; so two suites can run at once.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
src="$(cd "$here/.." && pwd)"

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
case "${1:-}" in -h | --help | help) usage; exit 0 ;; esac

die() {
    echo "lab.sh: $*" >&2
    exit 2
}

# in_range V LO HI: V is a whole number in LO..HI.
in_range() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }

lab_no=${SX_LAB:-0}
in_range "$lab_no" 0 99 || die "SX_LAB='$lab_no': expected a number in 0..99"
if [ "$lab_no" -eq 0 ]; then PREFIX=sxlab; else PREFIX=sxlab$lab_no; fi
BRNS=$PREFIX-br
NET=10.200.$lab_no
STATE=${SX_LAB_DIR:-/run/$PREFIX}
# The ports of the examples and of the daemons' --help: each host has an
# address of its own, so every daemon can use its default port.
COORD_PORT=7000
WORKER_PORT=7100
# etcd's own ports (--coordinators), and the coordinators' cluster name in
# etcd: their keys are under /shardex/lab/.
ETCD_CLIENT_PORT=2379
ETCD_PEER_PORT=2380
ETCD_CLUSTER=lab

[ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces and nftables)"
command -v ip >/dev/null || die "ip (iproute2) is not installed"
command -v nft >/dev/null || die "nft is not installed (apt-get install nftables; deploy/install-deps.sh does)"

host_ns() { echo "$PREFIX-h$1"; }
host_addr() { echo "$NET.$1"; }

check_host() {
    in_range "$1" 1 250 || die "host: '$1' is not a number in 1..250"
    ip netns list 2>/dev/null | grep -qw "$(host_ns "$1")" || die "host $1: no such host (lab.sh up or hosts first)"
}

# (ip complains about peers of namespaces another lab is removing: not ours)
lab_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PREFIX-" || true; }

hosts() { lab_namespaces | sed -n "s/^$PREFIX-h\([0-9]*\)$/\1/p" | sort -n; }

# ---- the hosts -------------------------------------------------------------

remove_hosts() {
    local ns pids
    for ns in $(lab_namespaces); do
        # `ip netns del` does not kill what runs inside: kill it first.
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        # shellcheck disable=SC2086 # one word per pid
        [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
    done
    for ns in $(lab_namespaces); do
        ip netns del "$ns" 2>/dev/null || true
    done
}

make_hosts() {
    local n=$1 k ns
    in_range "$n" 1 250 || die "hosts: N must be in 1..250, got '$n'"
    down
    ip netns add "$BRNS"
    ip -n "$BRNS" link add br0 type bridge
    ip -n "$BRNS" link set br0 up
    ip -n "$BRNS" link set lo up
    for k in $(seq 1 "$n"); do
        ns=$(host_ns "$k")
        ip netns add "$ns"
        # The pair is made in the bridge's namespace and one end moved to the
        # host's, so no interface ever appears in the machine's own namespace.
        ip -n "$BRNS" link add "h$k" type veth peer name "eth0-$k"
        ip -n "$BRNS" link set "eth0-$k" netns "$ns"
        ip -n "$ns" link set "eth0-$k" name eth0
        ip -n "$BRNS" link set "h$k" master br0
        ip -n "$BRNS" link set "h$k" up
        ip -n "$ns" addr add "$(host_addr "$k")/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" link set lo up
        ip netns exec "$ns" nft -f - <<EOF
table inet $PREFIX {
    chain input { type filter hook input priority 0; policy accept; }
    chain output { type filter hook output priority 0; policy accept; }
}
EOF
    done
}

# drop_from K ADDR: host K drops what arrives from ADDR.
drop_from() {
    ip netns exec "$(host_ns "$1")" nft add rule inet "$PREFIX" input ip saddr "$2" drop
}

heal_host() {
    ip netns exec "$(host_ns "$1")" nft flush chain inet "$PREFIX" input
    ip netns exec "$(host_ns "$1")" nft flush chain inet "$PREFIX" output
}

# ---- the cluster -----------------------------------------------------------
#
# STATE/lab            N, the number of workers (marks the directory as ours)
# STATE/coordinators   C, the number of coordinators (absent: 1)
# STATE/etcd-token     the etcd cluster's --initial-cluster-token (C > 1)
# STATE/binaries       where the binaries came from, for status
# STATE/bin/           links to the three binaries (PATH of exec and client)
# STATE/servers        the workers' addresses, comma-separated
# STATE/hK/            host K's files: ROLE.conf, data/, ROLE.log, pid, role;
#                      on a coordinator host of C > 1 also etcd/ (the member's
#                      data), etcd.log and etcd.pid
# STATE/tls/           only in a TLS lab (up --tls), made by deploy/certs.sh:
#                      ca.pem, ca.key; hK.pem, hK.key: host K's node certificate
#                      (spiffe://shardex/node/hK, IP SAN its address), the
#                      daemon's on hosts 1..N+1, `client --as node`'s on N+2;
#                      admin.pem, admin.key: the client certificate of `client`
#                      (spiffe://shardex/client/admin/admin); tokens: the
#                      daemons' auth-tokens (reader read, writer write);
#                      token-read, token-write: each token alone

cluster_up() { [ -f "$STATE/lab" ]; }
n_workers() { cat "$STATE/lab"; }
n_coords() { if [ -f "$STATE/coordinators" ]; then cat "$STATE/coordinators"; else echo 1; fi; }
ha_lab() { [ "$(n_coords)" -gt 1 ]; } # coordinators on etcd
host_dir() { echo "$STATE/h$1"; }
coord_host() { echo $(($(n_workers) + ${1:-1})); } # coord_host [J]: coordinator J's (1)
client_host() { echo $(($(n_workers) + $(n_coords) + 1)); }
coord_hosts() { seq $(($(n_workers) + 1)) $(($(n_workers) + $(n_coords))); }
daemon_hosts() { seq 1 $(($(n_workers) + $(n_coords))); } # every shardex daemon's host

# host_of K: the host of worker K, of coordinator J (cJ), of the coordinator
# (c; with several, the leading one), or of etcd member J (eJ: its
# coordinator's host).
host_of() {
    local c what
    c=$(n_coords)
    what="a worker (1..$(n_workers)), c (the coordinator) or c1..c$c"
    ha_lab && what="a worker (1..$(n_workers)), c1..c$c, c (the leading coordinator) or e1..e$c (etcd)"
    case $1 in
    c)
        if ha_lab; then
            etcd_leader >/dev/null || die "c: no coordinator leads by etcd's record (name one: c1..c$c)"
            echo "$LEADER_HOST"
        else
            coord_host
        fi
        ;;
    c[0-9]*)
        in_range "${1#c}" 1 "$c" || die "'$1' is not $what"
        coord_host "${1#c}"
        ;;
    e[0-9]*)
        { ha_lab && in_range "${1#e}" 1 "$c"; } || die "'$1' is not $what"
        coord_host "${1#e}"
        ;;
    *)
        in_range "$1" 1 "$(n_workers)" || die "'$1' is not $what"
        echo "$1"
        ;;
    esac
}

tls_lab() { [ -f "$STATE/tls/ca.pem" ]; }

# alive K: exit 0 when the daemon on host K runs.
alive() {
    local f
    f="$(host_dir "$1")/pid"
    [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

# ---- etcd (up --coordinators C, C > 1) ----------------------------------------

etcd_endpoints() { # every member's client address, comma-separated
    local k out=""
    for k in $(coord_hosts); do out="$out${out:+,}$(host_addr "$k"):$ETCD_CLIENT_PORT"; done
    echo "$out"
}

etcd_alive() { # etcd_alive K: the etcd member on host K runs
    local f
    f="$(host_dir "$1")/etcd.pid"
    [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

# start_etcd K: the etcd member on coordinator host K, detached like the
# daemons, without the caller's ETCD_ variables (etcd reads them as flags).
# The same command starts a new member and restarts one on its data (etcd
# ignores --initial-* once it has a data directory). --pre-vote (etcd 3.5's
# default, not 3.4's): a member cut off and healed asks before it raises its
# term, instead of deposing the majority's raft leader on its return: without
# it, a heal was seen to leave etcd 3.4 s without a raft leader, long enough
# for the leading coordinator to lose its 2 s lease (a second failover).
start_etcd() {
    local k=$1 d a h initial="" v
    d=$(host_dir "$k")
    a=http://$(host_addr "$k")
    for h in $(coord_hosts); do
        initial="$initial${initial:+,}e$((h - $(n_workers)))=http://$(host_addr "$h"):$ETCD_PEER_PORT"
    done
    (
        for v in $(compgen -e); do
            if [[ $v == ETCD_* ]]; then unset "$v"; fi
        done
        exec setsid ip netns exec "$(host_ns "$k")" etcd --name "e$((k - $(n_workers)))" \
            --data-dir "$d/etcd" \
            --listen-client-urls "$a:$ETCD_CLIENT_PORT" --advertise-client-urls "$a:$ETCD_CLIENT_PORT" \
            --listen-peer-urls "$a:$ETCD_PEER_PORT" --initial-advertise-peer-urls "$a:$ETCD_PEER_PORT" \
            --initial-cluster "$initial" --initial-cluster-state new \
            --initial-cluster-token "$(cat "$STATE/etcd-token")" --pre-vote \
            --logger zap --log-level info </dev/null >>"$d/etcd.log" 2>&1
    ) &
    echo $! >"$d/etcd.pid"
}

# stop_etcd K SECONDS: SIGTERM, SIGKILL after SECONDS.
stop_etcd() {
    local k=$1 pid
    etcd_alive "$k" || { rm -f "$(host_dir "$k")/etcd.pid"; return 0; }
    pid=$(cat "$(host_dir "$k")/etcd.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq $(($2 * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$(host_dir "$k")/etcd.pid"
}

# lab_etcdctl K ENDPOINTS ARGS...: etcdctl inside host K, against ENDPOINTS,
# with short deadlines, without the caller's ETCDCTL_ variables (etcdctl
# refuses a flag that one of them also sets).
lab_etcdctl() {
    local k=$1 eps=$2 v
    shift 2
    (
        for v in $(compgen -e); do
            if [[ $v == ETCDCTL_* ]]; then unset "$v"; fi
        done
        exec ip netns exec "$(host_ns "$k")" etcdctl --endpoints "$eps" --dial-timeout 1s \
            --command-timeout 2s "$@"
    )
}

# etcd_leader [HOST]: the leading coordinator by etcd's record, the leader
# key's value and create revision: sets LEADER_HOST, LEADER_ADDR and
# LEADER_EPOCH and prints `cJ HOST ADDRESS EPOCH`. Each member (or HOST's
# only) is asked from its own host (so that no cut between hosts is in the
# way) until one answers: a member without quorum cannot (the read is
# linearizable). Exit 1 when none answers or the key is absent.
etcd_leader() {
    local k out
    LEADER_HOST="" LEADER_ADDR="" LEADER_EPOCH=""
    for k in ${1:-$(coord_hosts)}; do
        etcd_alive "$k" || continue
        out=$(lab_etcdctl "$k" "$(host_addr "$k"):$ETCD_CLIENT_PORT" \
            get "/shardex/$ETCD_CLUSTER/leader" -w fields 2>/dev/null) || continue
        LEADER_ADDR=$(sed -n 's/^"Value" : "\(.*\)"$/\1/p' <<<"$out")
        LEADER_EPOCH=$(sed -n 's/^"CreateRevision" : \([0-9]*\)$/\1/p' <<<"$out")
        [ -n "$LEADER_ADDR" ] || return 1 # answered: nobody leads
        LEADER_HOST=${LEADER_ADDR%:*}
        LEADER_HOST=${LEADER_HOST##*.}
        echo "c$((LEADER_HOST - $(n_workers))) $LEADER_HOST $LEADER_ADDR $LEADER_EPOCH"
        return 0
    done
    return 1
}

# wait_etcd SECONDS: until every member says it is healthy (it has quorum).
wait_etcd() {
    local until=$((SECONDS + $1)) k
    until lab_etcdctl "$(client_host)" "$(etcd_endpoints)" endpoint health >/dev/null 2>&1; do
        for k in $(coord_hosts); do
            etcd_alive "$k" || { echo "lab.sh: the etcd member on host $k exited" >&2; return 1; }
        done
        [ "$SECONDS" -lt "$until" ] || {
            lab_etcdctl "$(client_host)" "$(etcd_endpoints)" endpoint health >&2 || true
            echo "lab.sh: etcd is not healthy after $1 s" >&2
            return 1
        }
        sleep 0.2
    done
}

# pick_binaries BUILD: fill STATE/bin and STATE/binaries from a build tree, or
# from /usr/bin for BUILD=installed, or (BUILD empty) whichever has them.
pick_binaries() {
    local build=$1 w c t
    if [ -z "$build" ]; then
        if [ -x "$src/build/worker/shardex-worker" ]; then
            build=$src/build
        elif [ -x /usr/bin/shardex-worker ]; then
            build=installed
        else
            die "no binaries: neither $src/build (make build) nor the packages (/usr/bin); see --build"
        fi
    fi
    if [ "$build" = installed ]; then
        w=/usr/bin/shardex-worker c=/usr/bin/shardex-coordinator t=/usr/bin/shardex
        local v
        v=$(dpkg-query -W -f '${Version}' shardex-worker 2>/dev/null || true)
        echo "/usr/bin (installed packages${v:+, shardex-worker $v})" >"$STATE/binaries"
    else
        [ -d "$build" ] || die "--build $build: no such directory"
        build=$(cd "$build" && pwd)
        w=$build/worker/shardex-worker c=$build/coordinator/shardex-coordinator t=$build/client/shardex
        echo "$build (build tree)" >"$STATE/binaries"
    fi
    for f in "$w" "$c" "$t"; do [ -x "$f" ] || die "$f: not an executable"; done
    mkdir -p "$STATE/bin"
    ln -sf "$w" "$STATE/bin/shardex-worker"
    ln -sf "$c" "$STATE/bin/shardex-coordinator"
    ln -sf "$t" "$STATE/bin/shardex"
}

# make_tls HOSTS: STATE/tls (above) for hosts 1..HOSTS.
make_tls() {
    local t=$STATE/tls k
    "$here/certs.sh" "$t" ca >/dev/null
    for k in $(seq 1 "$1"); do
        "$here/certs.sh" "$t" node "h$k" "$(host_addr "$k")" >/dev/null
    done
    "$here/certs.sh" "$t" client admin admin >/dev/null
    (
        umask 077
        "$here/certs.sh" "$t" token read reader >"$t/token-read"
        "$here/certs.sh" "$t" token write writer >"$t/token-write"
    )
}

# tls_sets K: TLS_SETS, the config keys of host K's daemon in a TLS lab (none
# in a plaintext one).
tls_sets() {
    local t=$STATE/tls
    TLS_SETS=()
    tls_lab || return 0
    TLS_SETS=("tls-cert=$t/h$1.pem" "tls-key=$t/h$1.key" "tls-ca=$t/ca.pem" "auth-tokens=$t/tokens")
}

# make_conf EXAMPLE OUT KEY=VALUE...: EXAMPLE with each KEY set to VALUE on
# the line that shows it (commented out or not), so the file keeps the
# example's comments and order and reads as a diff of what the packages
# install; a key the example lacks is appended. The format refuses a repeated
# key: a later uncommented line of a key already set is dropped.
make_conf() {
    local example=$1 out=$2
    shift 2
    {
        echo "# Made by deploy/lab.sh from deploy/$(basename "$example"), set for this host:$(printf " %s" "${@%%=*}")"
        awk -v sets="$*" '
            BEGIN {
                n = split(sets, kv, " ")
                for (i = 1; i <= n; i++) {
                    e = index(kv[i], "=")
                    key[i] = substr(kv[i], 1, e - 1)
                    val[key[i]] = substr(kv[i], e + 1)
                }
            }
            /^#?[a-z][a-z-]*[ \t]*=/ {
                k = $0
                sub(/^#/, "", k)
                sub(/[ \t]*=.*/, "", k)
                if (k in val) {
                    if (!(k in done)) { print k " = " val[k]; done[k] = 1; next }
                    if ($0 !~ /^#/) next
                }
            }
            { print }
            END { for (i = 1; i <= n; i++) if (!(key[i] in done)) print key[i] " = " val[key[i]] }' "$example"
    } >"$out"
}

# start_daemon K: host K's daemon, detached (setsid: a ^C or a closed
# terminal where `up` ran does not reach it), without the caller's SHARDEX_
# variables, which would beat its config file as they do under systemd's
# clean environment.
start_daemon() {
    local k=$1 d role v
    d=$(host_dir "$k")
    role=$(cat "$d/role")
    (
        for v in $(compgen -e); do
            if [[ $v == SHARDEX_* ]]; then unset "$v"; fi
        done
        exec setsid ip netns exec "$(host_ns "$k")" "$(readlink "$STATE/bin/shardex-$role")" \
            --config "$d/$role.conf" </dev/null >>"$d/$role.log" 2>&1
    ) &
    echo $! >"$d/pid"
}

# wait_listening K PORT SECONDS: until host K's daemon listens, or it exited.
wait_listening() {
    local k=$1 port=$2
    for _ in $(seq $(($3 * 10))); do
        alive "$k" || return 1
        [ -n "$(ip netns exec "$(host_ns "$k")" ss -Hltn "sport = :$port")" ] && return 0
        sleep 0.1
    done
    return 1
}

# wait_coordinator K SECONDS FROM: until host K's coordinator listens, or its
# log (from byte FROM on) says it follows another one (a follower that does
# not listen); 1 when it exited or neither came within SECONDS.
wait_coordinator() {
    local k=$1 from=$3 log
    log="$(host_dir "$k")/coordinator.log"
    for _ in $(seq $(($2 * 10))); do
        alive "$k" || return 1
        [ -n "$(ip netns exec "$(host_ns "$k")" ss -Hltn "sport = :$COORD_PORT")" ] && return 0
        tail -c +$((from + 1)) "$log" 2>/dev/null | grep -q 'following leader=' && return 0
        sleep 0.1
    done
    return 1
}

# wait_listening_etcd K SECONDS: until host K's etcd member takes clients.
wait_listening_etcd() {
    local k=$1
    for _ in $(seq $(($2 * 10))); do
        etcd_alive "$k" || return 1
        [ -n "$(ip netns exec "$(host_ns "$k")" ss -Hltn "sport = :$ETCD_CLIENT_PORT")" ] && return 0
        sleep 0.1
    done
    return 1
}

# log_size FILE: its size in bytes (0 when absent), for wait_coordinator.
log_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

# stop_daemon K SECONDS: SIGTERM (calls in flight finish), SIGKILL after
# SECONDS, as systemd's TimeoutStopSec.
stop_daemon() {
    local k=$1 pid
    alive "$k" || { rm -f "$(host_dir "$k")/pid"; return 0; }
    pid=$(cat "$(host_dir "$k")/pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq $(($2 * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$(host_dir "$k")/pid"
}

# client_path: the PATH of `client` and `exec`, the lab's binaries first.
client_path() { if cluster_up; then echo "$STATE/bin:$PATH"; else echo "$PATH"; fi; }

# client_env WHO: CLIENT_ENV, the arguments of env(1) that run a command on
# the client host as WHO (`client --as`; empty: the default, admin in a TLS
# lab). In a TLS lab the caller's SHARDEX_TLS_* and SHARDEX_TOKEN go, so that
# WHO alone decides; a plaintext lab leaves them as they are.
client_env() {
    local who=$1 t=$STATE/tls
    CLIENT_ENV=("SHARDEX_SERVER=$(cat "$STATE/servers")" "PATH=$(client_path)")
    if ! tls_lab; then
        case $who in '' | plain) return 0 ;; esac
        die "client --as $who: lab $lab_no is not a TLS lab (lab.sh up --tls)"
    fi
    CLIENT_ENV=(-u SHARDEX_TLS_CA -u SHARDEX_TLS_CERT -u SHARDEX_TLS_KEY -u SHARDEX_TOKEN
        "${CLIENT_ENV[@]}")
    local ca=SHARDEX_TLS_CA=$t/ca.pem cert=$t/admin
    case $who in
    '' | admin) ;;
    node) cert=$t/h$(client_host) ;;
    read | write) CLIENT_ENV+=("$ca" "SHARDEX_TOKEN=$(cat "$t/token-$who")") && return 0 ;;
    none) CLIENT_ENV+=("$ca") && return 0 ;;
    plain) return 0 ;;
    *) die "client --as '$who': admin, node, read, write, none or plain" ;;
    esac
    CLIENT_ENV+=("$ca" "SHARDEX_TLS_CERT=$cert.pem" "SHARDEX_TLS_KEY=$cert.key")
}

sx_client() { # sx_client ARGS...: the tool on the client host, as admin in a TLS lab
    client_env ""
    env "${CLIENT_ENV[@]}" ip netns exec "$(host_ns "$(client_host)")" shardex "$@"
}

show_logs() {
    local d
    for d in "$STATE"/h*/; do
        for f in "$d"*.log; do # (etcd.log too)
            [ -f "$f" ] || continue
            echo "--- $f (last 20 lines)" >&2
            tail -n 20 "$f" >&2
        done
    done
}

up_failed() {
    local rc=$?
    [ "$rc" -eq 0 ] && return 0
    echo "lab.sh: up failed" >&2
    show_logs
    if [ -n "${SX_LAB_KEEP:-}" ]; then
        echo "lab.sh: SX_LAB_KEEP: the lab is left as it is ($STATE); lab.sh down removes it" >&2
    else
        down
    fi
    exit "$rc"
}

up() {
    local n=3 c=1 build=${SX_LAB_BUILD:-} k wait_s=${SX_LAB_WAIT:-60} tls=""
    while [ $# -gt 0 ]; do
        case "$1" in
        --build) build=${2:?--build DIR}; shift 2 ;;
        --installed) build=installed; shift ;;
        --tls) tls=1; shift ;;
        --coordinators) c=${2:?--coordinators C}; shift 2 ;;
        [0-9]*) n=$1; shift ;;
        *) die "up: unknown argument '$1' (up [N] [--coordinators C] [--tls] [--build DIR | --installed])" ;;
        esac
    done
    in_range "$n" 1 32 || die "up: N must be in 1..32, got '$n'"
    in_range "$c" 1 7 || die "up: --coordinators C must be in 1..7, got '$c'"
    [ -z "$tls" ] || [ "$c" -eq 1 ] ||
        die "up: --tls with --coordinators $c: not supported (etcd and the coordinators' etcd client speak plaintext only)"
    if [ "$c" -gt 1 ]; then
        { command -v etcd >/dev/null && command -v etcdctl >/dev/null; } ||
            die "up --coordinators $c: etcd and etcdctl are not installed (deploy/install-deps.sh installs them)"
    fi
    [[ $wait_s =~ ^[0-9]+$ ]] || die "SX_LAB_WAIT='$wait_s': expected seconds"
    [[ $STATE != *[[:space:]]* ]] || die "SX_LAB_DIR='$STATE': no blanks, please (it goes into config files)"
    if cluster_up; then
        for k in $(daemon_hosts); do
            alive "$k" && die "lab $lab_no is up ($STATE): lab.sh down first"
        done
    fi
    trap up_failed EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    make_hosts $((n + c + 1)) # also removes a stale lab: its hosts and STATE
    mkdir -p "$STATE"
    echo "$n" >"$STATE/lab" # first: from here on, down removes STATE
    echo "$c" >"$STATE/coordinators"
    pick_binaries "$build"
    [ -z "$tls" ] || make_tls $((n + 2))

    local coords="" d
    for k in $(coord_hosts); do coords="$coords${coords:+,}$(host_addr "$k"):$COORD_PORT"; done
    [ "$c" -eq 1 ] || up_etcd "$wait_s"
    # Fewer than 3 workers: R and min ISR that they can meet, or every
    # partition stays under-replicated and status --check never passes.
    local small=() meta=()
    [ "$n" -ge 3 ] || small=("replication=$n" "min-isr=$((n < 2 ? 1 : 2))")
    [ "$c" -eq 1 ] || meta=("metadata=etcd://$(etcd_endpoints)" "cluster=$ETCD_CLUSTER" "metadata-lease=2s")
    for k in $(coord_hosts); do
        d=$STATE/h$k
        mkdir -p "$d" && echo coordinator >"$d/role"
        tls_sets "$k"
        # (data-dir too with etcd: unused there, but not the example's /var/lib path)
        make_conf "$here/coordinator.conf.example" "$d/coordinator.conf" \
            "listen=$(host_addr "$k"):$COORD_PORT" "data-dir=$d/data" "${meta[@]}" "${small[@]}" \
            "${TLS_SETS[@]}"
        start_daemon "$k"
    done
    # The workers register at once instead of backing off from a refusal.
    for k in $(coord_hosts); do
        wait_coordinator "$k" 20 0 || { echo "lab.sh: the coordinator on host $k did not start" >&2; exit 1; }
    done

    local servers="" addr
    for k in $(seq 1 "$n"); do
        d=$STATE/h$k
        addr=$(host_addr "$k"):$WORKER_PORT
        mkdir -p "$d" && echo worker >"$d/role"
        tls_sets "$k"
        make_conf "$here/worker.conf.example" "$d/worker.conf" \
            "coordinator=$coords" "listen=$addr" "advertise=$addr" "data-dir=$d/data" "${TLS_SETS[@]}"
        start_daemon "$k"
        servers="$servers${servers:+,}$addr"
    done
    echo "$servers" >"$STATE/servers"
    for k in $(seq 1 "$n"); do
        wait_listening "$k" $WORKER_PORT 10 || { echo "lab.sh: worker $k did not start" >&2; exit 1; }
    done

    local until=$((SECONDS + wait_s))
    until sx_client --timeout-ms 2000 status --check >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$until" ] || {
            sx_client --timeout-ms 2000 status --check >&2 || true
            echo "lab.sh: the cluster has alarms after ${wait_s} s (above)" >&2
            exit 1
        }
        for k in $(daemon_hosts); do
            alive "$k" || { echo "lab.sh: the daemon on host $k exited" >&2; exit 1; }
        done
        sleep 0.2
    done
    trap - EXIT INT TERM
    local who="coordinator $coords (host $((n + 1)))"
    if [ "$c" -gt 1 ]; then
        who="coordinators c1..c$c $coords (hosts $((n + 1))..$((n + c)), each with an etcd member;"
        who="$who $(etcd_leader | awk '{print $1 " leads, epoch " $4}'))"
    fi
    echo "lab $lab_no: $who, workers $servers (hosts 1..$n)," \
        "client host $((n + c + 1)) ($(host_addr $((n + c + 1))));$(tls_note)" \
        "binaries $(cat "$STATE/binaries"); state $STATE"
}

# up_etcd SECONDS: an etcd member on each coordinator host, one cluster,
# healthy within SECONDS.
up_etcd() {
    local k
    echo "$PREFIX-$$-$(date +%s)" >"$STATE/etcd-token"
    for k in $(coord_hosts); do
        mkdir -p "$STATE/h$k"
        start_etcd "$k"
    done
    wait_etcd "$1" || exit 1
}

# tls_note: what status and up say of TLS.
tls_note() {
    if tls_lab; then
        echo " TLS (certificates and tokens in $STATE/tls; the CLI as admin);"
    else
        echo " plaintext;"
    fi
}

status() {
    local k ns role pids
    [ -n "$(lab_namespaces)" ] || { echo "lab $lab_no: no hosts"; return 1; }
    if cluster_up; then
        echo "lab $lab_no:$(tls_note) binaries $(cat "$STATE/binaries"); state $STATE"
    else
        echo "lab $lab_no: hosts only (no cluster: lab.sh up makes one)"
    fi
    printf '%-6s %-14s %-15s %s\n' host address role processes
    for k in $(hosts); do
        ns=$(host_ns "$k")
        role=-
        if cluster_up; then
            if [ -f "$(host_dir "$k")/role" ]; then
                role=$(cat "$(host_dir "$k")/role")
                ! ha_lab || [ "$role" != coordinator ] || role="coordinator c$((k - $(n_workers)))"
            elif [ "$k" -eq "$(client_host)" ]; then
                role=client
            fi
        fi
        pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ',' | sed 's/,$//')
        if [ -z "$pids" ]; then
            printf '%-6s %-14s %-15s %s\n' "$k" "$(host_addr "$k")" "$role" "(none)"
        else
            # One line per process: pid and command line.
            ps -o pid=,args= -p "$pids" | while read -r line; do
                printf '%-6s %-14s %-15s %s\n' "$k" "$(host_addr "$k")" "$role" "$line"
            done
        fi
    done
    cluster_up || return 0
    for k in $(daemon_hosts); do
        alive "$k" || echo "host $k: its $(cat "$(host_dir "$k")/role") is not running" \
            "(log: $(host_dir "$k")/$(cat "$(host_dir "$k")/role").log)"
    done
    if ha_lab; then
        for k in $(coord_hosts); do
            etcd_alive "$k" || echo "host $k: its etcd member is not running (log: $(host_dir "$k")/etcd.log)"
        done
        echo
        echo "# etcd, from the client host $(client_host): its members (--endpoints $(etcd_endpoints))"
        # (without the client library's JSON log lines about its retries)
        { lab_etcdctl "$(client_host)" "$(etcd_endpoints)" endpoint status -w table 2>&1 || true; } |
            grep -v '^{"level"' || true
        { lab_etcdctl "$(client_host)" "$(etcd_endpoints)" endpoint health 2>&1 || true; } |
            grep -v '^{"level"' || true
        local l name host addr epoch
        if l=$(etcd_leader); then
            read -r name host addr epoch <<<"$l"
            echo "leading coordinator: $name (host $host, $addr), epoch $epoch (/shardex/$ETCD_CLUSTER/leader)"
        else
            echo "leading coordinator: none by etcd's record (/shardex/$ETCD_CLUSTER/leader absent, or no quorum)"
        fi
    fi
    echo
    echo "# shardex status, from the client host $(client_host) ($(host_addr "$(client_host)"))," \
        "--server $(cat "$STATE/servers")$(! tls_lab || echo ", as admin over TLS")"
    sx_client --timeout-ms 3000 status
}

down() {
    local k
    if cluster_up; then
        # SIGTERM first, as systemctl stop would; kill -9 of whatever is left.
        for k in $(daemon_hosts); do
            if alive "$k"; then kill -TERM "$(cat "$(host_dir "$k")/pid")" 2>/dev/null || true; fi
        done
        for k in $(daemon_hosts); do stop_daemon "$k" 10; done
        # etcd last: the leading coordinator resigned through it.
        if ha_lab; then for k in $(coord_hosts); do stop_etcd "$k" 10; done; fi
    fi
    remove_hosts
    # Only a directory this script made (it has STATE/lab): SX_LAB_DIR may be
    # anything the caller typed.
    if [ -f "$STATE/lab" ]; then rm -rf "$STATE"; fi
}

cmd=${1:-}
[ -n "$cmd" ] || die "usage: lab.sh up [N] [--coordinators C] [--tls] | status | client [--as WHO] CMD... | leader [J] | stop K | start K | down | hosts N | exec K CMD... | addr K | cut A B | deaf A B | isolate K | heal [K] | rules [K] (--help)"
shift
case "$cmd" in
up) up "$@" ;;
status) status ;;
down) down ;;
client)
    who=""
    if [ "${1:-}" = --as ]; then
        who=${2:?usage: lab.sh client --as WHO CMD...}
        shift 2
    fi
    [ $# -ge 1 ] || die "usage: lab.sh client [--as WHO] CMD..."
    cluster_up || die "client: no cluster in lab $lab_no (lab.sh up first)"
    client_env "$who"
    exec env "${CLIENT_ENV[@]}" ip netns exec "$(host_ns "$(client_host)")" "$@"
    ;;
leader)
    [ $# -le 1 ] || die "usage: lab.sh leader [J]"
    cluster_up || die "leader: no cluster in lab $lab_no (lab.sh up first)"
    ha_lab || die "leader: lab $lab_no has one coordinator, on host $(coord_host) (up --coordinators C elects one on etcd)"
    k=""
    if [ $# -eq 1 ]; then
        in_range "$1" 1 "$(n_coords)" || die "leader: J must be an etcd member, 1..$(n_coords)"
        k=$(coord_host "$1")
    fi
    etcd_leader "$k" || { echo "lab.sh: no coordinator leads by etcd's record (or no member with quorum answered)" >&2; exit 1; }
    ;;
stop | start)
    [ $# -eq 1 ] || die "usage: lab.sh $cmd K (a worker 1..N; c, cJ: a coordinator; eJ: an etcd member)"
    cluster_up || die "$cmd: no cluster in lab $lab_no (lab.sh up first)"
    [ "$cmd.$1" != start.c ] || ! ha_lab || die "start c: name the coordinator (c1..c$(n_coords))"
    k=$(host_of "$1")
    case "$cmd.$1" in
    stop.e*) stop_etcd "$k" 30 ;;
    start.e*)
        etcd_alive "$k" && die "start: the etcd member on host $k is running"
        start_etcd "$k"
        wait_listening_etcd "$k" 10 || die "start: host $k's etcd member did not start (see $(host_dir "$k")/etcd.log)"
        ;;
    stop.*) stop_daemon "$k" 30 ;; # the units' TimeoutStopSec
    start.c*)
        alive "$k" && die "start: the coordinator on host $k is running"
        from=$(log_size "$(host_dir "$k")/coordinator.log")
        start_daemon "$k"
        wait_coordinator "$k" 10 "$from" ||
            die "start: host $k's coordinator neither serves nor follows (see $(host_dir "$k")/coordinator.log)"
        ;;
    start.*)
        alive "$k" && die "start: the $(cat "$(host_dir "$k")/role") on host $k is running"
        start_daemon "$k"
        wait_listening "$k" $WORKER_PORT 10 || die "start: host $k's daemon did not start (see $(host_dir "$k")/*.log)"
        ;;
    esac
    ;;
hosts)
    [ $# -eq 1 ] || die "usage: lab.sh hosts N"
    make_hosts "$1"
    ;;
exec)
    [ $# -ge 2 ] || die "usage: lab.sh exec K CMD..."
    check_host "$1"
    ns=$(host_ns "$1")
    shift
    PATH=$(client_path) exec ip netns exec "$ns" "$@"
    ;;
addr)
    [ $# -eq 1 ] || die "usage: lab.sh addr K"
    check_host "$1"
    host_addr "$1"
    ;;
cut)
    [ $# -eq 2 ] || die "usage: lab.sh cut A B"
    check_host "$1"
    check_host "$2"
    drop_from "$1" "$(host_addr "$2")"
    drop_from "$2" "$(host_addr "$1")"
    ;;
deaf)
    [ $# -eq 2 ] || die "usage: lab.sh deaf A B"
    check_host "$1"
    check_host "$2"
    drop_from "$1" "$(host_addr "$2")"
    ;;
isolate)
    [ $# -eq 1 ] || die "usage: lab.sh isolate K"
    check_host "$1"
    for k in $(hosts); do
        [ "$k" = "$1" ] && continue
        drop_from "$1" "$(host_addr "$k")"
        drop_from "$k" "$(host_addr "$1")"
    done
    ;;
heal)
    if [ $# -eq 1 ]; then
        check_host "$1"
        heal_host "$1"
    else
        for k in $(hosts); do heal_host "$k"; done
    fi
    ;;
rules)
    for k in ${1:-$(hosts)}; do
        check_host "$k"
        echo "# host $k ($(host_addr "$k"))"
        ip netns exec "$(host_ns "$k")" nft list table inet "$PREFIX"
    done
    ;;
*) die "unknown command '$cmd' (up, status, client, leader, stop, start, down, hosts, exec, addr, cut, deaf, isolate, heal, rules; --help)" ;;
esac
