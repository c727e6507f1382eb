//! Session, recording and audit-log endpoints.

use super::auth::{Caller, Reader};
use super::{ApiError, ApiState};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use sluice_core::AuditEvent;
use sluice_store::{chain, recordings, EventRow, SessionFilter, SessionRow};

/// Commits everything recorded so far, so a read sees every event that happened before it
/// (recording is otherwise batched for up to 100 ms).
pub(super) async fn read_your_writes(state: &ApiState) -> Result<(), ApiError> {
    state
        .pipeline
        .writer()
        .flush()
        .await
        .map_err(ApiError::from)
}

/// `GET /api/v1/sessions?identity=&connection=&protocol=&since_us=&until_us=&live=&has_denials=&has_reviews=&q=&limit=&cursor=`:
/// newest first; a full page names the next one in `X-Next-Cursor`.
pub async fn list(
    State(state): State<ApiState>,
    Caller(who, roles): Caller,
    Query(mut f): Query<SessionFilter>,
) -> Result<impl IntoResponse, ApiError> {
    // A user sees its own sessions only.
    if !roles.reads_all() {
        f.identity = Some(who.name.clone());
    }
    if let Some(c) = &f.cursor {
        let valid = c
            .split_once('.')
            .is_some_and(|(us, id)| us.parse::<i64>().is_ok() && !id.is_empty());
        if !valid {
            return Err(ApiError::bad_request(format!("invalid cursor {c:?}")));
        }
    }
    read_your_writes(&state).await?;
    let page = state
        .pipeline
        .store()
        .run(move |c| recordings::page_sessions(c, &f))
        .await?;
    let mut headers = axum::http::HeaderMap::new();
    if let Some(v) = page
        .next_cursor
        .as_deref()
        .and_then(|c| axum::http::HeaderValue::from_str(c).ok())
    {
        headers.insert("x-next-cursor", v);
    }
    Ok((headers, Json(page.sessions)))
}

/// A session and its events, from the database or, once archived, from object storage; a
/// session of someone else is not found for a caller who cannot read everything.
pub(super) async fn load(
    state: &ApiState,
    id: String,
    caller: &Caller,
) -> Result<(SessionRow, Vec<EventRow>), ApiError> {
    let Caller(who, roles) = caller;
    if !roles.reads_all() {
        let (key, me) = (id.clone(), who.name.clone());
        let mine = state
            .pipeline
            .store()
            .run(move |c| Ok(recordings::get_session(c, &key)?.identity == me))
            .await;
        if !matches!(mine, Ok(true)) {
            return Err(ApiError(
                axum::http::StatusCode::NOT_FOUND,
                format!("no session {id}"),
            ));
        }
    }
    let (session, events) = state
        .pipeline
        .store()
        .run(move |c| {
            let s = recordings::get_session(c, &id)?;
            let events = match s.archive {
                Some(_) => Vec::new(),
                None => recordings::events(c, &id)?,
            };
            Ok((s, events))
        })
        .await?;
    let Some(key) = session.archive.clone() else {
        return Ok((session, events));
    };
    let archive = state.archive.as_ref().ok_or_else(|| {
        ApiError(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "session {} is archived at {key}, and no object storage is configured",
                session.id
            ),
        )
    })?;
    let events = archive
        .events(&session.id, &key)
        .await
        .map_err(|e| ApiError(axum::http::StatusCode::BAD_GATEWAY, e.to_string()))?;
    Ok((session, events))
}

/// A session with its chain check.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SessionDetail {
    /// The session.
    #[serde(flatten)]
    pub session: SessionRow,
    /// Events stored so far.
    pub events_stored: usize,
    /// `ok`, or where the hash chain breaks.
    pub chain: String,
}

