//! The web console in a real browser: a person signs in through the identity provider
//! (headless Chromium, the npm `oidc-provider`), lands on the console, and the console's
//! cookie authenticates the API for the gateway's own pages only.

mod common;

use common::oidc::Provider;
use common::Gateway;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn gateway(op: &Provider) -> Gateway {
    Gateway::start(&format!(
        "listeners:\n  postgres:\n    address: 127.0.0.1:0\n  api:\n    address: 127.0.0.1:0\n\
         roles:\n  auditor: [engineering]\n\
         identity_providers:\n  - name: corp\n    issuer: {}\n    audience: urn:sluice:gateway\n    login:\n      client_id: sluice-cli\n      scopes: [openid, profile]\n",
        op.issuer
    ))
}

/// A database with table `t` holding `rows`, and a gateway whose connection `pg` to it holds
/// every DELETE for a review by `security`, with `extra` config and the provider's sign-in.
fn held_deletes(op: &Provider, extra: &str, rows: &str) -> (common::TestDb, Gateway) {
    let db = common::TestDb::new();
    let made = common::psql_direct(
        &db.name,
        &format!("create table t (id int); insert into t values {rows}"),
    );
    assert!(made.status.success());
    let policy = "guardrails:\n  approvers: [security]\n  rules:\n    - name: review-deletes\n      action: review\n      match: { statements: [delete] }\n";
    let config = format!(
        "{extra}identity_providers:\n  - name: corp\n    issuer: {}\n    audience: urn:sluice:gateway\n    login:\n      client_id: sluice-cli\n      scopes: [openid, profile]\n",
        op.issuer
    );
    let gw = Gateway::start(&common::config_with_policy(&db, policy, &config));
    (db, gw)
}

/// `curl` with `args` against the gateway: status and body.
fn curl(gw: &Gateway, args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "-w",
            "\n%{http_code}",
            "--cacert",
        ])
        .arg(gw.data().join("tls/ca.pem"))
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.parse().unwrap_or(0), body.to_string())
}

