//! Admin endpoints: service accounts, tokens, connections, grants. Every change is audited.

use super::auth::{Admin, Caller, Peer, Reader};
use super::{ApiError, ApiState};
use crate::config::{build_connection, ConnectionConfig};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use sluice_core::{Connection, Grant, Identity, Outcome};
use sluice_pipeline::audit;
use sluice_store::{catalog, tokens, TokenInfo};

/// Audits an admin action by `who` on `target`, with an optional reason.
pub(super) fn audit_change_because(
    state: &ApiState,
    who: &Identity,
    peer: &Peer,
    action: &str,
    target: String,
    reason: Option<String>,
) {
    let mut e = audit::by(who, action, Outcome::Success);
    e.source = Some(peer.0.to_string());
    e.target = Some(target);
    e.reason = reason;
    state.pipeline.audit(e);
}

pub(super) fn audit_change(
    state: &ApiState,
    who: &Identity,
    peer: &Peer,
    action: &str,
    target: String,
) {
    audit_change_because(state, who, peer, action, target, None);
}

/// `GET /api/v1/whoami`: the calling identity.
pub async fn whoami(Caller(who, roles): Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        roles: roles.names(),
        identity: who,
    })
}

/// Answer of `GET /api/v1/whoami`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct WhoAmI {
    /// The identity.
    #[serde(flatten)]
    pub identity: Identity,
    /// Its roles (`admin`, `auditor`, `approver`, `user`).
    pub roles: Vec<&'static str>,
}

/// Body of `POST /api/v1/service-accounts`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct NewServiceAccount {
    /// Name (unique among identities).
    pub name: String,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Token lifetime in seconds; none = no expiry.
    pub ttl_seconds: Option<u64>,
}

/// Answer of `POST /api/v1/service-accounts`: the only time the token is shown.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct IssuedToken {
    /// The token (secret).
    pub token: String,
    /// The token's metadata.
    #[serde(flatten)]
    pub info: TokenInfo,
}

/// `POST /api/v1/service-accounts`: creates a service account and its first token.
pub async fn create_service_account(
    State(state): State<ApiState>,
    Admin(who): Admin,
    Extension(peer): Extension<Peer>,
    Json(req): Json<NewServiceAccount>,
) -> Result<(StatusCode, Json<IssuedToken>), ApiError> {
    if !sluice_core::ConnectionName::is_valid(&req.name) {
        return Err(ApiError::bad_request(
            "invalid name: use 1-63 characters of letters, digits, '.', '_', '-'",
        ));
    }
    if req.groups.iter().any(|g| g.is_empty() || g.len() > 128) {
        return Err(ApiError::bad_request("invalid group name"));
    }
    let ttl_us = match req.ttl_seconds {
        Some(s) => Some(
            i64::try_from(s)
                .ok()
                .and_then(|s| s.checked_mul(1_000_000))
                .ok_or_else(|| ApiError::bad_request("ttl too large"))?,
        ),
        None => None,
    };
    let (name, groups) = (req.name.clone(), req.groups.clone());
    let (info, token) = state
        .pipeline
        .store()
        .run(move |c| tokens::create_service_account(c, &name, &groups, ttl_us))
        .await?;
    audit_change(&state, &who, &peer, "service_account.create", req.name);
    audit_change(&state, &who, &peer, "token.create", info.id.clone());
    Ok((
        StatusCode::CREATED,
        Json(IssuedToken {
            token: token.expose().clone(),
            info,
        }),
    ))
}

/// `GET /api/v1/tokens`: all tokens, without secrets.
pub async fn list_tokens(
    State(state): State<ApiState>,
    Reader(_): Reader,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    Ok(Json(state.pipeline.store().run(|c| tokens::list(c)).await?))
}

/// `POST /api/v1/tokens/{id}/revoke`: revokes a token; effective for new sessions at once.
pub async fn revoke_token(
    State(state): State<ApiState>,
    Admin(who): Admin,
    Extension(peer): Extension<Peer>,
    Path(id): Path<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    let tid = id.clone();
    let info = state
        .pipeline
        .store()
        .run(move |c| tokens::revoke(c, &tid))
        .await?;
    audit_change(&state, &who, &peer, "token.revoke", id);
    Ok(Json(info))
}

/// `GET /api/v1/connections`.
pub async fn list_connections(
    State(state): State<ApiState>,
    Reader(_): Reader,
) -> Json<Vec<Connection>> {
    Json(state.pipeline.catalog().connections().cloned().collect())
}

