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
use sluice_exec::terminal::{run_terminal, wire, TerminalRequest};
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
    let authorized = match authorize(&state, peer, connection, &headers).await {
        Ok(a) => a,
        Err(refused) => {
            super::endpoints::drain(body).await;
            return refused;
        }
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

/// `GET /api/v1/exec/{connection}/terminal` with `Upgrade: sluice-terminal/1`: an
/// interactive session of the connection's program on a pty (`sluice connect`), framed as
/// [`sluice_exec::terminal::wire`] says. `?rows=&cols=&term=` size the terminal; `?arg=`
/// as for runs.
pub async fn terminal(
    State(state): State<ApiState>,
    Extension(peer): Extension<Peer>,
    Path(connection): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    mut req: axum::extract::Request,
) -> Response {
    let asked = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(wire::PROTOCOL));
    if !asked {
        return error(
            StatusCode::BAD_REQUEST,
            format!("a terminal needs Upgrade: {}", wire::PROTOCOL),
        );
    }
    // `sluice connect` asks here first for any connection: a known one of another type is
    // answered (to a caller with a good credential) before any access is attempted, so
    // the CLI can use that protocol's tunnel instead, and nothing is audited as refused.
    let other = state
        .pipeline
        .catalog()
        .connection(&connection)
        .map(|c| c.protocol)
        .filter(|p| *p != Protocol::Command);
    if let Some(protocol) = other {
        let token = Secret::new(bearer(req.headers()));
        if state.pipeline.authenticate(&token).await.is_ok() {
            let mut r = error(
                StatusCode::CONFLICT,
                format!(
                    "connection {connection:?} is a {} connection, not command",
                    protocol.as_str()
                ),
            );
            if let Ok(v) = HeaderValue::from_str(protocol.as_str()) {
                r.headers_mut().insert("x-sluice-protocol", v);
            }
            return r;
        }
    }
    let authorized = match authorize(&state, peer, connection, req.headers()).await {
        Ok(a) => a,
        Err(refused) => return refused,
    };
    let value = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let size = |k: &str, default: u16| value(k).and_then(|v| v.parse().ok()).unwrap_or(default);
    let request = TerminalRequest {
        args: query
            .iter()
            .filter(|(k, _)| k == "arg")
            .map(|(_, v)| v.clone())
            .collect(),
        term: value("term")
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
            .unwrap_or("xterm-256color")
            .to_string(),
        rows: size("rows", 24),
        cols: size("cols", 80),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let span = tracing::info_span!(
        "terminal",
        client = %peer.0,
        identity = %authorized.identity.name,
        connection = %authorized.connection.name.0,
    );
    let (pipeline, settings) = (state.pipeline.clone(), state.exec);
    tokio::spawn(
        async move {
            match on_upgrade.await {
                Ok(io) => {
                    let io = hyper_util::rt::TokioIo::new(io);
                    run_terminal(pipeline, authorized, request, settings, io).await;
                }
                Err(e) => tracing::debug!(error = %e, "terminal upgrade failed"),
            }
        }
        .instrument(span),
    );
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static(wire::PROTOCOL));
    response
}

/// Authorizes the bearer credential of `headers` for `connection` (audited either way).
async fn authorize(
    state: &ApiState,
    peer: Peer,
    connection: String,
    headers: &HeaderMap,
) -> Result<sluice_pipeline::Authorized, Response> {
    let token = bearer(headers);
    let attempt = ConnectAttempt {
        protocol: Protocol::Command,
        client_addr: peer.0,
        connection,
        credential: Credential::Token(Secret::new(token)),
    };
    state
        .pipeline
        .authorize(attempt)
        .await
        .map_err(|e| refusal(&e))
}

/// The bearer credential of a request (empty when there is none: refused as such).
fn bearer(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim()
        .to_string()
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
