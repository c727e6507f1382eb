//! Reviews and access requests: list, show, approve, deny; request access.
//!
//! Any authenticated identity may call these; what it sees and may do depends on who it is:
//! admins see every review, others the ones they asked for or may decide. Deciding follows
//! the review's rules (approver groups, approvals needed, no self-approval).

use super::auth::Caller;
use super::roles::RoleSet;
use super::{ApiError, ApiState};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use sluice_core::{Identity, Review};
use sluice_pipeline::reviews::may_decide;
use sluice_pipeline::{AccessError, DecideError};
use sluice_store::{reviews, StoreError};

/// Query of `GET /api/v1/reviews`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ListQuery {
    /// Only pending reviews.
    #[serde(default)]
    pub pending: bool,
    /// At most this many (default 100).
    pub limit: Option<u32>,
}

pub(crate) fn visible(review: &Review, who: &Identity, roles: RoleSet) -> bool {
    roles.reads_all()
        || roles.approver
        || review.requester == who.name
        || may_decide(review, who, roles.default_approver()).is_ok()
}

/// `GET /api/v1/reviews`: newest first.
pub async fn list(
    State(state): State<ApiState>,
    Caller(who, roles): Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<Review>>, ApiError> {
    let limit = q.limit.unwrap_or(100).min(1000) as usize;
    // Visibility depends on the caller, so filter page by page until `limit` are found.
    const PAGE: u32 = 500;
    let mut shown = Vec::new();
    let mut offset = 0;
    loop {
        let pending = q.pending;
        let page = state
            .pipeline
            .store()
            .run(move |c| reviews::list(c, pending, PAGE, offset))
            .await?;
        let last = page.len() < PAGE as usize;
        shown.extend(page.into_iter().filter(|r| visible(r, &who, roles)));
        if last || shown.len() >= limit {
            break;
        }
        offset += PAGE;
    }
    shown.truncate(limit);
    Ok(Json(shown))
}

/// `GET /api/v1/reviews/{id}`.
pub async fn show(
    State(state): State<ApiState>,
    Caller(who, roles): Caller,
    Path(id): Path<String>,
) -> Result<Json<Review>, ApiError> {
    let key = id.clone();
    let review = state
        .pipeline
        .store()
        .run(move |c| reviews::get(c, &key))
        .await?;
    if !visible(&review, &who, roles) {
        // Do not confirm that it exists.
        return Err(StoreError::NotFound(format!("review {id:?}")).into());
    }
    Ok(Json(review))
}

/// Body of approve and deny.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct DecideBody {
    /// The approver's reason (kept with the review and in the recording).
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /api/v1/reviews/{id}/approve`.
pub async fn approve(
    state: State<ApiState>,
    who: Caller,
    id: Path<String>,
    body: Option<Json<DecideBody>>,
) -> Result<Json<Review>, ApiError> {
    decide(state, who, id, body, true).await
}

/// `POST /api/v1/reviews/{id}/deny`.
pub async fn deny(
    state: State<ApiState>,
    who: Caller,
    id: Path<String>,
    body: Option<Json<DecideBody>>,
) -> Result<Json<Review>, ApiError> {
    decide(state, who, id, body, false).await
}

async fn decide(
    State(state): State<ApiState>,
    Caller(who, roles): Caller,
    Path(id): Path<String>,
    body: Option<Json<DecideBody>>,
    approve: bool,
) -> Result<Json<Review>, ApiError> {
    let reason = body
        .and_then(|b| b.0.reason)
        .filter(|r| !r.trim().is_empty());
    match state
        .pipeline
        .decide(&id, &who, roles.default_approver(), approve, reason)
        .await
    {
        Ok(r) => Ok(Json(r)),
        Err(e) => {
            let status = match &e {
                DecideError::NotFound(_) => StatusCode::NOT_FOUND,
                DecideError::Closed { .. } | DecideError::AlreadyApproved(_) => {
                    StatusCode::CONFLICT
                }
                DecideError::SelfApproval | DecideError::NotApprover(_) => StatusCode::FORBIDDEN,
                DecideError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            Err(ApiError(status, e.to_string()))
        }
    }
}

/// Body of `POST /api/v1/access-requests`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AccessBody {
    /// Connection.
    pub connection: String,
    /// How long (`30m`, `1h`, or seconds).
    pub duration: String,
    /// Why.
    pub reason: String,
}

/// `POST /api/v1/access-requests`: the caller asks for time-boxed access.
pub async fn request_access(
    State(state): State<ApiState>,
    Caller(who, _): Caller,
    Json(body): Json<AccessBody>,
) -> Result<(StatusCode, Json<Review>), ApiError> {
    let duration = sluice_policy::parse_duration(&body.duration).ok_or_else(|| {
        ApiError::bad_request(format!(
            "invalid duration {:?}: use e.g. 30m, 1h, 90s",
            body.duration
        ))
    })?;
    match state
        .pipeline
        .request_access(&who, &body.connection, duration.as_secs(), body.reason)
        .await
    {
        Ok(r) => Ok((StatusCode::CREATED, Json(r))),
        Err(AccessError::Store(e)) => Err(e.into()),
        Err(AccessError::UnknownConnection(c)) => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("connection {c:?} does not exist"),
        )),
        Err(e @ AccessError::NoGrant { .. }) => Err(ApiError(StatusCode::FORBIDDEN, e.to_string())),
        Err(e) => Err(ApiError::bad_request(e.to_string())),
    }
}

/// Longest a live stream stays open: the client reconnects (EventSource does on its own),
/// and its credential is checked again.
const STREAM_FOR: std::time::Duration = std::time::Duration::from_secs(600);

/// `GET /api/v1/live/reviews`: server-sent events, one `review` event (the review as JSON)
/// each time a review the caller may see is created or changes; `lagged` when the caller
/// fell behind and missed some (it then lists them again).
pub async fn follow(
    State(state): State<ApiState>,
    Caller(who, roles): Caller,
) -> axum::response::sse::Sse<
    impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use tokio::sync::broadcast::error::RecvError;
    let rx = state.pipeline.reviews().follow();
    let until = tokio::time::Instant::now() + STREAM_FOR;
    let stream = futures_util::stream::unfold(rx, move |mut rx| {
        let who = who.clone();
        async move {
            loop {
                let next = tokio::time::timeout_at(until, rx.recv()).await.ok()?;
                let event = match next {
                    Ok(review) if visible(&review, &who, roles) => Event::default()
                        .event("review")
                        .json_data(&review)
                        .unwrap_or_default(),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => {
                        Event::default().event("lagged").data(n.to_string())
                    }
                    Err(RecvError::Closed) => return None,
                };
                return Some((Ok(event), rx));
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
