//! Just-in-time approvals: held commands and time-boxed access requests.
//!
//! A protocol adapter that gets a `review` verdict calls [`Pipeline::hold_command`] and awaits
//! the [`HeldCommand`]; approvers decide through [`Pipeline::decide`] (REST API, CLI, console).
//! Approvers in other processes (the CLI, the console) decide through this gateway's API,
//! which wakes the waiting session in this process. Every review lives in the store, so the
//! history survives restarts. Every step is audited and announced
//! (webhook) through the [`Announce`] hook the gateway installs.
//!
//! Access requests ([`Pipeline::request_access`]) go through the same decision path; an
//! approved one lets the identity connect until it expires, and its expiry ends the
//! identity's live sessions on that connection.

use crate::{audit, Pipeline};
use sluice_core::time::now_micros;
use sluice_core::{Approval, AuditEvent, Identity, Outcome, Review, ReviewKind, ReviewStatus};
use sluice_policy::RuleHit;
use sluice_store::{reviews, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

mod access;
mod settled;

pub use access::AccessError;
pub use settled::{held_notice, human, Decided, NotRun, Settled};

/// Announces new reviews and decisions (the gateway's webhook).
pub trait Announce: Send + Sync {
    /// `review` was just created or changed.
    fn announce(&self, review: &Review);
}

/// The in-process side of reviews: who is waiting for which decision, and who follows
/// the changes (the webhook, live API streams).
pub struct Reviews {
    waiters: Mutex<HashMap<String, watch::Sender<Option<Review>>>>,
    announcer: OnceLock<Arc<dyn Announce>>,
    updates: tokio::sync::broadcast::Sender<Review>,
}

/// Changes a slow follower may fall behind by before it misses some.
const UPDATES: usize = 256;

impl Default for Reviews {
    fn default() -> Self {
        Reviews {
            waiters: Mutex::default(),
            announcer: OnceLock::new(),
            updates: tokio::sync::broadcast::channel(UPDATES).0,
        }
    }
}

/// Why a decision was refused.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// No such review.
    #[error("review {0:?} does not exist")]
    NotFound(String),
    /// Already decided (or expired, or cancelled).
    #[error("review {id} is already {status}")]
    Closed {
        /// Review id.
        id: String,
        /// Its status.
        status: &'static str,
    },
    /// The approver asked for it.
    #[error("you cannot decide your own request")]
    SelfApproval,
    /// The approver is not in an approver group.
    #[error("only members of {0} may decide this review")]
    NotApprover(String),
    /// The approver already approved it.
    #[error("you already approved review {0}; it needs approvals from other approvers")]
    AlreadyApproved(String),
    /// The store failed.
    #[error("gateway store unavailable")]
    Store(#[source] StoreError),
}

/// What an adapter knows about a command it must hold.
pub struct CommandHold<'a> {
    /// Review id, chosen by the adapter (it records it before asking).
    pub id: String,
    /// Who sent the command.
    pub identity: &'a Identity,
    /// Connection.
    pub connection: &'a str,
    /// Session.
    pub session_id: &'a str,
    /// The rule that asked for review.
    pub hit: &'a RuleHit,
    /// The statement, already masked.
    pub statement: String,
    /// How long to wait for a decision.
    pub timeout: Duration,
}

/// A held command waiting for its decision. Dropping it before the decision (the session
/// ended) cancels the review.
pub struct HeldCommand {
    pipeline: Pipeline,
    review: Review,
    rx: watch::Receiver<Option<Review>>,
    deadline: tokio::time::Instant,
    settled: bool,
}

impl HeldCommand {
    /// Waits for approval, denial or the deadline; returns the review as decided.
    pub async fn decision(&mut self) -> Review {
        let decided = tokio::select! {
            r = self.rx.wait_for(Option::is_some) => r.ok().and_then(|r| r.clone()),
            _ = tokio::time::sleep_until(self.deadline) => None,
        };
        let review = match decided {
            Some(r) => r,
            None => {
                self.pipeline
                    .close_review(&self.review, ReviewStatus::Expired)
                    .await
            }
        };
        self.settled = true;
        review
    }

    /// Withdraws the command (the client cancelled it); returns the review as closed (it may
    /// have been decided just before).
    pub async fn withdraw(&mut self) -> Review {
        self.settled = true;
        self.pipeline
            .close_review(&self.review, ReviewStatus::Cancelled)
            .await
    }
}

