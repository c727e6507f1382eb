//! Evidence bundles: `sluice export` writes one (`.tar.zst`), `sluice verify BUNDLE` checks it
//! offline.
//!
//! Layout:
//! - `README.md`: what the bundle holds and how to check it, for auditors.
//! - `bundle.json`: when, what filters, which sessions and which audit range it holds;
//!   `bundle.sig`: the gateway's signature of it (so nothing can be dropped from the listing).
//! - `public-keys.json`: the gateway's public keys (pin one with `--public-key`).
//! - `sessions/<id>/session.json` and `sessions/<id>/events.jsonl`: each recording with its
//!   signed manifest fields.
//! - `audit/anchor.json`, `audit/events.jsonl`, `audit/checkpoints.jsonl`: a contiguous segment
//!   of the audit chain from the last checkpoint before `--since` to a checkpoint made at export
//!   time, so every event in it is covered by a signature.

use super::client::{enc, Api};
use super::verify::{check_session, pinned_key, Keys};
use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use sluice_store::audit_log::{self, ChainedEvent, Checkpoint};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

/// What `sluice export` selects.
#[derive(Debug, Default)]
pub struct Selection {
    /// Sessions started at or after (µs).
    pub since_us: Option<i64>,
    /// Sessions started before (µs).
    pub until_us: Option<i64>,
    /// Only this identity's sessions.
    pub identity: Option<String>,
    /// Only this connection's sessions.
    pub connection: Option<String>,
}

/// Parses `--since`/`--until`: an RFC 3339 time, or a duration meaning that long ago (`24h`).
pub fn parse_time(text: &str) -> anyhow::Result<i64> {
    let at = match humantime::parse_rfc3339_weak(text) {
        Ok(t) => t,
        Err(_) => {
            let ago = humantime::parse_duration(text).map_err(|_| {
                anyhow!("{text:?} is neither a time (2026-01-31T12:00:00Z) nor a duration (24h)")
            })?;
            std::time::SystemTime::now() - ago
        }
    };
    let us = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| anyhow!("{text:?} is before 1970"))?
        .as_micros();
    Ok(i64::try_from(us)?)
}

/// Writes an evidence bundle of `sel` to `out`.
pub fn export(api: &Api, sel: &Selection, out: &Path) -> anyhow::Result<()> {
    // Seal everything logged so far, so the whole segment is covered by signatures.
    let sealed: Option<Checkpoint> =
        serde_json::from_value(api.post("/api/v1/audit/checkpoints", json!({}))?)?;
    let sessions = list_sessions(api, sel)?;
    let bar = indicatif::ProgressBar::new(sessions.len() as u64 + 1);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len} ({eta})")
            .map_err(|e| anyhow!("{e}"))?
            .progress_chars("=> "),
    );
    bar.set_message("sessions");

    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let zst = zstd::Encoder::new(file, 3)?.auto_finish();
    let mut tar = tar::Builder::new(zst);
    let mut ids = Vec::new();
    for s in &sessions {
        let id = s["id"]
            .as_str()
            .ok_or_else(|| anyhow!("a session without id"))?;
        let events = api.get_text(&format!("/api/v1/sessions/{}/events", enc(id)))?;
        add(
            &mut tar,
            &format!("sessions/{id}/session.json"),
            &serde_json::to_vec_pretty(s)?,
        )?;
        add(
            &mut tar,
            &format!("sessions/{id}/events.jsonl"),
            events.as_bytes(),
        )?;
        ids.push(id.to_string());
        bar.inc(1);
    }

    bar.set_message("audit");
    let anchor: Option<Checkpoint> = match sel.since_us {
        Some(t) => {
            let list: Vec<Checkpoint> =
                api.get(&format!("/api/v1/audit/checkpoints?before_us={t}"))?;
            list.into_iter().next()
        }
        None => None,
    };
    let last_seq = sealed.as_ref().map_or(0, |c| c.last_seq);
    let mut events: Vec<ChainedEvent> = Vec::new();
    let mut after = anchor.as_ref().map_or(0, |a| a.last_seq);
    while after < last_seq {
        let page: Vec<ChainedEvent> =
            api.get(&format!("/api/v1/audit/chain?after={after}&limit=10000"))?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        events.extend(page.into_iter().filter(|e| e.seq <= last_seq));
    }
    let from = anchor.as_ref().map_or(1, |a| a.seq + 1);
    let checkpoints: Vec<Checkpoint> =
        api.get(&format!("/api/v1/audit/checkpoints?from={from}"))?;
    let sealed_seq = sealed.as_ref().map_or(0, |c| c.seq);
    let checkpoints: Vec<Checkpoint> = checkpoints
        .into_iter()
        .filter(|c| c.seq <= sealed_seq)
        .collect();
    add(
        &mut tar,
        "audit/anchor.json",
        &serde_json::to_vec_pretty(&anchor)?,
    )?;
    add(&mut tar, "audit/events.jsonl", &jsonl(&events)?)?;
    add(&mut tar, "audit/checkpoints.jsonl", &jsonl(&checkpoints)?)?;
    let keys: Value = api.get("/api/v1/signing-keys")?;
    add(
        &mut tar,
        "public-keys.json",
        &serde_json::to_vec_pretty(&keys)?,
    )?;
    let manifest = json!({
        "format": "sluice-evidence-bundle-v1",
        "created_us": now_us(),
        "selection": {
            "since_us": sel.since_us, "until_us": sel.until_us,
            "identity": sel.identity, "connection": sel.connection,
        },
        "sessions": ids,
        "audit": {
            "first_seq": events.first().map(|e| e.seq),
            "last_seq": events.last().map(|e| e.seq),
            "checkpoints": checkpoints.len(),
            "anchor": anchor.as_ref().map(|a| json!({ "seq": a.seq, "hash": a.hash() })),
            "final_checkpoint": checkpoints.last().map(|c| json!({ "seq": c.seq, "hash": c.hash() })),
        },
    });
    let listing = serde_json::to_vec_pretty(&manifest)?;
    // The gateway signs the listing: selection, sessions and audit range cannot be edited.
    let digest = sluice_store::crypto::hex(&sluice_store::crypto::sha256(&listing));
    let attestation = api.post("/api/v1/audit/attestations", json!({ "sha256": digest }))?;
    add(&mut tar, "bundle.json", &listing)?;
    add(
        &mut tar,
        "bundle.sig",
        &serde_json::to_vec_pretty(&attestation)?,
    )?;
    add(&mut tar, "README.md", README.as_bytes())?;
    tar.into_inner()?.flush()?;
    bar.inc(1);
    bar.finish_and_clear();
    println!(
        "wrote {}: {} sessions, {} audit events, {} checkpoints",
        out.display(),
        ids.len(),
        events.len(),
        checkpoints.len()
    );
    Ok(())
}

