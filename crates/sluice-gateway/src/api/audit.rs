//! The audit log's chain and checkpoints (what `sluice export` bundles), signing-key rotation,
//! legal holds, the retention run, and delivery metrics.

use super::auth::{Admin, Reader};
use super::{ApiError, ApiState};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use sluice_core::Outcome;
use sluice_pipeline::audit;
use sluice_store::audit_log::{self, ChainedEvent, Checkpoint};
use sluice_store::retention::{self, Hold};
use sluice_store::WriteOp;
use std::sync::Arc;

/// Query of `GET /api/v1/audit/chain`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ChainQuery {
    /// Events after this sequence number (default 0).
    #[serde(default)]
    pub after: u64,
    /// At most this many (default 1000, max 10000).
    pub limit: Option<usize>,
}

/// `GET /api/v1/audit/chain?after=&limit=`: chained events in order, as stored.
pub async fn chain(
    State(state): State<ApiState>,
    Reader(_): Reader,
    Query(q): Query<ChainQuery>,
) -> Result<Json<Vec<ChainedEvent>>, ApiError> {
    state.pipeline.writer().flush().await?;
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    Ok(Json(
        state
            .pipeline
            .store()
            .run(move |c| audit_log::after(c, q.after, limit))
            .await?,
    ))
}

/// Query of `GET /api/v1/audit/checkpoints`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CheckpointQuery {
    /// Checkpoints numbered from this one (default 1).
    pub from: Option<u64>,
    /// Instead: the latest checkpoint covering only events before this time (µs), if any.
    pub before_us: Option<i64>,
}

/// `GET /api/v1/audit/checkpoints?from=N` or `?before_us=T`.
pub async fn checkpoints(
    State(state): State<ApiState>,
    Reader(_): Reader,
    Query(q): Query<CheckpointQuery>,
) -> Result<Json<Vec<Checkpoint>>, ApiError> {
    let list = state
        .pipeline
        .store()
        .run(move |c| match q.before_us {
            Some(t) => Ok(audit_log::checkpoint_before(c, t)?.into_iter().collect()),
            None => audit_log::checkpoints(c, q.from.unwrap_or(1)),
        })
        .await?;
    Ok(Json(list))
}

/// `POST /api/v1/audit/checkpoints`: seals everything logged so far in a signed checkpoint
/// (none is written when nothing was logged since the last); answers the latest checkpoint.
pub async fn seal(
    State(state): State<ApiState>,
    Admin(_): Admin,
) -> Result<Json<Option<Checkpoint>>, ApiError> {
    let writer = state.pipeline.writer();
    writer.send(WriteOp::Checkpoint);
    writer.flush().await?;
    Ok(Json(
        state
            .pipeline
            .store()
            .run(|c| audit_log::last_checkpoint(c))
            .await?,
    ))
}

/// `POST /api/v1/signing-keys/rotate`: a new signing key from now on; the old public key stays
/// published so everything it signed keeps verifying.
pub async fn rotate_key(
    State(state): State<ApiState>,
    Admin(admin): Admin,
) -> Result<Json<serde_json::Value>, ApiError> {
    let keys = state.keys.clone();
    let rotated = tokio::task::spawn_blocking(move || keys.rotate())
        .await
        .map_err(|_| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "rotation failed".into()))?;
    let key = match rotated {
        Ok(k) => k,
        Err(sluice_store::StoreError::Refused(why)) => {
            let mut e = audit::by(&admin, "signing.rotate", Outcome::Failure);
            e.reason = Some(why.clone());
            state.pipeline.audit(e);
            return Err(ApiError(StatusCode::CONFLICT, why));
        }
        Err(e) => return Err(e.into()),
    };
    let published = key.clone();
    let dir = state.signing_dir.clone();
    state
        .pipeline
        .store()
        .run(move |c| {
            published.publish(c)?;
            sluice_store::signing::write_all_public(c, &dir)
        })
        .await?;
    let mut e = audit::by(&admin, "signing.rotate", Outcome::Success);
    e.target = Some(key.key_id.clone());
    state.pipeline.audit(e);
    Ok(Json(
        serde_json::json!({ "key_id": key.key_id, "public_hex": key.public_hex }),
    ))
}

/// Body of `POST /api/v1/audit/attestations`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AttestRequest {
    /// SHA-256 (hex) of an evidence bundle's `bundle.json`.
    pub sha256: String,
}

/// `POST /api/v1/audit/attestations`: signs an export's listing (`bundle.json`: selection,
/// sessions, audit range), so a verifier can tell that nothing was dropped from it. Audited.
pub async fn attest(
    State(state): State<ApiState>,
    Reader(admin): Reader,
    Json(req): Json<AttestRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let digest = req.sha256.to_ascii_lowercase();
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request("sha256 must be 64 hex digits"));
    }
    let key = state.keys.current();
    let sig = key.sign(sluice_store::signing::bundle_attestation(&digest).as_bytes());
    let mut e = audit::by(&admin, "export.attest", Outcome::Success);
    e.target = Some(digest);
    state.pipeline.audit(e);
    Ok(Json(
        serde_json::json!({ "key_id": key.key_id, "sig": sig }),
    ))
}

