//! The admin CLI against a live gateway: service accounts, tokens, connections, grants, roles.

mod common;

use common::raw::login;
use common::{Gateway, TestDb};
use serde_json::Value;

#[test]
fn service_account_prints_only_a_token_and_lists_never_show_secrets() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let out = gw.cli_ok(&[
        "service-accounts",
        "create",
        "ci-backup",
        "--groups",
        "engineering,ops",
        "--ttl",
        "24h",
    ]);
    let token = out.trim();
    assert_eq!(out.lines().count(), 1, "only the token is printed: {out:?}");
    assert!(token.starts_with("slc_") && token.len() == 68, "{token}");
    assert!(login(gw.pg, "pg", token).is_ok());

    let listed = gw.cli_ok(&["tokens", "list"]);
    assert!(listed.contains("ci-backup"));
    assert!(!listed.contains(token));
    let json: Vec<Value> = serde_json::from_str(&gw.cli_ok(&["tokens", "list", "--json"])).unwrap();
    let t = json.iter().find(|t| t["identity"] == "ci-backup").unwrap();
    assert!(t["expires_us"].as_i64().unwrap() > t["created_us"].as_i64().unwrap());
    assert!(!serde_json::to_string(&json).unwrap().contains(token));

    let dup = gw.cli(&["service-accounts", "create", "ci-backup", "--groups", "x"]);
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));

    let db_bytes = std::fs::read(gw.data().join("sluice.db")).unwrap();
    let needle = token.as_bytes();
    assert!(
        !db_bytes.windows(needle.len()).any(|w| w == needle),
        "tokens are stored hashed"
    );

    gw.wait_audit("service account audit", |a| {
        a["action"] == "service_account.create"
            && a["target"] == "ci-backup"
            && a["actor"]["name"] == "bootstrap-admin"
    });
}

