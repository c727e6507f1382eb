#!/usr/bin/env bash
# bench/pg.sh — PostgreSQL direct vs pgbouncer vs sluice, in one run, on this machine.
#
# What it measures
#   1. pgbench throughput (TPS without initial connection time) and average latency, on a fresh
#      pgbench database (scale 10), for three workloads:
#        select-simple   -S -M simple,    8 clients, 2 threads
#        select-prepared -S -M prepared,  8 clients, 2 threads
#        rows-10k        bench/select_10k.sql (one SELECT returning 10,000 rows), -M simple,
#                        4 clients, 2 threads
#      each against three targets:
#        direct     PostgreSQL at 127.0.0.1:5432
#        pgbouncer  session pool mode, started here (installed with apt if missing)
#        sluice     the gateway from this repo (release build), recording on, buffered mode
#        sluice+gm  the same gateway, connection `bench-gm`: the quickstart's deny guardrails
#                   (every statement parsed and judged) and masking with every default
#                   detector on, client copy masked (every DataRow scanned)
#        agent      the same gateway, connection `bench-agent` with `via: bench-edge`: every
#                   session goes through a `sluice agent` (started here, on loopback) and
#                   its tunnel (TLS, HTTP/2 CONNECT streams); target >= 0.85 of sluice
#        hop        the same gateway, connection `bench-hop`: PostgreSQL reached through
#                   HAProxy in TCP mode (started here, installed with apt if missing), a
#                   relay that inspects nothing: what one more hop costs on this machine,
#                   the floor for any relay between gateway and target (such as the agent)
#      and in two client-leg modes: tls (sslmode=require) and plain (sslmode=disable). The
#      direct/tls row needs `ssl = on` on the server; if it is off the row reads "n/a" (the
#      shared server's config is never changed). The table shows sluice/direct and
#      sluice/pgbouncer TPS ratios, for sluice+gm its ratio to plain sluice and pgbouncer, and
#      for agent and hop their ratios to plain sluice.
#   2. Connection setup: p50/p95 of connect + `SELECT 1` + close over BENCH_CONNECTS (200)
#      sequential connections, direct vs pgbouncer vs sluice, tls and plain, measured with
#      psycopg and time.perf_counter; prints sluice's added p50 over direct.
#   3. Gateway memory: sluice's VmRSS before and while holding 1,000 idle TLS sessions, each
#      having run `SELECT 1`, measured (not projected). Every sluice session holds one server
#      connection and the shared server allows only 100, so the script starts a private
#      PostgreSQL 15 cluster of its own (initdb in the work dir, run as the postgres user,
#      max_connections = max(1100, sessions + 100), fsync off) and the gateway gets a second
#      connection, `idle`, to it; the cluster is stopped right after this phase. If that
#      cluster cannot start, the phase falls back to the shared server with as many sessions
#      as it has free minus 10; the report says which server was used and why.
#
# Run:  bench/pg.sh               (as root: installs pgbouncer and haproxy with apt if absent)
# Knobs (environment): BENCH_SECONDS (20, per pgbench run), BENCH_ROUNDS (1: passes over the
#   pgbench matrix, each cell reporting its median run, failed runs left out; 3 on a noisy VM), BENCH_SCALE (10),
#   BENCH_CONNECTS (200), BENCH_IDLE_SESSIONS (1000), BENCH_KEEP=1 keeps the work dir (logs),
#   BENCH_ONLY=idle runs only item 3 (no pgbench data, pgbouncer or other measurements),
#   BENCH_PG_BIN (/usr/lib/postgresql/15/bin: initdb and pg_ctl for the private cluster).
# Needs: psql, pgbench, python3 (psycopg 3 is pip-installed if missing), openssl, cargo,
#   PostgreSQL at 127.0.0.1:5432 with trust auth for `postgres`; for item 3, root, a
#   `postgres` OS user and PostgreSQL 15 server binaries (~1,000 backends: a few GiB of RAM).
# All ports are picked free at run time; every process, the private cluster and the temp
# database are removed on exit. Runtime is about 36 × BENCH_ROUNDS × BENCH_SECONDS plus ~1 min (plus a
# release build if needed); BENCH_ONLY=idle takes well under a minute after the build.
# The clients (pgbench/psycopg), the proxies and PostgreSQL share this machine's cores, so read
# the numbers as relative costs, not absolute capacity.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
# shellcheck source=bench/stats.sh
source "$BENCH_DIR/stats.sh"
# shellcheck source=bench/haproxy.sh
source "$BENCH_DIR/haproxy.sh"
RUN_SECONDS=${BENCH_SECONDS:-20}
ROUNDS=${BENCH_ROUNDS:-1}
SCALE=${BENCH_SCALE:-10}
CONNECTS=${BENCH_CONNECTS:-200}
IDLE_WANTED=${BENCH_IDLE_SESSIONS:-1000}
ONLY=${BENCH_ONLY:-}
PG_BIN=${BENCH_PG_BIN:-/usr/lib/postgresql/15/bin}
PG_HOST=127.0.0.1
PG_PORT=5432
DB=sluice_bench_$$
SLUICE_BIN=$REPO/target/release/sluice

