//! Containment: kill a live session, block and unblock identities. Effective at once, audited.

use super::admin::{audit_change, audit_change_because};
use super::auth::{Admin, Peer, Reader};
use super::{ApiError, ApiState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use sluice_core::EndReason;
use sluice_pipeline::Stop;
use sluice_store::{tokens, IdentityInfo};

/// `POST /api/v1/sessions/{id}/kill`: ends a live session now.
pub async fn kill_session(
    State(state): State<ApiState>,
    Admin(who): Admin,
    Extension(peer): Extension<Peer>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let stop = Stop {
        reason: EndReason::Killed,
        message: format!(
            "terminating connection due to administrator command (session killed by {})",
            who.name
        ),
    };
    if !state.pipeline.live().stop(&id, stop) {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no live session {id:?}"),
        ));
    }
    audit_change(&state, &who, &peer, "session.kill", id.clone());
    Ok(Json(json!({ "killed": id })))
}

/// Body of `POST /api/v1/identities/{name}/block`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct BlockRequest {
    /// Why (kept with the block and in the audit log).
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /api/v1/identities/{name}/block`: revokes the identity's tokens, ends its live
/// sessions and refuses it until unblocked.
pub async fn block(
    State(state): State<ApiState>,
    Admin(who): Admin,
    Extension(peer): Extension<Peer>,
    Path(name): Path<String>,
    body: Option<Json<BlockRequest>>,
) -> Result<Json<Value>, ApiError> {
    if name == who.name {
        return Err(ApiError::bad_request(
            "you cannot block the identity you are acting as",
        ));
    }
    let reason = body.and_then(|b| b.0.reason);
    let (n, r) = (name.clone(), reason.clone());
    let revoked = state
        .pipeline
        .store()
        .run(move |c| tokens::block(c, &n, r.as_deref()))
        .await?;
    let killed = state.pipeline.live().block(&name);
    audit_change_because(&state, &who, &peer, "identity.block", name.clone(), reason);
    Ok(Json(
        json!({ "blocked": name, "tokens_revoked": revoked, "sessions_killed": killed }),
    ))
}

/// `POST /api/v1/identities/{name}/unblock`.
pub async fn unblock(
    State(state): State<ApiState>,
    Admin(who): Admin,
    Extension(peer): Extension<Peer>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let n = name.clone();
    state
        .pipeline
        .store()
        .run(move |c| tokens::unblock(c, &n))
        .await?;
    state.pipeline.live().unblock(&name);
    audit_change(&state, &who, &peer, "identity.unblock", name.clone());
    Ok(Json(json!({ "unblocked": name })))
}

/// `GET /api/v1/identities`.
pub async fn list(
    State(state): State<ApiState>,
    Reader(_): Reader,
) -> Result<Json<Vec<IdentityInfo>>, ApiError> {
    Ok(Json(
        state
            .pipeline
            .store()
            .run(|c| tokens::identities(c))
            .await?,
    ))
}
