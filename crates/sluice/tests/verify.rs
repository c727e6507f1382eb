//! Tamper evidence: a recorded session verifies with the gateway's public key only, and every
//! kind of tampering with the store (an edited, removed, swapped or inserted event, a cut tail,
//! a rewritten manifest, a signature from another key) makes `sluice verify` fail and name the
//! place; restored, it verifies again.

mod common;

use common::{Gateway, TestDb};
use std::path::Path;
use std::process::Command;

fn tamper(gw: &Gateway, session: &str, op: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/tamper.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(gw.data().join("sluice.db"))
        .arg(session)
        .args(op)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tamper {op:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn verify(gw: &Gateway, session: &str) -> (bool, String) {
    let out = gw.cli(&["verify", session]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn recorded_session(gw: &Gateway) -> String {
    let token = gw.service_account("engineering");
    let out = gw.psql(&token, "select 1; select 2; select 3;");
    assert!(out.status.success());
    gw.wait_ended_session("pg")
}

#[test]
fn every_tampering_is_detected_and_named() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let s = recorded_session(&gw);
    let (ok, text) = verify(&gw, &s);
    assert!(ok, "{text}");
    assert!(
        text.contains("ok:") && text.contains("manifest signed by key"),
        "{text}"
    );
    // Events: 0 start, 1 query (psql sends the three selects as one), then results, end.
    let cases: &[(&[&str], &str)] = &[
        (&["flip", "1"], "event 1 does not match its hash"),
        (&["delete", "1"], "event 2 is out of sequence"),
        (&["swap", "1"], "event 2 is out of sequence"),
        (&["insert", "1"], "event 1 is out of sequence"),
        (&["truncate"], "are missing"),
    ];
    for (op, expected) in cases {
        tamper(&gw, &s, op);
        let (ok, text) = verify(&gw, &s);
        assert!(!ok, "{op:?} went unnoticed: {text}");
        assert!(text.contains(expected), "{op:?}: {text}");
        tamper(&gw, &s, &["restore"]);
        let (ok, text) = verify(&gw, &s);
        assert!(ok, "restored after {op:?}: {text}");
    }
    // Cutting the tail and rewriting the manifest to match breaks the signature.
    tamper(&gw, &s, &["truncate"]);
    tamper(&gw, &s, &["manifest"]);
    let (ok, text) = verify(&gw, &s);
    assert!(!ok, "{text}");
    assert!(
        text.contains("manifest signature does not verify"),
        "{text}"
    );
    tamper(&gw, &s, &["restore"]);

    // A manifest signed by another gateway's key (not one this gateway published).
    let other_db = TestDb::new();
    let other = Gateway::start(&common::config(&other_db, ""));
    let o = recorded_session(&other);
    let row: Vec<serde_json::Value> =
        serde_json::from_str(&other.cli_ok(&["sessions", "list", "--json"])).unwrap();
    let theirs = row.iter().find(|r| r["id"] == o.as_str()).unwrap();
    tamper(
        &gw,
        &s,
        &[
            "sig",
            theirs["manifest_sig"].as_str().unwrap(),
            theirs["manifest_key"].as_str().unwrap(),
        ],
    );
    let (ok, text) = verify(&gw, &s);
    assert!(!ok, "{text}");
    assert!(text.contains("which is not a trusted key"), "{text}");
    tamper(&gw, &s, &["restore"]);
    assert!(verify(&gw, &s).0);

    // Checked against another gateway's key, even an intact recording fails.
    let theirs = other.data().join("signing/ed25519.pub");
    let out = gw.cli(&["verify", &s, "--public-key", theirs.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("which is not a trusted key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
