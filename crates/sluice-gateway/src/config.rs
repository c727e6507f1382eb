//! The config file (YAML). Unknown keys are errors; errors name the file, line and column.

use serde::Deserialize;
use sluice_core::{Connection, ConnectionName, Grant, Protocol, TargetCredential};
use sluice_pipeline::ConnectionPolicy;
use sluice_store::DurabilityMode;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod audit;
pub use audit::{AuditConfig, RetentionConfig, S3Config, StorageConfig};

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

/// A connection in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// Name clients use.
    pub name: String,
    /// Protocol (`postgres`, `mysql`, `ssh`, `command`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Target host (not for `command`).
    #[serde(default)]
    pub host: String,
    /// Target port (not for `command`).
    #[serde(default)]
    pub port: u16,
    /// Target database.
    pub database: Option<String>,
    /// Target user.
    pub username: Option<String>,
    /// Environment variable holding the target password.
    pub password_env: Option<String>,
    /// File holding the target password.
    pub password_file: Option<String>,
    /// Agent whose outbound tunnel reaches the target (the target is dialed from there).
    #[serde(default)]
    pub via: Option<String>,
    /// SSH settings: pinned host key, logins, forwarding destinations, environment.
    #[serde(default)]
    pub ssh: Option<sluice_core::SshOptions>,
    /// What a `command` connection runs: program, environment, secrets, limits.
    #[serde(default)]
    pub command: Option<sluice_core::CommandOptions>,
    /// How an `http` connection is routed (host name or path prefix) and authenticated.
    #[serde(default)]
    pub http: Option<sluice_core::HttpOptions>,
    /// How a `kubernetes` connection reaches its API server (CA, client certificate) and
    /// whether it impersonates the identity.
    #[serde(default)]
    pub kubernetes: Option<sluice_core::KubeOptions>,
    /// Guardrails: deny and review rules.
    #[serde(default)]
    pub guardrails: Option<sluice_policy::GuardConfig>,
    /// Inline masking.
    #[serde(default)]
    pub masking: Option<sluice_mask::MaskConfig>,
    /// Time-boxed access: connecting needs an approved access request.
    #[serde(default)]
    pub access: Option<sluice_policy::AccessConfig>,
    /// How long this connection's recordings are kept (`30d`), instead of the default.
    #[serde(default)]
    pub retention: Option<String>,
}

/// A grant in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantConfig {
    /// Group.
    pub group: String,
    /// Connection.
    pub connection: String,
}

/// Builds a validated connection (shared by the config file and the API).
pub fn build_connection(c: &ConnectionConfig, from_config: bool) -> Result<Connection, String> {
    if !ConnectionName::is_valid(&c.name) {
        return Err(format!(
            "invalid connection name {:?}: use 1-63 characters of letters, digits, '.', '_', '-'",
            c.name
        ));
    }
    let protocol =
        Protocol::parse(&c.kind).ok_or_else(|| format!("unknown connection type {:?}", c.kind))?;
    if protocol == Protocol::Command {
        check_command(c)?;
    } else {
        if c.host.is_empty() {
            return Err("host must not be empty".into());
        }
        if c.port == 0 {
            return Err("port must not be 0".into());
        }
        if c.command.is_some() {
            return Err("`command` settings are for connections of type command".into());
        }
    }
    if protocol == Protocol::Http {
        check_http(c)?;
    } else if c.http.is_some() {
        return Err("`http` settings are for connections of type http".into());
    }
    if protocol == Protocol::Kubernetes {
        check_kubernetes(c)?;
    } else if c.kubernetes.is_some() {
        return Err("`kubernetes` settings are for connections of type kubernetes".into());
    }
    let credential = match (&c.password_env, &c.password_file) {
        (Some(_), Some(_)) => return Err("set password_env or password_file, not both".into()),
        (Some(v), None) => TargetCredential::Env(v.clone()),
        (None, Some(f)) => TargetCredential::File(f.clone()),
        (None, None) => TargetCredential::None,
    };
    if c.ssh.is_some() && protocol != Protocol::Ssh {
        return Err("`ssh` settings are for connections of type ssh".into());
    }
    if protocol == Protocol::Ssh && c.username.as_deref().is_none_or(str::is_empty) {
        return Err("an ssh connection needs username (the login on the target)".into());
    }
    if let Some(ssh) = &c.ssh {
        sluice_tunnel::agent::AllowList::parse(&ssh.forward_to)
            .map_err(|e| format!("ssh.forward_to: {e}"))?;
        if let Some(k) = &ssh.host_key {
            sluice_ssh::keys::parse_public_key(k).map_err(|e| format!("ssh.host_key: {e}"))?;
        }
    }
    Ok(Connection {
        name: ConnectionName(c.name.clone()),
        protocol,
        host: c.host.clone(),
        port: c.port,
        database: c.database.clone(),
        username: c.username.clone(),
        credential,
        via: match &c.via {
            Some(v) if !ConnectionName::is_valid(v) => {
                return Err(format!("invalid agent name {v:?} in via"))
            }
            v => v.clone(),
        },
        ssh: match protocol {
            Protocol::Ssh => Some(c.ssh.clone().unwrap_or_default()),
            _ => None,
        },
        command: c.command.clone(),
        http: c.http.clone(),
        kubernetes: match protocol {
            Protocol::Kubernetes => Some(c.kubernetes.clone().unwrap_or_default()),
            _ => None,
        },
        from_config,
    })
}

