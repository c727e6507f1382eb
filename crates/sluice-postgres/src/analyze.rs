//! SQL analysis for the guard: PostgreSQL's own parser (`pg_query`) turns statement text into
//! [`StatementFacts`] (classes, tables, functions), following nested statements: CTEs,
//! `EXPLAIN`, `PREPARE`, `DECLARE CURSOR`, `CREATE TABLE AS`, and the SQL inside `DO` blocks
//! as far as the PL/pgSQL parser can see (static `EXECUTE 'literal'` included; `EXECUTE` of a
//! computed string is classed `dynamic_sql`).
//!
//! Parsing costs ~10 µs, so analyses are cached per text with numeric literals folded
//! (`WHERE aid = 12345` and `WHERE aid = 678` share an entry): no fact the guard uses depends on
//! a number's value. Texts with double quotes are cached verbatim (a digit inside a quoted
//! identifier is part of a name).

mod cache;
mod sql;

pub use cache::AnalysisCache;
pub use sql::analyze;

use sluice_policy::StatementFacts;

/// What the parser found in one command text.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Analysis {
    /// One entry per top-level statement.
    pub statements: Vec<StatementFacts>,
    /// `pg_query`'s normalized text (constants as `$n`), for regex rules.
    pub normalized: String,
    /// Why the text could not be analyzed, if it could not.
    pub unparsable: Option<String>,
}

impl Analysis {
    /// The guard's view of this analysis.
    pub fn command<'a>(&'a self, text: &'a str) -> sluice_policy::Command<'a> {
        sluice_policy::Command {
            text,
            normalized: &self.normalized,
            statements: &self.statements,
            unparsable: self.unparsable.as_deref(),
        }
    }
}
