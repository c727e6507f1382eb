//! Syslog sink: RFC 5424 messages over TCP with RFC 6587 octet-counting framing
//! (`<len> <msg>`), optionally in TLS (RFC 5425, rustls with the ring provider).
//!
//! Each event becomes one message:
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [sluice@32473 id="…" action="…" outcome="…"] JSON
//! ```
//!
//! PRI is `facility * 8 + severity`, severity notice (5) for a success and warning (4) for a
//! failure; TIMESTAMP is the event's time in UTC with microseconds; MSGID is the action. MSG is
//! the event's JSON line exactly as the audit log holds it, *without* a UTF-8 BOM: RFC 5424
//! allows a MSG without BOM (`MSG-ANY`), and collectors commonly hand MSG to JSON parsers, which
//! a leading BOM would break. The JSON itself is UTF-8.
//!
//! **Limitation.** TCP syslog has no application-level acknowledgement: `deliver` returns `Ok`
//! once the batch has been written and flushed into the connection, not once the collector has
//! stored it. Events written into a connection the collector has just closed can be lost. To
//! narrow that window, before each batch the sink checks (non-blocking read) that the collector
//! has not closed the connection, and reconnects if it has. For acknowledged delivery use the
//! NATS JetStream sink or the webhook.

use crate::config;
use crate::sink::{Sink, SinkError, SpooledEvent};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use sluice_core::{AuditEvent, Outcome};
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// Connect, read and write timeout.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Structured-data id of our parameters (32473 is the private enterprise number RFC 5612
/// reserves for documentation and examples).
const SD_ID: &str = "sluice@32473";
/// Severity of a successful action: notice.
const SEVERITY_NOTICE: u8 = 5;
/// Severity of a failed or refused action: warning.
const SEVERITY_WARNING: u8 = 4;

/// Delivers audit events to a syslog collector over TCP or TLS.
pub struct SyslogSink {
    address: String,
    host: String,
    tls: Option<TlsSettings>,
    header: Header,
    conn: Option<Conn>,
}

/// What is the same in every message.
struct Header {
    facility: u8,
    hostname: String,
    app_name: String,
    procid: u32,
}

struct TlsSettings {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl SyslogSink {
    /// Checks the configuration (address `host:port`, facility 0–23, APP-NAME of 1–48 printable
    /// ASCII characters) and, with `tls`, loads the CA file and settles the expected server
    /// name. Does not connect: the first delivery does.
    pub fn new(cfg: &config::SyslogSink) -> Result<Self, SinkError> {
        let host = split_host(&cfg.address)
            .ok_or_else(|| {
                SinkError::Config(format!(
                    "syslog address {:?}: expected host:port",
                    cfg.address
                ))
            })?
            .to_string();
        if cfg.facility > 23 {
            return Err(SinkError::Config(format!(
                "syslog facility {} is not between 0 and 23",
                cfg.facility
            )));
        }
        let app = &cfg.app_name;
        if app.is_empty() || app.len() > 48 || !app.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SinkError::Config(format!(
                "syslog app_name {app:?}: 1 to 48 printable ASCII characters, no spaces"
            )));
        }
        let tls = if cfg.tls {
            Some(tls_settings(cfg, &host)?)
        } else {
            None
        };
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        Ok(SyslogSink {
            address: cfg.address.clone(),
            host,
            tls,
            header: Header {
                facility: cfg.facility,
                hostname: header_hostname(hostname.trim()),
                app_name: app.clone(),
                procid: std::process::id(),
            },
            conn: None,
        })
    }

    fn connect(&self) -> Result<Conn, SinkError> {
        let tcp = connect_tcp(&self.address)?;
        let Some(tls) = &self.tls else {
            tracing::debug!(address = %self.address, "connected to syslog collector");
            return Ok(Conn::Plain(tcp));
        };
        let session = ClientConnection::new(tls.config.clone(), tls.server_name.clone())
            .map_err(|e| SinkError::Config(format!("TLS: {e}")))?;
        let mut stream = StreamOwned::new(session, tcp);
        // Handshake now, so that a certificate problem shows as a connection error.
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        let (address, host) = (&self.address, &self.host);
        tracing::debug!(address, host, "connected to syslog collector (TLS)");
        Ok(Conn::Tls(Box::new(stream)))
    }
}

