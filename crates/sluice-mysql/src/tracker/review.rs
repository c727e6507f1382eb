//! Commands held for review: recorded when held (text and parameters, masked), then either
//! released to run under the same recorded id, or answered with the refusal.

use super::{Expect, Tracker};
use crate::codec::command::Command;
use sluice_core::event::{QueryResult, StatementError, StatementOutcome};
use sluice_core::SessionEvent;
use sluice_pipeline::reviews::Decided;
use sluice_policy::RuleHit;
use std::fmt::Write;
use std::sync::Arc;

impl Tracker {
    /// Records a command held for review `review` and returns its text for the review,
    /// masked; an execution of a prepared statement shows its parameters below the text.
    pub fn hold(
        &mut self,
        cmd: &Command<'_>,
        hit: &RuleHit,
        review: &str,
        out: &mut Vec<SessionEvent>,
    ) -> Arc<str> {
        let query = match cmd {
            Command::StmtExecute { id, params, .. } => {
                let (text, values) = self.execution(*id, params);
                self.query(text, Some(values), out)
            }
            Command::Query(t) | Command::StmtPrepare(t) => {
                self.query(Arc::from(String::from_utf8_lossy(t)), None, out)
            }
            other => self.query(Arc::from(format!("{other:?}")), None, out),
        };
        let shown = match out.last() {
            Some(SessionEvent::Query(q)) => match &q.params {
                Some(params) if !params.is_empty() => {
                    let mut t = q.text.to_string();
                    for (i, v) in params.iter().enumerate() {
                        let _ = write!(
                            t,
                            "\n-- parameter {} = {}",
                            i + 1,
                            v.as_deref().unwrap_or("NULL")
                        );
                    }
                    Arc::from(t)
                }
                _ => q.text.clone(),
            },
            _ => Arc::from(""),
        };
        out.push(SessionEvent::Guard {
            query,
            action: "held".into(),
            rule: hit.rule.clone(),
            reason: hit.reason.clone(),
            review: Some(review.to_string()),
        });
        self.held = Some(query);
        shown
    }

    /// Records the approval of the held command; the relay then forwards it, and
    /// [`Tracker::on_command`] pairs its result with the id recorded when it was held.
    pub fn release(&mut self, decided: Decided, out: &mut Vec<SessionEvent>) {
        if let Some(query) = self.held {
            out.push(decision(query, decided));
        }
    }

    /// Records the denial (or expiry, or withdrawal) of the held command and the error the
    /// client gets instead of a result.
    pub fn refuse_held(
        &mut self,
        decided: Decided,
        code: u16,
        message: &str,
        out: &mut Vec<SessionEvent>,
    ) {
        let Some(query) = self.held.take() else {
            return;
        };
        out.push(decision(query, decided));
        out.push(SessionEvent::Result(Box::new(QueryResult {
            query,
            outcome: StatementOutcome {
                error: Some(StatementError {
                    code: code.to_string(),
                    message: message.to_string(),
                }),
                ..StatementOutcome::default()
            },
            ..QueryResult::default()
        })));
    }

    /// Marks the statement being prepared (the command just seen) as needing review at
    /// every execution: approving one execution approves those parameters once.
    pub fn review_executions(&mut self, hit: Arc<RuleHit>) {
        if let Some(p) = self.pending.as_mut() {
            if let Expect::Prepare { review, .. } = &mut p.expect {
                *review = Some(hit);
            }
        }
    }

    /// The review rule an execution of prepared statement `id` falls under.
    pub fn execution_review(&self, id: u32) -> Option<Arc<RuleHit>> {
        self.statements.get(&id)?.review.clone()
    }
}

fn decision(query: u64, d: Decided) -> SessionEvent {
    SessionEvent::Decision {
        query,
        review: d.review,
        decision: d.decision.to_string(),
        by: d.by,
        reason: d.reason,
    }
}
