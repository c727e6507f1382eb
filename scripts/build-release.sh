#!/usr/bin/env bash
# Builds the release gateway (target/release/sluice), installing the C toolchain and libclang
# first if missing: pg_query, PostgreSQL's own SQL parser, is built from C and generates its
# bindings with libclang. Used by ./run.sh and the bench/ scripts. Extra arguments go to cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=()
command -v cc >/dev/null 2>&1 || apt_packages+=(build-essential)
dpkg-query -W -f='${Status}' libclang-dev 2>/dev/null | grep -q 'ok installed' || apt_packages+=(libclang-dev)
if ((${#apt_packages[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}"
fi

exec cargo build --release -p sluice "$@"