#[test]
fn a_person_signs_in_to_the_console_and_its_cookie_serves_only_its_pages() {
    let op = Provider::start();
    let gw = gateway(&op);
    let base = format!("https://127.0.0.1:{}", gw.api.port());
    let home = format!("{base}/console/");
    let out = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc/web_login.mjs"))
        .args([home.as_str(), "alice", &format!("{base}/api/v1/whoami")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    for visit in ["first", "second"] {
        let page = seen[visit].as_str().unwrap();
        assert!(page.contains("alice"), "{visit}: {page}");
        assert!(page.contains("auditor, user"), "{visit}: {page}");
    }
    // The API answers the console's cookie for reads.
    let whoami: Value = serde_json::from_str(seen["again"].as_str().unwrap()).unwrap();
    assert_eq!(whoami["name"], "alice");
    assert_eq!(whoami["roles"], serde_json::json!(["auditor", "user"]));
    let cookie = seen["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "sluice_console")
        .expect("the console's cookie")
        .clone();
    // Path `/`: the console's pages call the API with it.
    assert_eq!(cookie["path"], "/");
    assert_eq!(cookie["secure"], true);
    assert_eq!(cookie["httpOnly"], true);
    gw.wait_audit("the console sign-in", |e| {
        e["action"] == "auth.login" && e["actor"]["name"] == "alice"
    });
}

#[test]
fn the_console_cookie_changes_nothing_from_another_site() {
    let op = Provider::start();
    let gw = gateway(&op);
    // A gateway token as the console's cookie, as a browser would hold it.
    let token = gw.service_account("admin");
    let cookie = format!("Cookie: sluice_console={token}");
    let kill = format!("https://{}/api/v1/sessions/nope/kill", gw.api);
    // From another site (or with no origin at all): refused before anything happens.
    for origin in ["Origin: https://evil.example", "X-No-Origin: 1"] {
        let (status, body) = curl(&gw, &["-X", "POST", "-H", &cookie, "-H", origin, &kill]);
        assert_eq!(status, 403, "{origin}: {body}");
        assert!(body.contains("another site"), "{body}");
    }
    // From the gateway's own pages: the call goes through (no such session).
    let own = format!("Origin: https://{}", gw.api);
    let (status, body) = curl(&gw, &["-X", "POST", "-H", &cookie, "-H", &own, &kill]);
    assert_eq!(status, 404, "{body}");
    let (status, _) = curl(
        &gw,
        &[
            "-X",
            "POST",
            "-H",
            &cookie,
            "-H",
            "Sec-Fetch-Site: same-origin",
            &kill,
        ],
    );
    assert_eq!(status, 404);
    // The console's own forms refuse other sites the same way.
    let decide = format!("https://{}/console/reviews/rv-x/decide", gw.api);
    let evil = [
        "-X",
        "POST",
        "-H",
        &cookie,
        "-H",
        "Origin: https://evil.example",
    ];
    let (status, _) = curl(
        &gw,
        &[&evil[..], &["-d", "decision=approve", &decide]].concat(),
    );
    assert_eq!(status, 403);
    // Reads need no origin; the pages need a sign-in.
    let (status, _) = curl(
        &gw,
        &["-H", &cookie, &format!("https://{}/api/v1/whoami", gw.api)],
    );
    assert_eq!(status, 200);
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            "--cacert",
        ])
        .arg(gw.data().join("tls/ca.pem"))
        .arg(format!("https://{}/console/", gw.api))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("302 ") && text.contains("/console/.sluice/login"),
        "{text}"
    );
    // The console's pages allow no inline script or style.
    let out = Command::new("curl")
        .args([
            "-sS",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            &cookie,
            "--cacert",
        ])
        .arg(gw.data().join("tls/ca.pem"))
        .arg(format!("https://{}/console/", gw.api))
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(
        headers.contains("content-security-policy: default-src 'self'"),
        "{headers}"
    );
    assert!(!headers.contains("unsafe-inline"), "{headers}");
}

