//! HTTP connections: a real service (`tests/http_service.py`) behind the gateway, reached by
//! path prefix and by host name with curl (HTTP/1.1 and HTTP/2) and a WebSocket client.
//! Credentials swapped, guardrails (deny, review answered 202 then approved), masking,
//! streaming bodies, an unreachable service.

mod common;

use common::http::*;
use common::{unique, wait_for};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[test]
fn a_bearer_token_reaches_the_service_with_the_gateways_credential_only() {
    let s = setup();
    let (status, version, body) = curl(
        &s.gw,
        &[
            "--http1.1",
            "-H",
            &bearer(&s.alice),
            "-H",
            "X-Forwarded-User: root",
            "-H",
            "X-Request-Id: req-42",
            "-H",
            "Cookie: theme=dark",
            &url(&s.gw, "/app/whoami?q=1"),
        ],
    );
    assert_eq!((status, version.as_str()), (200, "1.1"), "{body}");
    let seen: Value = serde_json::from_str(&body).unwrap();
    let h = &seen["headers"];
    assert_eq!(seen["path"], "/whoami", "the prefix is removed");
    assert_eq!(seen["query"], "q=1");
    assert_eq!(h["x-api-key"], SERVICE_KEY);
    assert!(
        h.get("authorization").is_none(),
        "the client's token is not forwarded"
    );
    assert!(h["x-forwarded-user"]
        .as_str()
        .unwrap()
        .starts_with("alice_"));
    assert_eq!(h["x-forwarded-prefix"], "/app");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["cookie"], "theme=dark");
    assert_eq!(h["host"], format!("127.0.0.1:{}", s.svc.port));

    // A second request on another connection: a session per client connection.
    let (status, _, _) = curl(
        &s.gw,
        &["-H", &bearer(&s.alice), &url(&s.gw, "/app/customers")],
    );
    assert_eq!(status, 200);
    let sessions = s.gw.wait_ended_sessions(2);
    assert!(sessions
        .iter()
        .all(|x| x["protocol"] == "http" && x["end_reason"] == "client_quit"));

    let first = sessions.iter().find(|x| {
        s.gw.events(x["id"].as_str().unwrap())
            .iter()
            .any(|e| e["kind"] == "query" && e["text"] == "GET /whoami?q=1")
    });
    let events = s.gw.events(first.unwrap()["id"].as_str().unwrap());
    let http = events.iter().find(|e| e["kind"] == "http").unwrap();
    assert_eq!(http["status"], 200);
    assert_eq!(http["method"], "GET");
    assert_eq!(http["request_headers"]["x-request-id"], "req-42");
    assert!(http["request_headers"].get("authorization").is_none());
    assert!(http["request_headers"].get("cookie").is_none());
    assert!(http["response_body"].as_str().unwrap().contains("/whoami"));
    // The service's key was in the response body (echoed): the recording must not hold it
    // unless the service itself printed it; it did here, in the echoed headers. What must
    // never be anywhere is the client's token.
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(&s.alice));
    assert!(!s.gw.log().contains(&s.alice));
}

#[test]
fn host_names_route_over_http2_with_a_bearer_credential_toward_the_service() {
    let s = setup();
    let port = s.gw.api.port();
    let resolve = format!("internal.sluice.test:{port}:127.0.0.1");
    let target = format!("https://internal.sluice.test:{port}/whoami");
    let (status, version, body) = curl(
        &s.gw,
        &[
            "--http2",
            "--resolve",
            &resolve,
            "-H",
            &bearer(&s.alice),
            &target,
        ],
    );
    assert_eq!((status, version.as_str()), (200, "2"), "{body}");
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["path"], "/whoami");
    assert_eq!(
        seen["headers"]["authorization"],
        format!("Bearer {SERVICE_KEY}")
    );
    // The gateway's own API is not reachable under the service's host name.
    let api = format!("https://internal.sluice.test:{port}/api/v1/whoami");
    let (_, _, body) = curl(
        &s.gw,
        &["--resolve", &resolve, "-H", &bearer(&s.alice), &api],
    );
    assert!(body.contains("not found"), "{body}");
}

