//! The session tracker: a sans-I/O state machine that watches both directions of a
//! PostgreSQL session and pairs each statement the client sends with what the server answers.
//!
//! The server answers messages strictly in order, so the tracker keeps a queue of what it
//! expects (one entry per client message that gets an answer). After an error in the
//! extended protocol the server skips to the next Sync; the tracker does the same, marking
//! the skipped executions.
//!
//! When the guard refuses a message, the relay never forwards it and the tracker queues the
//! answer the gateway owes instead (an [`Expect::Synthetic`] entry): it reaches the client
//! exactly where the server's answer would have, after everything owed before it. After a
//! refused Parse the tracker drops the rest of the batch up to Sync, as the server does after
//! an error.
//!
//! Everything the tracker records is masked: statement text, parameters, error messages and
//! notifications pass through the connection's masker here; result rows arrive masked from
//! the relay, which masks every DataRow before the tracker sees it.

use crate::codec::backend::{data_row_values, BackendMessage};
use crate::codec::frontend::{format_of, FrontendMessage};
use bytes::BytesMut;
pub use guard::{Decided, Refusal};
use render::Render;
use sluice_core::event::{Query, QueryResult, StatementError, StatementOutcome};
use sluice_core::SessionEvent;
use sluice_mask::{MaskCounts, Masker};
use sluice_policy::RuleHit;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Limits on what is recorded.
#[derive(Clone, Copy, Debug)]
pub struct TrackerSettings {
    /// Result rows recorded per statement.
    pub max_rows: usize,
    /// Longest recorded value, in bytes.
    pub max_value_len: usize,
}

/// Tracks one session.
#[derive(Debug)]
pub struct Tracker {
    settings: TrackerSettings,
    next_query: u64,
    /// Prepared statements by name (client view).
    statements: HashMap<String, Prepared>,
    /// Bound portals by name (client view).
    portals: HashMap<String, Portal>,
    /// Columns described by the server, by statement and portal name.
    statement_columns: HashMap<String, Vec<String>>,
    portal_columns: HashMap<String, Vec<String>>,
    expect: VecDeque<Expect>,
    /// Transaction status of the last ReadyForQuery (for the gateway's own ReadyForQuery).
    last_status: u8,
    /// Dropping client messages up to the next Sync (after a refused Parse).
    skipping: bool,
    /// Extended-protocol messages were forwarded since the last Sync.
    batch_open: bool,
    /// Renders (caps, masks) what is recorded.
    render: Render,
    /// The statement held for review (its Query event is recorded already).
    held: Option<Box<Pending>>,
}

/// What to do with a client message while the tracker skips a refused batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Skip {
    /// Not skipping: judge and forward the message as usual.
    No,
    /// Drop the message.
    Drop,
    /// The batch's Sync: forward it (the server owes answers for earlier messages).
    ForwardSync,
    /// The batch's Sync, and nothing of the batch reached the server: drop it; the gateway
    /// answers ReadyForQuery itself.
    AnswerSync,
}

#[derive(Debug, Clone)]
struct Prepared {
    text: Arc<str>,
    param_types: Vec<u32>,
    /// A review rule matched the text: every execution is held for review.
    review: Option<Arc<RuleHit>>,
}

#[derive(Debug, Clone)]
struct Portal {
    text: Arc<str>,
    statement: String,
    params: Vec<Option<String>>,
    result_formats: Vec<i16>,
    review: Option<Arc<RuleHit>>,
}

#[derive(Debug)]
enum Expect {
    ParseComplete(String),
    BindComplete(String),
    Describe {
        portal: bool,
        name: String,
    },
    CloseComplete,
    Execute(Box<Pending>),
    Simple(Box<Pending>),
    Sync,
    /// Bytes the gateway owes the client at this point of the answer stream.
    Synthetic {
        /// What to send.
        bytes: Vec<u8>,
        /// Followed by ReadyForQuery, with the transaction status current when it is sent
        /// (statements pipelined before it may still change it).
        ready: bool,
    },
}

/// A statement awaiting its result.
#[derive(Debug, Default)]
struct Pending {
    query: u64,
    started_us: i64,
    statement: String,
    portal: String,
    result_formats: Vec<i16>,
    columns: Vec<String>,
    /// Which columns the masker masks whole (computed once per result).
    masked_columns: Option<Arc<[bool]>>,
    rows: Vec<Vec<Option<String>>>,
    truncated: bool,
    row_count: u64,
}

impl Pending {
    fn finish(&mut self, now_us: i64, outcome: StatementOutcome) -> SessionEvent {
        let result = QueryResult {
            query: self.query,
            columns: std::mem::take(&mut self.columns),
            rows: std::mem::take(&mut self.rows),
            rows_truncated: std::mem::take(&mut self.truncated),
            outcome,
            duration_us: now_us - self.started_us,
        };
        self.row_count = 0;
        SessionEvent::Result(Box::new(result))
    }
}

