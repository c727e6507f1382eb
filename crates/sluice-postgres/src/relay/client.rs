//! The client → target pump: judges statements, forwards what is allowed, holds what needs
//! a review until it is decided.

use super::review::{await_decision, Held, HoldEnd};
use super::{record, reply, RelayEnd, SessionPolicy, SessionState, MAX_CLIENT_READ, MIN_READ};
use crate::analyze::analyze;
use crate::buffer::ReadBuffer;
use crate::codec::frontend::{next_frontend, FrontendMessage};
use crate::codec::CodecError;
use crate::tracker::{Decided, Refusal, Skip};
use sluice_core::time::now_micros;
use sluice_core::{EndReason, SessionEvent};
use sluice_pipeline::stream::write_flushed;
use sluice_policy::{RuleHit, Verdict};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

/// What the scan of a chunk decided.
struct Step {
    /// Bytes from the scan start to forward as they are.
    forward: usize,
    /// What follows them.
    then: Then,
}

enum Then {
    /// The rest is an incomplete message: read more.
    NeedMore,
    /// The client said Terminate (included in `forward`).
    Quit,
    /// The next `len` bytes are a message that is not forwarded; `answer` is what the gateway
    /// owes the client now (empty when its answer waits behind the server's).
    Cut { len: usize, answer: Vec<u8> },
    /// The next message needs a review before it may go on.
    Hold(Held),
}

/// What the scan does with the first message of its chunk, once a review decided it.
enum First {
    /// Judge it like any other.
    Judge,
    /// Approved: forward it.
    Approved(Decided),
    /// Denied, expired or withdrawn: answer it with an error.
    Refused(Decided, Refusal),
}

pub(super) async fn pump<R, W, CW>(
    client: &mut R,
    server: &mut W,
    cw: &tokio::sync::Mutex<CW>,
    state: &Mutex<SessionState>,
    policy: Option<&SessionPolicy>,
) -> RelayEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    CW: AsyncWrite + Unpin,
{
    let mut rb = ReadBuffer::new(MIN_READ, MAX_CLIENT_READ);
    let mut events = Vec::new();
    let mut durables = Vec::new();
    loop {
        match client.read_buf(rb.prepare()).await {
            Ok(0) => return RelayEnd::new(EndReason::ClientDisconnected),
            Ok(n) => rb.observe(n),
            Err(e) => {
                return RelayEnd::with(EndReason::ClientDisconnected, e.to_string(), None);
            }
        }
        let mut at = 0;
        let mut first = First::Judge;
        loop {
            let scanned = {
                let Ok(mut st) = state.lock() else {
                    return RelayEnd::with(
                        EndReason::GatewayError,
                        "state lock poisoned".into(),
                        None,
                    );
                };
                let st = &mut *st;
                let first = std::mem::replace(&mut first, First::Judge);
                let r = scan(&rb.bytes()[at..], st, policy, first, &mut events);
                record(&mut st.recorder, &mut events, &mut durables);
                r
            };
            let step = match scanned {
                Ok(s) => s,
                Err(e) => {
                    return RelayEnd::with(
                        EndReason::ClientProtocolError,
                        e.to_string(),
                        Some(("08P01", format!("invalid frontend message: {e}"))),
                    )
                }
            };
            for d in durables.drain(..) {
                if !d.wait().await {
                    return RelayEnd::with(
                        EndReason::GatewayError,
                        "recording store failed in strict mode".into(),
                        Some((
                            "58030",
                            "sluice could not record the statement; it was not sent".into(),
                        )),
                    );
                }
            }
            if step.forward > 0 {
                let bytes = &rb.bytes()[at..at + step.forward];
                if let Err(e) = write_flushed(server, bytes).await {
                    return RelayEnd::with(
                        EndReason::TargetError,
                        e.to_string(),
                        Some(("08006", format!("connection to target lost: {e}"))),
                    );
                }
                at += step.forward;
            }
            match step.then {
                Then::NeedMore => break,
                Then::Quit => return RelayEnd::new(EndReason::ClientQuit),
                Then::Cut { len, answer } => {
                    at += len;
                    if !answer.is_empty() {
                        if let Err(e) = reply(cw, &answer).await {
                            return RelayEnd::with(
                                EndReason::ClientDisconnected,
                                e.to_string(),
                                None,
                            );
                        }
                    }
                }
                Then::Hold(held) => {
                    // The held message stays in the buffer at `at`; the next scan starts
                    // with it and applies the decision.
                    let Some(p) = policy else { break };
                    first = match await_decision(held, p, client, &mut rb, cw).await {
                        HoldEnd::Approved(d) => First::Approved(d),
                        HoldEnd::Refused(d, r) => First::Refused(d, r),
                        HoldEnd::ClientGone(detail) => {
                            return RelayEnd::with(EndReason::ClientDisconnected, detail, None)
                        }
                    };
                }
            }
        }
        rb.consume(at);
    }
}

