#!/bin/sh
# run.sh BUILD_DIR SECONDS [TARGET...]: runs each libFuzzer target (default:
# every tests/fuzz/fuzz_*.c) for SECONDS on a copy of its seed corpus
# tests/fuzz/corpus/TARGET/, so that what a run finds never grows the committed
# corpus by accident. BUILD_DIR is an SX_FUZZ build (make build-fuzz).
#
# Exits non-zero when a target crashed (or leaked, or timed out), after
# printing where libFuzzer wrote the input that did it (under
# BUILD_DIR/fuzz-artifacts/TARGET/) and how to replay it. `make fuzz` and
# `make test` (through ctest -L fuzz) run this. README.md beside it says how a
# crash becomes a regression input.
set -u

[ $# -ge 2 ] || { echo "usage: $0 BUILD_DIR SECONDS [TARGET...]" >&2; exit 2; }
build=$(cd "$1" && pwd)
seconds=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -eq 0 ]; then
    set --
    for f in "$here"/fuzz_*.c; do
        n=$(basename "$f" .c)
        set -- "$@" "${n#fuzz_}"
    done
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/sx-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

failed=""
for t in "$@"; do
    bin="$build/tests/fuzz/fuzz_$t"
    seeds="$here/corpus/$t"
    art="$build/fuzz-artifacts/$t"
    [ -x "$bin" ] || { echo "fuzz $t: $bin not built" >&2; failed="$failed $t"; continue; }
    mkdir -p "$work/$t" "$art"
    [ -d "$seeds" ] && cp -R "$seeds/." "$work/$t/"
    before=$(ls "$art" | wc -l)
    echo "fuzz $t: ${seconds}s on $(ls "$work/$t" | wc -l) seeds"
    # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: a leak
    # or an allocation sized by the input that runs away.
    "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$art/" "$work/$t" >"$work/$t.log" 2>&1
    rc=$?
    grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$work/$t.log" |
        sed "s/^/fuzz $t: /"
    if [ $rc -ne 0 ]; then
        tail -n 60 "$work/$t.log"
        echo "fuzz $t: FAILED (exit $rc)"
        if [ "$(ls "$art" | wc -l)" -gt "$before" ]; then
            repro="$art/$(ls -t "$art" | head -n 1)"
            echo "fuzz $t: reproducer: $repro"
            echo "fuzz $t: replay: $bin $repro"
            echo "fuzz $t: once fixed, keep it: cp $repro $seeds/"
        fi
        failed="$failed $t"
    fi
    rm -rf "$work/$t" "$work/$t.log"
done

if [ -n "$failed" ]; then
    echo "fuzz: failed:$failed"
    exit 1
fi
echo "fuzz: $# target(s) passed"
