//! Guardrails: rules that deny a command or hold it for human review.
//!
//! The engine is protocol-agnostic. A protocol adapter turns what the client sent into a
//! [`Command`]: the text, its normalized form, and per statement the facts a parser found
//! (statement classes such as `drop_table` or `delete_without_where`, the tables it touches,
//! the functions it calls). [`Guard::check`] returns a [`Verdict`]. The same rules therefore
//! work for SQL from PostgreSQL and MySQL, and later for shell commands or Kubernetes verbs,
//! which produce their own classes.
//!
//! [`shell`] is the one shell-line analyzer, shared by the SSH adapter and command runtimes.

pub mod analysis;
mod command;
mod config;
mod guard;
pub mod shell;

pub use command::{Command, StatementFacts};
pub use config::{
    parse_duration, AccessConfig, Action, GuardConfig, MatchConfig, RuleConfig, UnparsableAction,
};
pub use guard::{Guard, GuardError, RuleHit, Verdict, DEFAULT_REVIEW_TIMEOUT};

#[cfg(test)]
mod tests;
