#!/usr/bin/env bash
# Builds sluice (installing the C toolchain and libclang if missing) and starts the gateway with the
# quickstart config on an embedded SQLite store in ./sluice-data.
# Extra arguments go to `sluice gateway` (e.g. --data-dir DIR, --config FILE).
set -euo pipefail
cd "$(dirname "$0")"

# A C toolchain and libclang (pg_query, PostgreSQL's own SQL parser, is built from C and
# generates its bindings with libclang).
apt_packages=()
command -v cc >/dev/null 2>&1 || apt_packages+=(build-essential)
dpkg-query -W -f='${Status}' libclang-dev 2>/dev/null | grep -q 'ok installed' || apt_packages+=(libclang-dev)
if ((${#apt_packages[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}"
fi

cargo build --release -p sluice
config=examples/quickstart.yaml
for arg in "$@"; do
  [[ "$arg" == "--config" || "$arg" == "-c" ]] && config=""
done
exec ./target/release/sluice gateway ${config:+--config "$config"} "$@"
