# Latency p50 (solid) and p99 (dashed) against clients, PostgreSQL and shardex
# (plain gRPC client), from bench_peers --tsv: peers_latency.tsv (ms, all rounds).
#   gnuplot -e "data='DIR/peers_latency.tsv'; out='docs/peers_latency.png'" bench/peers_latency.gp
set terminal pngcairo size 1100,450 font ",10"
set output out
set datafile separator "\t"
set datafile missing "?"
set key top left
set grid
set logscale x 2
set logscale y
set xlabel "clients (closed loop: one operation in flight each)"
set ylabel "ms, from the client"
set style data linespoints
set multiplot layout 1,2

set title "Equality on Maintainer, a typical value: a query, every page (plain gRPC)"
plot data using "clients":"eq_pg_p50" title "PostgreSQL p50" lc rgb "#1f77b4" pt 7, \
     '' using "clients":"eq_pg_p99" title "PostgreSQL p99" lc rgb "#1f77b4" pt 6 dt 2, \
     '' using "clients":"eq_shardex_global_p50" title "shardex GLOBAL p50" lc rgb "#d62728" pt 5, \
     '' using "clients":"eq_shardex_global_p99" title "shardex GLOBAL p99" lc rgb "#d62728" pt 4 dt 2, \
     '' using "clients":"eq_shardex_local_p50" title "shardex LOCAL p50" lc rgb "#2ca02c" pt 9, \
     '' using "clients":"eq_shardex_local_p99" title "shardex LOCAL p99" lc rgb "#2ca02c" pt 8 dt 2

set title "Ingest: a transaction (Put) of 1000 documents (plain gRPC)"
plot data using "clients":"ingest_pg_p50" title "PostgreSQL p50" lc rgb "#1f77b4" pt 7, \
     '' using "clients":"ingest_pg_p99" title "PostgreSQL p99" lc rgb "#1f77b4" pt 6 dt 2, \
     '' using "clients":"ingest_shardex_R1_p50" title "shardex R=1 p50" lc rgb "#d62728" pt 5, \
     '' using "clients":"ingest_shardex_R1_p99" title "shardex R=1 p99" lc rgb "#d62728" pt 4 dt 2, \
     '' using "clients":"ingest_shardex_R3_p50" title "shardex R=3 p50" lc rgb "#ff7f0e" pt 9, \
     '' using "clients":"ingest_shardex_R3_p99" title "shardex R=3 p99" lc rgb "#ff7f0e" pt 8 dt 2

unset multiplot