#[test]
fn requests_without_a_good_credential_or_grant_are_refused_and_audited() {
    let s = setup();
    let (status, _, body) = curl(&s.gw, &["-i", &url(&s.gw, "/app/whoami")]);
    assert_eq!(status, 401);
    assert!(
        body.to_ascii_lowercase()
            .contains("www-authenticate: bearer realm=\"sluice\""),
        "{body}"
    );
    let (status, _, body) = curl(
        &s.gw,
        &[
            "-H",
            "Authorization: Bearer slc_wrong",
            &url(&s.gw, "/app/whoami"),
        ],
    );
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("authentication failed"), "{body}");
    let (status, _, body) = curl(
        &s.gw,
        &["-H", &bearer(&s.mallory), &url(&s.gw, "/app/whoami")],
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("has no grant on connection \\\"app\\\""),
        "{body}"
    );
    s.gw.wait_audit("the refused grant", |e| {
        e["action"] == "auth.connect" && e["outcome"] == "failure" && e["connection"] == "app"
    });
    assert!(s.svc.calls().is_empty(), "nothing reached the service");
    // The API and other connections are unaffected.
    let (status, _, _) = curl(
        &s.gw,
        &["-H", &bearer(&s.alice), &url(&s.gw, "/app/whoami")],
    );
    assert_eq!(status, 200);
}

#[test]
fn a_denied_request_never_reaches_the_service() {
    let s = setup();
    let (status, _, body) = curl(
        &s.gw,
        &[
            "-i",
            "-X",
            "DELETE",
            "-H",
            &bearer(&s.alice),
            &url(&s.gw, "/app/admin/users/7"),
        ],
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("x-sluice-rule: no-admin-deletes"), "{body}");
    assert!(
        body.contains("denied by rule \\\"no-admin-deletes\\\": deleting through the admin API is not allowed"),
        "{body}"
    );
    // Paths a service could read as the same one are refused, not guessed at.
    for sneaky in [
        "/app//admin/users/7",
        "/app/x/../admin/users/7",
        "/app/%61dmin/users/7",
    ] {
        let (status, _, body) = curl(
            &s.gw,
            &[
                "--path-as-is",
                "-X",
                "DELETE",
                "-H",
                &bearer(&s.alice),
                &url(&s.gw, sneaky),
            ],
        );
        assert_eq!(status, 400, "{sneaky}: {body}");
    }
    // Other methods on the same path, and DELETE elsewhere, pass.
    let (status, _, _) = curl(
        &s.gw,
        &["-H", &bearer(&s.alice), &url(&s.gw, "/app/admin/users/7")],
    );
    assert_eq!(status, 200);
    assert_eq!(s.svc.calls(), ["GET /admin/users/7"]);
    let events = events_of_any(&s.gw, "DELETE /admin/users/7");
    let guard = events.iter().find(|e| e["kind"] == "guard").unwrap();
    assert_eq!(guard["rule"], "no-admin-deletes");
    assert_eq!(guard["action"], "denied");
}

#[test]
fn a_held_request_is_answered_202_and_runs_once_when_approved() {
    let s = setup();
    let refund = [
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"order": 17, "amount": 40}"#,
    ];
    let mut args: Vec<&str> = refund.to_vec();
    let auth = bearer(&s.alice);
    let target = url(&s.gw, "/app/payments/refund");
    args.extend(["-H", &auth, &target]);
    let (status, _, body) = curl(&s.gw, &args);
    assert_eq!(status, 202, "{body}");
    let held: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(held["status"], "pending_review");
    let review = held["review"].as_str().unwrap().to_string();
    assert!(held["message"]
        .as_str()
        .unwrap()
        .contains("send the same request again"));
    assert!(s.svc.calls().is_empty());

    let pending = s.gw.pending_review(&s.bob);
    assert_eq!(pending["id"], review.as_str());
    assert_eq!(pending["statement"], "POST /payments/refund");
    let ok = s.gw.cli_as(
        &s.bob,
        &["reviews", "approve", &review, "--reason", "INC-9"],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // The identical request now runs, once; the approval does not cover another body.
    let (status, _, body) = wait_for(
        "the approval to take effect",
        Duration::from_secs(10),
        || {
            let r = curl(&s.gw, &args);
            (r.0 != 202).then_some(r)
        },
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["refunded"]["order"],
        17
    );
    let (status, _, _) = curl(&s.gw, &args);
    assert_eq!(status, 202, "an approval runs its request once");
    let mut other = args.clone();
    other[5] = r#"{"order": 18, "amount": 4000}"#;
    let (status, _, _) = curl(&s.gw, &other);
    assert_eq!(status, 202);
    assert_eq!(s.svc.calls(), ["POST /payments/refund"]);
}

