//! `exec` and `attach` over SPDY/3.1, as kubectl before 1.30 speaks them (and later ones
//! with `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`). The client opens one SPDY stream per
//! channel, in the order client-go always uses: error, stdin, stdout, stderr (without a
//! terminal), resize (with one). The gateway names the streams by that order and the
//! request's `stdin`/`stdout`/`stderr`/`tty` flags; it never needs the compressed headers,
//! which pass through untouched with every control frame.
//!
//! Whatever a stream is called, everything the API server sends on it is masked (so a
//! client that opens its streams in another order gains nothing), and everything the
//! client sends is recorded. Containment ends the stream with a `Status` on the error
//! stream, which kubectl prints. Written by hand: no maintained crate speaks SPDY/3.1, and
//! a relay needs only its framing.

use crate::exec::{ExecStream, FLUSH_AFTER, MAX_FRAME};
use crate::status::stream_failure;
use crate::stream::{exit_of, record_input, record_resize, Output};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use sluice_pipeline::output::TextCarry;
use std::collections::HashMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::debug;

/// The control frame that opens a stream.
const SYN_STREAM: u16 = 1;
/// The flag that ends a stream's data.
const FIN: u8 = 0x01;

/// One SPDY frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpdyFrame {
    /// A control frame, kept as it came.
    Control {
        /// Its type.
        kind: u16,
        /// The 8-byte header.
        head: [u8; 8],
        /// The payload.
        payload: Vec<u8>,
    },
    /// Data of one stream.
    Data {
        /// Stream id.
        stream: u32,
        /// Flags (`FIN`).
        flags: u8,
        /// The bytes.
        data: Vec<u8>,
    },
}

impl SpdyFrame {
    /// The frame on the wire.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            SpdyFrame::Control { head, payload, .. } => [head.as_slice(), payload].concat(),
            SpdyFrame::Data {
                stream,
                flags,
                data,
            } => {
                let len = u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes();
                let mut out = Vec::with_capacity(data.len() + 8);
                out.extend_from_slice(&(stream & 0x7FFF_FFFF).to_be_bytes());
                out.push(*flags);
                out.extend_from_slice(&len[1..]);
                out.extend_from_slice(data);
                out
            }
        }
    }

    fn len(&self) -> u64 {
        match self {
            SpdyFrame::Control { payload, .. } => payload.len() as u64,
            SpdyFrame::Data { data, .. } => data.len() as u64,
        }
    }
}

/// Reads one frame; `None` when the connection ended between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<SpdyFrame>> {
    let mut head = [0u8; 8];
    match r.read(&mut head[..1]).await? {
        0 => return Ok(None),
        _ => r.read_exact(&mut head[1..]).await?,
    };
    let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a SPDY frame of {len} bytes is larger than the gateway accepts"),
        ));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(Some(if head[0] & 0x80 != 0 {
        SpdyFrame::Control {
            kind: u16::from_be_bytes([head[2], head[3]]),
            head,
            payload,
        }
    } else {
        SpdyFrame::Data {
            stream: u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7FFF_FFFF,
            flags: head[4],
            data: payload,
        }
    }))
}

/// What a stream carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// The final status.
    Error,
    /// The client's input.
    Stdin,
    /// Output.
    Stdout,
    /// Error output.
    Stderr,
    /// Window sizes.
    Resize,
    /// A stream beyond those the request asked for.
    Unknown,
}

