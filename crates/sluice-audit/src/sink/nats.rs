//! NATS JetStream sink: a minimal, blocking client of the NATS text protocol.
//!
//! We speak the protocol ourselves (the async client would bring tokio and, through nkeys, a
//! second crypto backend). On connect: read `INFO`, send `CONNECT` (headers and no-responders on,
//! the token if configured) and `PING`, wait for `PONG`, subscribe to a private inbox
//! `_INBOX.<uuid>.*`, and, if a stream is configured, make sure it exists (`STREAM.INFO`, then
//! `STREAM.CREATE` when JetStream says 404 / 10059).
//!
//! A batch is pipelined: one `HPUB` per event, with the event id in `Nats-Msg-Id` (JetStream
//! drops a message whose id it has seen within the stream's duplicate window, so a batch offered
//! again after a lost ack is stored once) and the reply subject `<inbox>.<n>`. Then every reply
//! is read: a JetStream PubAck (`{"stream":…,"seq":…}`, duplicates included) accepts the event;
//! an API error, a status header (503: no stream captures the subject) or a non-fatal `-ERR`
//! (permissions, subject) refuses it; any other `-ERR` means the server closed the connection.
//! `deliver` returns `Ok` only when every event of the batch was acknowledged. Any error drops
//! the connection; the next delivery reconnects. A kept connection found closed mid-batch is
//! replaced and the batch published again at once.
//!
//! Not supported: TLS to the NATS server (`tls://`, or a server that requires TLS), and
//! user/password, nkey or JWT credentials (only `auth_token`).

use crate::config;
use crate::sink::{Sink, SinkError, SpooledEvent};
use sluice_core::Secret;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};
use wire::{
    connect_json, msg_id_headers, parse_control, parse_pub_ack, parse_url, reply_index,
    valid_stream_name, valid_subject, ApiError, ApiReply, InboxMsg, Op, Reply, ServerInfo,
};

mod wire;

/// Connect, read and write timeout; also how long we wait for the next ack of a batch.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest control line (`INFO` of a large cluster included) we accept from the server.
const MAX_LINE: u64 = 1 << 20;
/// Largest reply body accepted (acks and JetStream API answers are far smaller).
const MAX_REPLY: usize = 8 << 20;
/// JetStream's error code for "stream not found".
const ERR_STREAM_NOT_FOUND: u32 = 10059;
/// JetStream's error code for "stream name already in use" (created concurrently).
const ERR_STREAM_NAME_IN_USE: u32 = 10058;
/// Duplicate window of a stream we create: two minutes, in nanoseconds.
const DUPLICATE_WINDOW_NS: u64 = 120_000_000_000;

/// Delivers audit events to a NATS JetStream subject, each acknowledged by the stream.
pub struct NatsSink {
    host: String,
    port: u16,
    subject: String,
    stream: Option<String>,
    token: Option<Secret<String>>,
    conn: Option<Conn>,
}

impl NatsSink {
    /// Checks the configuration (URL `nats://host[:port]`, subject, stream name) and reads the
    /// token from `token_env`. Does not connect: the first delivery does.
    pub fn new(cfg: &config::NatsSink) -> Result<Self, SinkError> {
        let (host, port) = parse_url(&cfg.url).map_err(SinkError::Config)?;
        let (subject, stream) = (cfg.subject.clone(), cfg.stream.clone());
        if !valid_subject(&subject) {
            let why = format!("subject {subject:?}: no wildcards, no spaces");
            return Err(config_error(why));
        }
        if let Some(name) = stream.as_ref().filter(|name| !valid_stream_name(name)) {
            return Err(config_error(format!("bad stream name {name:?}")));
        }
        let token = match &cfg.token_env {
            Some(var) => match std::env::var(var) {
                Ok(token) => Some(Secret::new(token)),
                Err(_) => return Err(config_error(format!("token_env: {var} is not set"))),
            },
            None => None,
        };
        let conn = None;
        Ok(NatsSink {
            host,
            port,
            subject,
            stream,
            token,
            conn,
        })
    }

