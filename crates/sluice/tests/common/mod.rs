//! Test harness: a real gateway process on free ports, a private database on the machine's
//! PostgreSQL, and helpers to drive real clients (psql, psycopg, the sluice CLI).
#![allow(dead_code)]

pub mod console;
pub mod http;
pub mod kube;
pub mod mysql;
pub mod oidc;
pub mod private_net;
pub mod raw;
pub mod ssh;
pub mod webhook;

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique name for this test process and call.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A TCP port nothing listens on right now (bound by the OS, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `cmd` under `timeout 120`: a client that hangs fails the test with what it printed
/// (exit status 124) instead of stalling the suite.
pub fn output_within_two_minutes(cmd: &Command) -> Output {
    let out = Command::new("timeout")
        .arg("120")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .output()
        .expect("timeout runs");
    assert_ne!(
        out.status.code(),
        Some(124),
        "{:?} hung; it printed: {} {}",
        cmd.get_program(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Waits until `f` returns `Some`, up to `timeout`; panics with `what` otherwise. Each call of
/// `f` is a real round trip (a CLI call, a query), and that round trip is the wait.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
    }
}

/// `psql` straight to the machine's PostgreSQL as superuser: quiet, unaligned tuples only,
/// stopping at the first error.
fn psql_direct_command(db: &str) -> Command {
    let mut c = Command::new("psql");
    c.args([
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-tA",
        "-h",
        "127.0.0.1",
        "-U",
        "postgres",
        "-d",
        db,
    ]);
    c
}

/// Runs `psql` directly against the machine's PostgreSQL as superuser.
pub fn psql_direct(db: &str, sql: &str) -> Output {
    psql_direct_command(db)
        .args(["-c", sql])
        .output()
        .expect("psql runs")
}

/// A database of its own on the machine's PostgreSQL, dropped at the end.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub fn new() -> TestDb {
        let name = unique("sluice_t");
        let out = psql_direct("postgres", &format!("create database {name}"));
        assert!(
            out.status.success(),
            "create database: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        TestDb { name }
    }

    pub fn direct_dsn(&self) -> String {
        format!(
            "host=127.0.0.1 port=5432 user=postgres dbname={}",
            self.name
        )
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = psql_direct(
            "postgres",
            &format!("drop database if exists {} with (force)", self.name),
        );
    }
}

/// The config used by most tests: one connection `pg` to `db`, granted to `engineering`.
pub fn config(db: &TestDb, extra: &str) -> String {
    format!(
        r#"listeners:
  postgres:
    address: 127.0.0.1:0
    allow_plaintext: true
  api:
    address: 127.0.0.1:0
connections:
  - name: pg
    type: postgres
    host: 127.0.0.1
    port: 5432
    database: {db}
    username: postgres
grants:
  - group: engineering
    connection: pg
{extra}"#,
        db = db.name
    )
}

/// [`config`] with `policy` (YAML at connection level: `guardrails:`, `masking:`) on `pg`.
pub fn config_with_policy(db: &TestDb, policy: &str, extra: &str) -> String {
    let indented: String = policy.lines().map(|l| format!("    {l}\n")).collect();
    config(db, extra).replace(
        "    username: postgres\n",
        &format!("    username: postgres\n{indented}"),
    )
}

/// The deny rules the quickstart ships, for tests (its review rule is tested in reviews.rs).
pub const QUICKSTART_GUARDRAILS: &str = "guardrails:
  unparsable: deny
  rules:
    - name: no-drop-database
      action: deny
      reason: dropping a database is not allowed through the gateway
      match: { statements: [drop_database] }
    - name: no-drop-table
      action: deny
      reason: dropping tables is not allowed through the gateway
      match: { statements: [drop_table] }
    - name: no-truncate
      action: deny
      reason: TRUNCATE is not allowed through the gateway
      match: { statements: [truncate] }
    - name: no-alter-system
      action: deny
      reason: ALTER SYSTEM changes the server for everyone
      match: { statements: [alter_system] }
    - name: no-copy-program
      action: deny
      reason: COPY ... PROGRAM runs commands on the database host
      match: { statements: [copy_program] }
    - name: no-backend-kill
      action: deny
      match: { functions: [pg_terminate_backend, pg_cancel_backend, lo_export, lo_import, pg_read_file, pg_read_binary_file] }
";

/// A running gateway process.
pub struct Gateway {
    child: Child,
    pub dir: PathBuf,
    pub pg: SocketAddr,
    /// The MySQL listener, when the config has one.
    pub mysql: Option<SocketAddr>,
    /// The SSH listener, when the config has one.
    pub ssh: Option<SocketAddr>,
    pub api: SocketAddr,
    pub admin_token: String,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sluice")
}

impl Gateway {
    /// Starts a gateway with `config_yaml` in a fresh data dir and waits until it listens.
    pub fn start(config_yaml: &str) -> Gateway {
        let dir = std::env::temp_dir().join(unique("sluice-gw"));
        std::fs::create_dir_all(&dir).unwrap();
        Self::start_in(dir, config_yaml)
    }

    /// Starts a gateway on an existing data dir.
    pub fn start_in(dir: PathBuf, config_yaml: &str) -> Gateway {
        let cfg = dir.join("config.yaml");
        std::fs::write(&cfg, config_yaml).unwrap();
        let _ = std::fs::remove_file(dir.join("data/listeners.json"));
        let log = std::fs::File::create(dir.join("gateway.log")).unwrap();
        let mut child = Command::new(bin())
            .args(["gateway", "--config"])
            .arg(&cfg)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("SLUICE_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("gateway starts");
        let listeners: Value = wait_for("gateway listeners.json", Duration::from_secs(30), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "gateway exited early ({status}): {}",
                    std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default()
                );
            }
            std::fs::read_to_string(dir.join("data/listeners.json"))
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok())
        });
        let admin_token = std::fs::read_to_string(dir.join("data/bootstrap-token"))
            .unwrap()
            .trim()
            .to_string();
        Gateway {
            pg: listeners["postgres"].as_str().unwrap().parse().unwrap(),
            mysql: listeners["mysql"].as_str().map(|a| a.parse().unwrap()),
            ssh: listeners["ssh"].as_str().map(|a| a.parse().unwrap()),
            api: listeners["api"].as_str().unwrap().parse().unwrap(),
            child,
            dir,
            admin_token,
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs the CLI against this gateway as the bootstrap admin.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_as(&self.admin_token, args)
    }

    /// Waits for the first pending review that `token` (an approver) may decide.
    pub fn pending_review(&self, token: &str) -> Value {
        wait_for("a pending review", Duration::from_secs(20), || {
            let out = self.cli_as(token, &["reviews", "list", "--pending", "--json"]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
            list.into_iter().next()
        })
    }

    /// Runs the CLI with `token`.
    pub fn cli_as(&self, token: &str, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .env("SLUICE_ADDR", format!("https://{}", self.api))
            .env("SLUICE_TOKEN", token)
            .env("SLUICE_CA", self.data().join("tls/ca.pem"))
            .output()
            .expect("cli runs")
    }

    /// Runs the CLI and returns stdout, panicking on failure.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "sluice {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Grants `group` access to `connection` (`sluice grants add`).
    pub fn grant(&self, group: &str, connection: &str) {
        self.cli_ok(&[
            "grants",
            "add",
            "--group",
            group,
            "--connection",
            connection,
        ]);
    }

    /// Creates a service account in `groups`, returning its token.
    pub fn service_account(&self, groups: &str) -> String {
        self.named_service_account(&unique("sa"), groups)
    }

    /// Creates service account `name` in `groups`, returning its token.
    pub fn named_service_account(&self, name: &str, groups: &str) -> String {
        self.cli_ok(&["service-accounts", "create", name, "--groups", groups])
            .trim()
            .to_string()
    }

    /// libpq connection string through the gateway.
    pub fn dsn(&self, connection: &str, token: &str, sslmode: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={connection} password={token} dbname=ignored sslmode={sslmode}",
            self.pg.port()
        )
    }

    /// Runs psql through the gateway.
    pub fn psql(&self, token: &str, sql: &str) -> Output {
        self.psql_as("pg", token, sql)
    }

    /// Runs psql through the gateway on `connection`.
    pub fn psql_as(&self, connection: &str, token: &str, sql: &str) -> Output {
        Command::new("psql")
            .arg(self.dsn(connection, token, "require"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA", "-c", sql])
            .output()
            .expect("psql runs")
    }

    /// An interactive psql through the gateway on connection `pg`: statements on stdin,
    /// stdout and stderr piped.
    pub fn psql_session(&self, token: &str) -> Child {
        self.psql_session_as("pg", token)
    }

    /// [`Gateway::psql_session`] on `connection`.
    pub fn psql_session_as(&self, connection: &str, token: &str) -> Child {
        Command::new("psql")
            .args(["-X", "-tA", &self.dsn(connection, token, "require")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("psql starts")
    }

    /// Runs a scenario of tests/pg_client.py.
    pub fn python(&self, scenario: &str, envs: &[(&str, String)]) -> Value {
        let out = python_cmd(scenario, envs).output().expect("python3 runs");
        assert!(
            out.status.success(),
            "pg_client.py {scenario} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        serde_json::from_str(stdout.lines().last().unwrap_or("null")).unwrap()
    }

    /// All sessions, newest first.
    pub fn sessions(&self) -> Vec<Value> {
        serde_json::from_str(&self.cli_ok(&["sessions", "list", "--json"])).unwrap()
    }

    /// Waits until exactly one session of `identity_token`'s … is ended; returns its id.
    pub fn wait_ended_session(&self, connection: &str) -> String {
        wait_for("a recorded, ended session", Duration::from_secs(10), || {
            self.sessions()
                .into_iter()
                .find(|s| s["connection"] == connection && s["end_reason"].is_string())
                .map(|s| s["id"].as_str().unwrap().to_string())
        })
    }

    /// The recorded events of a session (their `event` objects).
    pub fn events(&self, session: &str) -> Vec<Value> {
        self.cli_ok(&["sessions", "export", session, "--format", "jsonl"])
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].clone())
            .collect()
    }

    /// The identity recorded in the start event of the one ended session on `connection`.
    pub fn recorded_identity(&self, connection: &str) -> Value {
        let session = self.wait_ended_session(connection);
        let start = self
            .events(&session)
            .into_iter()
            .find(|e| e["kind"] == "start")
            .expect("a recording starts with its start event");
        start["identity"].clone()
    }

    /// Audit events (newest 1000).
    pub fn audit(&self) -> Vec<Value> {
        self.cli_ok(&["audit", "--json", "--limit", "1000"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits for an audit event matching `pred`.
    pub fn wait_audit(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        wait_for(what, Duration::from_secs(10), || {
            self.audit().into_iter().find(|e| pred(e))
        })
    }

    /// The audit log as stored, oldest first (read from the gateway's database, after a CLI
    /// call has committed everything recorded so far).
    pub fn audit_log(&self) -> Vec<Value> {
        self.cli_ok(&["sessions", "list", "--json"]);
        let db = sluice_store::schema::open_existing(&self.data().join("sluice.db")).unwrap();
        sluice_store::audit_log::after(&db, 0, 1_000_000)
            .unwrap()
            .into_iter()
            .map(|e| serde_json::from_str(&e.json).unwrap())
            .collect()
    }

    /// Waits until `n` sessions have ended; all sessions, newest first.
    pub fn wait_ended_sessions(&self, n: usize) -> Vec<Value> {
        wait_for(
            &format!("{n} ended sessions"),
            Duration::from_secs(10),
            || {
                let all = self.sessions();
                (all.iter().filter(|s| s["end_reason"].is_string()).count() == n).then_some(all)
            },
        )
    }

    /// A quiet psql (`-q -tA`) on connection `pg` running `script` from its stdin, which is
    /// closed after it; stdout and stderr piped.
    pub fn psql_script(&self, token: &str, script: &str) -> Child {
        let mut child = Command::new("psql")
            .args(["-X", "-q", "-tA", &self.dsn("pg", token, "require")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("psql starts");
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, script.as_bytes()).unwrap();
        child
    }

    /// The JSON-lines audit file once the file sink has caught up with the audit log.
    pub fn audit_file(&self) -> String {
        self.cli_ok(&["sessions", "list", "--json"]); // commits everything recorded so far
        let db = sluice_store::schema::open_existing(&self.data().join("sluice.db")).unwrap();
        let (logged, _) = sluice_store::audit_log::head(&db).unwrap();
        wait_for("the audit file catches up", Duration::from_secs(10), || {
            let f = std::fs::read_to_string(self.data().join("audit.jsonl")).ok()?;
            (f.lines().count() as u64 >= logged).then_some(f)
        })
    }

    /// The gateway's resident-set figure `field` (VmRSS, VmHWM) in KiB.
    pub fn mem_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    /// Stops the gateway with SIGTERM and waits for it.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().unwrap()
    }

    /// Stops (SIGTERM, or SIGKILL when `crash`) and starts again on the same data dir.
    pub fn restart(mut self, config_yaml: &str, crash: bool) -> Gateway {
        if crash {
            self.crash();
        } else {
            assert!(
                self.stop().success(),
                "the gateway exits cleanly on SIGTERM"
            );
        }
        let dir = std::mem::take(&mut self.dir);
        drop(self);
        Gateway::start_in(dir, config_yaml)
    }

    /// Kills the gateway with SIGKILL (a crash).
    pub fn crash(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gateway.log")).unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() && !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/pg_client.py")
}

/// A command running a pg_client.py scenario.
pub fn python_cmd(scenario: &str, envs: &[(&str, String)]) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(script()).arg(scenario);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

/// A scenario running in the background, spoken to line by line.
pub struct Interactive {
    pub child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Interactive {
    pub fn spawn(scenario: &str, envs: &[(&str, String)]) -> Interactive {
        let mut child = python_cmd(scenario, envs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Interactive { child, lines }
    }

    pub fn next(&mut self) -> Value {
        let line = self
            .lines
            .next()
            .expect("a line from the scenario")
            .unwrap();
        serde_json::from_str(&line).unwrap()
    }

    pub fn send(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file under `dir` that contains `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    hits.push(p.display().to_string());
                }
            }
        }
    }
    hits
}

/// A direct session holding an advisory lock until dropped: statements waiting for the lock
/// run until cancelled, with no timer.
pub struct LockHolder {
    child: Child,
    /// The advisory lock's key.
    pub key: i64,
}

impl LockHolder {
    /// Takes a fresh advisory lock in `db`.
    pub fn new(db: &TestDb) -> LockHolder {
        let key = i64::from(std::process::id()) * 1000 + i64::from(rand_suffix());
        let mut child = psql_direct_command(&db.name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("psql starts");
        let stdin = child.stdin.as_mut().unwrap();
        writeln!(stdin, "select pg_advisory_lock({key}); select 'locked';").unwrap();
        // The lock is held once psql answers.
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        while line.trim() != "locked" {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "lock holder ended");
        }
        LockHolder { child, key }
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> u16 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u16)
}
