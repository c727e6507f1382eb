//! Guardrails on requests. The guard sees a request as the statement `METHOD /path?query`
//! whose class is the method in lower case (`delete`) and whose path is the URL path, so a
//! rule `match: { statements: [delete], paths: ["/admin/**"] }` denies `DELETE /admin/users`.
//!
//! A request under a review rule is answered `202 Accepted` with the review's id at once:
//! HTTP clients do not wait minutes for an answer. Once approved, the same identity may send
//! exactly that request (method, path, query and body) once, within the review's time; it
//! then runs, recorded with the approval.

use crate::session::HttpSession;
use sluice_core::{Query, ReviewStatus, SessionEvent};
use sluice_pipeline::reviews::{held_notice, new_review_id, Settled};
use sluice_pipeline::Pipeline;
use sluice_policy::{RuleHit, StatementFacts, Verdict};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// What the guard decided about a request.
pub enum Judged {
    /// Forward it; the request's query id.
    Run(u64),
    /// Refuse it (403).
    Denied {
        /// The rule.
        rule: String,
        /// Its reason.
        reason: String,
    },
    /// A review was filed (202).
    Held {
        /// Review id.
        review: String,
        /// For the client.
        message: String,
    },
    /// Refused for another reason (503: the audit trail cannot take it).
    Unavailable(String),
}

/// The guard's facts about a request: its method as class, its path.
pub fn facts(method: &str, path: &str) -> Vec<StatementFacts> {
    vec![StatementFacts {
        classes: vec![method.to_ascii_lowercase()],
        paths: vec![path.to_string()],
        ..StatementFacts::default()
    }]
}

/// Approved requests that may run once, by identity, connection and request.
#[derive(Default)]
pub struct Tickets {
    map: Mutex<HashMap<[u8; 32], Ticket>>,
}

struct Ticket {
    review: String,
    by: Vec<String>,
    reason: Option<String>,
    until: Instant,
}

impl Tickets {
    fn insert(&self, key: [u8; 32], ticket: Ticket) {
        if let Ok(mut m) = self.map.lock() {
            let now = Instant::now();
            m.retain(|_, t| t.until > now);
            m.insert(key, ticket);
        }
    }

    fn take(&self, key: &[u8; 32]) -> Option<Ticket> {
        let t = self.map.lock().ok()?.remove(key)?;
        (t.until > Instant::now()).then_some(t)
    }
}

/// The key of a request for its approval: who, where, and exactly what.
pub fn ticket_key(session: &HttpSession, line: &str, body: &[u8]) -> [u8; 32] {
    let a = &session.authorized;
    let mut material = Vec::with_capacity(line.len() + 96);
    for part in [
        a.identity.name.as_bytes(),
        a.connection.name.0.as_bytes(),
        line.as_bytes(),
    ] {
        material.extend_from_slice(part);
        material.push(0);
    }
    material.extend_from_slice(&sluice_store::crypto::sha256(body));
    sluice_store::crypto::sha256(&material)
}

/// The verdict of the connection's rules on `line`, without recording it.
pub fn verdict(session: &HttpSession, line: &str, method: &str, path: &str) -> Verdict {
    let Some(policy) = &session.policy else {
        return Verdict::Allow;
    };
    let Some(guard) = &policy.policy.guard else {
        return Verdict::Allow;
    };
    let statements = facts(method, path);
    let command = sluice_policy::Command {
        text: line,
        normalized: line,
        statements: &statements,
        unparsable: None,
    };
    guard.check(&command, &policy.identity.groups)
}

/// Records request `line` (with `shown`, its masked form for the recording and review) and
/// applies `verdict`; `key` finds an approval of this exact request.
pub async fn judge(
    pipeline: &Pipeline,
    tickets: &Arc<Tickets>,
    session: &Arc<HttpSession>,
    shown: String,
    verdict: Verdict,
    key: Option<[u8; 32]>,
) -> Judged {
    let id = session.next_query();
    session.record(&SessionEvent::Query(Box::new(Query {
        id,
        text: shown.as_str().into(),
        params: None,
    })));
    if matches!(verdict, Verdict::Allow) {
        return Judged::Run(id);
    }
    if session.audit_closed() {
        return Judged::Unavailable(
            "the audit trail is unavailable and the gateway is configured to fail closed".into(),
        );
    }
    let hit = match verdict {
        Verdict::Allow => return Judged::Run(id),
        Verdict::Deny(hit) => {
            guard_event(session, id, "denied", &hit, None);
            info!(rule = %hit.rule, "request denied");
            return Judged::Denied {
                rule: hit.rule.clone(),
                reason: hit.reason.clone(),
            };
        }
        Verdict::Review(hit) => hit,
    };
    if let Some(ticket) = key.and_then(|k| tickets.take(&k)) {
        session.record(&SessionEvent::Decision {
            query: id,
            review: ticket.review,
            decision: "approved".into(),
            by: ticket.by,
            reason: ticket.reason,
        });
        return Judged::Run(id);
    }
    let review = new_review_id();
    guard_event(session, id, "held", &hit, Some(review.clone()));
    let Some(policy) = &session.policy else {
        return Judged::Run(id);
    };
    let timeout = policy.policy.review_timeout();
    let hold = policy.command_hold(review.clone(), &hit, shown);
    let mut held = match pipeline.hold_command(hold).await {
        Ok(h) => h,
        Err(e) => {
            warn!(error = %e, "could not file a review; refusing the request");
            let settled = Settled::not_filed(&review, &hit);
            record_decision(session, id, &settled);
            return Judged::Denied {
                rule: hit.rule.clone(),
                reason: settled.refusal.map(|r| r.1).unwrap_or_default(),
            };
        }
    };
    let (notice, _) = held_notice(&review, &hit, timeout);
    let message = format!(
        "{notice}; send the same request again once it is approved (within {})",
        sluice_pipeline::reviews::human(timeout)
    );
    // The decision is awaited in the background: the session stays open until then, and an
    // approval leaves a ticket for the identical request.
    let (session, tickets, key) = (session.clone(), tickets.clone(), key);
    tokio::spawn(async move {
        let decided = held.decision().await;
        let settled = Settled::of(&decided, timeout);
        record_decision(&session, id, &settled);
        if let (ReviewStatus::Approved, Some(key)) = (decided.status, key) {
            tickets.insert(
                key,
                Ticket {
                    review: decided.id.clone(),
                    by: settled.decided.by.clone(),
                    reason: settled.decided.reason.clone(),
                    until: Instant::now() + timeout.max(Duration::from_secs(60)),
                },
            );
        }
    });
    Judged::Held { review, message }
}

/// Records that the guard denied (`denied`) or held (`held`) request `query`.
pub fn guard_event(
    session: &HttpSession,
    query: u64,
    action: &str,
    hit: &RuleHit,
    review: Option<String>,
) {
    session.record(&SessionEvent::Guard {
        query,
        action: action.into(),
        rule: hit.rule.clone(),
        reason: hit.reason.clone(),
        review,
    });
}

/// Records how the review of request `query` was settled.
pub fn record_decision(session: &HttpSession, query: u64, settled: &Settled) {
    let d = &settled.decided;
    session.record(&SessionEvent::Decision {
        query,
        review: d.review.clone(),
        decision: d.decision.to_string(),
        by: d.by.clone(),
        reason: d.reason.clone(),
    });
}
