//! MySQL through the gateway, against the machine's MariaDB, with real clients: the `mariadb`
//! command-line client, PyMySQL (text protocol) and mysql-connector-python (prepared
//! statements, binary protocol).

mod common;

use common::mysql::{config, python, run_python, MyDb};
use common::{wait_for, Gateway};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

const MASKING: &str = "masking:\n  mask_client: true\n  columns: [\"*secret*\"]\n";

const GUARDRAILS: &str = "guardrails:
  unparsable: deny
  rules:
    - name: no-drop-table
      action: deny
      reason: dropping tables is not allowed through the gateway
      match: { statements: [drop_table] }
    - name: no-unbounded-writes
      action: deny
      reason: DELETE and UPDATE need a WHERE clause
      match: { statements: [delete_without_where, update_without_where] }
    - name: review-updates
      action: review
      reason: updates need approval
      match: { statements: [update] }
";

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The session's recorded statements and results, in order.
fn recorded(gw: &Gateway, session: &str) -> Vec<Value> {
    gw.events(session)
        .into_iter()
        .filter(|e| e["kind"] == "query" || e["kind"] == "result" || e["kind"] == "guard")
        .collect()
}

#[test]
fn text_protocol_types_large_rows_masking_and_recording() {
    let db = MyDb::new();
    db.typed_table();
    db.exec(
        "CREATE TABLE blobs (id INT, payload LONGBLOB);
         INSERT INTO blobs VALUES (1, REPEAT('x', 16777210));",
    );
    db.exec("DELIMITER //\nCREATE PROCEDURE two_sets() BEGIN SELECT 1 AS a; SELECT 'b' AS b, 2 AS c; END //");
    let gw = Gateway::start(&config(&db, false, MASKING));
    let token = gw.service_account("engineering");

    // PyMySQL over TLS: every common type, NULLs, a row of 16 MB+ (split over two packets).
    let seen = run_python("text_protocol", &gw.my_env(&token, &db, true));
    assert_eq!(
        seen["rows"][0],
        serde_json::json!([
            "1",
            "-5",
            "18446744073709551615",
            "12.34",
            "0.5",
            "2024-01-02",
            "2024-11-24 13:05:09.123456",
            "**** **** **** 1111",
            "hello"
        ])
    );
    assert_eq!(
        seen["rows"][1],
        serde_json::json!(["2", null, null, null, null, null, null, null, "nulls"])
    );
    let x = sha256_hex(&vec![b'x'; 16_777_210]);
    assert_eq!(
        seen["blob"],
        serde_json::json!([1, 16_777_210, 16_777_210, x])
    );
    assert_eq!(seen["error"][0], 1146, "{seen}");
    assert!(seen["error"][1].as_str().unwrap().contains("doesn't exist"));
    assert_eq!(seen["after_error"], 1);
    // The client is told a gateway connection id, far from the server's own.
    assert!(seen["thread_id"].as_u64().unwrap() >= 1 << 30);

    // The mariadb client: multi-statements and a procedure's several result sets.
    let out = gw.mariadb(
        &token,
        "SELECT 1 AS one; CALL two_sets(); SELECT card FROM typed WHERE id = 1",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "one\n1\na\n1\nb\tc\nb\t2\ncard\n**** **** **** 1111\n"
    );

    let ids: Vec<String> = gw
        .wait_ended_sessions(2)
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        let v = gw.cli(&["verify", id]);
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    }
    let cli = ids
        .iter()
        .map(|id| recorded(&gw, id))
        .find(|ev| {
            ev.iter()
                .any(|e| e["text"].as_str().is_some_and(|t| t.contains("two_sets")))
        })
        .expect("the mariadb session's recording");
    let call = cli
        .iter()
        .find(|e| e["kind"] == "query" && e["text"].as_str().unwrap().contains("CALL"))
        .unwrap();
    let results: Vec<&Value> = cli
        .iter()
        .filter(|e| e["kind"] == "result" && e["query"] == call["id"])
        .collect();
    // The procedure's two result sets and its final OK, under the CALL's statement id.
    assert_eq!(results.len(), 3, "{results:?}");
    assert_eq!(results[0]["rows"], serde_json::json!([["1"]]));
    assert_eq!(results[1]["columns"], serde_json::json!(["b", "c"]));
    assert_eq!(results[1]["rows"], serde_json::json!([["b", "2"]]));
    assert_eq!(results[2]["outcome"]["tags"], serde_json::json!(["OK 0"]));
    assert!(cli
        .iter()
        .any(|e| e["rows"] == serde_json::json!([["**** **** **** 1111"]])));
    let recording = serde_json::to_string(&cli).unwrap();
    assert!(
        !recording.contains("4111 1111 1111 1111"),
        "raw card in the recording"
    );
}

