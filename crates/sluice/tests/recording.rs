//! Recording durability and the session lifecycle across shutdowns and crashes.

mod common;

use common::raw::{self, login};
use common::{Gateway, Interactive, TestDb};
use std::io::Write;
use std::time::Duration;

fn query_texts(gw: &Gateway, id: &str) -> Vec<String> {
    gw.events(id)
        .iter()
        .filter(|e| e["kind"] == "query")
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn strict_mode_makes_a_statement_durable_before_it_is_forwarded() {
    let db = TestDb::new();
    let cfg = common::config(&db, "recording:\n  mode: strict\n");
    let gw = Gateway::start(&cfg);
    let token = gw.service_account("engineering");
    let mut s = login(gw.pg, "pg", &token).expect("login");
    s.write_all(&raw::typed(b'Q', b"select 'durable before forwarded'\0"))
        .unwrap();
    // Wait for the answer: the statement reached the target, so it must already be durable.
    while let Some((tag, _)) = raw::read_msg(&mut s) {
        if tag == b'Z' {
            break;
        }
    }
    let gw = gw.restart(&cfg, true);
    let session = gw
        .sessions()
        .into_iter()
        .next()
        .expect("the session survived the crash");
    assert_eq!(session["end_reason"], "gateway_restart");
    let id = session["id"].as_str().unwrap();
    assert_eq!(query_texts(&gw, id), ["select 'durable before forwarded'"]);
}

#[test]
fn shutdown_ends_live_sessions_with_a_native_error_and_a_complete_recording() {
    let db = TestDb::new();
    let cfg = common::config(&db, "");
    let mut gw = Gateway::start(&cfg);
    let token = gw.service_account("engineering");
    let mut s = login(gw.pg, "pg", &token).expect("login");
    s.write_all(&raw::typed(b'Q', b"select 'before shutdown'\0"))
        .unwrap();
    while let Some((tag, _)) = raw::read_msg(&mut s) {
        if tag == b'Z' {
            break;
        }
    }
    assert!(gw.stop().success());
    let e = raw::read_error(&mut s).expect("a FATAL error before the connection closes");
    assert_eq!(e.code, "57P01");
    let gw = gw.restart(&cfg, false);
    let session = gw.sessions().into_iter().next().unwrap();
    assert_eq!(session["end_reason"], "gateway_shutdown");
    let id = session["id"].as_str().unwrap();
    assert_eq!(query_texts(&gw, id), ["select 'before shutdown'"]);
    let detail: serde_json::Value =
        serde_json::from_str(&gw.cli_ok(&["sessions", "show", id, "--json"])).unwrap();
    assert_eq!(detail["session"]["chain"], "ok");
    assert_eq!(
        detail["events"].as_array().unwrap().len() as i64,
        detail["session"]["event_count"].as_i64().unwrap()
    );
}

#[test]
fn concurrent_sessions_are_recorded_separately_and_audited_to_the_file() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let token = gw.service_account("engineering");
    let dsn = gw.dsn("pg", &token, "require");
    let mut a = Interactive::spawn("hold", &[("DSN", dsn.clone())]);
    let mut b = Interactive::spawn("hold", &[("DSN", dsn)]);
    assert_eq!(a.next()["ready"], true);
    assert_eq!(b.next()["ready"], true);
    let live = common::wait_for("two live sessions", Duration::from_secs(10), || {
        let live: Vec<serde_json::Value> =
            serde_json::from_str(&gw.cli_ok(&["sessions", "list", "--live", "--json"])).unwrap();
        (live.len() == 2).then_some(live)
    });
    assert_ne!(live[0]["id"], live[1]["id"]);
    a.send("go");
    b.send("go");
    assert_eq!(a.next()["after"], 2);
    assert_eq!(b.next()["after"], 2);
    for s in &live {
        let id = s["id"].as_str().unwrap().to_string();
        let texts = common::wait_for("both statements recorded", Duration::from_secs(10), || {
            let t = query_texts(&gw, &id);
            (t.len() == 2).then_some(t)
        });
        assert_eq!(texts, ["select 1", "select 2"]);
    }
    let file = common::wait_for(
        "session ends in the audit file",
        Duration::from_secs(10),
        || {
            let f = std::fs::read_to_string(gw.data().join("audit.jsonl")).ok()?;
            (f.matches("\"session.end\"").count() == 2).then_some(f)
        },
    );
    for line in file.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            e["id"].is_string() && e["ts_us"].is_i64() && e["action"].is_string(),
            "{line}"
        );
    }
    assert!(!file.contains(&token), "no secret in the audit file");
}

#[test]
fn a_target_that_goes_away_ends_only_its_session_with_a_complete_recording() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let token = gw.service_account("engineering");
    let mut other = Interactive::spawn("hold", &[("DSN", gw.dsn("pg", &token, "require"))]);
    assert_eq!(other.next()["ready"], true);

    let mut s = login(gw.pg, "pg", &token).expect("login");
    s.write_all(&raw::typed(b'Q', b"select pg_backend_pid()\0"))
        .unwrap();
    let mut pid = String::new();
    while let Some((tag, body)) = raw::read_msg(&mut s) {
        if tag == b'D' {
            pid = String::from_utf8_lossy(&body[6..]).to_string();
        }
        if tag == b'Z' {
            break;
        }
    }
    let out = common::psql_direct(&db.name, &format!("select pg_terminate_backend({pid})"));
    assert!(out.status.success());
    let e = raw::read_error(&mut s).expect("the client hears why");
    assert_eq!(e.code, "57P01", "{e:?}");
    assert!(raw::closed(&mut s));

    let ended = common::wait_for(
        "the session to end as target_closed",
        Duration::from_secs(10),
        || {
            gw.sessions()
                .into_iter()
                .find(|s| s["end_reason"] == "target_closed")
        },
    );
    let id = ended["id"].as_str().unwrap();
    assert_eq!(query_texts(&gw, id), ["select pg_backend_pid()"]);
    other.send("go");
    assert_eq!(other.next()["after"], 2, "the other session is unharmed");
}
