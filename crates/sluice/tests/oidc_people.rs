//! People sign in with `sluice login --device` at a real OpenID Provider (npm
//! `oidc-provider`; the person's part is played over HTTP by tests/oidc/approve_device.mjs).
//! The gateway trades the ID token for its own session token, stored 0600 and used by later
//! commands and as the psql password; group changes count at the next login; logout revokes.

mod common;

use common::oidc::{Provider, AUDIENCE};
use common::{Gateway, TestDb};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn start(op: &Provider) -> (TestDb, Gateway) {
    let db = TestDb::new();
    let extra = format!(
        "identity_providers:\n  - name: corp\n    issuer: {}\n    audience: {AUDIENCE}\n    login:\n      client_id: sluice-cli\n      scopes: [openid, profile, offline_access]\n",
        op.issuer
    );
    let gw = Gateway::start(&common::config(&db, &extra));
    (db, gw)
}

/// The CLI as a person: no SLUICE_TOKEN, a private config dir and home, a cwd without
/// sluice-data.
fn cli(gw: &Gateway, config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(common::bin());
    c.args(args)
        .current_dir(config)
        .env_remove("SLUICE_TOKEN")
        .env("SLUICE_CONFIG_DIR", config)
        .env("HOME", config)
        .env("SLUICE_ADDR", format!("https://{}", gw.api))
        .env("SLUICE_CA", gw.data().join("tls/ca.pem"));
    c
}

/// Runs `sluice login --device` as `user`; returns the stored token.
fn login(gw: &Gateway, op: &Provider, config: &Path, user: &str) -> String {
    login_with(gw, config, user, &["login", "--device", "--fresh"], |url| {
        op.approve_device(url, user)
    })
}