WORK=$(mktemp -d /tmp/sluice-bench.XXXXXX)
PIDS=()            # processes started here, killed on exit
DB_CREATED=0
SLUICE_OK=0
SLUICE_PID=""
SLUICE_PG_PORT=""
SLUICE_API_PORT=""
SLUICE_TOKEN=""
AGENT_OK=0
PGB_PORT_PLAIN=""
PGB_PORT_TLS=""
HOP_PORT=""
HOP_OK=0
DIRECT_TLS=0
IDLE_PG_DIR=""     # private cluster for the idle-session phase (empty: not started)
IDLE_PG_PORT=""
IDLE_PG_MAX=$((IDLE_WANTED + 100 > 1100 ? IDLE_WANTED + 100 : 1100))
IDLE_PG_OK=0
IDLE_PG_WHY="not started"   # why the private cluster is not in use, for the report

declare -A TPS=() LAT=()

# Client environment: nothing inherited, no GSSAPI negotiation round trip.
unset PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGSSLMODE PGSERVICE PGOPTIONS || true
export PGGSSENCMODE=disable PGCONNECT_TIMEOUT=10

log() { printf '[pg.sh %s] %s\n' "$(date +%T)" "$*" >&2; }
warn() { printf '[pg.sh %s] WARNING: %s\n' "$(date +%T)" "$*" >&2; }
die() { printf '[pg.sh] ERROR: %s\n' "$*" >&2; exit 1; }

admin_psql() { # admin_psql DBNAME SQL  — as postgres, straight to the server
  psql -X -q -w -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U postgres -d "$1" -tAc "$2"
}

idle_psql() { # idle_psql SQL  — as postgres, straight to the private cluster
  psql -X -q -w -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$IDLE_PG_PORT" -U postgres -d postgres -tAc "$1"
}