fn now_us() -> i64 {
    sluice_core::time::now_micros()
}

fn jsonl<T: serde::Serialize>(items: &[T]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    for i in items {
        serde_json::to_writer(&mut out, i)?;
        out.push(b'\n');
    }
    Ok(out)
}

fn add<W: Write>(tar: &mut tar::Builder<W>, path: &str, data: &[u8]) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(u64::try_from(now_us() / 1_000_000).unwrap_or_default());
    header.set_cksum();
    tar.append_data(&mut header, path, data)?;
    Ok(())
}

/// Every session matching `sel`, newest first, paging through the API (pages overlap by the
/// boundary microsecond, so sessions that started together are not skipped).
fn list_sessions(api: &Api, sel: &Selection) -> anyhow::Result<Vec<Value>> {
    let mut out: Vec<Value> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut until = sel.until_us;
    loop {
        let mut q = String::from("/api/v1/sessions?limit=1000");
        if let Some(t) = sel.since_us {
            q.push_str(&format!("&since_us={t}"));
        }
        if let Some(t) = until {
            q.push_str(&format!("&until_us={t}"));
        }
        if let Some(i) = &sel.identity {
            q.push_str(&format!("&identity={}", enc(i)));
        }
        if let Some(c) = &sel.connection {
            q.push_str(&format!("&connection={}", enc(c)));
        }
        let page: Vec<Value> = api.get(&q)?;
        let full = page.len() == 1000;
        let next = page
            .last()
            .and_then(|s| s["started_us"].as_i64())
            .map(|t| t + 1);
        let mut added = false;
        for s in page {
            if seen.insert(s["id"].as_str().unwrap_or_default().to_string()) {
                out.push(s);
                added = true;
            }
        }
        if !full || !added || next.is_none() || next == until {
            return Ok(out);
        }
        until = next;
    }
}

/// Reads every file of a bundle into memory: path → bytes.
fn read_bundle(path: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut archive = tar::Archive::new(zstd::Decoder::new(file)?);
    let mut files = BTreeMap::new();
    for entry in archive.entries().context("not a sluice bundle (tar.zst)")? {
        let mut entry = entry.context("the bundle is damaged")?;
        let name = entry.path()?.to_string_lossy().to_string();
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .context("the bundle is damaged")?;
        files.insert(name, data);
    }
    Ok(files)
}

