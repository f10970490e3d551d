#!/bin/sh
# Installs every build and test dependency of shardex from Debian packages
# (through apt-install.sh: idempotent and quick when everything is present; it
# runs `apt-get update` only when something is missing, as a fresh machine may
# have empty package lists; sudo when not run as root). clang and
# libclang-rt-14-dev (libFuzzer) build the fuzz targets (tests/fuzz);
# libsystemd-dev gives the daemons sd_notify (Type=notify units), and
# systemd's systemd-analyze checks the units in deploy/systemd. dpkg-dev
# (dpkg-shlibdeps) and file give `make package` the packages' Depends;
# mmdebstrap makes the fresh Debian root the package test installs them in.
# libmicrohttpd-dev serves the daemons' /metrics, and prometheus gives the
# tests promtool to check what it serves (apt-install.sh forbids service
# starts, so its package does not start a Prometheus server). etcd-server and
# etcd-client give the tests their own etcd members (common/etcd.c, the
# coordinators' metadata store); their post-install's system etcd is not
# started either.
set -eu

PKGS="build-essential gcc make cmake pkg-config git clang libclang-rt-14-dev
libgrpc-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
libleveldb-dev libcmocka-dev libxxhash-dev libjansson-dev libsystemd-dev
libmicrohttpd-dev prometheus etcd-server etcd-client
python3 python3-grpcio python3-protobuf
iproute2 procps nftables systemd
dpkg-dev file mmdebstrap"

# shellcheck disable=SC2086
exec "$(dirname "$0")/apt-install.sh" install-deps $PKGS