/// SHA-256 of `data`, hex, by `sha256sum`.
fn sha256_hex(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().next().unwrap().to_string()
}

#[test]
fn prepared_statements_over_the_binary_protocol() {
    let db = MyDb::new();
    db.typed_table();
    let gw = Gateway::start(&config(&db, false, MASKING));
    let token = gw.service_account("engineering");
    let seen = run_python("prepared", &gw.my_env(&token, &db, true));
    assert_eq!(
        seen["rows"],
        serde_json::json!([
            [
                "1",
                "-5",
                "18446744073709551615",
                "12.34",
                "0.5",
                "2024-01-02",
                "2024-11-24 13:05:09.123456",
                "**** **** **** 1111",
                "hello"
            ],
            ["2", null, null, null, null, null, null, null, "nulls"]
        ])
    );
    assert_eq!(
        seen["inserted"],
        serde_json::json!(["-7", "**** **** **** 0004", null])
    );
    // The row really is in the table, unmasked: masking applies to what leaves the target.
    assert!(db
        .exec("SELECT card FROM typed WHERE id = 10")
        .contains("5500 0000 0000 0004"));

    let id = gw.wait_ended_session("my");
    let events = recorded(&gw, &id);
    let insert = events
        .iter()
        .find(|e| e["kind"] == "query" && e["text"].as_str().unwrap().starts_with("INSERT"))
        .expect("the INSERT is recorded");
    // Parameters are recorded by value, masked like results.
    assert_eq!(
        insert["params"],
        serde_json::json!(["10", "-7", "**** **** **** 0004", null])
    );
    let select = events
        .iter()
        .find(|e| e["kind"] == "query" && e["text"].as_str().unwrap().contains("id >= ?"))
        .unwrap();
    assert_eq!(select["params"], serde_json::json!(["1", "zzz"]));
    let result = events
        .iter()
        .find(|e| e["kind"] == "result" && e["query"] == select["id"])
        .unwrap();
    assert_eq!(result["rows"][0][0], "1");
    assert_eq!(result["rows"][0][7], "**** **** **** 1111");
}

