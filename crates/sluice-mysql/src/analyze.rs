//! SQL analysis for the guard: `sqlparser`'s MySQL dialect turns statement text into
//! statement facts with the same class names the PostgreSQL adapter uses where a statement
//! exists in both (`select`, `delete_without_where`, `drop_table`, `grant`, …), plus MySQL's
//! own (`load_data_local`, `kill`, `call`). Nested statements (`EXPLAIN`, `PREPARE … FROM`)
//! are classified too; the normalized text has every literal replaced by `?`.

use sluice_policy::analysis::Analysis;
use sluice_policy::StatementFacts;
use sqlparser::ast::{
    visit_expressions, visit_expressions_mut, visit_relations, visit_statements, Expr, KillType,
    ObjectType, Statement, Value,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// Analyzes one command text (one or more statements).
pub fn analyze(text: &str) -> Analysis {
    let mut out = Analysis::default();
    if is_load_data_local(text) {
        // sqlparser does not read MySQL's LOAD DATA; the class is all the guard needs.
        out.statements.push(StatementFacts {
            classes: vec!["load_data".into(), "load_data_local".into()],
            ..Default::default()
        });
        out.normalized = text.to_string();
        return out;
    }
    let mut statements = match Parser::parse_sql(&MySqlDialect {}, text) {
        Ok(s) => s,
        Err(e) => {
            out.unparsable = Some(e.to_string());
            return out;
        }
    };
    for stmt in &statements {
        let mut facts = StatementFacts::default();
        let _ = visit_statements(stmt, |s| {
            classify(s, &mut facts.classes);
            ControlFlow::<()>::Continue(())
        });
        let _ = visit_relations(stmt, |name| {
            facts.tables.push(unquote(&name.to_string()));
            ControlFlow::<()>::Continue(())
        });
        let _ = visit_expressions(stmt, |e| {
            if let Expr::Function(f) = e {
                facts.functions.push(unquote(&f.name.to_string()));
            }
            ControlFlow::<()>::Continue(())
        });
        for v in [&mut facts.classes, &mut facts.tables, &mut facts.functions] {
            v.sort();
            v.dedup();
        }
        out.statements.push(facts);
    }
    let _ = visit_expressions_mut(&mut statements, |e| {
        if let Expr::Value(v) = e {
            v.value = Value::Placeholder("?".into());
        }
        ControlFlow::<()>::Continue(())
    });
    out.normalized = statements
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    out
}

/// `KILL [QUERY | CONNECTION] id`: the modifier as it must be written back (`"QUERY "`,
/// `"CONNECTION "` or empty) and the id.
pub fn kill_target(text: &str) -> Option<(&'static str, u64)> {
    let statements = Parser::parse_sql(&MySqlDialect {}, text).ok()?;
    match statements.as_slice() {
        [Statement::Kill { modifier, id }] => {
            let m = match modifier {
                Some(KillType::Query) => "QUERY ",
                Some(KillType::Connection) => "CONNECTION ",
                Some(_) => return None,
                None => "",
            };
            Some((m, *id))
        }
        _ => None,
    }
}

/// Lower-case, without backticks or double quotes.
fn unquote(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '`' && *c != '"')
        .flat_map(char::to_lowercase)
        .collect()
}

/// `LOAD DATA [LOW_PRIORITY | CONCURRENT] LOCAL INFILE`, whatever the case and spacing.
fn is_load_data_local(text: &str) -> bool {
    let mut words = text
        .split(|c: char| c.is_whitespace() || c == ';')
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase);
    if words.next().as_deref() != Some("load") || words.next().as_deref() != Some("data") {
        return false;
    }
    words.take(2).any(|w| w == "local")
}

fn push(classes: &mut Vec<String>, class: &str) {
    classes.push(class.to_string());
}

fn classify(s: &Statement, classes: &mut Vec<String>) {
    match s {
        Statement::Query(_) => push(classes, "select"),
        Statement::Insert(_) => push(classes, "insert"),
        Statement::Update(u) => {
            push(classes, "update");
            if u.selection.is_none() {
                push(classes, "update_without_where");
            }
        }
        Statement::Delete(d) => {
            push(classes, "delete");
            if d.selection.is_none() {
                push(classes, "delete_without_where");
            }
        }
        Statement::Truncate(_) => push(classes, "truncate"),
        Statement::Drop { object_type, .. } => {
            push(classes, "drop");
            let kind = match object_type {
                ObjectType::Table => "drop_table",
                ObjectType::Database | ObjectType::Schema => "drop_database",
                ObjectType::View => "drop_view",
                ObjectType::Index => "drop_index",
                ObjectType::Role | ObjectType::User => "drop_role",
                _ => "drop_object",
            };
            push(classes, kind);
        }
        Statement::Grant(_) | Statement::GrantRole(_) => push(classes, "grant"),
        Statement::Revoke(_) | Statement::RevokeRole(_) => push(classes, "revoke"),
        Statement::CreateUser(_) => push(classes, "create_role"),
        Statement::AlterUser(_) => push(classes, "alter_role"),
        Statement::CreateTable(_) => push(classes, "create_table"),
        Statement::AlterTable(_) => push(classes, "alter_table"),
        Statement::Kill { .. } => push(classes, "kill"),
        Statement::Call(_) => push(classes, "call"),
        Statement::Prepare { .. } | Statement::Execute { .. } => push(classes, "dynamic_sql"),
        Statement::LoadData { local, .. } => {
            push(classes, "load_data");
            if *local {
                push(classes, "load_data_local");
            }
        }
        Statement::Set(_) => push(classes, "set"),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::analyze;

    fn classes(sql: &str) -> Vec<String> {
        let a = analyze(sql);
        assert!(a.unparsable.is_none(), "{sql}: {:?}", a.unparsable);
        a.statements.into_iter().flat_map(|s| s.classes).collect()
    }

    #[test]
    fn classes_match_the_postgres_names() {
        assert_eq!(classes("DROP DATABASE shop"), ["drop", "drop_database"]);
        assert_eq!(classes("drop table `t1`"), ["drop", "drop_table"]);
        assert_eq!(classes("TRUNCATE TABLE t"), ["truncate"]);
        assert_eq!(classes("DELETE FROM t"), ["delete", "delete_without_where"]);
        assert_eq!(classes("DELETE FROM t WHERE id = 1"), ["delete"]);
        assert_eq!(
            classes("UPDATE t SET a = 1"),
            ["update", "update_without_where"]
        );
        assert_eq!(classes("GRANT ALL ON *.* TO 'x'@'%'"), ["grant"]);
        assert_eq!(
            classes("SELECT 1; DELETE FROM t"),
            ["select", "delete", "delete_without_where"]
        );
        assert_eq!(
            classes("LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t"),
            ["load_data", "load_data_local"]
        );
    }

    #[test]
    fn tables_functions_and_normalized_text() {
        let a = analyze("SELECT SLEEP(5), name FROM `Shop`.`Users` WHERE id = 42 AND n = 'x1'");
        let f = &a.statements[0];
        assert_eq!(f.tables, ["shop.users"]);
        assert_eq!(f.functions, ["sleep"]);
        assert!(
            !a.normalized.contains("42") && !a.normalized.contains("x1"),
            "{}",
            a.normalized
        );
        assert!(analyze("SELEC 1").unparsable.is_some());
        assert_eq!(
            super::kill_target("kill query 1073741825"),
            Some(("QUERY ", 1073741825))
        );
        assert_eq!(super::kill_target("KILL 5"), Some(("", 5)));
        assert_eq!(super::kill_target("SELECT 5"), None);
    }
}