/// The checks of a `kubernetes` connection: a client certificate comes with its key, and the
/// gateway has some credential toward the API server.
fn check_kubernetes(c: &ConnectionConfig) -> Result<(), String> {
    let k = c.kubernetes.clone().unwrap_or_default();
    let token = c.password_env.is_some() || c.password_file.is_some();
    match (&k.client_cert_file, &k.client_key_file) {
        (Some(_), None) | (None, Some(_)) => {
            Err("kubernetes: client_cert_file and client_key_file go together".into())
        }
        (None, None) if !token => Err(
            "a kubernetes connection needs a credential: a bearer token in password_env or password_file, or kubernetes.client_cert_file and client_key_file".into(),
        ),
        _ => Ok(()),
    }
}

/// The checks of an `http` connection: exactly one way to route to it, and what its
/// authentication needs.
fn check_http(c: &ConnectionConfig) -> Result<(), String> {
    let Some(h) = &c.http else {
        return Err(
            "an http connection needs `http: { hostname: … }` or `http: { path_prefix: … }`".into(),
        );
    };
    match (&h.hostname, &h.path_prefix) {
        (Some(_), Some(_)) | (None, None) => {
            return Err("http: set exactly one of hostname, path_prefix".into())
        }
        (Some(name), None) => {
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !valid {
                return Err(format!("http.hostname: invalid host name {name:?}"));
            }
        }
        (None, Some(prefix)) => {
            let valid = prefix.len() > 1
                && prefix.starts_with('/')
                && !prefix.ends_with('/')
                && !prefix.contains(['?', '#', '*'])
                && !["/api", "/healthz", "/.sluice", "/kube"]
                    .iter()
                    .any(|r| prefix == r || prefix.starts_with(&format!("{r}/")));
            if !valid {
                return Err(format!("http.path_prefix: {prefix:?} must start with '/', not end with '/', and not be under /api, /healthz, /.sluice or /kube"));
            }
        }
    }
    match h.auth {
        sluice_core::HttpAuth::None => {}
        _ if c.password_env.is_none() && c.password_file.is_none() => {
            return Err("http.auth needs the credential in password_env or password_file".into())
        }
        sluice_core::HttpAuth::Basic if c.username.is_none() => {
            return Err("http.auth: basic needs username".into())
        }
        sluice_core::HttpAuth::Header if h.header.is_none() => {
            return Err("http.auth: header needs http.header (the header's name)".into())
        }
        _ => {}
    }
    Ok(())
}

/// The checks of a `command` connection: a program, secrets with one source each, limits
/// that parse, and nothing that belongs to network targets (`via` runs it on the agent's
/// host).
fn check_command(c: &ConnectionConfig) -> Result<(), String> {
    let Some(cmd) = &c.command else {
        return Err("a command connection needs `command: { program: … }`".into());
    };
    if !c.host.is_empty() || c.port != 0 || c.database.is_some() || c.username.is_some() {
        return Err("a command connection runs a program on the gateway host: host, port, database and username do not apply".into());
    }
    if c.password_env.is_some() || c.password_file.is_some() {
        return Err("a command connection takes its secrets in command.secrets and command.files, not password_env/password_file".into());
    }
    if cmd.program.trim().is_empty() {
        return Err("command.program must not be empty".into());
    }
    let valid_var = |n: &str| {
        !n.is_empty()
            && !n.starts_with(|ch: char| ch.is_ascii_digit())
            && n.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    };
    for name in cmd.env.keys() {
        if !valid_var(name) {
            return Err(format!("command.env: invalid variable name {name:?}"));
        }
    }
    for (what, list) in [("secrets", &cmd.secrets), ("files", &cmd.files)] {
        for s in list.iter() {
            if !valid_var(&s.env) {
                return Err(format!("command.{what}: invalid variable name {:?}", s.env));
            }
            if s.from_env.is_some() == s.from_file.is_some() {
                return Err(format!(
                    "command.{what}: {} needs exactly one of from_env, from_file",
                    s.env
                ));
            }
        }
    }
    if let Some(t) = &cmd.timeout {
        match sluice_policy::parse_duration(t) {
            Some(d) if !d.is_zero() => {}
            _ => {
                return Err(format!(
                    "command.timeout: invalid duration {t:?}: use e.g. 30s, 10m, 1h"
                ))
            }
        }
    }
    if cmd.max_output == Some(0) || cmd.max_input == Some(0) {
        return Err("command.max_output and command.max_input must be positive".into());
    }
    Ok(())
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
