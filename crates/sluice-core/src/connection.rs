//! What can be reached (connections) and who may reach it (grants).

use crate::ids::ConnectionName;
use serde::{Deserialize, Serialize};

/// The wire protocol a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// PostgreSQL frontend/backend protocol v3.
    Postgres,
    /// MySQL client/server protocol 4.1 (MySQL and MariaDB).
    Mysql,
    /// SSH 2 (shell, exec, scp, sftp, forwarding).
    Ssh,
}

impl Protocol {
    /// Stable text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Postgres => "postgres",
            Protocol::Mysql => "mysql",
            Protocol::Ssh => "ssh",
        }
    }

    /// Parses the text form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "postgres" | "postgresql" => Some(Protocol::Postgres),
            "mysql" | "mariadb" => Some(Protocol::Mysql),
            "ssh" => Some(Protocol::Ssh),
            _ => None,
        }
    }
}

/// Where the gateway finds the password it presents to the target. The secret itself is
/// never stored in the config or the store, only this reference to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetCredential {
    /// No password (trust authentication, or none needed).
    None,
    /// Read from this environment variable of the gateway process.
    Env(String),
    /// Read from this file on the gateway host.
    File(String),
}

/// A target the gateway can open sessions to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// Name clients use to select it.
    pub name: ConnectionName,
    /// Wire protocol.
    #[serde(rename = "type")]
    pub protocol: Protocol,
    /// Target host name or address.
    pub host: String,
    /// Target port.
    pub port: u16,
    /// Database to open on the target (PostgreSQL); `None` uses the client's.
    pub database: Option<String>,
    /// User name the gateway presents to the target.
    pub username: Option<String>,
    /// Where the target password comes from.
    pub credential: TargetCredential,
    /// The agent whose outbound tunnel reaches the target; `None` dials directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// SSH settings (connections of type `ssh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshOptions>,
    /// True when defined in the config file (read-only at runtime).
    pub from_config: bool,
}

/// What an SSH connection allows beyond a shell and exec, how its target is trusted and how
/// the gateway logs in to it. Everything is off unless set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshOptions {
    /// The target's host key, pinned (`ssh-ed25519 AAAA…`, as in `known_hosts`). Without
    /// one the first key seen is recorded and enforced from then on (trust on first use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    /// Target logins a client may pick with `login+connection@gateway`, besides `username`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logins: Vec<String>,
    /// Destinations of `-L` local forwarding (`host:port`, `host:*`, `10.0.0.0/8:5432`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward_to: Vec<String>,
    /// Environment variables a client may pass (`LANG`, `LC_*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Let clients forward their SSH agent (`ssh -A`) to the target: anyone with root there
    /// can use the client's keys while the session lasts.
    #[serde(default, skip_serializing_if = "is_false")]
    pub agent_forwarding: bool,
    /// Let clients listen on the target and forward back (`ssh -R`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub remote_forwarding: bool,
    /// Log in to the target with a short-lived certificate from the gateway's target CA
    /// (the target trusts `sluice ssh gateway-key --target-ca` in `TrustedUserCAKeys`)
    /// instead of the bare gateway key.
    #[serde(default, skip_serializing_if = "is_false")]
    pub certificate: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Gives the members of `group` access to `connection`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Grant {
    /// Group whose members are granted.
    pub group: String,
    /// Connection they may open.
    pub connection: ConnectionName,
    /// True when defined in the config file (read-only at runtime).
    #[serde(default)]
    pub from_config: bool,
}