    fn connect(&self) -> Result<Conn, SinkError> {
        let mut conn = Conn::open(&self.host, self.port, self.token.as_ref())?;
        if let Some(stream) = &self.stream {
            conn.ensure_stream(stream, &self.subject)?;
        }
        tracing::debug!(host = %self.host, port = self.port, "connected to NATS");
        Ok(conn)
    }
}

impl Sink for NatsSink {
    fn deliver(&mut self, batch: &[SpooledEvent]) -> Result<(), SinkError> {
        let (mut conn, reused) = match self.conn.take().map(|mut conn| (conn.still_open(), conn)) {
            Some((true, conn)) => (conn, true),
            Some((false, _)) | None => (self.connect()?, false),
        };
        match conn.publish_batch(&self.subject, batch) {
            // A kept connection the server closed while we were not looking (a stale-
            // connection `-ERR` that arrived after the check): publish again on a new one;
            // `Nats-Msg-Id` makes the stream drop anything the old one did deliver.
            Err(SinkError::Io(e)) if reused => {
                tracing::debug!(error = %e, "NATS connection lost; reconnecting");
                conn = self.connect()?;
                conn.publish_batch(&self.subject, batch)?;
            }
            other => other?,
        }
        // Only a connection that just delivered a whole batch is kept.
        self.conn = Some(conn);
        Ok(())
    }
}

/// One connection, after the handshake.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// `_INBOX.<uuid>`; replies come to `<inbox>.<n>`.
    inbox: String,
    /// Next `<n>`; never reused on this connection, so a late reply cannot be mistaken.
    next_reply: u64,
    /// The server's `max_payload`: largest headers + payload it accepts.
    max_payload: usize,
}

impl Conn {
    /// TCP connect, `INFO`, `CONNECT`, `PING`/`PONG`, `SUB` to the inbox.
    fn open(host: &str, port: u16, token: Option<&Secret<String>>) -> Result<Conn, SinkError> {
        let stream = connect_tcp(host, port)?;
        let writer = stream.try_clone()?;
        let mut conn = Conn {
            reader: BufReader::new(stream),
            writer,
            inbox: format!("_INBOX.{}", uuid::Uuid::new_v4().simple()),
            next_reply: 1,
            max_payload: 1024 * 1024,
        };
        let deadline = Instant::now() + IO_TIMEOUT;
        let info = match conn.read_op(deadline)? {
            Op::Info(json) => json,
            other => return Err(protocol(format!("expected INFO, got {other:?}"))),
        };
        let info: ServerInfo =
            serde_json::from_str(&info).map_err(|e| protocol(format!("bad INFO: {e}")))?;
        if info.tls_required || !info.headers {
            let why = "the NATS server requires TLS or lacks headers (needs 2.2+, no TLS)";
            return Err(config_error(why.into()));
        }
        conn.max_payload = info.max_payload.unwrap_or(conn.max_payload);
        conn.send(format!("CONNECT {}\r\nPING\r\n", connect_json(token)).as_bytes())?;
        loop {
            match conn.read_op(deadline)? {
                Op::Pong => break,
                Op::Err(e) => return Err(SinkError::Refused(format!("NATS: {e}"))),
                Op::Ping => conn.send(b"PONG\r\n")?,
                _ => {}
            }
        }
        let sub = format!("SUB {}.* 1\r\n", conn.inbox);
        conn.send(sub.as_bytes())?;
        Ok(conn)
    }

    /// Makes sure `stream` exists, creating it for `subject` if JetStream does not know it.
    fn ensure_stream(&mut self, stream: &str, subject: &str) -> Result<(), SinkError> {
        let info = self.request(&format!("$JS.API.STREAM.INFO.{stream}"), "")?;
        let err = match api_reply(info.reply(), "STREAM.INFO")?.error {
            None => return Ok(()),
            Some(err) => err,
        };
        if err.code != 404 && err.err_code != ERR_STREAM_NOT_FOUND {
            return Err(api_refusal("STREAM.INFO", &err));
        }
        let cfg = serde_json::json!({
            "name": stream,
            "subjects": [subject],
            "storage": "file",
            "duplicate_window": DUPLICATE_WINDOW_NS,
        });
        let api = format!("$JS.API.STREAM.CREATE.{stream}");
        let created = self.request(&api, &cfg.to_string())?;
        match api_reply(created.reply(), "STREAM.CREATE")?.error {
            None => {
                tracing::info!(stream, subject, "created JetStream stream for audit events");
                Ok(())
            }
            Some(err) if err.err_code == ERR_STREAM_NAME_IN_USE => Ok(()),
            Some(err) => Err(api_refusal("STREAM.CREATE", &err)),
        }
    }

