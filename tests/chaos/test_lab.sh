#!/usr/bin/env bash
# test_lab.sh: the lab itself (lab.sh): hosts reach each other, cut / deaf /
# isolate / heal do what they say on real TCP connections, and `down` leaves
# nothing behind. Root only (ctest label chaos).
set -euo pipefail
lab="$(cd "$(dirname "$0")/../../deploy" && pwd)/lab.sh"
fail() {
    echo "test_lab: FAIL: $*" >&2
    "$lab" rules >&2 || true
    "$lab" down || true
    exit 1
}
trap '"$lab" down' EXIT

# probe A B: whether host A opens a TCP connection to host B's listener in 1 s.
probe() {
    "$lab" exec "$1" python3 -c '
import socket, sys
s = socket.socket(); s.settimeout(1.0)
try:
    s.connect((sys.argv[1], 7000)); sys.exit(0)
except OSError:
    sys.exit(1)' "$("$lab" addr "$2")"
}
expect() { # expect yes|no A B
    if probe "$2" "$3"; then got=yes; else got=no; fi
    [ "$got" = "$1" ] || fail "host $2 -> host $3: connected=$got, want $1 (after: $4)"
}

"$lab" hosts 3
for k in 1 2 3; do
    # In a subshell: not this script's job, so `down` kills it quietly.
    ("$lab" exec "$k" python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7000)); s.listen(64)
while True:
    c, _ = s.accept(); c.close()' "$("$lab" addr "$k")" &)
done
for _ in $(seq 50); do probe 1 3 && break; sleep 0.1; done

expect yes 1 2 "up"
expect yes 2 3 "up"
"$lab" cut 1 2
expect no 1 2 "cut 1 2"
expect no 2 1 "cut 1 2"
expect yes 1 3 "cut 1 2"
expect yes 3 2 "cut 1 2"
"$lab" heal
expect yes 1 2 "heal"
"$lab" isolate 3
expect no 1 3 "isolate 3"
expect no 3 2 "isolate 3"
expect yes 1 2 "isolate 3"
"$lab" heal 3
"$lab" heal
"$lab" deaf 1 2
# A new connection needs both directions, so one-way loss shows as "no" both
# ways here; established connections are what it is meant for.
expect no 1 2 "deaf 1 2"
expect yes 2 3 "deaf 1 2"
"$lab" heal

"$lab" down
trap - EXIT
left=$(ip netns list | grep -c '^sxlab-' || true)
[ "$left" -eq 0 ] || fail "$left lab namespaces left after down"
# A stale lab (a crashed run) is removed by the next `hosts`.
"$lab" hosts 2
"$lab" hosts 1
n=$(ip netns list | grep -c '^sxlab-h' || true)
[ "$n" -eq 1 ] || fail "hosts 1 over a stale lab of 2 left $n hosts"
"$lab" down
echo "test_lab: 1 passed, 0 failed"
