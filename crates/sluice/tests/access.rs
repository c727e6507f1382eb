//! Time-boxed access with real clients: a connection that requires approval refuses a granted
//! identity until an approver approves its `sluice access request`; when the approved time
//! runs out the identity's live session ends and new logins are refused again.

mod common;

use common::{Gateway, TestDb};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::time::Duration;

const ACCESS: &str = "access:
  approvers: [security]
  max_duration: 1h
";

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn access_needs_an_approved_request_and_ends_when_it_expires() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config_with_policy(&db, ACCESS, ""));
    let account = |name: &str, groups: &str| gw.named_service_account(name, groups);
    let alice = account("alice", "engineering");
    let bob = account("bob", "security");
    let dave = account("dave", "contractors");

    // A grant alone is not enough.
    let refused = gw.psql(&alice, "select 1");
    assert!(!refused.status.success());
    let err = stderr(&refused);
    assert!(err.contains("needs an approved access request"), "{err}");
    assert!(err.contains("sluice access request pg"), "{err}");

    // Requests are checked: length, grant, reason.
    let too_long = gw.cli_as(
        &alice,
        &["access", "request", "pg", "--for", "2h", "--reason", "x"],
    );
    assert!(!too_long.status.success());
    assert!(
        stderr(&too_long).contains("longer than"),
        "{}",
        stderr(&too_long)
    );
    let no_grant = gw.cli_as(
        &dave,
        &["access", "request", "pg", "--for", "10m", "--reason", "x"],
    );
    assert!(!no_grant.status.success());
    assert!(
        stderr(&no_grant).contains("has no grant"),
        "{}",
        stderr(&no_grant)
    );

    let filed = gw.cli_as(
        &alice,
        &[
            "access",
            "request",
            "pg",
            "--for",
            "5s",
            "--reason",
            "incident 42",
        ],
    );
    assert!(filed.status.success(), "{}", stderr(&filed));
    let list: Vec<Value> = serde_json::from_slice(
        &gw.cli_as(&bob, &["reviews", "list", "--pending", "--json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let id = list[0]["id"].as_str().unwrap().to_string();
    assert_eq!(list[0]["kind"], "access");
    assert_eq!(list[0]["reason"], "incident 42");

    // Pending is not approved; the requester cannot approve herself.
    assert!(!gw.psql(&alice, "select 1").status.success());
    let own = gw.cli_as(&alice, &["reviews", "approve", &id]);
    assert!(!own.status.success());

    let approved = gw.cli_as(&bob, &["reviews", "approve", &id]);
    assert!(approved.status.success(), "{}", stderr(&approved));
    assert!(
        String::from_utf8_lossy(&approved.stdout).contains("access until"),
        "{}",
        String::from_utf8_lossy(&approved.stdout)
    );

    // Now alice gets in, and stays until the access runs out.
    let mut psql = gw.psql_session(&alice);
    let mut stdin = psql.stdin.take().unwrap();
    let mut lines = BufReader::new(psql.stdout.take().unwrap()).lines();
    writeln!(stdin, "select 'inside';").unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "inside");

    let ended = common::wait_for(
        "the session ended by expiry",
        Duration::from_secs(30),
        || {
            gw.sessions()
                .into_iter()
                .find(|s| s["end_reason"].is_string())
        },
    );
    assert_eq!(ended["end_reason"], "access_expired", "{ended}");
    assert_eq!(ended["identity"], "alice");

    // psql learns it on its next statement.
    writeln!(stdin, "select 'after';").unwrap();
    drop(stdin);
    let mut err = String::new();
    psql.stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    psql.wait().unwrap();
    assert!(err.contains("access to connection \"pg\" expired"), "{err}");
    assert!(!gw.psql(&alice, "select 1").status.success());

    gw.wait_audit("access.requested", |e| {
        e["action"] == "access.requested" && e["target"] == id.as_str()
    });
    gw.wait_audit("review.approved", |e| {
        e["action"] == "review.approved" && e["target"] == id.as_str()
    });
    let expired = gw.wait_audit("access.expired", |e| {
        e["action"] == "access.expired" && e["target"] == id.as_str()
    });
    assert_eq!(expired["reason"], "1 live session(s) ended");
}