/// Runs `sluice login` expecting it to renew the session with the stored refresh token,
/// without any sign-in; returns the new token.
fn refresh_login(gw: &Gateway, config: &Path, user: &str) -> String {
    let mut child = cli(gw, config, &["login", "--no-browser"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    if !first.starts_with("refreshed the session") {
        let _ = child.kill();
        panic!("expected a refresh, got {first:?}");
    }
    let done = lines.next().unwrap().unwrap();
    assert!(child.wait().unwrap().success());
    assert!(done.starts_with(&format!("logged in as {user}")), "{done}");
    std::fs::read_to_string(config.join("token"))
        .unwrap()
        .trim()
        .to_string()
}

/// Runs `sluice login` (browser flow) as `user` in headless Chromium; returns the token.
fn browser_login(gw: &Gateway, op: &Provider, config: &Path, user: &str) -> String {
    login_with(gw, config, user, &["login", "--no-browser"], |url| {
        op.browser_login(url, user)
    })
}

fn login_with(
    gw: &Gateway,
    config: &Path,
    user: &str,
    args: &[&str],
    person: impl FnOnce(&str),
) -> String {
    let mut child = cli(gw, config, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let prompt = lines.next().unwrap().unwrap();
    let url = prompt
        .split_whitespace()
        .find(|w| w.starts_with("http"))
        .unwrap_or_else(|| panic!("no URL in {prompt:?}"))
        .to_string();
    person(&url);
    let done = lines.next().unwrap().unwrap();
    assert!(child.wait().unwrap().success(), "login failed");
    assert!(done.starts_with(&format!("logged in as {user}")), "{done}");
    let file = config.join("token");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the session token file is private");
    std::fs::read_to_string(file).unwrap().trim().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn config_dir() -> PathBuf {
    let d = std::env::temp_dir().join(common::unique("sluice-home"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_person_logs_in_with_the_device_flow_and_groups_count_at_the_next_login() {
    let op = Provider::start();
    let (_db, gw) = start(&op);
    let home = config_dir();
    // alice has an SSH key: the login gets her a certificate for it too.
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(home.join(".ssh/id_ed25519"))
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{}", stderr(&keygen));

    let token = login(&gw, &op, &home, "alice");
    let cert = Command::new("ssh-keygen")
        .arg("-Lf")
        .arg(home.join(".ssh/id_ed25519-cert.pub"))
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&cert.stdout);
    assert!(cert.status.success(), "{}", stderr(&cert));
    assert!(shown.contains("Key ID: \"alice\""), "{shown}");
    assert!(
        shown.contains("Type: ssh-ed25519-cert-v01@openssh.com user certificate"),
        "{shown}"
    );
    gw.wait_audit("ssh.certificate.issue", |e| {
        e["action"] == "ssh.certificate.issue" && e["actor"]["name"] == "alice"
    });
    let ok = gw.psql(&token, "select 'signed-in'");
    assert!(ok.status.success(), "{}", stderr(&ok));
    let identity = gw.recorded_identity("pg");
    assert_eq!(identity["name"], "alice");
    assert_eq!(identity["kind"], "user");
    assert_eq!(identity["subject"], "alice");
    assert_eq!(identity["groups"], json!(["engineering"]));
    gw.wait_audit("auth.login", |e| {
        e["action"] == "auth.login" && e["actor"]["name"] == "alice"
    });

    // Later commands use the stored token.
    let mine = cli(&gw, &home, &["reviews", "list", "--json"])
        .output()
        .unwrap();
    assert!(mine.status.success(), "{}", stderr(&mine));

    // Removed from the group at the provider: the grant is gone at the next login.
    op.set_groups("alice", &[]);
    let token2 = login(&gw, &op, &home, "alice");
    let refused = gw.psql(&token2, "select 1");
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("has no grant"),
        "{}",
        stderr(&refused)
    );

    // Logout revokes the session token at the gateway and deletes it.
    let out = cli(&gw, &home, &["logout"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!home.join("token").exists());
    let revoked = gw.psql(&token2, "select 1");
    assert!(
        stderr(&revoked).contains("token revoked"),
        "{}",
        stderr(&revoked)
    );
    // Revoked everywhere: the REST API refuses it too.
    let api = gw.cli_as(&token2, &["reviews", "list"]);
    assert!(!api.status.success());
    assert!(stderr(&api).contains("token revoked"), "{}", stderr(&api));
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn a_person_logs_in_in_a_browser_with_pkce_and_a_refresh_renews_the_session() {
    let op = Provider::start();
    let (_db, gw) = start(&op);
    let home = config_dir();
    let token = browser_login(&gw, &op, &home, "bob");
    // bob is in `security`, which has no grant on pg: signed in, but refused there.
    let refused = gw.psql(&token, "select 1");
    assert!(
        stderr(&refused).contains("has no grant"),
        "{}",
        stderr(&refused)
    );
    // Renewed with the refresh token, no browser: the new groups count.
    op.set_groups("bob", &["engineering"]);
    let mode = std::fs::metadata(home.join("refresh"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the refresh token file is private");
    let token = refresh_login(&gw, &home, "bob");
    let ok = gw.psql(&token, "select 'browser'");
    assert!(ok.status.success(), "{}", stderr(&ok));
    let identity = gw.recorded_identity("pg");
    assert_eq!(identity["name"], "bob");
    assert_eq!(identity["kind"], "user");
    assert_eq!(identity["issuer"], op.issuer.as_str());
    // Logout revokes the refresh token at the provider and forgets it.
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("refresh")).unwrap()).unwrap();
    let out = cli(&gw, &home, &["logout"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!home.join("refresh").exists() && !home.join("token").exists());
    assert!(
        !op.refresh_works(saved["refresh_token"].as_str().unwrap(), "sluice-cli"),
        "the refresh token still works at the provider"
    );
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn an_id_token_is_not_a_database_password() {
    let op = Provider::start();
    let (_db, gw) = start(&op);
    // An ID token is for the CLI (aud = its client id), not for the gateway's audience.
    let id_token = op.sign(
        json!({ "sub": "alice", "preferred_username": "alice", "aud": "sluice-cli", "groups": ["engineering"] }),
        Value::Null,
        "current",
    );
    let out = gw.psql(&id_token, "select 1");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("token audience is not this gateway"),
        "{}",
        stderr(&out)
    );
}