#[test]
fn cursor_fetch_and_long_data() {
    let db = MyDb::new();
    db.typed_table();
    db.exec("CREATE TABLE blobs (id INT PRIMARY KEY, data MEDIUMBLOB, card VARCHAR(40))");
    // `note` masked whole by a column rule, cards by the detector.
    let gw = Gateway::start(&config(
        &db,
        false,
        "masking:\n  mask_client: true\n  columns: [\"note\"]\n",
    ));
    let token = gw.service_account("engineering");
    let seen = run_python("cursor_and_long_data", &gw.my_env(&token, &db, true));

    // Long data arrives whole; a BLOB's bytes are never edited by detectors.
    let blob: Vec<u8> = (0..=255u8).cycle().take(256 * 1200).collect();
    assert_eq!(seen["blob_len"], 307_200, "{seen}");
    assert_eq!(seen["blob_sha256"], sha256_hex(&blob));
    assert_eq!(seen["blob_card"], "**** **** **** 1111");
    assert_eq!(
        db.exec("SELECT LENGTH(data) AS n, card FROM blobs"),
        "n\tcard\n307200\t4111 1111 1111 1111\n"
    );

    // Cursor rows come two at a time and are masked like any other rows, column rules too
    // (a whole-column mask keeps the value's length).
    assert_eq!(
        seen["fetched"],
        serde_json::json!([["1", "**** **** **** 1111", "*****"], ["2", null, "*****"]]),
        "{seen}"
    );
    assert_eq!(
        seen["after"], "after",
        "the session goes on after the cursor"
    );

    let id = gw.wait_ended_session("my");
    let events = recorded(&gw, &id);
    let insert = events
        .iter()
        .find(|e| e["kind"] == "query" && e["text"].as_str().unwrap().starts_with("INSERT"))
        .expect("the INSERT is recorded");
    assert_eq!(insert["params"][0], "1");
    assert_eq!(insert["params"][2], "**** **** **** 1111");
    assert!(!insert["params"][1].is_null(), "the long data is recorded");
    // The rows fetched through the cursor are results of the execution that opened it.
    let cursor = events
        .iter()
        .find(|e| e["kind"] == "query" && e["text"].as_str().unwrap().contains("FROM typed"))
        .expect("the cursor's statement is recorded");
    let rows: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "result" && e["query"] == cursor["id"])
        .filter_map(|e| e["rows"].as_array())
        .flatten()
        .collect();
    assert_eq!(rows.len(), 2, "{events:?}");
    assert_eq!(rows[0][1], "**** **** **** 1111");
    assert_eq!(rows[0][2], "*****");
}

#[test]
fn refusals_are_native_errors_and_audited() {
    let db = MyDb::new();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2);");
    let gw = Gateway::start(&config(&db, false, GUARDRAILS));
    let token = gw.service_account("engineering");

    let wrong = gw.mariadb(&format!("{token}x"), "SELECT 1");
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("ERROR 1045 (28000)"),
        "{}",
        stderr(&wrong)
    );
    let plain = gw.mariadb_as("my", &token, false, "SELECT 1");
    assert!(stderr(&plain).contains("ERROR 3159"), "{}", stderr(&plain));
    let unknown = gw.mariadb_as("nope", &token, true, "SELECT 1");
    assert!(
        stderr(&unknown).contains("ERROR 1044 (42000)"),
        "{}",
        stderr(&unknown)
    );

    // A denied statement gets ERR 1142 with the rule's reason; the session goes on.
    let out = gw.mariadb(&token, "DELETE FROM t; SELECT 'still here'");
    assert!(
        stderr(&out).contains("ERROR 1142 (42000)"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("no-unbounded-writes"));
    let out = gw.mariadb(&token, "DROP TABLE t");
    assert!(
        stderr(&out).contains("dropping tables is not allowed"),
        "{}",
        stderr(&out)
    );
    let out = gw.mariadb(&token, "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t");
    assert!(
        stderr(&out).contains("LOAD DATA LOCAL INFILE is refused"),
        "{}",
        stderr(&out)
    );
    let out = gw.mariadb(
        &token,
        "DELETE FROM t WHERE id = 1; SELECT COUNT(*) AS n FROM t",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "n\n1\n");
    assert_eq!(db.exec("SELECT id FROM t"), "id\n2\n");

    gw.wait_audit("failed login", |e| {
        e["action"] == "auth.connect" && e["outcome"] == "failure" && e["protocol"] == "mysql"
    });
    let denied = gw.wait_audit("denied statement", |e| {
        e["action"] == "statement.denied" && e["rule"] == "no-unbounded-writes"
    });
    assert_eq!(denied["statement"], "DELETE FROM t");
    assert_eq!(denied["protocol"], "mysql");
}

