//! The relay of an established session, in one task. MySQL answers one command at a time,
//! so the relay reads a command, lets the guard judge it, records it, forwards it, and reads
//! the server's answer packet by packet (masking rows in place) until the tracker says it is
//! complete; a client that sends its next command early (pipelining) waits in the buffer.
//! Both sockets are read at all times, so a client that leaves or a kill is noticed while a
//! long query runs.

mod decide;
mod hold;

use crate::codec::command::Command;
use crate::codec::packet::{next_packet, put_packet};
use crate::codec::response;
use crate::kill::KillMap;
use crate::tracker::Tracker;
use sluice_core::time::now_micros;
use sluice_core::{EndReason, SessionEvent};
use sluice_pipeline::stream::{write_flushed, ClientStream};
use sluice_pipeline::{Durable, Recorder, Stop};
use sluice_policy::RuleHit;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// Largest logical packet the gateway accepts from either side (MySQL's own limit is 1 GiB).
pub const MAX_PACKET: usize = 256 << 20;
const READ_CHUNK: usize = 64 * 1024;

/// What `KILL` rewriting needs to know about this session.
#[derive(Clone)]
pub struct KillScope {
    /// Live sessions' gateway ids.
    pub map: Arc<KillMap>,
    /// This session's identity.
    pub identity: String,
    /// This session's target.
    pub target: String,
}

pub use sluice_pipeline::SessionPolicy;

/// How the relay ended.
#[derive(Debug)]
pub struct RelayEnd {
    /// Why.
    pub reason: EndReason,
    /// Detail for the recording (never a secret).
    pub detail: Option<String>,
    /// A final error for the client: (error number, SQLSTATE, message).
    pub client_error: Option<(u16, &'static str, String)>,
}

impl RelayEnd {
    fn new(reason: EndReason) -> Self {
        RelayEnd {
            reason,
            detail: None,
            client_error: None,
        }
    }

