//! `sluice agents …`: create (prints the enrollment token), list, revoke.

use super::client::{enc, Api};
use super::render::{table, ts};
use clap::Subcommand;
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum AgentsCmd {
    /// Create an agent; prints its one-time enrollment token for `sluice agent --token`.
    Add {
        /// Name connections use in `via:`.
        name: String,
        /// How long the enrollment token works.
        #[arg(long, default_value = "1h")]
        ttl: humantime::Duration,
        /// Pin this public key (base64, as `sluice agent --show-key` prints it) instead of
        /// issuing a token.
        #[arg(long, conflicts_with = "public_key_file")]
        public_key: Option<String>,
        /// Pin the public key in this file instead of issuing a token.
        #[arg(long)]
        public_key_file: Option<PathBuf>,
    },
    /// List agents with their tunnel to this gateway: version, connected since, streams, bytes.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an agent: its tunnel closes now (sessions through it end) and it is refused.
    Revoke {
        /// Name.
        name: String,
    },
}

pub fn run(api: &Api, cmd: AgentsCmd) -> anyhow::Result<()> {
    match cmd {
        AgentsCmd::Add {
            name,
            ttl,
            public_key,
            public_key_file,
        } => {
            let key = match (public_key, public_key_file) {
                (Some(k), _) => Some(k),
                (None, Some(f)) => Some(std::fs::read_to_string(&f)?.trim().to_string()),
                (None, None) => None,
            };
            let answer = api.post(
                "/api/v1/agents",
                json!({ "name": name, "ttl_seconds": ttl.as_secs().max(1), "public_key": key }),
            )?;
            match answer["token"].as_str() {
                Some(token) => println!("{token}"),
                None => eprintln!("agent {name} created with its key pinned"),
            }
        }
        AgentsCmd::List { json } => {
            let list: Vec<Value> = api.get("/api/v1/agents")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list.iter().map(row).collect();
            table(
                &[
                    "NAME",
                    "STATE",
                    "VERSION",
                    "CONNECTED",
                    "FROM",
                    "STREAMS",
                    "TOTAL",
                    "BYTES OUT",
                    "BYTES IN",
                ],
                &rows,
            );
        }
        AgentsCmd::Revoke { name } => {
            api.post(&format!("/api/v1/agents/{}/revoke", enc(&name)), json!({}))?;
            println!("revoked agent {name}");
        }
    }
    Ok(())
}

fn row(a: &Value) -> Vec<String> {
    let t = &a["tunnel"];
    let state = if !a["revoked_us"].is_null() {
        "revoked"
    } else if a["public_key"].is_null() {
        "awaiting enrollment"
    } else if t.is_null() {
        "disconnected"
    } else {
        "connected"
    };
    let num = |k: &str| {
        t[k].as_u64()
            .map(|n| n.to_string())
            .unwrap_or_else(|| "-".into())
    };
    vec![
        a["name"].as_str().unwrap_or_default().to_string(),
        state.to_string(),
        t["version"].as_str().unwrap_or("-").to_string(),
        t["connected_since_us"]
            .as_i64()
            .map(ts)
            .unwrap_or_else(|| "-".into()),
        t["peer"].as_str().unwrap_or("-").to_string(),
        num("streams"),
        num("streams_total"),
        num("bytes_to_agent"),
        num("bytes_from_agent"),
    ]
}
