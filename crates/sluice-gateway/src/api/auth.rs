//! Bearer-token authentication of API calls.

use super::{ApiError, ApiState};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use sluice_core::{Fault, Identity, Outcome, Secret};
use sluice_pipeline::audit;
use std::net::SocketAddr;

/// The client address of an API request.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// An authenticated admin making the request.
pub struct Admin(pub Identity);

/// Any authenticated identity making the request (requesters and approvers).
pub struct Caller(pub Identity);

impl FromRequestParts<ApiState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        authenticate(parts, state, true).await.map(Admin)
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        authenticate(parts, state, false).await.map(Caller)
    }
}

/// Authenticates the bearer token; with `admin`, the identity must be an admin too.
async fn authenticate(
    parts: &mut Parts,
    state: &ApiState,
    admin: bool,
) -> Result<Identity, ApiError> {
    let peer = parts.extensions.get::<Peer>().map(|p| p.0.to_string());
    let token = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| Secret::new(t.trim().to_string()));
    let fail = |status: StatusCode, reason: String, identity: Option<&Identity>| {
        let mut e = match identity {
            Some(i) => audit::by(i, "api.auth", Outcome::Failure),
            None => audit::event("api.auth", Outcome::Failure),
        };
        e.source = peer.clone();
        e.reason = Some(format!("{} {}: {reason}", parts.method, parts.uri.path()));
        e.fault = Some(Fault::Client);
        state.pipeline.audit(e);
        ApiError(status, reason)
    };
    let Some(token) = token else {
        return Err(fail(
            StatusCode::UNAUTHORIZED,
            "missing bearer token".into(),
            None,
        ));
    };
    match state.pipeline.authenticate(&token).await {
        Ok(i) if i.is_admin() || !admin => Ok(i),
        Ok(i) => Err(fail(
            StatusCode::FORBIDDEN,
            format!("identity {:?} is not an admin", i.name),
            Some(&i),
        )),
        Err(sluice_pipeline::OpenError::Store(e)) => Err(e.into()),
        // The identity provider is down: not the caller's fault.
        Err(e @ sluice_pipeline::OpenError::Jwt(sluice_oidc::JwtError::Provider(_))) => {
            Err(fail(StatusCode::SERVICE_UNAVAILABLE, e.to_string(), None))
        }
        Err(e) => Err(fail(StatusCode::UNAUTHORIZED, e.to_string(), None)),
    }
}