#[test]
fn answers_are_masked_field_by_field_and_as_they_stream() {
    let s = setup();
    let (status, _, body) = curl(
        &s.gw,
        &["-H", &bearer(&s.alice), &url(&s.gw, "/app/customers")],
    );
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    let c = &doc["customers"][0];
    assert_eq!(c["name"], "Ada");
    assert_eq!(
        c["password"], "*******",
        "a column rule masks the field whole"
    );
    assert_eq!(c["card"], "**** **** **** 1111");
    assert!(!c["email"].as_str().unwrap().contains("ada@example.com"));
    assert_eq!(c["visits"], 3);

    let (status, _, body) = curl(
        &s.gw,
        &["-H", &bearer(&s.alice), &url(&s.gw, "/app/stream")],
    );
    assert_eq!(status, 200);
    assert_eq!(body, "line 1\ncard **** **** **** 0004 on file\nline 3\n");

    let events = events_of_any(&s.gw, "GET /customers");
    let http = events.iter().find(|e| e["kind"] == "http").unwrap();
    let recorded = http["response_body"].as_str().unwrap();
    assert!(
        !recorded.contains("hunter2") && !recorded.contains("4111 1111"),
        "{recorded}"
    );
    let masking = events.iter().find(|e| e["kind"] == "masking").unwrap();
    assert!(
        masking["counts"]["card_number"].as_u64().unwrap() >= 1,
        "{masking}"
    );
}

#[test]
fn large_bodies_stream_both_ways_unchanged() {
    let s = setup();
    let dir = std::env::temp_dir().join(unique("http-bodies"));
    std::fs::create_dir_all(&dir).unwrap();
    let upload = dir.join("upload.bin");
    let data: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    std::fs::write(&upload, &data).unwrap();
    let at = format!("@{}", upload.display());
    let (status, _, body) = curl(
        &s.gw,
        &[
            "-H",
            &bearer(&s.alice),
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &at,
            &url(&s.gw, "/app/upload"),
        ],
    );
    assert_eq!(status, 200, "{body}");
    let got: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(got["bytes"], data.len());
    assert_eq!(got["sha256"], sha256_hex(&upload));

    let down = dir.join("down.txt");
    let (status, _, _) = curl(
        &s.gw,
        &[
            "-H",
            &bearer(&s.alice),
            "-o",
            down.to_str().unwrap(),
            &url(&s.gw, "/app/big?mb=20"),
        ],
    );
    assert_eq!(status, 200);
    assert_eq!(std::fs::metadata(&down).unwrap().len(), 20 * 1024 * 1024);
    let events = events_of_any(&s.gw, "GET /big?mb=20");
    let http = events.iter().find(|e| e["kind"] == "http").unwrap();
    assert_eq!(http["response_bytes"], 20 * 1024 * 1024);
    assert_eq!(http["truncated"], true);
    assert!(http["response_body"].as_str().unwrap().len() <= 64 * 1024);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn sha256_hex(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_websocket_is_relayed_and_recorded() {
    let s = setup();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/ws_client.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(s.gw.api.to_string())
        .arg(ca(&s.gw))
        .arg(format!("localhost:{}", s.gw.api.port()))
        .args(["/app/ws", &s.alice, "hello", "through the gateway"])
        .output()
        .unwrap();
    let result: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(result["status"], 101, "{result}");
    assert_eq!(
        result["answers"],
        serde_json::json!(["HELLO", "THROUGH THE GATEWAY"])
    );
    let events = events_of_any(&s.gw, "GET /ws");
    let http = events.iter().find(|e| e["kind"] == "http").unwrap();
    assert_eq!(http["websocket"], true);
    assert_eq!(http["status"], 101);
    assert!(http["request_bytes"].as_u64().unwrap() > 0, "{http}");

    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/ws_client.py"))
        .arg(s.gw.api.to_string())
        .arg(ca(&s.gw))
        .arg(format!("localhost:{}", s.gw.api.port()))
        .args(["/app/ws", "slc_not_a_token", "hi"])
        .output()
        .unwrap();
    let refused: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(refused["status"], 401);
}

#[test]
fn an_unreachable_service_is_a_502_and_the_session_goes_on() {
    let s = setup();
    let (status, _, body) = curl(&s.gw, &["-H", &bearer(&s.alice), &url(&s.gw, "/gone/x")]);
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("did not answer"), "{body}");
    s.gw.wait_audit("the failed forward", |e| {
        e["action"] == "http.upstream" && e["connection"] == "gone" && e["fault"] == "target"
    });
    let events = events_of(&s.gw, "gone");
    let http = events.iter().find(|e| e["kind"] == "http").unwrap();
    assert!(http["error"].as_str().is_some());
    let (status, _, _) = curl(
        &s.gw,
        &["-H", &bearer(&s.alice), &url(&s.gw, "/app/whoami")],
    );
    assert_eq!(status, 200);
}