#[test]
fn an_approver_approves_a_held_delete_in_the_console_and_psql_completes() {
    let op = Provider::start();
    let (db, gw) = held_deletes(&op, "", "(1), (2)");
    let alice = gw.named_service_account("alice", "engineering");
    let psql = Command::new("psql")
        .args([
            "-X",
            "-tA",
            &gw.dsn("pg", &alice, "require"),
            "-c",
            "DELETE FROM t WHERE id = 1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let held = gw.pending_review(&gw.admin_token);
    assert_eq!(held["statement"], "DELETE FROM t WHERE id = 1");

    // Bob (security, at the provider) approves in the browser.
    // Screenshots stay as the run's artifacts (target/tmp/console-shots).
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-shots");
    std::fs::create_dir_all(&shots).unwrap();
    let inbox = format!("https://127.0.0.1:{}/console/reviews", gw.api.port());
    let out = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc/console_review.mjs"))
        .args([inbox.as_str(), "bob", "DELETE FROM t WHERE id = 1"])
        .arg(&shots)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        seen["before"].as_str().unwrap().contains("review-deletes"),
        "{seen}"
    );
    let after = seen["after"].as_str().unwrap();
    assert!(after.contains("is approved"), "{after}");
    assert!(after.contains("No review is waiting"), "{after}");
    assert!(shots.join("console-reviews.png").exists());

    let done = psql.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let left = common::psql_direct(&db.name, "select count(*) from t");
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "1");
    let review: Value = serde_json::from_str(&gw.cli_ok(&[
        "reviews",
        "show",
        held["id"].as_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(review["status"], "approved");
    assert_eq!(
        review["approvals"][0]["reason"],
        "checked the change ticket"
    );
}

#[test]
fn an_auditor_sees_the_inbox_but_cannot_decide() {
    let op = Provider::start();
    // Alice (engineering at the provider) is an auditor here.
    let (_db, gw) = held_deletes(&op, "roles:\n  auditor: [engineering]\n", "(1)");
    let dave = gw.named_service_account("dave", "engineering");
    let mut psql = Command::new("psql")
        .args([
            "-X",
            "-tA",
            &gw.dsn("pg", &dave, "require"),
            "-c",
            "DELETE FROM t",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let held = gw.pending_review(&gw.admin_token);
    let inbox = format!("https://127.0.0.1:{}/console/reviews", gw.api.port());
    let out = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc/web_login.mjs"))
        .args([inbox.as_str(), "alice"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    let page = seen["first"].as_str().unwrap();
    // The auditor reads the review, with no Approve or Deny button.
    assert!(page.contains("DELETE FROM t"), "{page}");
    assert!(page.contains("security"), "{page}");
    assert!(
        !page.contains("Approve") && !page.contains("Deny"),
        "{page}"
    );
    // The API refuses an auditor's decision too.
    let auditor = gw.named_service_account("erin", "engineering");
    let (status, body) = curl(
        &gw,
        &[
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {auditor}"),
            &format!(
                "https://{}/api/v1/reviews/{}/approve",
                gw.api,
                held["id"].as_str().unwrap()
            ),
        ],
    );
    assert_eq!(status, 403, "{body}");
    let _ = psql.kill();
    let _ = psql.wait();
}

#[test]
fn a_user_sees_its_own_sessions_and_none_of_the_operators_pages() {
    let db = common::TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let frank = gw.named_service_account("frank", "engineering");
    let gina = gw.named_service_account("gina", "engineering");
    for token in [&frank, &gina] {
        assert!(gw.psql(token, "select 1").status.success());
    }
    let sessions = gw.wait_ended_sessions(2);
    let id_of = |who: &str| {
        sessions
            .iter()
            .find(|s| s["identity"] == who)
            .and_then(|s| s["id"].as_str())
            .unwrap()
            .to_string()
    };
    let cookie = format!("Cookie: sluice_console={frank}");
    let page = |path: &str| curl(&gw, &["-H", &cookie, &format!("https://{}{path}", gw.api)]);
    let (status, list) = page("/console/sessions");
    assert_eq!(status, 200);
    assert!(list.contains(&id_of("frank")), "{list}");
    assert!(!list.contains(&id_of("gina")), "{list}");
    assert!(
        !list.contains("Audit log"),
        "no operator navigation: {list}"
    );
    // Someone else's session is not there for him; his own is.
    let (status, _) = page(&format!("/console/sessions/{}", id_of("gina")));
    assert_eq!(status, 404);
    let (status, own) = page(&format!("/console/sessions/{}", id_of("frank")));
    assert_eq!(status, 200);
    assert!(own.contains("select 1"), "{own}");
    for operators in [
        "/console/live",
        "/console/audit",
        "/console/identities",
        "/console/agents",
    ] {
        let (status, body) = page(operators);
        assert_eq!(status, 403, "{operators}: {body}");
    }
    // The time filter: nothing of his happened in 2000.
    let (_, old) = page("/console/sessions?since=2000-01-01&until=2000-01-02");
    assert!(old.contains("No session matches"), "{old}");
    // His changes are refused even from the console's own origin.
    let own_origin = format!("Origin: https://{}", gw.api);
    let (status, _) = curl(
        &gw,
        &[
            "-X",
            "POST",
            "-H",
            &cookie,
            "-H",
            &own_origin,
            "-d",
            "reason=x",
            &format!("https://{}/console/identities/gina/block", gw.api),
        ],
    );
    assert_eq!(status, 403);
    let identities: Value =
        serde_json::from_str(&gw.cli_ok(&["identities", "list", "--json"])).unwrap();
    assert!(
        identities
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["blocked_us"].is_null()),
        "{identities}"
    );
}
