//! Evidence bundles: `sluice export`, and `sluice verify BUNDLE` offline against a tamper
//! corpus; signing-key rotation keeps old recordings and bundles verifiable.

mod common;

use common::{wait_for, Gateway, TestDb};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

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
    gw.wait_ended_sessions(3);
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
