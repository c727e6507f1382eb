//! The audit trail: event schema, retention with legal holds, keys from the environment, and
//! `audit.fail_closed`. Evidence bundles and key rotation are in `evidence.rs`.

mod common;

use common::{wait_for, Gateway, TestDb};
use serde_json::Value;
use std::io::Write;
use std::time::Duration;

#[test]
fn statements_sessions_and_masking_are_audited_with_one_schema() {
    let db = TestDb::new();
    let policy = format!(
        "{}masking:\n  columns: ['*password*']\n",
        common::QUICKSTART_GUARDRAILS
    );
    let gw = Gateway::start(&common::config_with_policy(&db, &policy, ""));
    let token = gw.named_service_account("auditee", "engineering");
    let out = gw.psql(&token, "select 'alice@example.com' as contact");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = gw.psql(&token, "drop table if exists nothing_here");
    assert!(!out.status.success());
    let ended = |l: &[Value]| l.iter().filter(|e| e["action"] == "session.end").count() == 2;
    let log = wait_for(
        "both sessions ended in the audit log",
        Duration::from_secs(10),
        || {
            let l = gw.audit_log();
            ended(&l).then_some(l)
        },
    );

    // Every event: id, time, action, outcome, OCSF class.
    for e in &log {
        assert!(e["id"].is_string() && e["ts_us"].is_i64(), "{e}");
        assert!(
            e["outcome"] == "success" || e["outcome"] == "failure",
            "{e}"
        );
        assert!(
            e["class_uid"].as_u64().unwrap() > 0 && e["class_name"].is_string(),
            "{e}"
        );
    }
    assert_eq!(log[0]["action"], "gateway.start");
    assert!(log[0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("config sha256 "));

    let find =
        |action: &str| -> Vec<&Value> { log.iter().filter(|e| e["action"] == action).collect() };
    let allowed = find("statement.allowed");
    assert_eq!(allowed.len(), 1, "{log:?}");
    let a = allowed[0];
    // Statements are audited as recorded: masked.
    assert_eq!(a["statement"], "select '*****@example.com' as contact");
    assert_eq!(a["class_uid"], 6005);
    assert_eq!(a["actor"]["name"], "auditee");
    assert_eq!(a["actor"]["kind"], "service_account");
    assert_eq!(a["actor"]["groups"], serde_json::json!(["engineering"]));
    assert_eq!(a["connection"], "pg");
    assert_eq!(a["protocol"], "postgres");
    assert!(a["source"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(a["session_id"].is_string());

    let denied = find("statement.denied");
    assert_eq!(denied.len(), 1, "{log:?}");
    assert_eq!(denied[0]["outcome"], "failure");
    assert_eq!(denied[0]["rule"], "no-drop-table");
    assert_eq!(denied[0]["statement"], "drop table if exists nothing_here");

    let starts = find("session.start");
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[0]["class_uid"], 3003);
    assert_eq!(find("auth.connect").len(), 2);
    assert_eq!(find("auth.connect")[0]["class_uid"], 3002);
    // The session that read an email address says how many values were masked.
    let masked: Vec<&Value> = find("session.end")
        .into_iter()
        .filter(|e| e["masked"].is_object())
        .collect();
    assert_eq!(masked.len(), 1, "{log:?}");
    assert!(masked[0]["masked"]
        .as_object()
        .unwrap()
        .values()
        .any(|n| n.as_u64() >= Some(1)));
    // The JSON-lines file gets the same events.
    let last = log.last().unwrap()["id"].as_str().unwrap().to_string();
    let file = wait_for("the audit file catches up", Duration::from_secs(10), || {
        let f = std::fs::read_to_string(gw.data().join("audit.jsonl")).ok()?;
        f.contains(&last).then_some(f)
    });
    assert_eq!(file.lines().count(), log.len());
    assert!(
        !file.contains("alice@"),
        "no raw masked value in the audit file"
    );
}

/// Backdates a session's end by `days` (what time would do).
fn age(gw: &Gateway, session: &str, days: i64) {
    let db = sluice_store::schema::open_existing(&gw.data().join("sluice.db")).unwrap();
    db.execute(
        "UPDATE sessions SET ended_us = ended_us - ?2 WHERE id = ?1",
        (session, days * 86_400_000_000),
    )
    .unwrap();
}

#[test]
fn retention_deletes_exactly_the_expired_unheld_recordings() {
    let db = TestDb::new();
    let extra = "retention:\n  default: 90d\n";
    let config = common::config(&db, extra).replace(
        "    username: postgres\n",
        "    username: postgres\n    retention: 30d\n",
    );
    let gw = Gateway::start(&config);
    let keep = gw.named_service_account("keeper", "engineering");
    let other = gw.named_service_account("other", "engineering");
    for t in [&keep, &keep, &other, &other, &other] {
        assert!(gw.psql(t, "select 1").status.success());
    }
    let sessions: Vec<Value> = gw
        .wait_ended_sessions(5)
        .into_iter()
        .filter(|s| s["end_reason"].is_string())
        .collect();
    let of = |name: &str| -> Vec<String> {
        sessions
            .iter()
            .filter(|s| s["identity"] == name)
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (keeper, others) = (of("keeper"), of("other"));
    // other[0]: 40 days old (expired under the connection's 30d); other[1]: 40 days but held;
    // other[2]: 10 days (kept); both keeper sessions 40 days but the identity is held.
    for s in [&others[0], &others[1], &keeper[0], &keeper[1]] {
        age(&gw, s, 40);
    }
    age(&gw, &others[2], 10);
    let held = gw.cli_ok(&[
        "holds",
        "add",
        "--session",
        &others[1],
        "--reason",
        "case 42",
    ]);
    assert!(held.contains("hold hold-"), "{held}");
    gw.cli_ok(&[
        "holds",
        "add",
        "--identity",
        "keeper",
        "--reason",
        "case 43",
    ]);
    let bad = gw.cli(&[
        "holds",
        "add",
        "--session",
        "no-such-session",
        "--reason",
        "x",
    ]);
    assert!(!bad.status.success());

    let run = gw.cli_ok(&["retention", "run"]);
    assert!(run.contains("deleted 1 expired recordings"), "{run}");
    assert!(run.contains(&others[0]), "{run}");
    let left: Vec<String> = gw
        .sessions()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!left.contains(&others[0]));
    for s in [&others[1], &others[2], &keeper[0], &keeper[1]] {
        assert!(left.contains(s), "{s} kept");
    }
    let deleted = gw.wait_audit("the deletion is audited", |e| {
        e["action"] == "recording.deleted"
    });
    assert_eq!(deleted["session_id"], others[0].as_str());
    assert_eq!(deleted["outcome"], "success");
    assert_eq!(deleted["target"], "other");
    let db_file = sluice_store::schema::open_existing(&gw.data().join("sluice.db")).unwrap();
    assert!(sluice_store::recordings::events(&db_file, &others[0])
        .unwrap()
        .is_empty());

    // Lifting the identity's hold lets retention delete its expired sessions.
    let holds: Vec<Value> = serde_json::from_str(&gw.cli_ok(&["holds", "list", "--json"])).unwrap();
    let on_keeper = holds.iter().find(|h| h["identity"] == "keeper").unwrap();
    gw.cli_ok(&["holds", "remove", on_keeper["id"].as_str().unwrap()]);
    let run = gw.cli_ok(&["retention", "run"]);
    assert!(run.contains("deleted 2 expired recordings"), "{run}");
    assert!(gw.cli_ok(&["retention", "run"]).contains("deleted 0"));
}

#[test]
fn a_signing_key_from_the_environment_is_used_and_not_rotated_by_the_api() {
    let dir = std::env::temp_dir().join(common::unique("sluice-key"));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("key.pem");
    let status = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&pem)
        .status()
        .unwrap();
    assert!(status.success());
    let pub_hex = {
        let out = std::process::Command::new("openssl")
            .args(["pkey", "-in"])
            .arg(&pem)
            .args(["-pubout", "-outform", "DER"])
            .output()
            .unwrap();
        // The last 32 bytes of the SubjectPublicKeyInfo are the key.
        out.stdout[out.stdout.len() - 32..]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let db = TestDb::new();
    let var = format!("SLUICE_TEST_KEY_{}", std::process::id());
    std::env::set_var(&var, std::fs::read_to_string(&pem).unwrap());
    let gw = Gateway::start(&common::config(
        &db,
        &format!("audit:\n  signing_key_env: {var}\n"),
    ));
    let token = gw.service_account("engineering");
    assert!(gw.psql(&token, "select 1").status.success());
    let s = gw.wait_ended_session("pg");
    assert!(gw
        .cli_ok(&["verify", &s, "--public-key", &pub_hex])
        .contains("ok:"));
    let out = gw.cli(&["signing-keys", "rotate"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("replace it there and restart"));
    assert!(
        !gw.data().join("signing/ed25519.pk8").exists(),
        "no generated key beside it"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn with_fail_closed_a_full_spool_refuses_new_sessions() {
    // A sink that can never deliver, and a spool limit of 0: full from the first event.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let sink = format!(
        "audit:\n  spool_limit: 0\n  fail_closed: {{}}\n  sinks:\n    siem:\n      type: webhook\n      url: http://{dead}/events\n"
    );
    let db = TestDb::new();
    for fail_closed in [false, true] {
        let gw = Gateway::start(&common::config(
            &db,
            &sink.replace("{}", &fail_closed.to_string()),
        ));
        let metrics = wait_for(
            "the spool is reported full",
            Duration::from_secs(20),
            || {
                let m = gw.cli_ok(&["metrics"]);
                m.contains("sluice_audit_spool_full{sink=\"siem\"} 1")
                    .then_some(m)
            },
        );
        assert!(
            metrics.contains("sluice_audit_sink_failures_total{sink=\"siem\"}"),
            "{metrics}"
        );
        assert!(gw.log().contains("AUDIT SPOOL FULL"));
        let token = gw.service_account("engineering");
        let out = gw.psql(&token, "select 1");
        if fail_closed {
            assert!(!out.status.success());
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("audit trail is unavailable"), "{err}");
            gw.wait_audit("the refusal is audited", |e| {
                e["action"] == "auth.connect"
                    && e["outcome"] == "failure"
                    && e["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("audit trail"))
            });
        } else {
            assert!(
                out.status.success(),
                "the data path is not blocked without fail_closed"
            );
        }
    }
}

#[test]
fn with_fail_closed_a_running_session_runs_nothing_unaudited() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(
        &db,
        &format!("audit:\n  spool_limit: 40\n  fail_closed: true\n  sinks:\n    siem:\n      type: webhook\n      url: http://{dead}/events\n"),
    ));
    let token = gw.service_account("engineering");
    let mut psql = gw.psql_session(&token);
    let mut stdin = psql.stdin.take().unwrap();
    stdin.write_all(b"select 'before';\n").unwrap();
    wait_for("the session is recorded", Duration::from_secs(10), || {
        gw.sessions()
            .first()
            .filter(|s| s["end_reason"].is_null())
            .map(|_| ())
    });
    // Fill the spool: every refused API call is an audit event the dead sink cannot take.
    for _ in 0..50 {
        assert!(!gw
            .cli_as("not-a-token", &["sessions", "list"])
            .status
            .success());
    }
    wait_for("the spool is full", Duration::from_secs(20), || {
        gw.cli_ok(&["metrics"])
            .contains("sluice_audit_spool_full{sink=\"siem\"} 1")
            .then_some(())
    });
    stdin.write_all(b"select 'after';\n").unwrap();
    drop(stdin);
    let out = psql.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stdout.contains("before"), "{stdout}");
    assert!(!stdout.contains("after"), "{stdout}");
    assert!(
        stderr.contains("the audit trail is unavailable"),
        "{stderr}"
    );
    let refused = gw.wait_audit("the refusal is in the log", |e| {
        e["action"] == "statement.denied" && e["rule"] == "audit.fail_closed"
    });
    assert_eq!(refused["statement"], "select 'after';");
}
