//! Admin commands: service accounts, tokens, connections, grants.

use super::client::{enc, Api};
use super::render::{table, ts};
use clap::Subcommand;
use serde_json::{json, Value};

#[derive(Debug, Subcommand)]
pub enum ServiceAccountCmd {
    /// Create a service account; prints only its token.
    Create {
        /// Name.
        name: String,
        /// Comma-separated groups.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Token lifetime (e.g. 24h, 30d); default: no expiry.
        #[arg(long)]
        ttl: Option<humantime::Duration>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// List tokens (never their secrets).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id.
    Revoke {
        /// Token id (`tok_…`).
        id: String,
    },
    /// Trade a JWT from a trusted identity provider for a short-lived gateway token (RFC 8693
    /// token exchange); prints the token.
    Exchange {
        /// The JWT (`-` reads it from standard input).
        #[arg(long, env = "SLUICE_SUBJECT_TOKEN", hide_env_values = true)]
        subject_token: String,
    },
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per CLI run
pub enum ConnectionCmd {
    /// Add a connection at runtime.
    Add {
        /// Name clients use.
        name: String,
        /// Protocol: postgres, mysql, ssh, command, http or kubernetes.
        #[arg(long = "type")]
        kind: String,
        /// Target host.
        #[arg(long)]
        host: String,
        /// Target port.
        #[arg(long)]
        port: u16,
        /// Target database.
        #[arg(long)]
        database: Option<String>,
        /// Target user.
        #[arg(long)]
        username: Option<String>,
        /// Environment variable (of the gateway) holding the target password.
        #[arg(long, conflicts_with = "password_file")]
        password_env: Option<String>,
        /// File (on the gateway host) holding the target password.
        #[arg(long)]
        password_file: Option<String>,
        /// Reach the target through this agent's tunnel.
        #[arg(long)]
        via: Option<String>,
        /// SSH: the target's host key to pin (`ssh-ed25519 AAAA…`); without it the first
        /// key seen is trusted and enforced after.
        #[arg(long)]
        host_key: Option<String>,
        /// SSH: a further target login clients may pick with `login+connection@gateway`.
        #[arg(long = "login")]
        logins: Vec<String>,
        /// SSH: a destination `-L` forwarding may reach (`host:port`, `10.0.0.0/8:5432`).
        #[arg(long)]
        forward_to: Vec<String>,
        /// SSH: an environment variable clients may pass to the target (`SendEnv`/`SetEnv`): a
        /// name, or a prefix ending in `*` (`LC_*`).
        #[arg(long = "env")]
        env: Vec<String>,
        /// SSH: let clients forward their agent to the target (`ssh -A`).
        #[arg(long)]
        agent_forwarding: bool,
        /// SSH: let clients listen on the target and forward back (`ssh -R`).
        #[arg(long)]
        remote_forwarding: bool,
        /// SSH: log in to the target with a short-lived certificate from the gateway's target
        /// CA (`sluice ssh gateway-key --target-ca`) instead of the bare gateway key.
        #[arg(long)]
        certificate: bool,
    },
    /// List connections.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one connection.
    Show {
        /// Name.
        name: String,
    },
    /// Remove a runtime connection.
    Remove {
        /// Name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GrantCmd {
    /// Grant a group access to a connection.
    Add {
        /// Group.
        #[arg(long)]
        group: String,
        /// Connection.
        #[arg(long)]
        connection: String,
    },
    /// List grants.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a grant.
    Remove {
        /// Group.
        #[arg(long)]
        group: String,
        /// Connection.
        #[arg(long)]
        connection: String,
    },
}

pub fn service_accounts(api: &Api, cmd: ServiceAccountCmd) -> anyhow::Result<()> {
    let ServiceAccountCmd::Create { name, groups, ttl } = cmd;
    let body = json!({
        "name": name,
        "groups": groups,
        "ttl_seconds": ttl.map(|d| d.as_secs().max(1)),
    });
    let answer = api.post("/api/v1/service-accounts", body)?;
    println!("{}", answer["token"].as_str().unwrap_or_default());
    Ok(())
}

fn opt_ts(v: &Value) -> String {
    v.as_i64().map(ts).unwrap_or_else(|| "-".into())
}

/// `sluice tokens exchange`: needs no gateway token, the JWT is the credential.
pub fn exchange(
    addr: &str,
    ca: Option<std::path::PathBuf>,
    subject_token: String,
) -> anyhow::Result<()> {
    let subject = if subject_token == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        s.trim().to_string()
    } else {
        subject_token
    };
    // The subject token is the credential, sent in the form only: no bearer header.
    let api = Api::new(addr, Some(String::new()), ca)?;
    let r = api.post_form(
        "/api/v1/token/exchange",
        &[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", &subject),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ],
    )?;
    let token = r["access_token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the gateway returned no token"))?;
    println!("{token}");
    Ok(())
}

pub fn tokens(api: &Api, cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::List { json } => {
            let list: Vec<Value> = api.get("/api/v1/tokens")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|t| {
                    vec![
                        t["id"].as_str().unwrap_or_default().to_string(),
                        t["identity"].as_str().unwrap_or_default().to_string(),
                        t["kind"].as_str().unwrap_or_default().to_string(),
                        opt_ts(&t["created_us"]),
                        opt_ts(&t["expires_us"]),
                        opt_ts(&t["revoked_us"]),
                    ]
                })
                .collect();
            table(
                &["ID", "IDENTITY", "KIND", "CREATED", "EXPIRES", "REVOKED"],
                &rows,
            );
        }
        TokenCmd::Revoke { id } => {
            api.post(&format!("/api/v1/tokens/{}/revoke", enc(&id)), json!({}))?;
            println!("revoked {id}");
        }
        // Dispatched by `cli::run` before a client with a gateway token is built.
        TokenCmd::Exchange { .. } => anyhow::bail!("token exchange needs no gateway token"),
    }
    Ok(())
}

