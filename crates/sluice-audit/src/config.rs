//! The `audit.sinks` section of the config file: named sinks, any combination.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Named sinks; the name keys the sink's cursor in the spool, so renaming a sink makes it start
/// from the beginning of the log.
pub type AuditSinks = BTreeMap<String, SinkConfig>;

/// One sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    /// JSON lines appended to a file, rotated by size.
    File(FileSink),
    /// JSON lines on the gateway's standard output.
    Stdout,
    /// Batches POSTed as a JSON array.
    Webhook(WebhookSink),
    /// RFC 5424 messages over TCP (RFC 6587 octet counting), optionally TLS (RFC 5425).
    Syslog(SyslogSink),
    /// Messages published to a NATS JetStream subject, each acknowledged by the stream.
    Nats(NatsSink),
}

/// A JSON-lines file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSink {
    /// File path; relative paths are under the data dir.
    pub path: PathBuf,
    /// Rotate when the file would grow past this many bytes (default 100 MiB).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Rotated files kept (`audit.jsonl.1` … `.N`; default 10).
    #[serde(default = "default_keep")]
    pub keep: u32,
}

fn default_max_bytes() -> u64 {
    100 * 1024 * 1024
}

fn default_keep() -> u32 {
    10
}

/// An HTTP endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSink {
    /// URL (http or https).
    #[serde(default)]
    pub url: Option<String>,
    /// Environment variable holding the URL instead (it may carry a secret).
    #[serde(default)]
    pub url_env: Option<String>,
    /// Environment variable holding a bearer token sent as `Authorization`.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Events per request (default 100).
    #[serde(default = "default_batch")]
    pub batch: usize,
}

fn default_batch() -> usize {
    100
}

/// A syslog collector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSink {
    /// `host:port`.
    pub address: String,
    /// Use TLS (RFC 5425).
    #[serde(default)]
    pub tls: bool,
    /// PEM file with the CA(s) that sign the collector's certificate (TLS only; default: the
    /// gateway's own CA is not trusted implicitly, so this is required with `tls: true`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Name expected in the collector's certificate (default: the host part of `address`).
    #[serde(default)]
    pub server_name: Option<String>,
    /// APP-NAME field (default `sluice`).
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// Facility number (default 10, `authpriv`).
    #[serde(default = "default_facility")]
    pub facility: u8,
}

fn default_app_name() -> String {
    "sluice".into()
}

fn default_facility() -> u8 {
    10
}

/// A NATS JetStream subject.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSink {
    /// Server URL, `nats://host:port`.
    pub url: String,
    /// Subject the events are published to.
    pub subject: String,
    /// Stream to create for the subject when it does not exist yet (none: the stream must exist).
    #[serde(default)]
    pub stream: Option<String>,
    /// Environment variable holding a token for the server's `auth_token`.
    #[serde(default)]
    pub token_env: Option<String>,
}

impl FileSink {
    /// A file sink at `path` with the default rotation.
    pub fn at(path: PathBuf) -> FileSink {
        FileSink {
            path,
            max_bytes: default_max_bytes(),
            keep: default_keep(),
        }
    }
}
