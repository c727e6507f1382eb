//! Holding a command for review. MySQL has no message a server may send unasked, so the
//! client simply waits for its answer: the review id reaches approvers through the audit
//! trail, the webhook and `sluice reviews list`, and the client learns it from the answer if
//! the command does not run. While it waits, the relay still watches the client (a
//! disconnect withdraws the review), the target, `KILL` from another connection (withdraws
//! it, as Ctrl-C in `mariadb` does), the operator's kill and the gateway's shutdown.

use super::{
    read_more, shutting_down, stopped, target_closed, target_lost, Decision, Refusal, Relay,
    RelayEnd, SessionState, MAX_PACKET, READ_CHUNK,
};
use crate::codec::command::Command;
use crate::codec::packet::next_packet;
use sluice_core::time::now_micros;
use sluice_core::{EndReason, Review};
use sluice_pipeline::reviews::{NotRun, Settled};
use sluice_policy::RuleHit;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};

/// A command the guard wants reviewed, already recorded as held.
pub(super) struct Held {
    /// Review id.
    pub review: String,
    /// The rule.
    pub hit: Arc<RuleHit>,
    /// The command as the review shows it (masked).
    pub statement: Arc<str>,
}

enum Wait {
    Decided(Box<Review>),
    Withdrawn,
    End(RelayEnd),
}

impl<CR, CW, SR, SW> Relay<CR, CW, SR, SW>
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    SR: AsyncRead + Unpin,
    SW: AsyncWrite + Unpin,
{
    /// Files the review for the command at the head of the client buffer (`len` bytes) and
    /// waits for its decision: `Forward` once approved (recorded under the held id), or the
    /// refusal to answer with.
    pub(super) async fn hold(
        &mut self,
        st: &mut SessionState,
        held: Held,
        len: usize,
    ) -> Result<Decision, RelayEnd> {
        let Some(p) = self.policy.clone() else {
            return Ok(Decision::Forward);
        };
        let timeout = p.policy.review_timeout();
        // Listen for a KILL from now on, so one that comes while the review is filed counts.
        let withdrawn = p.withdraw.notified();
        tokio::pin!(withdrawn);
        withdrawn.as_mut().enable();
        let hold = p.command_hold(held.review.clone(), &held.hit, held.statement.to_string());
        let settled = match p.pipeline.hold_command(hold).await {
            Err(e) => {
                warn!(error = %e, "could not file a review; refusing the statement");
                Settled::not_filed(&held.review, &held.hit)
            }
            Ok(mut waiting) => {
                let outcome = {
                    let decision = waiting.decision();
                    tokio::pin!(decision);
                    loop {
                        let room = self.cbuf.len() < MAX_PACKET + READ_CHUNK;
                        let server_room = self.sbuf.len() < MAX_PACKET;
                        tokio::select! {
                            r = &mut decision => break Wait::Decided(Box::new(r)),
                            _ = withdrawn.as_mut() => break Wait::Withdrawn,
                            n = read_more(&mut self.cr, &mut self.cbuf), if room => match n {
                                Ok(0) => break Wait::End(RelayEnd::with(
                                    EndReason::ClientDisconnected,
                                    "client disconnected while a statement waited for review".into(),
                                    None,
                                )),
                                Ok(_) => {}
                                Err(e) => break Wait::End(RelayEnd::with(EndReason::ClientDisconnected, e.to_string(), None)),
                            },
                            // The target owes nothing now; what it sends is kept for later.
                            n = read_more(&mut self.sr, &mut self.sbuf), if server_room => match n {
                                Ok(0) => break Wait::End(target_closed()),
                                Ok(_) => {}
                                Err(e) => break Wait::End(target_lost(e)),
                            },
                            _ = self.shutdown.wait_for(|s| *s) => break Wait::End(shutting_down()),
                            s = self.stop.wait_for(Option::is_some) => {
                                break Wait::End(stopped(s.ok().and_then(|s| s.clone())))
                            }
                        }
                    }
                };
                let review = match outcome {
                    Wait::Decided(r) => *r,
                    Wait::Withdrawn => {
                        let r = waiting.withdraw().await;
                        info!(review = %r.id, "held statement withdrawn by a KILL");
                        r
                    }
                    Wait::End(end) => {
                        waiting.withdraw().await;
                        return Err(end);
                    }
                };
                info!(review = %review.id, status = review.status.as_str(), "review decided");
                Settled::of(&review, timeout)
            }
        };
        let Some((why, message)) = settled.refusal else {
            st.tracker.release(settled.decided, &mut self.events);
            let packet = match next_packet(&self.cbuf[..len], MAX_PACKET) {
                Ok(Some(p)) => p,
                _ => return Ok(Decision::Forward),
            };
            let payload = packet.payload();
            if let Ok(cmd) = Command::parse(&payload) {
                st.tracker.on_command(&cmd, now_micros(), &mut self.events);
            }
            if let Some(end) = self.make_durable(st).await {
                return Err(end);
            }
            return Ok(Decision::Forward);
        };
        let (code, sqlstate, message) = match why {
            NotRun::Denied => (1142, "42000", message),
            // What MySQL says of a statement that was interrupted.
            NotRun::Expired | NotRun::Cancelled => (1317, "70100", message),
        };
        st.tracker
            .refuse_held(settled.decided, code, &message, &mut self.events);
        if let Some(end) = self.make_durable(st).await {
            return Err(end);
        }
        Ok(Decision::Refuse(Refusal {
            rule: held.hit.rule.clone(),
            code,
            sqlstate,
            message,
        }))
    }
}
