//! Just-in-time approvals with real clients: a statement matching a `review` rule is held in
//! its session while approvers in other processes decide through the CLI; approval runs it,
//! denial and expiry fail it, the requester cannot approve their own, and the decision is in
//! the recording, the audit log and the webhook.

mod common;

use common::webhook::Receiver;
use common::{Gateway, TestDb};
use serde_json::Value;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const REVIEW_WRITES: &str = "guardrails:
  approvers: [security]
  review_timeout: TIMEOUT
  rules:
    - name: review-writes
      action: review
      reason: DELETE and UPDATE need a second pair of eyes
      match: { statements: [delete, update] }
    - name: no-drop-table
      action: deny
      match: { statements: [drop_table] }
masking:
  mask_client: true
";

struct Setup {
    db: TestDb,
    gw: Gateway,
    /// Requester, in engineering and security (so only the self-approval rule stops her).
    alice: String,
    /// Approver, in security.
    bob: String,
    /// Engineer, not an approver.
    dave: String,
}

fn setup(timeout: &str, extra: &str) -> Setup {
    let db = TestDb::new();
    let out = common::psql_direct(
        &db.name,
        "create table t (id int, note text); insert into t values (1, 'a'), (2, 'b'), (3, 'c')",
    );
    assert!(out.status.success());
    let policy = REVIEW_WRITES.replace("TIMEOUT", timeout);
    let gw = Gateway::start(&common::config_with_policy(&db, &policy, extra));
    let account = |name: &str, groups: &str| gw.named_service_account(name, groups);
    let alice = account("alice", "engineering,security");
    let bob = account("bob", "security");
    let dave = account("dave", "engineering");
    Setup {
        db,
        gw,
        alice,
        bob,
        dave,
    }
}

fn cli_as(gw: &Gateway, token: &str, args: &[&str]) -> Output {
    gw.cli_as(token, args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// psql running `sql` through the gateway, in the background.
fn psql_bg(gw: &Gateway, token: &str, sql: &str) -> Child {
    Command::new("psql")
        .args(["-X", "-tA", &gw.dsn("pg", token, "require"), "-c", sql])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql starts")
}

fn review(gw: &Gateway, id: &str) -> Value {
    serde_json::from_str(&gw.cli_ok(&["reviews", "show", id, "--json"])).unwrap()
}

fn count(db: &TestDb, sql: &str) -> String {
    let out = common::psql_direct(&db.name, sql);
    assert!(out.status.success());
    stdout(&out).trim().to_string()
}

#[test]
fn a_held_delete_runs_once_an_approver_in_another_process_approves() {
    let hook = Receiver::start();
    let s = setup(
        "10m",
        &format!("reviews:\n  webhook:\n    url: {}\n", hook.url()),
    );
    let psql = psql_bg(&s.gw, &s.alice, "delete from t where id = 1");

    // The review is visible to an approver, with the statement, the rule and the requester.
    let r = s.gw.pending_review(&s.bob);
    let id = r["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("rv-"), "{r}");
    assert_eq!(r["requester"], "alice");
    assert_eq!(r["rule"], "review-writes");
    assert_eq!(r["statement"], "delete from t where id = 1");
    assert_eq!(r["approver_groups"], serde_json::json!(["security"]));
    let announced = hook.next_with_status("pending");
    assert_eq!(announced["sluice"]["id"], id.as_str());
    let text = announced["text"].as_str().unwrap();
    assert!(text.contains(&id) && text.contains("alice"), "{text}");
    assert!(
        text.contains(&format!("sluice reviews approve {id}")),
        "{text}"
    );

    // Held: the row is still there.
    assert_eq!(count(&s.db, "select count(*) from t where id = 1"), "1");

    // The requester cannot approve her own statement, even as a member of security.
    let own = cli_as(&s.gw, &s.alice, &["reviews", "approve", &id]);
    assert!(!own.status.success());
    assert!(
        stderr(&own).contains("cannot decide your own request"),
        "{}",
        stderr(&own)
    );
    // An engineer outside security cannot approve either (and does not see it).
    let other = cli_as(&s.gw, &s.dave, &["reviews", "approve", &id]);
    assert!(!other.status.success());
    assert!(
        stderr(&other).contains("only members of group security"),
        "{}",
        stderr(&other)
    );
    assert_eq!(review(&s.gw, &id)["status"], "pending");

    let ok = cli_as(
        &s.gw,
        &s.bob,
        &["reviews", "approve", &id, "--reason", "ticket OPS-7"],
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("approved"), "{}", stdout(&ok));

    let out = psql.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("NOTICE:  sluice: statement held for review {id}")),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("DELETE 1"), "{}", stdout(&out));
    assert_eq!(count(&s.db, "select count(*) from t where id = 1"), "0");
    assert_eq!(count(&s.db, "select count(*) from t"), "2");

    let decided = hook.next_with_status("approved");
    assert_eq!(decided["sluice"]["approvals"][0]["by"], "bob");

    // The recording holds the statement, the hold, the decision, and the result, in order.
    let session = s.gw.wait_ended_session("pg");
    let events = s.gw.events(&session);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or(""))
        .collect();
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

    let requested = s.gw.wait_audit("review.requested", |e| {
        e["action"] == "review.requested" && e["target"] == id.as_str()
    });
    assert_eq!(requested["actor"]["name"], "alice");
    let approved = s.gw.wait_audit("review.approved", |e| {
        e["action"] == "review.approved" && e["target"] == id.as_str()
    });
    assert_eq!(approved["actor"]["name"], "bob");
    s.gw.wait_audit("the refused self-approval", |e| {
        e["action"] == "review.decide" && e["outcome"] == "failure" && e["actor"]["name"] == "alice"
    });

    // Human output of the CLI.
    let shown = s.gw.cli_ok(&["reviews", "show", &id]);
    assert!(shown.contains("approved by bob"), "{shown}");
    let listed = s.gw.cli_ok(&["reviews", "list"]);
    assert!(
        listed.contains(&id) && listed.contains("approved"),
        "{listed}"
    );
}

