//! `POST /api/v1/exec/{connection}`: runs a `command` connection's program. The request body
//! is the program's stdin (the script), `?arg=…` (repeated) appends arguments where the
//! connection takes them, and the answer streams as NDJSON ([`sluice_exec::ExecEvent`]: the
//! session id, notices, output, then the exit status or the gateway's error). The caller
//! authenticates like any client of a connection: a gateway token or an IdP JWT as bearer,
//! and needs a grant on the connection.

use super::auth::Peer;
use super::ApiState;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use sluice_core::{Protocol, Secret};
use sluice_exec::{ExecEvent, ExecRequest};
use sluice_pipeline::authorize::{ConnectAttempt, Credential};
use sluice_pipeline::OpenError;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tracing::Instrument;

/// Events queued toward a slow client before the program's output waits.
const CLIENT_QUEUE: usize = 64;

/// `POST /api/v1/exec/{connection}`.
pub async fn exec(
    State(state): State<ApiState>,
    Extension(peer): Extension<Peer>,
    Path(connection): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim()
        .to_string();
    let attempt = ConnectAttempt {
        protocol: Protocol::Command,
        client_addr: peer.0,
        connection,
        credential: Credential::Token(Secret::new(token)),
    };
    let authorized = match state.pipeline.authorize(attempt).await {
        Ok(a) => a,
        Err(e) => return refusal(&e),
    };
    let max_input = sluice_exec::spec::max_input(authorized.connection.command.as_ref());
    let stdin =
        match axum::body::to_bytes(body, usize::try_from(max_input).unwrap_or(usize::MAX)).await {
            Ok(b) => b,
            Err(_) => {
                let message =
                    format!("stdin is larger than this connection's limit ({max_input} bytes)");
                state.pipeline.target_failed(&authorized, &message);
                return error(StatusCode::PAYLOAD_TOO_LARGE, message);
            }
        };
    let args = query
        .into_iter()
        .filter(|(k, _)| k == "arg")
        .map(|(_, v)| v)
        .collect();
    let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
    let span = tracing::info_span!(
        "exec",
        client = %peer.0,
        identity = %authorized.identity.name,
        connection = %authorized.connection.name.0,
    );
    tokio::spawn(
        sluice_exec::run(
            state.pipeline.clone(),
            authorized,
            ExecRequest { args, stdin },
            state.exec,
            tx,
        )
        .instrument(span),
    );
    let mut response = Body::new(EventBody(rx)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// A refused run, with the status a REST client expects.
fn refusal(e: &OpenError) -> Response {
    let status = match e {
        OpenError::Credential(_) | OpenError::Jwt(_) => StatusCode::UNAUTHORIZED,
        OpenError::UnknownConnection(_) => StatusCode::NOT_FOUND,
        OpenError::WrongProtocol { .. } => StatusCode::BAD_REQUEST,
        OpenError::NoGrant { .. } | OpenError::AccessRequired { .. } | OpenError::NameTaken(_) => {
            StatusCode::FORBIDDEN
        }
        OpenError::AuditUnavailable | OpenError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, e.to_string())
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// The run's events as a streamed body, one JSON line each.
struct EventBody(mpsc::Receiver<ExecEvent>);

impl axum::body::HttpBody for EventBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|e| e.map(|e| Ok(http_body::Frame::data(Bytes::from(e.to_line())))))
    }
}
