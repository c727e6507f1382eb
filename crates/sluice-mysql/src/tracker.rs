//! The sans-I/O heart of the adapter: it sees each client command and each server packet,
//! knows which response the server owes (MySQL answers one command at a time), masks result
//! rows in place, and turns commands and their results into recording events.
//!
//! A COM_QUERY may answer with several result sets (multi-statements, stored procedures);
//! each becomes its own `result` event for the same query. Prepared statements are recorded
//! when executed, with the prepared text and the bound parameters (long data included).

mod answer;
mod render;
mod review;
mod rows;

use crate::codec::command::Command;
use crate::codec::packet::with_payload_mut;
use crate::codec::response::{self, Column};
use crate::codec::values::types;
use crate::codec::{caps, CodecError};
use render::Render;
use sluice_core::event::{Query, QueryResult, StatementError, StatementOutcome};
use sluice_core::SessionEvent;
use sluice_mask::{MaskCounts, Masker};
use sluice_policy::RuleHit;
use std::collections::HashMap;
use std::sync::Arc;

/// Recording limits.
#[derive(Debug, Clone, Copy)]
pub struct TrackerSettings {
    /// Result rows recorded per result set.
    pub max_rows: usize,
    /// Longest recorded value, bytes.
    pub max_value_len: usize,
}

/// A prepared statement, as the target knows it.
#[derive(Debug, Clone)]
struct Prepared {
    text: Arc<str>,
    params: u16,
    /// Parameter types from the last execution that sent them: (type, unsigned).
    types: Vec<(u8, bool)>,
    /// Result columns (for binary rows), from the prepare or the last execution.
    columns: Vec<Column>,
    /// Long data sent for parameters since the last execution.
    long_data: HashMap<u16, Vec<u8>>,
    /// The review rule every execution falls under.
    review: Option<Arc<RuleHit>>,
    /// Columns the masker masks whole (with `columns`).
    whole: Vec<bool>,
    /// The recorded execution whose cursor is open: fetched rows are its results.
    cursor: Option<u64>,
}

/// What the server owes.
#[derive(Debug)]
enum Expect {
    /// A result set or OK/ERR, possibly several; rows in text or binary form.
    Results { binary: bool, stmt: Option<u32> },
    /// The answer to COM_STMT_PREPARE.
    Prepare {
        text: Arc<str>,
        review: Option<Arc<RuleHit>>,
    },
    /// Binary rows from a cursor, then EOF/OK.
    Fetch { stmt: u32 },
    /// One OK or ERR.
    Status,
    /// COM_STATISTICS: one text packet.
    Statistics,
    /// COM_FIELD_LIST: column definitions, then EOF.
    FieldList,
}

/// Where in a response the tracker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    Columns(u64),
    ColumnsEof,
    Rows,
    PrepareParams { params: u16, columns: u16 },
    PrepareParamsEof { columns: u16 },
    PrepareColumns(u16),
    PrepareColumnsEof,
}

/// The response being read.
#[derive(Debug)]
struct Pending {
    expect: Expect,
    phase: Phase,
    /// Recorded query id (commands that are not recorded have none).
    query: Option<u64>,
    started_us: i64,
    columns: Vec<Column>,
    /// Columns the masker masks whole.
    whole: Vec<bool>,
    rows: Vec<Vec<Option<String>>>,
    row_count: u64,
    truncated: bool,
    /// Prepare answer being assembled: (statement id, params).
    prepared: Option<(u32, u16)>,
}

impl Pending {
    fn new(expect: Expect, query: Option<u64>, now_us: i64) -> Pending {
        Pending {
            expect,
            phase: Phase::Start,
            query,
            started_us: now_us,
            columns: Vec::new(),
            whole: Vec::new(),
            rows: Vec::new(),
            row_count: 0,
            truncated: false,
            prepared: None,
        }
    }
}

