//! The config file (YAML). Unknown keys are errors; errors name the file, line and column.

use serde::Deserialize;
use sluice_core::{Connection, ConnectionName, Grant};
use sluice_pipeline::ConnectionPolicy;
use sluice_store::DurabilityMode;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod audit;
mod connection;
mod roles;
pub use audit::{AuditConfig, RetentionConfig, S3Config, StorageConfig};
pub use connection::{build_connection, ConnectionConfig, GrantConfig};
pub use roles::RolesConfig;

/// Why a config file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// YAML syntax or schema error, with location.
    #[error("{path}: {message}")]
    Parse {
        /// File.
        path: String,
        /// serde_yaml's message (includes line and column).
        message: String,
    },
    /// A value is invalid.
    #[error("{path}: {at}: {message}")]
    Invalid {
        /// File.
        path: String,
        /// Where (`connections[0]`).
        at: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Data dir (the `--data-dir` flag overrides it).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Listener addresses.
    #[serde(default)]
    pub listeners: Listeners,
    /// Listener certificate.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Recording settings.
    #[serde(default)]
    pub recording: RecordingConfig,
    /// Audit settings.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Recording retention.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Where ended recordings are stored.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Connections.
    #[serde(default)]
    pub connections: Vec<ConnectionConfig>,
    /// Grants.
    #[serde(default)]
    pub grants: Vec<GrantConfig>,
    /// Reviews (held commands, access requests).
    #[serde(default)]
    pub reviews: ReviewsConfig,
    /// Identity providers whose JWTs are accepted as credentials.
    #[serde(default)]
    pub identity_providers: Vec<sluice_oidc::ProviderConfig>,
    /// Groups per role on the API and console.
    #[serde(default)]
    pub roles: RolesConfig,
    /// The connections' policies, compiled once while validating.
    #[serde(skip)]
    compiled_policies: BTreeMap<String, Arc<ConnectionPolicy>>,
    /// The identity providers, checked and prepared once while validating.
    #[serde(skip)]
    verifier: Option<Arc<sluice_oidc::Verifier>>,
    /// Digest of the file, set by [`Config::load`].
    #[serde(skip)]
    sha256: Option<String>,
}

/// Listener addresses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listeners {
    /// PostgreSQL listener.
    #[serde(default = "default_pg")]
    pub postgres: PgListener,
    /// MySQL/MariaDB listener (off unless configured).
    #[serde(default)]
    pub mysql: Option<PgListener>,
    /// SSH listener (off unless configured).
    #[serde(default)]
    pub ssh: Option<SshListener>,
    /// HTTPS API listener.
    #[serde(default = "default_api")]
    pub api: ApiListener,
}

impl Default for Listeners {
    fn default() -> Self {
        Listeners {
            postgres: default_pg(),
            mysql: None,
            ssh: None,
            api: default_api(),
        }
    }
}

fn default_pg() -> PgListener {
    PgListener {
        address: SocketAddr::from(([127, 0, 0, 1], 15432)),
        allow_plaintext: false,
    }
}

fn default_api() -> ApiListener {
    ApiListener {
        address: SocketAddr::from(([127, 0, 0, 1], 8443)),
    }
}

/// A database listener (PostgreSQL, MySQL).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgListener {
    /// Address to bind (port 0 picks a free port; see `listeners.json`).
    pub address: SocketAddr,
    /// Allow plaintext sessions from loopback clients (TLS is otherwise required).
    #[serde(default)]
    pub allow_plaintext: bool,
}

/// The SSH listener (SSH's own encryption; the host key is in `<data-dir>/ssh`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshListener {
    /// Address to bind.
    pub address: SocketAddr,
    /// Ciphers offered to SSH clients (default: AES-GCM only; see
    /// `sluice_ssh::DEFAULT_CLIENT_CIPHERS`).
    #[serde(default)]
    pub ciphers: Option<Vec<String>>,
}

/// The API listener (always TLS).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiListener {
    /// Address to bind.
    pub address: SocketAddr,
}