/// Body of `POST /api/v1/holds`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct NewHold {
    /// Hold one session…
    pub session_id: Option<String>,
    /// …or every session of an identity.
    pub identity: Option<String>,
    /// Why (case number, matter).
    pub reason: String,
}

/// `GET /api/v1/holds`.
pub async fn list_holds(
    State(state): State<ApiState>,
    Reader(_): Reader,
) -> Result<Json<Vec<Hold>>, ApiError> {
    Ok(Json(
        state
            .pipeline
            .store()
            .run(|c| retention::list_holds(c))
            .await?,
    ))
}

/// `POST /api/v1/holds`: recordings under a hold are never deleted by retention.
pub async fn add_hold(
    State(state): State<ApiState>,
    Admin(admin): Admin,
    Json(req): Json<NewHold>,
) -> Result<(StatusCode, Json<Hold>), ApiError> {
    if req.session_id.is_some() == req.identity.is_some() {
        return Err(ApiError::bad_request(
            "give session_id or identity, not both",
        ));
    }
    if req.reason.trim().is_empty() {
        return Err(ApiError::bad_request("a hold needs a reason"));
    }
    let hold = Hold {
        id: format!("hold-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
        session_id: req.session_id,
        identity: req.identity,
        reason: req.reason,
        created_by: admin.name.clone(),
        created_us: sluice_core::time::now_micros(),
    };
    let h = hold.clone();
    state
        .pipeline
        .store()
        .run(move |c| {
            if let Some(s) = &h.session_id {
                if !retention::session_exists(c, s)? {
                    return Err(sluice_store::StoreError::NotFound(format!("session {s:?}")));
                }
            }
            retention::add_hold(c, &h)
        })
        .await?;
    let mut e = audit::by(&admin, "hold.add", Outcome::Success);
    e.target = Some(hold.id.clone());
    e.session_id = hold.session_id.clone();
    e.reason = Some(hold.reason.clone());
    state.pipeline.audit(e);
    Ok((StatusCode::CREATED, Json(hold)))
}

/// `DELETE /api/v1/holds/{id}`.
pub async fn remove_hold(
    State(state): State<ApiState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<Hold>, ApiError> {
    let hold = state
        .pipeline
        .store()
        .run(move |c| retention::remove_hold(c, &id))
        .await?;
    let mut e = audit::by(&admin, "hold.remove", Outcome::Success);
    e.target = Some(hold.id.clone());
    e.session_id = hold.session_id.clone();
    state.pipeline.audit(e);
    Ok(Json(hold))
}

/// Answer of `POST /api/v1/retention/run`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RetentionRun {
    /// Sessions whose recordings were deleted.
    pub deleted: Vec<String>,
}

/// `POST /api/v1/retention/run`: applies retention now (the background job does it hourly).
pub async fn run_retention(
    State(state): State<ApiState>,
    Admin(admin): Admin,
) -> Result<Json<RetentionRun>, ApiError> {
    state.pipeline.writer().flush().await?;
    let deleted = state
        .pipeline
        .apply_retention(
            &state.retention,
            state
                .archive
                .clone()
                .map(|a| a as Arc<dyn sluice_pipeline::retention::ArchiveStore>),
            Some(&admin),
        )
        .await?;
    Ok(Json(RetentionRun { deleted }))
}

/// `GET /api/v1/metrics`: Prometheus text format.
pub async fn metrics(
    State(state): State<ApiState>,
    Reader(_): Reader,
) -> Result<impl IntoResponse, ApiError> {
    use std::fmt::Write;
    let mut out = String::new();
    let sinks = state.health.snapshot();
    type Figure = fn(&sluice_store::audit_log::SinkStats) -> u64;
    let per_sink: [(&str, &str, &str, Figure); 4] = [
        (
            "sluice_audit_sink_backlog",
            "gauge",
            "Audit events waiting for delivery to the sink.",
            |s| s.backlog,
        ),
        (
            "sluice_audit_sink_delivered_total",
            "counter",
            "Audit events delivered since start.",
            |s| s.delivered,
        ),
        (
            "sluice_audit_sink_failures_total",
            "counter",
            "Failed delivery attempts since start.",
            |s| s.failures,
        ),
        (
            "sluice_audit_spool_full",
            "gauge",
            "1 when the sink's backlog is past audit.spool_limit.",
            |s| u64::from(s.full),
        ),
    ];
    for (metric, kind, help, figure) in per_sink {
        let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} {kind}");
        for (name, s) in &sinks {
            let _ = writeln!(out, "{metric}{{sink=\"{name}\"}} {}", figure(s));
        }
    }
    let _ = writeln!(
        out,
        "# HELP sluice_live_sessions Sessions in progress.\n# TYPE sluice_live_sessions gauge\nsluice_live_sessions {}",
        state.pipeline.live().count()
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}