/// Feeds whole messages to the tracker and the guard until one must not be forwarded.
fn scan(
    buf: &[u8],
    st: &mut SessionState,
    policy: Option<&SessionPolicy>,
    mut first: First,
    events: &mut Vec<SessionEvent>,
) -> Result<Step, CodecError> {
    let mut at = 0;
    let now = now_micros();
    while let Some(f) = next_frontend(&buf[at..])? {
        let msg = FrontendMessage::parse(f.tag, f.body)?;
        if matches!(msg, FrontendMessage::AuthResponse(_)) {
            return Err(CodecError::UnknownType('p'));
        }
        let mut marked = None;
        let cut = |answer: Vec<u8>| Step {
            forward: at,
            then: Then::Cut { len: f.len, answer },
        };
        match std::mem::replace(&mut first, First::Judge) {
            First::Judge => {
                match st.tracker.skip(&msg) {
                    Skip::Drop => return Ok(cut(Vec::new())),
                    Skip::AnswerSync => {
                        let mut answer = Vec::new();
                        st.tracker.take_synthetic(&mut answer);
                        return Ok(cut(answer));
                    }
                    Skip::ForwardSync | Skip::No => {}
                }
                let judged = match st.tracker.execution_review(&msg) {
                    _ if st.recorder.audit_closed() && is_statement(&msg) => {
                        Judged::Refuse(audit_unavailable())
                    }
                    Some(hit) => Judged::Hold(hit),
                    None => policy.map_or(Judged::Allow, |p| judge(&msg, p)),
                };
                match judged {
                    Judged::Allow => {}
                    // A prepared statement under a review rule: each execution is held.
                    Judged::Hold(hit) if matches!(msg, FrontendMessage::Parse { .. }) => {
                        marked = Some(hit);
                    }
                    Judged::Refuse(refusal) => {
                        st.tracker.refuse(&msg, &refusal, now, events);
                        let mut answer = Vec::new();
                        st.tracker.take_synthetic(&mut answer);
                        return Ok(cut(answer));
                    }
                    Judged::Hold(hit) => {
                        let review = sluice_pipeline::reviews::new_review_id();
                        let statement = st
                            .tracker
                            .hold(&msg, &hit.rule, &hit.reason, &review, now, events)
                            .unwrap_or_else(|| Arc::from(""));
                        return Ok(Step {
                            forward: at,
                            then: Then::Hold(Held {
                                review,
                                hit,
                                statement,
                            }),
                        });
                    }
                }
            }
            First::Approved(decided) => st.tracker.release(decided, events),
            First::Refused(decided, refusal) => {
                st.tracker.refuse_held(&msg, decided, &refusal, now, events);
                let mut answer = Vec::new();
                st.tracker.take_synthetic(&mut answer);
                return Ok(cut(answer));
            }
        }
        st.tracker.on_client(&msg, now, events);
        if let (Some(hit), FrontendMessage::Parse { name, .. }) = (marked.take(), &msg) {
            st.tracker.review_executions(name, hit);
        }
        at += f.len;
        if msg == FrontendMessage::Terminate {
            return Ok(Step {
                forward: at,
                then: Then::Quit,
            });
        }
    }
    Ok(Step {
        forward: at,
        then: Then::NeedMore,
    })
}

/// The guard's verdict on one message.
enum Judged {
    Allow,
    Refuse(Refusal),
    Hold(Arc<RuleHit>),
}

/// Judges a Query or Parse.
fn is_statement(msg: &FrontendMessage<'_>) -> bool {
    matches!(
        msg,
        FrontendMessage::Query(_) | FrontendMessage::Parse { .. }
    )
}

/// `audit.fail_closed` with a full audit spool: nothing runs that could not be audited.
fn audit_unavailable() -> Refusal {
    Refusal {
        code: "53000",
        rule: "audit.fail_closed".into(),
        message: "sluice: the audit trail is unavailable and the gateway is configured to fail closed; the statement was not run".into(),
        hint: "An audit sink is too far behind; the session is still usable once it catches up.".into(),
    }
}

fn judge(msg: &FrontendMessage<'_>, p: &SessionPolicy) -> Judged {
    let Some(guard) = p.policy.guard.as_ref() else {
        return Judged::Allow;
    };
    let text = match msg {
        FrontendMessage::Query(t) => *t,
        FrontendMessage::Parse { query, .. } => *query,
        _ => return Judged::Allow,
    };
    let analysis = p.analyses.get_or(text, analyze);
    match guard.check(&analysis.command(text), &p.identity.groups) {
        Verdict::Allow => Judged::Allow,
        Verdict::Deny(hit) => Judged::Refuse(Refusal {
            code: "42501",
            rule: hit.rule.clone(),
            message: format!(
                "sluice: statement blocked by rule \"{}\": {}",
                hit.rule, hit.reason
            ),
            hint: "The statement was not sent to the database; the session is still usable.".into(),
        }),
        Verdict::Review(hit) => Judged::Hold(hit),
    }
}