/// Listener certificate; generated in `<data-dir>/tls` when not given.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
    /// Extra DNS names / IPs for the generated certificate.
    #[serde(default)]
    pub hostnames: Vec<String>,
}

/// Recording settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    /// `buffered` (default: at most 100 ms lost on crash), `strict`, or `off` (benchmark
    /// baseline: only session start and end are kept).
    #[serde(default)]
    pub mode: DurabilityMode,
    /// Result rows recorded per statement.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Longest recorded value in bytes.
    #[serde(default = "default_max_value_len")]
    pub max_value_len: usize,
    /// Terminal and exec output recorded per SSH channel or command run and stream, in bytes
    /// (the rest is counted, not kept).
    #[serde(default = "default_ssh_output_cap")]
    pub ssh_output_cap: u64,
}

fn default_ssh_output_cap() -> u64 {
    16 * 1024 * 1024
}

fn default_max_rows() -> usize {
    100
}

fn default_max_value_len() -> usize {
    1024
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            mode: DurabilityMode::Buffered,
            max_rows: default_max_rows(),
            max_value_len: default_max_value_len(),
            ssh_output_cap: default_ssh_output_cap(),
        }
    }
}

/// Reviews: how new reviews and decisions are announced.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewsConfig {
    /// Webhook that receives a Slack-compatible JSON POST for every new review and decision.
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
}