free_port() {
  python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

wait_until() { # wait_until SECONDS DESCRIPTION CMD...  — polls CMD every 0.1 s
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { warn "timed out after waiting for $what"; return 1; }
    sleep 0.1
  done
}

cleanup() {
  local rc=$? pid i
  set +e
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  stop_private_pg
  if ((DB_CREATED)); then
    admin_psql test "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 ||
      warn "could not drop database $DB"
  fi
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then
    log "work dir kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# Phase 1: prerequisites
# ---------------------------------------------------------------------------------------------
check_prereqs() {
  local tool
  for tool in psql pgbench python3 openssl; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
  done
  if ! command -v pgbouncer >/dev/null 2>&1 || ! command -v haproxy >/dev/null 2>&1; then
    log "installing pgbouncer and haproxy (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer haproxy >/dev/null
  fi
  # The Debian package enables a system pgbouncer on 6432; this script never uses it.
  if ! python3 -c 'import psycopg' >/dev/null 2>&1; then
    log "installing psycopg (pip)"
    python3 -m pip install -q 'psycopg[binary]>=3.1' 2>/dev/null ||
      python3 -m pip install -q --break-system-packages 'psycopg[binary]>=3.1'
  fi
  pg_isready -q -h "$PG_HOST" -p "$PG_PORT" || die "PostgreSQL is not up at $PG_HOST:$PG_PORT"
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  if [[ $(admin_psql test 'show ssl') == on ]]; then DIRECT_TLS=1; fi
  log "pgbench $(pgbench --version | awk '{print $3}'), pgbouncer $(pgbouncer --version | awk 'NR==1{print $2}'), server ssl=$([[ $DIRECT_TLS == 1 ]] && echo on || echo off)"
}

# ---------------------------------------------------------------------------------------------
# Phase 2: fresh pgbench database
# ---------------------------------------------------------------------------------------------
prepare_db() {
  if [[ $ONLY == idle ]]; then             # only the gateway's `bench` connection needs it
    log "creating database $DB (empty: BENCH_ONLY=idle)"
    admin_psql test "CREATE DATABASE $DB" >/dev/null
    DB_CREATED=1
    return 0
  fi
  log "creating database $DB and running pgbench -i -s $SCALE"
  admin_psql test "CREATE DATABASE $DB" >/dev/null
  DB_CREATED=1
  pgbench -i -q -s "$SCALE" -h "$PG_HOST" -p "$PG_PORT" -U postgres "$DB" >"$WORK/pgbench-init.log" 2>&1 ||
    { tail -20 "$WORK/pgbench-init.log" >&2; die "pgbench -i failed"; }
}

# ---------------------------------------------------------------------------------------------
# Phase 3: pgbouncer, session mode, one instance plaintext and one requiring client TLS
# ---------------------------------------------------------------------------------------------
start_pgbouncer() { # start_pgbouncer NAME PORT TLS(0|1)
  local name=$1 port=$2 tls=$3 dir=$WORK/$1 pid
  mkdir -p "$dir"
  printf '"postgres" ""\n' >"$dir/userlist.txt"
  {
    echo "[databases]"
    echo "$DB = host=$PG_HOST port=$PG_PORT dbname=$DB"
    echo "[pgbouncer]"
    echo "listen_addr = 127.0.0.1"
    echo "listen_port = $port"
    echo "unix_socket_dir ="
    echo "auth_type = trust"
    echo "auth_file = $dir/userlist.txt"
    echo "pool_mode = session"
    echo "max_client_conn = 2000"
    echo "default_pool_size = 20"
    echo "ignore_startup_parameters = extra_float_digits"
    echo "logfile = $dir/pgbouncer.log"
    echo "pidfile = $dir/pgbouncer.pid"
    if ((tls)); then
      echo "client_tls_sslmode = require"
      echo "client_tls_key_file = $WORK/tls/key.pem"
      echo "client_tls_cert_file = $WORK/tls/cert.pem"
    fi
  } >"$dir/pgbouncer.ini"
  chown -R postgres: "$dir"
  # -u drops root for the postgres user; pgbouncer stays in the foreground, so $! is its pid.
  pgbouncer -u postgres "$dir/pgbouncer.ini" >"$dir/stdout.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  local sslmode=disable
  ((tls)) && sslmode=require
  wait_until 15 "pgbouncer ($name)" \
    psql -X -w "host=127.0.0.1 port=$port user=postgres dbname=$DB sslmode=$sslmode" -tAc 'select 1' ||
    { tail -n 20 "$dir/pgbouncer.log" "$dir/stdout.log" >&2 2>/dev/null; die "pgbouncer ($name) did not start"; }
  log "pgbouncer ($name) on 127.0.0.1:$port, pid $pid"
}

# HAProxy in TCP mode in front of PostgreSQL, for the gateway's `bench-hop` connection.
start_hop() {
  local dir=$WORK/haproxy pid
  mkdir -p "$dir"
  HOP_PORT=$(free_port)
  haproxy_tcp "$dir/haproxy.cfg" "$HOP_PORT" "$PG_HOST" "$PG_PORT"
  pid=$!
  PIDS+=("$pid")
  if wait_until 15 "haproxy" pg_isready -q -h 127.0.0.1 -p "$HOP_PORT"; then
    HOP_OK=1
    log "haproxy (TCP mode) on 127.0.0.1:$HOP_PORT, pid $pid"
  else
    tail -20 "$dir/haproxy.log" >&2
    warn "haproxy did not start: the hop column will be n/a"
  fi
}

start_pgbouncers() {
  mkdir -p "$WORK/tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
    -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" >/dev/null 2>&1
  chmod 0711 "$WORK"                      # pgbouncer runs as postgres
  chown -R postgres: "$WORK/tls"
  chmod 0600 "$WORK/tls/key.pem"
  PGB_PORT_PLAIN=$(free_port)
  start_pgbouncer pgbouncer-plain "$PGB_PORT_PLAIN" 0
  PGB_PORT_TLS=$(free_port)
  start_pgbouncer pgbouncer-tls "$PGB_PORT_TLS" 1
}

# ---------------------------------------------------------------------------------------------
# Phase 3b: private PostgreSQL cluster for the idle-session phase (the shared server allows only
# 100 connections); failures here only make that phase fall back to the shared server
# ---------------------------------------------------------------------------------------------
start_private_pg() {
  local dir=$WORK/idle-pg
  if [[ ! -x $PG_BIN/initdb || ! -x $PG_BIN/pg_ctl ]]; then
    IDLE_PG_WHY="no initdb/pg_ctl in $PG_BIN"
  elif ((EUID != 0)) || ! id postgres >/dev/null 2>&1; then
    IDLE_PG_WHY="needs root and a postgres OS user (PostgreSQL refuses to run as root)"
  fi
  if [[ $IDLE_PG_WHY != "not started" ]]; then
    warn "private PostgreSQL cluster not started: $IDLE_PG_WHY"
    return 0
  fi
  chmod 0711 "$WORK"                      # the cluster runs as postgres
  mkdir -p "$dir"
  chown postgres: "$dir"
  IDLE_PG_PORT=$(free_port)
  log "starting a private PostgreSQL cluster (max_connections=$IDLE_PG_MAX) on 127.0.0.1:$IDLE_PG_PORT"
  # cd: the postgres user may not be able to read the caller's working directory.
  if ! (cd "$dir" && runuser -u postgres -- "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres \
    --no-sync) >"$dir/initdb.log" 2>&1; then
    tail -20 "$dir/initdb.log" >&2
    IDLE_PG_WHY="initdb failed"
    warn "private PostgreSQL cluster: $IDLE_PG_WHY"
    return 0
  fi
  IDLE_PG_DIR=$dir
  if ! (cd "$dir" && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
    -o "-p $IDLE_PG_PORT -k $dir -c listen_addresses=127.0.0.1 -c max_connections=$IDLE_PG_MAX -c shared_buffers=32MB -c fsync=off" \
    start) >"$dir/pg_ctl.log" 2>&1 || ! idle_psql 'select 1' >/dev/null 2>&1; then
    tail -n 20 "$dir/pg_ctl.log" "$dir/log" >&2 2>/dev/null || true
    IDLE_PG_WHY="the server did not start (max_connections=$IDLE_PG_MAX)"
    warn "private PostgreSQL cluster: $IDLE_PG_WHY"
    stop_private_pg
    return 0
  fi
  IDLE_PG_OK=1
  log "private PostgreSQL $(idle_psql 'show server_version') up, data in $dir/data"
}

stop_private_pg() { # idempotent; also called from cleanup
  [[ -n $IDLE_PG_DIR ]] || return 0
  if [[ -f $IDLE_PG_DIR/data/postmaster.pid ]]; then
    (cd "$IDLE_PG_DIR" && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$IDLE_PG_DIR/data" -m immediate -w \
      stop) >>"$IDLE_PG_DIR/pg_ctl.log" 2>&1 || warn "could not stop the private PostgreSQL cluster in $IDLE_PG_DIR"
  fi
  # Keep the server log with BENCH_KEEP; the data directory (~40 MB) always goes.
  rm -rf "$IDLE_PG_DIR/data"
  IDLE_PG_DIR=""
  IDLE_PG_OK=0
}

# ---------------------------------------------------------------------------------------------
# Phase 4: sluice (release build), recording buffered; failures here only blank its columns
# ---------------------------------------------------------------------------------------------
start_sluice() {
  local data=$WORK/sluice-data api_port deadline
  log "building sluice (cargo build --release -p sluice)"
  if ! "$REPO/scripts/build-release.sh" >"$WORK/cargo-build.log" 2>&1; then
    tail -30 "$WORK/cargo-build.log" >&2
    warn "release build failed: sluice columns will be n/a"
    return 0
  fi
  mkdir -p "$data"
  # A second connection, `idle`, to the private cluster when it is up (idle-session phase); both
  # are granted to the bench service account's group, so one token reaches either.
  local idle_conn="" idle_grant=""
  if ((IDLE_PG_OK)); then
    idle_conn="
  - name: idle
    type: postgres
    host: 127.0.0.1
    port: $IDLE_PG_PORT
    database: postgres
    username: postgres"
    idle_grant="
  - group: engineering
    connection: idle"
  fi
  cat >"$WORK/sluice.yaml" <<EOF
listeners:
  postgres:
    address: 127.0.0.1:0
    allow_plaintext: true     # loopback clients may skip TLS: the plain rows
  api:
    address: 127.0.0.1:0
recording:
  mode: buffered
  max_rows: 100
connections:
  - name: bench
    type: postgres
    host: $PG_HOST
    port: $PG_PORT
    database: $DB
    username: postgres
  - name: bench-agent
    type: postgres
    host: $PG_HOST
    port: $PG_PORT
    database: $DB
    username: postgres
    via: bench-edge
  - name: bench-hop
    type: postgres
    host: 127.0.0.1
    port: ${HOP_PORT:-1}
    database: $DB
    username: postgres
  - name: bench-gm
    type: postgres
    host: $PG_HOST
    port: $PG_PORT
    database: $DB
    username: postgres
    guardrails:
      unparsable: deny
      rules:
        - { name: no-drop-database, action: deny, match: { statements: [drop_database] } }
        - { name: no-drop-table, action: deny, match: { statements: [drop_table] } }
        - { name: no-truncate, action: deny, match: { statements: [truncate] } }
        - { name: no-alter-system, action: deny, match: { statements: [alter_system] } }
        - { name: no-copy-program, action: deny, match: { statements: [copy_program] } }
        - name: no-server-side-files-or-kills
          action: deny
          match: { functions: [pg_terminate_backend, pg_cancel_backend, lo_export, lo_import, pg_read_file, pg_read_binary_file] }
    masking:
      mask_client: true
      columns: ["*password*", "*secret*", "ssn"]$idle_conn
grants:
  - group: engineering
    connection: bench
  - group: engineering
    connection: bench-agent
  - group: engineering
    connection: bench-hop
  - group: engineering
    connection: bench-gm$idle_grant
EOF
  "$SLUICE_BIN" gateway --config "$WORK/sluice.yaml" --data-dir "$data" >"$WORK/sluice.log" 2>&1 &
  SLUICE_PID=$!
  PIDS+=("$SLUICE_PID")
  deadline=$((SECONDS + 60))
  until [[ -s $data/listeners.json && -s $data/bootstrap-token && -s $data/tls/ca.pem ]]; do
    if ! kill -0 "$SLUICE_PID" 2>/dev/null || ((SECONDS >= deadline)); then
      tail -30 "$WORK/sluice.log" >&2
      warn "gateway did not become ready: sluice columns will be n/a"
      return 0
    fi
    sleep 0.1
  done
  if ! read -r SLUICE_PG_PORT api_port < <(python3 -c '
import json, sys
l = json.load(open(sys.argv[1]))
print(l["postgres"].rsplit(":", 1)[1], l["api"].rsplit(":", 1)[1])' "$data/listeners.json"); then
    cat "$data/listeners.json" >&2
    warn "could not read the ports from listeners.json: sluice columns will be n/a"
    return 0
  fi
  if ! SLUICE_TOKEN=$(SLUICE_ADDR="https://127.0.0.1:$api_port" SLUICE_TOKEN="$(cat "$data/bootstrap-token")" \
    SLUICE_CA="$data/tls/ca.pem" "$SLUICE_BIN" service-accounts create bench-sa --groups engineering \
    2>"$WORK/sa.log") || [[ -z $SLUICE_TOKEN ]]; then
    cat "$WORK/sa.log" >&2
    warn "could not create a service account: sluice columns will be n/a"
    return 0
  fi
  local m
  for m in require disable; do
    if ! PGPASSWORD=$SLUICE_TOKEN psql -X -w \
      "host=127.0.0.1 port=$SLUICE_PG_PORT user=bench dbname=$DB sslmode=$m" -tAc 'select 1' \
      >"$WORK/sluice-check.log" 2>&1; then
      cat "$WORK/sluice-check.log" >&2
      tail -20 "$WORK/sluice.log" >&2
      warn "query through sluice (sslmode=$m) failed: sluice columns will be n/a"
      return 0
    fi
  done
  SLUICE_OK=1
  SLUICE_API_PORT=$api_port
  log "sluice on 127.0.0.1:$SLUICE_PG_PORT (api $api_port), pid $SLUICE_PID"
  if ((IDLE_PG_OK)) && ! PGPASSWORD=$SLUICE_TOKEN psql -X -w \
    "host=127.0.0.1 port=$SLUICE_PG_PORT user=idle dbname=postgres sslmode=require" -tAc 'select 1' \
    >"$WORK/sluice-check-idle.log" 2>&1; then
    cat "$WORK/sluice-check-idle.log" >&2
    IDLE_PG_WHY="a query through sluice's idle connection failed"
    warn "$IDLE_PG_WHY: the idle-session phase falls back to the shared server"
    stop_private_pg
  fi
}

# An agent on loopback for the `agent` column: enrolled with a fresh token, allowed to dial
# only the benchmark server. Failures here only blank that column.
start_agent() {
  ((SLUICE_OK)) || return 0
  local data=$WORK/sluice-data enroll pid
  if ! enroll=$(SLUICE_ADDR="https://127.0.0.1:$SLUICE_API_PORT" SLUICE_TOKEN="$(cat "$data/bootstrap-token")" \
    SLUICE_CA="$data/tls/ca.pem" "$SLUICE_BIN" agents add bench-edge 2>"$WORK/agent-add.log"); then
    cat "$WORK/agent-add.log" >&2
    warn "could not create the agent: agent column will be n/a"
    return 0
  fi
  SLUICE_CA="$data/tls/ca.pem" "$SLUICE_BIN" agent --gateway "https://127.0.0.1:$SLUICE_API_PORT" \
    --token "$enroll" --allow "$PG_HOST:$PG_PORT" --state-dir "$WORK/agent-state" >"$WORK/agent.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  if ! wait_until 30 "the agent's tunnel" grep -q "tunnel up" "$WORK/agent.log" ||
    ! PGPASSWORD=$SLUICE_TOKEN psql -X -w \
      "host=127.0.0.1 port=$SLUICE_PG_PORT user=bench-agent dbname=$DB sslmode=require" -tAc 'select 1' \
      >"$WORK/agent-check.log" 2>&1; then
    tail -20 "$WORK/agent.log" "$WORK/agent-check.log" >&2
    warn "query through the agent failed: agent column will be n/a"
    return 0
  fi
  AGENT_OK=1
  log "agent bench-edge connected, pid $pid"
}

# ---------------------------------------------------------------------------------------------
# Phase 5: gateway RSS with idle sessions (fresh gateway, before any load), through the `idle`
# connection to the private cluster, or the `bench` one to the shared server as a fallback
# ---------------------------------------------------------------------------------------------
IDLE_REPORT="n/a (gateway not running)"
measure_idle_rss() {
  ((SLUICE_OK)) || return 0
  local max used n note dsn server_dsn
  if ((IDLE_PG_OK)); then
    max=$(idle_psql 'show max_connections')
    used=$(idle_psql "select count(*) from pg_stat_activity where backend_type = 'client backend'")
    dsn="host=127.0.0.1 port=$SLUICE_PG_PORT user=idle dbname=postgres sslmode=require"
    server_dsn="host=127.0.0.1 port=$IDLE_PG_PORT user=postgres dbname=postgres sslmode=disable"
    note="a private PostgreSQL $(idle_psql 'show server_version' | awk '{print $1}') cluster started by this script (max_connections=$max): measured, not projected"
  else
    max=$(admin_psql test 'show max_connections')
    used=$(admin_psql test "select count(*) from pg_stat_activity where backend_type = 'client backend'")
    dsn="host=127.0.0.1 port=$SLUICE_PG_PORT user=bench dbname=$DB sslmode=require"
    server_dsn="host=$PG_HOST port=$PG_PORT user=postgres dbname=test sslmode=disable"
    note="fell back to the shared PostgreSQL server: the private cluster was not used ($IDLE_PG_WHY)"
  fi
  n=$IDLE_WANTED
  if ((max - used - 10 < IDLE_WANTED)); then
    n=$((max - used - 10))
    note="$note; measured at $n, not $IDLE_WANTED, idle sessions: every sluice session holds a server connection and PostgreSQL has max_connections=$max with $used in use (free minus 10 used"
    ((IDLE_PG_OK)) && note="$note)" || note="$note; the shared server's config is not changed)"
  fi
  if ((n < 1)); then IDLE_REPORT="n/a (no free server connections; $note)"; return 0; fi
  log "gateway RSS: opening $n idle TLS sessions through sluice (gateway open files limit $(awk '/Max open files/ {print $4}' "/proc/$SLUICE_PID/limits"))"
  IDLE_REPORT=$(PGPASSWORD=$SLUICE_TOKEN BENCH_IDLE_SERVER_DSN=$server_dsn timeout 300 python3 "$BENCH_DIR/pg_conn.py" idle "$SLUICE_PID" "$n" \
    "$dsn" "$note" 2>"$WORK/idle.log") ||
    { cat "$WORK/idle.log" >&2; IDLE_REPORT="failed (see warnings above)"; warn "idle-session measurement failed"; }
  stop_private_pg   # its job is done; keep it off the cores during the pgbench runs
}

# ---------------------------------------------------------------------------------------------
# Phase 6: connection setup time (connect + SELECT 1 + close), sequential
# ---------------------------------------------------------------------------------------------
SETUP_REPORT="n/a"
measure_connect_setup() {
  local args=()
  ((DIRECT_TLS)) && args+=("direct/tls=host=$PG_HOST port=$PG_PORT user=postgres dbname=$DB sslmode=require")
  args+=("direct/plain=host=$PG_HOST port=$PG_PORT user=postgres dbname=$DB sslmode=disable")
  args+=("pgbouncer/tls=host=127.0.0.1 port=$PGB_PORT_TLS user=postgres dbname=$DB sslmode=require")
  args+=("pgbouncer/plain=host=127.0.0.1 port=$PGB_PORT_PLAIN user=postgres dbname=$DB sslmode=disable")
  if ((SLUICE_OK)); then
    args+=("sluice/tls=host=127.0.0.1 port=$SLUICE_PG_PORT user=bench dbname=$DB sslmode=require password=$SLUICE_TOKEN")
    args+=("sluice/plain=host=127.0.0.1 port=$SLUICE_PG_PORT user=bench dbname=$DB sslmode=disable password=$SLUICE_TOKEN")
  fi
  log "connection setup: $CONNECTS sequential connects per target (interleaved)"
  SETUP_REPORT=$(timeout 900 python3 "$BENCH_DIR/pg_conn.py" setup "$CONNECTS" "${args[@]}" 2>"$WORK/setup.log") ||
    { cat "$WORK/setup.log" >&2; SETUP_REPORT="failed (see warnings above)"; warn "connection setup measurement failed"; }
}

# ---------------------------------------------------------------------------------------------
# Phase 7: pgbench matrix
# ---------------------------------------------------------------------------------------------
WORKLOADS=(select-simple select-prepared rows-10k)
MODES=(tls plain)
TARGETS=(direct pgbouncer sluice sluice-gm sluice-agent sluice-hop)

run_pgbench() { # run_pgbench TARGET MODE WORKLOAD — fills TPS/LAT[TARGET,MODE,WORKLOAD]
  local target=$1 mode=$2 wl=$3 key="$1,$2,$3" port user pass="" sslmode wl_args logf
  logf="$WORK/pgbench-$target-$mode-$wl.log"
  sslmode=disable
  [[ $mode == tls ]] && sslmode=require
  case $target in
    direct)
      if [[ $mode == tls ]] && ((!DIRECT_TLS)); then TPS[$key]="n/a"; LAT[$key]="n/a"; return 0; fi
      port=$PG_PORT user=postgres ;;
    pgbouncer)
      user=postgres
      if [[ $mode == tls ]]; then port=$PGB_PORT_TLS; else port=$PGB_PORT_PLAIN; fi ;;
    sluice)
      if ((!SLUICE_OK)); then TPS[$key]="n/a"; LAT[$key]="n/a"; return 0; fi
      port=$SLUICE_PG_PORT user=bench pass=$SLUICE_TOKEN ;;
    sluice-gm)
      if ((!SLUICE_OK)); then TPS[$key]="n/a"; LAT[$key]="n/a"; return 0; fi
      port=$SLUICE_PG_PORT user=bench-gm pass=$SLUICE_TOKEN ;;
    sluice-agent)
      if ((!AGENT_OK)); then TPS[$key]="n/a"; LAT[$key]="n/a"; return 0; fi
      port=$SLUICE_PG_PORT user=bench-agent pass=$SLUICE_TOKEN ;;
    sluice-hop)
      if ((!SLUICE_OK || !HOP_OK)); then TPS[$key]="n/a"; LAT[$key]="n/a"; return 0; fi
      port=$SLUICE_PG_PORT user=bench-hop pass=$SLUICE_TOKEN ;;
  esac
  case $wl in
    select-simple) wl_args=(-S -M simple -c 8 -j 2) ;;
    select-prepared) wl_args=(-S -M prepared -c 8 -j 2) ;;
    rows-10k) wl_args=(-f "$BENCH_DIR/select_10k.sql" -M simple -c 4 -j 2) ;;
  esac
  log "pgbench $wl via $target ($mode), ${RUN_SECONDS}s"
  if PGPASSWORD=$pass PGSSLMODE=$sslmode timeout $((RUN_SECONDS + 60)) \
    pgbench -n -T "$RUN_SECONDS" "${wl_args[@]}" -h 127.0.0.1 -p "$port" -U "$user" "$DB" >"$logf" 2>&1; then
    TPS[$key]=$(awk '/^tps = / && !/including/ {print $3; exit}' "$logf")
    LAT[$key]=$(awk '/^latency average/ {print $4; exit}' "$logf")
  fi
  if [[ -z ${TPS[$key]:-} || -z ${LAT[$key]:-} ]]; then
    warn "pgbench $wl via $target ($mode) failed:"
    tail -5 "$logf" >&2
    TPS[$key]="fail"
    LAT[$key]="fail"
  fi
}

