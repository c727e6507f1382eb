//! What the guard did to a statement, as the tracker records and answers it: refused
//! outright, held for review, then released or refused after the decision.

use super::{Expect, Pending, Tracker};
use crate::codec::frontend::FrontendMessage;
use bytes::BytesMut;
use sluice_core::event::{StatementError, StatementOutcome};
use sluice_core::SessionEvent;
use sluice_policy::RuleHit;
use std::sync::Arc;

/// Why a statement is refused, as the client is told.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// SQLSTATE.
    pub code: &'static str,
    /// Rule that refused it.
    pub rule: String,
    /// Error message.
    pub message: String,
    /// Error hint.
    pub hint: String,
}

pub use sluice_pipeline::reviews::Decided;

fn statement<'a>(msg: &FrontendMessage<'a>) -> Option<&'a str> {
    match msg {
        FrontendMessage::Query(t) => Some(t),
        FrontendMessage::Parse { query, .. } => Some(query),
        _ => None,
    }
}

impl Tracker {
    /// Records a statement the guard refused and queues the client's answer. For a simple
    /// query the answer is the error and ReadyForQuery; for Parse or Execute the error, and the
    /// rest of the batch is dropped up to Sync.
    pub fn refuse(
        &mut self,
        msg: &FrontendMessage<'_>,
        refusal: &Refusal,
        now_us: i64,
        out: &mut Vec<SessionEvent>,
    ) {
        let p = match msg {
            // An execution of a prepared statement (refused when the audit trail fails closed).
            FrontendMessage::Execute { portal } => {
                let (text, params) = match self.portals.get(*portal) {
                    Some(info) => (info.text.clone(), Some(info.params.clone())),
                    None => (Arc::from("(unknown portal)"), None),
                };
                self.query(text, params, now_us, out)
            }
            _ => {
                let Some(text) = statement(msg) else {
                    return;
                };
                self.query(Arc::from(text), None, now_us, out)
            }
        };
        out.push(SessionEvent::Guard {
            query: p.query,
            action: "denied".into(),
            rule: refusal.rule.clone(),
            reason: refusal.message.clone(),
            review: None,
        });
        self.answer_refusal(msg, p, refusal, now_us, out);
    }

    /// Records a statement held for review `review` (its text and parameters, masked, and
    /// the hold) and returns the masked text for the review. For an Execute the text is the
    /// prepared statement's, followed by its bound parameters.
    pub fn hold(
        &mut self,
        msg: &FrontendMessage<'_>,
        rule: &str,
        reason: &str,
        review: &str,
        now_us: i64,
        out: &mut Vec<SessionEvent>,
    ) -> Option<Arc<str>> {
        let p = match msg {
            FrontendMessage::Execute { portal } => {
                let info = self.portals.get(*portal)?;
                let (text, params) = (info.text.clone(), info.params.clone());
                self.query(text, Some(params), now_us, out)
            }
            _ => {
                let text = statement(msg)?;
                self.query(Arc::from(text), None, now_us, out)
            }
        };
        let shown: Arc<str> = match out.last() {
            Some(SessionEvent::Query(q)) => match &q.params {
                Some(params) if !params.is_empty() => {
                    let mut t = q.text.to_string();
                    for (i, v) in params.iter().enumerate() {
                        t.push_str(&format!(
                            "\n-- ${} = {}",
                            i + 1,
                            v.as_deref().unwrap_or("NULL")
                        ));
                    }
                    Arc::from(t)
                }
                _ => q.text.clone(),
            },
            _ => Arc::from(""),
        };
        out.push(SessionEvent::Guard {
            query: p.query,
            action: "held".into(),
            rule: rule.to_string(),
            reason: reason.to_string(),
            review: Some(review.to_string()),
        });
        self.held = Some(p);
        Some(shown)
    }

    /// Marks prepared statement `name` (just parsed) as needing review at every execution:
    /// approving one execution approves those parameters once, not the statement for good.
    pub fn review_executions(&mut self, name: &str, hit: Arc<RuleHit>) {
        if let Some(p) = self.statements.get_mut(name) {
            p.review = Some(hit);
        }
    }

    /// The review rule an Execute falls under (its portal's statement was marked).
    pub fn execution_review(&self, msg: &FrontendMessage<'_>) -> Option<Arc<RuleHit>> {
        match msg {
            FrontendMessage::Execute { portal } => self.portals.get(*portal)?.review.clone(),
            _ => None,
        }
    }

    /// Records the approval of the held statement (a Query or an Execute); the relay then
    /// forwards it as usual, and it keeps its recorded id, so its result pairs with it.
    pub fn release(&mut self, decided: Decided, out: &mut Vec<SessionEvent>) {
        self.decision(decided, out);
    }

    /// Records the denial (or expiry, or withdrawal) of the held statement and queues the
    /// client's answer, as [`Tracker::refuse`] does.
    pub fn refuse_held(
        &mut self,
        msg: &FrontendMessage<'_>,
        decided: Decided,
        refusal: &Refusal,
        now_us: i64,
        out: &mut Vec<SessionEvent>,
    ) {
        self.decision(decided, out);
        let p = match self.held.take() {
            Some(p) => p,
            None => {
                let text = statement(msg).unwrap_or("(held message)");
                self.query(Arc::from(text), None, now_us, out)
            }
        };
        self.answer_refusal(msg, p, refusal, now_us, out);
    }

    fn decision(&mut self, d: Decided, out: &mut Vec<SessionEvent>) {
        let Some(query) = self.held.as_ref().map(|p| p.query) else {
            return;
        };
        out.push(SessionEvent::Decision {
            query,
            review: d.review,
            decision: d.decision.to_string(),
            by: d.by,
            reason: d.reason,
        });
    }

    fn answer_refusal(
        &mut self,
        msg: &FrontendMessage<'_>,
        p: Box<Pending>,
        refusal: &Refusal,
        now_us: i64,
        out: &mut Vec<SessionEvent>,
    ) {
        let simple = matches!(msg, FrontendMessage::Query(_));
        let error = StatementError {
            code: refusal.code.into(),
            message: refusal.message.clone(),
        };
        let mut p = p;
        out.push(p.finish(
            now_us,
            StatementOutcome {
                error: Some(error),
                ..StatementOutcome::default()
            },
        ));
        let mut bytes = BytesMut::new();
        crate::codec::encode::report(
            &mut bytes,
            b'E',
            "ERROR",
            refusal.code,
            &refusal.message,
            &refusal.hint,
        );
        if !simple {
            self.skipping = true;
        }
        self.expect.push_back(Expect::Synthetic {
            bytes: bytes.to_vec(),
            ready: simple,
        });
    }
}
