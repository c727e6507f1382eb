//! The relay of an established session: two pumps, client → target and target → client.
//!
//! Each pump reads a chunk, lets the tracker see every whole message in it (one short lock),
//! records what the tracker produced, then forwards the whole messages with a single write:
//! bytes are never re-encoded, and a large result costs one write per read, not per row.
//! The pumps run concurrently so a target that is busy sending can never block a client
//! that is still sending (and vice versa).

use crate::buffer::ReadBuffer;
use crate::codec::backend::{error_fields, BackendMessage};
use crate::codec::frontend::{next_frontend, FrontendMessage};
use crate::codec::{encode, next_message, CodecError};
use crate::stream::ClientStream;
use crate::tracker::Tracker;
use bytes::BytesMut;
use sluice_core::time::now_micros;
use sluice_core::{EndReason, SessionEvent};
use sluice_pipeline::{Durable, Recorder};
use std::sync::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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

/// Relays until either side ends or the gateway shuts down.
pub async fn run(
    client: ClientStream,
    server: tokio::net::TcpStream,
    state: &Mutex<SessionState>,
    shutdown: watch::Receiver<bool>,
) -> RelayEnd {
    match client {
        // Plain TCP splits without a lock; TLS needs the shared-state split.
        ClientStream::Plain(tcp) => {
            let (cr, cw) = tcp.into_split();
            run_halves(cr, cw, server, state, shutdown).await
        }
        ClientStream::Tls(tls) => {
            let (cr, cw) = tokio::io::split(*tls);
            run_halves(cr, cw, server, state, shutdown).await
        }
    }
}

async fn run_halves<CR, CW>(
    mut cr: CR,
    mut cw: CW,
    server: tokio::net::TcpStream,
    state: &Mutex<SessionState>,
    mut shutdown: watch::Receiver<bool>,
) -> RelayEnd
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
{
    let (mut sr, mut sw) = server.into_split();
    let end = tokio::select! {
        e = client_to_server(&mut cr, &mut sw, state) => e,
        e = server_to_client(&mut sr, &mut cw, state) => e,
        _ = shutdown.wait_for(|stop| *stop) => RelayEnd::with(
            EndReason::GatewayShutdown,
            "gateway shutting down".into(),
            Some(("57P01", "sluice gateway is shutting down".into())),
        ),
    };
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

async fn client_to_server<R, W>(
    client: &mut R,
    server: &mut W,
    state: &Mutex<SessionState>,
) -> RelayEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
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
        let buf = rb.bytes();
        let scanned = {
            let Ok(mut st) = state.lock() else {
                return RelayEnd::with(EndReason::GatewayError, "state lock poisoned".into(), None);
            };
            let st = &mut *st;
            let r = scan_client(buf, &mut st.tracker, &mut events);
            record(&mut st.recorder, &mut events, &mut durables);
            r
        };
        let (complete, quit) = match scanned {
            Ok(v) => v,
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
        if complete > 0 {
            if let Err(e) = server.write_all(&rb.bytes()[..complete]).await {
                return RelayEnd::with(
                    EndReason::TargetError,
                    e.to_string(),
                    Some(("08006", format!("connection to target lost: {e}"))),
                );
            }
            rb.consume(complete);
        }
        if quit {
            return RelayEnd::new(EndReason::ClientQuit);
        }
    }
}

/// Feeds every whole message to the tracker. Returns the bytes they span and whether the
/// client said Terminate.
fn scan_client(
    buf: &[u8],
    tracker: &mut Tracker,
    events: &mut Vec<SessionEvent>,
) -> Result<(usize, bool), CodecError> {
    let mut at = 0;
    let now = now_micros();
    while let Some(f) = next_frontend(&buf[at..])? {
        let msg = FrontendMessage::parse(f.tag, f.body)?;
        if matches!(msg, FrontendMessage::AuthResponse(_)) {
            return Err(CodecError::UnknownType('p'));
        }
        tracker.on_client(&msg, now, events);
        at += f.len;
        if msg == FrontendMessage::Terminate {
            return Ok((at, true));
        }
    }
    Ok((at, false))
}

async fn server_to_client<R, W>(
    server: &mut R,
    client: &mut W,
    state: &Mutex<SessionState>,
) -> RelayEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut rb = ReadBuffer::new(MIN_READ, MAX_SERVER_READ);
    let mut events = Vec::new();
    let mut durables = Vec::new();
    let mut fatal_seen = false;
    loop {
        let closed = match server.read_buf(rb.prepare()).await {
            Ok(0) => Some("target closed the connection".to_string()),
            Ok(n) => {
                rb.observe(n);
                None
            }
            Err(e) => Some(format!("target connection failed: {e}")),
        };
        let buf = rb.bytes();
        if let Some(detail) = closed {
            let tell = (!fatal_seen).then(|| ("08006", format!("sluice: {detail}")));
            return RelayEnd::with(EndReason::TargetClosed, detail, tell);
        }
        let scanned = {
            let Ok(mut st) = state.lock() else {
                return RelayEnd::with(EndReason::GatewayError, "state lock poisoned".into(), None);
            };
            let st = &mut *st;
            let r = scan_server(buf, &mut st.tracker, &mut events, &mut fatal_seen);
            record(&mut st.recorder, &mut events, &mut durables);
            r
        };
        durables.clear();
        let complete = match scanned {
            Ok(n) => n,
            Err(e) => {
                return RelayEnd::with(
                    EndReason::TargetError,
                    format!("target sent invalid protocol: {e}"),
                    Some(("08P01", "sluice: the target sent invalid protocol".into())),
                )
            }
        };
        if complete > 0 {
            let written = match client.write_all(&rb.bytes()[..complete]).await {
                Ok(()) => client.flush().await,
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                return RelayEnd::with(EndReason::ClientDisconnected, e.to_string(), None);
            }
            rb.consume(complete);
        }
    }
}

fn scan_server(
    buf: &[u8],
    tracker: &mut Tracker,
    events: &mut Vec<SessionEvent>,
    fatal_seen: &mut bool,
) -> Result<usize, CodecError> {
    let mut at = 0;
    let now = now_micros();
    while let Some(f) = next_message(&buf[at..])? {
        let msg = BackendMessage::parse(f.tag, f.body)?;
        if f.tag == b'E' {
            *fatal_seen |=
                error_fields(f.body).is_ok_and(|e| e.severity == "FATAL" || e.severity == "PANIC");
        }
        tracker.on_server(&msg, now, events);
        at += f.len;
    }
    Ok(at)
}