#[test]
fn an_unreachable_target_is_a_server_error_the_client_can_show() {
    let db = MyDb::new();
    let gw = Gateway::start(&config(&db, false, ""));
    let token = gw.service_account("engineering");
    let closed = common::free_port().to_string();
    gw.cli_ok(&[
        "connections",
        "add",
        "gone",
        "--type",
        "mysql",
        "--host",
        "127.0.0.1",
        "--port",
        &closed,
        "--username",
        "root",
    ]);
    gw.grant("engineering", "gone");

    // The stock client shows the gateway's error number and reason (a client-library number
    // such as 2003 would reach it as "Received malformed packet").
    let out = gw.mariadb_as("gone", &token, true, "SELECT 1");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("ERROR 1429 (08S01)"), "{err}");
    assert!(err.contains("cannot reach target"), "{err}");
    let failed = gw.wait_audit("the failed session start", |e| {
        e["action"] == "session.start" && e["outcome"] == "failure" && e["connection"] == "gone"
    });
    assert_eq!(failed["fault"], "target");

    // The gateway and other connections are unharmed.
    let out = gw.mariadb(&token, "SELECT 7 AS seven");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "seven\n7\n");
}

#[test]
fn malformed_packets_end_only_their_session() {
    let db = MyDb::new();
    let gw = Gateway::start(&config(&db, true, ""));
    let token = gw.service_account("engineering");
    let seen = run_python("malformed", &gw.my_env(&token, &db, false));
    assert_eq!(seen["error"][0], 1156, "{seen}");
    assert!(seen["error"][1]
        .as_str()
        .unwrap()
        .contains("unknown command"));
    let ended = gw.wait_ended_session("my");
    let end = gw.events(&ended).pop().unwrap();
    assert_eq!(end["reason"], "client_protocol_error");
    // The gateway and new sessions are unharmed.
    let out = gw.mariadb(&token, "SELECT 7 AS seven");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "seven\n7\n");
}

/// The target's thread running `needle`, if any (`information_schema.processlist`).
fn running(db: &MyDb, needle: &str) -> bool {
    db.exec(&format!(
        "SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE '{needle}%' AND command = 'Query'"
    ))
    .lines()
    .nth(1)
    .is_some_and(|n| n != "0")
}

#[test]
fn kill_query_from_another_connection_and_admin_kill() {
    let db = MyDb::new();
    let gw = Gateway::start(&config(&db, false, ""));
    let token = gw.service_account("engineering");
    let env = gw.my_env(&token, &db, true);

    // KILL QUERY with the id the client was told (the gateway's) stops the target's query,
    // and the session stays usable.
    let mut sleeper = python("sleep_then_select", &env)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(sleeper.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    wait_for(
        "SLEEP running on the target",
        Duration::from_secs(20),
        || running(&db, "SELECT SLEEP(60)").then_some(()),
    );
    let mut kill_env = env.clone();
    kill_env.push(("MY_KILL", first["thread_id"].to_string()));
    run_python("kill_query", &kill_env);
    let done: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    // SLEEP interrupted by KILL QUERY returns 1 (MariaDB) or fails with 1317.
    assert!(
        done["ended"] == serde_json::json!(["result", "1"]) || done["ended"][1] == 1317,
        "{done}"
    );
    assert_eq!(done["usable"], 42);
    sleeper.wait().unwrap();

    // An administrator's kill ends the session and the statement on the target.
    let cli = gw.mariadb_spawn(&token, "SELECT SLEEP(61)");
    wait_for(
        "SLEEP(61) running on the target",
        Duration::from_secs(20),
        || running(&db, "SELECT SLEEP(61)").then_some(()),
    );
    let live = wait_for("the live session", Duration::from_secs(10), || {
        gw.sessions()
            .into_iter()
            .find(|s| s["end_reason"].is_null() && s["connection"] == "my")
    });
    gw.cli_ok(&["sessions", "kill", live["id"].as_str().unwrap()]);
    let out = cli.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("administrator"), "{}", stderr(&out));
    wait_for(
        "the target's statement gone",
        Duration::from_secs(20),
        || (!running(&db, "SELECT SLEEP(61)")).then_some(()),
    );
}
