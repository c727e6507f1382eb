//! The HTTPS REST API, `/api/v1`, described by `/api/v1/openapi.json`. Endpoints take a
//! bearer token (a gateway token or an accepted IdP JWT) and check the caller's role
//! ([`roles`]); [`endpoints`] lists each with the role it needs. Every change is audited.
//!
//! - [`endpoints`]: the route table (method, path, role, summary); [`openapi`] its document.
//! - [`auth`], [`roles`]: the bearer-token extractors by role.
//! - [`admin`]: service accounts, tokens, connections, grants.
//! - [`agents`]: agents, their enrollment and their tunnels.
//! - [`sessions`]: sessions, recordings, audit log.
//! - [`audit`]: the audit chain and checkpoints, key rotation, legal holds, retention, metrics.
//! - [`containment`]: kill sessions, block identities.
//! - [`exec`]: runs of `command` connections, streamed (the caller needs a grant, not admin).
//! - [`exchange`]: token exchange (a trusted IdP's JWT for a gateway token; no bearer needed).
//! - [`login`]: the sign-in providers for `sluice login`, and logout.
//! - [`reviews`]: reviews (held commands, access requests) and their decisions.
//! - [`web_login`]: browser sign-in (OIDC code flow) for `http` connections.
//! - [`terminal`]: recorded and live terminals as screen frames, asciicast downloads, the
//!   live sessions list.
//! - [`console`]: the web console's pages.
//! - [`ssh`]: identities' SSH keys, the gateway's SSH keys, recorded target host keys.

pub mod admin;
pub mod agents;
pub mod audit;
pub mod auth;
pub mod console;
pub mod containment;
pub mod endpoints;
pub mod exchange;
pub mod exec;
pub mod login;
pub mod openapi;
pub mod reviews;
pub mod roles;
pub mod sessions;
pub mod ssh;
pub mod terminal;
pub mod web_login;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hyper_util::rt::TokioIo;
use sluice_core::{Connection, Grant};
use sluice_pipeline::{Catalog, Pipeline};
use sluice_store::{catalog, StoreError};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::{debug, warn};

/// State shared by all handlers.
#[derive(Clone)]
pub struct ApiState {
    /// The pipeline (store, writer, catalog).
    pub pipeline: Pipeline,
    /// Connections from the config file (read-only).
    pub config_connections: Arc<Vec<Connection>>,
    /// Grants from the config file (read-only).
    pub config_grants: Arc<Vec<Grant>>,
    /// The signing key (rotation).
    pub keys: Arc<sluice_store::signing::KeyRing>,
    /// Where the public keys are written for auditors (`all.pub`).
    pub signing_dir: std::path::PathBuf,
    /// Audit sinks' delivery state (metrics).
    pub health: Arc<sluice_store::audit_log::SpoolHealth>,
    /// Recording retention.
    pub retention: Arc<sluice_pipeline::retention::RetentionPolicy>,
    /// Where archived recordings live, when not in the database.
    pub archive: Option<Arc<crate::archive::Archive>>,
    /// The gateway's SSH keys (`sluice ssh gateway-key`, host key for clients).
    pub ssh_keys: Arc<sluice_ssh::GatewayKeys>,
    /// How command runs are recorded.
    pub exec: sluice_exec::ExecSettings,
    /// Roles from groups.
    pub roles: Arc<roles::Roles>,
}

impl ApiState {
    /// Rebuilds the pipeline's catalog from the config file and the store.
    pub async fn reload_catalog(&self) -> Result<(), ApiError> {
        let (conns, grants) = self
            .pipeline
            .store()
            .run(|c| Ok((catalog::list_connections(c)?, catalog::list_grants(c)?)))
            .await?;
        let policies = self.pipeline.catalog().policies().clone();
        self.pipeline.set_catalog(
            Catalog::new(
                self.config_connections.as_ref().clone(),
                self.config_grants.as_ref().clone(),
                conns,
                grants,
            )
            .with_policies(policies),
        );
        Ok(())
    }
}

/// An API error, rendered as `{"error": "..."}` with its status.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    /// 400 with `msg`.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => ApiError(StatusCode::NOT_FOUND, e.to_string()),
            StoreError::Conflict(_) | StoreError::Refused(_) => {
                ApiError(StatusCode::CONFLICT, e.to_string())
            }
            other => {
                warn!(error = %other, "store error in API");
                ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal store error".into(),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

/// The API routes: every endpoint of [`endpoints::ENDPOINTS`], and its OpenAPI document.
pub fn router(state: ApiState) -> Router {
    endpoints::routes(Router::new(), &state).with_state(state)
}

/// How long a client may take for its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a client may take to send a request's headers (HTTP/1.1).
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves the API and the HTTP connections over TLS (HTTP/1.1 and HTTP/2) until `shutdown`
/// turns true. A request whose host or path belongs to an `http` connection goes to the
/// proxy ([`sluice_http`]), under it `/.sluice/…` to the browser sign-in ([`web_login`]);
/// everything else to the API.
pub async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    app: Router,
    web: web_login::WebLogin,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "API accept failed");
                    continue;
                }
            },
            _ = shutdown.wait_for(|s| *s) => return,
        };
        // Agent tunnels multiplex many small exchanges on one connection: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        let app = app.clone();
        let web = web.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "API TLS handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(%peer, "API TLS handshake timed out");
                    return;
                }
            };
            let binding = sluice_tunnel::proto::binding(stream.get_ref().1);
            let client = Arc::new(sluice_http::ClientConn::new(peer));
            let service = hyper::service::service_fn(
                move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    let (app, web, client) = (app.clone(), web.clone(), client.clone());
                    async move {
                        if let Some(matched) = web.kube.route(req.uri().path()) {
                            let response = web.kube.handle(&client, matched, req).await;
                            return Ok(response.map(axum::body::Body::new));
                        }
                        let host = request_host(&req);
                        if let Some(page) = console::page_of(req.uri().path()).map(str::to_string) {
                            let response = match page.strip_prefix(".sluice/") {
                                Some(step) => web.handle_console(step, host, peer, req).await,
                                None => console::serve(&web, &page, peer, req).await,
                            };
                            return Ok(response.map(axum::body::Body::new));
                        }
                        if let Some(matched) = web.proxy.route(host.as_deref(), req.uri().path()) {
                            let inner = matched.inner_path(req.uri().path()).to_string();
                            let response = match inner.strip_prefix("/.sluice/") {
                                Some(page) => web.handle(page, &matched, host, peer, req).await,
                                None => web.proxy.handle(&client, matched, req).await,
                            };
                            return Ok::<_, std::convert::Infallible>(
                                response.map(axum::body::Body::new),
                            );
                        }
                        req.extensions_mut().insert(auth::Peer(peer));
                        if let Some(b) = binding {
                            req.extensions_mut().insert(agents::TlsBinding(b));
                        }
                        app.oneshot(req).await
                    }
                },
            );
            let mut builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
            {
                debug!(%peer, error = %e, "API connection ended with error");
            }
        });
    }
}

/// The host a request names: `Host` (HTTP/1.1) or the URI's authority (HTTP/2).
fn request_host<B>(req: &axum::http::Request<B>) -> Option<String> {
    req.headers()
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()))
}
