//! `exec` and `attach` streams (the `channel.k8s.io` WebSocket subprotocols, v1 to v5): each
//! binary message starts with its channel, 0 stdin, 1 stdout, 2 stderr, 3 the error/status
//! channel, 4 window size, 255 (v5) the close of a channel.
//!
//! The relay reads both sides frame by frame. What the client sends goes on unchanged and is
//! recorded (stdin as input, window sizes as resizes); stdout and stderr are masked as they
//! stream and recorded as terminal output; the status at the end gives the exit code.
//! Containment ends the stream with a `Status` on the error channel, which kubectl prints.

use crate::status::stream_failure;
use crate::stream::{exit_of, record_input, record_resize, Output};
use crate::ws::{self, Frame, FrameError};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use sluice_core::{Outcome, SessionEvent};
use sluice_http::body::Exchange;
use sluice_http::session::HttpSession;
use sluice_mask::Masker;
use sluice_pipeline::output::TextCarry;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tracing::debug;

/// Largest frame relayed (kubectl writes stdin in 32 KiB pieces).
pub(crate) const MAX_FRAME: usize = 16 * 1024 * 1024;
/// How long output held back for masking waits for the rest of its line.
pub(crate) const FLUSH_AFTER: Duration = Duration::from_millis(30);

/// The channels of the protocol.
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;

/// One exec or attach stream.
pub struct ExecStream {
    /// The recorded exchange (the upgrade request).
    pub exchange: Exchange,
    /// The channel number it is recorded under (the request's query id).
    pub channel: u32,
    /// Masks output (when the connection masks toward clients) and recordings.
    pub masker: Option<Arc<Masker>>,
    /// Masks what the client sees, not only the recording.
    pub mask_client: bool,
}

/// What a side of the relay saw.
enum Seen {
    Client(Result<Option<Frame>, FrameError>),
    Service(Result<Option<Frame>, FrameError>),
}

impl ExecStream {
    /// Relays the upgraded connections in a task of their own.
    pub fn relay(self, client: OnUpgrade, service: OnUpgrade) {
        tokio::spawn(async move {
            let (client, service) = match tokio::try_join!(client, service) {
                Ok(pair) => pair,
                Err(e) => {
                    let mut exchange = self.exchange;
                    exchange.record.error = Some(format!("the WebSocket upgrade failed: {e}"));
                    return;
                }
            };
            self.run(TokioIo::new(client), TokioIo::new(service)).await;
        });
    }

