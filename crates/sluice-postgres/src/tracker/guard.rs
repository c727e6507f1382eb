//! What the guard did to a statement, as the tracker records and answers it: refused
//! outright, held for review, then released or refused after the decision.

use super::{Expect, Pending, Tracker};
use crate::codec::frontend::FrontendMessage;
use bytes::BytesMut;
use sluice_core::event::{StatementError, StatementOutcome};
use sluice_core::SessionEvent;
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

/// The decision on a held statement, for its recording.
#[derive(Debug, Clone)]
pub struct Decided {
    /// Review id.
    pub review: String,
    /// `approved`, `denied`, `expired`, `cancelled`.
    pub decision: &'static str,
    /// Who decided.
    pub by: Vec<String>,
    /// Their reason.
    pub reason: Option<String>,
}

fn statement<'a>(msg: &FrontendMessage<'a>) -> Option<(&'a str, bool)> {
    match msg {
        FrontendMessage::Query(t) => Some((t, true)),
        FrontendMessage::Parse { query, .. } => Some((query, false)),
        _ => None,
    }
}

impl Tracker {
    /// Records a statement the guard refused and queues the client's answer. For a simple
    /// query the answer is the error and ReadyForQuery; for Parse the error, and the rest of
    /// the batch is dropped up to Sync.
    pub fn refuse(
        &mut self,
        msg: &FrontendMessage<'_>,
        refusal: &Refusal,
        now_us: i64,
        out: &mut Vec<SessionEvent>,
    ) {
        let Some((text, _)) = statement(msg) else {
            return;
        };
        let p = self.query(Arc::from(text), None, now_us, out);
        out.push(SessionEvent::Guard {
            query: p.query,
            action: "denied".into(),
            rule: refusal.rule.clone(),
            reason: refusal.message.clone(),
            review: None,
        });
        self.answer_refusal(msg, p, refusal, now_us, out);
    }

    /// Records a statement held for review `review` (its text, masked, and the hold) and
    /// returns the masked text for the review.
    pub fn hold(
        &mut self,
        msg: &FrontendMessage<'_>,
        rule: &str,
        reason: &str,
        review: &str,
        now_us: i64,
        out: &mut Vec<SessionEvent>,
    ) -> Option<Arc<str>> {
        let (text, _) = statement(msg)?;
        let p = self.query(Arc::from(text), None, now_us, out);
        let masked = match out.last() {
            Some(SessionEvent::Query(q)) => q.text.clone(),
            _ => Arc::from(text),
        };
        out.push(SessionEvent::Guard {
            query: p.query,
            action: "held".into(),
            rule: rule.to_string(),
            reason: reason.to_string(),
            review: Some(review.to_string()),
        });
        self.held = Some(p);
        Some(masked)
    }

    /// Records the approval of the held statement; the relay then forwards it as usual (a
    /// simple query keeps its recorded id, so its result pairs with it).
    pub fn release(
        &mut self,
        msg: &FrontendMessage<'_>,
        decided: Decided,
        out: &mut Vec<SessionEvent>,
    ) {
        let query = self.decision(decided, out);
        if !matches!(msg, FrontendMessage::Query(_)) || query.is_none() {
            self.held = None;
        }
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
            None => match statement(msg) {
                Some((text, _)) => self.query(Arc::from(text), None, now_us, out),
                None => return,
            },
        };
        self.answer_refusal(msg, p, refusal, now_us, out);
    }

    fn decision(&mut self, d: Decided, out: &mut Vec<SessionEvent>) -> Option<u64> {
        let query = self.held.as_ref().map(|p| p.query)?;
        out.push(SessionEvent::Decision {
            query,
            review: d.review,
            decision: d.decision.to_string(),
            by: d.by,
            reason: d.reason,
        });
        Some(query)
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
        if simple {
            crate::codec::encode::ready_for_query(&mut bytes, self.last_status);
        } else {
            self.skipping = true;
        }
        self.expect.push_back(Expect::Synthetic(bytes.to_vec()));
    }
}
