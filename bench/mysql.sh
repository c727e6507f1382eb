#!/usr/bin/env bash
# bench/mysql.sh — MariaDB direct vs through sluice, with sysbench, in one run, on this machine.
#
# What it measures
#   sysbench throughput (transactions/s for oltp_read_only, queries/s for oltp_point_select,
#   whose transaction is one query) and 95th-percentile latency, 8 threads, BENCH_SECONDS (20)
#   each, with server-side prepared statements on (--db-ps-mode=auto: the binary protocol) and
#   off (disable: text queries), against:
#     direct      MariaDB at 127.0.0.1:3306 (plaintext: the shared server has TLS off)
#     sluice/tls  the gateway from this repo (release build), client leg over TLS, connection
#                 `bench`: recording on (buffered), the quickstart's deny guardrails (every
#                 statement parsed and judged) and masking with every default detector, client
#                 copy masked (every row scanned)
#     sluice/plain the same, client leg plaintext (allow_plaintext on loopback), to separate the
#                 cost of TLS from the cost of the gateway
#     haproxy     HAProxy in TCP mode (plaintext, no inspection): the cost of any extra hop on
#                 this machine, as a floor for every proxy (ProxySQL and MaxScale are not
#                 packaged for Debian 12)
#   The table shows each proxy's ratio to direct. The target of issue #7 is ≥ 0.7.
#
# Run:  bench/mysql.sh        (as root: installs sysbench and haproxy with apt if absent)
# Knobs (environment): BENCH_SECONDS (20), BENCH_ROUNDS (1: passes over the matrix, each cell
#   reporting its median run, failed runs left out; 3 on a noisy VM), BENCH_THREADS (8), BENCH_TABLES (4),
#   BENCH_TABLE_SIZE (10000), BENCH_KEEP=1 keeps the work dir (logs).
# Needs: mariadb client, cargo, python3, openssl, MariaDB at 127.0.0.1:3306 (root, empty password).
# The database sluice_bench_<pid> is created and dropped; every process started is stopped.
# Runtime: 16 × BENCH_ROUNDS × BENCH_SECONDS plus ~30 s (plus a release build if needed). Clients, gateway and
# MariaDB share this machine's cores: read the numbers as relative costs.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
# shellcheck source=bench/stats.sh
source "$BENCH_DIR/stats.sh"
# shellcheck source=bench/haproxy.sh
source "$BENCH_DIR/haproxy.sh"
RUN_SECONDS=${BENCH_SECONDS:-20}
ROUNDS=${BENCH_ROUNDS:-1}
THREADS=${BENCH_THREADS:-8}
TABLES=${BENCH_TABLES:-4}
TABLE_SIZE=${BENCH_TABLE_SIZE:-10000}
MY_HOST=127.0.0.1
MY_PORT=3306
DB=sluice_bench_$$
SLUICE_BIN=$REPO/target/release/sluice
WORK=$(mktemp -d /tmp/sluice-mysql-bench.XXXXXX)
SLUICE_PID=""
SLUICE_PORT=""
SLUICE_TOKEN=""
SLUICE_OK=0
DB_CREATED=0
HAPROXY_PORT=""
HAPROXY_PID=""

declare -A RATE=() P95=()

log() { printf '[mysql.sh %s] %s\n' "$(date +%T)" "$*" >&2; }
warn() { printf '[mysql.sh %s] WARNING: %s\n' "$(date +%T)" "$*" >&2; }
die() { printf '[mysql.sh] ERROR: %s\n' "$*" >&2; exit 1; }

admin() { mariadb -h "$MY_HOST" -P "$MY_PORT" -u root --batch -e "$1"; }

