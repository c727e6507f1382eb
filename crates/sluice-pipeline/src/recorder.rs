//! The per-session recorder: appends hash-chained events to the store through the batched
//! writer, and ends the session exactly once (on [`Recorder::finish`] or on drop).

use crate::{audit, authorize::Authorized, Pipeline};
use sluice_core::statement_audit::{AuditContext, StatementAudit};
use sluice_core::time::now_micros;
use sluice_core::{EndReason, Outcome, SessionEvent, SessionId};
use sluice_store::chain;
use sluice_store::crypto::hex;
use sluice_store::{DurabilityMode, NewEvent, RecordWriter, SessionRow, WriteOp};
use std::sync::Arc;
use tokio::sync::oneshot;

/// How sessions are recorded.
#[derive(Clone, Debug)]
pub struct RecordingSettings {
    /// Whether a query is durable before it is forwarded.
    pub mode: DurabilityMode,
    /// Result rows recorded per statement.
    pub max_rows: usize,
    /// Longest recorded value (bytes); longer values are cut and marked.
    pub max_value_len: usize,
    /// Audit every statement (`statement.allowed`), not only refused and held ones.
    pub audit_statements: bool,
}

impl Default for RecordingSettings {
    fn default() -> Self {
        RecordingSettings {
            mode: DurabilityMode::Buffered,
            max_rows: 100,
            max_value_len: 1024,
            audit_statements: true,
        }
    }
}

/// Completes when a recorded event is durable (strict mode); immediately otherwise.
#[must_use = "await Durable::wait before forwarding in strict mode"]
pub struct Durable(Option<oneshot::Receiver<()>>);

impl Durable {
    /// Waits for durability. `false` when the writer failed to commit.
    pub async fn wait(self) -> bool {
        match self.0 {
            None => true,
            Some(rx) => rx.await.is_ok(),
        }
    }
}

/// Records one session. Owned by the adapter's session task.
pub struct Recorder {
    id: SessionId,
    /// The id again, shared by every queued event.
    shared_id: Arc<str>,
    writer: RecordWriter,
    mode: DurabilityMode,
    authorized: Authorized,
    seq: u64,
    prev: [u8; 32],
    finished: bool,
    audit_statements: bool,
    /// The last statement recorded, not yet audited: a guard event may follow it.
    unaudited: Option<(u64, Arc<str>)>,
    /// Masking totals so far, for the `session.end` audit event.
    masked: Option<std::collections::BTreeMap<String, u64>>,
    /// Set with `audit.fail_closed`: the audit sinks' health.
    audit_gate: Option<Arc<sluice_store::audit_log::SpoolHealth>>,
    /// This session's audit context (actor, session, source, connection, protocol), built
    /// once and copied into each of its audit events.
    context: sluice_core::AuditEvent,
    /// The same context serialized, for the `statement.allowed` events of every statement.
    statement_context: AuditContext,
    /// Events as they are recorded, for whoever watches the session live (nothing is
    /// copied while nobody does).
    live: tokio::sync::broadcast::Sender<Arc<LiveEvent>>,
    /// What has been recorded so far (the live sessions list shows it).
    activity: Arc<crate::live::Activity>,
}

/// A recorded event, as a live watcher gets it.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    /// Its number in the recording.
    pub seq: u64,
    /// When it was recorded (µs).
    pub ts_us: i64,
    /// Its kind (`query`, `io`, …).
    pub kind: &'static str,
    /// The event, JSON, as recorded (masked).
    pub json: String,
}

/// Events a slow live watcher may fall behind by.
const LIVE_BACKLOG: usize = 256;

