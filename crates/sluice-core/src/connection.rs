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
}

impl Protocol {
    /// Stable text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Postgres => "postgres",
            Protocol::Mysql => "mysql",
        }
    }

    /// Parses the text form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "postgres" | "postgresql" => Some(Protocol::Postgres),
            "mysql" | "mariadb" => Some(Protocol::Mysql),
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
    /// True when defined in the config file (read-only at runtime).
    pub from_config: bool,
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
