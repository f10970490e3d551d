# lab-claim.sh: sourced (bash) by the tests that bring up labs (deploy/lab.sh),
# so that two runs at once on one machine (the suites of two checkouts) never
# share a lab: `lab.sh up` removes whatever an earlier run left under its
# prefix, which would be the other run's hosts.
#
# sx_lab_claim FIRST LAST VAR: sets VAR to the first lab number in FIRST..LAST
# that no other process holds, and holds it: an flock on
# /run/lock/sxlab-N.lock, open on a descriptor this shell and its children
# inherit, so the claim lasts until they have all exited (also when killed).
# Returns 1 when every number is held. Not a subshell's job: $(...) would
# drop the descriptor, and the claim with it, at once.
sx_lab_claim() {
    local n fd
    for ((n = $1; n <= $2; n++)); do
        exec {fd}>"/run/lock/sxlab-$n.lock" || return 1
        if flock -n "$fd"; then
            printf -v "$3" '%s' "$n"
            return 0
        fi
        exec {fd}>&-
    done
    echo "sx_lab_claim: every lab in $1..$2 is held by another run" >&2
    return 1
}
