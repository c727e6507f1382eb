//! The audit trail: event schema, evidence bundles and their offline verification (tamper
//! corpus), retention with legal holds, signing-key rotation and keys from the environment,
//! and `audit.fail_closed`.

mod common;

use common::{wait_for, Gateway, TestDb};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// The audit log as stored, oldest first (read from the gateway's database).
fn audit_log(gw: &Gateway) -> Vec<Value> {
    gw.cli_ok(&["sessions", "list", "--json"]); // commits everything recorded so far
    let db = sluice_store::schema::open_existing(&gw.data().join("sluice.db")).unwrap();
    sluice_store::audit_log::after(&db, 0, 1_000_000)
        .unwrap()
        .into_iter()
        .map(|e| serde_json::from_str(&e.json).unwrap())
        .collect()
}

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
            let l = audit_log(&gw);
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

/// The files of a bundle.
fn unpack(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut archive =
        tar::Archive::new(zstd::Decoder::new(std::fs::File::open(path).unwrap()).unwrap());
    let mut files = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        files.insert(name, data);
    }
    files
}

fn pack(files: &BTreeMap<String, Vec<u8>>, path: &Path) {
    let enc = zstd::Encoder::new(std::fs::File::create(path).unwrap(), 1)
        .unwrap()
        .auto_finish();
    let mut tar = tar::Builder::new(enc);
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_cksum();
        tar.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    tar.into_inner().unwrap().flush().unwrap();
}

