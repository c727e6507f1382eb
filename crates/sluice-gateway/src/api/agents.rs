//! Agents: created by an admin with a one-time enrollment token (or a pinned public key),
//! listed with their live tunnel, revoked at once. And the agent's own two endpoints:
//! enrollment (the token is the credential) and the tunnel upgrade (a signed proof bound to
//! the TLS connection is).

use super::admin::audit_change;
use super::auth::{Admin, Peer, Reader};
use super::{ApiError, ApiState};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use sluice_core::{Fault, Outcome, Secret};
use sluice_pipeline::audit;
use sluice_store::agents::{self, AgentRecord};
use sluice_store::StoreError;
use sluice_tunnel::gateway::AgentHello;
use sluice_tunnel::{proto, AgentStatus};
use tracing::{info, warn};

/// The TLS exporter value of the API connection a request came on.
#[derive(Clone, Copy, Debug)]
pub struct TlsBinding(pub proto::Binding);

/// Audits agent `name`'s (or an unnamed caller's) `action` from `peer`; a failure is the
/// client's fault.
fn audit_agent(
    pipeline: &sluice_pipeline::Pipeline,
    name: Option<&str>,
    action: &str,
    outcome: Outcome,
    peer: Peer,
    reason: Option<String>,
) {
    let mut e = match name {
        Some(n) => audit::by_agent(n, action, outcome),
        None => audit::event(action, outcome),
    };
    e.source = Some(peer.0.to_string());
    e.reason = reason;
    if outcome == Outcome::Failure {
        e.fault = Some(Fault::Client);
    }
    pipeline.audit(e);
}

/// Default lifetime of an enrollment token.
const DEFAULT_TOKEN_TTL_S: u64 = 3600;

/// Body of `POST /api/v1/agents`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct NewAgent {
    /// Name connections use in `via:`.
    pub name: String,
    /// Lifetime of the enrollment token in seconds (default one hour).
    pub ttl_seconds: Option<u64>,
    /// Pin this public key (base64) at once instead of issuing a token.
    pub public_key: Option<String>,
}

/// Answer of `POST /api/v1/agents`: the only time the token is shown.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CreatedAgent {
    /// The agent.
    #[serde(flatten)]
    pub agent: AgentRecord,
    /// The enrollment token (secret), unless a key was pinned.
    pub token: Option<String>,
}

/// An agent with its tunnel to this gateway, if it has one.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AgentView {
    /// The stored agent.
    #[serde(flatten)]
    pub agent: AgentRecord,
    /// Its live tunnel to this gateway.
    pub tunnel: Option<AgentStatus>,
}

/// `POST /api/v1/agents`: creates an agent.
pub async fn create(
    State(state): State<ApiState>,
    Admin(who): Admin,
    Extension(peer): Extension<Peer>,
    Json(req): Json<NewAgent>,
) -> Result<(StatusCode, Json<CreatedAgent>), ApiError> {
    if !sluice_core::ConnectionName::is_valid(&req.name) {
        return Err(ApiError::bad_request(
            "invalid agent name: use 1-63 characters of letters, digits, '.', '_', '-'",
        ));
    }
    let key = match &req.public_key {
        Some(k) => Some(proto::decode_key(k).ok_or_else(|| {
            ApiError::bad_request("public_key must be a base64 Ed25519 public key (32 bytes)")
        })?),
        None => None,
    };
    let ttl_us = req
        .ttl_seconds
        .unwrap_or(DEFAULT_TOKEN_TTL_S)
        .min(30 * 86_400) as i64
        * 1_000_000;
    let (name, by) = (req.name.clone(), who.name.clone());
    let (agent, token) = state
        .pipeline
        .store()
        .run(move |c| agents::create(c, &name, key.as_deref(), ttl_us, &by))
        .await?;
    audit_change(&state, &who, &peer, "agent.create", req.name);
    Ok((
        StatusCode::CREATED,
        Json(CreatedAgent {
            agent,
            token: token.map(|t| t.expose().clone()),
        }),
    ))
}

/// `GET /api/v1/agents`: every agent, with its live tunnel to this gateway.
pub async fn list(
    State(state): State<ApiState>,
    Reader(_): Reader,
) -> Result<Json<Vec<AgentView>>, ApiError> {
    let stored = state.pipeline.store().run(|c| agents::list(c)).await?;
    let live = state.pipeline.tunnels().status();
    Ok(Json(
        stored
            .into_iter()
            .map(|agent| AgentView {
                tunnel: live.iter().find(|s| s.name == agent.name).cloned(),
                agent,
            })
            .collect(),
    ))
}

/// `POST /api/v1/agents/{name}/revoke`: refuses the agent from now on and closes its tunnel
/// (sessions through it end).
pub async fn revoke(
    State(state): State<ApiState>,
    Admin(who): Admin,
    Extension(peer): Extension<Peer>,
    Path(name): Path<String>,
) -> Result<Json<AgentRecord>, ApiError> {
    let n = name.clone();
    let agent = state
        .pipeline
        .store()
        .run(move |c| agents::revoke(c, &n))
        .await?;
    let was_connected = state.pipeline.tunnels().disconnect(&name);
    info!(agent = %name, was_connected, "agent revoked");
    audit_change(&state, &who, &peer, "agent.revoke", name);
    Ok(Json(agent))
}

