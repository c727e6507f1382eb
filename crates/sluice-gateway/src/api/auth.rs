//! Bearer-token authentication of API calls.

use super::roles::RoleSet;
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

/// An authenticated admin or auditor: reads everything, changes nothing.
pub struct Reader(pub Identity);

/// Any authenticated identity making the request (a `user`), with its roles.
pub struct Caller(pub Identity, pub RoleSet);

/// The role an endpoint needs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// The admin role.
    Admin,
    /// The admin or auditor role.
    Reader,
    /// Any identity.
    Any,
}

impl Need {
    fn met_by(self, roles: RoleSet) -> bool {
        match self {
            Need::Admin => roles.admin,
            Need::Reader => roles.reads_all(),
            Need::Any => true,
        }
    }
}

/// The caller the route's gate authenticated, for the handler's extractor.
#[derive(Clone)]
pub(crate) struct Authenticated(pub Identity, pub RoleSet);

/// The caller from the gate when it already holds the role, else authenticated now.
async fn caller(
    parts: &mut Parts,
    state: &ApiState,
    need: Need,
) -> Result<(Identity, RoleSet), ApiError> {
    match parts.extensions.get::<Authenticated>() {
        Some(Authenticated(i, r)) if need.met_by(*r) => Ok((i.clone(), *r)),
        _ => authenticate(parts, state, need).await,
    }
}

impl FromRequestParts<ApiState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        caller(parts, state, Need::Admin)
            .await
            .map(|(i, _)| Admin(i))
    }
}

impl FromRequestParts<ApiState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        caller(parts, state, Need::Reader)
            .await
            .map(|(i, _)| Reader(i))
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        caller(parts, state, Need::Any)
            .await
            .map(|(i, r)| Caller(i, r))
    }
}

/// Authenticates the bearer token and checks that the identity holds the role `need`;
/// refusals are audited (`api.auth`).
pub(crate) async fn authenticate(
    parts: &mut Parts,
    state: &ApiState,
    need: Need,
) -> Result<(Identity, RoleSet), ApiError> {
    let peer = parts.extensions.get::<Peer>().map(|p| p.0.to_string());
    let bearer = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| Secret::new(t.trim().to_string()));
    // The console's pages call the API with their session cookie. A browser sends cookies
    // with other sites' requests too: a change must come from the gateway's own pages.
    let from_cookie = bearer.is_none();
    let token = bearer.or_else(|| {
        super::web_login::cookie(&parts.headers, super::web_login::CONSOLE_COOKIE).map(Secret::new)
    });
    if from_cookie && token.is_some() && !same_origin(parts) {
        let reason = "a request from another site cannot use the console's sign-in".to_string();
        let mut e = audit::event("api.auth", Outcome::Failure);
        e.source = peer.clone();
        e.reason = Some(format!("{} {}: {reason}", parts.method, parts.uri.path()));
        e.fault = Some(Fault::Client);
        state.pipeline.audit(e);
        return Err(ApiError(StatusCode::FORBIDDEN, reason));
    }
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
        Ok(i) => {
            let roles = state.roles.of(&i);
            if need.met_by(roles) {
                return Ok((i, roles));
            }
            let role = match need {
                Need::Admin => "the admin role",
                _ => "the admin or auditor role",
            };
            Err(fail(
                StatusCode::FORBIDDEN,
                format!("identity {:?} does not hold {role}", i.name),
                Some(&i),
            ))
        }
        Err(sluice_pipeline::OpenError::Store(e)) => Err(e.into()),
        // The identity provider is down: not the caller's fault.
        Err(e @ sluice_pipeline::OpenError::Jwt(sluice_oidc::JwtError::Provider(_))) => {
            Err(fail(StatusCode::SERVICE_UNAVAILABLE, e.to_string(), None))
        }
        Err(e) => Err(fail(StatusCode::UNAUTHORIZED, e.to_string(), None)),
    }
}

/// Whether a request authenticated by cookie may act: reads (`GET`, `HEAD`) always; anything
/// else only when the browser says it comes from the gateway's own origin.
pub(crate) fn same_origin(parts: &Parts) -> bool {
    if matches!(parts.method.as_str(), "GET" | "HEAD") {
        return true;
    }
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    if header("sec-fetch-site") == Some("same-origin") {
        return true;
    }
    let host = header("host").or_else(|| parts.uri.authority().map(|a| a.as_str()));
    match (header("origin"), host) {
        (Some(origin), Some(host)) => origin
            .strip_prefix("https://")
            .is_some_and(|o| o.eq_ignore_ascii_case(host)),
        _ => false,
    }
}
