//! MySQL helpers: a private database on the machine's MariaDB, a gateway config with a MySQL
//! listener, and the real clients (`mariadb`, PyMySQL, mysql-connector-python).

use super::{unique, Gateway};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// Runs `sql` on the machine's MariaDB as root, directly.
pub fn mariadb_direct(db: &str, sql: &str) -> Output {
    // A hang fails after two minutes (exit status 124) rather than stalling the suite.
    Command::new("timeout")
        .args([
            "120",
            "mariadb",
            "-h",
            "127.0.0.1",
            "-P",
            "3306",
            "-u",
            "root",
            "--batch",
            "-D",
            db,
            "-e",
            sql,
        ])
        .output()
        .expect("mariadb runs")
}

/// A database of its own on the machine's MariaDB, dropped at the end.
pub struct MyDb {
    pub name: String,
}

impl MyDb {
    /// Table `typed`: a row with every common column type (a card number in `card`) and a
    /// row of NULLs.
    pub fn typed_table(&self) {
        self.exec(
            "CREATE TABLE typed (id INT PRIMARY KEY, n INT, big BIGINT UNSIGNED, amount DECIMAL(10,2), \
               ratio DOUBLE, d DATE, ts DATETIME(6), card VARCHAR(40), note TEXT);
             INSERT INTO typed VALUES
               (1, -5, 18446744073709551615, 12.34, 0.5, '2024-01-02', '2024-11-24 13:05:09.123456',
                '4111 1111 1111 1111', 'hello'),
               (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'nulls');",
        );
    }

    pub fn new() -> MyDb {
        let name = unique("sluice_my");
        let out = mariadb_direct("mysql", &format!("CREATE DATABASE {name}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        MyDb { name }
    }

    /// Runs `sql` in this database, directly; panics on failure.
    pub fn exec(&self, sql: &str) -> String {
        let out = mariadb_direct(&self.name, sql);
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for MyDb {
    fn drop(&mut self) {
        let _ = mariadb_direct("mysql", &format!("DROP DATABASE IF EXISTS {}", self.name));
    }
}

/// A gateway config with a MySQL listener (TLS required unless `plaintext`) and one
/// connection `my` to `db`, granted to `engineering`, with `policy` (connection-level YAML).
pub fn config(db: &MyDb, plaintext: bool, policy: &str) -> String {
    let indented: String = policy.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        r#"listeners:
  postgres:
    address: 127.0.0.1:0
  mysql:
    address: 127.0.0.1:0
    allow_plaintext: {plaintext}
  api:
    address: 127.0.0.1:0
connections:
  - name: my
    type: mysql
    host: 127.0.0.1
    port: 3306
    database: {db}
    username: root
{indented}grants:
  - group: engineering
    connection: my
"#,
        db = db.name
    )
}

impl Gateway {
    /// The gateway's CA certificate (clients verify the listener with it).
    pub fn ca(&self) -> String {
        self.data().join("tls/ca.pem").display().to_string()
    }

    fn mariadb_args(&self, user: &str, token: &str, tls: bool) -> Vec<String> {
        let addr = self.mysql.expect("a mysql listener");
        let mut args: Vec<String> = [
            "-h",
            "127.0.0.1",
            "-P",
            &addr.port().to_string(),
            "-u",
            user,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!("-p{token}"));
        args.extend(["--batch".into(), "--connect-timeout=10".into()]);
        args.push(if tls { "--ssl" } else { "--skip-ssl" }.into());
        args
    }

    fn mariadb_cmd(&self, user: &str, token: &str, tls: bool) -> Command {
        let mut cmd = Command::new("mariadb");
        cmd.args(self.mariadb_args(user, token, tls));
        cmd
    }

    /// Runs `sql` with the `mariadb` client through the gateway as connection `user`.
    pub fn mariadb_as(&self, user: &str, token: &str, tls: bool, sql: &str) -> Output {
        // The client has no read timeout: a hang must fail the test, not stall the suite.
        let mut cmd = Command::new("mariadb");
        cmd.args(self.mariadb_args(user, token, tls))
            .args(["-e", sql]);
        super::output_within_two_minutes(&cmd)
    }

    /// [`Gateway::mariadb_as`] on connection `my` over TLS.
    pub fn mariadb(&self, token: &str, sql: &str) -> Output {
        self.mariadb_as("my", token, true, sql)
    }

    /// `mariadb` running `sql` in the background.
    pub fn mariadb_spawn(&self, token: &str, sql: &str) -> Child {
        self.mariadb_cmd("my", token, true)
            .args(["-e", sql])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mariadb starts")
    }

    /// The environment of a tests/mysql_client.py scenario against connection `my`.
    pub fn my_env(&self, token: &str, db: &MyDb, tls: bool) -> Vec<(&'static str, String)> {
        let mut env = vec![
            (
                "MY_PORT",
                self.mysql.expect("a mysql listener").port().to_string(),
            ),
            ("MY_USER", "my".to_string()),
            ("MY_PASSWORD", token.to_string()),
            ("MY_DB", db.name.clone()),
        ];
        if tls {
            env.push(("MY_CA", self.ca()));
        }
        env
    }
}

/// A command running a tests/mysql_client.py scenario.
pub fn python(scenario: &str, envs: &[(&'static str, String)]) -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/mysql_client.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg(scenario);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

/// Runs a scenario to its end and returns its JSON line.
pub fn run_python(scenario: &str, envs: &[(&'static str, String)]) -> Value {
    let out = python(scenario, envs).output().expect("python3 runs");
    assert!(
        out.status.success(),
        "mysql_client.py {scenario} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(stdout.lines().last().unwrap_or("null")).unwrap()
}
