//! What `sluice login` needs from the gateway, and `sluice logout`.
//!
//! - `GET /api/v1/login` (no token): the providers people sign in with (issuer, client id,
//!   scopes). The CLI then runs the flow with the provider and trades the ID token at
//!   `POST /api/v1/token/exchange` ([`super::exchange`]).
//! - `POST /api/v1/logout`: revokes the token the request is made with.

use super::admin::audit_change;
use super::auth::{Caller, Peer};
use super::{ApiError, ApiState};
use axum::extract::State;
use axum::{Extension, Json};
use serde_json::{json, Value};
use sluice_store::tokens;

/// `GET /api/v1/login`.
pub async fn providers(State(state): State<ApiState>) -> Json<Value> {
    let list: Vec<Value> = state
        .pipeline
        .identity_providers()
        .map(|v| {
            v.configs()
                .filter_map(|p| {
                    let l = p.login.as_ref()?;
                    Some(json!({
                        "name": p.name,
                        "issuer": p.issuer,
                        "client_id": l.client_id,
                        "scopes": l.scopes,
                    }))
                })
                .collect()
        })
        .unwrap_or_default();
    Json(json!({ "providers": list }))
}

/// `POST /api/v1/logout`: revokes the calling token.
pub async fn logout(
    State(state): State<ApiState>,
    Caller(who, _): Caller,
    Extension(peer): Extension<Peer>,
) -> Result<Json<Value>, ApiError> {
    // Only gateway tokens carry an id; a JWT credential is the provider's to revoke.
    let Some(id) = who.token_id.clone() else {
        return Err(ApiError::bad_request(
            "this credential is not a gateway token; nothing to revoke",
        ));
    };
    let key = id.clone();
    state
        .pipeline
        .store()
        .run(move |c| tokens::revoke(c, &key))
        .await?;
    audit_change(&state, &who, &peer, "auth.logout", id.clone());
    Ok(Json(json!({ "revoked": id })))
}