#[test]
fn connections_and_grants_are_managed_at_runtime() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let token = gw.service_account("analysts");
    assert_eq!(
        login(gw.pg, "runtime-pg", &token).unwrap_err().code,
        "3D000"
    );

    gw.cli_ok(&[
        "connections",
        "add",
        "runtime-pg",
        "--type",
        "postgres",
        "--host",
        "127.0.0.1",
        "--port",
        "5432",
        "--database",
        &db.name,
        "--username",
        "postgres",
    ]);
    gw.cli_ok(&[
        "connections",
        "add",
        "with-secret",
        "--type",
        "postgres",
        "--host",
        "127.0.0.1",
        "--port",
        "5432",
        "--password-env",
        "PG_SECRET",
    ]);
    let list = gw.cli_ok(&["connections", "list"]);
    assert!(
        list.contains("runtime-pg") && list.contains("runtime"),
        "{list}"
    );
    assert!(list.contains("pg ") && list.contains("config"), "{list}");
    let shown: Value =
        serde_json::from_str(&gw.cli_ok(&["connections", "show", "with-secret"])).unwrap();
    assert_eq!(
        shown["credential"],
        serde_json::json!({ "env": "PG_SECRET" }),
        "only a reference to the secret is kept"
    );

    assert_eq!(
        login(gw.pg, "runtime-pg", &token).unwrap_err().code,
        "42501"
    );
    gw.cli_ok(&[
        "grants",
        "add",
        "--group",
        "analysts",
        "--connection",
        "runtime-pg",
    ]);
    assert!(gw.cli_ok(&["grants", "list"]).contains("analysts"));
    assert!(login(gw.pg, "runtime-pg", &token).is_ok());

    gw.cli_ok(&[
        "grants",
        "remove",
        "--group",
        "analysts",
        "--connection",
        "runtime-pg",
    ]);
    assert_eq!(
        login(gw.pg, "runtime-pg", &token).unwrap_err().code,
        "42501"
    );
    gw.cli_ok(&["connections", "remove", "runtime-pg"]);
    assert_eq!(
        login(gw.pg, "runtime-pg", &token).unwrap_err().code,
        "3D000"
    );

    let refused = gw.cli(&["connections", "remove", "pg"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("config file"));
    let bad = gw.cli(&[
        "connections",
        "add",
        "bad name",
        "--type",
        "postgres",
        "--host",
        "h",
        "--port",
        "1",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid connection name"));
}

#[test]
fn runtime_changes_survive_a_restart() {
    let db = TestDb::new();
    let cfg = common::config(&db, "");
    let gw = Gateway::start(&cfg);
    gw.cli_ok(&[
        "connections",
        "add",
        "kept",
        "--type",
        "postgres",
        "--host",
        "127.0.0.1",
        "--port",
        "5432",
        "--database",
        &db.name,
    ]);
    gw.grant("engineering", "kept");
    let token = gw.service_account("engineering");
    let gw = gw.restart(&cfg, false);
    assert!(login(gw.pg, "kept", &token).is_ok());
}

#[test]
fn api_requires_an_admin_token() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let user = gw.service_account("engineering");
    let out = gw.cli_as(&user, &["tokens", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 403"));
    let out = gw.cli_as("slc_bogus", &["sessions", "list"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 401"));
    gw.wait_audit("API auth failure audit", |a| {
        a["action"] == "api.auth" && a["outcome"] == "failure"
    });
}

#[test]
fn sessions_list_filters_show_replay_and_export() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let token = gw.service_account("engineering");
    let out = gw.psql(&token, "select 'replayed' as word");
    assert!(out.status.success());
    let id = gw.wait_ended_session("pg");

    let live: Vec<Value> =
        serde_json::from_str(&gw.cli_ok(&["sessions", "list", "--live", "--json"])).unwrap();
    assert!(live.iter().all(|s| s["id"] != id.as_str()));
    let by_conn: Vec<Value> = serde_json::from_str(&gw.cli_ok(&[
        "sessions",
        "list",
        "--connection",
        "pg",
        "--since",
        "1h",
        "--json",
    ]))
    .unwrap();
    assert_eq!(by_conn.len(), 1);
    let other: Vec<Value> =
        serde_json::from_str(&gw.cli_ok(&["sessions", "list", "--identity", "nobody", "--json"]))
            .unwrap();
    assert!(other.is_empty());

    let shown = gw.cli_ok(&["sessions", "show", &id]);
    assert!(shown.contains("integrity   ok"), "{shown}");
    assert!(shown.contains("select 'replayed' as word"), "{shown}");
    let replay = gw.cli_ok(&["sessions", "replay", &id, "--speed", "1000"]);
    assert!(
        replay.contains("select 'replayed' as word") && replay.contains("replayed"),
        "{replay}"
    );
    assert!(replay.contains("session end: client_quit"), "{replay}");
    let export = gw.cli_ok(&["sessions", "export", &id, "--format", "jsonl"]);
    let lines: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "start, query, result, end: {export}");
    assert!(lines
        .windows(2)
        .all(|w| w[0]["seq"].as_u64().unwrap() + 1 == w[1]["seq"].as_u64().unwrap()));
    assert!(lines
        .iter()
        .all(|l| l["hash"].as_str().unwrap().len() == 64));
    let missing = gw.cli(&["sessions", "show", "no-such-session"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("HTTP 404"));
}

#[test]
fn a_session_and_its_statements_are_listed_as_soon_as_the_client_is_answered() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let token = gw.service_account("engineering");
    assert!(gw.psql(&token, "select 'visible at once'").status.success());
    // No waiting: reads commit whatever the recorder has buffered first.
    let sessions = gw.sessions();
    assert_eq!(sessions.len(), 1);
    let events = gw.events(sessions[0]["id"].as_str().unwrap());
    assert!(events
        .iter()
        .any(|e| e["kind"] == "query" && e["text"] == "select 'visible at once'"));
}
