#!/usr/bin/env bash
# lab.sh: several hosts on one machine, for the partition-failure suite.
#
# Each host is a network namespace (sxlab-h1 .. sxlab-hN) with one address,
# 10.200.0.K/24, on a bridge that lives in a namespace of its own (sxlab-br),
# so the machine's own network is never touched and nothing is sent anywhere
# but between these namespaces. Partitions are nftables drop rules inside the
# hosts' namespaces (table inet sxlab); there is no netem here, so slow and
# lossy links come from the RPC fault layer instead.
#
#   lab.sh up N            make N hosts (removes a stale lab first)
#   lab.sh down            kill every process in the lab, remove it all
#   lab.sh exec K CMD...   run CMD inside host K
#   lab.sh addr K          host K's address
#   lab.sh cut A B         A and B no longer hear each other (both ways)
#   lab.sh deaf A B        A hears nothing from B; B still hears A (one way)
#   lab.sh isolate K       K hears nobody and nobody hears K
#   lab.sh heal [K]        remove every rule (of host K only, when given)
#   lab.sh rules [K]       print the rules in force
#   lab.sh status          the lab's namespaces and the processes in them
#
# Root only. Everything the lab makes carries the sxlab- prefix, and `up`
# and `down` remove whatever an earlier run left, also after a crash.
#
# SX_LAB=L (0..99, default 0) names another lab beside the first: prefix
# sxlabL-, addresses 10.200.L.K; so two suites can run at once.
set -euo pipefail

lab_no=${SX_LAB:-0}
[[ $lab_no =~ ^[0-9]+$ ]] && [ "$lab_no" -le 99 ] || {
    echo "lab.sh: SX_LAB='$lab_no': expected a number in 0..99" >&2
    exit 2
}
if [ "$lab_no" -eq 0 ]; then PREFIX=sxlab; else PREFIX=sxlab$lab_no; fi
BRNS=$PREFIX-br
NET=10.200.$lab_no

die() {
    echo "lab.sh: $*" >&2
    exit 2
}

[ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces and nftables)"
command -v ip >/dev/null || die "ip (iproute2) is not installed"
command -v nft >/dev/null || die "nft is not installed (apt-get install nftables; deploy/install-deps.sh does)"

host_ns() { echo "$PREFIX-h$1"; }
host_addr() { echo "$NET.$1"; }

check_host() {
    [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 250 ] ||
        die "host: '$1' is not a number in 1..250"
    ip netns list 2>/dev/null | grep -qw "$(host_ns "$1")" || die "host $1: no such host (lab.sh up N first)"
}

# (ip complains about peers of namespaces another lab is removing: not ours)
lab_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PREFIX-" || true; }

down() {
    local ns
    for ns in $(lab_namespaces); do
        # `ip netns del` does not kill what runs inside: kill it first.
        local pids
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
    done
    for ns in $(lab_namespaces); do
        ip netns del "$ns" 2>/dev/null || true
    done
}

up() {
    local n=$1
    [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 250 ] || die "up: N must be in 1..250, got '$n'"
    down
    ip netns add "$BRNS"
    ip -n "$BRNS" link add br0 type bridge
    ip -n "$BRNS" link set br0 up
    ip -n "$BRNS" link set lo up
    local k ns
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
    ip netns exec "$(host_ns "$1")" nft add rule inet $PREFIX input ip saddr "$2" drop
}

heal_host() {
    ip netns exec "$(host_ns "$1")" nft flush chain inet $PREFIX input
    ip netns exec "$(host_ns "$1")" nft flush chain inet $PREFIX output
}

hosts() { lab_namespaces | sed -n "s/^$PREFIX-h\([0-9]*\)$/\1/p" | sort -n; }

cmd=${1:-}
[ -n "$cmd" ] || die "usage: lab.sh up N | down | exec K CMD... | addr K | cut A B | deaf A B | isolate K | heal [K] | rules [K] | status"
shift
case "$cmd" in
up)
    [ $# -eq 1 ] || die "usage: lab.sh up N"
    up "$1"
    ;;
down) down ;;
exec)
    [ $# -ge 2 ] || die "usage: lab.sh exec K CMD..."
    check_host "$1"
    ns=$(host_ns "$1")
    shift
    exec ip netns exec "$ns" "$@"
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
        ip netns exec "$(host_ns "$k")" nft list table inet $PREFIX
    done
    ;;
status)
    for ns in $(lab_namespaces); do
        echo "$ns: pids $(ip netns pids "$ns" | tr '\n' ' ')"
    done
    ;;
*) die "unknown command '$cmd' (up, down, exec, addr, cut, deaf, isolate, heal, rules, status)" ;;
esac
