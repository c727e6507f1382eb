//! What can be reached (connections) and who may reach it (grants).

use crate::ids::ConnectionName;
use serde::{Deserialize, Serialize};

/// The wire protocol a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// PostgreSQL frontend/backend protocol v3.
    Postgres,
    /// MySQL client/server protocol 4.1 (MySQL and MariaDB).
    Mysql,
    /// SSH 2 (shell, exec, scp, sftp, forwarding).
    Ssh,
    /// A program the gateway runs for the client (`sluice exec`): a code-execution runtime.
    Command,
    /// An internal HTTP service behind the gateway's HTTPS listener (identity-aware proxy).
    Http,
    /// A Kubernetes API server, reached by kubectl at `/kube/<connection>` on the gateway's
    /// HTTPS listener.
    Kubernetes,
}

impl Protocol {
    /// Stable text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Postgres => "postgres",
            Protocol::Mysql => "mysql",
            Protocol::Ssh => "ssh",
            Protocol::Command => "command",
            Protocol::Http => "http",
            Protocol::Kubernetes => "kubernetes",
        }
    }

    /// Parses the text form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "postgres" | "postgresql" => Some(Protocol::Postgres),
            "mysql" | "mariadb" => Some(Protocol::Mysql),
            "ssh" => Some(Protocol::Ssh),
            "command" => Some(Protocol::Command),
            "http" => Some(Protocol::Http),
            "kubernetes" | "k8s" => Some(Protocol::Kubernetes),
            _ => None,
        }
    }
}

/// Where the gateway finds the password it presents to the target. The secret itself is
/// never stored in the config or the store, only this reference to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// The program and its environment (connections of type `command`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandOptions>,
    /// How an HTTP service is reached through the gateway (connections of type `http`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpOptions>,
    /// How the gateway talks to a Kubernetes API server (connections of type `kubernetes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubeOptions>,
    /// True when defined in the config file (read-only at runtime).
    pub from_config: bool,
}

/// What an SSH connection allows beyond a shell and exec, how its target is trusted and how
/// the gateway logs in to it. Everything is off unless set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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

/// What a `command` connection runs, with what, and within which limits. The program
/// runs on the gateway host with a cleared environment: only `PATH`, `LANG`, `HOME` (the
/// working directory), `env` and the injected secrets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandOptions {
    /// The program (a path, or a name looked up in `PATH`): `bash`, `python3`, a deploy script.
    pub program: String,
    /// Arguments always passed first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Let clients append arguments of their own (`sluice exec CONN -- ARGS`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub client_args: bool,
    /// Plain environment variables.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub env: std::collections::BTreeMap<String, String>,
    /// Environment variables whose values are secrets the gateway holds. Their values are
    /// masked wherever the program prints them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<InjectedSecret>,
    /// Secrets written to files (mode 0600, in a directory removed after the run); the
    /// variable `env` holds the file's path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<InjectedSecret>,
    /// Working directory (default: a new empty directory, removed after the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Longest run (`30s`, `10m`); the program's process group is killed after it.
    /// Default 10 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Most output (stdout + stderr, bytes) a run may print before it is killed.
    /// Default 64 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output: Option<u64>,
    /// Largest stdin (bytes) a client may send. Default 16 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_input: Option<u64>,
}

/// How clients reach an HTTP service through the gateway's HTTPS listener (by host name or
/// by path prefix) and how the gateway authenticates to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpOptions {
    /// Requests whose `Host` is this name go to the service (`grafana.example.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Requests under this path on the gateway's host go to the service, with the prefix
    /// removed (`/grafana`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// How the gateway authenticates to the service with the credential it holds
    /// (`password_env`/`password_file`): `none` (default), `bearer`, `basic` (with
    /// `username`) or `header` (the value in [`HttpOptions::header`]).
    #[serde(default)]
    pub auth: HttpAuth,
    /// Header carrying the credential for `auth: header` (`X-Api-Key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Headers recorded besides `content-type`, `content-length`, `location` and
    /// `user-agent` (credentials and cookies are never recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub record_headers: Vec<String>,
    /// Request and response bodies recorded up to this many bytes each (default 64 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body: Option<u64>,
    /// The service speaks HTTPS: the gateway verifies its certificate against `ca_file`
    /// (default: the system's bundle) for `server_name` (default: `host`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub tls: bool,
    /// PEM certificates the service's certificate must chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// The name the service's certificate must carry, when not `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

/// How the gateway reaches a Kubernetes API server and acts on it. The gateway authenticates
/// with the bearer token in `password_env`/`password_file`, or with a client certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeOptions {
    /// PEM certificates the API server's certificate must chain to (default: the system's
    /// bundle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// The name the API server's certificate must carry, when not `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// PEM client certificate the gateway presents (with `client_key_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_file: Option<String>,
    /// PEM private key of `client_cert_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<String>,
    /// Act as the identity: every request carries `Impersonate-User` (the identity's name)
    /// and `Impersonate-Group` (its groups), so the cluster's RBAC applies to the person.
    /// The gateway's own credential then needs the `impersonate` permission.
    #[serde(default, skip_serializing_if = "is_false")]
    pub impersonate: bool,
    /// Request and response bodies recorded up to this many bytes each (default 64 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body: Option<u64>,
}

/// How the gateway authenticates to an HTTP service.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum HttpAuth {
    /// No credential.
    #[default]
    None,
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// `Authorization: Basic` with the connection's username and the secret.
    Basic,
    /// The secret in the header named by `header`.
    Header,
}

/// A secret the gateway injects into a command's environment, from its own environment
/// or a file on the gateway host. Only the reference is stored, never the value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InjectedSecret {
    /// The variable the program sees (`PGPASSWORD`, `AWS_SECRET_ACCESS_KEY`).
    pub env: String,
    /// The gateway's environment variable holding the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_env: Option<String>,
    /// The file on the gateway host holding the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_file: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Gives the members of `group` access to `connection`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Grant {
    /// Group whose members are granted.
    pub group: String,
    /// Connection they may open.
    pub connection: ConnectionName,
    /// True when defined in the config file (read-only at runtime).
    #[serde(default)]
    pub from_config: bool,
}
