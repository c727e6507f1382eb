//! Reading sessions, their recordings and the audit log.

use crate::StoreError;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use sluice_core::time::now_micros;
use sluice_core::AuditEvent;

/// A session as listed.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SessionRow {
    /// Session id.
    pub id: String,
    /// Identity name.
    pub identity: String,
    /// Identity kind.
    pub identity_kind: String,
    /// OIDC subject, when present.
    pub subject: Option<String>,
    /// Groups at session start.
    pub groups: Vec<String>,
    /// Connection name.
    pub connection: String,
    /// Protocol.
    pub protocol: String,
    /// Client address.
    pub client_addr: String,
    /// Target `host:port`.
    pub target: String,
    /// Start, µs since epoch.
    pub started_us: i64,
    /// End, µs since epoch; `None` while live.
    pub ended_us: Option<i64>,
    /// Why it ended.
    pub end_reason: Option<String>,
    /// Events recorded (set at end).
    pub event_count: Option<i64>,
    /// Hash of the last event (set at end).
    pub final_hash: Option<String>,
    /// Ed25519 signature of the session's manifest (set at end), hex.
    #[serde(default)]
    pub manifest_sig: Option<String>,
    /// Id of the key that signed it.
    #[serde(default)]
    pub manifest_key: Option<String>,
    /// Object key of the recording when it was moved to object storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
}

/// One recorded event as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EventRow {
    /// Session id.
    pub session_id: String,
    /// Position in the session, from 0.
    pub seq: u64,
    /// Time, µs since epoch.
    pub ts_us: i64,
    /// Event kind (`start`, `statement`, …).
    pub kind: String,
    /// The event, JSON.
    pub data_json: String,
    /// Chain hash (hex).
    pub hash: String,
}

/// Filters for listing sessions.
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SessionFilter {
    /// Only this identity.
    pub identity: Option<String>,
    /// Only this connection.
    pub connection: Option<String>,
    /// Only sessions started at or after this time (µs).
    pub since_us: Option<i64>,
    /// Only sessions started before this time (µs).
    pub until_us: Option<i64>,
    /// Only sessions still running.
    #[serde(default)]
    pub live: bool,
    /// At most this many (default 100, max 1000).
    pub limit: Option<u32>,
    /// Only this protocol (`postgres`, `ssh`, `kubernetes`, …).
    pub protocol: Option<String>,
    /// Only sessions in which the guard denied something.
    #[serde(default)]
    pub has_denials: bool,
    /// Only sessions in which something was held for review.
    #[serde(default)]
    pub has_reviews: bool,
    /// Only sessions whose recording contains this text (case-insensitive for ASCII), as
    /// the client sent it: statements, commands, request lines. Recordings moved to object
    /// storage are not searched.
    pub q: Option<String>,
    /// The page after this cursor (a previous page's [`SessionPage::next_cursor`]).
    pub cursor: Option<String>,
}

/// One page of sessions.
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SessionPage {
    /// The sessions, newest first.
    pub sessions: Vec<SessionRow>,
    /// Where the next page starts, when this one is full.
    pub next_cursor: Option<String>,
}

const SESSION_COLUMNS: &str =
    "id, identity, identity_kind, subject, groups_json, connection, protocol,
    client_addr, target, started_us, ended_us, end_reason, event_count, final_hash,
    manifest_sig, manifest_key, archive";

fn session_row(r: &Row<'_>) -> rusqlite::Result<(SessionRow, String)> {
    Ok((
        SessionRow {
            id: r.get(0)?,
            identity: r.get(1)?,
            identity_kind: r.get(2)?,
            subject: r.get(3)?,
            groups: Vec::new(),
            connection: r.get(5)?,
            protocol: r.get(6)?,
            client_addr: r.get(7)?,
            target: r.get(8)?,
            started_us: r.get(9)?,
            ended_us: r.get(10)?,
            end_reason: r.get(11)?,
            event_count: r.get(12)?,
            final_hash: r.get(13)?,
            manifest_sig: r.get(14)?,
            manifest_key: r.get(15)?,
            archive: r.get(16)?,
        },
        r.get(4)?,
    ))
}

fn with_groups((mut row, groups): (SessionRow, String)) -> Result<SessionRow, StoreError> {
    row.groups = serde_json::from_str(&groups)?;
    Ok(row)
}

