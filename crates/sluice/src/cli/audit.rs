//! `sluice holds`, `sluice retention`, `sluice signing-keys`.

use super::client::{enc, Api};
use super::render::{table, ts};
use clap::Subcommand;
use serde_json::{json, Value};

/// `sluice holds …`
#[derive(Debug, Subcommand)]
pub enum HoldCmd {
    /// Place a hold on one session or on every session of an identity.
    Add {
        /// The session to hold.
        #[arg(
            long,
            conflicts_with = "identity",
            required_unless_present = "identity"
        )]
        session: Option<String>,
        /// The identity whose sessions to hold.
        #[arg(long)]
        identity: Option<String>,
        /// Why (case or matter reference).
        #[arg(long)]
        reason: String,
    },
    /// List holds.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lift a hold.
    Remove {
        /// Hold id.
        id: String,
    },
}

/// `sluice retention …`
#[derive(Debug, Subcommand)]
pub enum RetentionCmd {
    /// Delete expired recordings now (held ones are kept); prints what was deleted.
    Run,
}

/// `sluice signing-keys …`
#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// The public keys that verify recordings and audit checkpoints (old ones stay listed).
    List,
    /// Switch to a new signing key (generated keys only); old signatures stay verifiable.
    Rotate,
}

/// Runs a hold command.
pub fn holds(api: &Api, cmd: HoldCmd) -> anyhow::Result<()> {
    match cmd {
        HoldCmd::Add {
            session,
            identity,
            reason,
        } => {
            let h = api.post(
                "/api/v1/holds",
                json!({ "session_id": session, "identity": identity, "reason": reason }),
            )?;
            println!(
                "hold {} placed on {}",
                h["id"].as_str().unwrap_or_default(),
                held_what(&h)
            );
        }
        HoldCmd::List { json } => {
            let list: Vec<Value> = api.get("/api/v1/holds")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no holds");
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|h| {
                        vec![
                            h["id"].as_str().unwrap_or_default().to_string(),
                            held_what(h),
                            h["reason"].as_str().unwrap_or_default().to_string(),
                            h["created_by"].as_str().unwrap_or_default().to_string(),
                            ts(h["created_us"].as_i64().unwrap_or_default()),
                        ]
                    })
                    .collect();
                table(&["ID", "HOLDS", "REASON", "BY", "SINCE"], &rows);
            }
        }
        HoldCmd::Remove { id } => {
            api.delete(&format!("/api/v1/holds/{}", enc(&id)))?;
            println!("hold {id} lifted");
        }
    }
    Ok(())
}

fn held_what(h: &Value) -> String {
    match (h["session_id"].as_str(), h["identity"].as_str()) {
        (Some(s), _) => format!("session {s}"),
        (None, Some(i)) => format!("identity {i}"),
        _ => "?".into(),
    }
}

/// Runs a retention command.
pub fn retention(api: &Api, cmd: RetentionCmd) -> anyhow::Result<()> {
    match cmd {
        RetentionCmd::Run => {
            let r = api.post("/api/v1/retention/run", json!({}))?;
            let deleted = r["deleted"].as_array().cloned().unwrap_or_default();
            println!("deleted {} expired recordings", deleted.len());
            for id in deleted {
                println!("  {}", id.as_str().unwrap_or_default());
            }
        }
    }
    Ok(())
}

/// Runs a signing-key command.
pub fn keys(api: &Api, cmd: KeyCmd) -> anyhow::Result<()> {
    match cmd {
        KeyCmd::List => {
            let keys: Vec<Value> = api.get("/api/v1/signing-keys")?;
            for k in keys {
                println!(
                    "{}  {}",
                    k["key_id"].as_str().unwrap_or_default(),
                    k["public_hex"].as_str().unwrap_or_default()
                );
            }
        }
        KeyCmd::Rotate => {
            let k = api.post("/api/v1/signing-keys/rotate", json!({}))?;
            println!(
                "now signing with key {} (public key {}); earlier signatures stay verifiable",
                k["key_id"].as_str().unwrap_or_default(),
                k["public_hex"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(())
}