/// Where the review webhook posts. The URL is a secret (Slack webhook URLs are): give it
/// through an environment variable or a file to keep it out of the config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The URL itself.
    pub url: Option<String>,
    /// Environment variable holding the URL.
    pub url_env: Option<String>,
    /// File holding the URL.
    pub url_file: Option<PathBuf>,
}

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: p.clone(),
            source,
        })?;
        let mut cfg = Config::parse(&text, &p)?;
        cfg.sha256 = Some(sluice_store::crypto::hex(&sluice_store::crypto::sha256(
            text.as_bytes(),
        )));
        Ok(cfg)
    }

    /// The names a generated server certificate covers: `tls.hostnames` and the host names
    /// of `http` connections.
    pub fn certificate_names(&self) -> Vec<String> {
        let mut names = self.tls.hostnames.clone();
        names.extend(
            self.connections
                .iter()
                .filter_map(|c| c.http.as_ref()?.hostname.clone()),
        );
        names
    }

    /// SHA-256 (hex) of the file the config was loaded from (audited at start, so a changed
    /// configuration shows in the audit log).
    pub fn sha256(&self) -> Option<&str> {
        self.sha256.as_deref()
    }

    /// Parses and validates config text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Config, ConfigError> {
        let mut cfg: Config = serde_yaml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn validate(&mut self, path: &str) -> Result<(), ConfigError> {
        let mut policies = BTreeMap::new();
        let invalid = |at: String, message: String| ConfigError::Invalid {
            path: path.to_string(),
            at,
            message,
        };
        let mut names = HashSet::new();
        for (i, c) in self.connections.iter().enumerate() {
            build_connection(c, true).map_err(|m| invalid(format!("connections[{i}]"), m))?;
            let policy = ConnectionPolicy::compile(
                c.guardrails.as_ref(),
                c.masking.as_ref(),
                c.access.as_ref(),
            )
            .map_err(|e| invalid(format!("connections[{i}]"), e.to_string()))?;
            if !policy.is_empty() {
                policies.insert(c.name.clone(), Arc::new(policy));
            }
            if !names.insert(c.name.as_str()) {
                return Err(invalid(
                    format!("connections[{i}]"),
                    format!("duplicate connection name {:?}", c.name),
                ));
            }
        }
        for (i, g) in self.grants.iter().enumerate() {
            if !names.contains(g.connection.as_str()) {
                return Err(invalid(
                    format!("grants[{i}]"),
                    format!("grant refers to unknown connection {:?}", g.connection),
                ));
            }
            if g.group.is_empty() {
                return Err(invalid(
                    format!("grants[{i}]"),
                    "group must not be empty".into(),
                ));
            }
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(invalid(
                "tls".into(),
                "set both cert and key, or neither".into(),
            ));
        }
        if !self.identity_providers.is_empty() {
            let verifier = sluice_oidc::Verifier::new(&self.identity_providers)
                .map_err(|(i, m)| invalid(format!("identity_providers[{i}]"), m))?;
            self.verifier = Some(Arc::new(verifier));
        }
        if let Some(w) = &self.reviews.webhook {
            let given = [w.url.is_some(), w.url_env.is_some(), w.url_file.is_some()];
            if given.iter().filter(|g| **g).count() != 1 {
                return Err(invalid(
                    "reviews.webhook".into(),
                    "set exactly one of url, url_env, url_file".into(),
                ));
            }
        }
        if self.recording.max_rows > 100_000 {
            return Err(invalid(
                "recording.max_rows".into(),
                "at most 100000".into(),
            ));
        }
        if let Some(ssh) = &self.listeners.ssh {
            if let Some(names) = &ssh.ciphers {
                sluice_ssh::client_ciphers(names)
                    .map_err(|m| invalid("listeners.ssh.ciphers".into(), m))?;
            }
        }
        self.validate_audit(&invalid)?;
        self.compiled_policies = policies;
        Ok(())
    }

    fn validate_audit(
        &self,
        invalid: &impl Fn(String, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let duration = |at: &str, text: &str| {
            sluice_policy::parse_duration(text)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    invalid(
                        at.into(),
                        format!("invalid duration {text:?} (e.g. 60s, 90d)"),
                    )
                })
        };
        duration("audit.checkpoint_interval", &self.audit.checkpoint_interval)?;
        if let Some(d) = &self.retention.default {
            duration("retention.default", d)?;
        }
        if let Some(d) = &self.retention.check_interval {
            duration("retention.check_interval", d)?;
        }
        for (i, c) in self.connections.iter().enumerate() {
            if let Some(d) = &c.retention {
                duration(&format!("connections[{i}].retention"), d)?;
            }
        }
        if self.audit.signing_key_file.is_some() && self.audit.signing_key_env.is_some() {
            return Err(invalid(
                "audit".into(),
                "set signing_key_file or signing_key_env, not both".into(),
            ));
        }
        if self.audit.file.is_some() && self.audit.sinks.contains_key("file") {
            return Err(invalid(
                "audit.sinks.file".into(),
                "the name `file` is taken by audit.file; rename the sink or set audit.file: null"
                    .into(),
            ));
        }
        for (name, sink) in &self.audit.sinks {
            sluice_audit::sink::check(sink)
                .map_err(|m| invalid(format!("audit.sinks.{name}"), m))?;
        }
        Ok(())
    }

    /// Retention per connection (config-file connections that set one).
    pub fn retention_overrides(&self) -> BTreeMap<String, std::time::Duration> {
        self.connections
            .iter()
            .filter_map(|c| {
                let d = sluice_policy::parse_duration(c.retention.as_deref()?)?;
                Some((c.name.clone(), d))
            })
            .collect()
    }

    /// The config file's connections.
    pub fn connections(&self) -> Vec<Connection> {
        self.connections
            .iter()
            .filter_map(|c| build_connection(c, true).ok())
            .collect()
    }

    /// The trusted identity providers, if any are configured.
    pub fn verifier(&self) -> Option<Arc<sluice_oidc::Verifier>> {
        self.verifier.clone()
    }

    /// The config file's compiled connection policies, by connection name.
    pub fn policies(&self) -> BTreeMap<String, Arc<ConnectionPolicy>> {
        self.compiled_policies.clone()
    }

    /// The config file's grants.
    pub fn grants(&self) -> Vec<Grant> {
        self.grants
            .iter()
            .map(|g| Grant {
                group: g.group.clone(),
                connection: ConnectionName(g.connection.clone()),
                from_config: true,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