impl Tracker {
    /// A tracker for a new session.
    pub fn new(settings: TrackerSettings) -> Tracker {
        Tracker {
            settings,
            next_query: 1,
            statements: HashMap::new(),
            portals: HashMap::new(),
            statement_columns: HashMap::new(),
            portal_columns: HashMap::new(),
            expect: VecDeque::new(),
            last_status: b'I',
            skipping: false,
            batch_open: false,
            render: Render {
                max_value_len: settings.max_value_len,
                ..Render::default()
            },
            held: None,
        }
    }

    /// Masks everything recorded from now on with `masker`.
    pub fn set_masker(&mut self, masker: Option<Arc<Masker>>) {
        self.render.masker = masker;
    }

    /// What the masker found in what was recorded (and, when the relay masks the client's
    /// copy, it adds its own counts with [`Tracker::count_masked`]).
    pub fn mask_counts(&self) -> &MaskCounts {
        &self.render.counts
    }

    /// For the result now streaming: which columns are masked whole by name. Empty when
    /// there is no masker, no column rule, or the columns are unknown.
    pub fn masked_columns(&mut self) -> Option<Arc<[bool]>> {
        let masker = self.render.masker.clone()?;
        let (portal_cols, statement_cols) = (&self.portal_columns, &self.statement_columns);
        let p = match self.expect.front_mut() {
            Some(Expect::Simple(p) | Expect::Execute(p)) => p,
            _ => return None,
        };
        if p.masked_columns.is_none() {
            let names: &[String] = if p.columns.is_empty() {
                portal_cols
                    .get(&p.portal)
                    .or_else(|| statement_cols.get(&p.statement))
                    .map_or(&[], |c| c.as_slice())
            } else {
                &p.columns
            };
            let flags: Vec<bool> = names.iter().map(|n| masker.column_masked(n)).collect();
            p.masked_columns = Some(Arc::from(flags));
        }
        p.masked_columns.clone()
    }

    /// Whether the next DataRow will be recorded (the per-statement row cap is not reached).
    pub fn wants_row(&self) -> bool {
        match self.expect.front() {
            Some(Expect::Simple(p) | Expect::Execute(p)) => p.rows.len() < self.settings.max_rows,
            _ => false,
        }
    }

    /// Adds counts from masking done outside the tracker.
    pub fn count_masked(&mut self, counts: &MaskCounts) {
        self.render.counts.add(counts);
    }

    /// Whether the statement with this text must be judged, or dropped as part of a batch
    /// already refused.
    pub fn skip(&mut self, msg: &FrontendMessage<'_>) -> Skip {
        if !self.skipping {
            return Skip::No;
        }
        match msg {
            FrontendMessage::Sync => {
                self.skipping = false;
                if std::mem::take(&mut self.batch_open) {
                    Skip::ForwardSync
                } else {
                    self.expect.push_back(Expect::Synthetic {
                        bytes: Vec::new(),
                        ready: true,
                    });
                    Skip::AnswerSync
                }
            }
            FrontendMessage::Query(_) | FrontendMessage::Terminate => {
                // A simple query ends the extended batch implicitly.
                self.skipping = false;
                Skip::No
            }
            _ => Skip::Drop,
        }
    }

    /// Takes the bytes the gateway owes the client now: synthetic answers that have reached
    /// the head of the queue. Appends them to `out`; returns whether there were any.
    pub fn take_synthetic(&mut self, out: &mut Vec<u8>) -> bool {
        let mut any = false;
        while let Some(Expect::Synthetic { .. }) = self.expect.front() {
            if let Some(Expect::Synthetic { bytes, ready }) = self.expect.pop_front() {
                out.extend_from_slice(&bytes);
                if ready {
                    let mut z = BytesMut::new();
                    crate::codec::encode::ready_for_query(&mut z, self.last_status);
                    out.extend_from_slice(&z);
                }
                any = true;
            }
        }
        any
    }

