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
#   lab.sh up [N] [--tls] [--build DIR | --installed]
#                          N workers (default 3) on hosts 1..N, the coordinator
#                          on host N+1, a client host N+2; each daemon runs
#                          with --config FILE, a copy of deploy/*.conf.example
#                          (what the packages install as /etc/shardex/*.conf)
#                          with only its host's keys set; returns once
#                          `shardex status --check` passes on the client host.
#                          --tls: a CA, a node certificate per host (its lab
#                          address as IP SAN), an admin client certificate and
#                          a read and a write token (deploy/certs.sh, in
#                          STATE/tls), and the daemons serve TLS only
#   lab.sh status          hosts, addresses, processes, binaries, TLS or not,
#                          and `shardex status` from the client host
#   lab.sh client [--as WHO] CMD...
#                          run CMD on the client host with SHARDEX_SERVER set to
#                          the workers (e.g. `lab.sh client shardex get id1`);
#                          in a TLS lab also SHARDEX_TLS_* and SHARDEX_TOKEN
#                          for WHO: admin (the default: the admin client
#                          certificate), node (the client host's node
#                          certificate, which `shardex verify` needs), read or
#                          write (no certificate, that role's token), none (the
#                          CA only), plain (no TLS at all)
#   lab.sh stop K          SIGTERM worker K (c: the coordinator), as systemctl stop
#   lab.sh start K         start it again, on its config and data
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
# STATE/binaries       where the binaries came from, for status
# STATE/bin/           links to the three binaries (PATH of exec and client)
# STATE/servers        the workers' addresses, comma-separated
# STATE/hK/            host K's files: ROLE.conf, data/, ROLE.log, pid, role
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
host_dir() { echo "$STATE/h$1"; }
coord_host() { echo $(($(n_workers) + 1)); }
client_host() { echo $(($(n_workers) + 2)); }

# host_of K: the host of worker K, or of the coordinator (c).
host_of() {
    if [ "$1" = c ]; then
        coord_host
    else
        in_range "$1" 1 "$(n_workers)" || die "'$1' is not a worker (1..$(n_workers)) or c (the coordinator)"
        echo "$1"
    fi
}

tls_lab() { [ -f "$STATE/tls/ca.pem" ]; }

