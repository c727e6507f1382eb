//! The PostgreSQL proxy with real clients (psql, psycopg 3) against the machine's PostgreSQL.

mod common;

use common::{Gateway, TestDb};
use serde_json::Value;
use std::process::Command;

fn queries(events: &[Value]) -> Vec<&Value> {
    events.iter().filter(|e| e["kind"] == "query").collect()
}

fn results(events: &[Value]) -> Vec<&Value> {
    events.iter().filter(|e| e["kind"] == "result").collect()
}

#[test]
fn psql_session_is_relayed_and_recorded_with_results() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let token = gw.service_account("engineering");
    let out = gw.psql(
        &token,
        "create table t (id int, name text); insert into t values (1, 'ada'), (2, 'linus'); select * from t order by id",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1|ada\n2|linus\n");

    let id = gw.wait_ended_session("pg");
    let events = gw.events(&id);
    assert_eq!(events.first().unwrap()["kind"], "start");
    assert_eq!(events.last().unwrap()["kind"], "end");
    assert_eq!(events.last().unwrap()["reason"], "client_quit");
    let q = queries(&events);
    assert_eq!(q.len(), 1, "one simple-query message: {events:?}");
    assert!(q[0]["text"].as_str().unwrap().starts_with("create table t"));
    let r = results(&events);
    let tags: Vec<&str> = r
        .iter()
        .map(|r| r["outcome"]["tags"][0].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["CREATE TABLE", "INSERT 0 2", "SELECT 2"]);
    assert_eq!(r[2]["columns"], serde_json::json!(["id", "name"]));
    assert_eq!(
        r[2]["rows"],
        serde_json::json!([["1", "ada"], ["2", "linus"]])
    );
    let start = &events[0];
    assert_eq!(
        start["identity"]["groups"],
        serde_json::json!(["engineering"])
    );

    let detail: Value =
        serde_json::from_str(&gw.cli_ok(&["sessions", "show", &id, "--json"])).unwrap();
    assert_eq!(detail["session"]["chain"], "ok");
}

#[test]
fn extended_protocol_with_prepared_statements_and_errors() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let token = gw.service_account("engineering");
    let r = gw.python("extended", &[("DSN", gw.dsn("pg", &token, "require"))]);
    assert_eq!(r["first"], serde_json::json!([42, "x"]));
    assert_eq!(r["prepared"], serde_json::json!([0, 2, 4]));
    assert_eq!(r["null_param"], true);
    assert_eq!(r["division_error"], "22012");
    assert_eq!(r["after_error"], "still usable");
}

#[test]
fn recording_holds_exactly_the_statements_sent_with_parameters() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let token = gw.service_account("engineering");
    gw.python("statements", &[("DSN", gw.dsn("pg", &token, "require"))]);
    let id = gw.wait_ended_session("pg");
    let events = gw.events(&id);
    let sent: Vec<(String, Value)> = queries(&events)
        .iter()
        .map(|q| (q["text"].as_str().unwrap().to_string(), q["params"].clone()))
        .collect();
    assert_eq!(
        sent,
        vec![
            ("select 'simple' as kind".to_string(), Value::Null),
            (
                "select $1::int as n, $2::text as s".to_string(),
                serde_json::json!(["7", "seven"])
            ),
            ("select $1::int as n".to_string(), serde_json::json!(["8"])),
            ("select $1::int as n".to_string(), serde_json::json!(["9"])),
        ]
    );
    let rows: Vec<Value> = results(&events).iter().map(|r| r["rows"].clone()).collect();
    assert_eq!(rows[1], serde_json::json!([["7", "seven"]]));
    assert_eq!(rows[3], serde_json::json!([["9"]]));
    assert_eq!(results(&events)[3]["columns"], serde_json::json!(["n"]));
}

#[test]
fn copy_in_and_out_of_100k_rows_matches_direct() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let token = gw.service_account("engineering");
    let r = gw.python(
        "copy",
        &[
            ("DSN", gw.dsn("pg", &token, "require")),
            ("DIRECT_DSN", db.direct_dsn()),
            ("TABLE", "copied".into()),
        ],
    );
    assert_eq!(r["count"], 100_000);
    assert_eq!(r["through"], r["direct"]);
    let id = gw.wait_ended_session("pg");
    let tags: Vec<String> = results(&gw.events(&id))
        .iter()
        .map(|r| r["outcome"]["tags"][0].as_str().unwrap().to_string())
        .collect();
    assert!(tags.contains(&"COPY 100000".to_string()), "{tags:?}");
}

