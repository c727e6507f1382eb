//! Statement text → facts, with PostgreSQL's parser.

use super::Analysis;
use pg_query::protobuf::{self, ObjectType};
use pg_query::{NodeEnum, NodeRef};
use sluice_policy::StatementFacts;

/// How deep `DO` blocks and `EXECUTE` strings are followed.
const MAX_DEPTH: usize = 4;

/// Analyzes one command text (one or more statements).
pub fn analyze(text: &str) -> Analysis {
    let mut out = Analysis::default();
    match pg_query::parse(text, 0) {
        Ok(parsed) => {
            for raw in &parsed.protobuf.stmts {
                let mut facts = StatementFacts::default();
                if let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) {
                    if let Err(why) = walk(node, 0, &mut facts) {
                        out.unparsable = Some(why);
                    }
                }
                dedup(&mut facts.classes);
                dedup(&mut facts.tables);
                dedup(&mut facts.functions);
                out.statements.push(facts);
            }
            out.normalized = pg_query::normalize(text).unwrap_or_default();
        }
        Err(e) => out.unparsable = Some(e.to_string()),
    }
    out
}

fn dedup(v: &mut Vec<String>) {
    v.sort();
    v.dedup();
}

/// Adds the facts of `root` and everything nested in it.
fn walk(root: &NodeEnum, depth: usize, facts: &mut StatementFacts) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("statements nested too deeply to analyze".into());
    }
    for (node, _, _, _) in root.nodes() {
        classify(node, depth, facts)?;
    }
    Ok(())
}

fn push(facts: &mut StatementFacts, class: &str) {
    facts.classes.push(class.to_string());
}

fn classify(node: NodeRef<'_>, depth: usize, facts: &mut StatementFacts) -> Result<(), String> {
    match node {
        NodeRef::SelectStmt(s) => {
            push(facts, "select");
            if s.into_clause.is_some() {
                push(facts, "select_into");
            }
        }
        NodeRef::InsertStmt(_) => push(facts, "insert"),
        NodeRef::UpdateStmt(s) => {
            push(facts, "update");
            if !filters_rows(s.where_clause.as_deref()) {
                push(facts, "update_without_where");
            }
        }
        NodeRef::DeleteStmt(s) => {
            push(facts, "delete");
            if !filters_rows(s.where_clause.as_deref()) {
                push(facts, "delete_without_where");
            }
        }
        NodeRef::MergeStmt(_) => push(facts, "merge"),
        NodeRef::TruncateStmt(_) => push(facts, "truncate"),
        NodeRef::DropStmt(s) => {
            let kind = ObjectType::try_from(s.remove_type)
                .map(|t| {
                    t.as_str_name()
                        .trim_start_matches("OBJECT_")
                        .to_ascii_lowercase()
                })
                .unwrap_or_else(|_| "object".into());
            push(facts, "drop");
            facts.classes.push(format!("drop_{kind}"));
            if kind == "table" || kind == "view" || kind == "matview" || kind == "foreign_table" {
                for obj in &s.objects {
                    if let Some(NodeEnum::List(l)) = obj.node.as_ref() {
                        facts.tables.push(dotted(&l.items));
                    }
                }
            }
        }
        NodeRef::DropdbStmt(_) => push(facts, "drop_database"),
        NodeRef::AlterSystemStmt(_) => push(facts, "alter_system"),
        NodeRef::CopyStmt(s) => {
            push(facts, "copy");
            push(facts, if s.is_from { "copy_from" } else { "copy_to" });
            if s.is_program {
                push(facts, "copy_program");
            } else if !s.filename.is_empty() {
                push(facts, "copy_file");
            }
        }
        NodeRef::GrantStmt(s) => push(facts, if s.is_grant { "grant" } else { "revoke" }),
        NodeRef::GrantRoleStmt(s) => push(facts, if s.is_grant { "grant" } else { "revoke" }),
        NodeRef::CreateRoleStmt(_) => push(facts, "create_role"),
        NodeRef::AlterRoleStmt(_) => push(facts, "alter_role"),
        NodeRef::DropRoleStmt(_) => push(facts, "drop_role"),
        NodeRef::RangeVar(r) => facts.tables.push(qualified(&r.schemaname, &r.relname)),
        NodeRef::FuncCall(f) => facts.functions.push(dotted(&f.funcname)),
        NodeRef::PrepareStmt(s) => {
            push(facts, "prepare");
            if let Some(q) = s.query.as_ref().and_then(|q| q.node.as_ref()) {
                walk(q, depth + 1, facts)?;
            }
        }
        NodeRef::DeclareCursorStmt(s) => {
            push(facts, "declare_cursor");
            if let Some(q) = s.query.as_ref().and_then(|q| q.node.as_ref()) {
                walk(q, depth + 1, facts)?;
            }
        }
        NodeRef::DoStmt(s) => {
            push(facts, "do");
            do_block(&s.args, depth, facts)?;
        }
        other => {
            // Every other statement is classed by its node name: `CreateStmt` → `create`,
            // `VariableSetStmt` → `variable_set`.
            let name = format!("{other:?}");
            let name = name.split('(').next().unwrap_or("");
            if let Some(stem) = name.strip_suffix("Stmt") {
                facts.classes.push(snake(stem));
            }
        }
    }
    Ok(())
}