    /// Publishes `body` to `subject` and waits for the one reply.
    fn request(&mut self, subject: &str, body: &str) -> Result<InboxMsg, SinkError> {
        let reply_to = format!("{}.{}", self.inbox, self.next_reply);
        self.next_reply += 1;
        let out = format!("PUB {subject} {reply_to} {}\r\n{body}\r\n", body.len());
        self.send(out.as_bytes())?;
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let msg = self.next_msg(deadline)?;
            if msg.subject == reply_to {
                return Ok(msg);
            }
        }
    }

    /// Pipelines one `HPUB` per event, then reads one reply per event.
    fn publish_batch(&mut self, subject: &str, batch: &[SpooledEvent]) -> Result<(), SinkError> {
        let (base, inbox, max) = (self.next_reply, &self.inbox, self.max_payload);
        let mut out = Vec::with_capacity(batch.iter().map(|e| e.json.len() + 160).sum());
        for (n, event) in (base..).zip(batch) {
            let headers = msg_id_headers(&event.id);
            let (hdr_len, total) = (headers.len(), headers.len() + event.json.len());
            if total > max {
                let seq = event.seq;
                let why = format!("event {seq} is {total} bytes, over max_payload {max}");
                return Err(SinkError::Refused(why));
            }
            let line = format!("HPUB {subject} {inbox}.{n} {hdr_len} {total}\r\n");
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(headers.as_bytes());
            out.extend_from_slice(event.json.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.next_reply += batch.len() as u64;
        self.send(&out)?;

        let mut answered = vec![false; batch.len()];
        let mut pending = batch.len();
        let mut refusal: Option<String> = None;
        let mut deadline = Instant::now() + IO_TIMEOUT;
        while pending > 0 {
            let msg = self.next_msg(deadline)?;
            let Some(i) = reply_index(&msg.subject, &self.inbox, base, batch.len()) else {
                continue; // a late reply to an earlier request
            };
            if std::mem::replace(&mut answered[i], true) {
                continue;
            }
            pending -= 1;
            deadline = Instant::now() + IO_TIMEOUT;
            let verdict = match msg.reply() {
                Reply::NoResponders => Err(format!("no stream captures {subject} (no responders)")),
                Reply::Status(code, text) => Err(format!("status {code} {text}")),
                Reply::Payload(body) => parse_pub_ack(body),
            };
            let seq = batch[i].seq;
            match verdict {
                Ok(ack) => {
                    let (stream, stream_seq, duplicate) = (&ack.stream, ack.seq, ack.duplicate);
                    tracing::trace!(seq, stream, stream_seq, duplicate, "acknowledged");
                }
                Err(why) => {
                    refusal.get_or_insert_with(|| format!("event {seq}: {why}"));
                }
            }
        }
        refusal.map_or(Ok(()), |why| Err(SinkError::Refused(why)))
    }

    /// Before a batch: answers the `PING`s that came while we were idle (the server closes a
    /// connection that leaves them unanswered) and says whether the server has closed it.
    fn still_open(&mut self) -> bool {
        for _ in 0..64 {
            if self.reader.buffer().is_empty() {
                let nonblocking = |conn: &Self, on| conn.reader.get_ref().set_nonblocking(on);
                if nonblocking(self, true).is_err() {
                    return false;
                }
                let pending = self.reader.fill_buf().map(|buf| !buf.is_empty());
                match (nonblocking(self, false), pending) {
                    (Ok(()), Ok(true)) => {}
                    (Ok(()), Err(e)) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    _ => return false, // closed, or broken
                }
            }
            match self.read_op(Instant::now() + IO_TIMEOUT) {
                Ok(Op::Ping) if self.send(b"PONG\r\n").is_ok() => {}
                Ok(Op::Info(_) | Op::Msg(_) | Op::Pong | Op::Ok) => {}
                _ => return false, // -ERR (e.g. stale connection), or broken
            }
        }
        true
    }

    /// Writes `bytes` and flushes.
    fn send(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        self.writer.write_all(bytes)?;
        self.writer.flush()?;
        Ok(())
    }

    /// The next message on our subscription, answering `PING`s. A `-ERR` after which the
    /// server keeps the connection (permissions, subject) refuses the batch; any other
    /// closes the connection, which is an I/O failure.
    fn next_msg(&mut self, deadline: Instant) -> Result<InboxMsg, SinkError> {
        loop {
            match self.read_op(deadline)? {
                Op::Msg(msg) => return Ok(msg),
                Op::Ping => self.send(b"PONG\r\n")?,
                Op::Err(e)
                    if e.starts_with("Permissions Violation")
                        || e.starts_with("Invalid Subject") =>
                {
                    return Err(SinkError::Refused(format!("NATS: {e}")))
                }
                Op::Err(e) => {
                    return Err(SinkError::Io(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        format!("NATS closed the connection: {e}"),
                    )))
                }
                Op::Info(_) | Op::Pong | Op::Ok => {}
            }
        }
    }

    /// Reads the next protocol message (with a message's body), failing after `deadline`.
    fn read_op(&mut self, deadline: Instant) -> Result<Op, SinkError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "NATS server silent").into());
        }
        self.reader.get_ref().set_read_timeout(Some(left))?;
        let mut line = Vec::new();
        let read = self
            .reader
            .by_ref()
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "NATS server closed").into());
        }
        if line.last() != Some(&b'\n') {
            return Err(protocol("control line too long or cut short".into()));
        }
        let text = std::str::from_utf8(&line).map_err(|_| protocol("non-UTF-8 line".into()))?;
        let (mut op, total_len) = parse_control(text).map_err(protocol)?;
        if let Op::Msg(msg) = &mut op {
            // Replies are acks and API answers: small. Refuse what no real server sends.
            if total_len > MAX_REPLY {
                return Err(protocol(format!("reply of {total_len} bytes")));
            }
            msg.body.resize(total_len + 2, 0);
            self.reader.read_exact(&mut msg.body)?;
            if !msg.body.ends_with(b"\r\n") {
                return Err(protocol("message not followed by CRLF".into()));
            }
            msg.body.truncate(total_len);
        }
        Ok(op)
    }
}