# BENCH_ROUNDS passes over the whole matrix; each cell reports its median TPS (and that run's
# latency), so a minute of noise on a shared VM moves one run, not the table.
run_matrix() {
  local wl mode target round key
  declare -A runs=() lats=()
  for round in $(seq 1 "$ROUNDS"); do
    ((ROUNDS > 1)) && log "pgbench matrix, round $round of $ROUNDS"
    for wl in "${WORKLOADS[@]}"; do
      for mode in "${MODES[@]}"; do
        for target in "${TARGETS[@]}"; do
          key="$target,$mode,$wl"
          unset "TPS[$key]" "LAT[$key]"
          run_pgbench "$target" "$mode" "$wl"
          runs[$key]+="${TPS[$key]} "; lats[$key]+="${LAT[$key]} "
        done
      done
    done
  done
  for key in "${!runs[@]}"; do
    read -r TPS[$key] LAT[$key] < <(median_with "${runs[$key]}" "${lats[$key]}")
  done
}

# ---------------------------------------------------------------------------------------------
# Phase 8: report
# ---------------------------------------------------------------------------------------------
ratio() { # ratio A B — A/B to 2 decimals, or "-" when either is not a number
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b + 0 > 0) printf "%.2f", a / b; else printf "-" }'
}
num() { # num X DECIMALS — numbers rounded, anything else as is
  awk -v x="$1" -v d="$2" 'BEGIN { if (x ~ /^[0-9.]+$/) printf "%.*f", d, x; else printf "%s", x }'
}