    fn with(
        reason: EndReason,
        detail: String,
        client_error: Option<(u16, &'static str, String)>,
    ) -> Self {
        RelayEnd {
            reason,
            detail: Some(detail),
            client_error,
        }
    }
}

/// What the session's two state holders are.
pub struct SessionState {
    /// Pairs commands with results.
    pub tracker: Tracker,
    /// Records the session.
    pub recorder: Recorder,
}

/// Relays until either side ends, the gateway shuts down, or `stop` says so.
pub async fn run(
    client: ClientStream,
    server: sluice_pipeline::TargetStream,
    state: &mut SessionState,
    policy: Option<SessionPolicy>,
    kills: KillScope,
    shutdown: watch::Receiver<bool>,
    stop: watch::Receiver<Option<Stop>>,
) -> RelayEnd {
    let (sr, sw) = server.into_split();
    let (cr, cw) = tokio::io::split(client);
    let mut relay = Relay {
        cr,
        cw,
        sr,
        sw,
        cbuf: Vec::with_capacity(READ_CHUNK),
        sbuf: Vec::with_capacity(READ_CHUNK),
        events: Vec::new(),
        durables: Vec::new(),
        policy,
        kills,
        shutdown,
        stop,
    };
    let end = relay.pump(state).await;
    if let Some((code, sqlstate, message)) = &end.client_error {
        let mut err = Vec::new();
        response::encode_err(&mut err, *code, sqlstate, message);
        let mut out = Vec::new();
        // Sent outside any command: sequence id 1 is what clients expect of an answer.
        put_packet(&mut out, 1, &err);
        let _ = write_flushed(&mut relay.cw, &out).await;
    }
    let _ = relay.cw.shutdown().await;
    let _ = relay.sw.shutdown().await;
    end
}

struct Relay<CR, CW, SR, SW> {
    cr: CR,
    cw: CW,
    sr: SR,
    sw: SW,
    cbuf: Vec<u8>,
    sbuf: Vec<u8>,
    events: Vec<SessionEvent>,
    durables: Vec<Durable>,
    policy: Option<SessionPolicy>,
    kills: KillScope,
    shutdown: watch::Receiver<bool>,
    stop: watch::Receiver<Option<Stop>>,
}

/// What to do with one client command.
enum Decision {
    Forward,
    /// Forward a COM_STMT_PREPARE, and hold every execution of the statement for review.
    ReviewExecutions(Arc<RuleHit>),
    /// Forward this payload instead (a `KILL` of a gateway id, pointed at the target's thread).
    Rewrite(Vec<u8>),
    /// Answer with an error and do not forward.
    Refuse(Refusal),
    /// Hold it until a review decides.
    Hold(Arc<RuleHit>),
    /// The client said goodbye.
    Quit,
}

/// An error the gateway answers a command with.
struct Refusal {
    /// The rule (or gateway rule) that refused it.
    rule: String,
    code: u16,
    sqlstate: &'static str,
    message: String,
}

impl Refusal {
    /// Refuses with SQLSTATE 42000.
    fn decision(rule: &str, code: u16, message: String) -> Decision {
        Decision::Refuse(Refusal {
            rule: rule.to_string(),
            code,
            sqlstate: "42000",
            message,
        })
    }
}

impl<CR, CW, SR, SW> Relay<CR, CW, SR, SW>
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    SR: AsyncRead + Unpin,
    SW: AsyncWrite + Unpin,
{
    async fn pump(&mut self, st: &mut SessionState) -> RelayEnd {
        loop {
            if let Some(end) = self.commands(st).await {
                return end;
            }
            let cbuf_full = self.cbuf.len() >= MAX_PACKET + READ_CHUNK;
            let server_data = tokio::select! {
                n = read_more(&mut self.cr, &mut self.cbuf), if !cbuf_full => match n {
                    Ok(0) => return RelayEnd::new(EndReason::ClientDisconnected),
                    Ok(_) => false,
                    Err(e) => return RelayEnd::with(EndReason::ClientDisconnected, e.to_string(), None),
                },
                n = read_more(&mut self.sr, &mut self.sbuf) => match n {
                    Ok(0) => return target_closed(),
                    Ok(_) => true,
                    Err(e) => return target_lost(e),
                },
                _ = self.shutdown.wait_for(|s| *s) => return shutting_down(),
                s = self.stop.wait_for(Option::is_some) => return stopped(s.ok().and_then(|s| s.clone())),
            };
            if server_data {
                if let Some(end) = self.answers(st).await {
                    return end;
                }
            }
        }
    }

    /// Handles the client's buffered commands while no answer is owed.
    async fn commands(&mut self, st: &mut SessionState) -> Option<RelayEnd> {
        while st.tracker.idle() {
            let (len, last_seq, decision, held) = {
                let packet = match next_packet(&self.cbuf, MAX_PACKET) {
                    Ok(Some(p)) => p,
                    Ok(None) => return None,
                    Err(e) => return Some(protocol_error(e.to_string())),
                };
                let payload = packet.payload();
                let cmd = match Command::parse(&payload) {
                    Ok(c) => c,
                    Err(e) => return Some(protocol_error(e.to_string())),
                };
                let now = now_micros();
                let decision = self.decide(&cmd, st);
                let ev = &mut self.events;
                let mut held = None;
                let decision = match decision {
                    Decision::Forward => {
                        st.tracker.on_command(&cmd, now, ev);
                        Decision::Forward
                    }
                    Decision::ReviewExecutions(hit) => {
                        st.tracker.on_command(&cmd, now, ev);
                        st.tracker.review_executions(hit);
                        Decision::Forward
                    }
                    Decision::Rewrite(payload) => match Command::parse(&payload) {
                        Ok(c) => {
                            st.tracker.on_command(&c, now, ev);
                            Decision::Rewrite(payload)
                        }
                        Err(e) => return Some(protocol_error(e.to_string())),
                    },
                    Decision::Refuse(r) => {
                        st.tracker.refuse(&cmd, &r.rule, r.code, &r.message, ev);
                        Decision::Refuse(r)
                    }
                    Decision::Hold(hit) => {
                        let review = sluice_pipeline::reviews::new_review_id();
                        let shown = st.tracker.hold(&cmd, &hit, &review, ev);
                        // Recorded now; the hold below turns it into a forward or a refusal.
                        held = Some(hold::Held {
                            review,
                            hit,
                            statement: shown,
                        });
                        Decision::Forward
                    }
                    Decision::Quit => Decision::Quit,
                };
                (packet.len(), packet.last_seq, decision, held)
            };
            if let Some(end) = self.make_durable(st).await {
                return Some(end);
            }
            let decision = match held {
                Some(held) => match self.hold(st, held, len).await {
                    Ok(d) => d,
                    Err(end) => return Some(end),
                },
                None => decision,
            };
            match decision {
                Decision::Forward | Decision::ReviewExecutions(_) | Decision::Hold(_) => {
                    if let Err(e) = write_flushed(&mut self.sw, &self.cbuf[..len]).await {
                        return Some(target_lost(e));
                    }
                }
                Decision::Rewrite(payload) => {
                    let mut out = Vec::new();
                    put_packet(&mut out, 0, &payload);
                    if let Err(e) = write_flushed(&mut self.sw, &out).await {
                        return Some(target_lost(e));
                    }
                }
                Decision::Refuse(r) => {
                    let mut err = Vec::new();
                    response::encode_err(&mut err, r.code, r.sqlstate, &r.message);
                    let mut out = Vec::new();
                    put_packet(&mut out, last_seq.wrapping_add(1), &err);
                    if let Err(e) = write_flushed(&mut self.cw, &out).await {
                        return Some(RelayEnd::with(
                            EndReason::ClientDisconnected,
                            e.to_string(),
                            None,
                        ));
                    }
                }
                Decision::Quit => return Some(RelayEnd::new(EndReason::ClientQuit)),
            }
            self.cbuf.drain(..len);
        }
        None
    }

    /// Records the commands' events and, in strict mode, waits until they are durable.
    async fn make_durable(&mut self, st: &mut SessionState) -> Option<RelayEnd> {
        self.record(st, true);
        if self.durable().await {
            return None;
        }
        Some(RelayEnd::with(
            EndReason::GatewayError,
            "recording store failed in strict mode".into(),
            Some((
                1105,
                "HY000",
                "sluice could not record the statement; it was not sent".into(),
            )),
        ))
    }

    /// Handles the server's buffered packets: tracks, masks and forwards them.
    async fn answers(&mut self, st: &mut SessionState) -> Option<RelayEnd> {
        let mut at = 0;
        let now = now_micros();
        loop {
            let len = match next_packet(&self.sbuf[at..], MAX_PACKET) {
                Ok(Some(p)) => p.len(),
                Ok(None) => break,
                Err(e) => return Some(target_malformed(e)),
            };
            if let Err(e) =
                st.tracker
                    .on_server(&mut self.sbuf[at..at + len], now, &mut self.events)
            {
                return Some(target_malformed(e));
            }
            at += len;
        }
        self.record(st, false);
        if at > 0 {
            if let Err(e) = write_flushed(&mut self.cw, &self.sbuf[..at]).await {
                return Some(RelayEnd::with(
                    EndReason::ClientDisconnected,
                    e.to_string(),
                    None,
                ));
            }
            self.sbuf.drain(..at);
        }
        None
    }

    /// Records the tracker's events; a command's may have to be durable before it is
    /// forwarded (strict mode), a result's never wait.
    fn record(&mut self, st: &mut SessionState, command: bool) {
        for e in self.events.drain(..) {
            let d = st.recorder.record(&e);
            if command {
                self.durables.push(d);
            }
        }
    }

    async fn durable(&mut self) -> bool {
        for d in self.durables.drain(..) {
            if !d.wait().await {
                return false;
            }
        }
        true
    }
}

/// The error number a client gets when the target's connection is lost
/// (ER_NET_READ_ERROR: the client library keeps 2013 for itself).
const TARGET_LOST: u16 = 1158;
/// ... and when the target sent something unreadable (ER_NET_PACKETS_OUT_OF_ORDER; 2027 is
/// the client library's).
const TARGET_MALFORMED: u16 = 1156;

/// The target closed its connection.
fn target_closed() -> RelayEnd {
    RelayEnd::with(
        EndReason::TargetClosed,
        "the target closed the connection".into(),
        Some((
            TARGET_LOST,
            "08S01",
            "sluice: lost connection to the target".into(),
        )),
    )
}

/// The gateway shuts down.
fn shutting_down() -> RelayEnd {
    RelayEnd::with(
        EndReason::GatewayShutdown,
        "gateway shutting down".into(),
        Some((1053, "08S01", "sluice: the gateway is shutting down".into())),
    )
}

/// An operator (or an expiry, or a block) ended the session.
fn stopped(s: Option<Stop>) -> RelayEnd {
    let s = s.unwrap_or(Stop {
        reason: EndReason::Killed,
        message: "terminating connection due to administrator command".into(),
    });
    let client = format!("sluice: {}", s.message);
    RelayEnd::with(s.reason, s.message, Some((1927, "70100", client)))
}

/// The target's socket failed.
fn target_lost(e: impl std::fmt::Display) -> RelayEnd {
    RelayEnd::with(
        EndReason::TargetError,
        e.to_string(),
        Some((
            TARGET_LOST,
            "08S01",
            format!("sluice: lost connection to the target: {e}"),
        )),
    )
}

/// The target sent bytes that are not the answer it owes.
fn target_malformed(e: impl std::fmt::Display) -> RelayEnd {
    RelayEnd::with(
        EndReason::TargetError,
        e.to_string(),
        Some((
            TARGET_MALFORMED,
            "08S01",
            format!("sluice: malformed packet from the target: {e}"),
        )),
    )
}

fn protocol_error(detail: String) -> RelayEnd {
    RelayEnd::with(
        EndReason::ClientProtocolError,
        detail.clone(),
        Some((1156, "08S01", format!("sluice: malformed packet: {detail}"))),
    )
}

/// Reads what is available into `buf`.
async fn read_more<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.reserve(READ_CHUNK);
    r.read_buf(buf).await
}