/// Sessions matching `f`, newest first.
pub fn list_sessions(conn: &Connection, f: &SessionFilter) -> Result<Vec<SessionRow>, StoreError> {
    Ok(page_sessions(conn, f)?.sessions)
}

/// A page of the sessions matching `f`, newest first, and the cursor of the next page.
/// Denials and holds are found by the guard events' `"action"` key, which only structural
/// JSON of a recording can contain (quotes inside recorded text are escaped).
pub fn page_sessions(conn: &Connection, f: &SessionFilter) -> Result<SessionPage, StoreError> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM sessions s
         WHERE (?1 IS NULL OR identity = ?1) AND (?2 IS NULL OR connection = ?2)
           AND (?3 IS NULL OR started_us >= ?3) AND (?4 = 0 OR ended_us IS NULL)
           AND (?6 IS NULL OR started_us < ?6)
           AND (?7 IS NULL OR protocol = ?7)
           AND (?8 IS NULL OR started_us < ?8 OR (started_us = ?8 AND id < ?9))
           AND (?10 = 0 OR EXISTS (SELECT 1 FROM event_chunks c WHERE c.session_id = s.id
                AND instr(c.body, '\"action\":\"denied\"') > 0))
           AND (?11 = 0 OR EXISTS (SELECT 1 FROM event_chunks c WHERE c.session_id = s.id
                AND instr(c.body, '\"action\":\"held\"') > 0))
           AND (?12 IS NULL OR EXISTS (SELECT 1 FROM event_chunks c WHERE c.session_id = s.id
                AND instr(lower(c.body), ?12) > 0))
         ORDER BY started_us DESC, id DESC LIMIT ?5"
    );
    let limit = f.limit.unwrap_or(100).clamp(1, 1000);
    let (after_us, after_id) = match f.cursor.as_deref().map(parse_cursor) {
        Some(Some((us, id))) => (Some(us), Some(id)),
        Some(None) => return Err(StoreError::Refused("invalid cursor".into())),
        None => (None, None),
    };
    // The text as it appears inside the recording's JSON.
    let needle = f.q.as_deref().filter(|q| !q.is_empty()).map(|q| {
        let quoted = serde_json::to_string(q).unwrap_or_default();
        quoted[1..quoted.len() - 1].to_ascii_lowercase()
    });
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(
        params![
            f.identity,
            f.connection,
            f.since_us,
            f.live as i64,
            limit,
            f.until_us,
            f.protocol,
            after_us,
            after_id,
            f.has_denials as i64,
            f.has_reviews as i64,
            needle
        ],
        session_row,
    )?;
    let sessions = rows
        .map(|r| with_groups(r?))
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = (sessions.len() == limit as usize)
        .then(|| {
            sessions
                .last()
                .map(|s| format!("{}.{}", s.started_us, s.id))
        })
        .flatten();
    Ok(SessionPage {
        sessions,
        next_cursor,
    })
}

/// `STARTED_US.ID` → its parts.
fn parse_cursor(c: &str) -> Option<(i64, String)> {
    let (us, id) = c.split_once('.')?;
    Some((us.parse().ok()?, id.to_string()))
}

/// One session by id.
pub fn get_session(conn: &Connection, id: &str) -> Result<SessionRow, StoreError> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1");
    let row = conn.query_row(&sql, [id], session_row).optional()?;
    with_groups(row.ok_or_else(|| StoreError::NotFound(format!("session {id:?}")))?)
}

/// Appends `e` to a chunk body as one line: `seq \t ts_us \t kind \t hash \t json`.
/// JSON text has no raw tab or newline, so the line splits unambiguously.
pub fn encode_line(body: &mut String, e: &crate::writer::NewEvent) {
    use std::fmt::Write;
    let _ = write!(body, "{}\t{}\t{}\t", e.seq, e.ts_us, e.kind);
    crate::crypto::push_hex(body, &e.hash);
    body.push('\t');
    body.push_str(&e.data_json);
    body.push('\n');
}

/// Decodes the lines of a stored chunk (or an archived recording) into events.
pub fn decode_body(session_id: &str, body: &str) -> Result<Vec<EventRow>, StoreError> {
    body.lines()
        .map(|line| {
            decode_line(session_id, line).ok_or_else(|| {
                StoreError::Corrupt(format!("recording of session {session_id:?}: bad line"))
            })
        })
        .collect()
}

