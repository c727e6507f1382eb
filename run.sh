#!/usr/bin/env bash
# Builds sluice (installing the C toolchain and libclang if missing) and starts the gateway with the
# quickstart config on an embedded SQLite store in ./sluice-data.
# Extra arguments go to `sluice gateway` (e.g. --data-dir DIR, --config FILE).
set -euo pipefail
cd "$(dirname "$0")"

scripts/build-release.sh
config=examples/quickstart.yaml
for arg in "$@"; do
  [[ "$arg" == "--config" || "$arg" == "-c" ]] && config=""
done
exec ./target/release/sluice gateway ${config:+--config "$config"} "$@"
