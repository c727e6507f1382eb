//! Containment with real clients: kill a session and block an identity while a statement runs
//! on the target (it waits for an advisory lock a direct session holds); the statement is cancelled there, the client told, the recording closed.

mod common;

use common::{Gateway, LockHolder, TestDb};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// psql through the gateway, waiting for the holder's lock, in the background.
fn blocked_psql(gw: &Gateway, token: &str, db: &TestDb, lock: &LockHolder) -> Child {
    let child = Command::new("psql")
        .args([
            "-X",
            "-tA",
            &gw.dsn("pg", token, "require"),
            "-c",
            &format!("select 'sluice-blocked', pg_advisory_lock({})", lock.key),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql starts");
    common::wait_for(
        "the statement waiting on the target",
        Duration::from_secs(10),
        || blocked(db).then_some(()),
    );
    child
}

/// An admin following session `id`'s live events with curl (`extra`: more curl arguments),
/// stdout piped.
fn watch_live(gw: &Gateway, id: &str, extra: &[&str]) -> Child {
    Command::new("curl")
        .args(["-sS", "-N", "--max-time", "120", "--cacert"])
        .arg(gw.data().join("tls/ca.pem"))
        .args(["-H", &format!("Authorization: Bearer {}", gw.admin_token)])
        .args(extra)
        .arg(format!("https://{}/api/v1/live/sessions/{id}", gw.api))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Whether the statement waits for the lock on the target.
fn blocked(db: &TestDb) -> bool {
    let out = common::psql_direct(
        &db.name,
        "select count(*) from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like '%sluice-blocked%'",
    );
    String::from_utf8_lossy(&out.stdout).trim() != "0"
}

fn live_session(gw: &Gateway) -> String {
    let live: Vec<Value> =
        serde_json::from_str(&gw.cli_ok(&["sessions", "list", "--live", "--json"])).unwrap();
    assert_eq!(live.len(), 1, "{live:?}");
    live[0]["id"].as_str().unwrap().to_string()
}

fn end_reason(gw: &Gateway, id: &str) -> String {
    common::wait_for("the session's end", Duration::from_secs(10), || {
        gw.sessions()
            .into_iter()
            .find(|s| s["id"] == id)
            .and_then(|s| s["end_reason"].as_str().map(str::to_string))
    })
}

#[test]
fn kill_ends_a_running_session_and_cancels_its_statement() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let token = gw.service_account("engineering");
    let other_token = gw.service_account("engineering");
    let lock = LockHolder::new(&db);
    let psql = blocked_psql(&gw, &token, &db, &lock);
    let id = live_session(&gw);

    let out = gw.cli_ok(&["sessions", "kill", &id]);
    assert!(out.contains("killed"), "{out}");
    let done = psql.wait_with_output().unwrap();
    assert!(!done.status.success());
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(stderr.contains("administrator command"), "{stderr}");
    common::wait_for(
        "the statement cancelled on the target",
        Duration::from_secs(10),
        || (!blocked(&db)).then_some(()),
    );
    assert_eq!(end_reason(&gw, &id), "killed");
    let events = gw.events(&id);
    assert_eq!(events.last().unwrap()["kind"], "end");
    assert!(
        events.iter().any(|e| e["kind"] == "query"),
        "the statement stays recorded"
    );
    gw.wait_audit("session.kill", |e| {
        e["action"] == "session.kill" && e["target"] == id.as_str()
    });

    // Other sessions are unaffected; killing an ended session is a clear 404.
    let ok = gw.psql(&other_token, "select 1");
    assert!(ok.status.success());
    let again = gw.cli(&["sessions", "kill", &id]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no live session"));
}

#[test]
fn block_ends_sessions_revokes_tokens_and_refuses_logins_until_unblocked() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let name = common::unique("mallory");
    let token = gw.named_service_account(&name, "engineering");
    let lock = LockHolder::new(&db);
    let psql = blocked_psql(&gw, &token, &db, &lock);
    let id = live_session(&gw);

    let out = gw.cli_ok(&[
        "identities",
        "block",
        &name,
        "--reason",
        "compromised laptop",
    ]);
    assert!(
        out.contains("1 token(s) revoked, 1 live session(s) ended"),
        "{out}"
    );
    let done = psql.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&done.stderr).contains("blocked"));
    common::wait_for(
        "the statement cancelled on the target",
        Duration::from_secs(10),
        || (!blocked(&db)).then_some(()),
    );
    assert_eq!(end_reason(&gw, &id), "identity_blocked");

    let refused = gw.psql(&token, "select 1");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("identity is blocked"),
        "new logins are refused as blocked"
    );
    let listed: Vec<Value> =
        serde_json::from_str(&gw.cli_ok(&["identities", "list", "--json"])).unwrap();
    let me = listed.iter().find(|i| i["name"] == name.as_str()).unwrap();
    assert!(me["blocked_us"].is_i64());
    gw.wait_audit("identity.block", |e| {
        e["action"] == "identity.block" && e["reason"] == "compromised laptop"
    });

    // After unblock the identity may log in again, but only with a new token.
    gw.cli_ok(&["identities", "unblock", &name]);
    let old = gw.psql(&token, "select 1");
    assert!(!old.status.success(), "revoked tokens stay revoked");
    assert!(String::from_utf8_lossy(&old.stderr).contains("revoked"));
}