/// Checks a bundle offline; errors name the first problem and where it is.
pub fn verify(path: &Path, public_key: Option<String>) -> anyhow::Result<()> {
    let files = read_bundle(path)?;
    let text = |name: &str| -> anyhow::Result<String> {
        let bytes = files
            .get(name)
            .ok_or_else(|| anyhow!("bundle FAILED: {name} is missing"))?;
        String::from_utf8(bytes.clone()).map_err(|_| anyhow!("bundle FAILED: {name} is not UTF-8"))
    };
    let manifest: Value = serde_json::from_str(&text("bundle.json")?)
        .map_err(|e| anyhow!("bundle FAILED: bundle.json: {e}"))?;
    if manifest["format"] != "sluice-evidence-bundle-v1" {
        bail!(
            "bundle FAILED: bundle.json: unknown format {}",
            manifest["format"]
        );
    }
    let (keys, source): (Keys, String) = match &public_key {
        Some(k) => (pinned_key(k)?, "the given key".into()),
        None => {
            let listed: Vec<Value> = serde_json::from_str(&text("public-keys.json")?)
                .map_err(|e| anyhow!("bundle FAILED: public-keys.json: {e}"))?;
            let keys: Keys = listed
                .iter()
                .filter_map(|k| {
                    Some((
                        k["key_id"].as_str()?.to_string(),
                        k["public_hex"].as_str()?.to_string(),
                    ))
                })
                .collect();
            let ids = keys.keys().cloned().collect::<Vec<_>>().join(", ");
            (
                keys,
                format!("the bundle's own keys ({ids}); pass --public-key to check against a key you hold"),
            )
        }
    };

    // The listing (selection, sessions, audit range) is signed by the gateway.
    let attestation: Value = serde_json::from_str(&text("bundle.sig")?)
        .map_err(|e| anyhow!("bundle FAILED: bundle.sig: {e}"))?;
    let digest = sluice_store::crypto::hex(&sluice_store::crypto::sha256(&files["bundle.json"]));
    let attested = keys
        .get(attestation["key_id"].as_str().unwrap_or_default())
        .is_some_and(|k| {
            sluice_store::signing::verify(
                k,
                sluice_store::signing::bundle_attestation(&digest).as_bytes(),
                attestation["sig"].as_str().unwrap_or_default(),
            )
        });
    if !attested {
        bail!("bundle FAILED: bundle.json is not signed by a trusted key (its selection, session list or audit range was altered)");
    }
    let ids: Vec<String> = manifest["sessions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut live = Vec::new();
    for id in &ids {
        let row = text(&format!("sessions/{id}/session.json"))?;
        let session: Value = serde_json::from_str(&row)
            .map_err(|e| anyhow!("bundle FAILED: sessions/{id}/session.json: {e}"))?;
        if session["id"] != id.as_str() {
            bail!("bundle FAILED: sessions/{id}/session.json describes another session");
        }
        let events = text(&format!("sessions/{id}/events.jsonl"))?;
        let what = check_session(id, &session, &events, &keys)
            .map_err(|why| anyhow!("bundle FAILED: session {id}: {why}"))?;
        if what.contains("still live") {
            live.push(id.clone());
        }
    }
    let listed: std::collections::BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    if let Some(extra) = files.keys().find_map(|f| {
        let id = f.strip_prefix("sessions/")?.split('/').next()?;
        (!listed.contains(id)).then_some(id)
    }) {
        bail!("bundle FAILED: session {extra} is in the bundle but not in bundle.json (inserted)");
    }

    let anchor: Option<Checkpoint> = serde_json::from_str(&text("audit/anchor.json")?)
        .map_err(|e| anyhow!("bundle FAILED: audit/anchor.json: {e}"))?;
    let events: Vec<ChainedEvent> =
        parse_lines(&text("audit/events.jsonl")?, "audit/events.jsonl")?;
    let checkpoints: Vec<Checkpoint> =
        parse_lines(&text("audit/checkpoints.jsonl")?, "audit/checkpoints.jsonl")?;
    let named = |v: &Value| (v["seq"].as_u64(), v["hash"].as_str().map(str::to_string));
    if named(&manifest["audit"]["anchor"])
        != (
            anchor.as_ref().map(|a| a.seq),
            anchor.as_ref().map(Checkpoint::hash),
        )
    {
        bail!("bundle FAILED: audit/anchor.json is not the checkpoint bundle.json names (the audit range was moved)");
    }
    let last = checkpoints.last();
    if named(&manifest["audit"]["final_checkpoint"])
        != (last.map(|c| c.seq), last.map(Checkpoint::hash))
    {
        bail!("bundle FAILED: audit/checkpoints.jsonl does not end at the checkpoint bundle.json names (checkpoints removed or replaced)");
    }
    let audit = audit_log::verify_segment(anchor.as_ref(), &events, &checkpoints, &keys)
        .map_err(|e| anyhow!("bundle FAILED: {e}"))?;
    if audit.unsealed > 0 {
        bail!(
            "bundle FAILED: {} audit events at the end are not covered by a checkpoint",
            audit.unsealed
        );
    }
    check_against_log(&manifest, &events, &listed, &live)?;
    let declared_last = manifest["audit"]["last_seq"].as_u64();
    if declared_last != events.last().map(|e| e.seq) {
        bail!("bundle FAILED: audit/events.jsonl does not end where bundle.json says (truncated or extended)");
    }
    let live_note = if live.is_empty() {
        String::new()
    } else {
        format!(
            " ({} still live at export, chain-checked but not yet signed)",
            live.len()
        )
    };
    println!(
        "bundle {}: ok: {} sessions{live_note}, {} audit events in {} signed checkpoints; checked with {source}",
        path.display(),
        ids.len(),
        audit.events,
        audit.checkpoints
    );
    Ok(())
}

/// Cross-checks the bundle's sessions against the (signed) audit segment, in one pass over it:
/// every session the selection covers whose start is in the log must be in the bundle, unless
/// retention deleted it (a margin of a second at the time bounds avoids clock-edge false
/// alarms), and a session presented as live (unsigned) must not have its end in the log.
fn check_against_log(
    manifest: &Value,
    events: &[ChainedEvent],
    listed: &std::collections::BTreeSet<&str>,
    live: &[String],
) -> anyhow::Result<()> {
    let sel = &manifest["selection"];
    let since = sel["since_us"].as_i64().map(|t| t + 1_000_000);
    let until = sel["until_us"].as_i64().map(|t| t - 1_000_000);
    let mut started = Vec::new();
    let mut deleted = std::collections::BTreeSet::new();
    for e in events {
        let Ok(v) = serde_json::from_str::<Value>(&e.json) else {
            continue;
        };
        let Some(id) = v["session_id"].as_str() else {
            continue;
        };
        match v["action"].as_str() {
            Some("session.start") => {
                let ts = v["ts_us"].as_i64().unwrap_or_default();
                // Every start in the segment was sealed before the export listed sessions.
                let in_range = since.is_none_or(|s| ts >= s) && until.is_none_or(|u| ts < u);
                let matches = sel["identity"]
                    .as_str()
                    .is_none_or(|i| v["actor"]["name"] == i)
                    && sel["connection"]
                        .as_str()
                        .is_none_or(|c| v["connection"] == c);
                if in_range && matches {
                    started.push((e.seq, id.to_string()));
                }
            }
            Some("session.end") if live.iter().any(|l| l == id) => {
                bail!("bundle FAILED: session {id} is presented as live (unsigned), but the audit log shows it ended: its manifest was removed");
            }
            Some("recording.deleted") if v["outcome"] == "success" => {
                deleted.insert(id.to_string());
            }
            _ => {}
        }
    }
    if let Some((seq, id)) = started
        .iter()
        .find(|(_, id)| !listed.contains(id.as_str()) && !deleted.contains(id))
    {
        bail!("bundle FAILED: session {id} (started in audit event {seq}) matches the selection but is not in the bundle (removed)");
    }
    Ok(())
}

fn parse_lines<T: serde::de::DeserializeOwned>(text: &str, name: &str) -> anyhow::Result<Vec<T>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| anyhow!("bundle FAILED: {name} line {}: {e}", i + 1))
        })
        .collect()
}