/// Connects to the first address of `host:port` that answers, with timeouts set.
fn connect_tcp(host: &str, port: u16) -> Result<TcpStream, SinkError> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address"));
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(IO_TIMEOUT))?;
                stream.set_write_timeout(Some(IO_TIMEOUT))?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last.into())
}

fn config_error(what: String) -> SinkError {
    SinkError::Config(format!("NATS sink: {what}"))
}

fn protocol(what: String) -> SinkError {
    let what = format!("NATS protocol: {what}");
    SinkError::Io(io::Error::new(io::ErrorKind::InvalidData, what))
}

fn api_refusal(api: &str, err: &ApiError) -> SinkError {
    let (what, code, err_code) = (&err.description, err.code, err.err_code);
    let why = format!("JetStream {api}: {what} (code {code}, err_code {err_code})");
    SinkError::Refused(why)
}

/// The JSON reply of a JetStream API request; no responders means JetStream is off.
fn api_reply(reply: Reply<'_>, api: &str) -> Result<ApiReply, SinkError> {
    let refused = |why: String| Err(SinkError::Refused(format!("JetStream {api}: {why}")));
    match reply {
        Reply::Payload(body) => {
            serde_json::from_slice(body).map_err(|e| protocol(format!("{api} reply: {e}")))
        }
        Reply::NoResponders => refused("no responders (is JetStream enabled?)".into()),
        Reply::Status(code, text) => refused(format!("status {code} {text}")),
    }
}

#[cfg(test)]
mod tests;