/// `GET /api/v1/connections/{name}`.
pub async fn show_connection(
    State(state): State<ApiState>,
    Reader(_): Reader,
    Path(name): Path<String>,
) -> Result<Json<Connection>, ApiError> {
    state
        .pipeline
        .catalog()
        .connection(&name)
        .cloned()
        .map(Json)
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("connection {name:?} not found"),
            )
        })
}

/// `POST /api/v1/connections`: adds a runtime connection.
pub async fn add_connection(
    State(state): State<ApiState>,
    Admin(who): Admin,
    Extension(peer): Extension<Peer>,
    Json(req): Json<ConnectionConfig>,
) -> Result<(StatusCode, Json<Connection>), ApiError> {
    if req.guardrails.is_some() || req.masking.is_some() || req.access.is_some() {
        // Not stored yet: refusing beats silently running the connection without them.
        return Err(ApiError::bad_request(
            "guardrails, masking and access are set in the config file; runtime connections cannot carry them yet",
        ));
    }
    let conn = build_connection(&req, false).map_err(ApiError::bad_request)?;
    if state.pipeline.catalog().connection(&conn.name.0).is_some() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("connection {:?} already exists", conn.name.0),
        ));
    }
    let c = conn.clone();
    state
        .pipeline
        .store()
        .run(move |db| catalog::add_connection(db, &c))
        .await?;
    state.reload_catalog().await?;
    audit_change(&state, &who, &peer, "connection.add", conn.name.0.clone());
    Ok((StatusCode::CREATED, Json(conn)))
}

/// `DELETE /api/v1/connections/{name}`: removes a runtime connection and its grants.
pub async fn remove_connection(
    State(state): State<ApiState>,
    Admin(who): Admin,
    Extension(peer): Extension<Peer>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.config_connections.iter().any(|c| c.name.0 == name) {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("connection {name:?} is defined in the config file; remove it there"),
        ));
    }
    let n = name.clone();
    state
        .pipeline
        .store()
        .run(move |db| catalog::remove_connection(db, &n))
        .await?;
    state.reload_catalog().await?;
    audit_change(&state, &who, &peer, "connection.remove", name);
    Ok(StatusCode::NO_CONTENT)
}

/// A grant in requests (body of POST, query of DELETE).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct GrantRequest {
    /// Group.
    pub group: String,
    /// Connection.
    pub connection: String,
}

/// `GET /api/v1/grants`.
pub async fn list_grants(State(state): State<ApiState>, Reader(_): Reader) -> Json<Vec<Grant>> {
    Json(state.pipeline.catalog().grants().to_vec())
}

/// `POST /api/v1/grants`: grants a group access to a connection.
pub async fn add_grant(
    State(state): State<ApiState>,
    Admin(who): Admin,
    Extension(peer): Extension<Peer>,
    Json(req): Json<GrantRequest>,
) -> Result<StatusCode, ApiError> {
    if req.group.is_empty() {
        return Err(ApiError::bad_request("group must not be empty"));
    }
    if state
        .pipeline
        .catalog()
        .connection(&req.connection)
        .is_none()
    {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("connection {:?} not found", req.connection),
        ));
    }
    change_grant(&state, &who, &peer, &req, "grant.add", catalog::add_grant).await?;
    Ok(StatusCode::CREATED)
}

/// `DELETE /api/v1/grants?group=G&connection=C`.
pub async fn remove_grant(
    State(state): State<ApiState>,
    Admin(who): Admin,
    Extension(peer): Extension<Peer>,
    Query(req): Query<GrantRequest>,
) -> Result<StatusCode, ApiError> {
    change_grant(
        &state,
        &who,
        &peer,
        &req,
        "grant.remove",
        catalog::remove_grant,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Applies a runtime grant change: refuses config-file grants, writes the store, swaps the
/// catalog, audits.
async fn change_grant(
    state: &ApiState,
    who: &Identity,
    peer: &Peer,
    req: &GrantRequest,
    action: &str,
    write: fn(&sluice_store::Db, &str, &str) -> Result<(), sluice_store::StoreError>,
) -> Result<(), ApiError> {
    if state
        .config_grants
        .iter()
        .any(|g| g.group == req.group && g.connection.0 == req.connection)
    {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "grant is defined in the config file; change it there".into(),
        ));
    }
    let (g, c) = (req.group.clone(), req.connection.clone());
    state
        .pipeline
        .store()
        .run(move |db| write(db, &g, &c))
        .await?;
    state.reload_catalog().await?;
    let target = format!("{} -> {}", req.group, req.connection);
    audit_change(state, who, peer, action, target);
    Ok(())
}