const README: &str = "# sluice evidence bundle

This archive was exported from a sluice gateway with `sluice export`. It holds:

- `sessions/<id>/events.jsonl`: each recorded session, one event per line. Every event carries
  `hash = SHA-256(previous hash, seq, time, kind, event JSON)`, so editing, removing, reordering
  or inserting an event breaks the chain.
- `sessions/<id>/session.json`: the session with its signed manifest (`manifest_sig`, by key
  `manifest_key`) over its identity, connection, times, event count and final hash, so a cut-off
  tail is detected.
- `audit/events.jsonl`: a contiguous segment of the gateway's audit log, hash-chained the same
  way, and `audit/checkpoints.jsonl`: Ed25519-signed checkpoints of that chain, each naming the
  previous one. `audit/anchor.json` is the checkpoint the segment starts from.
- `bundle.json`: what was selected and what the bundle holds, and `bundle.sig`: the gateway's
  signature of it, so nothing can be dropped from the listing or the audit range.
- `public-keys.json`: the gateway's public keys. Do not trust them blindly: obtain the gateway's
  public keys from its operators (`<data-dir>/signing/all.pub` holds every key it has used) and
  pass them with `--public-key`.

Check everything offline:

    sluice verify bundle.tar.zst --public-key all.pub

It prints `ok` or names the first session, event or checkpoint that does not verify.
The audit segment covers from the last checkpoint before the export's `--since` to the moment
of export, for all identities (the chain cannot be filtered without breaking it); the sessions
are those the export's filters selected.
";
