//! The relay of an established session: two pumps, client → target and target → client.
//!
//! Each pump reads a chunk and, under one short lock of the session state, lets the tracker
//! see every whole message in it, judges client statements with the connection's guard,
//! masks server messages, and records what the tracker produced. Then it forwards: allowed
//! bytes go out unchanged with one write per read (a large result costs one write per read,
//! not per row); a refused statement is cut out of the stream and answered by the gateway in
//! its place. The pumps run concurrently so a target that is busy sending can never block a
//! client that is still sending (and vice versa).

mod client;
mod review;
mod server;

use crate::codec::encode;
use crate::tracker::Tracker;
use bytes::BytesMut;
use sluice_core::{EndReason, SessionEvent};
use sluice_pipeline::stream::ClientStream;
use sluice_pipeline::{Durable, Recorder, Stop};
use std::sync::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// Read sizes: small while idle, growing while data streams.
const MIN_READ: usize = 4 * 1024;
const MAX_CLIENT_READ: usize = 64 * 1024;
const MAX_SERVER_READ: usize = 128 * 1024;

/// What the two pumps share: the tracker and the recorder.
pub struct SessionState {
    /// Pairs statements with results.
    pub tracker: Tracker,
    /// Records the session.
    pub recorder: Recorder,
}

pub use sluice_pipeline::SessionPolicy;

/// How the relay ended.
#[derive(Debug)]
pub struct RelayEnd {
    /// Why.
    pub reason: EndReason,
    /// Detail for the recording (never a secret).
    pub detail: Option<String>,
    /// A final error to send the client: (SQLSTATE, message).
    pub client_error: Option<(&'static str, String)>,
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
        client_error: Option<(&'static str, String)>,
    ) -> Self {
        RelayEnd {
            reason,
            detail: Some(detail),
            client_error,
        }
    }
}

/// Relays until either side ends, the gateway shuts down, or `stop` says so.
pub async fn run(
    client: ClientStream,
    server: sluice_pipeline::TargetStream,
    state: &Mutex<SessionState>,
    policy: Option<SessionPolicy>,
    shutdown: watch::Receiver<bool>,
    stop: watch::Receiver<Option<Stop>>,
) -> RelayEnd {
    match client {
        // Plain TCP splits without a lock; TLS needs the shared-state split.
        ClientStream::Plain(tcp) => {
            let (cr, cw) = tcp.into_split();
            run_halves(cr, cw, server, state, policy, shutdown, stop).await
        }
        ClientStream::Tls(tls) => {
            let (cr, cw) = tokio::io::split(*tls);
            run_halves(cr, cw, server, state, policy, shutdown, stop).await
        }
    }
}

async fn run_halves<CR, CW>(
    mut cr: CR,
    cw: CW,
    server: sluice_pipeline::TargetStream,
    state: &Mutex<SessionState>,
    policy: Option<SessionPolicy>,
    mut shutdown: watch::Receiver<bool>,
    mut stop: watch::Receiver<Option<Stop>>,
) -> RelayEnd
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
{
    let (mut sr, mut sw) = server.into_split();
    let cw = tokio::sync::Mutex::new(cw);
    let masker = policy.as_ref().and_then(|p| p.policy.masker.clone());
    let end = tokio::select! {
        e = client::pump(&mut cr, &mut sw, &cw, state, policy.as_ref()) => e,
        e = server::pump(&mut sr, &cw, state, masker) => e,
        _ = shutdown.wait_for(|stop| *stop) => RelayEnd::with(
            EndReason::GatewayShutdown,
            "gateway shutting down".into(),
            Some(("57P01", "sluice gateway is shutting down".into())),
        ),
        s = stop.wait_for(Option::is_some) => {
            let s = s.ok().and_then(|s| s.clone()).unwrap_or(Stop {
                reason: EndReason::Killed,
                message: "terminating connection due to administrator command".into(),
            });
            RelayEnd::with(s.reason, s.message.clone(), Some(("57P01", s.message)))
        }
    };
    let mut cw = cw.into_inner();
    if let Some((code, message)) = &end.client_error {
        let mut out = BytesMut::new();
        encode::error_response(&mut out, "FATAL", code, message);
        let _ = cw.write_all(&out).await;
    }
    let _ = cw.shutdown().await;
    let _ = sw.shutdown().await;
    end
}

/// Records `events`; returns what must be durable before forwarding.
fn record(recorder: &mut Recorder, events: &mut Vec<SessionEvent>, durables: &mut Vec<Durable>) {
    for e in events.drain(..) {
        durables.push(recorder.record(&e));
    }
}

/// Writes gateway-originated bytes to the client.
async fn reply<CW: AsyncWrite + Unpin>(
    cw: &tokio::sync::Mutex<CW>,
    bytes: &[u8],
) -> std::io::Result<()> {
    sluice_pipeline::stream::write_flushed(&mut *cw.lock().await, bytes).await
}
