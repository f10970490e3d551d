#!/bin/sh
# bench/plot.sh DATA_DIR OUT_DIR: draws the benchmarks' plots as PNG (gnuplot,
# Debian's gnuplot-nox) from the TSV files that bench_peers and bench_index
# wrote with --tsv DATA_DIR; each NAME.tsv is drawn by bench/NAME.gp into
# OUT_DIR/NAME.png. A plot whose data is not there is skipped (its PNG stays).
# bench/run.sh calls it after the benchmarks it ran.
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 DATA_DIR OUT_DIR" >&2
    exit 2
fi
data=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v gnuplot >/dev/null 2>&1; then
    echo "plot.sh: gnuplot is not installed (make bench installs gnuplot-nox)" >&2
    exit 1
fi
for name in peers_throughput peers_latency index_partitions index_lag; do
    [ -f "$data/$name.tsv" ] || continue
    if ! gnuplot -e "data='$data/$name.tsv'; out='$out/$name.png'" "$here/$name.gp" \
        2>"$data/$name.gnuplot.log"; then
        cat "$data/$name.gnuplot.log" >&2
        echo "plot.sh: drawing $name failed" >&2
        exit 1
    fi
    echo "plot.sh: wrote $out/$name.png" >&2
done
