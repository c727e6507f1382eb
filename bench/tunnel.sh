#!/usr/bin/env bash
# bench/tunnel.sh — the agent tunnel alone: N parallel streams of M MiB each (default 100 x 10),
# read directly over TCP and through a tunnel (TLS, HTTP/2 CONNECT streams, the product's own
# gateway and agent code in one process, joined over loopback). Prints aggregate throughput and
# fairness (slowest stream time / fastest stream time) for both.
#
# Run:  bench/tunnel.sh [STREAMS] [MIB]      (a release build of the example, ~2 min the first time)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo run -q --release -p sluice-tunnel --example tunnel_bench -- "${1:-100}" "${2:-10}"