/// `GET /api/v1/sessions/{id}`.
pub async fn show(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SessionDetail>, ApiError> {
    read_your_writes(&state).await?;
    let (session, events) = load(&state, id, &caller).await?;
    Ok(Json(SessionDetail {
        events_stored: events.len(),
        chain: chain_verdict(&session, &events),
        session,
    }))
}

/// `ok`, or where the hash chain of `session`'s `events` breaks.
pub(super) fn chain_verdict(session: &SessionRow, events: &[EventRow]) -> String {
    let verdict = chain::verify(
        &session.id,
        events.iter().map(|e| {
            (
                e.seq,
                e.ts_us,
                e.kind.as_str(),
                e.data_json.as_str(),
                e.hash.as_str(),
            )
        }),
    );
    match verdict {
        Ok(()) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

/// `GET /api/v1/sessions/{id}/events`: the recording as JSON lines, one stored event each
/// (`seq`, `ts_us`, `hash`, `event`).
pub async fn events(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    read_your_writes(&state).await?;
    let (_, rows) = load(&state, id, &caller).await?;
    let mut out = String::new();
    for e in rows {
        out.push_str(&format!(
            "{{\"session_id\":{},\"seq\":{},\"ts_us\":{},\"hash\":\"{}\",\"event\":{}}}\n",
            serde_json::Value::String(e.session_id),
            e.seq,
            e.ts_us,
            e.hash,
            e.data_json
        ));
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], out))
}

/// `GET /api/v1/audit?action=&actor=&session=&connection=&outcome=&since_us=&until_us=&limit=&cursor=`:
/// the newest matching audit events, oldest first; a full page names the next (older) one in
/// `X-Next-Cursor`.
pub async fn audit(
    State(state): State<ApiState>,
    Reader(_): Reader,
    Query(f): Query<sluice_store::AuditFilter>,
) -> Result<impl IntoResponse, ApiError> {
    read_your_writes(&state).await?;
    let page = state
        .pipeline
        .store()
        .run(move |c| recordings::audit_page(c, &f))
        .await?;
    let mut headers = axum::http::HeaderMap::new();
    if let Some(c) = page.next_cursor {
        headers.insert("x-next-cursor", axum::http::HeaderValue::from(c));
    }
    let mut events: Vec<AuditEvent> = page.events;
    events.reverse();
    Ok((headers, Json(events)))
}

/// `GET /api/v1/signing-keys`: the public keys that verify session manifests (old ones stay).
pub async fn signing_keys(
    State(state): State<ApiState>,
    Reader(_): Reader,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let keys = state
        .pipeline
        .store()
        .run(|c| sluice_store::signing::public_keys(c))
        .await?;
    Ok(Json(
        keys.into_iter()
            .map(|(key_id, public_hex)| serde_json::json!({ "key_id": key_id, "public_hex": public_hex }))
            .collect(),
    ))
}

/// `?after=SEQ` of a live stream: resume after that event.
#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
pub struct AfterQuery {
    /// Send the recorded events after this one first (the `Last-Event-ID` header does the
    /// same, so a reconnecting `EventSource` misses nothing).
    pub after: Option<u64>,
}

/// `GET /api/v1/live/sessions/{id}?after=SEQ`: a live session's events as they are recorded
/// (masked, like the recording), as server-sent events named by kind (`query`, `io`, `end`,
/// …) with `{"seq", "ts_us", "event"}` and the event's number as its SSE id; with `after`
/// (or `Last-Event-ID`), the recorded events after that one come first. The stream ends
/// with the session. Admins and auditors watch any session, a user its own.
pub async fn watch(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<AfterQuery>,
    headers: axum::http::HeaderMap,
) -> Result<
    axum::response::sse::Sse<
        impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
    ApiError,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures_util::StreamExt;
    use tokio::sync::broadcast::error::RecvError;
    let not_live = || {
        ApiError(
            axum::http::StatusCode::NOT_FOUND,
            format!("no live session {id}"),
        )
    };
    let (identity, rx) = state.pipeline.live().watch(&id).ok_or_else(not_live)?;
    if !caller.1.reads_all() && identity != caller.0.name {
        return Err(not_live());
    }
    let event =
        |seq: u64, ts_us: i64, kind: &str, json: &str| -> Result<Event, std::convert::Infallible> {
            Ok(Event::default()
                .event(kind)
                .id(seq.to_string())
                .data(format!(
                    "{{\"seq\":{seq},\"ts_us\":{ts_us},\"event\":{json}}}"
                )))
        };
    let after = q.after.or_else(|| {
        headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    });
    // Subscribed first, then what was recorded since `after`: nothing falls in between.
    let mut backlog = Vec::new();
    let mut sent = after;
    if let Some(after) = after {
        read_your_writes(&state).await?;
        let (_, rows) = load(&state, id.clone(), &caller).await?;
        for e in rows.iter().filter(|e| e.seq > after) {
            backlog.push(event(e.seq, e.ts_us, &e.kind, &e.data_json));
            sent = Some(e.seq);
        }
    }
    let live = futures_util::stream::unfold(rx, move |mut rx| async move {
        loop {
            let item = match rx.recv().await {
                Ok(e) if sent.is_some_and(|s| e.seq <= s) => continue,
                Ok(e) => event(e.seq, e.ts_us, e.kind, &e.json),
                Err(RecvError::Lagged(n)) => {
                    Ok(Event::default().event("lagged").data(n.to_string()))
                }
                Err(RecvError::Closed) => return None,
            };
            return Some((item, rx));
        }
    });
    let stream = futures_util::stream::iter(backlog).chain(live);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
