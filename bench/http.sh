#!/usr/bin/env bash
# bench/http.sh — an internal HTTP service direct vs through nginx (a TLS reverse proxy, the
# peer) vs through sluice, in one run, on this machine.
#
# The service is nginx serving a 1.3 KiB JSON document and a large file from disk (so the
# service is never the bottleneck). The peer is a second nginx terminating TLS and proxying
# with keep-alive to the service. sluice is this repo's gateway (release build, recording on:
# every request recorded with its headers and capped bodies), with an `http` connection by
# path prefix, once plain and once masking JSON answers field by field.
#   rps        wrk (BENCH_THREADS 2, BENCH_CONNS 32, BENCH_SECS 10) on the JSON document:
#              requests/s and latency p50/p99
#   download   curl of a BENCH_MIB (256) MiB file: MiB/s
# Ratios are against the peer (nginx). Issue #12 sets no target; this shows the cost.
#
# Run:  bench/http.sh          Knobs: BENCH_SECS, BENCH_CONNS, BENCH_THREADS, BENCH_MIB, BENCH_KEEP=1
# Needs: wrk, nginx, curl (installed with apt when missing), cargo, python3.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${BENCH_SECS:-10}
CONNS=${BENCH_CONNS:-32}
THREADS=${BENCH_THREADS:-2}
MIB=${BENCH_MIB:-256}
WORK=$(mktemp -d /tmp/sluice-http-bench.XXXXXX)
PIDS=()

log() { printf '[http.sh %s] %s\n' "$(date +%T)" "$*" >&2; }

cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  [[ -f $WORK/nginx.pid ]] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

missing=()
command -v wrk >/dev/null || missing+=(wrk)
[[ -x /usr/sbin/nginx ]] || missing+=(nginx)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

log "building sluice (release)"
"$REPO/scripts/build-release.sh" -q
SLUICE=$REPO/target/release/sluice

mkdir -p "$WORK/www" "$WORK/gw"
python3 - "$WORK/www/customers.json" <<'EOF'
import json, sys
rows = [{"id": i, "name": f"customer {i}", "email": f"c{i}@example.com",
         "card": "4111 1111 1111 1111", "password": "hunter2", "visits": i * 3} for i in range(10)]
json.dump({"customers": rows}, open(sys.argv[1], "w"))
EOF
head -c $((MIB * 1024 * 1024)) /dev/zero | tr '\0' 'x' > "$WORK/www/big.txt"
# nginx's workers run unprivileged: they must be able to read the files.
chmod 755 "$WORK" "$WORK/www"
chmod 644 "$WORK/www/"*

SVC=$(free_port); PEER=$(free_port); GW_API=$(free_port)

# sluice first: its generated certificate serves the peer too.
cat > "$WORK/gw/config.yaml" <<EOC
listeners:
  postgres: { address: 127.0.0.1:0 }
  api: { address: 127.0.0.1:$GW_API }
recording: { mode: buffered }
connections:
  - { name: app, type: http, host: 127.0.0.1, port: $SVC, http: { path_prefix: /app } }
  - name: masked
    type: http
    host: 127.0.0.1
    port: $SVC
    http: { path_prefix: /masked }
    masking: { columns: ["*password*"] }
grants:
  - { group: bench, connection: app }
  - { group: bench, connection: masked }
EOC
SLUICE_LOG=warn "$SLUICE" gateway --config "$WORK/gw/config.yaml" --data-dir "$WORK/gw/data" \
  >"$WORK/gw.log" 2>&1 &
PIDS+=($!)
wait_port "$GW_API" || { cat "$WORK/gw.log"; exit 1; }
export SLUICE_ADDR=https://127.0.0.1:$GW_API SLUICE_CA=$WORK/gw/data/tls/ca.pem
export SLUICE_TOKEN=$(cat "$WORK/gw/data/bootstrap-token")
TOKEN=$("$SLUICE" service-accounts create bench --groups bench | tail -1)

cat > "$WORK/nginx.conf" <<EOC
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 100000;
  server { listen 127.0.0.1:$SVC; root $WORK/www; default_type application/json; }
  upstream svc { server 127.0.0.1:$SVC; keepalive 64; }
  server {
    listen 127.0.0.1:$PEER ssl http2;
    ssl_certificate $WORK/gw/data/tls/server.pem;
    ssl_certificate_key $WORK/gw/data/tls/server-key.pem;
    location / { proxy_pass http://svc; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOC
/usr/sbin/nginx -c "$WORK/nginx.conf" -p "$WORK"
wait_port "$SVC"; wait_port "$PEER"

AUTH="Authorization: Bearer $TOKEN"
# One wrk run: prints "rps p50_ms p99_ms".
run_wrk() {
  local url=$1; shift
  wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency "$@" "$url" 2>/dev/null | python3 -c '
import re, sys
t = sys.stdin.read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
def ms(p):
    m = re.search(r"\s%s%%\s+([\d.]+)(us|ms|s)" % p, t)
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
print(f"{rps:.0f} {ms(50):.2f} {ms(99):.2f}")'
}
# One download: MiB/s.
download() {
  curl -s -o /dev/null --cacert "$SLUICE_CA" -w '%{speed_download}' "$@" |
    python3 -c "import sys; print(f'{float(sys.stdin.read()) / 1048576:.0f}')"
}

log "wrk: direct, nginx, sluice, sluice with masking (${SECS}s each)"
read -r d_rps d_p50 d_p99 < <(run_wrk "http://127.0.0.1:$SVC/customers.json")
read -r n_rps n_p50 n_p99 < <(run_wrk "https://127.0.0.1:$PEER/customers.json")
read -r s_rps s_p50 s_p99 < <(run_wrk "https://127.0.0.1:$GW_API/app/customers.json" -H "$AUTH")
read -r m_rps m_p50 m_p99 < <(run_wrk "https://127.0.0.1:$GW_API/masked/customers.json" -H "$AUTH")
masked=$(curl -s --cacert "$SLUICE_CA" -H "$AUTH" "https://127.0.0.1:$GW_API/masked/customers.json" | head -c 200)
log "a masked answer begins: $masked"
curl -sf -o /dev/null "http://127.0.0.1:$SVC/customers.json" || { log "the service does not answer 200"; exit 1; }

log "downloads of $MIB MiB"
d_dl=$(download "http://127.0.0.1:$SVC/big.txt")
n_dl=$(download "https://127.0.0.1:$PEER/big.txt")
s_dl=$(download -H "$AUTH" "https://127.0.0.1:$GW_API/app/big.txt")

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
printf '\n%-28s %10s %10s %10s %10s\n' "" direct nginx sluice "sluice+mask"
printf '%-28s %10s %10s %10s %10s\n' "requests/s (JSON, ${CONNS} conns)" "$d_rps" "$n_rps" "$s_rps" "$m_rps"
printf '%-28s %10s %10s %10s %10s\n' "latency p50 (ms)" "$d_p50" "$n_p50" "$s_p50" "$m_p50"
printf '%-28s %10s %10s %10s %10s\n' "latency p99 (ms)" "$d_p99" "$n_p99" "$s_p99" "$m_p99"
printf '%-28s %10s %10s %10s %10s\n' "download (MiB/s)" "$d_dl" "$n_dl" "$s_dl" "-"
printf '\nsluice / nginx: requests/s %s (with masking %s), download %s\n' \
  "$(ratio "$s_rps" "$n_rps")" "$(ratio "$m_rps" "$n_rps")" "$(ratio "$s_dl" "$n_dl")"
