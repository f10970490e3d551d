#!/usr/bin/env bash
# test_deploy_lab_tls.sh BUILD: the deployment lab with TLS (deploy/lab.sh up
# --tls, docs/deploy.md): two workers and a coordinator serving TLS only with
# certificates and a tokens file made by deploy/certs.sh; from the client
# host, `shardex status --check` with the admin certificate, a Put with the
# read token refused (exit 5, PERMISSION_DENIED) and with the write token
# written, examples/python/example.py with the admin certificate and with the
# write token, `shardex verify` with the client host's node certificate, a
# plaintext `shardex status` refused; `status` says TLS; `down` leaves no
# namespace, process or state (the CA's key included). Root only: exit 77
# (skipped) otherwise. Lab 62, beside test_deploy_lab (61), the chaos smoke
# test (51, 52) and make chaos-lab (1..8).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 BUILD" >&2; exit 2; }
build="$(cd "$1" && pwd)"
src="$(cd "$(dirname "$0")/../.." && pwd)"
lab="$src/deploy/lab.sh"
[ "$(id -u)" -eq 0 ] || { echo "test_deploy_lab_tls: skipped: the lab needs root (network namespaces)" >&2; exit 77; }
command -v nft >/dev/null || { echo "test_deploy_lab_tls: skipped: nft is not installed (deploy/install-deps.sh installs nftables)" >&2; exit 77; }
command -v openssl >/dev/null || { echo "test_deploy_lab_tls: skipped: openssl is not installed" >&2; exit 77; }
export SX_LAB=62
state=$(mktemp -d /tmp/sx-deploy-lab-tls-XXXXXX)
export SX_LAB_DIR=$state/lab
# The caller's TLS settings must not help the plaintext client below.
unset SHARDEX_TLS_CA SHARDEX_TLS_CERT SHARDEX_TLS_KEY SHARDEX_TOKEN
t0=$SECONDS

fail() {
    echo "test_deploy_lab_tls: FAIL: $*" >&2
    "$lab" status >&2 || true
    for f in "$SX_LAB_DIR"/h*/*.log; do
        [ -f "$f" ] || continue
        echo "--- $f" >&2
        tail -n 30 "$f" >&2
    done
    exit 1
}
# Every exit path: the lab goes (down is idempotent), then the directory.
trap '"$lab" down >/dev/null 2>&1 || true; rm -rf "$state"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# sx WHO ARGS...: the tool on the client host (10.200.62.4) as WHO (lab.sh client --as).
sx() {
    local who=$1
    shift
    "$lab" client --as "$who" shardex --timeout-ms 3000 "$@"
}

"$lab" up 2 --tls --build "$build" >"$state/up.out" 2>&1 || fail "up 2 --tls: $(cat "$state/up.out")"
grep -q 'TLS (certificates and tokens in' "$state/up.out" || fail "up does not say TLS: $(cat "$state/up.out")"

# Each daemon's config names its own host's certificate, the CA and the tokens.
keys() { grep -E '^[a-z-]+ *=' "$1" | sed 's/ *=.*//' | sort | tr '\n' ' '; }
[ "$(keys "$SX_LAB_DIR/h1/worker.conf")" = "advertise auth-tokens coordinator data-dir listen tls-ca tls-cert tls-key " ] ||
    fail "worker.conf sets: $(keys "$SX_LAB_DIR/h1/worker.conf")"
grep -qx "tls-cert = $SX_LAB_DIR/tls/h3.pem" "$SX_LAB_DIR/h3/coordinator.conf" || fail "the coordinator's tls-cert"
openssl x509 -in "$SX_LAB_DIR/tls/h2.pem" -noout -ext subjectAltName | grep -q 'IP Address:10.200.62.2' ||
    fail "h2.pem lacks its host's address"

# The admin certificate: the cluster is healthy, as up checked.
sx admin status --check >"$state/check.out" 2>&1 || fail "status --check as admin: $(cat "$state/check.out")"

# Tokens: read may not Put (PERMISSION_DENIED: exit 5, nothing written), write may.
rc=0
sx read put tls-doc-1 color=red >"$state/put.out" 2>&1 || rc=$?
[ "$rc" -eq 5 ] || fail "put with the read token: exit $rc, not 5: $(cat "$state/put.out")"
grep -q 'needs the write role' "$state/put.out" || fail "put with the read token: $(cat "$state/put.out")"
token=$(sx write put tls-doc-1 color=blue) || fail "put with the write token"
out=$(sx read get tls-doc-1 --after "$token") || fail "get with the read token"
grep -q 'blue' <<<"$out" || fail "get tls-doc-1: $out"

# The Python example (examples/python, grpcio's TLS credentials) from the same
# variables: as admin it creates its index; then the write token will do.
example() {
    "$lab" client --as "$1" /usr/bin/python3 "$src/examples/python/example.py" 10.200.62.1:7100 \
        >"$state/example.out" 2>&1 || fail "example.py as $1: $(cat "$state/example.out")"
    grep -q "global hits=\['ex-1', 'ex-2'\]" "$state/example.out" || fail "example.py as $1: $(cat "$state/example.out")"
}
example admin
example write

# verify reads the internal services: the client host's node certificate.
sx node verify >"$state/verify.out" 2>&1 || fail "verify as node: $(cat "$state/verify.out")"

# Plaintext is refused (the tool cannot connect: UNAVAILABLE, exit 3).
rc=0
"$lab" exec 4 shardex --timeout-ms 1000 --server 10.200.62.1:7100 status >"$state/plain.out" 2>&1 || rc=$?
[ "$rc" -eq 3 ] || fail "plaintext status against the TLS lab: exit $rc, not 3: $(cat "$state/plain.out")"

"$lab" status >"$state/status.out" || fail "status exited non-zero: $(cat "$state/status.out")"
for want in "lab 62: TLS (certificates and tokens in $SX_LAB_DIR/tls; the CLI as admin);" \
    "as admin over TLS" "2/2 workers alive"; do
    grep -qF -- "$want" "$state/status.out" || fail "status lacks '$want': $(cat "$state/status.out")"
done

"$lab" down
left=$(ip netns list | grep -c '^sxlab62-' || true)
[ "$left" -eq 0 ] || fail "$left namespaces of lab 62 left after down"
# (pgrep only looks: the processes, if any, would be this test's own)
! pgrep -f "$SX_LAB_DIR/" >/dev/null || fail "processes left after down: $(pgrep -af "$SX_LAB_DIR/")"
[ ! -e "$SX_LAB_DIR" ] || fail "down left $SX_LAB_DIR"
echo "test_deploy_lab_tls: 1 passed, 0 failed ($((SECONDS - t0)) s)"
