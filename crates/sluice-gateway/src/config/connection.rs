//! Connections and grants as written in the config file (and sent to the API), and the
//! checks that turn them into [`Connection`]s.

use serde::Deserialize;
use sluice_core::{Connection, ConnectionName, Protocol, TargetCredential};

/// A connection in the config file.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
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
    #[schemars(with = "Option<serde_json::Value>")]
    pub guardrails: Option<sluice_policy::GuardConfig>,
    /// Inline masking.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub masking: Option<sluice_mask::MaskConfig>,
    /// Time-boxed access: connecting needs an approved access request.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
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