/// Pairs commands with results; see the module docs.
pub struct Tracker {
    settings: TrackerSettings,
    deprecate_eof: bool,
    next_query: u64,
    pending: Option<Pending>,
    statements: HashMap<u32, Prepared>,
    render: Render,
    /// Whether rows are masked in place (the client sees masked values too).
    mask_in_place: bool,
    /// The recorded id of the command held for review.
    held: Option<u64>,
}

impl Tracker {
    /// A tracker for a session with these negotiated capabilities.
    pub fn new(settings: TrackerSettings, capabilities: u32) -> Tracker {
        Tracker {
            settings,
            deprecate_eof: capabilities & caps::DEPRECATE_EOF != 0,
            next_query: 1,
            pending: None,
            statements: HashMap::new(),
            render: Render {
                max_value_len: settings.max_value_len,
                masker: None,
                counts: MaskCounts::default(),
            },
            mask_in_place: false,
            held: None,
        }
    }

    /// Masks recordings with `masker`, and the client's rows too when it says so.
    pub fn set_masker(&mut self, masker: Option<Arc<Masker>>) {
        self.mask_in_place = masker.as_ref().is_some_and(|m| m.mask_client());
        self.render.masker = masker;
    }

    /// What the masker found.
    pub fn mask_counts(&self) -> &MaskCounts {
        &self.render.counts
    }

    /// True when no response is owed: the next command may be read.
    pub fn idle(&self) -> bool {
        self.pending.is_none()
    }

    /// Sees a client command about to be forwarded: records it and notes what the server
    /// will answer. Commands without an answer (COM_STMT_CLOSE, long data) change state only.
    pub fn on_command(&mut self, cmd: &Command<'_>, now_us: i64, out: &mut Vec<SessionEvent>) {
        // A command approved after a hold was recorded when it was held.
        let held = self.held.take();
        let (expect, query) = match cmd {
            Command::Query(text) => {
                let q = match held {
                    Some(q) => q,
                    None => self.query(Arc::from(String::from_utf8_lossy(text)), None, out),
                };
                (
                    Expect::Results {
                        binary: false,
                        stmt: None,
                    },
                    Some(q),
                )
            }
            Command::StmtPrepare(text) => (
                Expect::Prepare {
                    text: Arc::from(String::from_utf8_lossy(text)),
                    review: None,
                },
                None,
            ),
            Command::StmtExecute { id, params, .. } => {
                let q = match held {
                    Some(q) => q,
                    None => {
                        let (text, values) = self.execution(*id, params);
                        self.query(text, Some(values), out)
                    }
                };
                (
                    Expect::Results {
                        binary: true,
                        stmt: Some(*id),
                    },
                    Some(q),
                )
            }
            Command::StmtFetch { id, .. } => {
                let (query, columns, whole) = match self.statements.get(id) {
                    Some(s) => (s.cursor, s.columns.clone(), s.whole.clone()),
                    None => (None, Vec::new(), Vec::new()),
                };
                self.pending = Some(Pending {
                    columns,
                    whole,
                    ..Pending::new(Expect::Fetch { stmt: *id }, query, now_us)
                });
                return;
            }
            Command::StmtSendLongData { id, param, data } => {
                if let Some(p) = self.statements.get_mut(id) {
                    let piece = p.long_data.entry(*param).or_default();
                    let room = self.settings.max_value_len + 1
                        - piece.len().min(self.settings.max_value_len + 1);
                    piece.extend_from_slice(&data[..data.len().min(room)]);
                }
                return;
            }
            Command::StmtClose(id) => {
                self.statements.remove(id);
                return;
            }
            Command::StmtReset(id) => {
                if let Some(p) = self.statements.get_mut(id) {
                    p.long_data.clear();
                    p.cursor = None;
                }
                (Expect::Status, None)
            }
            Command::ResetConnection => {
                self.statements.clear();
                (Expect::Status, None)
            }
            Command::Statistics => (Expect::Statistics, None),
            Command::FieldList(_) => (Expect::FieldList, None),
            Command::Other(_) => (
                Expect::Results {
                    binary: false,
                    stmt: None,
                },
                None,
            ),
            Command::Quit => return,
            _ => (Expect::Status, None),
        };
        self.pending = Some(Pending::new(expect, query, now_us));
    }

