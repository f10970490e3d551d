#!/bin/sh
# Installs what `make bench` needs beyond the build and test dependencies
# (deploy/install-deps.sh): PostgreSQL 15 and libpq for bench_peers, the peer
# it measures shardex against, and gnuplot for the plots in docs/. Not part of
# `make test`. The benchmark starts its own PostgreSQL server in a temporary
# directory; apt-install.sh keeps the package's own service from starting.
set -eu
exec "$(dirname "$0")/apt-install.sh" install-bench-deps postgresql libpq-dev gnuplot-nox
