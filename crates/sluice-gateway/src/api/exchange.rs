//! Token exchange (RFC 8693 shape): a machine trades a JWT from a trusted identity provider
//! for a short-lived gateway token, for clients that cannot present the JWT itself.
//!
//! `POST /api/v1/token/exchange`, form-encoded, no bearer token (the subject token is the
//! credential): `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`,
//! `subject_token=<JWT>`, `subject_token_type=urn:ietf:params:oauth:token-type:jwt` (or
//! `…:access_token`, `…:id_token`). Errors use the OAuth shape `{error, error_description}`.

use super::auth::Peer;
use super::ApiState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use serde::Deserialize;
use serde_json::json;
use sluice_core::{Fault, Outcome, Secret};
use sluice_pipeline::{audit, OpenError};
use sluice_store::tokens;

const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const TYPES: [&str; 3] = [
    "urn:ietf:params:oauth:token-type:jwt",
    "urn:ietf:params:oauth:token-type:access_token",
    "urn:ietf:params:oauth:token-type:id_token",
];

/// The form of a token-exchange request.
#[derive(Deserialize)]
pub struct ExchangeForm {
    grant_type: String,
    subject_token: String,
    subject_token_type: String,
}

fn oauth_error(status: StatusCode, error: &str, description: String) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

/// `POST /api/v1/token/exchange`.
pub async fn exchange(
    State(state): State<ApiState>,
    Extension(peer): Extension<Peer>,
    form: Result<Form<ExchangeForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expected a form with grant_type, subject_token and subject_token_type".into(),
        );
    };
    if form.grant_type != GRANT {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("grant_type must be {GRANT}"),
        );
    }
    if !TYPES.contains(&form.subject_token_type.as_str()) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("subject_token_type must be one of {}", TYPES.join(", ")),
        );
    }
    let subject = Secret::new(form.subject_token);
    let fail = |description: String, fault: Fault| {
        let mut e = audit::event("token.exchange", Outcome::Failure);
        e.source = Some(peer.0.to_string());
        e.reason = Some(description.clone());
        e.fault = Some(fault);
        state.pipeline.audit(e);
        oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
    };
    if !sluice_oidc::looks_like_jwt(subject.expose()) {
        return fail(
            "the subject token must be a JWT from a trusted identity provider".into(),
            Fault::Client,
        );
    }
    let login = form.subject_token_type == "urn:ietf:params:oauth:token-type:id_token";
    let verified = if login {
        // A person signing in (`sluice login`): an ID token for the login client.
        match state.pipeline.identity_providers() {
            Some(v) => match v.verify_id_token(subject.expose()).await {
                Ok(i) => state.pipeline.admit_external(i).await,
                Err(e) => Err(OpenError::Jwt(e)),
            },
            None => Err(OpenError::Jwt(sluice_oidc::JwtError::UntrustedIssuer(
                "(no identity provider is configured)".into(),
            ))),
        }
    } else {
        state.pipeline.authenticate(&subject).await
    };
    // A JWT-shaped subject only ever yields a provider identity (machine or person).
    let identity = match verified {
        Ok(i) => i,
        Err(OpenError::Store(e)) => {
            tracing::warn!(error = %e, "token exchange: store error");
            return oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal store error".into(),
            );
        }
        Err(e) => {
            let fault = e.fault();
            return fail(e.to_string(), fault);
        }
    };
    let (info, token, ttl) = match issue_session_token(&state, &identity).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "token exchange: store error");
            return oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal store error".into(),
            );
        }
    };
    let action = if login {
        "auth.login"
    } else {
        "token.exchange"
    };
    let mut e = audit::by(&identity, action, Outcome::Success);
    e.source = Some(peer.0.to_string());
    e.target = Some(info.id.clone());
    state.pipeline.audit(e);
    Json(json!({
        "access_token": token.expose(),
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "token_type": "Bearer",
        "expires_in": ttl.as_secs(),
        "token_id": info.id,
        "identity": identity,
    }))
    .into_response()
}

/// A gateway token for a provider's identity, valid as long as its provider says
/// (`token_ttl`, default one hour): what a sign-in ends with.
pub async fn issue_session_token(
    state: &ApiState,
    identity: &sluice_core::Identity,
) -> Result<(tokens::TokenInfo, Secret<String>, std::time::Duration), sluice_store::StoreError> {
    let ttl = identity
        .issuer
        .as_deref()
        .and_then(|iss| state.pipeline.identity_providers()?.provider(iss))
        .map_or(std::time::Duration::from_secs(3600), |p| p.token_ttl());
    let (name, kind) = (identity.name.clone(), identity.kind);
    let ttl_us = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
    let (info, token) = state
        .pipeline
        .store()
        .run(move |c| tokens::issue_token(c, &name, kind, Some(ttl_us)))
        .await?;
    Ok((info, token, ttl))
}
