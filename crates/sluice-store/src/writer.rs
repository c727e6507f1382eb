//! The recording writer: one thread owns a SQLite connection and commits whatever arrived in
//! one transaction (group commit). In `buffered` mode a batch is committed at most
//! `max_delay` after its first operation arrived, so a crash loses at most that window; a
//! caller that needs durability before going on (strict mode) sends with an acknowledgement,
//! which commits the batch at once, together with everything queued by other sessions.
//!
//! The writer also keeps the audit log's hash chain: it numbers and chains each audit event
//! as it commits it, signs a checkpoint of the chain at least every `checkpoint_every`, and
//! wakes the audit sinks after each commit.

use crate::audit_log::{self, SpoolSignal};
use crate::crypto::hex;
use crate::recordings::SessionRow;
use crate::signing::{self, KeyRing, SigningKey};
use crate::{schema, StoreError};
use rusqlite::{params, Connection, OptionalExtension};
use sluice_core::statement_audit::StatementAudit;
use sluice_core::AuditEvent;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How durable a recorded statement is before it is forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DurabilityMode {
    /// Committed in batches within `max_delay` (default 100 ms).
    #[default]
    Buffered,
    /// Committed before the statement goes to the target.
    Strict,
    /// Nothing between the session's start and end is recorded or audited per statement:
    /// the baseline `bench/recording.sh` measures recording against. Not for production.
    Off,
}

/// One write for the writer thread.
#[derive(Debug)]
pub enum WriteOp {
    /// A session began.
    SessionStart(Box<SessionRow>),
    /// One recording event (already chained).
    Event(NewEvent),
    /// A session ended.
    SessionEnd {
        /// Session id.
        id: String,
        /// End time.
        ended_us: i64,
        /// End reason.
        reason: String,
        /// Number of events recorded.
        event_count: u64,
        /// Hash of the last event.
        final_hash: String,
    },
    /// An audit event, chained into the audit log.
    Audit(Box<AuditEvent>),
    /// An allowed statement's audit event, chained into the audit log like [`WriteOp::Audit`].
    StatementAudit(StatementAudit),
    /// Sign a checkpoint of the audit chain now (if events were chained since the last one).
    Checkpoint,
}

/// How the writer runs.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    /// Longest a buffered write waits before its batch is committed.
    pub max_delay: Duration,
    /// The key that signs session manifests and audit checkpoints.
    pub keys: Option<Arc<KeyRing>>,
    /// Longest time between audit checkpoints while events arrive.
    pub checkpoint_every: Duration,
    /// Woken after each commit that chained audit events.
    pub spool: Option<Arc<SpoolSignal>>,
}

impl Default for WriterSettings {
    fn default() -> Self {
        WriterSettings {
            max_delay: Duration::from_millis(100),
            keys: None,
            checkpoint_every: Duration::from_secs(60),
            spool: None,
        }
    }
}

struct Msg {
    op: Option<WriteOp>,
    ack: Option<oneshot::Sender<()>>,
}

/// A recording event on its way to the store; cheap to build on the data path (the session id
/// is shared, the kind static, the hash binary).
#[derive(Debug)]
pub struct NewEvent {
    /// Session id.
    pub session_id: Arc<str>,
    /// Position in the session, from 0.
    pub seq: u64,
    /// Time, µs since epoch.
    pub ts_us: i64,
    /// Event kind.
    pub kind: &'static str,
    /// The event, JSON.
    pub data_json: String,
    /// Chain hash.
    pub hash: [u8; 32],
}

/// Largest number of operations committed in one transaction.
const MAX_BATCH: usize = 4096;

/// Sending side of the writer; cheap to clone. Sending never blocks, and a plain `send` does
/// not wake the writer while it waits out its batching window (only the first operation of a
/// batch and acknowledged operations do), so recording costs no context switch per event.
#[derive(Clone)]
pub struct RecordWriter {
    tx: mpsc::Sender<Msg>,
    thread: std::thread::Thread,
}

impl RecordWriter {
    /// Starts the writer thread on the database at `db_path`.
    pub fn start(
        db_path: &Path,
        settings: WriterSettings,
    ) -> Result<(RecordWriter, std::thread::JoinHandle<()>), StoreError> {
        let mut conn = schema::open_existing(db_path)?;
        let chained = audit_log::chain_unchained(&mut conn)?;
        if chained > 0 {
            tracing::info!(
                events = chained,
                "chained audit events stored before the chain existed"
            );
        }
        let head = audit_log::head(&conn)?;
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("sluice-recorder".into())
            .spawn(move || {
                Writer {
                    conn,
                    settings,
                    head,
                }
                .run(rx)
            })?;
        let thread = handle.thread().clone();
        Ok((RecordWriter { tx, thread }, handle))
    }

