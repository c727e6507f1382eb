//! Sinks: where audit events are delivered. A sink is blocking code run on its own thread.

pub mod file;
pub mod nats;
pub mod stdout;
pub mod syslog;
pub mod webhook;

/// One audit event read from the spool.
#[derive(Debug, Clone)]
pub struct SpooledEvent {
    /// Position in the audit log (from 1), strictly increasing.
    pub seq: u64,
    /// The event's unique id (for de-duplication downstream).
    pub id: String,
    /// Microseconds since the epoch.
    pub ts_us: i64,
    /// The event as one line of JSON (exactly what the hash chain covers).
    pub json: String,
}

/// Why a delivery failed; the batch is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Network or file I/O.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The destination answered, but refused the events.
    #[error("refused: {0}")]
    Refused(String),
    /// The sink is misconfigured (bad URL, unreadable CA file…).
    #[error("configuration: {0}")]
    Config(String),
}

/// A destination for audit events.
pub trait Sink: Send {
    /// Delivers `batch` (in order, non-empty). `Ok` means the destination has accepted every
    /// event in it; on `Err` the same events (possibly with more after them) are offered again.
    fn deliver(&mut self, batch: &[SpooledEvent]) -> Result<(), SinkError>;

    /// Largest batch this sink wants.
    fn max_batch(&self) -> usize {
        500
    }
}

/// Static checks of a sink's configuration (at config load; nothing is contacted).
pub fn check(cfg: &crate::config::SinkConfig) -> Result<(), String> {
    use crate::config::SinkConfig;
    match cfg {
        SinkConfig::File(f) if f.path.as_os_str().is_empty() => {
            Err("path must not be empty".into())
        }
        SinkConfig::File(_) | SinkConfig::Stdout => Ok(()),
        SinkConfig::Webhook(w) => match (&w.url, &w.url_env) {
            (Some(_), Some(_)) => Err("set url or url_env, not both".into()),
            (None, None) => Err("url or url_env is required".into()),
            (Some(u), None) => webhook::check_url(u),
            (None, Some(_)) => Ok(()),
        },
        SinkConfig::Syslog(s) => {
            if !s.address.contains(':') {
                return Err("address must be host:port".into());
            }
            if s.tls && s.ca_file.is_none() {
                return Err(
                    "tls: true needs ca_file (the CA that signs the collector's certificate)"
                        .into(),
                );
            }
            if s.facility > 23 {
                return Err("facility must be 0-23".into());
            }
            Ok(())
        }
        SinkConfig::Nats(n) => {
            if !n.url.starts_with("nats://") {
                return Err("url must start with nats://".into());
            }
            if n.subject.is_empty() || n.subject.contains([' ', '*', '>']) {
                return Err("subject must be a concrete subject (no spaces or wildcards)".into());
            }
            Ok(())
        }
    }
}

/// Builds the sink for `cfg`; relative file paths are resolved against `data_dir`.
pub fn build(
    cfg: &crate::config::SinkConfig,
    data_dir: &std::path::Path,
) -> Result<Box<dyn Sink>, SinkError> {
    use crate::config::SinkConfig;
    Ok(match cfg {
        SinkConfig::File(f) => {
            let mut f = f.clone();
            f.path = data_dir.join(&f.path);
            Box::new(file::FileSink::new(&f))
        }
        SinkConfig::Stdout => Box::new(stdout::StdoutSink),
        SinkConfig::Webhook(w) => Box::new(webhook::WebhookSink::new(w)?),
        SinkConfig::Syslog(s) => Box::new(syslog::SyslogSink::new(s)?),
        SinkConfig::Nats(n) => Box::new(nats::NatsSink::new(n)?),
    })
}
