//! One thread per sink: read the events after the sink's cursor, deliver, advance the cursor.

use crate::sink::{Sink, SpooledEvent};
use sluice_store::audit_log::{self, SpoolHealth, SpoolSignal};
use sluice_store::StoreError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Longest pause between attempts at a failing sink.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// First pause after a failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// How often an idle sink looks for events it was not woken for (another process's writes).
const IDLE_POLL: Duration = Duration::from_secs(5);
/// Longest time a delivered position waits before it is saved. Saving is a write transaction
/// on the database the recordings go to, so it is not done per batch; after a crash, at most
/// this much is delivered again (at-least-once; events carry ids for de-duplication).
const CURSOR_SAVE: Duration = Duration::from_secs(1);

/// A running sink thread.
pub struct SinkHandle {
    /// Sink name.
    pub name: String,
    /// The thread; it ends after the spool is closed and its last delivery attempt.
    pub thread: std::thread::JoinHandle<()>,
}

/// Starts one delivery thread per sink over the audit log in the database at `db_path`.
/// `spool_limit` is the backlog (events) past which a sink's spool counts as full.
pub fn start_sinks(
    db_path: &Path,
    sinks: Vec<(String, Box<dyn Sink>)>,
    signal: Arc<SpoolSignal>,
    health: Arc<SpoolHealth>,
    spool_limit: u64,
) -> Result<Vec<SinkHandle>, StoreError> {
    let mut handles = Vec::new();
    for (name, sink) in sinks {
        health.update(&name, |_| {});
        let worker = Worker {
            name: name.clone(),
            db_path: db_path.to_path_buf(),
            sink,
            signal: signal.clone(),
            health: health.clone(),
            spool_limit,
        };
        let thread = std::thread::Builder::new()
            .name(format!("audit-sink-{name}"))
            .spawn(move || worker.run())?;
        handles.push(SinkHandle { name, thread });
    }
    Ok(handles)
}

struct Worker {
    name: String,
    db_path: PathBuf,
    sink: Box<dyn Sink>,
    signal: Arc<SpoolSignal>,
    health: Arc<SpoolHealth>,
    spool_limit: u64,
}

impl Worker {
    fn run(mut self) {
        let span = tracing::info_span!("audit_sink", sink = %self.name);
        let _enter = span.enter();
        let db = match sluice_store::schema::open_existing(&self.db_path) {
            Ok(db) => db,
            Err(e) => {
                tracing::error!(error = %e, "audit sink cannot open the spool; nothing will be delivered");
                let text = e.to_string();
                self.health.update(&self.name, |s| {
                    s.full = true;
                    s.last_error = Some(text);
                });
                return;
            }
        };
        let mut cursor = match audit_log::cursor(&db, &self.name) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "audit sink cannot read its cursor; nothing will be delivered");
                let text = e.to_string();
                self.health.update(&self.name, |s| {
                    s.full = true;
                    s.last_error = Some(text);
                });
                return;
            }
        };
        let mut backoff = FIRST_BACKOFF;
        let mut failing = false;
        let mut saved = cursor;
        let mut saved_at = std::time::Instant::now();
        let save = |cursor: u64, saved: &mut u64, saved_at: &mut std::time::Instant| {
            if cursor != *saved {
                match audit_log::set_cursor(&db, &self.name, cursor) {
                    Ok(()) => *saved = cursor,
                    Err(e) => {
                        tracing::error!(error = %e, "audit sink cursor not saved; events may be delivered again")
                    }
                }
            }
            *saved_at = std::time::Instant::now();
        };
        loop {
            let closing = self.signal.is_closed();
            let rows = match audit_log::spooled_after(&db, cursor, self.sink.max_batch()) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "audit spool read failed");
                    self.signal.wait_beyond(u64::MAX, backoff);
                    continue;
                }
            };
            let head = self.signal.head().max(rows.last().map_or(cursor, |r| r.0));
            self.note_backlog(head.saturating_sub(cursor));
            if rows.is_empty() {
                save(cursor, &mut saved, &mut saved_at);
                if closing {
                    return;
                }
                self.signal.wait_beyond(cursor, IDLE_POLL);
                continue;
            }
            let batch: Vec<SpooledEvent> = rows
                .into_iter()
                .map(|(seq, id, ts_us, json)| SpooledEvent {
                    seq,
                    id,
                    ts_us,
                    json,
                })
                .collect();
            let last = batch[batch.len() - 1].seq;
            match self.sink.deliver(&batch) {
                Ok(()) => {
                    cursor = last;
                    if saved_at.elapsed() >= CURSOR_SAVE {
                        save(cursor, &mut saved, &mut saved_at);
                    }
                    if failing {
                        tracing::info!("audit sink delivers again");
                        failing = false;
                    }
                    backoff = FIRST_BACKOFF;
                    let n = batch.len() as u64;
                    self.health.update(&self.name, |s| {
                        s.delivered += n;
                        s.last_error = None;
                    });
                }
                Err(e) => {
                    if !failing {
                        tracing::error!(error = %e, "audit sink delivery failed; retrying with backoff, events stay spooled");
                        failing = true;
                    } else {
                        tracing::warn!(error = %e, retry_in = ?backoff, "audit sink still failing");
                    }
                    let text = e.to_string();
                    self.health.update(&self.name, |s| {
                        s.failures += 1;
                        s.last_error = Some(text);
                    });
                    save(cursor, &mut saved, &mut saved_at);
                    if closing {
                        tracing::error!(
                            undelivered = head.saturating_sub(cursor),
                            "gateway stopping with audit events undelivered to this sink; they stay spooled for the next start"
                        );
                        return;
                    }
                    self.signal.wait_beyond(u64::MAX, jitter(backoff));
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn note_backlog(&self, backlog: u64) {
        let full = backlog > self.spool_limit;
        let mut became_full = false;
        let mut cleared = false;
        self.health.update(&self.name, |s| {
            became_full = full && !s.full;
            cleared = !full && s.full;
            s.backlog = backlog;
            s.full = full;
        });
        if became_full {
            tracing::error!(
                backlog,
                limit = self.spool_limit,
                "AUDIT SPOOL FULL: this sink is too far behind; with audit.fail_closed new sessions are refused"
            );
        } else if cleared {
            tracing::warn!(backlog, "audit spool below its limit again");
        }
    }
}

/// `d` give or take a quarter, so sinks that failed together do not retry in lockstep.
fn jitter(d: Duration) -> Duration {
    let r = u64::from(uuid::Uuid::new_v4().as_bytes()[0]); // 0..=255
    let quarter = d / 4;
    d - quarter + quarter * (r as u32) / 128
}
