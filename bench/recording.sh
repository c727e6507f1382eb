#!/usr/bin/env bash
# bench/recording.sh — what recording and the audit trail cost, in one run, on this machine.
#
# pgbench (select-simple: -S -M simple; select-prepared: -S -M prepared), CLIENTS clients
# (default 8), 2 threads, BENCH_SECONDS each (default 20), plaintext client leg from loopback
# (the TLS cost is measured by bench/pg.sh), against:
#   direct     PostgreSQL at 127.0.0.1:5432
#   off        sluice with recording.mode: off (session start/end only; the baseline)
#   buffered-noaudit  recording as shipped, but only refused and held statements audited
#              (audit.statements: false): what the per-statement audit events cost
#   buffered   sluice as shipped: every statement and result recorded (hash-chained, batched
#              group commit), every statement audited (statement.allowed, hash-chained audit log,
#              signed checkpoints) and delivered to the JSON-lines file sink
#   strict     the same, each statement durable (fsync'd) before it reaches the server
# Each gateway is a release build process with its own data dir; all run side by side and the
# runs interleave them over BENCH_ROUNDS rounds (default 3). The table prints median TPS and
# average latency, and each mode's TPS relative to `off`.
# Targets (issue #9): buffered within 5% of off; strict within 15% of off at 8 clients.
# Run: bench/recording.sh     Knobs: BENCH_SECONDS, BENCH_SCALE (10), CLIENTS (8), BENCH_KEEP=1,
#   BENCH_TARGETS (sluice targets, default "off buffered-noaudit buffered strict"),
#   BENCH_WORKLOADS (default "select-simple select-prepared").
# Needs: psql, pgbench, cargo; PostgreSQL at 127.0.0.1:5432 with trust auth for `postgres`.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
SECS=${BENCH_SECONDS:-20}
SCALE=${BENCH_SCALE:-10}
CLIENTS=${CLIENTS:-8}
DB=sluice_rec_bench_$$
BIN=$REPO/target/release/sluice
WORK=$(mktemp -d /tmp/sluice-recbench.XXXXXX)
PIDS=()
export PGCONNECT_TIMEOUT=10 PGGSSENCMODE=disable
unset PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGSSLMODE

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -X -q -h 127.0.0.1 -U postgres -d postgres -c "drop database if exists $DB with (force)" >/dev/null 2>&1 || true
  [[ ${BENCH_KEEP:-0} == 1 ]] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

echo "building the release binary…" >&2
"$REPO/scripts/build-release.sh" >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; exit 1; }
psql -X -q -h 127.0.0.1 -U postgres -d postgres -c "create database $DB" >/dev/null
pgbench -q -i -s "$SCALE" -h 127.0.0.1 -U postgres "$DB" >"$WORK/init.log" 2>&1

# Starts a gateway for target $1 (recording mode, then optional `-` suffix); sets PORT and TOKEN.
start_gateway() {
  local target=$1 mode=${1%%-*} data=$WORK/$1 audit="statements: true"
  [[ $target == *-noaudit ]] && audit="statements: false"
  mkdir -p "$data"
  cat >"$data.yaml" <<YAML
listeners:
  postgres: { address: 127.0.0.1:0, allow_plaintext: true }
  api: { address: 127.0.0.1:0 }
recording: { mode: $mode }
audit: { $audit }
connections:
  - { name: bench, type: postgres, host: 127.0.0.1, port: 5432, database: $DB, username: postgres }
grants:
  - { group: engineering, connection: bench }
YAML
  "$BIN" gateway --config "$data.yaml" --data-dir "$data" >"$data.log" 2>&1 &
  PIDS+=($!)
  local deadline=$((SECONDS + 60))
  until [[ -s $data/listeners.json && -s $data/bootstrap-token && -s $data/tls/ca.pem ]]; do
    ((SECONDS < deadline)) || { cat "$data.log"; exit 1; }
    sleep 0.1
  done
  read -r PORT API < <(python3 -c 'import json,sys; l=json.load(open(sys.argv[1])); print(l["postgres"].rsplit(":",1)[1], l["api"].rsplit(":",1)[1])' "$data/listeners.json")
  TOKEN=$(SLUICE_ADDR="https://127.0.0.1:$API" SLUICE_TOKEN="$(cat "$data/bootstrap-token")" \
    SLUICE_CA="$data/tls/ca.pem" "$BIN" service-accounts create "bench-$target" --groups engineering)
}

declare -A TPS LAT PORTS TOKENS
ROUNDS=${BENCH_ROUNDS:-3}
run() { # key workload dsn-args…
  local key=$1 workload=$2; shift 2
  local mode=simple
  [[ $workload == select-prepared ]] && mode=prepared
  local out
  out=$(pgbench -n -S -M "$mode" -c "$CLIENTS" -j 2 -T "$SECS" "$@" 2>&1) || { echo "$out" >&2; return 1; }
  TPS[$key]+="$(awk '/^tps = / {printf "%.0f", $3}' <<<"$out") "
  LAT[$key]+="$(awk '/^latency average/ {print $4}' <<<"$out") "
}
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

WORKLOADS=(${BENCH_WORKLOADS:-select-simple select-prepared})
TARGETS=(${BENCH_TARGETS:-off buffered-noaudit buffered strict})
for m in "${TARGETS[@]}"; do
  start_gateway "$m"
  PORTS[$m]=$PORT TOKENS[$m]=$TOKEN
done
# Rounds interleave the targets, so drift on a shared machine hits them alike; medians are shown.
for ((r = 1; r <= ROUNDS; r++)); do
  for w in "${WORKLOADS[@]}"; do
    run "direct/$w" "$w" -h 127.0.0.1 -p 5432 -U postgres "$DB"
    for m in "${TARGETS[@]}"; do
      PGPASSWORD=${TOKENS[$m]} PGSSLMODE=disable run "$m/$w" "$w" -h 127.0.0.1 -p "${PORTS[$m]}" -U bench "$DB"
    done
  done
done

printf '\n%s clients, %s rounds of %ss, scale %s, plaintext client leg, %s cores; medians\n\n' "$CLIENTS" "$ROUNDS" "$SECS" "$SCALE" "$(nproc)"
printf '%-16s %-17s %10s %12s %10s\n' workload target TPS "latency ms" "vs off"
for w in "${WORKLOADS[@]}"; do
  base=$(median "${TPS[off/$w]:-}")
  for t in direct "${TARGETS[@]}"; do
    tps=$(median "${TPS[$t/$w]}")
    ratio=n/a
    [[ -n $base ]] && ratio=$(awk -v a="$tps" -v b="$base" 'BEGIN { printf "%.3f", a / b }')
    printf '%-16s %-17s %10s %12s %10s\n' "$w" "$t" "$tps" "$(median "${LAT[$t/$w]}")" "$ratio"
  done
done