#[test]
fn cancel_request_reaches_the_right_backend() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let token = gw.service_account("engineering");
    let r = gw.python(
        "cancel",
        &[
            ("DSN", gw.dsn("pg", &token, "require")),
            ("DIRECT_DSN", db.direct_dsn()),
            ("MARKER", common::unique("cancel")),
        ],
    );
    assert_eq!(
        r["sqlstate"], "57014",
        "the waiting statement was canceled: {r}"
    );
    assert_eq!(r["after"], 42);
}

#[test]
fn a_million_rows_stream_through_with_bounded_gateway_memory() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let token = gw.service_account("engineering");
    let before = gw.mem_kib("VmHWM");
    let r = gw.python("stream", &[("DSN", gw.dsn("pg", &token, "require"))]);
    assert_eq!(r["rows"], 1_000_000);
    let grown_kib = gw.mem_kib("VmHWM").saturating_sub(before);
    // The result is ~50 MiB on the wire; the gateway must not hold it.
    assert!(
        grown_kib < 24 * 1024,
        "peak RSS grew by {grown_kib} KiB while streaming"
    );
    let id = gw.wait_ended_session("pg");
    let events = gw.events(&id);
    let r = results(&events)[0];
    assert_eq!(r["outcome"]["row_count"], 1_000_000);
    assert_eq!(
        r["rows"].as_array().unwrap().len(),
        100,
        "rows are capped at recording.max_rows"
    );
    assert_eq!(r["rows_truncated"], true);
}

#[test]
fn notify_is_delivered_and_recorded() {
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let token = gw.service_account("engineering");
    let r = gw.python(
        "notify",
        &[
            ("DSN", gw.dsn("pg", &token, "require")),
            ("DIRECT_DSN", db.direct_dsn()),
        ],
    );
    assert_eq!(r["payload"], "hello through sluice");
    let id = gw.wait_ended_session("pg");
    let n: Vec<Value> = gw
        .events(&id)
        .into_iter()
        .filter(|e| e["kind"] == "notification")
        .collect();
    assert_eq!(n.len(), 1);
    assert_eq!(n[0]["channel"], "sluice_test");
}

#[test]
fn tls_is_required_unless_allowed_and_the_generated_ca_verifies() {
    let db = TestDb::new();
    let cfg = common::config(&db, "").replace("allow_plaintext: true", "allow_plaintext: false");
    let gw = Gateway::start(&cfg);
    let token = gw.service_account("engineering");
    let plain = Command::new("psql")
        .arg(gw.dsn("pg", &token, "disable"))
        .args(["-X", "-tA", "-c", "select 1"])
        .output()
        .unwrap();
    assert!(!plain.status.success());
    assert!(String::from_utf8_lossy(&plain.stderr).contains("TLS is required"));
    let ca = gw.data().join("tls/ca.pem");
    let verified = Command::new("psql")
        .arg(format!(
            "host=localhost port={} user=pg password={token} dbname=x sslmode=verify-full sslrootcert={}",
            gw.pg.port(),
            ca.display()
        ))
        .args(["-X", "-tA", "-c", "select 'verified'"])
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&verified.stdout), "verified\n");
    let mode = std::fs::metadata(gw.data().join("bootstrap-token")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);
}

#[test]
fn newer_protocol_versions_are_negotiated_down_to_3_0() {
    use common::raw;
    use std::io::Write;
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(&db, ""));
    let token = gw.service_account("engineering");
    let mut s = raw::connect(gw.pg);
    let v3_2 = (3 << 16) | 2;
    s.write_all(&raw::startup_with(
        v3_2,
        &[("user", "pg"), ("database", "x"), ("_pq_.future", "1")],
    ))
    .unwrap();
    let (tag, body) = raw::read_msg(&mut s).unwrap();
    assert_eq!(tag, b'v', "NegotiateProtocolVersion first");
    assert_eq!(
        &body[..8],
        &[0, 0, 0, 0, 0, 0, 0, 1],
        "minor 0, one unsupported option"
    );
    assert_eq!(&body[8..], b"_pq_.future\0");
    let (tag, _) = raw::read_msg(&mut s).unwrap();
    assert_eq!(tag, b'R');
    let mut pw = token.into_bytes();
    pw.push(0);
    s.write_all(&raw::typed(b'p', &pw)).unwrap();
    let mut tags = Vec::new();
    while let Some((tag, _)) = raw::read_msg(&mut s) {
        tags.push(tag);
        if tag == b'Z' {
            break;
        }
    }
    assert_eq!(tags.first(), Some(&b'R'));
    assert!(
        tags.contains(&b'K') && tags.last() == Some(&b'Z'),
        "{tags:?}"
    );
}
