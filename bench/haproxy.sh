# bench/haproxy.sh — HAProxy in TCP mode as the "one more hop" peer; sourced by pg.sh and mysql.sh.
# It relays bytes and inspects nothing: what any extra process between client and server costs
# on this machine.

# haproxy_tcp CONFIG_FILE LISTEN_PORT TARGET_HOST TARGET_PORT — writes the config and starts
# HAProxy in the foreground (-db, so $! is its pid; the system's haproxy unit is not used),
# logging next to the config. The caller waits for readiness its own way.
haproxy_tcp() {
  local cfg=$1
  cat >"$cfg" <<EOF
global
  maxconn 2000
defaults
  mode tcp
  timeout connect 10s
  timeout client 1h
  timeout server 1h
listen hop
  bind 127.0.0.1:$2
  server target $3:$4
EOF
  haproxy -db -f "$cfg" >"${cfg%.cfg}.log" 2>&1 &
}
