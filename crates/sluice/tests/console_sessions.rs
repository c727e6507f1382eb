//! The web console's sessions in a real browser (headless Chromium, people signed in at the
//! npm `oidc-provider`): replaying a psql session and an SSH terminal, watching a live
//! terminal, terminating a live psql session, blocking an identity, and what an auditor
//! cannot do. Screenshots of each page are kept in `target/tmp/console-shots`.

mod common;

use common::console::{run, shots, Browser};
use common::oidc::Provider;
use common::ssh::{ssh_config, KeyPair, Sshd, Terminal};
use common::{unique, Gateway, LockHolder, TestDb};
use serde_json::{json, Value};
use std::process::{Command, Stdio};

/// Alice (engineering) audits, Bob (security) administers.
fn people(op: &Provider) -> String {
    format!(
        "roles:\n  auditor: [engineering]\n  admin: [security]\n\
         identity_providers:\n  - name: corp\n    issuer: {}\n    audience: urn:sluice:gateway\n    login:\n      client_id: sluice-cli\n      scopes: [openid, profile]\n",
        op.issuer
    )
}

const CARD: &str = "4111 1111 1111 1111";

/// A statement in psql as `token` that waits for `lock` (held directly), so it runs until
/// the session is ended from outside.
fn long_psql(gw: &Gateway, token: &str, lock: &LockHolder) -> std::process::Child {
    Command::new("psql")
        .args([
            "-X",
            "-tA",
            &gw.dsn("pg", token, "require"),
            "-c",
            &format!("select pg_advisory_lock({})", lock.key),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `identity` has a live session; its id.
fn live_session(gw: &Gateway, identity: &str) -> String {
    common::wait_for("a live session", std::time::Duration::from_secs(30), || {
        let out = gw.cli_ok(&["sessions", "list", "--json"]);
        let sessions: Vec<Value> = serde_json::from_str(&out).ok()?;
        sessions
            .iter()
            .find(|s| s["identity"] == identity && s["ended_us"].is_null())
            .and_then(|s| s["id"].as_str().map(str::to_string))
    })
}

#[test]
fn an_auditor_replays_a_psql_session_with_its_denial_and_masked_rows() {
    let op = Provider::start();
    let db = TestDb::new();
    let policy = format!(
        "{}masking:\n  columns: ['*password*']\n",
        common::QUICKSTART_GUARDRAILS
    );
    let gw = Gateway::start(&common::config_with_policy(&db, &policy, &people(&op)));
    let carol = gw.named_service_account("carol", "engineering");
    let ran = Command::new("psql")
        .args(["-X", "-tA", &gw.dsn("pg", &carol, "require")])
        .args([
            "-c",
            &format!(
                "create table cards (id int, card text); insert into cards values (1, '{CARD}')"
            ),
        ])
        .args(["-c", "select * from cards", "-c", "drop table cards"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&ran.stderr).contains("dropping tables is not allowed"),
        "{ran:?}"
    );
    let id = gw.wait_ended_session("pg");

    let seen = run(
        &gw,
        "alice",
        json!([
            {"goto": "/console/sessions?connection=pg"},
            {"wait": "table[data-testid=sessions]"},
            {"shot": "console-sessions"},
            {"text": "main", "as": "list"},
            {"goto": format!("/console/sessions/{id}")},
            {"wait": "ol[data-testid=timeline]"},
            {"shot": "console-session-psql"},
            {"text": "[data-testid=policy]", "as": "policy"},
            {"text": "ol[data-testid=timeline]", "as": "timeline"},
            {"text": "[data-testid=summary]", "as": "summary"},
            {"count": "Terminate", "as": "terminate"},
            {"fetch": format!("/api/v1/sessions/{id}/events"), "as": "download"},
        ]),
    );
    assert!(seen["list"].as_str().unwrap().contains("carol"), "{seen}");
    let policy = seen["policy"].as_str().unwrap();
    assert!(
        policy.contains("denied") && policy.contains("no-drop-table"),
        "{policy}"
    );
    assert!(policy.contains("drop table cards"), "{policy}");
    let timeline = seen["timeline"].as_str().unwrap();
    assert!(timeline.contains("select * from cards"), "{timeline}");
    // The result table shows the masked value, never the card number.
    assert!(
        timeline.contains("1111"),
        "the card's masked form: {timeline}"
    );
    assert!(!timeline.contains(CARD), "{timeline}");
    assert!(
        !seen.to_string().contains(CARD),
        "nothing shown holds the raw number"
    );
    let summary = seen["summary"].as_str().unwrap();
    assert!(
        summary.contains("carol") && summary.contains("engineering"),
        "{summary}"
    );
    assert!(summary.contains("intact"), "{summary}");
    assert_eq!(seen["terminate"], 0);
    // The download is the recording with its hash chain, for the auditor too.
    assert_eq!(seen["download"]["status"], 200);
    assert!(seen["download"]["body"]
        .as_str()
        .unwrap()
        .contains("\"hash\""));
    assert!(shots().join("console-session-psql.png").exists());
}

#[test]
fn an_admin_terminates_a_live_psql_session_and_blocks_the_identity() {
    let op = Provider::start();
    let db = TestDb::new();
    let lock = LockHolder::new(&db);
    let gw = Gateway::start(&common::config(&db, &people(&op)));
    let dave = gw.named_service_account("dave", "engineering");
    let psql = long_psql(&gw, &dave, &lock);
    let id = live_session(&gw, "dave");

    let seen = run(
        &gw,
        "bob",
        json!([
            {"goto": "/console/live"},
            {"waitText": "tr[data-session]", "text": "dave"},
            {"shot": "console-live"},
            {"text": "table[data-testid=live]", "as": "live"},
            {"click": "Terminate", "within": format!("tr[data-session=\"{id}\"]"), "dialog": "accept", "navigates": true},
            {"waitText": ".notice", "text": "terminated"},
            {"text": ".notice", "as": "terminated"},
        ]),
    );
    assert!(seen["live"].as_str().unwrap().contains("pg"), "{seen}");
    assert!(
        seen["terminated"]
            .as_str()
            .unwrap()
            .contains("was terminated"),
        "{seen}"
    );
    let out = psql.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("administrator command"), "{err}");
    gw.wait_audit("the kill", |e| {
        e["action"] == "session.kill" && e["actor"]["name"] == "bob" && e["target"] == id
    });

    // Blocking dave ends his new session at once and refuses him from then on.
    let psql = long_psql(&gw, &dave, &lock);
    let id = live_session(&gw, "dave");
    let seen = run(
        &gw,
        "bob",
        json!([
            {"goto": format!("/console/live/{id}")},
            {"waitText": "[data-testid=live-status]", "text": "Watching live"},
            {"text": "main", "as": "watching"},
            {"shot": "console-live-psql"},
            {"click": "Block dave…", "role": "link"},
            {"wait": "textarea"},
            {"shot": "console-block-confirm"},
            {"fill": "Reason", "value": "laptop reported stolen"},
            {"click": "Block dave", "navigates": true},
            {"waitText": ".notice", "text": "blocked"},
            {"text": ".notice", "as": "blocked"},
            {"text": "tr[data-identity=dave]", "as": "row"},
            {"shot": "console-identities"},
            {"goto": "/console/audit?action=identity."},
            {"wait": "table[data-testid=audit]"},
            {"text": "table[data-testid=audit]", "as": "audit"},
            {"shot": "console-audit"},
        ]),
    );
    assert!(
        seen["watching"]
            .as_str()
            .unwrap()
            .contains("select pg_advisory_lock("),
        "{seen}"
    );
    let blocked = seen["blocked"].as_str().unwrap();
    assert!(blocked.contains("1 live session(s) ended"), "{blocked}");
    assert!(
        seen["row"]
            .as_str()
            .unwrap()
            .contains("laptop reported stolen"),
        "{seen}"
    );
    assert!(
        seen["audit"].as_str().unwrap().contains("identity.block"),
        "{seen}"
    );
    let out = psql.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("blocked"), "{err}");
    let again = gw.psql(&dave, "select 1");
    assert!(!again.status.success(), "{again:?}");
}

#[test]
fn an_auditor_has_no_terminate_or_block_and_the_api_refuses_them() {
    let op = Provider::start();
    let db = TestDb::new();
    let lock = LockHolder::new(&db);
    let gw = Gateway::start(&common::config(&db, &people(&op)));
    let erin = gw.named_service_account("erin", "engineering");
    let mut psql = long_psql(&gw, &erin, &lock);
    let id = live_session(&gw, "erin");
    let seen = run(
        &gw,
        "alice",
        json!([
            {"goto": "/console/live"},
            {"waitText": "tr[data-session]", "text": "erin"},
            {"count": "Terminate", "as": "terminate"},
            {"count": "Block identity…", "role": "link", "as": "block"},
            {"count": "Watch", "role": "link", "as": "watch"},
            {"fetch": format!("/api/v1/sessions/{id}/kill"), "method": "POST", "as": "kill"},
            {"fetch": "/api/v1/identities/erin/block", "method": "POST", "as": "block_api"},
            {"goto": "/console/identities/erin/block"},
            {"text": "main", "as": "block_page"},
            {"shot": "console-auditor-live"},
        ]),
    );
    assert_eq!(seen["terminate"], 0, "{seen}");
    assert_eq!(seen["block"], 0, "{seen}");
    assert_eq!(seen["watch"], 1, "{seen}");
    assert_eq!(seen["kill"]["status"], 403, "{seen}");
    assert_eq!(seen["block_api"]["status"], 403, "{seen}");
    assert!(
        seen["block_page"].as_str().unwrap().contains("for admins"),
        "{seen}"
    );
    // Still live: nothing the auditor did ended it.
    assert!(psql.try_wait().unwrap().is_none());
    let _ = psql.kill();
    let _ = psql.wait();
}

#[test]
fn a_live_ssh_terminal_is_watched_and_then_replayed_in_the_player() {
    let op = Provider::start();
    let sshd = Sshd::start();
    let config = format!("{}{}", ssh_config(&sshd, "box", ""), people(&op));
    let gw = Gateway::start(&config);
    sshd.authorize(&gw.cli_ok(&["ssh", "gateway-key"]));
    let who = unique("eng");
    gw.named_service_account(&who, "ops");
    let key = KeyPair::new(&sshd.dir, &unique("user"));
    gw.cli_ok(&[
        "identities",
        "keys",
        "add",
        &who,
        "--key-file",
        key.public.to_str().unwrap(),
    ]);
    let port = gw.ssh.unwrap().port();
    let term = Terminal::run(
        &format!(
            "ssh -tt -p {port} -i {} {} box@127.0.0.1",
            key.private.display(),
            common::ssh::CLIENT_OPTIONS.join(" ")
        ),
        |s| s.contains("root@"),
    );
    term.keys(&["printf 'hello-%s\\n' console", "Enter"]);
    term.wait("the first output", |s| s.contains("hello-console"));
    let id = live_session(&gw, &who);

    // Alice watches: the screen so far, then what is typed while she watches.
    let mut browser = Browser::start(
        &gw,
        "alice",
        &json!([
            {"goto": format!("/console/live/{id}")},
            {"waitText": "pre.screen", "text": "hello-console"},
            {"signal": "watching"},
            {"waitText": "pre.screen", "text": "live-update-42"},
            {"shot": "console-live-terminal"},
            {"signal": "seen"},
            {"waitText": "[data-testid=live-status]", "text": "ended"},
            {"goto": format!("/console/sessions/{id}")},
            {"wait": "[data-testid=player] button"},
            {"select": "Speed", "value": "16"},
            {"click": "Play"},
            {"waitText": "pre.screen", "text": "live-update-42"},
            {"text": "pre.screen", "as": "replayed"},
            {"shot": "console-session-ssh"},
            {"fetch": format!("/api/v1/sessions/{id}/asciicast"), "as": "cast"},
        ]),
    );
    browser.signal("watching");
    term.keys(&["echo live-update-$((6*7))", "Enter"]);
    browser.signal("seen");
    term.keys(&["exit", "Enter"]);
    let seen = browser.finish();
    let replayed = seen["replayed"].as_str().unwrap();
    assert!(replayed.contains("hello-console"), "{replayed}");
    assert!(replayed.contains("live-update-42"), "{replayed}");
    let cast = seen["cast"]["body"].as_str().unwrap();
    assert_eq!(seen["cast"]["status"], 200);
    let header: Value = serde_json::from_str(cast.lines().next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    assert!(cast.contains("live-update-42"));
}
