//! Bad input gets a PostgreSQL-native error and an audit event, and harms no other session.

mod common;

use common::raw::{self, login};
use common::{Gateway, Interactive, TestDb};
use std::io::Write;
use std::time::Duration;

fn refused(gw: &Gateway, connection: &str, token: &str) -> raw::PgError {
    match login(gw.pg, connection, token) {
        Ok(_) => panic!("login to {connection} unexpectedly succeeded"),
        Err(e) => e,
    }
}

#[test]
fn wrong_token_is_28p01_and_audited() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let e = refused(&gw, "pg", "slc_not_a_real_token");
    assert_eq!((e.severity.as_str(), e.code.as_str()), ("FATAL", "28P01"));
    let a = gw.wait_audit("auth failure", |a| {
        a["action"] == "auth.connect" && a["outcome"] == "failure"
    });
    assert_eq!(a["connection"], "pg");
    assert!(a["reason"].as_str().unwrap().contains("unknown token"));
    assert!(
        !gw.log().contains("slc_not_a_real_token"),
        "the presented token is never logged"
    );
    let audit_file = gw.audit_file();
    assert!(!audit_file.contains("slc_not_a_real_token"));
}

#[test]
fn expired_and_revoked_tokens_are_refused() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let name = common::unique("short");
    let short = gw.cli_ok(&[
        "service-accounts",
        "create",
        &name,
        "--groups",
        "engineering",
        "--ttl",
        "1s",
    ]);
    let short = short.trim();
    let e = common::wait_for("the token to expire", Duration::from_secs(10), || {
        login(gw.pg, "pg", short).err()
    });
    assert_eq!(e.code, "28P01");
    assert!(e.message.contains("token expired"), "{}", e.message);

    let token = gw.service_account("engineering");
    assert!(login(gw.pg, "pg", &token).is_ok());
    let tokens: Vec<serde_json::Value> =
        serde_json::from_str(&gw.cli_ok(&["tokens", "list", "--json"])).unwrap();
    let id = tokens
        .iter()
        .find(|t| t["identity"].as_str().unwrap().starts_with("sa_") && t["revoked_us"].is_null())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    gw.cli_ok(&["tokens", "revoke", &id]);
    let e = refused(&gw, "pg", &token);
    assert_eq!(e.code, "28P01");
    assert!(e.message.contains("token revoked"), "{}", e.message);
}

#[test]
fn no_grant_is_42501_and_unknown_connection_is_3d000() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let ops = gw.service_account("ops");
    let e = refused(&gw, "pg", &ops);
    assert_eq!(e.code, "42501");
    assert!(e.message.contains("no grant"), "{}", e.message);
    let eng = gw.service_account("engineering");
    let e = refused(&gw, "no-such-db", &eng);
    assert_eq!(e.code, "3D000");
    assert!(
        e.message.contains("\"no-such-db\" does not exist"),
        "{}",
        e.message
    );
    gw.wait_audit("no-grant audit", |a| {
        a["action"] == "auth.connect"
            && a["reason"].as_str().is_some_and(|r| r.contains("no grant"))
    });
}

#[test]
fn target_down_is_08006_with_the_reason() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let port = common::free_port();
    gw.cli_ok(&[
        "connections",
        "add",
        "down",
        "--type",
        "postgres",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
    ]);
    gw.grant("engineering", "down");
    let token = gw.service_account("engineering");
    let e = refused(&gw, "down", &token);
    assert_eq!(e.code, "08006");
    assert!(e.message.contains("cannot reach target"), "{}", e.message);
    gw.wait_audit("target failure audit", |a| {
        a["action"] == "session.start" && a["outcome"] == "failure" && a["connection"] == "down"
    });
    // The gateway still serves the healthy connection.
    assert!(login(gw.pg, "pg", &token).is_ok());
}

#[test]
fn malformed_startup_and_garbage_after_startup_leave_other_sessions_unharmed() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let token = gw.service_account("engineering");
    let mut held = Interactive::spawn("hold", &[("DSN", gw.dsn("pg", &token, "require"))]);
    assert_eq!(held.next()["ready"], true);

    // 1. A startup packet with an absurd length.
    let mut s = raw::connect(gw.pg);
    s.write_all(&[0x7f, 0xff, 0xff, 0xff, 1, 2, 3, 4]).unwrap();
    let e = raw::read_error(&mut s).expect("an error response");
    assert_eq!(e.code, "08P01");
    assert!(raw::closed(&mut s));

    // 2. A well-framed startup with an unknown protocol version.
    let mut s = raw::connect(gw.pg);
    s.write_all(&[0, 0, 0, 8, 0, 9, 0, 0]).unwrap();
    assert_eq!(
        raw::read_error(&mut s).expect("an error response").code,
        "08P01"
    );

    // 3. Garbage after a successful startup.
    let mut s = login(gw.pg, "pg", &token).expect("login");
    s.write_all(b"\x01\x02garbage that is not a message")
        .unwrap();
    let e = raw::read_error(&mut s).expect("an error response");
    assert_eq!((e.severity.as_str(), e.code.as_str()), ("FATAL", "08P01"));
    assert!(raw::closed(&mut s));

    gw.wait_audit("malformed-startup audit", |a| {
        a["action"] == "auth.connect"
            && a["reason"]
                .as_str()
                .is_some_and(|r| r.contains("malformed startup"))
    });
    let ended = common::wait_for(
        "the garbage session to be recorded as ended",
        Duration::from_secs(10),
        || {
            gw.sessions()
                .into_iter()
                .find(|s| s["end_reason"] == "client_protocol_error")
        },
    );
    let events = gw.events(ended["id"].as_str().unwrap());
    assert_eq!(events.last().unwrap()["reason"], "client_protocol_error");

    held.send("go");
    assert_eq!(held.next()["after"], 2, "the other session kept working");
}

#[test]
fn invalid_config_is_refused_with_file_and_line() {
    let dir = std::env::temp_dir().join(common::unique("badcfg"));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("bad.yaml");
    std::fs::write(
        &cfg,
        "listeners:\n  postgres:\n    address: 127.0.0.1:0\n    alow_plaintext: true\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["gateway", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml"), "{err}");
    assert!(err.contains("line 4"), "{err}");
    assert!(err.contains("alow_plaintext"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_bad_worker_count_is_refused_before_anything_starts() {
    let dir = std::env::temp_dir().join(common::unique("badworkers"));
    let out = std::process::Command::new(common::bin())
        .args(["gateway", "--data-dir"])
        .arg(dir.join("data"))
        .env("SLUICE_WORKER_THREADS", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SLUICE_WORKER_THREADS must be a positive number"),
        "{err}"
    );
    assert!(!dir.join("data").exists(), "nothing was created");
    let _ = std::fs::remove_dir_all(dir);
}
