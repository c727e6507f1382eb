//! The NATS text protocol as the sink speaks it: the server's control lines and replies,
//! the `CONNECT` line and message headers it sends, and the names it checks.

use serde::Deserialize;
use sluice_core::Secret;

/// What the server says in its first line.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ServerInfo {
    pub(super) max_payload: Option<usize>,
    pub(super) headers: bool,
    pub(super) tls_required: bool,
}

/// One protocol message from the server.
#[derive(Debug, PartialEq)]
pub(super) enum Op {
    Info(String),
    Msg(InboxMsg),
    Ping,
    Pong,
    Ok,
    Err(String),
}

/// A message (`MSG` or `HMSG`): its subject, and headers followed by payload.
#[derive(Debug, PartialEq)]
pub(super) struct InboxMsg {
    pub(super) subject: String,
    pub(super) hdr_len: usize,
    pub(super) body: Vec<u8>,
}

impl InboxMsg {
    pub(super) fn reply(&self) -> Reply<'_> {
        let (headers, payload) = self.body.split_at(self.hdr_len);
        classify_reply(headers, payload)
    }
}

/// A reply to a request, classified by its status header.
#[derive(Debug, PartialEq)]
pub(super) enum Reply<'a> {
    /// Nobody subscribes to the subject (status 503).
    NoResponders,
    /// Another status (code, description).
    Status(u16, String),
    /// A normal reply body.
    Payload(&'a [u8]),
}

/// A positive JetStream acknowledgement.
#[derive(Debug, PartialEq)]
pub(super) struct PubAck {
    pub(super) stream: String,
    pub(super) seq: u64,
    pub(super) duplicate: bool,
}

/// The fields of a JetStream API reply we look at (PubAck, stream info, errors).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ApiReply {
    pub(super) error: Option<ApiError>,
    pub(super) stream: Option<String>,
    pub(super) seq: Option<u64>,
    pub(super) duplicate: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ApiError {
    pub(super) code: u16,
    pub(super) err_code: u32,
    pub(super) description: String,
}

/// The `CONNECT` options.
pub(super) fn connect_json(token: Option<&Secret<String>>) -> String {
    let mut opts = serde_json::json!({
        "verbose": false,
        "pedantic": false,
        "headers": true,
        "no_responders": true,
        "lang": "rust",
        "version": env!("CARGO_PKG_VERSION"),
        "name": "sluice-audit",
        "protocol": 1,
    });
    if let (Some(token), Some(map)) = (token, opts.as_object_mut()) {
        map.insert("auth_token".into(), token.expose().as_str().into());
    }
    opts.to_string()
}

/// The header block carrying the event id, or a bare one if the id cannot be a header value.
pub(super) fn msg_id_headers(id: &str) -> String {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_graphic()) {
        format!("NATS/1.0\r\nNats-Msg-Id: {id}\r\n\r\n")
    } else {
        tracing::warn!(id, "event id unusable as Nats-Msg-Id: no de-duplication");
        "NATS/1.0\r\n\r\n".to_string()
    }
}

/// `nats://host[:port]` (port 4222 by default; IPv6 hosts in brackets).
pub(super) fn parse_url(url: &str) -> Result<(String, u16), String> {
    let bad = |why: &str| format!("NATS URL {url:?}: {why} (expected nats://host[:port])");
    let rest = url
        .strip_prefix("nats://")
        .ok_or_else(|| bad("no nats://"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '@', '?', '#']) {
        return Err(bad("path, query or credentials"));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, port) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
        (host, port.strip_prefix(':'))
    } else {
        rest.split_once(':')
            .map_or((rest, None), |(h, p)| (h, Some(p)))
    };
    match port.map_or(Some(4222), |p| p.parse::<u16>().ok().filter(|p| *p != 0)) {
        Some(port) if !host.is_empty() => Ok((host.to_string(), port)),
        _ => Err(bad("bad host or port")),
    }
}

