//! Finding sessions: filters on protocol, denials and recorded text, and pages by cursor.

mod common;

use common::{Gateway, TestDb};
use serde_json::Value;
use std::process::Command;

/// `GET path` as `token`: status, the `X-Next-Cursor` header, the JSON body.
fn get(gw: &Gateway, token: &str, path: &str) -> (u16, Option<String>, Value) {
    let out = Command::new("curl")
        .args(["-sS", "-D", "-", "--max-time", "30", "--cacert"])
        .arg(gw.data().join("tls/ca.pem"))
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("https://{}{path}", gw.api))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let cursor = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("x-next-cursor")
            .then(|| v.trim().to_string())
    });
    (
        status,
        cursor,
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn sessions_are_found_by_protocol_denials_and_text_and_paged() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config_with_policy(
        &db,
        common::QUICKSTART_GUARDRAILS,
        "",
    ));
    let token = gw.service_account("engineering");
    for sql in ["SELECT 'needle-42'", "DROP TABLE nothing_here", "SELECT 1"] {
        gw.psql(&token, sql);
    }
    let all = gw.wait_ended_sessions(3);
    let admin = gw.admin_token.clone();
    let id_of = |text: &str| -> String {
        all.iter()
            .find(|s| {
                gw.events(s["id"].as_str().unwrap()).iter().any(|e| {
                    e["kind"] == "query" && e["text"].as_str().unwrap_or("").contains(text)
                })
            })
            .map(|s| s["id"].as_str().unwrap().to_string())
            .unwrap()
    };
    let (needle, dropped) = (id_of("needle-42"), id_of("DROP TABLE"));

    let (status, _, found) = get(&gw, &admin, "/api/v1/sessions?q=NEEDLE-42");
    assert_eq!(status, 200);
    assert_eq!(ids(&found), vec![needle.clone()]);
    let (_, _, denied) = get(&gw, &admin, "/api/v1/sessions?has_denials=true");
    assert_eq!(ids(&denied), vec![dropped.clone()]);
    let (_, _, held) = get(&gw, &admin, "/api/v1/sessions?has_reviews=true");
    assert!(ids(&held).is_empty(), "{held}");
    let (_, _, pg) = get(&gw, &admin, "/api/v1/sessions?protocol=postgres");
    assert_eq!(ids(&pg).len(), 3);
    let (_, _, ssh) = get(&gw, &admin, "/api/v1/sessions?protocol=ssh");
    assert!(ids(&ssh).is_empty());

    // Pages of two: the first names the next; the second is the rest, without a cursor.
    let (_, cursor, first) = get(&gw, &admin, "/api/v1/sessions?limit=2");
    let cursor = cursor.expect("a full page names the next one");
    let (_, last_cursor, second) = get(
        &gw,
        &admin,
        &format!("/api/v1/sessions?limit=2&cursor={cursor}"),
    );
    assert_eq!(ids(&first).len(), 2);
    assert_eq!(ids(&second).len(), 1);
    assert_eq!(last_cursor, None);
    let mut seen: Vec<String> = ids(&first).into_iter().chain(ids(&second)).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3);
    let (status, _, err) = get(&gw, &admin, "/api/v1/sessions?cursor=garbage");
    assert_eq!(status, 400, "{err}");

    // The same through the CLI.
    let out = gw.cli_ok(&["sessions", "list", "--denied", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ids(&v), vec![dropped]);
    let out = gw.cli_ok(&[
        "sessions",
        "list",
        "--search",
        "needle-42",
        "--protocol",
        "postgres",
        "--json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ids(&v), vec![needle]);
}

#[test]
fn audit_events_are_found_by_action_actor_and_session_and_paged() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config_with_policy(
        &db,
        common::QUICKSTART_GUARDRAILS,
        "",
    ));
    let alice = gw.named_service_account("alice", "engineering");
    let bob = gw.named_service_account("bob", "engineering");
    gw.psql(&alice, "DROP TABLE a_table");
    gw.psql(&bob, "DROP TABLE b_table");
    gw.psql(&bob, "SELECT 1");
    gw.wait_ended_sessions(3);
    let admin = gw.admin_token.clone();

    let (status, _, denied) = get(&gw, &admin, "/api/v1/audit?action=statement.denied");
    assert_eq!(status, 200);
    let denied = denied.as_array().unwrap();
    assert_eq!(denied.len(), 2, "{denied:?}");
    assert!(denied.iter().all(|e| e["action"] == "statement.denied"));
    let (_, _, by_alice) = get(&gw, &admin, "/api/v1/audit?action=statement.&actor=alice");
    let by_alice = by_alice.as_array().unwrap();
    assert!(!by_alice.is_empty());
    assert!(
        by_alice.iter().all(|e| e["actor"]["name"] == "alice"),
        "{by_alice:?}"
    );
    let session = by_alice[0]["session_id"].as_str().unwrap().to_string();
    let (_, _, of_session) = get(&gw, &admin, &format!("/api/v1/audit?session={session}"));
    let of_session = of_session.as_array().unwrap();
    assert!(of_session.iter().any(|e| e["action"] == "session.start"));
    assert!(of_session
        .iter()
        .all(|e| e["session_id"] == session.as_str()));
    // `_` in a filter is a character, not a wildcard.
    let (_, _, none) = get(&gw, &admin, "/api/v1/audit?action=session_start");
    assert!(none.as_array().unwrap().is_empty(), "{none}");

    // Pages of one, newest first: the cursors walk back through both denials.
    let (_, cursor, newest) = get(&gw, &admin, "/api/v1/audit?action=statement.denied&limit=1");
    assert_eq!(newest[0]["actor"]["name"], "bob");
    let cursor = cursor.expect("a full page names the next one");
    let (_, _, older) = get(
        &gw,
        &admin,
        &format!("/api/v1/audit?action=statement.denied&limit=1&cursor={cursor}"),
    );
    assert_eq!(older[0]["actor"]["name"], "alice");

    // The CLI, and a user who may not read the audit log.
    let out = gw.cli_ok(&[
        "audit",
        "--json",
        "--action",
        "statement.denied",
        "--actor",
        "bob",
    ]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let (status, _, _) = get(&gw, &alice, "/api/v1/audit");
    assert_eq!(status, 403);
}
