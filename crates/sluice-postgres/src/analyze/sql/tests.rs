//! What the analyzer sees, including through the usual evasions.

use super::analyze;

fn classes(sql: &str) -> Vec<String> {
    let a = analyze(sql);
    assert!(a.unparsable.is_none(), "{sql}: {:?}", a.unparsable);
    a.statements.into_iter().flat_map(|s| s.classes).collect()
}

fn has(sql: &str, class: &str) {
    let c = classes(sql);
    assert!(
        c.iter().any(|x| x == class),
        "{sql:?} should be {class}, got {c:?}"
    );
}

fn lacks(sql: &str, class: &str) {
    let c = classes(sql);
    assert!(
        !c.iter().any(|x| x == class),
        "{sql:?} should not be {class}, got {c:?}"
    );
}

#[test]
fn default_rule_classes() {
    has("DROP DATABASE x", "drop_database");
    has("drop   table /* hi */ public.t", "drop_table");
    has("TRUNCATE t", "truncate");
    has("ALTER SYSTEM SET work_mem = '1GB'", "alter_system");
    has("COPY t TO PROGRAM 'cat > /tmp/x'", "copy_program");
    has("GRANT ALL ON t TO bob", "grant");
    has("CREATE ROLE eve SUPERUSER", "create_role");
    has("DELETE FROM t", "delete_without_where");
    has("DELETE FROM t WHERE 1 = 1", "delete_without_where");
    lacks("DELETE FROM t WHERE id = 3", "delete_without_where");
    has("UPDATE t SET a = 1", "update_without_where");
    has("select 1; DrOp TaBlE t", "drop_table");
}

#[test]
fn nested_statements_are_seen() {
    has(
        "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
        "delete",
    );
    has("EXPLAIN ANALYZE DELETE FROM t", "delete");
    has("PREPARE p AS DELETE FROM t", "delete");
    has("CREATE TABLE c AS SELECT * FROM t", "select");
    has("DO $$ BEGIN DROP TABLE t; END $$", "drop_table");
    has("DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$", "drop_table");
    has(
        "DO $$ BEGIN EXECUTE 'DROP ' || 'TABLE t'; END $$",
        "dynamic_sql",
    );
    has(
        "DO $$ BEGIN PERFORM pg_terminate_backend(1); END $$",
        "select",
    );
}

#[test]
fn tables_and_functions() {
    let a = analyze("SELECT pg_catalog.pg_terminate_backend(pid) FROM audit.log JOIN x ON true");
    let s = &a.statements[0];
    assert!(s
        .functions
        .contains(&"pg_catalog.pg_terminate_backend".to_string()));
    assert!(s.tables.contains(&"audit.log".to_string()) && s.tables.contains(&"x".to_string()));
    let d = analyze("DROP TABLE secrets.keys");
    assert!(d.statements[0].tables.contains(&"secrets.keys".to_string()));
    let f = analyze("DO $$ BEGIN PERFORM lo_export(1, '/tmp/x'); END $$");
    assert!(
        f.statements[0].functions.contains(&"lo_export".to_string()),
        "{f:?}"
    );
}

#[test]
fn unparsable_text_says_so() {
    assert!(analyze("SELEC 1").unparsable.is_some());
    assert!(analyze("DO LANGUAGE plpython3u $$ import os $$")
        .unparsable
        .is_some());
    assert!(analyze("").statements.is_empty());
}
