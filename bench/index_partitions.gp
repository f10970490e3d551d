# Equality query latency against log partitions P, GLOBAL and LOCAL, p50
# (solid) and p99 (dashed), medians of rounds, from bench_index --tsv:
# index_partitions.tsv (ms).
#   gnuplot -e "data='DIR/index_partitions.tsv'; out='docs/index_partitions.png'" bench/index_partitions.gp
set terminal pngcairo size 1100,450 font ",10"
set output out
set datafile separator "\t"
set key top left
set grid
set logscale x 2
set xlabel "log partitions P (3 workers)"
set ylabel "ms, from the client"
set yrange [0:*]
set style data linespoints
set multiplot layout 1,2

do for [c in "1 8"] {
    set title sprintf("Equality query, %s client%s", c, c eq "1" ? "" : "s")
    plot data using "P":"GLOBAL_c".c."_p50" title "GLOBAL p50" lc rgb "#d62728" pt 5, \
         '' using "P":"GLOBAL_c".c."_p99" title "GLOBAL p99" lc rgb "#d62728" pt 4 dt 2, \
         '' using "P":"LOCAL_c".c."_p50" title "LOCAL p50" lc rgb "#2ca02c" pt 9, \
         '' using "P":"LOCAL_c".c."_p99" title "LOCAL p99" lc rgb "#2ca02c" pt 8 dt 2
}

unset multiplot
