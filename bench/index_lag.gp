# Lag of the GLOBAL index behind acknowledged Puts against the offered load,
# with the same probe on the LOCAL index (its floor), from bench_index --tsv:
# index_lag.tsv (ms). The goal: GLOBAL p99 <= 50 ms at half the maximum ingest.
#   gnuplot -e "data='DIR/index_lag.tsv'; out='docs/index_lag.png'" bench/index_lag.gp
set terminal pngcairo size 700,450 font ",10"
set output out
set datafile separator "\t"
set key bottom right
set grid
set logscale y
set yrange [*:100<*]
set xlabel "offered load, documents/s (open loop)"
set ylabel "Put acknowledged -> visible, ms"
set style data linespoints
set arrow from graph 0, first 50 to graph 1, first 50 nohead dt 3 lc rgb "#555555"
set label "goal: GLOBAL p99 <= 50 ms" at graph 0.02, first 60 tc rgb "#555555"

plot data using "offered_docs_s":"GLOBAL_p50" title "GLOBAL p50" lc rgb "#d62728" pt 5, \
     '' using "offered_docs_s":"GLOBAL_p99" title "GLOBAL p99" lc rgb "#d62728" pt 4 dt 2, \
     '' using "offered_docs_s":"GLOBAL_p999" title "GLOBAL p99.9" lc rgb "#d62728" pt 6 dt 3, \
     '' using "offered_docs_s":"LOCAL_p50" title "LOCAL p50 (probe floor)" lc rgb "#2ca02c" pt 9, \
     '' using "offered_docs_s":"LOCAL_p99" title "LOCAL p99" lc rgb "#2ca02c" pt 8 dt 2
