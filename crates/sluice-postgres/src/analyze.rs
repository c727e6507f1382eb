//! SQL analysis for the guard: PostgreSQL's own parser (`pg_query`) turns statement text into
//! `StatementFacts` (classes, tables, functions), following nested statements: CTEs,
//! `EXPLAIN`, `PREPARE`, `DECLARE CURSOR`, `CREATE TABLE AS`, and the SQL inside `DO` blocks
//! as far as the PL/pgSQL parser can see (static `EXECUTE 'literal'` included; `EXECUTE` of a
//! computed string is classed `dynamic_sql`).
//!
//! Parsing costs ~10 µs, so analyses are cached ([`AnalysisCache`]).

mod sql;

pub use sluice_policy::analysis::{Analysis, AnalysisCache};
pub use sql::analyze;