fn lines(files: &BTreeMap<String, Vec<u8>>, name: &str) -> Vec<String> {
    String::from_utf8(files[name].clone())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn set_lines(files: &mut BTreeMap<String, Vec<u8>>, name: &str, l: &[String]) {
    files.insert(name.to_string(), (l.join("\n") + "\n").into_bytes());
}

/// `sluice verify BUNDLE` offline (no gateway address or token); (success, output).
fn verify_bundle(path: &Path, public_key: Option<&Path>) -> (bool, String) {
    let mut cmd = std::process::Command::new(common::bin());
    cmd.arg("verify")
        .arg(path)
        .env_remove("SLUICE_TOKEN")
        .env("SLUICE_ADDR", "https://127.0.0.1:9");
    if let Some(k) = public_key {
        cmd.arg("--public-key").arg(k);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn an_evidence_bundle_verifies_offline_and_every_tampering_is_named() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let token = gw.named_service_account("exported", "engineering");
    for i in 0..3 {
        assert!(gw.psql(&token, &format!("select {i}")).status.success());
    }
    wait_for("three ended sessions", Duration::from_secs(10), || {
        (gw.sessions()
            .iter()
            .filter(|s| s["end_reason"].is_string())
            .count()
            == 3)
            .then_some(())
    });
    let bundle = gw.dir.join("evidence.tar.zst");
    let out = gw.cli_ok(&["export", "--since", "1h", "--out", bundle.to_str().unwrap()]);
    assert!(out.contains("3 sessions"), "{out}");
    let key = gw.data().join("signing/ed25519.pub");
    let (ok, text) = verify_bundle(&bundle, Some(&key));
    assert!(ok && text.contains("ok: 3 sessions"), "{text}");
    let (ok, text) = verify_bundle(&bundle, None);
    assert!(ok && text.contains("pass --public-key"), "{text}");
    // Only this identity's sessions; the audit segment is whole either way.
    let other = gw.dir.join("other.tar.zst");
    gw.cli_ok(&[
        "export",
        "--identity",
        "nobody",
        "--out",
        other.to_str().unwrap(),
    ]);
    let (ok, text) = verify_bundle(&other, Some(&key));
    assert!(ok && text.contains("ok: 0 sessions"), "{text}");

    let original = unpack(&bundle);
    let session = original
        .keys()
        .find_map(|k| k.strip_prefix("sessions/")?.strip_suffix("/events.jsonl"))
        .unwrap()
        .to_string();
    let events = format!("sessions/{session}/events.jsonl");
    let row = format!("sessions/{session}/session.json");
    let tampered = gw.dir.join("tampered.tar.zst");
    let expect = |what: &str, files: BTreeMap<String, Vec<u8>>, needle: &str| {
        pack(&files, &tampered);
        let (ok, text) = verify_bundle(&tampered, Some(&key));
        assert!(!ok, "{what}: verify must fail: {text}");
        assert!(
            text.contains(needle),
            "{what}: expected {needle:?} in: {text}"
        );
    };
    let audit_lines = lines(&original, "audit/events.jsonl");
    assert!(audit_lines.len() > 8);

    // The audit log.
    let mut f = original.clone();
    let mut l = audit_lines.clone();
    l[3] = l[3].replacen("success", "failure", 1);
    set_lines(&mut f, "audit/events.jsonl", &l);
    expect(
        "flip a byte in an audit event",
        f,
        "audit event 4 does not match the chain",
    );

    let mut f = original.clone();
    let mut l = audit_lines.clone();
    l.remove(4);
    set_lines(&mut f, "audit/events.jsonl", &l);
    expect("delete an audit event", f, "audit event 5 is missing");

    let mut f = original.clone();
    let mut l = audit_lines.clone();
    l.swap(2, 3);
    set_lines(&mut f, "audit/events.jsonl", &l);
    expect("swap two audit events", f, "appears where event 3 belongs");

    let mut f = original.clone();
    let mut l = audit_lines.clone();
    let mut forged: Value = serde_json::from_str(&l[2]).unwrap();
    forged["json"] = Value::String(
        forged["json"]
            .as_str()
            .unwrap()
            .replace("exported", "someone-else"),
    );
    l.insert(3, forged.to_string());
    set_lines(&mut f, "audit/events.jsonl", &l);
    expect(
        "insert an audit event",
        f,
        "audit event 3 appears where event 4 belongs",
    );

    let mut f = original.clone();
    let l = audit_lines[..audit_lines.len() - 2].to_vec();
    set_lines(&mut f, "audit/events.jsonl", &l);
    expect("truncate the audit log", f, "the tail was cut off");

    let mut f = original.clone();
    let mut cps = lines(&original, "audit/checkpoints.jsonl");
    let mut c: Value = serde_json::from_str(cps.last().unwrap()).unwrap();
    c["last_seq"] = Value::from(c["last_seq"].as_u64().unwrap() - 1);
    *cps.last_mut().unwrap() = c.to_string();
    set_lines(&mut f, "audit/checkpoints.jsonl", &cps);
    expect("replace a checkpoint", f, "checkpoints removed or replaced");

    // The recordings.
    let rec = lines(&original, &events);
    let mut f = original.clone();
    let mut l = rec.clone();
    l[1] = l[1].replacen("select", "delete", 1);
    set_lines(&mut f, &events, &l);
    expect(
        "flip a byte in a recording",
        f,
        &format!("session {session}: event 1 does not match its hash"),
    );

    let mut f = original.clone();
    let mut l = rec.clone();
    l.remove(1);
    set_lines(&mut f, &events, &l);
    expect(
        "delete a recorded event",
        f,
        &format!("session {session}: event 2 is out of sequence"),
    );

    let mut f = original.clone();
    let mut l = rec.clone();
    l.swap(1, 2);
    set_lines(&mut f, &events, &l);
    expect(
        "swap recorded events",
        f,
        &format!("session {session}: event 2 is out of sequence"),
    );

    let mut f = original.clone();
    let l = rec[..rec.len() - 1].to_vec();
    set_lines(&mut f, &events, &l);
    expect("truncate a recording", f, "events after #");

    let mut f = original.clone();
    let mut s: Value = serde_json::from_slice(&original[&row]).unwrap();
    s["identity"] = Value::String("someone-else".into());
    f.insert(row.clone(), serde_json::to_vec(&s).unwrap());
    expect(
        "replace a manifest",
        f,
        "the manifest signature does not verify",
    );

    let mut f = original.clone();
    f.remove(&events);
    f.remove(&row);
    let mut m: Value = serde_json::from_slice(&original["bundle.json"]).unwrap();
    m["sessions"] = Value::Array(
        m["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| *v != session.as_str())
            .cloned()
            .collect(),
    );
    f.insert("bundle.json".into(), serde_json::to_vec(&m).unwrap());
    expect(
        "remove a session from the bundle",
        f,
        "bundle.json is not signed by a trusted key",
    );

    // The listing is signed: narrowing the selection to hide sessions is caught.
    let mut f = original.clone();
    let mut m: Value = serde_json::from_slice(&original["bundle.json"]).unwrap();
    m["selection"]["identity"] = Value::String("nobody".into());
    f.insert("bundle.json".into(), serde_json::to_vec(&m).unwrap());
    expect(
        "narrow the selection",
        f,
        "bundle.json is not signed by a trusted key",
    );

    // The audit range cannot be moved or shortened: drop the last checkpoint and its events.
    let mut f = original.clone();
    let cps = lines(&original, "audit/checkpoints.jsonl");
    set_lines(&mut f, "audit/checkpoints.jsonl", &cps[..cps.len() - 1]);
    expect(
        "drop the last checkpoint",
        f,
        "does not end at the checkpoint bundle.json names",
    );
    let mut f = original.clone();
    f.insert(
        "audit/anchor.json".into(),
        cps.last().unwrap().clone().into_bytes(),
    );
    expect(
        "move the anchor",
        f,
        "audit/anchor.json is not the checkpoint bundle.json names",
    );

    // A recording rewritten and passed off as still live (unsigned).
    let mut f = original.clone();
    let mut s: Value = serde_json::from_slice(&original[&row]).unwrap();
    for field in [
        "ended_us",
        "manifest_sig",
        "manifest_key",
        "final_hash",
        "event_count",
    ] {
        s[field] = Value::Null;
    }
    f.insert(row.clone(), serde_json::to_vec(&s).unwrap());
    let mut prev = sluice_store::chain::genesis(&session);
    let mut forged = Vec::new();
    for line in rec.iter().take(2) {
        let v: Value = serde_json::from_str(line).unwrap();
        let at = line.find("\"event\":").unwrap();
        let data = line[at + 8..line.len() - 1].replace("select ", "select 9");
        let (seq, ts) = (v["seq"].as_u64().unwrap(), v["ts_us"].as_i64().unwrap());
        let kind = v["event"]["kind"].as_str().unwrap().to_string();
        prev = sluice_store::chain::link(&prev, seq, ts, &kind, &data);
        forged.push(format!(
            "{{\"session_id\":\"{session}\",\"seq\":{seq},\"ts_us\":{ts},\"hash\":\"{}\",\"event\":{data}}}",
            sluice_store::crypto::hex(&prev)
        ));
    }
    set_lines(&mut f, &events, &forged);
    expect(
        "a rewritten recording posing as live",
        f,
        "is presented as live (unsigned), but the audit log shows it ended",
    );

    // Re-signed with another key: an attacker's own key is not the one the auditor holds.
    let other_gw = Gateway::start(&common::config(&db, ""));
    let theirs = other_gw.data().join("signing/ed25519.pub");
    let (ok, text) = verify_bundle(&bundle, Some(&theirs));
    assert!(!ok, "{text}");
    assert!(
        text.contains("bundle.json is not signed by a trusted key"),
        "{text}"
    );

    // Untouched, it still verifies.
    assert!(verify_bundle(&bundle, Some(&key)).0);
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
    let sessions = wait_for("five ended sessions", Duration::from_secs(10), || {
        let s: Vec<Value> = gw
            .sessions()
            .into_iter()
            .filter(|s| s["end_reason"].is_string())
            .collect();
        (s.len() == 5).then_some(s)
    });
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
fn a_rotated_key_keeps_old_recordings_verifiable() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let token = gw.service_account("engineering");
    assert!(gw.psql(&token, "select 'before'").status.success());
    let first = gw.wait_ended_session("pg");
    let old_key = std::fs::read_to_string(gw.data().join("signing/ed25519.pub")).unwrap();
    let out = gw.cli_ok(&["signing-keys", "rotate"]);
    assert!(out.contains("now signing with key"), "{out}");
    let new_key = std::fs::read_to_string(gw.data().join("signing/ed25519.pub")).unwrap();
    assert_ne!(old_key, new_key);
    assert!(gw.psql(&token, "select 'after'").status.success());
    let second = wait_for("second session", Duration::from_secs(10), || {
        gw.sessions()
            .into_iter()
            .find(|s| s["id"] != first.as_str() && s["end_reason"].is_string())
            .map(|s| s["id"].as_str().unwrap().to_string())
    });
    assert!(gw
        .cli_ok(&["verify", &first, "--public-key", old_key.trim()])
        .contains("ok:"));
    assert!(gw
        .cli_ok(&["verify", &second, "--public-key", new_key.trim()])
        .contains("ok:"));
    assert!(!gw
        .cli(&["verify", &first, "--public-key", new_key.trim()])
        .status
        .success());
    assert_eq!(gw.cli_ok(&["signing-keys", "list"]).lines().count(), 2);
    // A bundle spanning the rotation verifies with the keys it carries.
    let bundle = gw.dir.join("b.tar.zst");
    gw.cli_ok(&["export", "--out", bundle.to_str().unwrap()]);
    let (ok, text) = verify_bundle(&bundle, None);
    assert!(ok, "{text}");
    // With every key the gateway has used (all.pub), but not with the newest key alone.
    let all = gw.data().join("signing/all.pub");
    assert_eq!(std::fs::read_to_string(&all).unwrap().lines().count(), 2);
    let (ok, text) = verify_bundle(&bundle, Some(&all));
    assert!(ok, "{text}");
    let newest = gw.data().join("signing/ed25519.pub");
    assert!(!verify_bundle(&bundle, Some(&newest)).0);
    gw.wait_audit("rotation audited", |e| {
        e["action"] == "signing.rotate" && e["outcome"] == "success"
    });
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
