//! SSH endpoints: identities' public keys, the gateway's own keys, recorded target host keys.

use super::admin::audit_change;
use super::auth::{Admin, Caller, Peer, Reader};
use super::{ApiError, ApiState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use sluice_store::ssh_keys::{self, IdentityKey};

/// Body of `POST /api/v1/identities/{name}/keys`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct NewKey {
    /// One OpenSSH public key line (`ssh-ed25519 AAAA… comment`).
    pub public_key: String,
}

/// `POST /api/v1/identities/{name}/keys`: registers a public key the identity logs in with.
pub async fn add_key(
    State(state): State<ApiState>,
    Admin(who): Admin,
    Extension(peer): Extension<Peer>,
    Path(name): Path<String>,
    Json(req): Json<NewKey>,
) -> Result<(StatusCode, Json<IdentityKey>), ApiError> {
    let key = sluice_ssh::keys::parse_public_key(&req.public_key)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fingerprint = sluice_ssh::keys::fingerprint(&key);
    let line = sluice_ssh::keys::public_line(&key);
    let (n, fp, by) = (name.clone(), fingerprint.clone(), who.name.clone());
    let added = state
        .pipeline
        .store()
        .run(move |db| ssh_keys::add_identity_key(db, &n, &fp, &line, &by))
        .await?;
    audit_change(
        &state,
        &who,
        &peer,
        "identity.key.add",
        format!("{name} {fingerprint}"),
    );
    Ok((StatusCode::CREATED, Json(added)))
}

/// `GET /api/v1/identities/{name}/keys`: the keys registered to an identity.
pub async fn list_keys(
    State(state): State<ApiState>,
    Reader(_): Reader,
    Path(name): Path<String>,
) -> Result<Json<Vec<IdentityKey>>, ApiError> {
    let keys = state
        .pipeline
        .store()
        .run(move |db| ssh_keys::list_identity_keys(db, Some(&name)))
        .await?;
    Ok(Json(keys))
}

/// `DELETE /api/v1/identities/{name}/keys/{fingerprint}`: unregisters a key.
pub async fn remove_key(
    State(state): State<ApiState>,
    Admin(who): Admin,
    Extension(peer): Extension<Peer>,
    Path((name, fingerprint)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (n, fp) = (name.clone(), fingerprint.clone());
    state
        .pipeline
        .store()
        .run(move |db| ssh_keys::remove_identity_key(db, &n, &fp))
        .await?;
    audit_change(
        &state,
        &who,
        &peer,
        "identity.key.remove",
        format!("{name} {fingerprint}"),
    );
    Ok(StatusCode::NO_CONTENT)
}

/// The gateway's SSH keys.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct GatewayKeys {
    /// Put this in targets' `authorized_keys`.
    pub client_key: String,
    /// Clients see this host key (pin it in `known_hosts`).
    pub host_key: String,
    /// Signs identities' user certificates.
    pub user_ca: String,
    /// Signs the gateway's login certificates toward targets (their `TrustedUserCAKeys`).
    pub target_ca: String,
}

/// `GET /api/v1/ssh/gateway-key`: the gateway's public SSH keys.
pub async fn gateway_key(State(state): State<ApiState>, Reader(_): Reader) -> Json<GatewayKeys> {
    Json(GatewayKeys {
        client_key: state.ssh_keys.client_public(),
        host_key: state.ssh_keys.host_public(),
        user_ca: state.ssh_keys.user_ca_public(),
        target_ca: state.ssh_keys.target_ca_public(),
    })
}

/// Body of `POST /api/v1/ssh/certificates`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CertificateRequest {
    /// The caller's public key (`ssh-ed25519 AAAA…`).
    pub public_key: String,
    /// Validity in seconds (default 8 hours, at most 24).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// A user certificate issued by the gateway's SSH CA.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct IssuedCertificate {
    /// The certificate line, for `id_ed25519-cert.pub` next to the key.
    pub certificate: String,
    /// The identity it logs in.
    pub identity: String,
    /// Serial number (in the audit trail).
    pub serial: u64,
    /// End of validity, Unix seconds.
    pub valid_before: u64,
}

/// `POST /api/v1/ssh/certificates`: a short-lived user certificate for the calling
/// identity's key.
pub async fn issue_certificate(
    State(state): State<ApiState>,
    Caller(who, _): Caller,
    Extension(peer): Extension<Peer>,
    Json(req): Json<CertificateRequest>,
) -> Result<Json<IssuedCertificate>, ApiError> {
    use sluice_ssh::certs;
    let key = sluice_ssh::keys::parse_public_key(&req.public_key)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let ttl = req
        .ttl_secs
        .map_or(certs::DEFAULT_TTL, std::time::Duration::from_secs);
    let cert = certs::issue(
        &state.ssh_keys.user_ca,
        &key,
        &who.name,
        ttl,
        certs::unix_now(),
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let issued = IssuedCertificate {
        certificate: certs::certificate_line(&cert),
        identity: who.name.clone(),
        serial: cert.serial(),
        valid_before: cert.valid_before(),
    };
    audit_change(
        &state,
        &who,
        &peer,
        "ssh.certificate.issue",
        format!(
            "{} {} serial {} until {}",
            who.name,
            sluice_ssh::keys::fingerprint(&key),
            issued.serial,
            issued.valid_before
        ),
    );
    Ok(Json(issued))
}

/// `POST /api/v1/ssh/known-hosts/{connection}/forget`: forgets a target's recorded host key
/// (after a legitimate key change), so the next session records the new one.
pub async fn forget_host_key(
    State(state): State<ApiState>,
    Admin(who): Admin,
    Extension(peer): Extension<Peer>,
    Path(connection): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = connection.clone();
    let n = state
        .pipeline
        .store()
        .run(move |db| ssh_keys::forget_host_key(db, &c))
        .await?;
    audit_change(&state, &who, &peer, "ssh.host_key.forget", connection);
    Ok(Json(serde_json::json!({ "forgotten": n })))
}
