//! Inline masking with real clients: what the client sees, what is recorded, and that raw
//! values appear nowhere under the data dir.

mod common;

use common::{Gateway, TestDb};
use serde_json::Value;

const CARD: &str = "4111111111111111";
const EMAIL: &str = "ada.lovelace@example.com";
const TOKEN: &str = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
const PASSWORD: &str = "correct-horse-battery";

const POLICY: &str = "masking:
  columns: ['*password*']
";

fn seed(db: &TestDb) {
    let sql = format!(
        "create table people (id int, card text, email text, note text, user_password text);
         insert into people values (1, '{CARD}', '{EMAIL}', 'token {TOKEN} here', '{PASSWORD}'),
                                   (2, 'none', 'nobody', 'order 12345', null);"
    );
    assert!(common::psql_direct(&db.name, &sql).status.success());
}

#[test]
fn clients_see_masks_and_raw_values_are_stored_nowhere() {
    let db = TestDb::new();
    seed(&db);
    let mut gw = Gateway::start(&common::config_with_policy(&db, POLICY, ""));
    let token = gw.service_account("engineering");

    let out = gw.psql(
        &token,
        "select card, email, note, user_password from people order by id",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout.lines().next().unwrap();
    assert_eq!(
        first,
        "************1111|***.********@example.com|token ghp_************************************ here|*********************"
    );
    assert!(
        stdout.contains("none|nobody|order 12345|"),
        "unmatched values pass: {stdout}"
    );

    let copy = gw.psql(&token, "copy people to stdout");
    let copied = String::from_utf8_lossy(&copy.stdout);
    assert!(
        copied.contains("************1111") && !copied.contains(CARD),
        "{copied}"
    );

    let r = gw.python(
        "fetch_rows",
        &[
            ("DSN", gw.dsn("pg", &token, "require")),
            (
                "QUERY",
                "select card, email from people where id = 1".into(),
            ),
        ],
    );
    assert_eq!(
        r["text"],
        serde_json::json!([["************1111", "***.********@example.com"]])
    );
    assert_eq!(r["binary"], r["text"], "binary format is masked too");

    // The statement text that carried a raw value is recorded masked too.
    let q = gw.psql(&token, &format!("select '{EMAIL}' as e"));
    assert!(q.status.success());

    let ids = common::wait_for(
        "four ended sessions",
        std::time::Duration::from_secs(10),
        || {
            let s: Vec<Value> = gw.sessions();
            let ended: Vec<String> = s
                .iter()
                .filter(|x| x["end_reason"].is_string())
                .map(|x| x["id"].as_str().unwrap().to_string())
                .collect();
            (ended.len() == 4).then_some(ended)
        },
    );
    let id = ids
        .iter()
        .find(|id| {
            gw.events(id)
                .iter()
                .any(|e| e["kind"] == "masking" && e["counts"]["column"] == 1)
        })
        .expect("the first session recorded its masking counts")
        .clone();
    let events = gw.events(&id);
    let masking = events
        .iter()
        .find(|e| e["kind"] == "masking")
        .expect("masking counts recorded");
    assert_eq!(masking["counts"]["card_number"], 1, "{masking}");
    assert_eq!(masking["counts"]["column"], 1, "{masking}");
    assert_eq!(masking["counts"]["github_token"], 1, "{masking}");

    gw.stop();
    for raw in [CARD, EMAIL, TOKEN, PASSWORD] {
        let hits = common::files_containing(&gw.dir, raw);
        assert!(hits.is_empty(), "{raw} found in {hits:?}");
    }
}

#[test]
fn mask_client_false_masks_only_the_recording() {
    let db = TestDb::new();
    seed(&db);
    let gw = Gateway::start(&common::config_with_policy(
        &db,
        "masking:\n  mask_client: false\n",
        "",
    ));
    let token = gw.service_account("engineering");
    let out = gw.psql(&token, "select card from people where id = 1");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), CARD);
    let id = gw.wait_ended_session("pg");
    let events = gw.events(&id);
    let result = events.iter().find(|e| e["kind"] == "result").unwrap();
    assert_eq!(result["rows"], serde_json::json!([["************1111"]]));
}
