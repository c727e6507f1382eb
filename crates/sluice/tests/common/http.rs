//! HTTP connections in tests: a real service (`tests/http_service.py`) behind a gateway with
//! `http` connections by path prefix and host name, and curl against the gateway.
#![allow(dead_code)]

use super::{unique, wait_for, Gateway};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The credential the gateway holds for the service.
pub const SERVICE_KEY: &str = "svc-key-Qm7Lp2Vx9Rt4";

/// The service, stopped on drop.
pub struct Service {
    child: Child,
    pub port: u16,
    tls: bool,
}

impl Service {
    pub fn start() -> Service {
        Service::start_with(&[])
    }

    /// The service with extra arguments (`--tls CERT KEY`).
    pub fn start_with(args: &[&str]) -> Service {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/http_service.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        Service {
            child,
            port: v["port"].as_u64().unwrap() as u16,
            tls: args.first() == Some(&"--tls"),
        }
    }

    /// Every request the service received ("METHOD /path").
    pub fn calls(&self) -> Vec<String> {
        let scheme = if self.tls { "https" } else { "http" };
        let out = Command::new("curl")
            // The test's own look at its own service: no verification needed.
            .args(["-sk", &format!("{scheme}://127.0.0.1:{}/calls", self.port)])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Setup {
    pub gw: Gateway,
    pub svc: Service,
    pub alice: String,
    pub bob: String,
    pub mallory: String,
}

pub fn config(svc_port: u16, key_file: &Path, extra: &str) -> String {
    format!(
        r#"listeners:
  postgres:
    address: 127.0.0.1:0
  api:
    address: 127.0.0.1:0
connections:
  - name: app
    type: http
    host: 127.0.0.1
    port: {svc_port}
    password_file: {key}
    http:
      path_prefix: /app
      auth: header
      header: X-Api-Key
      record_headers: [x-request-id]
    guardrails:
      approvers: [security]
      rules:
        - name: no-admin-deletes
          action: deny
          reason: deleting through the admin API is not allowed
          match: {{ statements: [delete], paths: ["/admin/**"] }}
        - name: refunds-need-approval
          action: review
          reason: refunds need a second pair of eyes
          match: {{ statements: [post], paths: ["/payments/refund"] }}
    masking: {{ columns: ["*password*"] }}
  - name: internal
    type: http
    host: 127.0.0.1
    port: {svc_port}
    password_file: {key}
    http: {{ hostname: internal.sluice.test, auth: bearer }}
  - name: gone
    type: http
    host: 127.0.0.1
    port: 9
    http: {{ path_prefix: /gone }}
grants:
  - {{ group: engineering, connection: app }}
  - {{ group: engineering, connection: internal }}
  - {{ group: engineering, connection: gone }}
{extra}"#,
        key = key_file.display(),
    )
}

pub fn setup_with(extra: &str) -> Setup {
    let svc = Service::start();
    let dir = std::env::temp_dir().join(unique("sluice-http"));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("service-key");
    std::fs::write(&key, format!("{SERVICE_KEY}\n")).unwrap();
    let gw = Gateway::start_in(dir, &config(svc.port, &key, extra));
    Setup {
        alice: gw.named_service_account(&unique("alice"), "engineering"),
        bob: gw.named_service_account(&unique("bob"), "security"),
        mallory: gw.named_service_account(&unique("mallory"), "contractors"),
        gw,
        svc,
    }
}

pub fn setup() -> Setup {
    setup_with("")
}

pub fn ca(gw: &Gateway) -> PathBuf {
    gw.data().join("tls/ca.pem")
}

/// curl against the gateway's HTTPS listener: `-s`, the gateway CA, status and HTTP version
/// appended as a last line `\n<status> <version>`.
pub fn curl(gw: &Gateway, args: &[&str]) -> (u16, String, String) {
    let out = Command::new("curl")
        // A hang fails with curl's message instead of stalling the suite.
        .args(["-sS", "--max-time", "60", "--cacert"])
        .arg(ca(gw))
        .args(["-w", "\n%{http_code} %{http_version}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let text = if text.ends_with(" 0") {
        format!("{}{}", String::from_utf8_lossy(&out.stderr), text)
    } else {
        text
    };
    let (body, last) = text.rsplit_once('\n').unwrap();
    let (status, version) = last.split_once(' ').unwrap();
    (
        status.parse().unwrap(),
        version.to_string(),
        body.to_string(),
    )
}

pub fn url(gw: &Gateway, path: &str) -> String {
    format!("https://localhost:{}{path}", gw.api.port())
}

pub fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

/// The one session on `connection` once it ended, and its events.
pub fn events_of(gw: &Gateway, connection: &str) -> Vec<Value> {
    let id = gw.wait_ended_session(connection);
    gw.events(&id)
}

/// The events of the ended session that recorded request `line`.
pub fn events_of_any(gw: &Gateway, line: &str) -> Vec<Value> {
    wait_for(
        "the session with the request",
        Duration::from_secs(10),
        || {
            gw.sessions()
                .into_iter()
                .filter(|x| x["end_reason"].is_string())
                .map(|x| gw.events(x["id"].as_str().unwrap()))
                .find(|ev| ev.iter().any(|e| e["kind"] == "query" && e["text"] == line))
        },
    )
}