impl Drop for HeldCommand {
    fn drop(&mut self) {
        self.pipeline.reviews().forget(&self.review.id);
        if self.settled {
            return;
        }
        let pipeline = self.pipeline.clone();
        let review = self.review.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                pipeline
                    .close_review(&review, ReviewStatus::Cancelled)
                    .await;
            });
        }
    }
}

impl Reviews {
    /// Installs the announcer (once, at start-up).
    pub fn set_announcer(&self, announcer: Arc<dyn Announce>) {
        let _ = self.announcer.set(announcer);
    }

    fn announce(&self, review: &Review) {
        if let Some(a) = self.announcer.get() {
            a.announce(review);
        }
        // Nobody following is not an error.
        let _ = self.updates.send(review.clone());
    }

    /// Every review created or changed from now on (a follower that falls more than 256
    /// changes behind is told how many it missed).
    pub fn follow(&self) -> tokio::sync::broadcast::Receiver<Review> {
        self.updates.subscribe()
    }

    fn wait(&self, id: &str) -> watch::Receiver<Option<Review>> {
        let (tx, rx) = watch::channel(None);
        if let Ok(mut w) = self.waiters.lock() {
            w.insert(id.to_string(), tx);
        }
        rx
    }

    fn wake(&self, review: &Review) {
        if let Ok(w) = self.waiters.lock() {
            if let Some(tx) = w.get(&review.id) {
                let _ = tx.send(Some(review.clone()));
            }
        }
    }

    fn forget(&self, id: &str) {
        if let Ok(mut w) = self.waiters.lock() {
            w.remove(id);
        }
    }
}

/// A fresh review id: `rv-` and 10 hex digits.
pub fn new_review_id() -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    format!("rv-{}", &u[..10])
}