    async fn run<C, S>(mut self, client: C, service: S)
    where
        C: AsyncRead + AsyncWrite + Send + 'static,
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let session = self.exchange.session.clone();
        let mut stop = session.stop_signal();
        let (client_r, mut client_w) = tokio::io::split(client);
        let (service_r, mut service_w) = tokio::io::split(service);
        let (tx, mut rx) = mpsc::channel(16);
        spawn_reader(client_r, tx.clone(), Seen::Client);
        spawn_reader(service_r, tx, Seen::Service);
        let mut out = Output::new(self.masker.clone(), self.channel);
        let (mut up, mut down) = (0u64, 0u64);
        let (mut client_open, mut service_open) = (true, true);
        let mut input = TextCarry::default();
        let mut exit: Option<(Option<u32>, Option<String>)> = None;
        loop {
            let flush = async {
                match out.holding() {
                    true => tokio::time::sleep(FLUSH_AFTER).await,
                    false => std::future::pending().await,
                }
            };
            tokio::select! {
                seen = rx.recv() => match seen {
                    Some(Seen::Client(Ok(Some(frame)))) => {
                        up += frame.payload.len() as u64;
                        self.record_client(&frame, &mut input, &session);
                        if !service_open || ws::write_frame(&mut service_w, &frame).await.is_err() {
                            service_open = false;
                        }
                        if frame.opcode == ws::CLOSE {
                            client_open = false;
                        }
                    }
                    Some(Seen::Client(end)) => {
                        match end {
                            // A broken frame: the client is told (1002, protocol error) and
                            // the stream ends; nothing else is affected.
                            Err(e @ (FrameError::Reserved | FrameError::TooLarge(_))) => {
                                let reason = format!("sluice: {e}");
                                let mut payload = 1002u16.to_be_bytes().to_vec();
                                payload.extend_from_slice(reason.as_bytes());
                                send(&mut client_w, &Frame::new(ws::CLOSE, payload), &mut client_open, &mut down).await;
                                session.audit("kubernetes.stream", Outcome::Failure, Some(e.to_string()));
                                self.exchange.record.error = Some(e.to_string());
                            }
                            Err(e) => debug!(error = %e, "exec client side ended with an error"),
                            Ok(_) => {}
                        }
                        break;
                    }
                    Some(Seen::Service(Ok(Some(frame)))) => {
                        if frame.is_control() || frame.payload.is_empty() {
                            if frame.opcode == ws::CLOSE {
                                service_open = false;
                            }
                            send(&mut client_w, &frame, &mut client_open, &mut down).await;
                            continue;
                        }
                        let channel = frame.payload[0];
                        if channel == ERROR {
                            exit = Some(exit_of(&frame.payload[1..]));
                        }
                        let frame = match channel {
                            STDOUT | STDERR => {
                                let data = out.push(channel == STDERR, &frame.payload[1..], &session);
                                match self.mask_client {
                                    true => with_channel(channel, data),
                                    false => frame,
                                }
                            }
                            _ => frame,
                        };
                        if frame.payload.len() > 1 || channel == ERROR {
                            send(&mut client_w, &frame, &mut client_open, &mut down).await;
                        }
                    }
                    Some(Seen::Service(end)) => {
                        if let Err(e) = end {
                            debug!(error = %e, "exec service side ended with an error");
                        }
                        break;
                    }
                    None => break,
                },
                () = flush => {
                    for (stderr, data) in out.flush(&session) {
                        if self.mask_client {
                            let frame = with_channel(channel_of(stderr), data);
                            send(&mut client_w, &frame, &mut client_open, &mut down).await;
                        }
                    }
                }
                stopped = async {
                    let s = stop.wait_for(Option::is_some).await.ok();
                    s.and_then(|s| s.as_ref().map(|s| format!("sluice: {}", s.message)))
                } => {
                    let message = stopped.unwrap_or_else(|| "sluice: the session was stopped".into());
                    let status = with_channel(ERROR, stream_failure(&message));
                    send(&mut client_w, &status, &mut client_open, &mut down).await;
                    // Close with 1000 (normal): kubectl then reports the status sent before.
                    let close = Frame::new(ws::CLOSE, 1000u16.to_be_bytes().to_vec());
                    send(&mut client_w, &close, &mut client_open, &mut down).await;
                    self.exchange.record.error = Some(message);
                    break;
                }
            }
            if !client_open && !service_open {
                break;
            }
        }
        for (stderr, data) in out.flush(&session) {
            if self.mask_client && client_open {
                let frame = with_channel(channel_of(stderr), data);
                send(&mut client_w, &frame, &mut client_open, &mut down).await;
            }
        }
        self.finish(&out, exit, up, down);
    }

    /// Records the end of the stream: masking counts, the exit, the bytes each way.
    pub(crate) fn finish(
        &mut self,
        out: &Output,
        exit: Option<(Option<u32>, Option<String>)>,
        up: u64,
        down: u64,
    ) {
        let session = &self.exchange.session;
        if let Some(m) = &self.masker {
            session.add_masked(out.masked(m.custom_names()));
        }
        let (status, signal) = exit.unwrap_or((None, None));
        session.record(&SessionEvent::Exit {
            channel: self.channel,
            status,
            signal,
        });
        session.record(&SessionEvent::ChannelEnd {
            channel: self.channel,
            bytes_up: up,
            bytes_down: down,
        });
        self.exchange.record.request_bytes = up;
        self.exchange.record.response_bytes = down;
        self.exchange.complete = self.exchange.record.error.is_none();
    }

    /// Records what the client sent: stdin as input, window sizes.
    fn record_client(&self, frame: &Frame, input: &mut TextCarry, session: &HttpSession) {
        if frame.is_control() || frame.payload.is_empty() {
            return;
        }
        match frame.payload[0] {
            STDIN if frame.payload.len() > 1 => {
                let masker = self.masker.as_deref();
                record_input(session, self.channel, masker, input, &frame.payload[1..]);
            }
            RESIZE => record_resize(session, self.channel, &frame.payload[1..]),
            _ => {}
        }
    }
}

/// The channel of stdout or stderr.
fn channel_of(stderr: bool) -> u8 {
    match stderr {
        true => STDERR,
        false => STDOUT,
    }
}

/// Writes `frame` to the client while it is open, counting what reached it.
async fn send<W: AsyncWrite + Unpin>(w: &mut W, frame: &Frame, open: &mut bool, down: &mut u64) {
    if !*open {
        return;
    }
    match ws::write_frame(w, frame).await {
        Ok(()) => *down += frame.payload.len() as u64,
        Err(_) => *open = false,
    }
}

/// Reads frames from one side until it ends, handing them to the relay.
fn spawn_reader<R>(
    mut r: R,
    tx: mpsc::Sender<Seen>,
    wrap: fn(Result<Option<Frame>, FrameError>) -> Seen,
) where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let read = ws::read_frame(&mut r, MAX_FRAME).await;
            let last = !matches!(read, Ok(Some(_)));
            if tx.send(wrap(read)).await.is_err() || last {
                return;
            }
        }
    });
}

/// A binary frame toward the client on `channel`.
fn with_channel(channel: u8, data: Vec<u8>) -> Frame {
    let mut payload = Vec::with_capacity(data.len() + 1);
    payload.push(channel);
    payload.extend_from_slice(&data);
    Frame::new(ws::BINARY, payload)
}