/// The streams client-go opens for a request with these flags, in order.
pub fn expected(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> Vec<Channel> {
    let mut v = vec![Channel::Error];
    if stdin {
        v.push(Channel::Stdin);
    }
    if stdout {
        v.push(Channel::Stdout);
    }
    if stderr && !tty {
        v.push(Channel::Stderr);
    }
    if tty {
        v.push(Channel::Resize);
    }
    v
}

enum Seen {
    Client(std::io::Result<Option<SpdyFrame>>),
    Service(std::io::Result<Option<SpdyFrame>>),
}

impl ExecStream {
    /// Relays an exec or attach over SPDY in a task of its own; `order` is what the client's
    /// streams carry, in the order it opens them.
    pub fn relay_spdy(self, client: OnUpgrade, service: OnUpgrade, order: Vec<Channel>) {
        tokio::spawn(async move {
            let (client, service) = match tokio::try_join!(client, service) {
                Ok(pair) => pair,
                Err(e) => {
                    let mut exchange = self.exchange;
                    exchange.record.error = Some(format!("the SPDY upgrade failed: {e}"));
                    return;
                }
            };
            self.run_spdy(TokioIo::new(client), TokioIo::new(service), order)
                .await;
        });
    }

    async fn run_spdy<C, S>(mut self, client: C, service: S, order: Vec<Channel>)
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
        let mut streams: HashMap<u32, Channel> = HashMap::new();
        let mut ids: HashMap<bool, u32> = HashMap::new();
        let mut order = order.into_iter();
        let (mut up, mut down) = (0u64, 0u64);
        let mut client_open = true;
        let mut input = TextCarry::default();
        let mut status = Vec::new();
        let mut exit = None;
        let mut error_stream = None;
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
                        up += frame.len();
                        match &frame {
                            SpdyFrame::Control { kind: SYN_STREAM, payload, .. } if payload.len() >= 4 => {
                                let id = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7FFF_FFFF;
                                let channel = order.next().unwrap_or(Channel::Unknown);
                                match channel {
                                    Channel::Stdout => { ids.insert(false, id); }
                                    Channel::Stderr => { ids.insert(true, id); }
                                    Channel::Error => error_stream = Some(id),
                                    _ => {}
                                }
                                streams.insert(id, channel);
                            }
                            SpdyFrame::Data { stream, data, .. } => match streams.get(stream) {
                                Some(Channel::Stdin) if !data.is_empty() => {
                                    record_input(&session, self.channel, self.masker.as_deref(), &mut input, data);
                                }
                                Some(Channel::Resize) => {
                                    for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                                        record_resize(&session, self.channel, line);
                                    }
                                }
                                _ => {}
                            },
                            _ => {}
                        }
                        let sent = sluice_pipeline::stream::write_flushed(
                            &mut service_w,
                            &frame.encode(),
                        )
                        .await;
                        if sent.is_err() {
                            break;
                        }
                    }
                    Some(Seen::Service(Ok(Some(frame)))) => {
                        let frame = match frame {
                            SpdyFrame::Data { stream, flags, data } => {
                                let channel = streams.get(&stream).copied().unwrap_or(Channel::Unknown);
                                if channel == Channel::Error {
                                    // The final status: read for the exit code, passed on.
                                    status.extend_from_slice(&data);
                                    if flags & FIN != 0 {
                                        exit = Some(exit_of(&status));
                                    }
                                    let frame = SpdyFrame::Data { stream, flags, data };
                                    send(&mut client_w, &frame, &mut client_open, &mut down).await;
                                    continue;
                                }
                                // Everything the API server sends is masked, whatever its stream.
                                let masked = out.push(channel == Channel::Stderr, &data, &session);
                                if flags & FIN != 0 {
                                    // The rest of this stream's output goes before its end.
                                    for (stderr, held) in out.flush(&session) {
                                        if let (Some(id), true) = (ids.get(&stderr), self.mask_client) {
                                            let held = SpdyFrame::Data { stream: *id, flags: 0, data: held };
                                            send(&mut client_w, &held, &mut client_open, &mut down).await;
                                        }
                                    }
                                }
                                match self.mask_client {
                                    true => SpdyFrame::Data { stream, flags, data: masked },
                                    false => SpdyFrame::Data { stream, flags, data },
                                }
                            }
                            control => control,
                        };
                        send(&mut client_w, &frame, &mut client_open, &mut down).await;
                    }
                    Some(Seen::Client(end)) | Some(Seen::Service(end)) => {
                        if let Err(e) = end {
                            debug!(error = %e, "SPDY stream ended with an error");
                        }
                        break;
                    }
                    None => break,
                },
                () = flush => {
                    for (stderr, held) in out.flush(&session) {
                        if let (Some(id), true) = (ids.get(&stderr), self.mask_client) {
                            let held = SpdyFrame::Data { stream: *id, flags: 0, data: held };
                            send(&mut client_w, &held, &mut client_open, &mut down).await;
                        }
                    }
                }
                stopped = async {
                    let s = stop.wait_for(Option::is_some).await.ok();
                    s.and_then(|s| s.as_ref().map(|s| format!("sluice: {}", s.message)))
                } => {
                    let message = stopped.unwrap_or_else(|| "sluice: the session was stopped".into());
                    if let Some(id) = error_stream {
                        let status = SpdyFrame::Data { stream: id, flags: FIN, data: stream_failure(&message) };
                        send(&mut client_w, &status, &mut client_open, &mut down).await;
                    }
                    self.exchange.record.error = Some(message);
                    break;
                }
            }
            if !client_open {
                break;
            }
        }
        let _ = client_w.shutdown().await;
        self.finish(&out, exit, up, down);
    }
}

async fn send<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &SpdyFrame,
    open: &mut bool,
    down: &mut u64,
) {
    if !*open {
        return;
    }
    let bytes = frame.encode();
    match w.write_all(&bytes).await {
        Ok(()) => {
            let _ = w.flush().await;
            *down += frame.len();
        }
        Err(_) => *open = false,
    }
}

fn spawn_reader<R>(
    mut r: R,
    tx: mpsc::Sender<Seen>,
    wrap: fn(std::io::Result<Option<SpdyFrame>>) -> Seen,
) where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let read = read_frame(&mut r).await;
            let last = !matches!(read, Ok(Some(_)));
            if tx.send(wrap(read)).await.is_err() || last {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_survive_the_round_trip() -> std::io::Result<()> {
        let data = SpdyFrame::Data {
            stream: 5,
            flags: FIN,
            data: b"hello".to_vec(),
        };
        let mut head = [0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03];
        head[7] = 3;
        let control = SpdyFrame::Control {
            kind: SYN_STREAM,
            head,
            payload: vec![1, 2, 3],
        };
        for frame in [data, control] {
            let wire = frame.encode();
            assert_eq!(read_frame(&mut wire.as_slice()).await?, Some(frame));
        }
        let empty: [u8; 0] = [];
        assert_eq!(read_frame(&mut empty.as_slice()).await?, None);
        Ok(())
    }

    #[test]
    fn streams_are_named_in_client_go_order() {
        use Channel::*;
        assert_eq!(
            expected(true, true, true, false),
            vec![Error, Stdin, Stdout, Stderr]
        );
        assert_eq!(
            expected(true, true, false, true),
            vec![Error, Stdin, Stdout, Resize]
        );
        assert_eq!(
            expected(false, true, true, false),
            vec![Error, Stdout, Stderr]
        );
    }
}