#[test]
fn a_denied_statement_fails_with_the_reason_and_the_session_goes_on() {
    let s = setup("10m", "");
    let mut psql = s.gw.psql_session(&s.alice);
    {
        use std::io::Write;
        let mut stdin = psql.stdin.take().unwrap();
        stdin
            .write_all(
                b"update t set note = 'x' where id = 2 and note <> '4111 1111 1111 1111';\nselect 'still here';\n",
            )
            .unwrap();
    }
    let pending = s.gw.pending_review(&s.bob);
    let id = pending["id"].as_str().unwrap().to_string();
    // Approvers see the statement with its sensitive values masked, never raw.
    let statement = pending["statement"].as_str().unwrap();
    assert!(statement.contains("'**** **** **** 1111'"), "{statement}");
    let denied = cli_as(
        &s.gw,
        &s.bob,
        &["reviews", "deny", &id, "--reason", "change freeze"],
    );
    assert!(denied.status.success(), "{}", stderr(&denied));
    let out = psql.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "sluice: statement denied by bob (review {id}): change freeze"
        )),
        "{err}"
    );
    assert!(stdout(&out).contains("still here"), "{}", stdout(&out));
    assert_eq!(count(&s.db, "select note from t where id = 2"), "b");

    // A decided review cannot be decided again.
    let again = cli_as(&s.gw, &s.bob, &["reviews", "approve", &id]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already denied"),
        "{}",
        stderr(&again)
    );

    let session = s.gw.wait_ended_session("pg");
    let decision =
        s.gw.events(&session)
            .into_iter()
            .find(|e| e["kind"] == "decision")
            .expect("a decision event");
    assert_eq!(decision["decision"], "denied");
    assert_eq!(decision["reason"], "change freeze");
    let result =
        s.gw.events(&session)
            .into_iter()
            .find(|e| e["kind"] == "result" && e["query"] == decision["query"])
            .expect("the held statement's result");
    assert_eq!(result["outcome"]["error"]["code"], "42501");
    let leaked = common::files_containing(&s.gw.data(), "4111 1111 1111 1111");
    assert!(leaked.is_empty(), "the raw card number is in {leaked:?}");
}

