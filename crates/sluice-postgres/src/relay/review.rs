//! Holding a statement for review: file the review, tell the client (NoticeResponse), wait
//! for the decision while watching the client, and say how it ended.

use super::{reply, SessionPolicy};
use crate::buffer::ReadBuffer;
use crate::codec::encode;
use crate::tracker::{Decided, Refusal};
use bytes::BytesMut;
use sluice_core::{Review, ReviewStatus};
use sluice_pipeline::CommandHold;
use sluice_policy::RuleHit;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tracing::info;

/// How much a client may send while its statement waits (it is read so a disconnect is
/// noticed; more waits in the socket).
const HOLD_READ_LIMIT: usize = 1 << 20;

/// A statement the guard wants reviewed.
pub(super) struct Held {
    /// Review id (already in the recording).
    pub review: String,
    /// The rule.
    pub hit: Arc<RuleHit>,
    /// The statement, masked.
    pub statement: Arc<str>,
}

/// How a hold ended.
pub(super) enum HoldEnd {
    /// Forward the statement.
    Approved(Decided),
    /// Answer it with this error.
    Refused(Decided, Refusal),
    /// The client went away while waiting.
    ClientGone(String),
}

enum Wait {
    Decided(Box<Review>),
    Withdrawn,
    Gone(String),
}

/// Files the review, tells the client, and waits for the decision.
pub(super) async fn await_decision<R, CW>(
    held: Held,
    p: &SessionPolicy,
    client: &mut R,
    rb: &mut ReadBuffer,
    cw: &tokio::sync::Mutex<CW>,
) -> HoldEnd
where
    R: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
{
    let timeout = p
        .policy
        .guard
        .as_ref()
        .map_or(sluice_policy::DEFAULT_REVIEW_TIMEOUT, |g| {
            g.review_timeout()
        });
    // Listen for the client's CancelRequest from now on: one that comes while the review is
    // filed or the notice sent must withdraw it too (notify_waiters keeps no permit).
    let withdrawn = p.withdraw.notified();
    tokio::pin!(withdrawn);
    withdrawn.as_mut().enable();
    let hold = CommandHold {
        id: held.review.clone(),
        identity: &p.identity,
        connection: &p.connection,
        session_id: &p.session_id,
        hit: &held.hit,
        statement: held.statement.to_string(),
        timeout,
    };
    let mut waiting = match p.pipeline.hold_command(hold).await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "could not file a review; refusing the statement");
            return HoldEnd::Refused(
                decided(&held.review, "error", Vec::new(), None),
                Refusal {
                    code: "42501",
                    rule: held.hit.rule.clone(),
                    message: format!(
                        "sluice: statement needs approval under rule \"{}\", but the review could not be filed; it was not run",
                        held.hit.rule
                    ),
                    hint: "The gateway's store is unavailable; try again later.".into(),
                },
            );
        }
    };
    let mut notice = BytesMut::new();
    encode::report(
        &mut notice,
        b'N',
        "NOTICE",
        "01000",
        &format!(
            "sluice: statement held for review {} (rule \"{}\": {})",
            held.review, held.hit.rule, held.hit.reason
        ),
        &format!(
            "Waiting up to {} for {}. {} runs: sluice reviews approve {}",
            human(timeout),
            approvals(held.hit.approvals),
            approvers(&held.hit.approvers),
            held.review
        ),
    );
    if let Err(e) = reply(cw, &notice).await {
        waiting.withdraw().await;
        return HoldEnd::ClientGone(e.to_string());
    }
    let outcome = {
        let decision = waiting.decision();
        tokio::pin!(decision);
        loop {
            let room = rb.bytes().len() < HOLD_READ_LIMIT;
            tokio::select! {
                r = &mut decision => break Wait::Decided(Box::new(r)),
                _ = withdrawn.as_mut() => break Wait::Withdrawn,
                n = client.read_buf(rb.prepare()), if room => match n {
                    Ok(0) => break Wait::Gone("client disconnected while a statement waited for review".into()),
                    Ok(n) => rb.observe(n),
                    Err(e) => break Wait::Gone(e.to_string()),
                },
            }
        }
    };
    let review = match outcome {
        Wait::Decided(r) => *r,
        Wait::Withdrawn => {
            let r = waiting.withdraw().await;
            info!(review = %r.id, "held statement withdrawn by the client");
            return cancelled(&held, &r);
        }
        Wait::Gone(detail) => {
            waiting.withdraw().await;
            return HoldEnd::ClientGone(detail);
        }
    };
    info!(review = %review.id, status = review.status.as_str(), "review decided");
    let reasons = |r: &Review| {
        let v: Vec<&str> = r
            .approvals
            .iter()
            .filter_map(|a| a.reason.as_deref())
            .collect();
        (!v.is_empty()).then(|| v.join("; "))
    };
    match review.status {
        ReviewStatus::Approved => HoldEnd::Approved(decided(
            &review.id,
            "approved",
            review.approvers(),
            reasons(&review),
        )),
        ReviewStatus::Denied => {
            let (by, why) = review
                .denial
                .as_ref()
                .map(|d| (d.by.clone(), d.reason.clone()))
                .unwrap_or_default();
            let message = match &why {
                Some(w) => format!(
                    "sluice: statement denied by {by} (review {}): {w}",
                    review.id
                ),
                None => format!("sluice: statement denied by {by} (review {})", review.id),
            };
            HoldEnd::Refused(
                decided(&review.id, "denied", vec![by], why),
                Refusal {
                    code: "42501",
                    rule: held.hit.rule.clone(),
                    message,
                    hint: "The statement was not run; the session is still usable.".into(),
                },
            )
        }
        ReviewStatus::Expired | ReviewStatus::Pending => HoldEnd::Refused(
            decided(&review.id, "expired", Vec::new(), None),
            Refusal {
                code: "57014",
                rule: held.hit.rule.clone(),
                message: format!(
                    "sluice: review {} expired: no decision within {}; the statement was not run",
                    review.id,
                    human(timeout)
                ),
                hint: "Ask an approver first, then run the statement again.".into(),
            },
        ),
        ReviewStatus::Cancelled => cancelled(&held, &review),
    }
}

fn cancelled(held: &Held, review: &Review) -> HoldEnd {
    HoldEnd::Refused(
        decided(&review.id, "cancelled", Vec::new(), None),
        Refusal {
            code: "57014",
            rule: held.hit.rule.clone(),
            message: "canceling statement due to user request".into(),
            hint: format!(
                "Review {} was withdrawn; the statement was not run.",
                review.id
            ),
        },
    )
}

fn decided(
    review: &str,
    decision: &'static str,
    by: Vec<String>,
    reason: Option<String>,
) -> Decided {
    Decided {
        review: review.to_string(),
        decision,
        by,
        reason,
    }
}

fn approvals(n: u32) -> String {
    if n <= 1 {
        "approval".into()
    } else {
        format!("{n} approvals")
    }
}

fn approvers(groups: &[String]) -> String {
    match groups {
        [] => "A gateway admin".into(),
        [g] => format!("An approver in group {g}"),
        gs => format!("An approver in group {}", gs.join(" or ")),
    }
}

/// `90s`, `10m`, `1h30m`.
pub(crate) fn human(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}