    /// Queues `op`; it is committed within the batching window.
    pub fn send(&self, op: WriteOp) {
        if self
            .tx
            .send(Msg {
                op: Some(op),
                ack: None,
            })
            .is_err()
        {
            tracing::error!("recording writer has stopped; event dropped");
        }
    }

    /// Queues `op` for immediate commit; the receiver completes once it is durable.
    pub fn send_acked(&self, op: WriteOp) -> Result<oneshot::Receiver<()>, StoreError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Msg {
                op: Some(op),
                ack: Some(ack),
            })
            .map_err(|_| StoreError::Task)?;
        self.thread.unpark();
        Ok(done)
    }

    /// Waits until everything queued so far is committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Msg {
                op: None,
                ack: Some(ack),
            })
            .map_err(|_| StoreError::Task)?;
        self.thread.unpark();
        done.await.map_err(|_| StoreError::Task)
    }
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    settings: WriterSettings,
    /// The audit chain's last sequence number and hash, as committed.
    head: (u64, [u8; 32]),
}

/// Attempts at committing one batch before it is given up (with a loud error).
const COMMIT_ATTEMPTS: u32 = 50;
/// Pause between attempts (the disk may be full or the database locked for a moment).
const RETRY_PAUSE: Duration = Duration::from_millis(100);

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        let mut batch: Vec<Msg> = Vec::with_capacity(256);
        let mut next_checkpoint = Instant::now() + self.settings.checkpoint_every;
        loop {
            // Sleep until there is work (the first operation of a batch wakes us) or a
            // checkpoint is due.
            let wait = next_checkpoint.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(first) => batch.push(first),
                Err(RecvTimeoutError::Timeout) => {
                    self.checkpoint();
                    next_checkpoint = Instant::now() + self.settings.checkpoint_every;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.checkpoint();
                    return;
                }
            }
            let deadline = Instant::now() + self.settings.max_delay;
            let mut urgent = batch[0].ack.is_some();
            let mut closed = false;
            loop {
                loop {
                    match rx.try_recv() {
                        Ok(m) => {
                            urgent |= m.ack.is_some();
                            batch.push(m);
                            if batch.len() >= MAX_BATCH {
                                break;
                            }
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                }
                let now = Instant::now();
                if urgent || closed || batch.len() >= MAX_BATCH || now >= deadline {
                    break;
                }
                // Senders of acknowledged operations unpark us; plain sends do not.
                std::thread::park_timeout(deadline - now);
            }
            self.commit(&mut batch);
            if Instant::now() >= next_checkpoint {
                self.checkpoint();
                next_checkpoint = Instant::now() + self.settings.checkpoint_every;
            }
            if closed {
                self.checkpoint();
                return;
            }
        }
    }

    /// Signs a checkpoint when events were chained since the last one.
    fn checkpoint(&mut self) {
        let Some(keys) = &self.settings.keys else {
            return;
        };
        let key = keys.current();
        if let Err(e) = audit_log::write_checkpoint(&self.conn, &key, false) {
            tracing::error!(error = %e, "audit checkpoint failed");
        }
    }

    fn commit(&mut self, batch: &mut Vec<Msg>) {
        if batch.is_empty() {
            return;
        }
        let key = self.settings.keys.as_ref().map(|k| k.current());
        let mut attempt = 1;
        let head = loop {
            match write_batch(&mut self.conn, batch, self.head, key.as_deref()) {
                Ok(head) => break head,
                Err(e) if attempt < COMMIT_ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "recording batch failed to commit; retrying");
                    attempt += 1;
                    std::thread::sleep(RETRY_PAUSE);
                }
                Err(e) => {
                    tracing::error!(error = %e, ops = batch.len(), "recording batch lost after retries");
                    batch.clear();
                    return;
                }
            }
        };
        if head.0 != self.head.0 {
            self.head = head;
            if let Some(spool) = &self.settings.spool {
                spool.committed(head.0);
            }
        }
        for msg in batch.drain(..) {
            if let Some(ack) = msg.ack {
                let _ = ack.send(());
            }
        }
    }
}