fn connection_row(c: &Value) -> Vec<String> {
    let s = |k: &str| c[k].as_str().unwrap_or("-").to_string();
    vec![
        s("name"),
        s("type"),
        match c["via"].as_str() {
            Some(agent) => format!("{}:{} via {agent}", s("host"), c["port"]),
            None => format!("{}:{}", s("host"), c["port"]),
        },
        s("database"),
        s("username"),
        if c["from_config"].as_bool() == Some(true) {
            "config"
        } else {
            "runtime"
        }
        .into(),
    ]
}

pub fn connections(api: &Api, cmd: ConnectionCmd) -> anyhow::Result<()> {
    match cmd {
        ConnectionCmd::Add {
            name,
            kind,
            host,
            port,
            database,
            username,
            password_env,
            password_file,
            via,
            host_key,
            logins,
            forward_to,
            env,
            agent_forwarding,
            remote_forwarding,
            certificate,
        } => {
            let mut body = json!({
                "name": name, "type": kind, "host": host, "port": port,
                "database": database, "username": username,
                "password_env": password_env, "password_file": password_file,
                "via": via,
            });
            let any_ssh = host_key.is_some()
                || !logins.is_empty()
                || !forward_to.is_empty()
                || !env.is_empty()
                || agent_forwarding
                || remote_forwarding
                || certificate;
            if any_ssh {
                body["ssh"] = json!({
                    "host_key": host_key, "logins": logins, "forward_to": forward_to, "env": env,
                    "agent_forwarding": agent_forwarding, "remote_forwarding": remote_forwarding,
                    "certificate": certificate,
                });
            }
            api.post("/api/v1/connections", body)?;
            println!("added connection {name}");
        }
        ConnectionCmd::List { json } => {
            let list: Vec<Value> = api.get("/api/v1/connections")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list.iter().map(connection_row).collect();
            table(
                &["NAME", "TYPE", "TARGET", "DATABASE", "USER", "SOURCE"],
                &rows,
            );
        }
        ConnectionCmd::Show { name } => {
            let c: Value = api.get(&format!("/api/v1/connections/{}", enc(&name)))?;
            println!("{}", serde_json::to_string_pretty(&c)?);
        }
        ConnectionCmd::Remove { name } => {
            api.delete(&format!("/api/v1/connections/{}", enc(&name)))?;
            println!("removed connection {name}");
        }
    }
    Ok(())
}

pub fn grants(api: &Api, cmd: GrantCmd) -> anyhow::Result<()> {
    match cmd {
        GrantCmd::Add { group, connection } => {
            api.post(
                "/api/v1/grants",
                json!({ "group": group, "connection": connection }),
            )?;
            println!("granted {connection} to group {group}");
        }
        GrantCmd::List { json } => {
            let list: Vec<Value> = api.get("/api/v1/grants")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|g| {
                    vec![
                        g["group"].as_str().unwrap_or_default().to_string(),
                        g["connection"].as_str().unwrap_or_default().to_string(),
                        if g["from_config"].as_bool() == Some(true) {
                            "config"
                        } else {
                            "runtime"
                        }
                        .into(),
                    ]
                })
                .collect();
            table(&["GROUP", "CONNECTION", "SOURCE"], &rows);
        }
        GrantCmd::Remove { group, connection } => {
            api.delete(&format!(
                "/api/v1/grants?group={}&connection={}",
                enc(&group),
                enc(&connection)
            ))?;
            println!("removed grant of {connection} to group {group}");
        }
    }
    Ok(())
}
