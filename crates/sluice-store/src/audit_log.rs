//! The audit log: a hash chain of events with signed checkpoints, and the spool the sinks
//! deliver from.
//!
//! The writer thread gives every audit event the next sequence number and
//! `hash = SHA-256(previous hash ‖ seq ‖ event JSON)`. At least every minute (and on demand) it
//! signs a [`Checkpoint`]: the last sequence number and hash, and the hash of the previous
//! checkpoint. Editing, removing, reordering or inserting an event breaks the chain from that
//! event on; cutting off the tail is caught by the last checkpoint, which names the last event.

use crate::crypto::{hex, sha256};
use crate::signing;
use crate::StoreError;
use ring::digest;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Hash that precedes the first audit event.
pub fn genesis() -> [u8; 32] {
    sha256(b"sluice-audit-v1")
}

/// Hash of audit event `seq` given the previous hash.
pub fn link(prev: &[u8; 32], seq: u64, json: &str) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(prev);
    ctx.update(&seq.to_be_bytes());
    ctx.update(json.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// One chained audit event as stored.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct ChainedEvent {
    /// Position in the log, from 1.
    pub seq: u64,
    /// Chain hash, hex.
    pub hash: String,
    /// The event JSON exactly as hashed.
    pub json: String,
}

/// A signed statement of how far the audit chain reached at a moment.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Checkpoint {
    /// Checkpoint number, from 1.
    pub seq: u64,
    /// When it was made (µs since the epoch).
    pub ts_us: i64,
    /// Last audit event covered.
    pub last_seq: u64,
    /// Its chain hash, hex.
    pub last_hash: String,
    /// [`Checkpoint::hash`] of the previous checkpoint (or of nothing, for the first).
    pub prev_hash: String,
    /// Signing key id.
    pub key_id: String,
    /// Ed25519 signature of [`Checkpoint::text`], hex.
    pub sig: String,
}

/// The `prev_hash` of the first checkpoint.
pub fn checkpoint_genesis() -> String {
    hex(&sha256(b"sluice-audit-checkpoint-v1"))
}

impl Checkpoint {
    /// The signed text.
    pub fn text(&self) -> String {
        format!(
            "sluice-audit-checkpoint-v1\ncheckpoint {}\nts_us {}\nlast_seq {}\nlast_hash {}\nprev {}\n",
            self.seq, self.ts_us, self.last_seq, self.last_hash, self.prev_hash
        )
    }

    /// Hash the next checkpoint names: over the text and the signature.
    pub fn hash(&self) -> String {
        let mut data = self.text().into_bytes();
        data.extend_from_slice(self.sig.as_bytes());
        hex(&sha256(&data))
    }
}

/// The last event's sequence number and hash (0 and [`genesis`] for an empty log).
pub fn head(db: &Connection) -> Result<(u64, [u8; 32]), StoreError> {
    let row: Option<(i64, String)> = db
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match row {
        None => Ok((0, genesis())),
        Some((seq, h)) => {
            let bytes = crate::crypto::unhex(&h)
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| StoreError::Corrupt(format!("audit event {seq} hash")))?;
            Ok((seq as u64, bytes))
        }
    }
}