#[test]
fn every_execution_of_a_prepared_statement_is_reviewed_with_its_parameters() {
    let s = setup("10m", "");
    let mut py = common::python_cmd(
        "held",
        &[
            ("DSN", s.gw.dsn("pg", &s.alice, "require")),
            ("STATEMENT", "delete from t where id = %s".into()),
            ("RUNS", "[[3], [2]]".into()),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // The first execution: the reviewer sees the statement and its parameter.
    let first = s.gw.pending_review(&s.bob);
    assert_eq!(first["statement"], "delete from t where id = $1\n-- $1 = 3");
    let id = first["id"].as_str().unwrap().to_string();
    let ok = cli_as(&s.gw, &s.bob, &["reviews", "approve", &id]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    // The same prepared statement executed again is held again: one approval is not a
    // licence for other parameters.
    let second = common::wait_for(
        "the second execution's review",
        Duration::from_secs(20),
        || {
            let out = cli_as(&s.gw, &s.bob, &["reviews", "list", "--pending", "--json"]);
            let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
            list.into_iter().find(|r| r["id"] != id.as_str())
        },
    );
    assert_eq!(
        second["statement"],
        "delete from t where id = $1\n-- $1 = 2"
    );
    assert_eq!(count(&s.db, "select count(*) from t where id = 2"), "1");
    let second_id = second["id"].as_str().unwrap();
    let no = cli_as(&s.gw, &s.bob, &["reviews", "deny", second_id]);
    assert!(no.status.success(), "{}", stderr(&no));

    assert!(py.wait().unwrap().success());
    let mut text = String::new();
    std::io::Read::read_to_string(&mut py.stdout.take().unwrap(), &mut text).unwrap();
    let v: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let runs = v["results"].as_array().unwrap();
    assert_eq!(runs[0]["ok"], true, "{v}");
    assert_eq!(runs[0]["rowcount"], 1, "{v}");
    assert_eq!(runs[1]["ok"], false, "{v}");
    assert_eq!(runs[1]["sqlstate"], "42501", "{v}");
    assert!(runs.iter().all(|r| r["usable"] == true), "{v}");
    let notice = &v["notices"][0];
    assert!(
        notice["message"]
            .as_str()
            .unwrap()
            .contains(&format!("held for review {id}")),
        "{v}"
    );
    assert!(
        notice["hint"]
            .as_str()
            .unwrap()
            .contains("An approver in group security runs"),
        "{v}"
    );
    assert_eq!(count(&s.db, "select count(*) from t where id = 3"), "0");
    assert_eq!(count(&s.db, "select count(*) from t where id = 2"), "1");
}

#[test]
fn an_undecided_review_expires_and_the_statement_fails() {
    let s = setup("2s", "");
    let out = s.gw.psql(&s.alice, "delete from t where id = 1");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("expired: no decision within 2s"), "{err}");
    assert_eq!(count(&s.db, "select count(*) from t where id = 1"), "1");
    let list: Vec<Value> =
        serde_json::from_str(&s.gw.cli_ok(&["reviews", "list", "--json"])).unwrap();
    assert_eq!(list[0]["status"], "expired", "{list:?}");
    // Too late to approve now.
    let id = list[0]["id"].as_str().unwrap();
    let late = cli_as(&s.gw, &s.bob, &["reviews", "approve", id]);
    assert!(!late.status.success());
    assert!(
        stderr(&late).contains("already expired"),
        "{}",
        stderr(&late)
    );
    s.gw.wait_audit("review.expired", |e| {
        e["action"] == "review.expired" && e["target"] == id
    });
}

#[test]
fn cancelling_or_leaving_withdraws_the_review() {
    let s = setup("10m", "");
    // Ctrl-C in psql sends a CancelRequest: the held statement is withdrawn.
    let psql = psql_bg(&s.gw, &s.alice, "delete from t where id = 1");
    let id = s.gw.pending_review(&s.bob)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let int = Command::new("kill")
        .args(["-INT", &psql.id().to_string()])
        .status()
        .unwrap();
    assert!(int.success());
    let out = psql.wait_with_output().unwrap();
    assert!(
        stderr(&out).contains("canceling statement due to user request"),
        "{}",
        stderr(&out)
    );
    assert_eq!(review(&s.gw, &id)["status"], "cancelled");

    // A client that disconnects while waiting withdraws it too; approving it afterwards fails
    // and the statement never runs.
    let mut psql = psql_bg(&s.gw, &s.alice, "delete from t where id = 2");
    let id = s.gw.pending_review(&s.bob)["id"]
        .as_str()
        .unwrap()
        .to_string();
    psql.kill().unwrap();
    psql.wait().unwrap();
    common::wait_for("the review withdrawn", Duration::from_secs(20), || {
        (review(&s.gw, &id)["status"] == "cancelled").then_some(())
    });
    let late = cli_as(&s.gw, &s.bob, &["reviews", "approve", &id]);
    assert!(!late.status.success());
    assert_eq!(count(&s.db, "select count(*) from t"), "3");
}

/// The `review` events of a server-sent event stream, as they come.
struct LiveReviews {
    child: Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl LiveReviews {
    fn follow(gw: &Gateway, token: &str) -> LiveReviews {
        use std::io::BufRead;
        let mut child = Command::new("curl")
            .args(["-sS", "-N", "-D", "-", "--max-time", "120", "--cacert"])
            .arg(gw.data().join("tls/ca.pem"))
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .arg(format!("https://{}/api/v1/live/reviews", gw.api))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        // The headers come once the gateway follows the reviews for this caller.
        let status = lines.next().unwrap().unwrap();
        assert!(status.contains(" 200"), "{status}");
        for line in lines.by_ref() {
            if line.unwrap().trim().is_empty() {
                break;
            }
        }
        LiveReviews { child, lines }
    }

    /// The next review event's review.
    fn next(&mut self) -> Value {
        let mut event = String::new();
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_string();
            } else if let (Some(data), "review") = (line.strip_prefix("data: "), event.as_str()) {
                return serde_json::from_str(data).unwrap();
            }
        }
        panic!("the stream ended without a review event");
    }
}

impl Drop for LiveReviews {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn approvers_follow_reviews_live() {
    let s = setup("10m", "");
    let mut live = LiveReviews::follow(&s.gw, &s.bob);
    let psql = psql_bg(&s.gw, &s.alice, "DELETE FROM t WHERE id = 1");
    let held = live.next();
    assert_eq!(held["status"], "pending", "{held}");
    assert_eq!(held["statement"], "DELETE FROM t WHERE id = 1");
    assert_eq!(held["requester"], "alice");
    let id = held["id"].as_str().unwrap().to_string();
    let out = cli_as(&s.gw, &s.bob, &["reviews", "approve", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let decided = live.next();
    assert_eq!(decided["id"], id.as_str());
    assert_eq!(decided["status"], "approved", "{decided}");
    let done = psql.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", stderr(&done));
}
