//! The relay of an established session, in one task. MySQL answers one command at a time,
//! so the relay reads a command, lets the guard judge it, records it, forwards it, and reads
//! the server's answer packet by packet (masking rows in place) until the tracker says it is
//! complete; a client that sends its next command early (pipelining) waits in the buffer.
//! Both sockets are read at all times, so a client that leaves or a kill is noticed while a
//! long query runs.

use crate::analyze::analyze;
use crate::codec::command::Command;
use crate::codec::packet::{next_packet, put_packet};
use crate::codec::response;
use crate::kill::{KillMap, KillRefused};
use crate::tracker::Tracker;
use sluice_core::time::now_micros;
use sluice_core::{EndReason, Identity, SessionEvent};
use sluice_pipeline::stream::ClientStream;
use sluice_pipeline::{ConnectionPolicy, Durable, Recorder, Stop};
use sluice_policy::analysis::AnalysisCache;
use sluice_policy::Verdict;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
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
    pub target: std::net::SocketAddr,
}

/// The policy a session runs under.
#[derive(Clone)]
pub struct SessionPolicy {
    /// The connection's guard and masker.
    pub policy: Arc<ConnectionPolicy>,
    /// Who the session belongs to.
    pub identity: Arc<Identity>,
    /// Analyses shared by the listener's sessions.
    pub analyses: Arc<AnalysisCache>,
}

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
    server: TcpStream,
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
    };
    let end = relay.pump(state, shutdown, stop).await;
    if let Some((code, sqlstate, message)) = &end.client_error {
        let mut err = Vec::new();
        response::encode_err(&mut err, *code, sqlstate, message);
        let mut out = Vec::new();
        // Sent outside any command: sequence id 1 is what clients expect of an answer.
        put_packet(&mut out, 1, &err);
        let _ = relay.cw.write_all(&out).await;
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
}

/// What to do with one client command.
enum Decision {
    Forward,
    /// Forward this payload instead (a `KILL` of a gateway id, pointed at the target's thread).
    Rewrite(Vec<u8>),
    /// Answer with an error and do not forward: (rule, error number, message).
    Refuse(String, u16, String),
    /// The client said goodbye.
    Quit,
}