print_report() {
  local wl mode d p s g a h fmt
  echo
  echo "=== sluice benchmark: pgbench scale $SCALE, ${RUN_SECONDS}s per run, median of $ROUNDS round(s), $(nproc) cores, $(date -u +%FT%TZ) ==="
  echo "TPS excludes connection establishment; latency = pgbench average, ms. sluice: recording on, buffered."
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (clients, proxies and PostgreSQL share the cores)"
  echo
  fmt='%-16s %-6s %9s %9s %9s %9s %9s %9s %8s %8s %8s %8s %8s %8s %8s %8s %8s\n'
  # shellcheck disable=SC2059
  printf "$fmt" workload client "direct" "pgbouncer" "sluice" "sluice+gm" "agent" "hop" "s/direct" "s/pgb" "gm/s" "gm/pgb" "agent/s" "hop/s" "lat:dir" "lat:slc" "lat:gm"
  printf "$fmt" "" "" "TPS" "TPS" "TPS" "TPS" "TPS" "TPS" "" "" "" "" "" "" "ms" "ms" "ms"
  for wl in "${WORKLOADS[@]}"; do
    for mode in "${MODES[@]}"; do
      d=${TPS[direct,$mode,$wl]} p=${TPS[pgbouncer,$mode,$wl]} s=${TPS[sluice,$mode,$wl]} g=${TPS[sluice-gm,$mode,$wl]}
      a=${TPS[sluice-agent,$mode,$wl]} h=${TPS[sluice-hop,$mode,$wl]}
      [[ $d == n/a && $mode == tls && $DIRECT_TLS == 0 ]] && d="n/a*"
      # shellcheck disable=SC2059
      printf "$fmt" "$wl" "$mode" "$(num "$d" 0)" "$(num "$p" 0)" "$(num "$s" 0)" "$(num "$g" 0)" "$(num "$a" 0)" "$(num "$h" 0)" \
        "$(ratio "$s" "$d")" "$(ratio "$s" "$p")" "$(ratio "$g" "$s")" "$(ratio "$g" "$p")" "$(ratio "$a" "$s")" "$(ratio "$h" "$s")" \
        "$(num "${LAT[direct,$mode,$wl]}" 3)" "$(num "${LAT[sluice,$mode,$wl]}" 3)" \
        "$(num "${LAT[sluice-gm,$mode,$wl]}" 3)"
    done
  done
  echo "sluice+gm: guardrails (quickstart deny rules) + masking (all default detectors, client copy masked)."
  echo "agent: the bench connection through a sluice agent's tunnel (agent/s target >= 0.85)."
  echo "hop: the bench connection through HAProxy in TCP mode (no TLS, no inspection): one more hop's cost here."
  ((DIRECT_TLS)) || echo "* n/a (server ssl off): the shared PostgreSQL server has ssl=off; not changed."
  ((SLUICE_OK)) || echo "sluice: n/a — the gateway could not be built or started (see warnings above)."
  echo
  echo "--- connection setup: connect + SELECT 1 + close, $CONNECTS sequential connections each ---"
  echo "$SETUP_REPORT"
  echo
  print_idle_report
}

print_idle_report() {
  echo "--- gateway memory with idle sessions (TLS, through sluice) ---"
  echo "$IDLE_REPORT"
}

main() {
  case $ONLY in
    "" | idle) ;;
    *) die "BENCH_ONLY=$ONLY: the only value is idle" ;;
  esac
  check_prereqs
  prepare_db
  [[ $ONLY == idle ]] || start_pgbouncers
  [[ $ONLY == idle ]] || start_hop
  start_private_pg
  start_sluice
  measure_idle_rss
  if [[ $ONLY == idle ]]; then
    echo
    echo "=== sluice benchmark (BENCH_ONLY=idle), $(nproc) cores, $(date -u +%FT%TZ) ==="
    ((SLUICE_OK)) || echo "sluice: n/a — the gateway could not be built or started (see warnings above)."
    print_idle_report
    return 0
  fi
  start_agent
  measure_connect_setup
  run_matrix
  print_report
}

main "$@"