/// Whether a WHERE clause can filter rows: absent, or without any column reference
/// (`WHERE true`, `WHERE 1 = 1`), it cannot.
fn filters_rows(clause: Option<&protobuf::Node>) -> bool {
    let Some(node) = clause.and_then(|n| n.node.as_ref()) else {
        return false;
    };
    if matches!(node, NodeEnum::ColumnRef(_)) {
        return true;
    }
    node.nodes()
        .iter()
        .any(|(n, _, _, _)| matches!(n, NodeRef::ColumnRef(_) | NodeRef::SubLink(_)))
}

fn qualified(schema: &str, name: &str) -> String {
    if schema.is_empty() {
        name.to_string()
    } else {
        format!("{schema}.{name}")
    }
}

fn dotted(parts: &[protobuf::Node]) -> String {
    parts
        .iter()
        .filter_map(|p| match p.node.as_ref() {
            Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Follows the body of a `DO` block through the PL/pgSQL parser.
fn do_block(
    args: &[protobuf::Node],
    depth: usize,
    facts: &mut StatementFacts,
) -> Result<(), String> {
    let mut body = None;
    let mut language = "plpgsql".to_string();
    for a in args {
        if let Some(NodeEnum::DefElem(d)) = a.node.as_ref() {
            let value = match d.arg.as_ref().and_then(|v| v.node.as_ref()) {
                Some(NodeEnum::String(s)) => s.sval.clone(),
                _ => continue,
            };
            match d.defname.as_str() {
                "as" => body = Some(value),
                "language" => language = value.to_ascii_lowercase(),
                _ => {}
            }
        }
    }
    if language != "plpgsql" {
        facts.classes.push(format!("do_{language}"));
        return Err(format!(
            "DO blocks in language {language} cannot be analyzed"
        ));
    }
    let body = body.ok_or("DO block without a body")?;
    let tag = "$sluice_do$";
    if body.contains(tag) {
        return Err("DO block body cannot be analyzed".into());
    }
    let wrapped =
        format!("CREATE FUNCTION sluice_do() RETURNS void LANGUAGE plpgsql AS {tag}{body}{tag}");
    let tree = pg_query::parse_plpgsql(&wrapped).map_err(|e| format!("DO block: {e}"))?;
    plpgsql(&tree, depth + 1, facts)
}

/// Walks a PL/pgSQL parse tree (JSON) for the SQL it runs.
fn plpgsql(v: &serde_json::Value, depth: usize, facts: &mut StatementFacts) -> Result<(), String> {
    match v {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                match key.as_str() {
                    "PLpgSQL_stmt_dynexecute" => {
                        push(facts, "dynamic_sql");
                        let query = inner
                            .pointer("/query/PLpgSQL_expr/query")
                            .and_then(|q| q.as_str());
                        if let Some(sql) = query.and_then(string_literal) {
                            embedded(&sql, depth, facts)?;
                        }
                        plpgsql(inner, depth, facts)?;
                    }
                    "PLpgSQL_expr" => {
                        if let Some(q) = inner.get("query").and_then(|q| q.as_str()) {
                            expression(q, depth, facts)?;
                        }
                    }
                    _ => plpgsql(inner, depth, facts)?,
                }
            }
            Ok(())
        }
        serde_json::Value::Array(items) => items.iter().try_for_each(|i| plpgsql(i, depth, facts)),
        _ => Ok(()),
    }
}

/// A PL/pgSQL expression or embedded statement: parsed as a statement, else as `SELECT expr`.
fn expression(q: &str, depth: usize, facts: &mut StatementFacts) -> Result<(), String> {
    let parsed = pg_query::parse(q, 0).or_else(|_| pg_query::parse(&format!("SELECT {q}"), 0));
    let parsed = parsed.map_err(|e| format!("DO block statement: {e}"))?;
    for raw in &parsed.protobuf.stmts {
        if let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) {
            walk(node, depth, facts)?;
        }
    }
    Ok(())
}

/// SQL text run by `EXECUTE 'literal'`.
fn embedded(sql: &str, depth: usize, facts: &mut StatementFacts) -> Result<(), String> {
    let parsed = pg_query::parse(sql, 0).map_err(|e| format!("EXECUTE string: {e}"))?;
    for raw in &parsed.protobuf.stmts {
        if let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) {
            walk(node, depth + 1, facts)?;
        }
    }
    Ok(())
}

/// The value of an expression that is one string constant (`'DROP TABLE t'`, `$q$…$q$`,
/// `'a' || 'b'` is not one).
fn string_literal(expr: &str) -> Option<String> {
    let parsed = pg_query::parse(&format!("SELECT {expr}"), 0).ok()?;
    let stmt = parsed
        .protobuf
        .stmts
        .first()?
        .stmt
        .as_ref()?
        .node
        .as_ref()?;
    let NodeEnum::SelectStmt(s) = stmt else {
        return None;
    };
    let target = s.target_list.first()?.node.as_ref()?;
    let NodeEnum::ResTarget(t) = target else {
        return None;
    };
    match t.val.as_ref()?.node.as_ref()? {
        NodeEnum::AConst(c) => match c.val.as_ref()? {
            protobuf::a_const::Val::Sval(s) => Some(s.sval.clone()),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests;
