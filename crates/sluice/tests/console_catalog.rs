//! The web console's catalog pages in a real browser (headless Chromium, Bob signed in at
//! the npm `oidc-provider` as an admin): a service account created and its token revoked, a
//! connection added, granted and removed, an agent added and revoked. Each change is checked
//! where it counts (psql through the gateway, the API) and in the audit log.

mod common;

use common::console::{shots, Browser};
use common::oidc::Provider;
use common::{Gateway, TestDb};
use serde_json::{json, Value};

#[test]
fn an_admin_manages_accounts_connections_grants_and_agents_in_the_console() {
    let op = Provider::start();
    let db = TestDb::new();
    let people = format!(
        "roles:\n  admin: [security]\n\
         identity_providers:\n  - name: corp\n    issuer: {}\n    audience: urn:sluice:gateway\n    login:\n      client_id: sluice-cli\n      scopes: [openid, profile]\n",
        op.issuer
    );
    let gw = Gateway::start(&common::config(&db, &people));
    let mut browser = Browser::start(
        &gw,
        "bob",
        &json!([
            {"shot": "console-home"},
            {"text": "main", "as": "home"},
            {"goto": "/console/identities"},
            {"fill": "input[name=name]", "css": true, "value": "ci-bot"},
            {"fill": "input[name=groups]", "css": true, "value": "engineering"},
            {"click": "Create", "navigates": true},
            {"text": "pre[data-testid=secret]", "as": "token"},
            {"shot": "console-service-account"},
            {"signal": "created"},
            {"goto": "/console/identities"},
            {"click": "Revoke", "within": "[data-testid=tokens] tr:has-text(\"ci-bot\")", "dialog": "accept", "navigates": true},
            {"text": ".notice", "as": "revoked"},
            {"signal": "revoked"},
            {"goto": "/console/connections"},
            {"fill": "input[name=name]", "css": true, "value": "pg-two"},
            {"select": "select[name=type]", "css": true, "value": "postgres"},
            {"fill": "input[name=host]", "css": true, "value": "127.0.0.1"},
            {"fill": "input[name=port]", "css": true, "value": "5432"},
            {"fill": "input[name=database]", "css": true, "value": db.name},
            {"fill": "input[name=username]", "css": true, "value": "postgres"},
            {"click": "Add connection", "navigates": true},
            {"text": ".notice", "as": "added"},
            {"fill": "input[name=group]", "css": true, "value": "robots"},
            {"select": "select[name=connection]", "css": true, "value": "pg-two"},
            {"click": "Grant", "navigates": true},
            {"text": ".notice", "as": "granted"},
            {"text": "[data-testid=grants]", "as": "grants"},
            {"shot": "console-connections"},
            {"signal": "granted"},
            {"click": "Remove", "within": "[data-testid=grants] tr:has-text(\"robots\")", "navigates": true},
            {"text": ".notice", "as": "ungranted"},
            {"click": "Remove", "within": "[data-testid=connections] tr:has-text(\"pg-two\")", "dialog": "accept", "navigates": true},
            {"text": ".notice", "as": "removed"},
            {"goto": "/console/agents"},
            {"text": "main", "as": "no_agents"},
            {"fill": "input[name=name]", "css": true, "value": "edge-1"},
            {"click": "Add agent", "navigates": true},
            {"text": "pre[data-testid=secret]", "as": "enrollment"},
            {"goto": "/console/agents"},
            {"shot": "console-agents"},
            {"click": "Revoke", "within": "[data-testid=agents] tr:has-text(\"edge-1\")", "dialog": "accept", "navigates": true},
            {"text": "[data-testid=agents]", "as": "agents"},
        ]),
    );
    let seen = browser.signal("created");
    assert!(seen["home"].as_str().unwrap().contains("admin"), "{seen}");
    let token = seen["token"].as_str().unwrap().trim().to_string();
    let works = gw.psql(&token, "select 1");
    assert!(works.status.success(), "{works:?}");

    let seen = browser.signal("revoked");
    assert!(
        seen["revoked"].as_str().unwrap().contains("is revoked"),
        "{seen}"
    );
    let refused = gw.psql(&token, "select 1");
    assert!(!refused.status.success(), "a revoked token is refused");

    let seen = browser.signal("granted");
    assert!(
        seen["added"].as_str().unwrap().contains("pg-two is added"),
        "{seen}"
    );
    assert!(
        seen["granted"].as_str().unwrap().contains("Granted robots"),
        "{seen}"
    );
    let grants: Value = serde_json::from_str(&gw.cli_ok(&["grants", "list", "--json"])).unwrap();
    assert!(
        grants
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"] == "robots" && g["connection"] == "pg-two"),
        "{grants}"
    );

    let seen = browser.finish();
    assert!(
        seen["ungranted"]
            .as_str()
            .unwrap()
            .contains("Removed the grant"),
        "{seen}"
    );
    assert!(
        seen["removed"]
            .as_str()
            .unwrap()
            .contains("pg-two is removed"),
        "{seen}"
    );
    assert!(
        seen["no_agents"].as_str().unwrap().contains("No agent"),
        "{seen}"
    );
    assert!(!seen["enrollment"].as_str().unwrap().trim().is_empty());
    assert!(
        seen["agents"].as_str().unwrap().contains("revoked"),
        "{seen}"
    );
    let conns = gw.cli_ok(&["connections", "list", "--json"]);
    assert!(!conns.contains("pg-two"), "{conns}");
    // Each change is in the audit log, by Bob.
    for action in [
        "service_account.create",
        "token.revoke",
        "connection.add",
        "grant.add",
        "grant.remove",
        "connection.remove",
        "agent.create",
        "agent.revoke",
    ] {
        gw.wait_audit(action, |e| {
            e["action"] == action && e["actor"]["name"] == "bob"
        });
    }
    assert!(shots().join("console-agents.png").exists());
}