/// A subject we can publish to: dot-separated non-empty tokens, no wildcards or whitespace.
pub(super) fn valid_subject(subject: &str) -> bool {
    let valid_token = |t: &str| t != "*" && t != ">" && t.bytes().all(|b| b.is_ascii_graphic());
    subject.split('.').all(|t| !t.is_empty() && valid_token(t))
}

/// A JetStream stream name: no whitespace, dots, wildcards or path separators.
pub(super) fn valid_stream_name(name: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_graphic() && !b".*>/\\".contains(&b);
    !name.is_empty() && name.len() <= 255 && name.bytes().all(allowed)
}

/// Parses one control line (with its CRLF) from the server; for a message, also returns the
/// length of the body (headers and payload) that follows, which `body` does not hold yet.
pub(super) fn parse_control(line: &str) -> Result<(Op, usize), String> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (op, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
    let rest = rest.trim();
    let bad = |what: &str| format!("{what} in {line:?}");
    let num = |s: &str| s.parse::<usize>().map_err(|_| bad("bad length"));
    let op = match op.to_ascii_uppercase().as_str() {
        "INFO" => Op::Info(rest.to_string()),
        "PING" => Op::Ping,
        "PONG" => Op::Pong,
        "+OK" => Op::Ok,
        "-ERR" => Op::Err(rest.trim_matches('\'').to_string()),
        // MSG subject sid [reply] total / HMSG subject sid [reply] hdr total
        op @ ("MSG" | "HMSG") => {
            let args: Vec<&str> = rest.split_ascii_whitespace().collect();
            let lens = if op == "HMSG" { 2 } else { 1 };
            if args.len() != 2 + lens && args.len() != 3 + lens {
                return Err(bad("malformed message"));
            }
            let total_len = num(args[args.len() - 1])?;
            let hdr_len = if lens == 2 { args[args.len() - 2] } else { "0" };
            let hdr_len = num(hdr_len)?;
            if hdr_len > total_len {
                return Err(bad("header length over total"));
            }
            let subject = args[0].to_string();
            let msg = InboxMsg {
                subject,
                hdr_len,
                body: Vec::new(),
            };
            return Ok((Op::Msg(msg), total_len));
        }
        _ => return Err(bad("unknown operation")),
    };
    Ok((op, 0))
}

/// Index in the batch of a reply to `<inbox>.<n>`, if `n` is one of this batch's.
pub(super) fn reply_index(subject: &str, inbox: &str, base: u64, len: usize) -> Option<usize> {
    let n = subject.strip_prefix(inbox)?.strip_prefix('.')?;
    let i = usize::try_from(n.parse::<u64>().ok()?.checked_sub(base)?).ok()?;
    (i < len).then_some(i)
}

/// Classifies a reply by the status line of its headers (none: a normal body).
pub(super) fn classify_reply<'a>(headers: &[u8], payload: &'a [u8]) -> Reply<'a> {
    let first = headers.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    let status = first.trim_end().strip_prefix("NATS/1.0").unwrap_or("");
    let (code, text) = status.trim().split_once(' ').unwrap_or((status.trim(), ""));
    match code.parse::<u16>() {
        Ok(503) => Reply::NoResponders,
        Ok(code) => Reply::Status(code, text.trim().to_string()),
        Err(_) => Reply::Payload(payload),
    }
}

/// A JetStream PubAck, or why the message was refused.
pub(super) fn parse_pub_ack(body: &[u8]) -> Result<PubAck, String> {
    let text = || String::from_utf8_lossy(body);
    let reply: ApiReply =
        serde_json::from_slice(body).map_err(|e| format!("bad ack {:?}: {e}", text()))?;
    if let Some(err) = reply.error {
        let (what, code, err_code) = (err.description, err.code, err.err_code);
        let why = format!("refused: {what} (code {code}, err_code {err_code})");
        return Err(why);
    }
    match (reply.stream, reply.seq) {
        (Some(stream), Some(seq)) if !stream.is_empty() => {
            let duplicate = reply.duplicate;
            Ok(PubAck {
                stream,
                seq,
                duplicate,
            })
        }
        _ => Err(format!("not a JetStream ack: {:?}", text())),
    }
}