impl Pipeline {
    /// Starts recording a session to `target`: records the start and audits it.
    pub fn start_session(&self, authorized: Authorized, target: String) -> Recorder {
        let id = SessionId(uuid::Uuid::new_v4().to_string());
        let identity = &authorized.identity;
        let started_us = now_micros();
        self.writer()
            .send(WriteOp::SessionStart(Box::new(SessionRow {
                id: id.0.clone(),
                identity: identity.name.clone(),
                identity_kind: identity.kind.as_str().to_string(),
                subject: identity.subject.clone(),
                groups: identity.groups.clone(),
                connection: authorized.connection.name.0.clone(),
                protocol: authorized.connection.protocol.as_str().to_string(),
                client_addr: authorized.client_addr.to_string(),
                target: target.clone(),
                started_us,
                ended_us: None,
                end_reason: None,
                event_count: None,
                final_hash: None,
                manifest_sig: None,
                manifest_key: None,
                archive: None,
            })));
        let mut context = audit::by(identity, "session.start", Outcome::Success);
        context.session_id = Some(id.0.clone());
        fill_context(&mut context, &authorized);
        self.audit(context.clone());
        let mut rec = Recorder {
            statement_context: AuditContext::of(&context),
            context,
            prev: chain::genesis(&id.0),
            shared_id: Arc::from(id.0.as_str()),
            id,
            writer: self.writer().clone(),
            mode: self.recording().mode,
            authorized,
            seq: 0,
            finished: false,
            audit_statements: self.recording().audit_statements,
            unaudited: None,
            masked: None,
            audit_gate: self.audit_gate(),
            live: tokio::sync::broadcast::channel(LIVE_BACKLOG).0,
            activity: Arc::new(crate::live::Activity::new(started_us)),
        };
        let start = SessionEvent::Start {
            identity: rec.authorized.identity.clone(),
            connection: rec.authorized.connection.name.0.clone(),
            protocol: rec.authorized.connection.protocol.as_str().to_string(),
            client_addr: rec.authorized.client_addr.to_string(),
            target,
        };
        let _buffered = rec.append(&start, false);
        rec
    }
}

/// Longest statement text in an audit event; the recording keeps the whole text. Sinks have
/// message size limits (NATS 1 MiB by default, syslog collectors often 8–64 KiB).
const MAX_AUDITED_STATEMENT: usize = 16 * 1024;

/// `text`, cut at [`MAX_AUDITED_STATEMENT`] bytes on a character boundary and marked.
fn capped(text: &str) -> String {
    if text.len() <= MAX_AUDITED_STATEMENT {
        return text.to_string();
    }
    let mut end = MAX_AUDITED_STATEMENT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} bytes, cut]", &text[..end], text.len())
}

fn fill_context(e: &mut sluice_core::AuditEvent, a: &Authorized) {
    e.source = Some(a.client_addr.to_string());
    e.connection = Some(a.connection.name.0.clone());
    e.protocol = Some(a.connection.protocol.as_str().to_string());
}

impl Recorder {
    /// The session id.
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// Who and what this session is.
    pub fn authorized(&self) -> &Authorized {
        &self.authorized
    }

    /// Whether statements must be refused because the audit trail cannot keep up
    /// (`audit.fail_closed` and a full spool).
    pub fn audit_closed(&self) -> bool {
        self.audit_gate.as_ref().is_some_and(|h| h.any_full())
    }

    /// Audits `action` in this session's context (identity, connection, session id).
    pub fn audit(&self, action: &str, outcome: Outcome, reason: Option<String>) {
        let mut e = self.event(action, outcome);
        e.reason = reason;
        self.writer.send(WriteOp::Audit(Box::new(e)));
    }

    /// Records `event`. Queries are durable before [`Durable::wait`] returns in strict mode.
    /// Statements are also audited: refused and held ones always, allowed ones when
    /// `audit_statements` is on.
    pub fn record(&mut self, event: &SessionEvent) -> Durable {
        if self.mode == DurabilityMode::Off {
            return Durable(None);
        }
        let durable =
            self.mode == DurabilityMode::Strict && matches!(event, SessionEvent::Query(_));
        let done = self.append(event, durable);
        self.audit_statement(event);
        done
    }

    /// Turns recorded statements and guard decisions into `statement.*` audit events. A guard
    /// event follows its statement directly, so a statement is audited as allowed only when the
    /// next event is not its refusal or hold.
    fn audit_statement(&mut self, event: &SessionEvent) {
        match event {
            SessionEvent::Guard {
                query,
                action,
                rule,
                reason,
                review,
            } => {
                let text = match self.unaudited.take() {
                    Some((id, text)) if id == *query => Some(text),
                    other => {
                        self.flush_statement(other);
                        None
                    }
                };
                let held = action == "held";
                let mut e = self.event(
                    if held {
                        "statement.held"
                    } else {
                        "statement.denied"
                    },
                    if held {
                        Outcome::Success
                    } else {
                        Outcome::Failure
                    },
                );
                e.statement = text.map(|t| capped(&t));
                e.rule = Some(rule.clone());
                e.reason = Some(reason.clone());
                e.review_id = review.clone();
                self.writer.send(WriteOp::Audit(Box::new(e)));
            }
            SessionEvent::Query(q) => {
                let previous = self.unaudited.take();
                self.flush_statement(previous);
                // Kept even when allowed statements are not audited: a refusal or hold of it
                // names it.
                self.unaudited = Some((q.id, q.text.clone()));
            }
            SessionEvent::Masking { counts } => self.masked = Some(counts.clone()),
            _ => {
                let previous = self.unaudited.take();
                self.flush_statement(previous);
            }
        }
    }

