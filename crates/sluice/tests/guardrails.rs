//! Guardrails with real clients: statements refused before they reach PostgreSQL, through the
//! usual evasions, with the session still usable and the refusal recorded and audited.

mod common;

use common::{Gateway, TestDb, QUICKSTART_GUARDRAILS};
use serde_json::Value;

fn setup() -> (TestDb, Gateway, String) {
    let db = TestDb::new();
    let setup = common::psql_direct(
        &db.name,
        "create table t (id int); insert into t values (1), (2); create table \"T\" (id int)",
    );
    assert!(setup.status.success());
    let gw = Gateway::start(&common::config_with_policy(&db, QUICKSTART_GUARDRAILS, ""));
    let token = gw.service_account("engineering");
    (db, gw, token)
}

/// Runs `script` through psql (one simple query per line) and returns stdout and stderr.
fn psql_script(gw: &Gateway, token: &str, script: &str) -> (String, String) {
    let out = gw.psql_script(token, script).wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn table_exists(db: &TestDb, name: &str) -> bool {
    let out = common::psql_direct(
        &db.name,
        &format!("select to_regclass('{name}') is not null"),
    );
    String::from_utf8_lossy(&out.stdout).trim() == "t"
}

#[test]
fn default_rules_refuse_through_evasions_and_the_session_stays_usable() {
    let (db, gw, token) = setup();
    let refused = [
        "DROP DATABASE postgres;",
        "drop table t;",
        "DrOp   /* sneaky */  TaBlE\tpublic.t;",
        "select 1; drop table t;",
        "drop table \"T\";",
        "truncate t;",
        "TRUNCATE TABLE ONLY t;",
        "alter system set work_mem = '1GB';",
        "copy t to program 'cat > /dev/null';",
        "select pg_terminate_backend(pg_backend_pid());",
        "select * from pg_catalog.pg_read_file('/etc/passwd');",
        "do $$ begin execute 'drop table t'; end $$;",
        "do $$ begin drop table t; end $$;",
        "with x as (select 1) select pg_cancel_backend(1) from x;",
        "selec 1;",
    ];
    let mut script = String::new();
    for s in refused {
        script.push_str(s);
        script.push_str("\nselect 'still here';\n");
    }
    let (stdout, stderr) = psql_script(&gw, &token, &script);
    assert_eq!(
        stdout.matches("still here").count(),
        refused.len(),
        "the session stays usable after each refusal: {stdout}\n{stderr}"
    );
    assert_eq!(
        stderr.matches("statement blocked by rule").count(),
        refused.len(),
        "every statement refused: {stderr}"
    );
    for rule in [
        "no-drop-database",
        "no-drop-table",
        "no-truncate",
        "no-alter-system",
        "no-copy-program",
        "no-backend-kill",
        "unparsable",
    ] {
        assert!(
            stderr.contains(&format!("\"{rule}\"")),
            "{rule} named: {stderr}"
        );
    }
    assert!(
        table_exists(&db, "t") && table_exists(&db, "\"T\""),
        "nothing was dropped"
    );
    let count = common::psql_direct(&db.name, "select count(*) from t");
    assert_eq!(
        String::from_utf8_lossy(&count.stdout).trim(),
        "2",
        "nothing was truncated"
    );

    // Recorded: every refused statement with its rule and a 42501 result; audited.
    let id = gw.wait_ended_session("pg");
    let events = gw.events(&id);
    let guards: Vec<&Value> = events.iter().filter(|e| e["kind"] == "guard").collect();
    assert_eq!(guards.len(), refused.len(), "{events:?}");
    assert!(guards.iter().all(|g| g["action"] == "denied"));
    let denied_results = events
        .iter()
        .filter(|e| e["kind"] == "result" && e["outcome"]["error"]["code"] == "42501")
        .count();
    assert_eq!(denied_results, refused.len());
    let audit = gw.wait_audit("statement.denied", |e| e["action"] == "statement.denied");
    assert_eq!(audit["session_id"], id.as_str());
}

#[test]
fn allowed_statements_pass_untouched() {
    let (db, gw, token) = setup();
    let (stdout, stderr) = psql_script(
        &gw,
        &token,
        "select count(*) from t;\ninsert into t values (3);\ndelete from t where id = 3;\ndrop table if exists not_there_but_allowed_by_nobody;\n",
    );
    // DROP TABLE is refused even for a missing table; everything else runs.
    assert!(stdout.starts_with("2\n"), "{stdout}{stderr}");
    assert!(stderr.contains("no-drop-table"), "{stderr}");
    let count = common::psql_direct(&db.name, "select count(*) from t");
    assert_eq!(String::from_utf8_lossy(&count.stdout).trim(), "2");
}

#[test]
fn extended_protocol_and_prepared_statements_are_checked() {
    let (db, gw, token) = setup();
    let statements = serde_json::json!([
        "drop table t",
        "TRUNCATE t",
        "select 1",
        "DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$",
        "select pg_terminate_backend(1)",
    ])
    .to_string();
    for prepare in ["0", "1"] {
        let r = gw.python(
            "guard",
            &[
                ("DSN", gw.dsn("pg", &token, "require")),
                ("STATEMENTS", statements.clone()),
                ("PREPARE", prepare.to_string()),
            ],
        );
        let results = r["results"].as_array().unwrap();
        let codes: Vec<&str> = results
            .iter()
            .map(|r| r["sqlstate"].as_str().unwrap_or("ok"))
            .collect();
        assert_eq!(
            codes,
            ["42501", "42501", "ok", "42501", "42501"],
            "prepare={prepare}: {r}"
        );
        assert!(results.iter().all(|r| r["usable"] == true), "{r}");
    }
    let r = gw.python(
        "guard_pipeline",
        &[("DSN", gw.dsn("pg", &token, "require"))],
    );
    assert_eq!(r["error"], "42501", "{r}");
    assert_eq!(r["after"], 3, "{r}");
    assert!(table_exists(&db, "t"));
}