/// Whether `who` may decide `review`: not their own, and in an approver group; when the
/// review names no group, `default_approver` (admins and the gateway's approver role).
pub fn may_decide(
    review: &Review,
    who: &Identity,
    default_approver: bool,
) -> Result<(), DecideError> {
    if who.name == review.requester {
        return Err(DecideError::SelfApproval);
    }
    if review.approver_groups.is_empty() {
        return if default_approver {
            Ok(())
        } else {
            Err(DecideError::NotApprover(
                "the admin or approver role".into(),
            ))
        };
    }
    if review.approver_groups.iter().any(|g| who.in_group(g)) {
        Ok(())
    } else {
        Err(DecideError::NotApprover(format!(
            "group {}",
            review.approver_groups.join(" or ")
        )))
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Pipeline {
    /// Creates the review for a held command, audits and announces it; the returned handle
    /// waits for the decision.
    pub async fn hold_command(&self, hold: CommandHold<'_>) -> Result<HeldCommand, StoreError> {
        let now = now_micros();
        let review = Review {
            id: hold.id,
            kind: ReviewKind::Command,
            status: ReviewStatus::Pending,
            requester: hold.identity.name.clone(),
            requester_groups: hold.identity.groups.clone(),
            connection: hold.connection.to_string(),
            session_id: Some(hold.session_id.to_string()),
            rule: Some(hold.hit.rule.clone()),
            reason: hold.hit.reason.clone(),
            statement: Some(hold.statement),
            approver_groups: hold.hit.approvers.clone(),
            approvals_required: hold.hit.approvals.max(1),
            approvals: Vec::new(),
            denial: None,
            created_us: now,
            deadline_us: now.saturating_add(micros(hold.timeout)),
            decided_us: None,
            access_secs: None,
            access_until_us: None,
        };
        // Register before storing, so a decision that comes right after the insert is seen.
        let rx = self.reviews().wait(&review.id);
        let stored = review.clone();
        if let Err(e) = self.store().run(move |c| reviews::insert(c, &stored)).await {
            self.reviews().forget(&review.id);
            return Err(e);
        }
        let mut e = audit::by(hold.identity, "review.requested", Outcome::Success);
        e.session_id = review.session_id.clone();
        self.audit(describe(e, &review));
        self.reviews().announce(&review);
        info!(review = %review.id, rule = ?review.rule, "command held for review");
        Ok(HeldCommand {
            pipeline: self.clone(),
            review,
            rx,
            deadline: tokio::time::Instant::now() + hold.timeout,
            settled: false,
        })
    }

    /// Records `who`'s approval or denial of review `id`.
    pub async fn decide(
        &self,
        id: &str,
        who: &Identity,
        default_approver: bool,
        approve: bool,
        reason: Option<String>,
    ) -> Result<Review, DecideError> {
        let now = now_micros();
        let approver = who.clone();
        let key = id.to_string();
        let result = self
            .store()
            .run(move |c| {
                reviews::update(c, &key, |r| {
                    apply_decision(r, &approver, default_approver, approve, reason, now)
                })
            })
            .await;
        let review = match result {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                let mut ev = audit::by(who, "review.decide", Outcome::Failure);
                ev.target = Some(id.to_string());
                ev.reason = Some(e.to_string());
                ev.fault = Some(sluice_core::Fault::Client);
                self.audit(ev);
                return Err(e);
            }
            Err(StoreError::NotFound(_)) => return Err(DecideError::NotFound(id.to_string())),
            Err(e) => return Err(DecideError::Store(e)),
        };
        let action = match review.status {
            ReviewStatus::Approved => "review.approved",
            ReviewStatus::Denied => "review.denied",
            _ => "review.approval",
        };
        let mut ev = audit::by(who, action, Outcome::Success);
        ev.session_id = review.session_id.clone();
        self.audit(describe(ev, &review));
        if review.status != ReviewStatus::Pending {
            self.reviews().wake(&review);
            if review.kind == ReviewKind::Access && review.status == ReviewStatus::Approved {
                self.schedule_access_expiry(&review);
            }
        }
        self.reviews().announce(&review);
        Ok(review)
    }

    /// Closes a pending review as expired or cancelled; returns it as it ends up (it may
    /// have been decided just before).
    pub async fn close_review(&self, review: &Review, status: ReviewStatus) -> Review {
        let key = review.id.clone();
        let now = now_micros();
        let result = self
            .store()
            .run(move |c| {
                reviews::update(c, &key, |r| {
                    if r.status != ReviewStatus::Pending {
                        return Err(Box::new(r.clone()));
                    }
                    r.status = status;
                    r.decided_us = Some(now);
                    Ok(())
                })
            })
            .await;
        let closed = match result {
            Ok(Ok(r)) => r,
            // Decided meanwhile: that decision stands.
            Ok(Err(decided)) => return *decided,
            Err(e) => {
                warn!(review = %review.id, error = %e, "could not close review in the store");
                let mut r = review.clone();
                r.status = status;
                r.decided_us = Some(now);
                r
            }
        };
        let action = match status {
            ReviewStatus::Expired => "review.expired",
            _ => "review.cancelled",
        };
        let mut ev = audit::event(action, Outcome::Success);
        ev.session_id = closed.session_id.clone();
        self.audit(describe(ev, &closed));
        self.reviews().announce(&closed);
        closed
    }
}

/// Checks and applies one decision to `r`.
fn apply_decision(
    r: &mut Review,
    who: &Identity,
    default_approver: bool,
    approve: bool,
    reason: Option<String>,
    now: i64,
) -> Result<(), DecideError> {
    if r.status == ReviewStatus::Pending && r.deadline_us <= now {
        return Err(DecideError::Closed {
            id: r.id.clone(),
            status: "expired",
        });
    }
    if r.status != ReviewStatus::Pending {
        return Err(DecideError::Closed {
            id: r.id.clone(),
            status: r.status.as_str(),
        });
    }
    may_decide(r, who, default_approver)?;
    let decision = Approval {
        by: who.name.clone(),
        at_us: now,
        reason,
    };
    if !approve {
        r.denial = Some(decision);
        r.status = ReviewStatus::Denied;
        r.decided_us = Some(now);
        return Ok(());
    }
    if r.approvals.iter().any(|a| a.by == who.name) {
        return Err(DecideError::AlreadyApproved(r.id.clone()));
    }
    r.approvals.push(decision);
    if r.approvals.len() >= r.approvals_required as usize {
        r.status = ReviewStatus::Approved;
        r.decided_us = Some(now);
        if let Some(secs) = r.access_secs {
            let secs = i64::try_from(secs).unwrap_or(i64::MAX / 2_000_000);
            r.access_until_us = Some(now.saturating_add(secs.saturating_mul(1_000_000)));
        }
    }
    Ok(())
}

/// Fills an audit event with what it says about `review`.
fn describe(mut e: AuditEvent, review: &Review) -> AuditEvent {
    e.connection = Some(review.connection.clone());
    e.target = Some(review.id.clone());
    e.review_id = Some(review.id.clone());
    e.rule = review.rule.clone();
    e.session_id = e.session_id.or_else(|| review.session_id.clone());
    if e.reason.is_none() {
        e.reason = Some(match (&review.rule, review.kind) {
            (Some(rule), _) => format!("rule {rule}: {}", review.status.as_str()),
            (None, _) => format!(
                "{} access: {}",
                review.kind.as_str(),
                review.status.as_str()
            ),
        });
    }
    e
}

#[cfg(test)]
mod tests;