/// Body of `POST /api/v1/agents/enroll`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Enrollment {
    /// The one-time enrollment token.
    pub token: String,
    /// The agent's Ed25519 public key (base64).
    pub public_key: String,
    /// The agent's version.
    #[serde(default)]
    pub version: Option<String>,
}

/// `POST /api/v1/agents/enroll`: trades an enrollment token for the pinning of the agent's
/// key. No bearer token: the enrollment token is the credential.
pub async fn enroll(
    State(state): State<ApiState>,
    Extension(peer): Extension<Peer>,
    Json(req): Json<Enrollment>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Some(key) = proto::decode_key(&req.public_key) else {
        return Err(ApiError::bad_request(
            "public_key must be a base64 Ed25519 public key (32 bytes)",
        ));
    };
    let token = Secret::new(req.token);
    let result = state
        .pipeline
        .store()
        .run(move |c| agents::enroll(c, &token, &key))
        .await;
    match result {
        Ok(agent) => {
            let version = req.version.map(|v| format!("agent version {v}"));
            audit_agent(
                &state.pipeline,
                Some(&agent.name),
                "agent.enroll",
                Outcome::Success,
                peer,
                version,
            );
            Ok((
                StatusCode::CREATED,
                Json(serde_json::json!({ "name": agent.name })),
            ))
        }
        Err(StoreError::Refused(why)) => {
            audit_agent(
                &state.pipeline,
                None,
                "agent.enroll",
                Outcome::Failure,
                peer,
                Some(why.clone()),
            );
            Err(ApiError(StatusCode::UNAUTHORIZED, why))
        }
        Err(other) => Err(other.into()),
    }
}

/// `GET /api/v1/agents/tunnel` with `Upgrade: sluice-tunnel/1`: checks the agent's proof
/// and hands the upgraded connection to the tunnel registry.
pub async fn tunnel(
    State(state): State<ApiState>,
    Extension(peer): Extension<Peer>,
    binding: Option<Extension<TlsBinding>>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let hello = match check_proof(&state, req.headers(), binding.map(|b| b.0 .0), peer).await {
        Ok(h) => h,
        Err((status, name, why)) => {
            audit_agent(
                &state.pipeline,
                name.as_deref(),
                "agent.connect",
                Outcome::Failure,
                peer,
                Some(why.clone()),
            );
            warn!(peer = %peer.0, agent = ?name, reason = %why, "agent tunnel refused");
            return Err(ApiError(status, why));
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let version = format!("agent version {}", hello.version);
    audit_agent(
        &state.pipeline,
        Some(&hello.name),
        "agent.connect",
        Outcome::Success,
        peer,
        Some(version),
    );
    let pipeline = state.pipeline.clone();
    tokio::spawn(async move {
        let name = hello.name.clone();
        let ended = match on_upgrade.await {
            Ok(io) => pipeline.tunnels().serve(hello, io).await.err(),
            Err(e) => Some(e),
        };
        let reason = ended.map(|e| e.to_string());
        audit_agent(
            &pipeline,
            Some(&name),
            "agent.disconnect",
            Outcome::Success,
            peer,
            reason,
        );
    });
    Ok((
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, "upgrade"),
            (header::UPGRADE, proto::UPGRADE),
        ],
    )
        .into_response())
}

type Refusal = (StatusCode, Option<String>, String);

async fn check_proof(
    state: &ApiState,
    headers: &HeaderMap,
    binding: Option<proto::Binding>,
    peer: Peer,
) -> Result<AgentHello, Refusal> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if !text(header::UPGRADE.as_str()).is_some_and(|u| u.eq_ignore_ascii_case(proto::UPGRADE)) {
        return Err((
            StatusCode::UPGRADE_REQUIRED,
            None,
            format!("this endpoint needs Upgrade: {}", proto::UPGRADE),
        ));
    }
    let unauthorized = |name: Option<&str>, why: &str| {
        (
            StatusCode::UNAUTHORIZED,
            name.map(str::to_string),
            why.to_string(),
        )
    };
    let Some(name) = text(proto::HEADER_NAME) else {
        return Err(unauthorized(None, "missing agent name"));
    };
    let (Some(sig), Some(binding)) = (text(proto::HEADER_SIGNATURE), binding) else {
        return Err(unauthorized(Some(name), "missing proof of the agent key"));
    };
    let n = name.to_string();
    let record = match state
        .pipeline
        .store()
        .run(move |c| agents::get(c, &n))
        .await
    {
        Ok(r) => r,
        Err(StoreError::NotFound(_)) => return Err(unauthorized(Some(name), "unknown agent")),
        Err(e) => {
            warn!(error = %e, "store error checking an agent");
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                Some(name.to_string()),
                "internal store error".into(),
            ));
        }
    };
    if record.revoked_us.is_some() {
        return Err((
            StatusCode::FORBIDDEN,
            Some(name.to_string()),
            "agent is revoked".into(),
        ));
    }
    let Some(key) = record.public_key else {
        return Err(unauthorized(Some(name), "agent is not enrolled yet"));
    };
    if !proto::verify(&key, name, &binding, sig) {
        return Err(unauthorized(
            Some(name),
            "proof does not match the agent's pinned key",
        ));
    }
    Ok(AgentHello {
        name: name.to_string(),
        version: text(proto::HEADER_VERSION).unwrap_or("unknown").to_string(),
        peer: peer.0,
    })
}