/// Chains events stored before the log was chained (upgrades), in the order they happened.
pub fn chain_unchained(db: &mut Connection) -> Result<usize, StoreError> {
    let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let (mut seq, mut prev) = head(&tx)?;
    let rows: Vec<(String, i64, String, String)> = {
        let mut stmt = tx.prepare(
            "SELECT id, ts_us, action, event_json FROM audit_legacy ORDER BY ts_us, rowid",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (id, ts_us, action, json) in &rows {
        seq += 1;
        prev = link(&prev, seq, json);
        tx.execute(
            "INSERT INTO audit (seq, id, ts_us, action, event_json, hash) VALUES (?1,?2,?3,?4,?5,?6)",
            params![seq as i64, id, ts_us, action, json, hex(&prev)],
        )?;
    }
    tx.execute("DELETE FROM audit_legacy", [])?;
    tx.commit()?;
    Ok(rows.len())
}

/// Up to `limit` events after `after`, in order.
pub fn after(db: &Connection, after: u64, limit: usize) -> Result<Vec<ChainedEvent>, StoreError> {
    let mut stmt = db.prepare_cached(
        "SELECT seq, hash, event_json FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after as i64, limit as i64], |r| {
        Ok(ChainedEvent {
            seq: r.get::<_, i64>(0)? as u64,
            hash: r.get(1)?,
            json: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Checkpoints with number ≥ `from`, in order.
pub fn checkpoints(db: &Connection, from: u64) -> Result<Vec<Checkpoint>, StoreError> {
    let mut stmt = db.prepare_cached(
        "SELECT seq, ts_us, last_seq, last_hash, prev_hash, key_id, sig FROM audit_checkpoints
         WHERE seq >= ?1 ORDER BY seq",
    )?;
    let rows = stmt.query_map([from as i64], checkpoint_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The latest checkpoint.
pub fn last_checkpoint(db: &Connection) -> Result<Option<Checkpoint>, StoreError> {
    Ok(db
        .query_row(
            "SELECT seq, ts_us, last_seq, last_hash, prev_hash, key_id, sig FROM audit_checkpoints
             ORDER BY seq DESC LIMIT 1",
            [],
            checkpoint_row,
        )
        .optional()?)
}

/// The latest checkpoint covering only events before `ts_us` (where an export starts).
pub fn checkpoint_before(db: &Connection, ts_us: i64) -> Result<Option<Checkpoint>, StoreError> {
    Ok(db
        .query_row(
            "SELECT c.seq, c.ts_us, c.last_seq, c.last_hash, c.prev_hash, c.key_id, c.sig
             FROM audit_checkpoints c JOIN audit a ON a.seq = c.last_seq
             WHERE a.ts_us < ?1 ORDER BY c.seq DESC LIMIT 1",
            [ts_us],
            checkpoint_row,
        )
        .optional()?)
}

fn checkpoint_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Checkpoint> {
    Ok(Checkpoint {
        seq: r.get::<_, i64>(0)? as u64,
        ts_us: r.get(1)?,
        last_seq: r.get::<_, i64>(2)? as u64,
        last_hash: r.get(3)?,
        prev_hash: r.get(4)?,
        key_id: r.get(5)?,
        sig: r.get(6)?,
    })
}

/// Writes a checkpoint of everything chained so far, if anything was chained since the last
/// one; returns it.
pub fn write_checkpoint(
    db: &Connection,
    key: &signing::SigningKey,
    force: bool,
) -> Result<Option<Checkpoint>, StoreError> {
    let (last_seq, last_hash) = head(db)?;
    let previous = last_checkpoint(db)?;
    if !force
        && previous
            .as_ref()
            .map_or(last_seq == 0, |c| c.last_seq == last_seq)
    {
        return Ok(None);
    }
    let mut c = Checkpoint {
        seq: previous.as_ref().map_or(1, |c| c.seq + 1),
        ts_us: sluice_core::time::now_micros(),
        last_seq,
        last_hash: hex(&last_hash),
        prev_hash: previous.map_or_else(checkpoint_genesis, |c| c.hash()),
        key_id: key.key_id.clone(),
        sig: String::new(),
    };
    c.sig = key.sign(c.text().as_bytes());
    db.execute(
        "INSERT INTO audit_checkpoints (seq, ts_us, last_seq, last_hash, prev_hash, key_id, sig)
         VALUES (?1,?2,?3,?4,?5,?6,?7)",
        params![
            c.seq as i64,
            c.ts_us,
            c.last_seq as i64,
            c.last_hash,
            c.prev_hash,
            c.key_id,
            c.sig
        ],
    )?;
    Ok(Some(c))
}

/// A sink's cursor: the last sequence number it delivered (0: none).
pub fn cursor(db: &Connection, sink: &str) -> Result<u64, StoreError> {
    Ok(db
        .query_row(
            "SELECT seq FROM audit_cursors WHERE sink = ?1",
            [sink],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        .map_or(0, |s| s as u64))
}

/// Moves a sink's cursor to `seq`.
pub fn set_cursor(db: &Connection, sink: &str, seq: u64) -> Result<(), StoreError> {
    db.prepare_cached(
        "INSERT INTO audit_cursors (sink, seq) VALUES (?1, ?2)
         ON CONFLICT(sink) DO UPDATE SET seq = excluded.seq",
    )?
    .execute(params![sink, seq as i64])?;
    Ok(())
}

/// Where an audit-log check failed; names the first bad event or checkpoint.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuditChainError {
    /// An event is missing before `seq` (removed).
    #[error(
        "audit event {expected} is missing (the next one present is {found}): events were removed"
    )]
    Missing {
        /// Sequence number expected.
        expected: u64,
        /// Sequence number found.
        found: u64,
    },
    /// Event `found` came where `expected` should be (reordered or duplicated).
    #[error("audit event {found} appears where event {expected} belongs: events were reordered or duplicated")]
    OutOfOrder {
        /// Sequence number expected.
        expected: u64,
        /// Sequence number found.
        found: u64,
    },
    /// The event at `seq` does not match its hash (modified, or inserted before it).
    #[error("audit event {0} does not match the chain: it was modified, or an event was inserted before it")]
    Hash(u64),
    /// A checkpoint's signature or key is wrong.
    #[error("audit checkpoint {0} is not signed by a trusted key")]
    Signature(u64),
    /// A checkpoint does not name its predecessor.
    #[error(
        "audit checkpoint {0} does not follow checkpoint {1}: checkpoints were removed or replaced"
    )]
    CheckpointChain(u64, u64),
    /// A checkpoint disagrees with the events it covers.
    #[error("audit checkpoint {0} does not match event {1}: the log was altered")]
    CheckpointMismatch(u64, u64),
    /// Events the last checkpoint covers are missing at the end.
    #[error("audit log ends at event {last} but checkpoint {checkpoint} covers up to {covered}: the tail was cut off")]
    Truncated {
        /// Last event present.
        last: u64,
        /// The checkpoint.
        checkpoint: u64,
        /// Its last event.
        covered: u64,
    },
    /// No checkpoint covers the events.
    #[error("no signed checkpoint covers the audit events")]
    Unsealed,
}

/// What an audit-log segment check established.
#[derive(Debug, PartialEq, Eq)]
pub struct AuditVerified {
    /// Events checked.
    pub events: u64,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// Events after the last checkpoint (chained, but not yet signed).
    pub unsealed: u64,
}

/// Checks a contiguous segment of the audit log offline: `anchor` is the checkpoint just before
/// the first event (`None` when the segment starts at event 1), `checkpoints` follow it in
/// order, and `keys` maps key id → public key hex.
pub fn verify_segment(
    anchor: Option<&Checkpoint>,
    events: &[ChainedEvent],
    checkpoints: &[Checkpoint],
    keys: &BTreeMap<String, String>,
) -> Result<AuditVerified, AuditChainError> {
    let signed = |c: &Checkpoint| {
        keys.get(&c.key_id)
            .is_some_and(|k| signing::verify(k, c.text().as_bytes(), &c.sig))
    };
    let (mut prev, mut expected) = match anchor {
        Some(a) => {
            if !signed(a) {
                return Err(AuditChainError::Signature(a.seq));
            }
            let h = crate::crypto::unhex(&a.last_hash)
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or(AuditChainError::Signature(a.seq))?;
            (h, a.last_seq + 1)
        }
        None => (genesis(), 1),
    };
    let mut hashes: BTreeMap<u64, String> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        if e.seq > expected && events[i..].iter().any(|later| later.seq == expected) {
            return Err(AuditChainError::OutOfOrder {
                expected,
                found: e.seq,
            });
        }
        if e.seq > expected {
            return Err(AuditChainError::Missing {
                expected,
                found: e.seq,
            });
        }
        if e.seq < expected {
            return Err(AuditChainError::OutOfOrder {
                expected,
                found: e.seq,
            });
        }
        let h = link(&prev, e.seq, &e.json);
        if hex(&h) != e.hash {
            return Err(AuditChainError::Hash(e.seq));
        }
        hashes.insert(e.seq, e.hash.clone());
        prev = h;
        expected += 1;
    }
    let last = expected - 1;
    let mut previous = anchor.cloned();
    for c in checkpoints {
        if !signed(c) {
            return Err(AuditChainError::Signature(c.seq));
        }
        if let Some(p) = &previous {
            if c.seq != p.seq + 1 || c.prev_hash != p.hash() {
                return Err(AuditChainError::CheckpointChain(c.seq, p.seq));
            }
        } else if c.seq == 1 && c.prev_hash != checkpoint_genesis() {
            return Err(AuditChainError::CheckpointChain(c.seq, 0));
        }
        if c.last_seq > last {
            return Err(AuditChainError::Truncated {
                last,
                checkpoint: c.seq,
                covered: c.last_seq,
            });
        }
        match hashes.get(&c.last_seq) {
            Some(h) if *h == c.last_hash => {}
            Some(_) => return Err(AuditChainError::CheckpointMismatch(c.seq, c.last_seq)),
            // A checkpoint from before the segment (the anchor's successors may cover
            // nothing new).
            None if Some(c.last_seq) == anchor.map(|a| a.last_seq) => {}
            None => return Err(AuditChainError::CheckpointMismatch(c.seq, c.last_seq)),
        }
        previous = Some(c.clone());
    }
    let sealed = previous.as_ref().map_or(0, |c| c.last_seq);
    if !events.is_empty() && previous.is_none() {
        return Err(AuditChainError::Unsealed);
    }
    Ok(AuditVerified {
        events: events.len() as u64,
        checkpoints: checkpoints.len() as u64,
        unsealed: last.saturating_sub(sealed),
    })
}

/// Up to `limit` events after `after` for delivery: (seq, id, ts_us, json).
pub fn spooled_after(
    db: &Connection,
    after: u64,
    limit: usize,
) -> Result<Vec<(u64, String, i64, String)>, StoreError> {
    let mut stmt = db.prepare_cached(
        "SELECT seq, id, ts_us, event_json FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after as i64, limit as i64], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Wakes the sink threads when new audit events are committed, and at shutdown.
#[derive(Debug, Default)]
pub struct SpoolSignal {
    /// Last committed sequence number, and whether the gateway is stopping.
    state: Mutex<(u64, bool)>,
    changed: Condvar,
}

impl SpoolSignal {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, bool)> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Notes that events up to `seq` are committed.
    pub fn committed(&self, seq: u64) {
        let mut s = self.lock();
        if seq > s.0 {
            s.0 = seq;
            self.changed.notify_all();
        }
    }

    /// The last committed sequence number known.
    pub fn head(&self) -> u64 {
        self.lock().0
    }

    /// Tells the sinks the gateway is stopping.
    pub fn close(&self) {
        self.lock().1 = true;
        self.changed.notify_all();
    }

    /// Whether [`SpoolSignal::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().1
    }

    /// Waits until events after `seen` are committed, the spool is closed, or `timeout`
    /// passes.
    pub fn wait_beyond(&self, seen: u64, timeout: Duration) {
        let guard = self.lock();
        let _ = self
            .changed
            .wait_timeout_while(guard, timeout, |s| s.0 <= seen && !s.1);
    }
}

/// Delivery state of the audit sinks, for metrics and for `audit.fail_closed`.
#[derive(Debug, Default)]
pub struct SpoolHealth {
    sinks: Mutex<BTreeMap<String, SinkStats>>,
    any_full: std::sync::atomic::AtomicBool,
}

/// One sink's delivery figures.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SinkStats {
    /// Events waiting for delivery.
    pub backlog: u64,
    /// Events delivered since start.
    pub delivered: u64,
    /// Failed delivery attempts since start.
    pub failures: u64,
    /// Whether the backlog is past the spool limit.
    pub full: bool,
    /// Last delivery error, if the last attempt failed.
    pub last_error: Option<String>,
}

impl SpoolHealth {
    /// Updates sink `name`'s figures.
    pub fn update(&self, name: &str, f: impl FnOnce(&mut SinkStats)) {
        let mut sinks = match self.sinks.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(sinks.entry(name.to_string()).or_default());
        let full = sinks.values().any(|s| s.full);
        self.any_full
            .store(full, std::sync::atomic::Ordering::Relaxed);
    }

    /// Every sink's figures.
    pub fn snapshot(&self) -> BTreeMap<String, SinkStats> {
        match self.sinks.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Whether any sink's backlog is past the spool limit.
    pub fn any_full(&self) -> bool {
        self.any_full.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