    /// Records a statement (masked) and returns its id.
    fn query(
        &mut self,
        text: Arc<str>,
        params: Option<Vec<Option<String>>>,
        out: &mut Vec<SessionEvent>,
    ) -> u64 {
        let id = self.next_query;
        self.next_query += 1;
        let text = match &self.render.masker {
            Some(m) => m
                .mask_str(&text, &mut self.render.counts)
                .map(Arc::from)
                .unwrap_or(text),
            None => text,
        };
        out.push(SessionEvent::Query(Box::new(Query { id, text, params })));
        id
    }

    /// The prepared text and rendered parameters of an execution of statement `id`.
    fn execution(&mut self, id: u32, block: &[u8]) -> (Arc<str>, Vec<Option<String>>) {
        let Some(p) = self.statements.get_mut(&id) else {
            return (
                Arc::from(format!("(unknown prepared statement {id})")),
                Vec::new(),
            );
        };
        let long_data = std::mem::take(&mut p.long_data);
        let values = rows::parameters(block, p, &long_data).unwrap_or_default();
        let text = p.text.clone();
        let values = values
            .into_iter()
            .map(|v| v.map(|(kind, unsigned, bytes)| self.render.param(kind, unsigned, &bytes)))
            .collect();
        (text, values)
    }

    /// Sees one complete server packet (`raw`, headers included) before it is forwarded,
    /// masking row values in place when the connection masks the client's copy.
    pub fn on_server(
        &mut self,
        raw: &mut [u8],
        now_us: i64,
        out: &mut Vec<SessionEvent>,
    ) -> Result<(), CodecError> {
        let Some(mut p) = self.pending.take() else {
            // Nothing owed: a server-initiated packet (e.g. an error before closing).
            return Ok(());
        };
        let done = with_payload_mut(raw, |payload| self.step(&mut p, payload, now_us, out))?;
        if !done {
            self.pending = Some(p);
        }
        Ok(())
    }

