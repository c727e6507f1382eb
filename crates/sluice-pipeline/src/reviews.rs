//! Just-in-time approvals: held commands and time-boxed access requests.
//!
//! A protocol adapter that gets a `review` verdict calls [`Pipeline::hold_command`] and awaits
//! the [`HeldCommand`]; approvers decide through [`Pipeline::decide`] (REST API, CLI, console).
//! Every review lives in the store, so a decision made from another process reaches the
//! session that waits, and the history survives restarts. Every step is audited and announced
//! (webhook) through the [`Announce`] hook the gateway installs.
//!
//! Access requests ([`Pipeline::request_access`]) go through the same decision path; an
//! approved one lets the identity connect until it expires, and its expiry ends the
//! identity's live sessions on that connection.

use crate::{audit, Pipeline, Stop};
use sluice_core::time::now_micros;
use sluice_core::{
    Approval, AuditEvent, EndReason, Identity, Outcome, Review, ReviewKind, ReviewStatus,
};
use sluice_policy::RuleHit;
use sluice_store::{reviews, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// Announces new reviews and decisions (the gateway's webhook).
pub trait Announce: Send + Sync {
    /// `review` was just created or changed.
    fn announce(&self, review: &Review);
}

/// The in-process side of reviews: who is waiting for which decision.
#[derive(Default)]
pub struct Reviews {
    waiters: Mutex<HashMap<String, watch::Sender<Option<Review>>>>,
    announcer: OnceLock<Arc<dyn Announce>>,
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

/// Why an access request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// No such connection.
    #[error("connection {0:?} does not exist")]
    UnknownConnection(String),
    /// The connection needs no access request.
    #[error("connection {0:?} does not require access requests; a grant is enough")]
    NotRequired(String),
    /// The identity has no grant, so access could never be used.
    #[error("identity {identity:?} has no grant on connection {connection:?}")]
    NoGrant {
        /// Identity.
        identity: String,
        /// Connection.
        connection: String,
    },
    /// Longer than the connection allows.
    #[error("access for {asked}s is longer than connection {connection:?} allows ({max}s)")]
    TooLong {
        /// Connection.
        connection: String,
        /// Seconds asked.
        asked: u64,
        /// Seconds allowed.
        max: u64,
    },
    /// Zero duration or empty reason.
    #[error("{0}")]
    Invalid(&'static str),
    /// The store failed.
    #[error("gateway store unavailable")]
    Store(#[from] StoreError),
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
    /// The review as created.
    pub fn review(&self) -> &Review {
        &self.review
    }

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

/// Whether `who` may decide `review`: not their own, and in an approver group (admins when
/// the review names no group).
pub fn may_decide(review: &Review, who: &Identity) -> Result<(), DecideError> {
    if who.name == review.requester {
        return Err(DecideError::SelfApproval);
    }
    if review.approver_groups.is_empty() {
        return if who.is_admin() {
            Ok(())
        } else {
            Err(DecideError::NotApprover("the admin group".into()))
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
                    apply_decision(r, &approver, approve, reason, now)
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
                        return Err(());
                    }
                    r.status = status;
                    r.decided_us = Some(now);
                    Ok(())
                })
            })
            .await;
        let closed = match result {
            Ok(Ok(r)) => r,
            Ok(Err(())) => {
                let key = review.id.clone();
                // Decided meanwhile: that decision stands.
                return match self.store().run(move |c| reviews::get(c, &key)).await {
                    Ok(r) => r,
                    Err(_) => review.clone(),
                };
            }
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

    /// Files a request by `who` for access to `connection` for `secs` seconds.
    pub async fn request_access(
        &self,
        who: &Identity,
        connection: &str,
        secs: u64,
        reason: String,
    ) -> Result<Review, AccessError> {
        let catalog = self.catalog();
        if catalog.connection(connection).is_none() {
            return Err(AccessError::UnknownConnection(connection.to_string()));
        }
        let policy = catalog.policy(connection);
        let Some(access) = policy.as_ref().and_then(|p| p.access.as_ref()) else {
            return Err(AccessError::NotRequired(connection.to_string()));
        };
        if catalog.grant_for(who, connection).is_none() {
            return Err(AccessError::NoGrant {
                identity: who.name.clone(),
                connection: connection.to_string(),
            });
        }
        if secs == 0 {
            return Err(AccessError::Invalid("the duration must be positive"));
        }
        if reason.trim().is_empty() {
            return Err(AccessError::Invalid("give a reason for the request"));
        }
        let max = access.max_duration().as_secs();
        if secs > max {
            return Err(AccessError::TooLong {
                connection: connection.to_string(),
                asked: secs,
                max,
            });
        }
        let now = now_micros();
        let review = Review {
            id: new_review_id(),
            kind: ReviewKind::Access,
            status: ReviewStatus::Pending,
            requester: who.name.clone(),
            requester_groups: who.groups.clone(),
            connection: connection.to_string(),
            session_id: None,
            rule: None,
            reason,
            statement: None,
            approver_groups: access.approvers.clone(),
            approvals_required: access.approvals(),
            approvals: Vec::new(),
            denial: None,
            created_us: now,
            deadline_us: now.saturating_add(micros(access.request_timeout())),
            decided_us: None,
            access_secs: Some(secs),
            access_until_us: None,
        };
        let stored = review.clone();
        self.store()
            .run(move |c| reviews::insert(c, &stored))
            .await?;
        self.audit(describe(
            audit::by(who, "access.requested", Outcome::Success),
            &review,
        ));
        self.reviews().announce(&review);
        Ok(review)
    }

    /// Until when `identity` may use `connection`: `Ok(None)` when the connection needs no
    /// access request, `Ok(Some(None))` when it needs one and none is running.
    pub async fn access_window(
        &self,
        identity: &str,
        connection: &str,
    ) -> Result<Option<Option<i64>>, StoreError> {
        let needs = self
            .catalog()
            .policy(connection)
            .is_some_and(|p| p.access.is_some());
        if !needs {
            return Ok(None);
        }
        let (i, c) = (identity.to_string(), connection.to_string());
        let until = self
            .store()
            .run(move |db| reviews::access_until(db, &i, &c, now_micros()))
            .await?;
        Ok(Some(until))
    }

    /// Schedules the end of an approved access grant: when it runs out (and no other grant
    /// covers the identity), the identity's live sessions on the connection end.
    pub fn schedule_access_expiry(&self, review: &Review) {
        let Some(until) = review.access_until_us else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pipeline = self.clone();
        let review = review.clone();
        handle.spawn(async move {
            let wait = until.saturating_sub(now_micros()).max(0);
            tokio::time::sleep(Duration::from_micros(wait as u64)).await;
            pipeline.end_access(&review).await;
        });
    }

    async fn end_access(&self, review: &Review) {
        match self
            .access_window(&review.requester, &review.connection)
            .await
        {
            // Another approved request still covers the identity.
            Ok(Some(Some(_))) => return,
            Ok(_) => {}
            Err(e) => warn!(error = %e, "access expiry: store unavailable; ending sessions"),
        }
        let (who, conn) = (review.requester.clone(), review.connection.clone());
        let ended = self.live().stop_where(
            |i, c| i == who && c == conn,
            Stop {
                reason: EndReason::AccessExpired,
                message: format!(
                    "sluice: access to connection {:?} expired (request {})",
                    review.connection, review.id
                ),
            },
        );
        let mut ev = audit::event("access.expired", Outcome::Success);
        ev.reason = Some(format!("{} live session(s) ended", ended.len()));
        self.audit(describe(ev, review));
        info!(review = %review.id, sessions = ended.len(), "access expired");
    }

    /// At start-up: closes reviews a previous run left open and re-arms running access grants.
    pub fn resume_reviews(&self) -> Result<(), StoreError> {
        let now = now_micros();
        let (closed, running) = self.store().run_sync(|c| {
            Ok((
                reviews::close_stale(c, now)?,
                reviews::running_access(c, now)?,
            ))
        })?;
        if closed > 0 {
            warn!(
                reviews = closed,
                "closed reviews left pending by a previous run"
            );
        }
        for r in &running {
            self.schedule_access_expiry(r);
        }
        Ok(())
    }
}

/// Checks and applies one decision to `r`.
fn apply_decision(
    r: &mut Review,
    who: &Identity,
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
    may_decide(r, who)?;
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
mod tests {
    use super::*;
    use sluice_core::IdentityKind;

    fn who(name: &str, groups: &[&str]) -> Identity {
        Identity {
            name: name.into(),
            kind: IdentityKind::ServiceAccount,
            subject: None,
            issuer: None,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            token_id: None,
        }
    }

    fn review(required: u32) -> Review {
        Review {
            id: "rv-1".into(),
            kind: ReviewKind::Command,
            status: ReviewStatus::Pending,
            requester: "alice".into(),
            requester_groups: vec!["dev".into(), "security".into()],
            connection: "pg".into(),
            session_id: None,
            rule: Some("writes".into()),
            reason: "r".into(),
            statement: None,
            approver_groups: vec!["security".into()],
            approvals_required: required,
            approvals: vec![],
            denial: None,
            created_us: 0,
            deadline_us: 100,
            decided_us: None,
            access_secs: None,
            access_until_us: None,
        }
    }

    #[test]
    fn approvals_need_the_group_other_people_and_the_count() {
        let mut r = review(2);
        let alice = who("alice", &["security"]);
        assert!(matches!(
            apply_decision(&mut r, &alice, true, None, 1),
            Err(DecideError::SelfApproval)
        ));
        let dev = who("dave", &["dev"]);
        assert!(matches!(
            apply_decision(&mut r, &dev, true, None, 1),
            Err(DecideError::NotApprover(_))
        ));
        let admin = who("root", &["admin"]);
        assert!(matches!(
            apply_decision(&mut r, &admin, true, None, 1),
            Err(DecideError::NotApprover(_))
        ));
        let bob = who("bob", &["security"]);
        apply_decision(&mut r, &bob, true, None, 1).unwrap();
        assert_eq!(r.status, ReviewStatus::Pending);
        assert!(matches!(
            apply_decision(&mut r, &bob, true, None, 2),
            Err(DecideError::AlreadyApproved(_))
        ));
        apply_decision(&mut r, &who("carol", &["security"]), true, None, 3).unwrap();
        assert_eq!(r.status, ReviewStatus::Approved);
        assert_eq!(r.approvers(), ["bob", "carol"]);
        assert!(matches!(
            apply_decision(&mut r, &who("erin", &["security"]), false, None, 4),
            Err(DecideError::Closed { .. })
        ));
    }

    #[test]
    fn one_denial_closes_and_the_deadline_is_final() {
        let mut r = review(2);
        apply_decision(
            &mut r,
            &who("bob", &["security"]),
            false,
            Some("no".into()),
            1,
        )
        .unwrap();
        assert_eq!(r.status, ReviewStatus::Denied);
        assert_eq!(r.denial.as_ref().map(|d| d.by.as_str()), Some("bob"));
        let mut late = review(1);
        assert!(matches!(
            apply_decision(&mut late, &who("bob", &["security"]), true, None, 100),
            Err(DecideError::Closed {
                status: "expired",
                ..
            })
        ));
    }

    #[test]
    fn without_approver_groups_admins_decide() {
        let mut r = review(1);
        r.approver_groups.clear();
        assert!(may_decide(&r, &who("bob", &["security"])).is_err());
        assert!(may_decide(&r, &who("root", &["admin"])).is_ok());
    }

    #[test]
    fn approved_access_runs_for_the_asked_time() {
        let mut r = review(1);
        r.kind = ReviewKind::Access;
        r.access_secs = Some(60);
        apply_decision(&mut r, &who("bob", &["security"]), true, None, 10).unwrap();
        assert_eq!(r.access_until_us, Some(10 + 60_000_000));
    }
}
