//! Roles on the REST API: every endpoint the OpenAPI document lists, called by an admin, an
//! auditor, an approver, a plain user and nobody, answers as the document says.

mod common;

use common::Gateway;
use serde_json::Value;
use std::process::Command;

/// `METHOD path` with `token` (none: no credential) and an empty JSON body; the status.
fn call(gw: &Gateway, method: &str, path: &str, token: Option<&str>) -> u16 {
    if path.contains("/live/") {
        return stream_status(gw, path, token);
    }
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "30",
    ])
    .args(["-X", &method.to_ascii_uppercase()])
    .arg("--cacert")
    .arg(gw.data().join("tls/ca.pem"));
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if method != "get" {
        cmd.args(["-H", "Content-Type: application/json", "-d", "{}"]);
    }
    let out = cmd
        .arg(format!("https://{}{path}", gw.api))
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

/// The status of a stream of server-sent events: the first line of the answer, read while
/// the stream stays open.
fn stream_status(gw: &Gateway, path: &str, token: Option<&str>) -> u16 {
    use std::io::{BufRead, BufReader};
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "-N",
        "-D",
        "-",
        "-o",
        "/dev/null",
        "--max-time",
        "60",
        "--cacert",
    ])
    .arg(gw.data().join("tls/ca.pem"));
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let mut child = cmd
        .arg(format!("https://{}{path}", gw.api))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn every_endpoint_answers_each_role_as_documented() {
    let gw = Gateway::start(
        "listeners:\n  postgres:\n    address: 127.0.0.1:0\n  api:\n    address: 127.0.0.1:0\n",
    );
    let doc: Value = {
        let out = Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(gw.data().join("tls/ca.pem"))
            .arg(format!("https://{}/api/v1/openapi.json", gw.api))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).expect("the OpenAPI document")
    };
    assert_eq!(doc["openapi"], "3.1.0");
    let tokens = [
        ("admin", gw.named_service_account("role-admin", "admin")),
        (
            "auditor",
            gw.named_service_account("role-auditor", "auditor"),
        ),
        (
            "approver",
            gw.named_service_account("role-approver", "approver"),
        ),
        ("user", gw.named_service_account("role-user", "engineering")),
    ];
    let mut operations: Vec<(String, String, Vec<String>)> = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for (method, op) in methods.as_object().unwrap() {
            let roles = op["x-sluice-roles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_string())
                .collect();
            // Parameters name nothing that exists.
            let concrete = path
                .split('/')
                .map(|s| if s.starts_with('{') { "nope" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            operations.push((method.clone(), concrete, roles));
        }
    }
    assert!(operations.len() > 40, "{} operations", operations.len());
    // Logging out revokes the caller's token: last.
    operations.sort_by_key(|(_, p, _)| p.ends_with("/logout"));
    let mut wrong = Vec::new();
    for (method, path, roles) in &operations {
        if roles.is_empty() {
            continue;
        }
        let status = call(&gw, method, path, None);
        if status != 401 {
            wrong.push(format!(
                "{method} {path} without a token: {status}, not 401"
            ));
        }
        for (role, token) in &tokens {
            let status = call(&gw, method, path, Some(token));
            let allowed = roles.iter().any(|r| r == role);
            let ok = match allowed {
                true => status != 401 && status != 403 && status != 0,
                false => status == 403,
            };
            if !ok {
                wrong.push(format!(
                    "{method} {path} as {role}: {status} ({})",
                    if allowed { "allowed" } else { "forbidden" }
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_user_reads_its_own_sessions_an_auditor_everyones() {
    let db = common::TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let alice = gw.named_service_account("alice", "engineering");
    let bob = gw.named_service_account("bob", "engineering");
    let auditor = gw.named_service_account("carol", "auditor");
    for token in [&alice, &bob] {
        let out = gw.psql(token, "SELECT 1");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    gw.wait_ended_sessions(2);
    let list = |token: &str| -> Vec<Value> {
        let out = gw.cli_as(token, &["sessions", "list", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let mine = list(&alice);
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["identity"], "alice");
    let everyone = list(&auditor);
    assert_eq!(everyone.len(), 2, "{everyone:?}");
    let bobs = everyone.iter().find(|s| s["identity"] == "bob").unwrap();
    let id = bobs["id"].as_str().unwrap();
    // Someone else's session does not exist for a user; an auditor reads it but cannot end it.
    let path = format!("/api/v1/sessions/{id}");
    assert_eq!(call(&gw, "get", &path, Some(&alice)), 404);
    assert_eq!(
        call(&gw, "get", &format!("{path}/events"), Some(&alice)),
        404
    );
    assert_eq!(call(&gw, "get", &path, Some(&bob)), 200);
    assert_eq!(call(&gw, "get", &path, Some(&auditor)), 200);
    assert_eq!(
        call(&gw, "post", &format!("{path}/kill"), Some(&auditor)),
        403
    );
    let refused = gw.wait_audit("the auditor's refused kill", |e| {
        e["action"] == "api.auth" && e["actor"]["name"] == "carol"
    });
    assert!(
        refused["reason"].as_str().unwrap().contains("admin role"),
        "{refused}"
    );
}

#[test]
fn the_openapi_document_is_valid_openapi_3_1_with_schemas() {
    let gw = Gateway::start(
        "listeners:\n  postgres:\n    address: 127.0.0.1:0\n  api:\n    address: 127.0.0.1:0\n",
    );
    let file = gw.dir.join("openapi.json");
    let got = Command::new("curl")
        .args(["-sSf", "--max-time", "30", "-o"])
        .arg(&file)
        .arg("--cacert")
        .arg(gw.data().join("tls/ca.pem"))
        .arg(format!("https://{}/api/v1/openapi.json", gw.api))
        .output()
        .unwrap();
    assert!(got.status.success(), "{got:?}");
    // A real validator (PyPI openapi-spec-validator) checks the whole document.
    let checked = Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let review = &doc["components"]["schemas"]["Review"]["properties"];
    assert!(
        review["statement"].is_object() && review["approvals"].is_object(),
        "{review}"
    );
}