fn decode_line(session_id: &str, line: &str) -> Option<EventRow> {
    let mut f = line.splitn(5, '\t');
    Some(EventRow {
        session_id: session_id.to_string(),
        seq: f.next()?.parse().ok()?,
        ts_us: f.next()?.parse().ok()?,
        kind: f.next()?.to_string(),
        hash: f.next()?.to_string(),
        data_json: f.next()?.to_string(),
    })
}

/// A session's events in order.
pub fn events(conn: &Connection, session_id: &str) -> Result<Vec<EventRow>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT body FROM event_chunks WHERE session_id = ?1 ORDER BY first_seq")?;
    let bodies = stmt.query_map([session_id], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for body in bodies {
        for line in body?.lines() {
            let row = decode_line(session_id, line).ok_or_else(|| {
                StoreError::Corrupt(format!("undecodable event line in session {session_id}"))
            })?;
            out.push(row);
        }
    }
    Ok(out)
}

/// The newest `limit` audit events, oldest first.
pub fn audit_tail(conn: &Connection, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
    let filter = AuditFilter {
        limit: Some(limit),
        ..AuditFilter::default()
    };
    let mut events = audit_page(conn, &filter)?.events;
    events.reverse();
    Ok(events)
}

/// Filters for reading the audit log.
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditFilter {
    /// Only actions starting with this (`session.`, `statement.denied`).
    pub action: Option<String>,
    /// Only events of this actor (identity or agent name).
    pub actor: Option<String>,
    /// Only events of this session.
    pub session: Option<String>,
    /// Only events of this connection.
    pub connection: Option<String>,
    /// Only `success` or `failure`.
    pub outcome: Option<String>,
    /// Only events at or after this time (µs).
    pub since_us: Option<i64>,
    /// Only events before this time (µs).
    pub until_us: Option<i64>,
    /// At most this many (default 100, max 10 000).
    pub limit: Option<u32>,
    /// Events older than this one's sequence number (a previous page's `next_cursor`).
    pub cursor: Option<u64>,
}

/// A page of audit events, newest first.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AuditPage {
    /// The events.
    pub events: Vec<AuditEvent>,
    /// Where the next (older) page starts, when this one is full.
    pub next_cursor: Option<u64>,
}

/// The audit events matching `f`, newest first.
pub fn audit_page(conn: &Connection, f: &AuditFilter) -> Result<AuditPage, StoreError> {
    let limit = f.limit.unwrap_or(100).clamp(1, 10_000);
    let prefix = f.action.as_ref().map(|a| {
        let escaped = a
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("{escaped}%")
    });
    let mut stmt = conn.prepare_cached(
        "SELECT seq, event_json FROM audit
         WHERE (?1 IS NULL OR action LIKE ?1 ESCAPE '\\')
           AND (?2 IS NULL OR json_extract(event_json, '$.actor.name') = ?2)
           AND (?3 IS NULL OR json_extract(event_json, '$.session_id') = ?3)
           AND (?4 IS NULL OR json_extract(event_json, '$.connection') = ?4)
           AND (?5 IS NULL OR json_extract(event_json, '$.outcome') = ?5)
           AND (?6 IS NULL OR ts_us >= ?6) AND (?7 IS NULL OR ts_us < ?7)
           AND (?8 IS NULL OR seq < ?8)
         ORDER BY seq DESC LIMIT ?9",
    )?;
    let cursor = f.cursor.map(|c| c as i64);
    let rows = stmt.query_map(
        params![
            prefix,
            f.actor,
            f.session,
            f.connection,
            f.outcome,
            f.since_us,
            f.until_us,
            cursor,
            limit
        ],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
    )?;
    let mut events = Vec::new();
    let mut last = None;
    for row in rows {
        let (seq, json) = row?;
        last = Some(seq as u64);
        events.push(serde_json::from_str(&json)?);
    }
    let next_cursor = last.filter(|_| events.len() == limit as usize);
    Ok(AuditPage {
        events,
        next_cursor,
    })
}

/// Closes sessions left open by a previous run of the gateway (it stopped without ending them).
pub fn close_dangling(conn: &Connection) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "UPDATE sessions SET ended_us = ?1, end_reason = 'gateway_restart' WHERE ended_us IS NULL",
        params![now_micros()],
    )?)
}
