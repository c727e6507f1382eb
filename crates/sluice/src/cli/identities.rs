//! `sluice identities …`: list, block, unblock, SSH keys.

use super::client::{enc, Api};
use clap::Subcommand;
use serde_json::{json, Value};

/// Identity commands.
#[derive(Debug, Subcommand)]
pub enum IdentityCmd {
    /// List identities and whether they are blocked.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Block an identity: revoke its tokens, end its live sessions, refuse new logins.
    Block {
        /// Identity name.
        name: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a block (issue new tokens afterwards: revoked ones stay revoked).
    Unblock {
        /// Identity name.
        name: String,
    },
    /// SSH public keys an identity logs in with.
    #[command(subcommand)]
    Keys(KeyCmd),
}

/// `sluice identities keys …`.
#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Register a public key (`id_ed25519.pub`) to an identity.
    Add {
        /// Identity name.
        name: String,
        /// The public key file.
        #[arg(long)]
        key_file: std::path::PathBuf,
    },
    /// List an identity's keys.
    List {
        /// Identity name.
        name: String,
    },
    /// Unregister a key.
    Remove {
        /// Identity name.
        name: String,
        /// Its fingerprint (`SHA256:…`).
        fingerprint: String,
    },
}

/// Runs an identity command.
pub fn run(api: &Api, cmd: IdentityCmd) -> anyhow::Result<()> {
    match cmd {
        IdentityCmd::List { json } => {
            let list: Vec<Value> = api.get("/api/v1/identities")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            println!("{:<32} {:<16} {:<8} GROUPS", "NAME", "KIND", "BLOCKED");
            for i in list {
                let groups: Vec<&str> = i["groups"]
                    .as_array()
                    .map(|g| g.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                println!(
                    "{:<32} {:<16} {:<8} {}",
                    i["name"].as_str().unwrap_or_default(),
                    i["kind"].as_str().unwrap_or_default(),
                    if i["blocked_us"].is_null() {
                        "no"
                    } else {
                        "yes"
                    },
                    groups.join(",")
                );
            }
            Ok(())
        }
        IdentityCmd::Block { name, reason } => {
            let r = api.post(
                &format!("/api/v1/identities/{}/block", enc(&name)),
                json!({ "reason": reason }),
            )?;
            println!(
                "blocked {name}: {} token(s) revoked, {} live session(s) ended",
                r["tokens_revoked"],
                r["sessions_killed"].as_array().map_or(0, Vec::len)
            );
            Ok(())
        }
        IdentityCmd::Keys(k) => keys(api, k),
        IdentityCmd::Unblock { name } => {
            api.post(
                &format!("/api/v1/identities/{}/unblock", enc(&name)),
                json!({}),
            )?;
            println!("unblocked {name}");
            Ok(())
        }
    }
}

fn keys(api: &Api, cmd: KeyCmd) -> anyhow::Result<()> {
    match cmd {
        KeyCmd::Add { name, key_file } => {
            let text = std::fs::read_to_string(&key_file)
                .map_err(|e| anyhow::anyhow!("{}: {e}", key_file.display()))?;
            let r = api.post(
                &format!("/api/v1/identities/{}/keys", enc(&name)),
                json!({ "public_key": text }),
            )?;
            println!(
                "registered {} to {name}",
                r["fingerprint"].as_str().unwrap_or_default()
            );
        }
        KeyCmd::List { name } => {
            let list: Vec<Value> = api.get(&format!("/api/v1/identities/{}/keys", enc(&name)))?;
            for k in list {
                println!(
                    "{}  {}",
                    k["fingerprint"].as_str().unwrap_or_default(),
                    k["public_key"].as_str().unwrap_or_default()
                );
            }
        }
        KeyCmd::Remove { name, fingerprint } => {
            api.delete(&format!(
                "/api/v1/identities/{}/keys/{}",
                enc(&name),
                enc(&fingerprint)
            ))?;
            println!("removed {fingerprint} from {name}");
        }
    }
    Ok(())
}
