//! `sluice connect`: a local port for tools that cannot carry a token. psql connects to it
//! with any user and no password; the session runs as the tunnel's identity, recorded as
//! usual; a tunnel holding a bad token gets the gateway's own refusal.

mod common;

use common::{Gateway, TestDb};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Tunnel {
    child: Child,
    port: u16,
}

impl Tunnel {
    fn start(gw: &Gateway, token: &str) -> Tunnel {
        let mut child = Command::new(common::bin())
            .args(["connect", "pg", "--port", "0", "--gateway"])
            .arg(gw.pg.to_string())
            .env("SLUICE_TOKEN", token)
            .env("SLUICE_CA", gw.data().join("tls/ca.pem"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("sluice connect starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "sluice connect: 127.0.0.1:PORT -> pg via …"
        let port = line
            .split_whitespace()
            .nth(2)
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Tunnel { child, port }
    }

    fn psql(&self, sql: &str) -> std::process::Output {
        Command::new("psql")
            .arg(format!(
                "host=127.0.0.1 port={} user=whoever dbname=ignored",
                self.port
            ))
            .args(["-X", "-w", "-tA", "-c", sql])
            .output()
            .unwrap()
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_local_port_carries_the_identity_without_a_password() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let name = common::unique("tunnel");
    let token = gw.named_service_account(&name, "engineering");
    let tunnel = Tunnel::start(&gw, &token);
    // -w: psql never prompts; the tunnel asks for no password.
    let out = tunnel.psql("select 'tunnelled', current_database()");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("tunnelled|{}", db.name)
    );
    let identity = gw.recorded_identity("pg");
    assert_eq!(identity["name"], name.as_str());

    // A tunnel with a bad token gets the gateway's refusal, unchanged.
    let bad = Tunnel::start(&gw, "slc_not-a-token");
    let out = bad.psql("select 1");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("password authentication failed"), "{err}");
    // The good tunnel is unharmed.
    assert!(tunnel.psql("select 1").status.success());

    // psycopg through the tunnel, and a cancel of a waiting statement (forwarded by the tunnel).
    let r = gw.python(
        "cancel",
        &[
            (
                "DSN",
                format!(
                    "host=127.0.0.1 port={} user=whoever dbname=ignored",
                    tunnel.port
                ),
            ),
            ("DIRECT_DSN", db.direct_dsn()),
            ("MARKER", common::unique("tunnel_cancel")),
        ],
    );
    assert_eq!(
        r["sqlstate"], "57014",
        "the waiting statement was canceled: {r}"
    );
    assert_eq!(r["after"], 42);
}
