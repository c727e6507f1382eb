//! Just-in-time approvals on MySQL, with the `mariadb` client and mysql-connector-python
//! against the machine's MariaDB: a statement under a `review` rule waits in its session
//! until an approver in another process decides; approval runs it, denial fails it with a
//! native error, each execution of a prepared statement is reviewed with its parameters, and
//! Ctrl-C (a `KILL QUERY` through the gateway) withdraws it.

mod common;

use common::mysql::{config, python, MyDb};
use common::{wait_for, Gateway};
use serde_json::Value;
use std::process::{Command, Output};
use std::time::Duration;

const REVIEW_WRITES: &str = "guardrails:
  approvers: [security]
  rules:
    - name: review-writes
      action: review
      reason: DELETE and UPDATE need a second pair of eyes
      match: { statements: [delete, update] }
masking:
  mask_client: true
";

struct Setup {
    db: MyDb,
    gw: Gateway,
    /// Requester (engineering, so granted the connection).
    alice: String,
    /// Approver (security).
    bob: String,
}

fn setup() -> Setup {
    let db = MyDb::new();
    db.exec(
        "CREATE TABLE t (id INT PRIMARY KEY, note VARCHAR(40));
         INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');",
    );
    let gw = Gateway::start(&config(&db, false, REVIEW_WRITES));
    let alice = gw.named_service_account("alice", "engineering");
    let bob = gw.named_service_account("bob", "security");
    Setup { db, gw, alice, bob }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn decide(gw: &Gateway, token: &str, args: &[&str]) {
    let out = gw.cli_as(token, args);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn note(db: &MyDb, id: u32) -> String {
    let out = db.exec(&format!("SELECT note FROM t WHERE id = {id}"));
    out.lines().nth(1).unwrap_or_default().to_string()
}

#[test]
fn held_statements_run_when_approved_and_fail_natively_when_denied() {
    let s = setup();
    // Approved: the statement runs, and the rest of the client's batch after it.
    let cli = s.gw.mariadb_spawn(
        &s.alice,
        "UPDATE t SET note = 'x' WHERE id = 1; SELECT note FROM t WHERE id = 1",
    );
    let pending = s.gw.pending_review(&s.bob);
    let id = pending["id"].as_str().unwrap().to_string();
    assert_eq!(pending["rule"], "review-writes");
    assert_eq!(pending["requester"], "alice");
    assert_eq!(note(&s.db, 1), "a", "nothing runs before the decision");
    decide(
        &s.gw,
        &s.bob,
        &["reviews", "approve", &id, "--reason", "ticket OPS-7"],
    );
    let out = cli.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "note\nx\n");

    // The recording: the statement, held under the review, the decision, then its result.
    let session = s.gw.wait_ended_session("my");
    let events = s.gw.events(&session);
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    let at = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    assert!(
        at("guard") < at("decision") && at("decision") < at("result"),
        "{kinds:?}"
    );
    let guard = &events[at("guard")];
    assert_eq!(guard["action"], "held");
    assert_eq!(guard["review"], id.as_str());
    let decision = &events[at("decision")];
    assert_eq!(decision["decision"], "approved");
    assert_eq!(decision["by"], serde_json::json!(["bob"]));
    assert_eq!(decision["reason"], "ticket OPS-7");
    assert_eq!(decision["query"], guard["query"]);
    assert_eq!(events[at("result")]["query"], guard["query"]);
    s.gw.wait_audit("review.approved", |e| {
        e["action"] == "review.approved" && e["target"] == id.as_str()
    });

    // Denied: ERR 1142 with the approver's reason; approvers never saw the raw card number.
    let cli = s.gw.mariadb_spawn(
        &s.alice,
        "UPDATE t SET note = '4111 1111 1111 1111' WHERE id = 2",
    );
    let pending = s.gw.pending_review(&s.bob);
    let id = pending["id"].as_str().unwrap().to_string();
    let statement = pending["statement"].as_str().unwrap();
    assert!(statement.contains("'**** **** **** 1111'"), "{statement}");
    decide(
        &s.gw,
        &s.bob,
        &["reviews", "deny", &id, "--reason", "change freeze"],
    );
    let out = cli.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("ERROR 1142 (42000)"), "{err}");
    assert!(
        err.contains(&format!(
            "sluice: statement denied by bob (review {id}): change freeze"
        )),
        "{err}"
    );
    assert_eq!(note(&s.db, 2), "b");
}

