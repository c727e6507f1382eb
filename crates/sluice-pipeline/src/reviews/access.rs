//! Time-boxed access: requests, the window they open, and its end.

use super::{describe, micros, new_review_id};
use crate::{audit, Pipeline, Stop};
use sluice_core::time::now_micros;
use sluice_core::{EndReason, Identity, Outcome, Review, ReviewKind, ReviewStatus};
use sluice_store::{reviews, StoreError};
use std::time::Duration;
use tracing::{info, warn};

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

impl Pipeline {
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
            let mut until = until;
            // Sleep until the end, then look again: another approved request (or a wall clock
            // that stepped back) may cover the identity for longer.
            loop {
                let wait = until.saturating_sub(now_micros()).max(0);
                tokio::time::sleep(Duration::from_micros(wait as u64)).await;
                match pipeline
                    .access_window(&review.requester, &review.connection)
                    .await
                {
                    Ok(Some(Some(later))) => until = later,
                    Ok(_) => break,
                    Err(e) => {
                        warn!(error = %e, "access expiry: store unavailable; ending sessions");
                        break;
                    }
                }
            }
            pipeline.end_access(&review).await;
        });
    }

    async fn end_access(&self, review: &Review) {
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
