//! Holding a statement for review: file the review, tell the client (NoticeResponse), wait
//! for the decision while watching the client, and say how it ended.

use super::{reply, SessionPolicy};
use crate::buffer::ReadBuffer;
use crate::codec::encode;
use crate::tracker::{Decided, Refusal};
use bytes::BytesMut;
use sluice_core::Review;
use sluice_pipeline::reviews::{held_notice, NotRun, Settled};
use sluice_policy::RuleHit;
use std::sync::Arc;
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
    let timeout = p.policy.review_timeout();
    // Listen for the client's CancelRequest from now on: one that comes while the review is
    // filed or the notice sent must withdraw it too (notify_waiters keeps no permit).
    let withdrawn = p.withdraw.notified();
    tokio::pin!(withdrawn);
    withdrawn.as_mut().enable();
    let hold = p.command_hold(held.review.clone(), &held.hit, held.statement.to_string());
    let mut waiting = match p.pipeline.hold_command(hold).await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "could not file a review; refusing the statement");
            return refused(
                &held,
                Settled::not_filed(&held.review, &held.hit),
                "The gateway's store is unavailable; try again later.".into(),
            );
        }
    };
    let (message, hint) = held_notice(&held.review, &held.hit, timeout);
    let mut notice = BytesMut::new();
    encode::report(&mut notice, b'N', "NOTICE", "01000", &message, &hint);
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
            r
        }
        Wait::Gone(detail) => {
            waiting.withdraw().await;
            return HoldEnd::ClientGone(detail);
        }
    };
    info!(review = %review.id, status = review.status.as_str(), "review decided");
    let settled = Settled::of(&review, timeout);
    let hint = match settled.refusal {
        Some((NotRun::Expired, _)) => "Ask an approver first, then run the statement again.".into(),
        Some((NotRun::Cancelled, _)) => {
            format!(
                "Review {} was withdrawn; the statement was not run.",
                review.id
            )
        }
        _ => "The statement was not run; the session is still usable.".into(),
    };
    refused(&held, settled, hint)
}

/// The end of a hold: approved, or refused with the protocol's error.
fn refused(held: &Held, settled: Settled, hint: String) -> HoldEnd {
    let Some((why, message)) = settled.refusal else {
        return HoldEnd::Approved(settled.decided);
    };
    let (code, message) = match why {
        NotRun::Denied => ("42501", message),
        NotRun::Expired => ("57014", message),
        // What psql prints for a cancelled statement.
        NotRun::Cancelled => ("57014", "canceling statement due to user request".into()),
    };
    HoldEnd::Refused(
        settled.decided,
        Refusal {
            code,
            rule: held.hit.rule.clone(),
            message,
            hint,
        },
    )
}