impl Sink for SyslogSink {
    fn deliver(&mut self, batch: &[SpooledEvent]) -> Result<(), SinkError> {
        let mut out = Vec::with_capacity(batch.iter().map(|e| e.json.len() + 200).sum());
        for event in batch {
            frame(&format_message(&self.header, event), &mut out);
        }
        let mut conn = match self.conn.take().map(|mut c| (c.still_open(), c)) {
            Some((true, conn)) => conn,
            Some((false, _closed)) => {
                let address = &self.address;
                tracing::debug!(
                    address,
                    "syslog collector closed the connection; reconnecting"
                );
                self.connect()?
            }
            None => self.connect()?,
        };
        conn.write_all(&out)?;
        conn.flush()?;
        self.conn = Some(conn);
        Ok(())
    }
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(tcp) => tcp,
            Conn::Tls(stream) => &stream.sock,
        }
    }

    /// False if the collector has closed (or reset) the connection. Reads without blocking and
    /// discards whatever the collector sent (a syslog collector sends no data; TLS may carry
    /// session tickets).
    fn still_open(&mut self) -> bool {
        if self.tcp().set_nonblocking(true).is_err() {
            return false;
        }
        let mut buf = [0u8; 4096];
        let mut open = false;
        for _ in 0..64 {
            let read = match self {
                Conn::Plain(tcp) => tcp.read(&mut buf),
                Conn::Tls(stream) => stream.read(&mut buf),
            };
            match read {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    open = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        open && self.tcp().set_nonblocking(false).is_ok()
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(tcp) => tcp.write(buf),
            Conn::Tls(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(tcp) => tcp.flush(),
            Conn::Tls(stream) => stream.flush(),
        }
    }
}

/// The rustls client configuration: ring provider, roots from `ca_file`, no client auth.
fn tls_settings(cfg: &config::SyslogSink, host: &str) -> Result<TlsSettings, SinkError> {
    let ca_file = cfg.ca_file.as_ref().ok_or_else(|| {
        SinkError::Config("syslog with tls: true needs ca_file (the collector's CA)".into())
    })?;
    let unreadable = |e: &dyn std::fmt::Display| {
        SinkError::Config(format!("CA file {}: {e}", ca_file.display()))
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| unreadable(&e))? {
        let cert = cert.map_err(|e| unreadable(&e))?;
        roots.add(cert).map_err(|e| unreadable(&e))?;
    }
    if roots.is_empty() {
        return Err(unreadable(&"no certificate in it"));
    }
    let name = cfg.server_name.as_deref().unwrap_or(host);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|e| SinkError::Config(format!("TLS server name {name:?}: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SinkError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsSettings {
        config: Arc::new(config),
        server_name,
    })
}

/// Connects to the first address of `address` that answers, with timeouts set.
fn connect_tcp(address: &str) -> Result<TcpStream, SinkError> {
    let mut last = None;
    for addr in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
            Ok(tcp) => {
                tcp.set_nodelay(true)?;
                tcp.set_read_timeout(Some(IO_TIMEOUT))?;
                tcp.set_write_timeout(Some(IO_TIMEOUT))?;
                return Ok(tcp);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{address}: no address"))
        })
        .into())
}

/// The host part of `host:port` or `[v6]:port`, if the port is a number.
fn split_host(address: &str) -> Option<&str> {
    let (host, port) = address.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    (!host.is_empty()).then_some(host)
}

/// The HOSTNAME field: printable ASCII, at most 255 characters, else the nil value.
fn header_hostname(name: &str) -> String {
    if !name.is_empty() && name.len() <= 255 && name.bytes().all(|b| b.is_ascii_graphic()) {
        name.to_string()
    } else {
        "-".to_string()
    }
}

/// Appends `msg` with RFC 6587 octet-counting framing: `<len> <msg>`.
fn frame(msg: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(msg.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(msg.as_bytes());
}

/// One RFC 5424 message for `event`. If the JSON is not an [`AuditEvent`] (it always is), the
/// id and time come from the spool, the severity is notice and MSGID is nil.
fn format_message(header: &Header, event: &SpooledEvent) -> String {
    let parsed = serde_json::from_str::<AuditEvent>(&event.json).ok();
    let (id, ts_us) = match &parsed {
        Some(ev) => (ev.id.as_str(), ev.ts_us),
        None => (event.id.as_str(), event.ts_us),
    };
    let (severity, outcome) = match parsed.as_ref().map(|ev| ev.outcome) {
        Some(Outcome::Failure) => (SEVERITY_WARNING, Some("failure")),
        Some(Outcome::Success) => (SEVERITY_NOTICE, Some("success")),
        None => (SEVERITY_NOTICE, None),
    };
    let action = parsed.as_ref().map(|ev| ev.action.as_str());
    let pri = u16::from(header.facility) * 8 + u16::from(severity);
    let timestamp = rfc3339_micros(ts_us).unwrap_or_else(|| "-".into());
    let msgid = action.map(msg_id).unwrap_or_else(|| "-".into());
    let mut msg = String::with_capacity(event.json.len() + 200);
    // Writing to a String cannot fail.
    let _ = write!(
        msg,
        "<{pri}>1 {timestamp} {} {} {} {msgid} [{SD_ID} id=\"{}\"",
        header.hostname,
        header.app_name,
        header.procid,
        sd_escape(id)
    );
    if let Some(action) = action {
        let _ = write!(msg, " action=\"{}\"", sd_escape(action));
    }
    if let Some(outcome) = outcome {
        let _ = write!(msg, " outcome=\"{outcome}\"");
    }
    msg.push_str("] ");
    msg.push_str(&event.json);
    msg
}

/// MSGID: the action as at most 32 printable ASCII characters (others become `_`).
fn msg_id(action: &str) -> String {
    let id: String = action
        .chars()
        .take(32)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if id.is_empty() {
        "-".into()
    } else {
        id
    }
}

/// Escapes a structured-data parameter value (RFC 5424 §6.3.3: `"`, `\` and `]`).
fn sd_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` for microseconds since the epoch; `None` outside years
/// 0000–9999, which RFC 5424 cannot express.
fn rfc3339_micros(ts_us: i64) -> Option<String> {
    let secs = ts_us.div_euclid(1_000_000);
    let micros = ts_us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    ))
}

/// Proleptic Gregorian (year, month, day) of a count of days since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are in range by construction.
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests;
