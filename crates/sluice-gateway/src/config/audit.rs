//! The `audit`, `retention` and `storage` sections of the config file.

use serde::Deserialize;
use std::path::PathBuf;

/// Audit settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Shorthand for a file sink named `file` (relative paths are in the data dir); `null`
    /// disables it.
    #[serde(default = "default_audit_file")]
    pub file: Option<PathBuf>,
    /// Further sinks, by name: `file`, `stdout`, `webhook`, `syslog`, `nats`.
    #[serde(default)]
    pub sinks: sluice_audit::AuditSinks,
    /// Audit every statement (`statement.allowed`), not only refused and held ones.
    #[serde(default = "yes")]
    pub statements: bool,
    /// Refuse new sessions while a sink's spool is full (default: keep serving, log loudly).
    #[serde(default)]
    pub fail_closed: bool,
    /// Undelivered events per sink past which its spool counts as full.
    #[serde(default = "default_spool_limit")]
    pub spool_limit: u64,
    /// Longest time between signed checkpoints of the audit chain (default `60s`).
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: String,
    /// PKCS#8 file (PEM or DER) with the Ed25519 signing key, instead of the generated one.
    #[serde(default)]
    pub signing_key_file: Option<PathBuf>,
    /// Environment variable holding the signing key (PEM or base64 PKCS#8).
    #[serde(default)]
    pub signing_key_env: Option<String>,
}

fn yes() -> bool {
    true
}

fn default_audit_file() -> Option<PathBuf> {
    Some(PathBuf::from("audit.jsonl"))
}

fn default_spool_limit() -> u64 {
    1_000_000
}

fn default_checkpoint_interval() -> String {
    "60s".into()
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            file: default_audit_file(),
            sinks: Default::default(),
            statements: true,
            fail_closed: false,
            spool_limit: default_spool_limit(),
            checkpoint_interval: default_checkpoint_interval(),
            signing_key_file: None,
            signing_key_env: None,
        }
    }
}

/// How long recordings are kept.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Default for every connection (`90d`); unset keeps recordings forever.
    #[serde(default)]
    pub default: Option<String>,
    /// How often expired recordings are looked for (default `1h`).
    #[serde(default)]
    pub check_interval: Option<String>,
}

/// Where ended sessions' recordings live.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum StorageConfig {
    /// In the gateway's database (default).
    #[default]
    Local,
    /// In an S3-compatible bucket; the database keeps the session row and manifest.
    S3(S3Config),
}

/// An S3-compatible bucket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Endpoint URL (for S3-compatible services); unset: AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Region (default `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// Key prefix (default `recordings/`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Environment variable holding the access key id.
    #[serde(default)]
    pub access_key_env: Option<String>,
    /// Environment variable holding the secret access key.
    #[serde(default)]
    pub secret_key_env: Option<String>,
    /// Allow a plain-HTTP endpoint (test servers only).
    #[serde(default)]
    pub allow_http: bool,
}