    fn row(&mut self, p: &mut Pending, payload: &mut [u8]) -> Result<(), CodecError> {
        let binary = matches!(
            p.expect,
            Expect::Results { binary: true, .. } | Expect::Fetch { .. }
        );
        let columns: &[Column] = match p.expect {
            Expect::Fetch { stmt } => self.statements.get(&stmt).map_or(&[], |s| &s.columns),
            _ => &p.columns,
        };
        let fields = if binary {
            rows::binary_fields(payload, columns)?
        } else {
            rows::text_fields(payload, columns.len())?
        };
        p.row_count += 1;
        let record = p.rows.len() < self.settings.max_rows;
        if !record {
            p.truncated = true;
        }
        if let Some(m) = self.render.masker.clone() {
            if self.mask_in_place {
                rows::mask(
                    payload,
                    &fields,
                    columns,
                    &p.whole,
                    &m,
                    &mut self.render.counts,
                );
            }
        }
        if record {
            let masked_already = self.mask_in_place;
            let row = fields
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    f.as_ref().map(|f| {
                        let unsigned = columns
                            .get(i)
                            .is_some_and(|c| c.flags & response::UNSIGNED != 0);
                        let bytes = &payload[f.range.clone()];
                        let whole = p.whole.get(i).copied().unwrap_or(false);
                        // Raw-byte columns skip the detectors (rows::raw_bytes).
                        let raw = !whole && columns.get(i).is_some_and(rows::raw_bytes);
                        self.render.row_value(
                            f.kind,
                            unsigned,
                            binary,
                            bytes,
                            whole,
                            masked_already || raw,
                        )
                    })
                })
                .collect();
            p.rows.push(row);
        }
        Ok(())
    }

    fn finish_rows(&mut self, p: &mut Pending, now_us: i64, out: &mut Vec<SessionEvent>) {
        let Some(query) = p.query else {
            p.rows.clear();
            return;
        };
        let columns = std::mem::take(&mut p.columns);
        out.push(SessionEvent::Result(Box::new(QueryResult {
            query,
            columns: columns.into_iter().map(|c| c.name).collect(),
            rows: std::mem::take(&mut p.rows),
            rows_truncated: std::mem::take(&mut p.truncated),
            outcome: StatementOutcome {
                tags: vec![format!("SELECT {}", p.row_count)],
                row_count: p.row_count,
                ..StatementOutcome::default()
            },
            duration_us: now_us - p.started_us,
        })));
        p.row_count = 0;
    }

    fn finish_ok(
        &mut self,
        p: &mut Pending,
        ok: response::Ok,
        now_us: i64,
        out: &mut Vec<SessionEvent>,
    ) {
        let Some(query) = p.query else { return };
        out.push(SessionEvent::Result(Box::new(QueryResult {
            query,
            outcome: StatementOutcome {
                tags: vec![format!("OK {}", ok.affected_rows)],
                row_count: ok.affected_rows,
                ..StatementOutcome::default()
            },
            duration_us: now_us - p.started_us,
            ..QueryResult::default()
        })));
    }

    fn finish_error(
        &mut self,
        p: &mut Pending,
        e: response::Err,
        now_us: i64,
        out: &mut Vec<SessionEvent>,
    ) {
        let Some(query) = p.query else { return };
        let message = self.render.text(&e.message);
        out.push(SessionEvent::Result(Box::new(QueryResult {
            query,
            columns: std::mem::take(&mut p.columns)
                .into_iter()
                .map(|c| c.name)
                .collect(),
            rows: std::mem::take(&mut p.rows),
            rows_truncated: p.truncated,
            outcome: StatementOutcome {
                row_count: p.row_count,
                error: Some(StatementError {
                    code: format!("{} ({})", e.code, e.sqlstate),
                    message,
                }),
                ..StatementOutcome::default()
            },
            duration_us: now_us - p.started_us,
        })));
    }

    /// Records a command the gateway answers itself with an error (refused by the guard, or
    /// by the gateway's own rules): the statement, the guard event when a rule refused it, and
    /// the error as its result.
    pub fn refuse(
        &mut self,
        cmd: &Command<'_>,
        rule: &str,
        code: u16,
        message: &str,
        out: &mut Vec<SessionEvent>,
    ) {
        let text: Arc<str> = match cmd {
            Command::Query(t) | Command::StmtPrepare(t) => Arc::from(String::from_utf8_lossy(t)),
            Command::StmtExecute { id, params, .. } => self.execution(*id, params).0,
            other => Arc::from(format!("{other:?}")),
        };
        let query = self.query(text, None, out);
        out.push(SessionEvent::Guard {
            query,
            action: "denied".into(),
            rule: rule.to_string(),
            reason: message.to_string(),
            review: None,
        });
        out.push(SessionEvent::Result(Box::new(QueryResult {
            query,
            outcome: StatementOutcome {
                error: Some(StatementError {
                    code: code.to_string(),
                    message: message.to_string(),
                }),
                ..StatementOutcome::default()
            },
            ..QueryResult::default()
        })));
    }
}

/// Text-protocol value types are rendered as sent; binary ones by type.
fn is_text_type(kind: u8) -> bool {
    !matches!(
        kind,
        types::TINY
            | types::SHORT
            | types::LONG
            | types::FLOAT
            | types::DOUBLE
            | types::LONGLONG
            | types::INT24
            | types::YEAR
            | types::DATE
            | types::TIME
            | types::DATETIME
            | types::TIMESTAMP
    )
}

#[cfg(test)]
mod tests;
