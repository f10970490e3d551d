# Throughput against clients, PostgreSQL and shardex (plain gRPC client), from
# bench_peers --tsv: peers_throughput.tsv (medians of rounds).
#   gnuplot -e "data='DIR/peers_throughput.tsv'; out='docs/peers_throughput.png'" bench/peers_throughput.gp
set terminal pngcairo size 1100,450 font ",10"
set output out
set datafile separator "\t"
set datafile missing "?"
set key top left
set grid
set logscale x 2
set xlabel "clients (closed loop: one operation in flight each)"
set yrange [0:*]
set style data linespoints
set multiplot layout 1,2

set title "Ingest: transactions (Puts) of 1000 documents; shardex by plain gRPC"
set ylabel "documents/s"
plot data using "clients":"ingest_pg" title "PostgreSQL" lc rgb "#1f77b4" pt 7, \
     '' using "clients":"ingest_shardex_R1" title "shardex R=1" lc rgb "#d62728" pt 5, \
     '' using "clients":"ingest_shardex_R3" title "shardex R=3" lc rgb "#ff7f0e" pt 9

set title "Equality on Maintainer, a typical value, every hit; shardex by plain gRPC"
set ylabel "queries/s"
plot data using "clients":"eq_pg" title "PostgreSQL" lc rgb "#1f77b4" pt 7, \
     '' using "clients":"eq_shardex_global" title "shardex GLOBAL" lc rgb "#d62728" pt 5, \
     '' using "clients":"eq_shardex_local" title "shardex LOCAL" lc rgb "#2ca02c" pt 9

unset multiplot
