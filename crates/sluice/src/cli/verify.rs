//! `sluice verify SESSION_ID`: checks a recording with the gateway's public key only: the hash
//! chain (no event edited, removed, reordered or inserted) and the signed manifest (the count
//! and final hash, so the tail was not cut off, signed by a published key). The check runs
//! here, in the CLI, on the exported recording; the gateway is trusted for nothing but the
//! bytes it returns.

use super::client::{enc, Api};
use anyhow::{anyhow, bail};
use serde_json::Value;
use sluice_store::{chain, crypto, signing};

/// One exported event: the fields the chain covers.
struct Line {
    seq: u64,
    ts_us: i64,
    kind: String,
    data: String,
    hash: String,
}

fn parse(line: &str) -> anyhow::Result<Line> {
    let v: Value = serde_json::from_str(line)?;
    // The event JSON is hashed as stored: take it byte for byte from the line.
    let at = line
        .find("\"event\":")
        .ok_or_else(|| anyhow!("an exported line has no event"))?;
    let data = line[at + 8..line.len() - 1].to_string();
    Ok(Line {
        seq: v["seq"]
            .as_u64()
            .ok_or_else(|| anyhow!("an exported line has no seq"))?,
        ts_us: v["ts_us"].as_i64().unwrap_or_default(),
        kind: v["event"]["kind"].as_str().unwrap_or_default().to_string(),
        data,
        hash: v["hash"].as_str().unwrap_or_default().to_string(),
    })
}

/// Verifies session `id`; errors name the first problem. With `public_key` (hex, or a file
/// holding it, e.g. `<data-dir>/signing/ed25519.pub`) the manifest must be signed by that key;
/// without it, by one the gateway publishes.
pub fn run(api: &Api, id: &str, public_key: Option<String>) -> anyhow::Result<()> {
    let session: Value = api.get(&format!("/api/v1/sessions/{}", enc(id)))?;
    let text = api.get_text(&format!("/api/v1/sessions/{}/events", enc(id)))?;
    let pinned = match public_key {
        Some(k) => {
            let hex = match std::fs::read_to_string(&k) {
                Ok(text) => text.trim().to_string(),
                Err(_) => k.trim().to_string(),
            };
            let raw = crypto::unhex(&hex).ok_or_else(|| {
                anyhow!("--public-key is neither a hex key nor a file holding one")
            })?;
            Some((signing::key_id(&raw), hex))
        }
        None => None,
    };
    let lines = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse)
        .collect::<anyhow::Result<Vec<_>>>()?;
    chain::verify(
        id,
        lines.iter().map(|l| {
            (
                l.seq,
                l.ts_us,
                l.kind.as_str(),
                l.data.as_str(),
                l.hash.as_str(),
            )
        }),
    )
    .map_err(|e| anyhow!("session {id}: FAILED: {e} (edited, removed, reordered or inserted)"))?;
    let Some(ended_us) = session["ended_us"].as_i64() else {
        println!(
            "session {id}: chain intact over {} events; still live, not signed yet",
            lines.len()
        );
        return Ok(());
    };
    let count = session["event_count"].as_u64().unwrap_or_default();
    let final_hash = session["final_hash"].as_str().unwrap_or_default();
    let (Some(sig), Some(key_id)) = (
        session["manifest_sig"].as_str(),
        session["manifest_key"].as_str(),
    ) else {
        bail!("session {id}: FAILED: the ended session has no signed manifest");
    };
    let public = match &pinned {
        Some((pinned_id, hex)) if pinned_id == key_id => hex.clone(),
        Some((pinned_id, _)) => {
            bail!("session {id}: FAILED: signed by key {key_id}, not by the given key {pinned_id}")
        }
        None => {
            let keys: Vec<Value> = api.get("/api/v1/signing-keys")?;
            keys.iter()
                .find(|k| k["key_id"] == key_id)
                .and_then(|k| k["public_hex"].as_str())
                .map(str::to_string)
                .ok_or_else(|| anyhow!("session {id}: FAILED: signed by unknown key {key_id}"))?
        }
    };
    let manifest = signing::manifest(
        id,
        session["identity"].as_str().unwrap_or_default(),
        session["connection"].as_str().unwrap_or_default(),
        session["started_us"].as_i64().unwrap_or_default(),
        ended_us,
        count,
        final_hash,
    );
    if !signing::verify(&public, manifest.as_bytes(), sig) {
        bail!("session {id}: FAILED: the manifest signature does not verify with key {key_id} (the manifest was altered or signed by another key)");
    }
    if lines.len() as u64 != count {
        bail!(
            "session {id}: FAILED: the recording has {} events but its signed manifest says {count} (events after #{} are missing)",
            lines.len(),
            lines.len().saturating_sub(1)
        );
    }
    if lines.last().map(|l| l.hash.as_str()) != Some(final_hash) {
        bail!("session {id}: FAILED: the last event's hash is not the signed final hash");
    }
    let source = if pinned.is_some() {
        "the given key"
    } else {
        "a key the gateway publishes; pass --public-key to check against a key you hold"
    };
    println!(
        "session {id}: ok: {count} events, chain intact, manifest signed by key {key_id} ({source})"
    );
    Ok(())
}
