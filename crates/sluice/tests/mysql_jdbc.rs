//! MySQL through the gateway with JDBC: MariaDB Connector/J (Debian's libmariadb-java), run as
//! a single-file Java program, against the machine's MariaDB.

mod common;

use common::mysql::{config, MyDb};
use common::Gateway;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

const CONNECTOR_J: &str = "/usr/share/java/mariadb-java-client.jar";

const POLICY: &str = "guardrails:
  rules:
    - name: no-unbounded-writes
      action: deny
      reason: DELETE and UPDATE need a WHERE clause
      match: { statements: [delete_without_where, update_without_where] }
masking:
  mask_client: true
";

/// Runs a tests/jdbc/SluiceJdbc.java scenario and returns its JSON line.
fn jdbc(scenario: &str, env: &[(&'static str, String)]) -> Value {
    let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/jdbc/SluiceJdbc.java");
    let out = Command::new("java")
        .args(["-cp", CONNECTOR_J])
        .arg(program)
        .arg(scenario)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("java runs (test.sh installs a JDK and libmariadb-java)");
    assert!(
        out.status.success(),
        "SluiceJdbc {scenario} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(stdout.lines().last().unwrap_or("null")).unwrap()
}

#[test]
fn jdbc_text_and_server_prepared_statements_refusals_and_errors() {
    let db = MyDb::new();
    db.typed_table();
    let gw = Gateway::start(&config(&db, false, POLICY));
    let token = gw.service_account("engineering");
    let env = gw.my_env(&token, &db, true);
    let seen = jdbc("statements", &env);

    let row1 = json!([
        "1",
        "-5",
        "18446744073709551615",
        "12.34",
        "0.5",
        "2024-01-02",
        "2024-11-24 13:05:09.123456",
        "**** **** **** 1111",
        "hello"
    ]);
    let row2 = json!(["2", null, null, null, null, null, null, null, "nulls"]);
    assert_eq!(seen["text"], json!([row1, row2]), "{seen}");
    // Server-side prepared statements: the binary protocol, masked and re-encoded.
    assert_eq!(seen["prepared"], json!([row1, row2]), "{seen}");
    // A refused statement is a native error with the rule's reason; the session goes on.
    assert_eq!(seen["denied"][0], 1142, "{seen}");
    assert_eq!(seen["denied"][1], "42000");
    assert!(
        seen["denied"][2]
            .as_str()
            .unwrap()
            .contains("no-unbounded-writes"),
        "{seen}"
    );
    assert_eq!(seen["after_denial"], json!([["2"]]));
    // The server's own errors pass through intact.
    assert_eq!(seen["server_error"][0], 1146, "{seen}");
    assert_eq!(seen["server_error"][1], "42S02");
    assert!(seen["server_error"][2]
        .as_str()
        .unwrap()
        .contains("no_such_table"));

    let mut wrong = env.clone();
    for (k, v) in wrong.iter_mut() {
        if *k == "MY_PASSWORD" {
            v.push('x');
        }
    }
    let refused = jdbc("wrong_password", &wrong);
    assert_eq!(refused["error"][0], 1045, "{refused}");
    assert_eq!(refused["error"][1], "28000");
}