    /// Observes a client message; pushes the events it produces (queries) to `out`.
    pub fn on_client(
        &mut self,
        msg: &FrontendMessage<'_>,
        now_us: i64,
        out: &mut Vec<SessionEvent>,
    ) {
        if matches!(
            msg,
            FrontendMessage::Parse { .. }
                | FrontendMessage::Bind(_)
                | FrontendMessage::Describe { .. }
                | FrontendMessage::Execute { .. }
                | FrontendMessage::Close { .. }
        ) {
            self.batch_open = true;
        }
        match msg {
            FrontendMessage::Query(text) => {
                let p = match self.held.take() {
                    Some(p) => p,
                    None => self.query(Arc::from(*text), None, now_us, out),
                };
                self.expect.push_back(Expect::Simple(p));
            }
            FrontendMessage::FunctionCall => {
                let p = self.query(Arc::from("(fast-path function call)"), None, now_us, out);
                self.expect.push_back(Expect::Simple(p));
            }
            FrontendMessage::Parse {
                name,
                query,
                param_types,
            } => {
                self.statements.insert(
                    name.to_string(),
                    Prepared {
                        text: Arc::from(*query),
                        param_types: param_types.clone(),
                        review: None,
                    },
                );
                self.expect
                    .push_back(Expect::ParseComplete(name.to_string()));
            }
            FrontendMessage::Bind(b) => {
                let (text, types, review) = match self.statements.get(b.statement) {
                    Some(p) => (p.text.clone(), p.param_types.as_slice(), p.review.clone()),
                    None => (
                        Arc::from(format!("(unknown prepared statement {:?})", b.statement)),
                        &[][..],
                        None,
                    ),
                };
                let render = &mut self.render;
                let params = b
                    .params
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        v.map(|v| {
                            let oid = types.get(i).copied().unwrap_or(0);
                            render.param(v, b.param_format(i), oid)
                        })
                    })
                    .collect();
                self.portals.insert(
                    b.portal.to_string(),
                    Portal {
                        text,
                        statement: b.statement.to_string(),
                        params,
                        result_formats: b.result_formats.clone(),
                        review,
                    },
                );
                self.expect
                    .push_back(Expect::BindComplete(b.portal.to_string()));
            }
            FrontendMessage::Describe { kind, name } => self.expect.push_back(Expect::Describe {
                portal: *kind == b'P',
                name: name.to_string(),
            }),
            FrontendMessage::Execute { portal } => {
                let info = self.portals.get(*portal).cloned();
                let (text, params, statement, formats) = match info {
                    Some(p) => (p.text, Some(p.params), p.statement, p.result_formats),
                    None => (
                        Arc::from(format!("(unknown portal {portal:?})")),
                        None,
                        String::new(),
                        vec![],
                    ),
                };
                let mut p = match self.held.take() {
                    Some(p) => p,
                    None => self.query(text, params, now_us, out),
                };
                p.statement = statement;
                p.portal = portal.to_string();
                p.result_formats = formats;
                self.expect.push_back(Expect::Execute(p));
            }
            FrontendMessage::Close { kind, name } => {
                if *kind == b'S' {
                    self.statements.remove(*name);
                } else {
                    self.portals.remove(*name);
                }
                self.expect.push_back(Expect::CloseComplete);
            }
            FrontendMessage::Sync => {
                self.batch_open = false;
                self.expect.push_back(Expect::Sync);
            }
            FrontendMessage::Flush
            | FrontendMessage::Terminate
            | FrontendMessage::Copy
            | FrontendMessage::AuthResponse(_) => {}
        }
    }

    fn query(
        &mut self,
        text: Arc<str>,
        params: Option<Vec<Option<String>>>,
        now_us: i64,
        out: &mut Vec<SessionEvent>,
    ) -> Box<Pending> {
        let id = self.next_query;
        self.next_query += 1;
        let text = match &self.render.masker {
            Some(m) => m
                .mask_str(&text, &mut self.render.counts)
                .map_or(text, Arc::from),
            None => text,
        };
        out.push(SessionEvent::Query(Box::new(Query { id, text, params })));
        Box::new(Pending {
            query: id,
            started_us: now_us,
            ..Pending::default()
        })
    }

    /// Observes a server message; pushes the events it produces (results, notifications).
    pub fn on_server(
        &mut self,
        msg: &BackendMessage<'_>,
        now_us: i64,
        out: &mut Vec<SessionEvent>,
    ) {
        match msg {
            BackendMessage::RowDescription(names) => self.on_row_description(names),
            BackendMessage::NoData => {
                if matches!(self.expect.front(), Some(Expect::Describe { .. })) {
                    self.expect.pop_front();
                }
            }
            BackendMessage::DataRow(body) => self.on_data_row(body),
            BackendMessage::CommandComplete(tag) => self.complete(tag, now_us, out),
            BackendMessage::EmptyQuery => self.complete("", now_us, out),
            BackendMessage::PortalSuspended => self.complete("(portal suspended)", now_us, out),
            BackendMessage::Error(e) => self.on_error(e.code, e.message, now_us, out),
            BackendMessage::ReadyForQuery(status) => {
                self.last_status = *status;
                while let Some(e) = self.expect.pop_front() {
                    if matches!(e, Expect::Sync | Expect::Simple(_)) {
                        break;
                    }
                }
            }
            BackendMessage::ParseComplete => {
                if let Some(Expect::ParseComplete(name)) = self.expect.front() {
                    self.statement_columns.remove(name);
                    self.expect.pop_front();
                }
            }
            BackendMessage::BindComplete => {
                if let Some(Expect::BindComplete(name)) = self.expect.front() {
                    self.portal_columns.remove(name);
                    self.expect.pop_front();
                }
            }
            BackendMessage::CloseComplete => {
                if matches!(self.expect.front(), Some(Expect::CloseComplete)) {
                    self.expect.pop_front();
                }
            }
            BackendMessage::Notification { channel, payload } => {
                out.push(SessionEvent::Notification {
                    channel: channel.to_string(),
                    payload: self.render.text(payload),
                })
            }
            BackendMessage::ParameterDescription
            | BackendMessage::CopyResponse(_)
            | BackendMessage::Other(_) => {}
        }
    }

    fn on_row_description(&mut self, names: &[&str]) {
        let columns: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        match self.expect.front_mut() {
            Some(Expect::Describe { portal, name }) => {
                let map = if *portal {
                    &mut self.portal_columns
                } else {
                    &mut self.statement_columns
                };
                map.insert(name.clone(), columns);
                self.expect.pop_front();
            }
            Some(Expect::Simple(p)) | Some(Expect::Execute(p)) => {
                p.columns = columns;
                p.masked_columns = None;
            }
            _ => {}
        }
    }

    fn on_data_row(&mut self, body: &[u8]) {
        let max_rows = self.settings.max_rows;
        let Some(Expect::Simple(p) | Expect::Execute(p)) = self.expect.front_mut() else {
            return;
        };
        p.row_count += 1;
        if p.rows.len() >= max_rows {
            p.truncated = true;
            return;
        }
        let render = &self.render;
        let row = match data_row_values(body) {
            Ok(values) => values
                .iter()
                .enumerate()
                .map(|(i, v)| v.map(|v| render.row_value(v, format_of(&p.result_formats, i))))
                .collect(),
            Err(_) => vec![Some("(undecodable row)".to_string())],
        };
        p.rows.push(row);
    }

    fn complete(&mut self, tag: &str, now_us: i64, out: &mut Vec<SessionEvent>) {
        match self.expect.front_mut() {
            Some(Expect::Simple(p)) => {
                let outcome = outcome_of(tag, p.row_count);
                out.push(p.finish(now_us, outcome));
            }
            Some(Expect::Execute(_)) => {
                if let Some(Expect::Execute(mut p)) = self.expect.pop_front() {
                    self.fill_columns(&mut p);
                    let outcome = outcome_of(tag, p.row_count);
                    out.push(p.finish(now_us, outcome));
                }
            }
            _ => {}
        }
    }

    fn fill_columns(&self, p: &mut Pending) {
        if p.columns.is_empty() {
            if let Some(c) = self
                .portal_columns
                .get(&p.portal)
                .or_else(|| self.statement_columns.get(&p.statement))
            {
                p.columns = c.clone();
            }
        }
    }

    fn on_error(&mut self, code: &str, message: &str, now_us: i64, out: &mut Vec<SessionEvent>) {
        let error = StatementError {
            code: code.to_string(),
            message: self.render.text(message),
        };
        if let Some(Expect::Simple(p)) = self.expect.front_mut() {
            let outcome = StatementOutcome {
                row_count: p.row_count,
                error: Some(error),
                ..StatementOutcome::default()
            };
            out.push(p.finish(now_us, outcome));
            return;
        }
        // Extended protocol: the server now skips everything up to the next Sync.
        let mut error = Some(error);
        while let Some(front) = self.expect.front() {
            if matches!(front, Expect::Sync | Expect::Simple(_)) {
                break;
            }
            // Refusals queued for messages the server now skips are dropped with them.
            if let Some(Expect::Execute(mut p)) = self.expect.pop_front() {
                self.fill_columns(&mut p);
                let outcome = match error.take() {
                    Some(e) => StatementOutcome {
                        row_count: p.row_count,
                        error: Some(e),
                        ..StatementOutcome::default()
                    },
                    None => StatementOutcome {
                        skipped: true,
                        ..StatementOutcome::default()
                    },
                };
                out.push(p.finish(now_us, outcome));
            }
        }
    }
}

fn outcome_of(tag: &str, data_rows: u64) -> StatementOutcome {
    // Commands that return no rows report their count in the tag (`INSERT 0 5`, `COPY 100`).
    let row_count = if data_rows > 0 {
        data_rows
    } else {
        tag.rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    StatementOutcome {
        tags: vec![tag.to_string()],
        row_count,
        error: None,
        skipped: false,
    }
}

mod guard;
mod render;
#[cfg(test)]
mod tests;
