//! `sluice verify SESSION_ID | BUNDLE`: checks recordings (and, in a bundle, the audit log)
//! with the gateway's public key only.
//!
//! A recording: the hash chain (no event edited, removed, reordered or inserted) and the
//! signed manifest (count and final hash, so the tail was not cut off). The check runs here,
//! in the CLI; the gateway is trusted for nothing but the bytes it returns. A bundle is checked
//! entirely offline (`bundle.rs`).

use super::client::{enc, Api};
use anyhow::anyhow;
use serde_json::Value;
use sluice_store::{chain, crypto, signing};
use std::collections::BTreeMap;

/// Public keys trusted for a check: key id → hex.
pub type Keys = BTreeMap<String, String>;

/// One exported event: the fields the chain covers.
struct Line {
    seq: u64,
    ts_us: i64,
    kind: String,
    data: String,
    hash: String,
}

fn parse(line: &str) -> Result<Line, String> {
    let v: Value =
        serde_json::from_str(line).map_err(|e| format!("an event line is not JSON ({e})"))?;
    // The event JSON is hashed as stored: take it byte for byte from the line.
    let at = line
        .find("\"event\":")
        .ok_or("an exported line has no event")?;
    let data = line[at + 8..line.len() - 1].to_string();
    Ok(Line {
        seq: v["seq"].as_u64().ok_or("an exported line has no seq")?,
        ts_us: v["ts_us"].as_i64().unwrap_or_default(),
        kind: v["event"]["kind"].as_str().unwrap_or_default().to_string(),
        data,
        hash: v["hash"].as_str().unwrap_or_default().to_string(),
    })
}

/// The key(s) given with `--public-key`: a hex key, or a file holding one per line (such as
/// `<data-dir>/signing/ed25519.pub`, or `all.pub` with every key the gateway has used): id → hex.
pub fn pinned_key(public_key: &str) -> anyhow::Result<Keys> {
    let text = std::fs::read_to_string(public_key).unwrap_or_else(|_| public_key.to_string());
    let mut keys = Keys::new();
    for hex in text.split_whitespace() {
        let raw = crypto::unhex(hex)
            .filter(|k| k.len() == 32)
            .ok_or_else(|| anyhow!("--public-key: {hex:?} is not a hex Ed25519 public key"))?;
        keys.insert(signing::key_id(&raw), hex.to_string());
    }
    if keys.is_empty() {
        anyhow::bail!("--public-key is neither a hex key nor a file holding one");
    }
    Ok(keys)
}

/// Checks one recording: `session` is its row (as the API returns it), `events` its exported
/// lines. `Ok` says what was established; `Err` names the first problem.
pub fn check_session(
    id: &str,
    session: &Value,
    events: &str,
    keys: &Keys,
) -> Result<String, String> {
    let lines = events
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse)
        .collect::<Result<Vec<_>, _>>()?;
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
    .map_err(|e| format!("{e} (edited, removed, reordered or inserted)"))?;
    let Some(ended_us) = session["ended_us"].as_i64() else {
        return Ok(format!(
            "chain intact over {} events; still live, not signed yet",
            lines.len()
        ));
    };
    let count = session["event_count"].as_u64().unwrap_or_default();
    let final_hash = session["final_hash"].as_str().unwrap_or_default();
    let (Some(sig), Some(key_id)) = (
        session["manifest_sig"].as_str(),
        session["manifest_key"].as_str(),
    ) else {
        return Err("the ended session has no signed manifest".into());
    };
    let public = keys.get(key_id).ok_or_else(|| {
        format!(
            "signed by key {key_id}, which is not a trusted key ({})",
            keys.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    let manifest = signing::manifest(
        id,
        session["identity"].as_str().unwrap_or_default(),
        session["connection"].as_str().unwrap_or_default(),
        session["started_us"].as_i64().unwrap_or_default(),
        ended_us,
        count,
        final_hash,
    );
    if !signing::verify(public, manifest.as_bytes(), sig) {
        return Err(format!("the manifest signature does not verify with key {key_id} (the manifest was altered or signed by another key)"));
    }
    if lines.len() as u64 != count {
        return Err(format!(
            "the recording has {} events but its signed manifest says {count} (events after #{} are missing)",
            lines.len(),
            lines.len().saturating_sub(1)
        ));
    }
    if lines.last().map(|l| l.hash.as_str()) != Some(final_hash) {
        return Err("the last event's hash is not the signed final hash".into());
    }
    Ok(format!(
        "{count} events, chain intact, manifest signed by key {key_id}"
    ))
}

/// Verifies session `id` through the API. With `public_key` the manifest must be signed by that
/// key; without it, by one the gateway publishes.
pub fn run(api: &Api, id: &str, public_key: Option<String>) -> anyhow::Result<()> {
    let session: Value = api.get(&format!("/api/v1/sessions/{}", enc(id)))?;
    let text = api.get_text(&format!("/api/v1/sessions/{}/events", enc(id)))?;
    let (keys, source) = match &public_key {
        Some(k) => (pinned_key(k)?, "the given key"),
        None => (
            published_keys(api)?,
            "a key the gateway publishes; pass --public-key to check against a key you hold",
        ),
    };
    match check_session(id, &session, &text, &keys) {
        Ok(what) if what.contains("still live") => println!("session {id}: {what}"),
        Ok(what) => println!("session {id}: ok: {what} ({source})"),
        Err(why) => anyhow::bail!("session {id}: FAILED: {why}"),
    }
    Ok(())
}

/// The public keys the gateway publishes.
pub fn published_keys(api: &Api) -> anyhow::Result<Keys> {
    let keys: Vec<Value> = api.get("/api/v1/signing-keys")?;
    Ok(keys
        .iter()
        .filter_map(|k| {
            Some((
                k["key_id"].as_str()?.to_string(),
                k["public_hex"].as_str()?.to_string(),
            ))
        })
        .collect())
}
