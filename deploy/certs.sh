#!/usr/bin/env bash
# certs.sh: a private CA and the certificates of a shardex cluster, with the
# openssl command-line tool (docs/security.md).
#
#   certs.sh DIR ca                         DIR/ca.pem, DIR/ca.key (once; kept if there)
#   certs.sh DIR node NAME [HOST|IP]...     DIR/NAME.pem, DIR/NAME.key: a worker or a
#                                           coordinator (spiffe://shardex/node/NAME), valid
#                                           for the addresses given (clients check them)
#   certs.sh DIR client ROLE NAME           DIR/NAME.pem, DIR/NAME.key: a client with
#                                           ROLE read, write or admin
#                                           (spiffe://shardex/client/ROLE/NAME)
#   certs.sh DIR token ROLE NAME [EXPIRES]  appends `NAME ROLE TOKEN [EXPIRES]` with a fresh
#                                           random token to DIR/tokens (the file the
#                                           daemons' --auth-tokens names); prints the token
#
# Keys are ECDSA P-256; certificates last SX_CERT_DAYS days (default 825).
# Node certificates serve and call (serverAuth, clientAuth): a worker is
# both. Files are written with mode 0600 (keys, tokens) or 0644.
set -euo pipefail

die() {
    echo "certs.sh: $*" >&2
    exit 2
}

usage() {
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
}

case ${1:-} in -h | --help)
    usage
    exit 0
    ;;
esac
[ $# -ge 2 ] || {
    usage >&2
    exit 2
}
command -v openssl >/dev/null || die "openssl is not installed (apt-get install openssl)"

dir=$1
what=$2
shift 2
days=${SX_CERT_DAYS:-825}
[[ $days =~ ^[0-9]+$ ]] || die "SX_CERT_DAYS='$days': expected a number of days"
mkdir -p "$dir"
umask 077

valid_name() {
    [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$ ]] ||
        die "name '$1': 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"
}

need_ca() {
    if [ ! -f "$dir/ca.pem" ] || [ ! -f "$dir/ca.key" ]; then
        die "$dir has no CA: run 'certs.sh $dir ca' first"
    fi
}

# sign NAME SAN EKU: a key and a certificate signed by the CA.
sign() {
    local name=$1 san=$2 eku=$3 ext
    ext=$(mktemp)
    trap 'rm -f "$ext"' RETURN
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\nsubjectAltName=%s\n' \
        "$eku" "$san" >"$ext"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$dir/$name.key" -subj "/CN=$name" -out "$dir/$name.csr" 2>/dev/null
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
        -CAcreateserial -days "$days" -sha256 -extfile "$ext" -out "$dir/$name.pem" 2>/dev/null
    rm -f "$dir/$name.csr"
    chmod 0600 "$dir/$name.key"
    chmod 0644 "$dir/$name.pem"
    echo "$dir/$name.pem $dir/$name.key ($san)"
}

case $what in
ca)
    [ $# -eq 0 ] || die "ca takes no arguments"
    if [ -f "$dir/ca.pem" ] && [ -f "$dir/ca.key" ]; then
        echo "$dir/ca.pem (kept)"
        exit 0
    fi
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$dir/ca.key" -subj "/CN=shardex CA" -days "$days" -sha256 \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$dir/ca.pem" 2>/dev/null
    chmod 0600 "$dir/ca.key"
    chmod 0644 "$dir/ca.pem"
    echo "$dir/ca.pem"
    ;;
node)
    [ $# -ge 1 ] || die "node NAME [HOST|IP]...: the name is missing"
    need_ca
    name=$1
    shift
    valid_name "$name"
    san="URI:spiffe://shardex/node/$name"
    for h in "$@"; do
        if [[ $h =~ ^[0-9.]+$ || $h == *:* ]]; then
            san="$san,IP:$h"
        else
            san="$san,DNS:$h"
        fi
    done
    sign "$name" "$san" "serverAuth,clientAuth"
    ;;
client)
    [ $# -eq 2 ] || die "client ROLE NAME: expected a role and a name"
    need_ca
    role=$1
    name=$2
    case $role in read | write | admin) ;; *) die "role '$role': read, write or admin" ;; esac
    valid_name "$name"
    sign "$name" "URI:spiffe://shardex/client/$role/$name" "clientAuth"
    ;;
token)
    if [ $# -lt 2 ] || [ $# -gt 3 ]; then
        die "token ROLE NAME [EXPIRES]: expected a role and a name"
    fi
    role=$1
    name=$2
    case $role in read | write | admin) ;; *) die "role '$role': read, write or admin" ;; esac
    valid_name "$name"
    expires=${3:-}
    if [ -n "$expires" ]; then
        [[ $expires =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]] ||
            die "expiry '$expires': an UTC time as 2027-01-31T00:00:00Z"
    fi
    token=$(openssl rand -hex 24)
    printf '%s %s %s%s\n' "$name" "$role" "$token" "${expires:+ $expires}" >>"$dir/tokens"
    chmod 0600 "$dir/tokens"
    echo "$token"
    ;;
*)
    die "unknown command '$what' (ca, node, client, token; --help)"
    ;;
esac