cleanup() {
  local rc=$? i
  set +e
  trap - EXIT INT TERM
  if [[ -n $SLUICE_PID ]]; then
    kill "$SLUICE_PID" 2>/dev/null
    for ((i = 0; i < 50; i++)); do kill -0 "$SLUICE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SLUICE_PID" 2>/dev/null
    wait "$SLUICE_PID" 2>/dev/null
  fi
  [[ -n $HAPROXY_PID ]] && kill "$HAPROXY_PID" 2>/dev/null
  ((DB_CREATED)) && { admin "DROP DATABASE IF EXISTS $DB" || warn "could not drop database $DB"; }
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

check_prereqs() {
  command -v mariadb >/dev/null 2>&1 || die "the mariadb client is not installed"
  command -v python3 >/dev/null 2>&1 || die "python3 not found"
  local missing=()
  command -v sysbench >/dev/null 2>&1 || missing+=(sysbench)
  command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
  if ((${#missing[@]})); then
    log "installing ${missing[*]} (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  admin "SELECT 1" >/dev/null || die "MariaDB is not reachable at $MY_HOST:$MY_PORT as root"
  log "$(sysbench --version), MariaDB $(admin 'SELECT VERSION()' | tail -1)"
}

prepare_db() {
  log "creating $DB: $TABLES tables × $TABLE_SIZE rows (sysbench prepare)"
  admin "CREATE DATABASE $DB"
  DB_CREATED=1
  sysbench oltp_read_only --mysql-host="$MY_HOST" --mysql-port="$MY_PORT" --mysql-user=root \
    --mysql-db="$DB" --tables="$TABLES" --table-size="$TABLE_SIZE" prepare >"$WORK/prepare.log" 2>&1 ||
    { tail -20 "$WORK/prepare.log" >&2; die "sysbench prepare failed"; }
}

start_haproxy() {
  HAPROXY_PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  haproxy_tcp "$WORK/haproxy.cfg" "$HAPROXY_PORT" "$MY_HOST" "$MY_PORT"
  HAPROXY_PID=$!
  local i
  for ((i = 0; i < 100; i++)); do
    mariadb -h 127.0.0.1 -P "$HAPROXY_PORT" -u root --batch -e "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.1
  done
  log "haproxy (tcp) on 127.0.0.1:$HAPROXY_PORT, pid $HAPROXY_PID"
}

start_sluice() {
  local data=$WORK/sluice-data api_port deadline
  log "building sluice (cargo build --release -p sluice)"
  if ! "$REPO/scripts/build-release.sh" >"$WORK/cargo-build.log" 2>&1; then
    tail -30 "$WORK/cargo-build.log" >&2
    warn "release build failed: sluice rows will be n/a"
    return 0
  fi
  mkdir -p "$data"
  cat >"$WORK/sluice.yaml" <<EOF
listeners:
  postgres:
    address: 127.0.0.1:0
  mysql:
    address: 127.0.0.1:0
    allow_plaintext: true      # loopback clients may skip TLS: the sluice/plain rows
  api:
    address: 127.0.0.1:0
recording:
  mode: buffered
  max_rows: 100
connections:
  - name: bench
    type: mysql
    host: $MY_HOST
    port: $MY_PORT
    database: $DB
    username: root
    guardrails:
      unparsable: deny
      rules:
        - { name: no-drop-database, action: deny, match: { statements: [drop_database] } }
        - { name: no-drop-table, action: deny, match: { statements: [drop_table] } }
        - { name: no-truncate, action: deny, match: { statements: [truncate] } }
        - { name: no-grants, action: deny, match: { statements: [grant, revoke, create_role, alter_role, drop_role] } }
        - { name: no-unbounded-writes, action: deny, match: { statements: [delete_without_where, update_without_where] } }
    masking:
      mask_client: true
      columns: ["*password*", "*secret*", "ssn"]
grants:
  - group: engineering
    connection: bench
EOF
  "$SLUICE_BIN" gateway --config "$WORK/sluice.yaml" --data-dir "$data" >"$WORK/sluice.log" 2>&1 &
  SLUICE_PID=$!
  deadline=$((SECONDS + 60))
  until [[ -s $data/listeners.json && -s $data/bootstrap-token && -s $data/tls/ca.pem ]]; do
    if ! kill -0 "$SLUICE_PID" 2>/dev/null || ((SECONDS >= deadline)); then
      tail -30 "$WORK/sluice.log" >&2
      warn "gateway did not become ready: sluice rows will be n/a"
      return 0
    fi
    sleep 0.1
  done
  read -r SLUICE_PORT api_port < <(python3 -c '
import json, sys
l = json.load(open(sys.argv[1]))
print(l["mysql"].rsplit(":", 1)[1], l["api"].rsplit(":", 1)[1])' "$data/listeners.json")
  if ! SLUICE_TOKEN=$(SLUICE_ADDR="https://127.0.0.1:$api_port" SLUICE_TOKEN="$(cat "$data/bootstrap-token")" \
    SLUICE_CA="$data/tls/ca.pem" "$SLUICE_BIN" service-accounts create bench-sa --groups engineering \
    2>"$WORK/sa.log") || [[ -z $SLUICE_TOKEN ]]; then
    cat "$WORK/sa.log" >&2
    warn "could not create a service account: sluice rows will be n/a"
    return 0
  fi
  if ! mariadb -h 127.0.0.1 -P "$SLUICE_PORT" -u bench -p"$SLUICE_TOKEN" --ssl --batch "$DB" \
    -e "SELECT COUNT(*) FROM sbtest1" >"$WORK/check.log" 2>&1; then
    cat "$WORK/check.log" >&2
    tail -20 "$WORK/sluice.log" >&2
    warn "a query through sluice failed: sluice rows will be n/a"
    return 0
  fi
  # sysbench 1.0's --mysql-ssl=on loads cacert.pem, client-cert.pem and client-key.pem from its
  # working directory: the gateway's CA, and a throwaway client pair the gateway never asks for.
  mkdir -p "$WORK/sysbench-tls"
  cp "$data/tls/ca.pem" "$WORK/sysbench-tls/cacert.pem"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=sysbench" \
    -keyout "$WORK/sysbench-tls/client-key.pem" -out "$WORK/sysbench-tls/client-cert.pem" >/dev/null 2>&1 ||
    warn "could not make sysbench's client pair: sluice/tls rows will fail"
  SLUICE_OK=1
  log "sluice MySQL listener on 127.0.0.1:$SLUICE_PORT, pid $SLUICE_PID"
}

run_sysbench() { # run_sysbench TARGET WORKLOAD PS — fills RATE/P95[TARGET,WORKLOAD,PS]
  run_sysbench_once "$@"
  # libmariadb loads mysql_clear_password (the plaintext login) on demand, and threads that
  # connect at the same instant can race on it ("could not be loaded: it is already loaded");
  # one retry usually gets past it. TLS logins use the built-in caching_sha2_password.
  if [[ ${RATE[$1,$2,$3]} == fail ]] && grep -q "already loaded" "$WORK/sysbench-${1//\//-}-$2-$3.log"; then
    warn "retrying once: libmariadb's plugin-loading race (client side)"
    unset "RATE[$1,$2,$3]" "P95[$1,$2,$3]"
    run_sysbench_once "$@"
  fi
}

run_sysbench_once() {
  local target=$1 wl=$2 ps=$3 key="$1,$2,$3" logf conn=()
  logf="$WORK/sysbench-${target//\//-}-$wl-$ps.log"
  case $target in
    direct) conn=(--mysql-host="$MY_HOST" --mysql-port="$MY_PORT" --mysql-user=root) ;;
    haproxy) conn=(--mysql-host=127.0.0.1 --mysql-port="$HAPROXY_PORT" --mysql-user=root) ;;
    sluice/*)
      if ((!SLUICE_OK)); then RATE[$key]="n/a"; P95[$key]="n/a"; return 0; fi
      conn=(--mysql-host=127.0.0.1 --mysql-port="$SLUICE_PORT" --mysql-user=bench
        --mysql-password="$SLUICE_TOKEN")
      [[ $target == sluice/tls ]] && conn+=(--mysql-ssl=on) ;;
  esac
  log "sysbench $wl (ps $ps) via $target, $THREADS threads, ${RUN_SECONDS}s"
  if (cd "$WORK/sysbench-tls" 2>/dev/null || cd "$WORK"; timeout $((RUN_SECONDS + 60)) sysbench "$wl" "${conn[@]}" --mysql-db="$DB" \
    --tables="$TABLES" --table-size="$TABLE_SIZE" --threads="$THREADS" --time="$RUN_SECONDS" \
    --db-ps-mode="$ps" --report-interval=0 run) >"$logf" 2>&1; then
    if [[ $wl == oltp_point_select ]]; then
      RATE[$key]=$(awk '/queries:/ && /per sec/ {gsub(/[(]/, "", $3); print $3; exit}' "$logf")
    else
      RATE[$key]=$(awk '/transactions:/ {gsub(/[(]/, "", $3); print $3; exit}' "$logf")
    fi
    P95[$key]=$(awk '/95th percentile:/ {print $3; exit}' "$logf")
  fi
  if [[ -z ${RATE[$key]:-} ]] || grep -q "FATAL" "$logf"; then
    warn "sysbench $wl (ps $ps) via $target failed:"
    grep -m5 -E "FATAL|error" "$logf" >&2 || tail -5 "$logf" >&2
    RATE[$key]="fail"
    P95[$key]="fail"
  fi
}

WORKLOADS=(oltp_read_only oltp_point_select)
PS_MODES=(auto disable)
TARGETS=(direct haproxy sluice/tls sluice/plain)

ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b + 0 > 0) printf "%.2f", a / b; else printf "-" }'
}

report() {
  local wl ps d h t p fmt
  echo
  echo "=== sluice MySQL benchmark: sysbench, $THREADS threads, ${RUN_SECONDS}s per run, median of $ROUNDS round(s), $TABLES×$TABLE_SIZE rows, $(nproc) cores, $(date -u +%FT%TZ) ==="
  echo "rate: transactions/s (oltp_read_only: 14 queries each) or queries/s (oltp_point_select); p95 latency in ms."
  echo "ps auto: server-side prepared statements (binary protocol); ps disable: text queries."
  echo "sluice: recording on (buffered), deny guardrails on every statement, masking of every row."
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (sysbench, gateway and MariaDB share the cores)"
  echo
  fmt='%-18s %-8s %10s %10s %10s %10s %7s %7s %7s %8s %8s %8s\n'
  # shellcheck disable=SC2059
  printf "$fmt" workload ps direct haproxy sluice/tls sluice/pl "hap/d" "tls/d" "pl/d" "p95:dir" "p95:tls" "p95:pl"
  for wl in "${WORKLOADS[@]}"; do
    for ps in "${PS_MODES[@]}"; do
      d=${RATE[direct,$wl,$ps]} h=${RATE[haproxy,$wl,$ps]} t=${RATE[sluice/tls,$wl,$ps]} p=${RATE[sluice/plain,$wl,$ps]}
      # shellcheck disable=SC2059
      printf "$fmt" "$wl" "$ps" "$d" "$h" "$t" "$p" "$(ratio "$h" "$d")" "$(ratio "$t" "$d")" "$(ratio "$p" "$d")" \
        "${P95[direct,$wl,$ps]}" "${P95[sluice/tls,$wl,$ps]}" "${P95[sluice/plain,$wl,$ps]}"
    done
  done
  ((SLUICE_OK)) || echo "sluice: n/a — the gateway could not be built or started (see warnings above)."
}

main() {
  check_prereqs
  prepare_db
  start_haproxy
  start_sluice
  local wl ps target round key
  declare -A runs=() p95s=()
  # BENCH_ROUNDS passes over the matrix; each cell reports its median run (and that run's p95).
  for round in $(seq 1 "$ROUNDS"); do
    ((ROUNDS > 1)) && log "sysbench matrix, round $round of $ROUNDS"
    for wl in "${WORKLOADS[@]}"; do
      for ps in "${PS_MODES[@]}"; do
        for target in "${TARGETS[@]}"; do
          key="$target,$wl,$ps"
          unset "RATE[$key]" "P95[$key]"
          run_sysbench "$target" "$wl" "$ps"
          runs[$key]+="${RATE[$key]} "; p95s[$key]+="${P95[$key]} "
        done
      done
    done
  done
  for key in "${!runs[@]}"; do
    read -r RATE[$key] P95[$key] < <(median_with "${runs[$key]}" "${p95s[$key]}")
  done
  report
}

main "$@"
