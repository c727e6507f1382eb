//! `sluice identities …`: list, block, unblock.

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