# alive K: exit 0 when the daemon on host K runs.
alive() {
    local f
    f="$(host_dir "$1")/pid"
    [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
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
        for f in "$d"*.log; do
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
    local n=3 build=${SX_LAB_BUILD:-} k addr coord servers="" wait_s=${SX_LAB_WAIT:-60} tls=""
    while [ $# -gt 0 ]; do
        case "$1" in
        --build) build=${2:?--build DIR}; shift 2 ;;
        --installed) build=installed; shift ;;
        --tls) tls=1; shift ;;
        [0-9]*) n=$1; shift ;;
        *) die "up: unknown argument '$1' (up [N] [--tls] [--build DIR | --installed])" ;;
        esac
    done
    in_range "$n" 1 32 || die "up: N must be in 1..32, got '$n'"
    [[ $wait_s =~ ^[0-9]+$ ]] || die "SX_LAB_WAIT='$wait_s': expected seconds"
    [[ $STATE != *[[:space:]]* ]] || die "SX_LAB_DIR='$STATE': no blanks, please (it goes into config files)"
    if cluster_up; then
        for k in $(seq 1 $(($(n_workers) + 1))); do
            alive "$k" && die "lab $lab_no is up ($STATE): lab.sh down first"
        done
    fi
    trap up_failed EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    make_hosts $((n + 2)) # also removes a stale lab: its hosts and STATE
    mkdir -p "$STATE"
    echo "$n" >"$STATE/lab" # first: from here on, down removes STATE
    pick_binaries "$build"
    [ -z "$tls" ] || make_tls $((n + 2))

    coord=$(host_addr $((n + 1))):$COORD_PORT
    local d=$STATE/h$((n + 1))
    mkdir -p "$d" && echo coordinator >"$d/role"
    # Fewer than 3 workers: R and min ISR that they can meet, or every
    # partition stays under-replicated and status --check never passes.
    local small=()
    [ "$n" -ge 3 ] || small=("replication=$n" "min-isr=$((n < 2 ? 1 : 2))")
    tls_sets $((n + 1))
    make_conf "$here/coordinator.conf.example" "$d/coordinator.conf" \
        "listen=$coord" "data-dir=$d/data" "${small[@]}" "${TLS_SETS[@]}"
    start_daemon $((n + 1))
    # The workers register at once instead of backing off from a refusal.
    wait_listening $((n + 1)) $COORD_PORT 10 || { echo "lab.sh: the coordinator did not start" >&2; exit 1; }

    for k in $(seq 1 "$n"); do
        d=$STATE/h$k
        addr=$(host_addr "$k"):$WORKER_PORT
        mkdir -p "$d" && echo worker >"$d/role"
        tls_sets "$k"
        make_conf "$here/worker.conf.example" "$d/worker.conf" \
            "coordinator=$coord" "listen=$addr" "advertise=$addr" "data-dir=$d/data" "${TLS_SETS[@]}"
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
        for k in $(seq 1 $((n + 1))); do
            alive "$k" || { echo "lab.sh: the daemon on host $k exited" >&2; exit 1; }
        done
        sleep 0.2
    done
    trap - EXIT INT TERM
    echo "lab $lab_no: coordinator $coord (host $((n + 1))), workers $servers (hosts 1..$n)," \
        "client host $((n + 2)) ($(host_addr $((n + 2))));$(tls_note)" \
        "binaries $(cat "$STATE/binaries"); state $STATE"
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
    printf '%-6s %-14s %-12s %s\n' host address role processes
    for k in $(hosts); do
        ns=$(host_ns "$k")
        role=-
        if cluster_up; then
            if [ -f "$(host_dir "$k")/role" ]; then
                role=$(cat "$(host_dir "$k")/role")
            elif [ "$k" -eq "$(client_host)" ]; then
                role=client
            fi
        fi
        pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ',' | sed 's/,$//')
        if [ -z "$pids" ]; then
            printf '%-6s %-14s %-12s %s\n' "$k" "$(host_addr "$k")" "$role" "(none)"
        else
            # One line per process: pid and command line.
            ps -o pid=,args= -p "$pids" | while read -r line; do
                printf '%-6s %-14s %-12s %s\n' "$k" "$(host_addr "$k")" "$role" "$line"
            done
        fi
    done
    cluster_up || return 0
    for k in $(seq 1 $(($(n_workers) + 1))); do
        alive "$k" || echo "host $k: its $(cat "$(host_dir "$k")/role") is not running" \
            "(log: $(host_dir "$k")/$(cat "$(host_dir "$k")/role").log)"
    done
    echo
    echo "# shardex status, from the client host $(client_host) ($(host_addr "$(client_host)"))," \
        "--server $(cat "$STATE/servers")$(! tls_lab || echo ", as admin over TLS")"
    sx_client --timeout-ms 3000 status
}

down() {
    local k
    if cluster_up; then
        # SIGTERM first, as systemctl stop would; kill -9 of whatever is left.
        for k in $(seq 1 $(($(n_workers) + 1))); do
            if alive "$k"; then kill -TERM "$(cat "$(host_dir "$k")/pid")" 2>/dev/null || true; fi
        done
        for k in $(seq 1 $(($(n_workers) + 1))); do stop_daemon "$k" 10; done
    fi
    remove_hosts
    # Only a directory this script made (it has STATE/lab): SX_LAB_DIR may be
    # anything the caller typed.
    if [ -f "$STATE/lab" ]; then rm -rf "$STATE"; fi
}

cmd=${1:-}
[ -n "$cmd" ] || die "usage: lab.sh up [N] [--tls] | status | client [--as WHO] CMD... | stop K | start K | down | hosts N | exec K CMD... | addr K | cut A B | deaf A B | isolate K | heal [K] | rules [K] (--help)"
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
stop | start)
    [ $# -eq 1 ] || die "usage: lab.sh $cmd K (a worker 1..N, or c: the coordinator)"
    cluster_up || die "$cmd: no cluster in lab $lab_no (lab.sh up first)"
    k=$(host_of "$1")
    if [ "$cmd" = stop ]; then
        stop_daemon "$k" 30 # the units' TimeoutStopSec
    else
        alive "$k" && die "start: the $(cat "$(host_dir "$k")/role") on host $k is running"
        start_daemon "$k"
        if [ "$1" = c ]; then port=$COORD_PORT; else port=$WORKER_PORT; fi
        wait_listening "$k" "$port" 10 || die "start: host $k's daemon did not start (see $(host_dir "$k")/*.log)"
    fi
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
*) die "unknown command '$cmd' (up, status, client, stop, start, down, hosts, exec, addr, cut, deaf, isolate, heal, rules; --help)" ;;
esac
