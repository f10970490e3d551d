#!/bin/sh
# make demo: shardex on this machine's Debian package catalogue, with the
# `shardex` tool. Starts a 3-worker local cluster, creates indexes, loads every
# package, asks the same questions LOCAL and GLOBAL side by side, shows
# read-your-writes with a token, kills a worker, shows the answers unchanged
# after failover, runs `shardex verify`, and stops the cluster.
#
#   deploy/demo.sh [BUILD_DIR]        (make demo builds first, then runs this)
set -eu

build=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
dir=.demo/cluster
out=.demo/out
shardex=$build/client/shardex
cluster=deploy/local-cluster.sh
[ -x "$shardex" ] || { echo "demo: $shardex is not built (make demo builds it)" >&2; exit 1; }

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() {
    printf '$ shardex'
    for a in "$@"; do case $a in *[!A-Za-z0-9_.:/,=-]*) printf " '%s'" "$a" ;; *) printf ' %s' "$a" ;; esac; done
    printf '\n'
    "$shardex" --server "$addr" "$@"
}
# The hits of a query, without the footer (its timings change from run to run).
hits() { "$shardex" --server "$addr" query --all --json "$@" |
    /usr/bin/python3 -c 'import json,sys; [print(h["value"], h["id"]) for h in json.load(sys.stdin)["hits"]]'; }

cleanup() { "$cluster" stop --dir "$dir" >/dev/null 2>&1 || true; }
trap cleanup EXIT INT TERM
mkdir -p "$out"
"$cluster" stop --dir "$dir" >/dev/null 2>&1 || true
rm -rf "$dir"

say "Starting a local cluster: a coordinator and 3 workers, 8 log partitions, 3 replicas each"
addr=$("$cluster" start --dir "$dir" --build "$build" --workers 3 --partitions 8 --replication 3 | tail -n 1)
echo "clients use $addr (any worker routes every call)"

say "The data: this machine's Debian package catalogue"
apt-cache dumpavail >"$out/catalogue" 2>/dev/null || true
if ! grep -q '^Package:' "$out/catalogue"; then
    cp /var/lib/dpkg/status "$out/catalogue"
    echo "(apt-cache has no catalogue here: using /var/lib/dpkg/status)"
fi
echo "$(grep -c '^Package:' "$out/catalogue") packages, $(du -h "$out/catalogue" | cut -f1)B of control stanzas"

say "Indexes, before the data: kept LOCAL (per log partition) and GLOBAL (partitioned by value)"
run index create section --field Section
run index create maintainer --field Maintainer
run index create installed-size --field Installed-Size --type int
echo "The same field GLOBAL by value ranges: term partition t holds sizes from split point t-1 to t."
run index create installed-size-r --field Installed-Size --type int --global \
    --partitioning range --split-points 100,500,1000,5000,20000,100000

say "Loading every package (Debian stanzas; the id is the Package field)"
run load "$out/catalogue" --id-field Package --truncate \
    --fields Package,Version,Architecture,Section,Priority,Maintainer,Installed-Size,Description

say "An index created on the loaded cluster is backfilled while it stays available"
run index create priority --field Priority
while "$shardex" --server "$addr" index list --json | grep -q 'BUILDING'; do sleep 0.1; done
run index list

maint=$("$shardex" --server "$addr" get bash --json |
    /usr/bin/python3 -c 'import json,sys
d = json.load(sys.stdin).get("doc", {})
print(next((f["value"]["s"] for f in d.get("fields", []) if f["name"] == "Maintainer"), ""))')
[ -n "$maint" ] || maint=$(sed -n 's/^Maintainer: //p' "$out/catalogue" | sort | uniq -c | sort -rn | head -n 1 | sed 's/^ *[0-9]* //')

say "The same question both ways: every package maintained by $maint"
echo "LOCAL scatters to every log partition and merges; GLOBAL reads the one term partition of the value."
run query --index maintainer --eq "$maint" --mode local --limit 8
run query --index maintainer --eq "$maint" --mode global --limit 8

say "A range: packages installed between 1000 and 1010 KiB"
echo "A range on a hash-partitioned GLOBAL index reads every term partition."
run query --index installed-size --min 1000 --max 1010 --mode local --limit 8
run query --index installed-size --min 1000 --max 1010 --mode global --limit 8
echo "On the range-partitioned index, only the term partition holding [1000, 5000) is read."
run query --index installed-size-r --min 1000 --max 1010 --mode global --limit 8

# The three questions asked again after the failover; their answers must not change.
q_maintainer() { hits --index maintainer --eq "$maint" "$@"; }
q_size() { hits --index installed-size --min 1000 --max 1010 "$@"; }
q_section() { hits --index section --eq editors "$@"; }
q_size_r() { hits --index installed-size-r --min 1000 --max 1010 "$@"; }
for q in maintainer size section size_r; do "q_$q" >"$out/before-$q"; done

say "Read-your-writes: a new document, then the query with its write token"
token=$("$shardex" --server "$addr" put --json shardex-demo Section=demo Maintainer="Demo Maintainer <demo@example.org>" Installed-Size=1005 |
    /usr/bin/python3 -c 'import json,sys; t = json.load(sys.stdin)["tokens"][0]; print("%d:%d" % (t.get("partition", 0), int(t["offset"])))')
echo "write token $token: the GLOBAL index is updated asynchronously, the token makes the query wait for it"
run query --index maintainer --eq "Demo Maintainer <demo@example.org>" --mode global --after "$token"
run delete shardex-demo >/dev/null

say "Failover: killing worker 1 (kill -9)"
"$cluster" kill-worker 1 --dir "$dir"
addr=$(cat "$dir/w0.port" | sed 's/^/127.0.0.1:/'),$(cat "$dir/w2.port" | sed 's/^/127.0.0.1:/')
# Answers wait for new leaders and new term partition owners, then must equal the ones before.
for q in maintainer size section size_r; do
    n=0
    until "q_$q" --mode global >"$out/after-$q" 2>/dev/null && cmp -s "$out/before-$q" "$out/after-$q"; do
        n=$((n + 1)); [ $n -gt 300 ] && break; sleep 0.1
    done
done
for q in maintainer size section size_r; do
    if cmp -s "$out/before-$q" "$out/after-$q"; then
        echo "$q: $(wc -l <"$out/after-$q") hits, unchanged after failover"
    else
        echo "$q: DIFFERENT after failover" >&2; diff "$out/before-$q" "$out/after-$q" | head >&2; exit 1
    fi
done
run status

say "Verify: every index recomputed from the log and compared with what is served"
"$cluster" restart-worker 1 --dir "$dir" --build "$build" >/dev/null
n=0
until "$shardex" --server "$addr" verify >"$out/verify" 2>&1; do
    n=$((n + 1)); [ $n -gt 30 ] && { cat "$out/verify"; exit 1; }; sleep 1
done
tail -n 1 "$out/verify"

say "Stopping the cluster"
"$cluster" stop --dir "$dir"
trap - EXIT INT TERM
echo "done: the demo's files are in .demo/ (the catalogue, the load summary, the answers)"