    fn flush_statement(&mut self, statement: Option<(u64, Arc<str>)>) {
        if !self.audit_statements {
            return;
        }
        if let Some((_, text)) = statement {
            let statement = if text.len() <= MAX_AUDITED_STATEMENT {
                text
            } else {
                Arc::from(capped(&text))
            };
            self.writer.send(WriteOp::StatementAudit(StatementAudit {
                id: audit::new_id(),
                ts_us: now_micros(),
                action: "statement.allowed",
                outcome: Outcome::Success,
                context: self.statement_context.clone(),
                statement,
            }));
        }
    }

    /// An audit event in this session's context.
    fn event(&self, action: &str, outcome: Outcome) -> sluice_core::AuditEvent {
        let fresh = audit::event(action, outcome);
        sluice_core::AuditEvent {
            id: fresh.id,
            ts_us: fresh.ts_us,
            action: fresh.action,
            outcome,
            class_uid: fresh.class_uid,
            class_name: fresh.class_name,
            ..self.context.clone()
        }
    }

    fn append(&mut self, event: &SessionEvent, durable: bool) -> Durable {
        if self.finished {
            return Durable(None);
        }
        let ts_us = now_micros();
        let data_json = match serde_json::to_string(event) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(session = %self.id, error = %e, "event not serializable");
                return Durable(None);
            }
        };
        let kind = event.kind();
        self.activity.add(data_json.len());
        let hash = chain::link(&self.prev, self.seq, ts_us, kind, &data_json);
        self.prev = hash;
        if self.live.receiver_count() > 0 {
            let _ = self.live.send(Arc::new(LiveEvent {
                seq: self.seq,
                ts_us,
                kind,
                json: data_json.clone(),
            }));
        }
        let op = WriteOp::Event(NewEvent {
            session_id: self.shared_id.clone(),
            seq: self.seq,
            ts_us,
            kind,
            data_json,
            hash,
        });
        self.seq += 1;
        if durable {
            match self.writer.send_acked(op) {
                Ok(rx) => Durable(Some(rx)),
                Err(_) => Durable(Some(oneshot::channel().1)),
            }
        } else {
            self.writer.send(op);
            Durable(None)
        }
    }

    /// What this session has recorded so far (for the live registry).
    pub fn activity(&self) -> Arc<crate::live::Activity> {
        self.activity.clone()
    }

    /// The sender of this session's live events (for the live registry).
    pub fn live_events(&self) -> tokio::sync::broadcast::Sender<Arc<LiveEvent>> {
        self.live.clone()
    }

    /// Ends the session: records the end event, closes the session row, audits it.
    pub fn finish(mut self, reason: EndReason, detail: Option<String>) {
        self.finish_inner(reason, detail);
    }

    fn finish_inner(&mut self, reason: EndReason, detail: Option<String>) {
        if self.finished {
            return;
        }
        let pending = self.unaudited.take();
        self.flush_statement(pending);
        let end = SessionEvent::End {
            reason,
            detail: detail.clone(),
        };
        let _buffered = self.append(&end, false);
        self.finished = true;
        self.writer.send(WriteOp::SessionEnd {
            id: self.id.0.clone(),
            ended_us: now_micros(),
            reason: reason.as_str().to_string(),
            event_count: self.seq,
            final_hash: hex(&self.prev),
        });
        let mut e = self.event("session.end", Outcome::Success);
        e.masked = self.masked.take();
        e.reason = Some(match detail {
            Some(d) => format!("{}: {d}", reason.as_str()),
            None => reason.as_str().to_string(),
        });
        self.writer.send(WriteOp::Audit(Box::new(e)));
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if !self.finished {
            self.finish_inner(
                EndReason::GatewayError,
                Some("session task ended without closing its recording".into()),
            );
        }
    }
}
