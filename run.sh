#!/usr/bin/env bash
# Builds sluice (installing the C toolchain if missing) and starts the gateway with the
# quickstart config on an embedded SQLite store in ./sluice-data.
# Extra arguments go to `sluice gateway` (e.g. --data-dir DIR, --config FILE).
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v cc >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential
fi

cargo build --release -p sluice
config=examples/quickstart.yaml
for arg in "$@"; do
  [[ "$arg" == "--config" || "$arg" == "-c" ]] && config=""
done
exec ./target/release/sluice gateway ${config:+--config "$config"} "$@"