/// Applies the whole batch in one transaction (rolled back on any error). A session's events
/// in the batch become one chunk row, so the cost per event is a line, not a B-tree insert.
/// Returns the audit chain's new head.
fn write_batch(
    conn: &mut Connection,
    batch: &[Msg],
    mut head: (u64, [u8; 32]),
    signer: Option<&SigningKey>,
) -> Result<(u64, [u8; 32]), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut chunks: Vec<Chunk<'_>> = Vec::new();
    let mut checkpoint = false;
    let mut json = Vec::new();
    for msg in batch {
        match &msg.op {
            Some(WriteOp::Event(e)) => add_to_chunk(&mut chunks, e),
            Some(WriteOp::Audit(a)) => {
                let text = serde_json::to_string(a)?;
                chain_audit(&tx, &a.id, a.ts_us, &a.action, &text, &mut head)?;
            }
            Some(WriteOp::StatementAudit(s)) => {
                json.clear();
                s.write_json(&mut json);
                let text =
                    std::str::from_utf8(&json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                chain_audit(&tx, &s.id, s.ts_us, s.action, text, &mut head)?;
            }
            Some(WriteOp::Checkpoint) => checkpoint = true,
            Some(op) => apply(&tx, op, signer)?,
            None => {}
        }
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO event_chunks (session_id, first_seq, last_seq, body) VALUES (?1,?2,?3,?4)",
    )?;
    for c in &chunks {
        insert.execute(params![
            c.session_id,
            c.first_seq as i64,
            c.last_seq as i64,
            c.body
        ])?;
    }
    drop(insert);
    if let (true, Some(key)) = (checkpoint, signer) {
        audit_log::write_checkpoint(&tx, key, false)?;
    }
    tx.commit()?;
    Ok(head)
}

/// Stores an audit event (its id, time, action and JSON) as the next link of the chain.
fn chain_audit(
    tx: &Connection,
    id: &str,
    ts_us: i64,
    action: &str,
    json: &str,
    head: &mut (u64, [u8; 32]),
) -> Result<(), StoreError> {
    let seq = head.0 + 1;
    let hash = audit_log::link(&head.1, seq, json);
    tx.prepare_cached(
        "INSERT INTO audit (seq, id, ts_us, action, event_json, hash) VALUES (?1,?2,?3,?4,?5,?6)",
    )?
    .execute(params![seq as i64, id, ts_us, action, json, hex(&hash)])?;
    *head = (seq, hash);
    Ok(())
}

/// Consecutive events of one session, about to be stored as one row.
struct Chunk<'a> {
    session_id: &'a str,
    first_seq: u64,
    last_seq: u64,
    body: String,
}

fn add_to_chunk<'a>(chunks: &mut Vec<Chunk<'a>>, e: &'a NewEvent) {
    let chunk = match chunks
        .iter_mut()
        .rev()
        .find(|c| c.session_id == &*e.session_id && c.last_seq + 1 == e.seq)
    {
        Some(c) => c,
        None => {
            chunks.push(Chunk {
                session_id: &e.session_id,
                first_seq: e.seq,
                last_seq: e.seq,
                body: String::with_capacity(e.data_json.len() + 128),
            });
            let last = chunks.len() - 1;
            &mut chunks[last]
        }
    };
    chunk.last_seq = e.seq;
    crate::recordings::encode_line(&mut chunk.body, e);
}

fn apply(tx: &Connection, op: &WriteOp, signer: Option<&SigningKey>) -> Result<(), StoreError> {
    match op {
        WriteOp::SessionStart(s) => {
            tx.prepare_cached(
                "INSERT INTO sessions (id, identity, identity_kind, subject, groups_json, connection,
                 protocol, client_addr, target, started_us) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
            )?
            .execute(params![
                s.id,
                s.identity,
                s.identity_kind,
                s.subject,
                serde_json::to_string(&s.groups)?,
                s.connection,
                s.protocol,
                s.client_addr,
                s.target,
                s.started_us
            ])?;
        }
        WriteOp::SessionEnd {
            id,
            ended_us,
            reason,
            event_count,
            final_hash,
        } => {
            // The row's identity, connection and start time go into the signed manifest; a
            // session whose start was never stored has nothing to sign.
            let row: Option<(String, String, i64)> = tx
                .prepare_cached(
                    "UPDATE sessions SET ended_us = ?2, end_reason = ?3, event_count = ?4, final_hash = ?5
                     WHERE id = ?1 RETURNING identity, connection, started_us",
                )?
                .query_row(
                    params![id, ended_us, reason, *event_count as i64, final_hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            if let (Some(key), Some((identity, connection, started_us))) = (signer, row) {
                let text = signing::manifest(
                    id,
                    &identity,
                    &connection,
                    started_us,
                    *ended_us,
                    *event_count,
                    final_hash,
                );
                tx.prepare_cached(
                    "UPDATE sessions SET manifest_sig = ?2, manifest_key = ?3 WHERE id = ?1",
                )?
                .execute(params![id, key.sign(text.as_bytes()), key.key_id])?;
            }
        }
        WriteOp::Event(_)
        | WriteOp::Audit(_)
        | WriteOp::StatementAudit(_)
        | WriteOp::Checkpoint => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests;