#[test]
fn each_execution_of_a_prepared_statement_is_reviewed_with_its_parameters() {
    let s = setup();
    let env = s.gw.my_env(&s.alice, &s.db, false);
    let client = python("prepared_update", &env)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let first = s.gw.pending_review(&s.bob);
    let statement = first["statement"].as_str().unwrap();
    assert!(
        statement.starts_with("UPDATE t SET note = ? WHERE id = ?"),
        "{statement}"
    );
    assert!(
        statement.contains("-- parameter 1 = **** **** **** 1111")
            && statement.contains("-- parameter 2 = 3"),
        "{statement}"
    );
    let first_id = first["id"].as_str().unwrap().to_string();
    decide(&s.gw, &s.bob, &["reviews", "approve", &first_id]);
    // The second execution of the same statement is held again, with its own values.
    let second = wait_for("the second execution held", Duration::from_secs(20), || {
        let p = s.gw.pending_review(&s.bob);
        (p["id"] != first_id.as_str()).then_some(p)
    });
    assert!(
        second["statement"]
            .as_str()
            .unwrap()
            .contains("-- parameter 1 = second"),
        "{second}"
    );
    decide(
        &s.gw,
        &s.bob,
        &["reviews", "deny", second["id"].as_str().unwrap()],
    );
    let out = client.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let seen: Value = serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert_eq!(seen["ended"][0], serde_json::json!(["ok", 1]), "{seen}");
    assert_eq!(seen["ended"][1][0], "error", "{seen}");
    assert_eq!(seen["ended"][1][1], 1142, "{seen}");
    assert_eq!(note(&s.db, 3), "4111 1111 1111 1111");
}

#[test]
fn ctrl_c_or_leaving_withdraws_the_review() {
    let s = setup();
    // Ctrl-C in `mariadb` sends KILL QUERY (with the id the gateway gave it) on a second
    // connection: the held statement is withdrawn, never run.
    let cli = s.gw.mariadb_spawn(&s.alice, "DELETE FROM t WHERE id = 1");
    let id = s.gw.pending_review(&s.bob)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let int = Command::new("kill")
        .args(["-INT", &cli.id().to_string()])
        .status()
        .unwrap();
    assert!(int.success());
    let out = cli.wait_with_output().unwrap();
    let review: Value =
        serde_json::from_str(&s.gw.cli_ok(&["reviews", "show", &id, "--json"])).unwrap();
    assert!(
        stdout(&out).contains("Ctrl-C -- query killed"),
        "{}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "ERROR 1317 (70100) at line 1: sluice: review {id} was withdrawn"
        )),
        "{err}"
    );
    assert_eq!(review["status"], "cancelled");
    let late = s.gw.cli_as(&s.bob, &["reviews", "approve", &id]);
    assert!(!late.status.success());

    // A client that goes away while waiting withdraws it too.
    let mut cli = s.gw.mariadb_spawn(&s.alice, "DELETE FROM t WHERE id = 2");
    let id = s.gw.pending_review(&s.bob)["id"]
        .as_str()
        .unwrap()
        .to_string();
    cli.kill().unwrap();
    cli.wait().unwrap();
    wait_for("the review withdrawn", Duration::from_secs(20), || {
        let r: Value =
            serde_json::from_str(&s.gw.cli_ok(&["reviews", "show", &id, "--json"])).unwrap();
        (r["status"] == "cancelled").then_some(())
    });
    assert_eq!(
        s.db.exec("SELECT COUNT(*) AS n FROM t"),
        "n\n3\n",
        "neither DELETE ran"
    );
}
