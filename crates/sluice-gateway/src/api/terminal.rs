//! Recorded and live terminals for players: screen frames (`sluice_terminal::replay`), the
//! asciicast download, and the list of live sessions with what each recorded so far.

use super::auth::{Caller, Reader};
use super::sessions::{load, read_your_writes};
use super::{ApiError, ApiState};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use sluice_pipeline::live::LiveSession;
use sluice_store::EventRow;
use sluice_terminal::recording;
use sluice_terminal::replay::{self, Follow, Replay};

/// `?channel=`: which channel's terminal (default: the first shell).
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct ChannelQuery {
    /// An SSH channel number.
    pub channel: Option<u64>,
}

/// Stored events as `{"ts_us", "event"}` values.
fn values(rows: &[EventRow]) -> Vec<Value> {
    rows.iter()
        .map(|e| {
            let event: Value = serde_json::from_str(&e.data_json).unwrap_or(Value::Null);
            json!({ "ts_us": e.ts_us, "event": event })
        })
        .collect()
}

fn no_terminal(id: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("session {id} recorded no terminal"),
    )
}

/// `GET /api/v1/sessions/{id}/terminal?channel=`: the recorded terminal as screen frames.
pub async fn frames(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ChannelQuery>,
) -> Result<Json<Replay>, ApiError> {
    read_your_writes(&state).await?;
    let (_, rows) = load(&state, id.clone(), &caller).await?;
    let replay = tokio::task::spawn_blocking(move || {
        recording::terminal(&values(&rows), q.channel).map(|t| replay::replay(&t))
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    replay.map(Json).ok_or_else(|| no_terminal(&id))
}

/// `GET /api/v1/sessions/{id}/asciicast?channel=`: the recorded terminal as an asciicast v2
/// file (`asciinema play` plays it).
pub async fn asciicast(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ChannelQuery>,
) -> Result<impl IntoResponse, ApiError> {
    read_your_writes(&state).await?;
    let (_, rows) = load(&state, id.clone(), &caller).await?;
    let t = recording::terminal(&values(&rows), q.channel).ok_or_else(|| no_terminal(&id))?;
    let disposition = format!("attachment; filename=\"{id}.cast\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-asciicast".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        recording::to_asciicast(&t),
    ))
}

/// `GET /api/v1/live/sessions`: the sessions live on this gateway, with what each recorded
/// so far.
pub async fn live(State(state): State<ApiState>, Reader(_): Reader) -> Json<Vec<LiveSession>> {
    Json(state.pipeline.live().list())
}

/// The terminal of session `id` as recorded so far: the follower, the last stored event's
/// number and time.
async fn snapshot(
    state: &ApiState,
    id: &str,
    caller: &Caller,
) -> Result<(Follow, Option<u64>, i64), ApiError> {
    read_your_writes(state).await?;
    let (session, rows) = load(state, id.to_string(), caller).await?;
    let mut follow = Follow::new(session.started_us);
    let mut last = (None, session.started_us);
    for e in &rows {
        if let Ok(event) = serde_json::from_str::<Value>(&e.data_json) {
            follow.apply(&event);
        }
        last = (Some(e.seq), e.ts_us);
    }
    Ok((follow, last.0, last.1))
}

/// `GET /api/v1/live/sessions/{id}/terminal`: a live session's terminal as server-sent
/// events: `frame` events (the whole screen first, then what changed), `end` when the
/// session ends. Admins and auditors watch any session, a user its own.
pub async fn watch(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError>
{
    use tokio::sync::broadcast::error::RecvError;
    let not_live = || ApiError(StatusCode::NOT_FOUND, format!("no live session {id}"));
    // Follow first, then read what was recorded before: nothing falls in between.
    let (identity, rx) = state.pipeline.live().watch(&id).ok_or_else(not_live)?;
    if !caller.1.reads_all() && identity != caller.0.name {
        return Err(not_live());
    }
    let (follow, seen, at_us) = snapshot(&state, &id, &caller).await?;
    let frame = |f: &replay::Frame| {
        Event::default()
            .event("frame")
            .data(serde_json::to_string(f).unwrap_or_default())
    };
    let mut follow = follow;
    let opening: Vec<Result<Event, std::convert::Infallible>> =
        follow.full(at_us).iter().map(|f| Ok(frame(f))).collect();
    let ended = || Event::default().event("end").data("{}");
    let updates =
        futures_util::stream::unfold(Some((rx, follow, seen, state, caller)), move |live| {
            let id = id.clone();
            async move {
                let (mut rx, mut follow, mut seen, state, caller) = live?;
                loop {
                    let e = match rx.recv().await {
                        Ok(e) => e,
                        Err(RecvError::Closed) => return Some((Ok(ended()), None)),
                        // Fallen behind: start again from what is recorded, the whole screen.
                        Err(RecvError::Lagged(_)) => {
                            let Ok((again, upto, at_us)) = snapshot(&state, &id, &caller).await
                            else {
                                return Some((Ok(ended()), None));
                            };
                            (follow, seen) = (again, upto);
                            match follow.full(at_us) {
                                Some(f) => {
                                    return Some((
                                        Ok(frame(&f)),
                                        Some((rx, follow, seen, state, caller)),
                                    ))
                                }
                                None => continue,
                            }
                        }
                    };
                    if seen.is_some_and(|s| e.seq <= s) {
                        continue;
                    }
                    if e.kind == "end" {
                        return Some((Ok(ended()), None));
                    }
                    if let Ok(event) = serde_json::from_str::<Value>(&e.json) {
                        follow.apply(&event);
                    }
                    if let Some(f) = follow.frame(e.ts_us) {
                        return Some((Ok(frame(&f)), Some((rx, follow, seen, state, caller))));
                    }
                }
            }
        });
    use futures_util::StreamExt;
    let stream = futures_util::stream::iter(opening).chain(updates);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