impl<CR, CW, SR, SW> Relay<CR, CW, SR, SW>
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    SR: AsyncRead + Unpin,
    SW: AsyncWrite + Unpin,
{
    async fn pump(
        &mut self,
        st: &mut SessionState,
        mut shutdown: watch::Receiver<bool>,
        mut stop: watch::Receiver<Option<Stop>>,
    ) -> RelayEnd {
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
                    Ok(0) => return RelayEnd::with(
                        EndReason::TargetClosed,
                        "the target closed the connection".into(),
                        Some((2013, "HY000", "sluice: lost connection to the target".into())),
                    ),
                    Ok(_) => true,
                    Err(e) => return target_lost(e),
                },
                _ = shutdown.wait_for(|s| *s) => return RelayEnd::with(
                    EndReason::GatewayShutdown,
                    "gateway shutting down".into(),
                    Some((1053, "08S01", "sluice: the gateway is shutting down".into())),
                ),
                s = stop.wait_for(Option::is_some) => {
                    let s = s.ok().and_then(|s| s.clone()).unwrap_or(Stop {
                        reason: EndReason::Killed,
                        message: "terminating connection due to administrator command".into(),
                    });
                    return RelayEnd::with(s.reason, s.message.clone(), Some((1927, "70100", format!("sluice: {}", s.message))));
                }
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
            let (len, last_seq, decision) = {
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
                match &decision {
                    Decision::Forward => st.tracker.on_command(&cmd, now, &mut self.events),
                    Decision::Rewrite(payload) => match Command::parse(payload) {
                        Ok(c) => st.tracker.on_command(&c, now, &mut self.events),
                        Err(e) => return Some(protocol_error(e.to_string())),
                    },
                    Decision::Refuse(rule, code, message) => {
                        st.tracker
                            .refuse(&cmd, rule, *code, message, &mut self.events)
                    }
                    Decision::Quit => {}
                }
                (packet.len(), packet.last_seq, decision)
            };
            self.record(st, true);
            if !self.durable().await {
                return Some(RelayEnd::with(
                    EndReason::GatewayError,
                    "recording store failed in strict mode".into(),
                    Some((
                        1105,
                        "HY000",
                        "sluice could not record the statement; it was not sent".into(),
                    )),
                ));
            }
            match decision {
                Decision::Forward => {
                    if let Err(e) = self.sw.write_all(&self.cbuf[..len]).await {
                        return Some(target_lost(e));
                    }
                }
                Decision::Rewrite(payload) => {
                    let mut out = Vec::new();
                    put_packet(&mut out, 0, &payload);
                    if let Err(e) = self.sw.write_all(&out).await {
                        return Some(target_lost(e));
                    }
                }
                Decision::Refuse(_, code, message) => {
                    let mut err = Vec::new();
                    response::encode_err(&mut err, code, "42000", &message);
                    let mut out = Vec::new();
                    put_packet(&mut out, last_seq.wrapping_add(1), &err);
                    if let Err(e) = self.cw.write_all(&out).await {
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

    /// The guard's and the gateway's own verdict on one command.
    fn decide(&self, cmd: &Command<'_>, st: &SessionState) -> Decision {
        let text = match cmd {
            Command::Quit => return Decision::Quit,
            Command::ChangeUser => {
                return Decision::Refuse(
                    "gateway.change_user".into(),
                    1045,
                    "sluice: COM_CHANGE_USER is not supported through the gateway; open a new connection with the other connection's name".into(),
                )
            }
            Command::Unsupported(c) => {
                return Decision::Refuse(
                    "gateway.unsupported_command".into(),
                    1047,
                    format!("sluice: command 0x{c:02x} is not supported through the gateway"),
                )
            }
            Command::ProcessKill(id) => {
                return match self.kill_target(u64::from(*id)) {
                    Ok(Some(thread)) => {
                        let mut p = vec![crate::codec::command::code::PROCESS_KILL];
                        p.extend_from_slice(&thread.to_le_bytes());
                        Decision::Rewrite(p)
                    }
                    Ok(None) => Decision::Forward,
                    Err(refusal) => refusal,
                }
            }
            Command::Query(t) | Command::StmtPrepare(t) => Some(*t),
            _ => None,
        };
        let statement = text.is_some() || matches!(cmd, Command::StmtExecute { .. });
        if statement && st.recorder.audit_closed() {
            return Decision::Refuse(
                "audit.fail_closed".into(),
                1053,
                "sluice: the audit trail is unavailable and the gateway is configured to fail closed; the statement was not run".into(),
            );
        }
        let Some(text) = text else {
            return Decision::Forward;
        };
        let text = String::from_utf8_lossy(text);
        let analysis = match &self.policy {
            Some(p) => p.analyses.get_or(&text, analyze),
            None => Arc::new(analyze(&text)),
        };
        if analysis
            .statements
            .iter()
            .any(|s| s.classes.iter().any(|c| c == "load_data_local"))
        {
            return Decision::Refuse(
                "gateway.load_data_local".into(),
                1148,
                "sluice: LOAD DATA LOCAL INFILE is refused: it lets the server read files from the client's machine".into(),
            );
        }
        let allowed = match self.kill_rewrite(&text, &analysis) {
            Ok(Some(rewritten)) => Decision::Rewrite(rewritten),
            Ok(None) => Decision::Forward,
            Err(refusal) => return refusal,
        };
        let Some(p) = &self.policy else {
            return allowed;
        };
        let Some(guard) = p.policy.guard.as_ref() else {
            return allowed;
        };
        match guard.check(&analysis.command(&text), &p.identity.groups) {
            Verdict::Allow => allowed,
            Verdict::Deny(hit) => Decision::Refuse(
                hit.rule.clone(),
                1142,
                format!(
                    "sluice: statement blocked by rule \"{}\": {}",
                    hit.rule, hit.reason
                ),
            ),
            // Holding a MySQL statement for approval is not built yet: refuse, never run it.
            Verdict::Review(hit) => Decision::Refuse(
                hit.rule.clone(),
                1142,
                format!(
                    "sluice: statement needs approval under rule \"{}\" ({}), and approvals are not available on MySQL connections yet; it was not run",
                    hit.rule, hit.reason
                ),
            ),
        }
    }

    /// The target thread behind gateway id `id`, for a `KILL` from this session.
    fn kill_target(&self, id: u64) -> Result<Option<u32>, Decision> {
        let k = &self.kills;
        k.map.resolve(id, &k.identity, k.target).map_err(|why| {
            let message = match why {
                KillRefused::NotYours => {
                    format!("sluice: connection {id} belongs to another identity")
                }
                KillRefused::OtherTarget => format!("sluice: connection {id} is on another target"),
            };
            Decision::Refuse("gateway.kill".into(), 1095, message)
        })
    }

    /// A `KILL [QUERY | CONNECTION] n` of a gateway id, rewritten for the target (a command
    /// payload), or `None` when the text is something else.
    fn kill_rewrite(
        &self,
        text: &str,
        analysis: &sluice_policy::analysis::Analysis,
    ) -> Result<Option<Vec<u8>>, Decision> {
        let is_kill = analysis.statements.len() == 1
            && analysis.statements[0].classes.iter().any(|c| c == "kill");
        if !is_kill {
            return Ok(None);
        }
        let Some((modifier, id)) = crate::analyze::kill_target(text) else {
            return Ok(None);
        };
        let Some(thread) = self.kill_target(id)? else {
            return Ok(None);
        };
        let mut p = vec![crate::codec::command::code::QUERY];
        p.extend_from_slice(format!("KILL {modifier}{thread}").as_bytes());
        Ok(Some(p))
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
            if let Err(e) = self.cw.write_all(&self.sbuf[..at]).await {
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

/// The target's socket failed.
fn target_lost(e: impl std::fmt::Display) -> RelayEnd {
    RelayEnd::with(
        EndReason::TargetError,
        e.to_string(),
        Some((
            2013,
            "HY000",
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
            2027,
            "HY000",
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