#[test]
fn an_operator_watches_a_live_session_until_it_is_killed() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let token = gw.service_account("engineering");
    let mut psql = gw.psql_session(&token);
    let mut stdin = psql.stdin.take().unwrap();
    // The session is live once its first statement answered.
    stdin.write_all(b"SELECT 'ready';\n").unwrap();
    let mut out = BufReader::new(psql.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let id = live_session(&gw);
    // A user may not watch someone else's live session.
    let other = gw.service_account("engineering");
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "30",
            "--cacert",
        ])
        .arg(gw.data().join("tls/ca.pem"))
        .args(["-H", &format!("Authorization: Bearer {other}")])
        .arg(format!("https://{}/api/v1/live/sessions/{id}", gw.api))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");

    let mut watch = watch_live(&gw, &id, &["-D", "-"]);
    let mut events = BufReader::new(watch.stdout.take().unwrap()).lines();
    let status = events.next().unwrap().unwrap();
    assert!(status.contains(" 200"), "{status}");
    // Past the headers, the watcher follows the session.
    for l in events.by_ref() {
        if l.unwrap().trim().is_empty() {
            break;
        }
    }
    stdin.write_all(b"SELECT 'watched-' || 7;\n").unwrap();
    let mut seen = Vec::new();
    let mut kind = String::new();
    for l in events.by_ref() {
        let l = l.unwrap();
        if let Some(k) = l.strip_prefix("event: ") {
            kind = k.to_string();
        } else if let Some(data) = l.strip_prefix("data: ") {
            let v: Value = serde_json::from_str(data).unwrap();
            assert_eq!(v["event"]["kind"], kind.as_str(), "{v}");
            seen.push(v.clone());
            if kind == "query"
                && v["event"]["text"]
                    .as_str()
                    .unwrap_or("")
                    .contains("watched-")
            {
                break;
            }
        }
    }
    gw.cli_ok(&["sessions", "kill", &id]);
    // The stream ends with the session's end.
    let rest: Vec<String> = events.map(|l| l.unwrap()).collect();
    assert!(rest.iter().any(|l| l == "event: end"), "{rest:?}");
    let _ = watch.wait();
    drop(stdin);
    let _ = psql.wait();
}

#[test]
fn a_watcher_resuming_after_an_event_gets_every_later_one_once() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let token = gw.service_account("engineering");
    let mut psql = gw.psql_session(&token);
    let mut stdin = psql.stdin.take().unwrap();
    let mut out = BufReader::new(psql.stdout.take().unwrap());
    for n in 1..=3 {
        stdin
            .write_all(format!("SELECT 'before-{n}';\n").as_bytes())
            .unwrap();
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), format!("before-{n}"));
    }
    let id = live_session(&gw);
    // After event 0 (the start): the statements recorded before the watcher came, then
    // the session's end, each once and in order.
    let mut watch = watch_live(&gw, &id, &["-H", "Last-Event-ID: 0"]);
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let mut seqs = Vec::new();
    let mut texts = Vec::new();
    for l in lines.by_ref() {
        let l = l.unwrap();
        if let Some(data) = l.strip_prefix("data: ") {
            let v: Value = serde_json::from_str(data).unwrap();
            seqs.push(v["seq"].as_u64().unwrap());
            if let Some(t) = v["event"]["text"].as_str() {
                texts.push(t.to_string());
            }
            if texts.iter().any(|t| t.contains("before-3")) {
                break;
            }
        }
    }
    assert_eq!(seqs[0], 1, "{seqs:?}");
    assert_eq!(texts.len(), 3, "{texts:?}");
    for (n, t) in texts.iter().enumerate() {
        assert!(t.contains(&format!("before-{}", n + 1)), "{texts:?}");
    }
    gw.cli_ok(&["sessions", "kill", &id]);
    for l in lines {
        if let Some(data) = l.unwrap().strip_prefix("data: ") {
            let v: Value = serde_json::from_str(data).unwrap();
            seqs.push(v["seq"].as_u64().unwrap());
        }
    }
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let _ = watch.wait();
    drop(stdin);
    let _ = psql.wait();
}
