//! Connections to a service: HTTP/1.1 over a direct TCP connection or a stream in an agent's
//! tunnel ([`Pipeline::dial`]), kept open between requests and reused when idle.

use crate::body::ReqBody;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sluice_pipeline::{DialError, Pipeline, Route};
use std::sync::Mutex;
use tracing::debug;

/// Idle connections kept per session.
const MAX_IDLE: usize = 8;

/// Why a request did not reach the service.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The service could not be reached.
    #[error("{0}")]
    Dial(#[from] DialError),
    /// The HTTP exchange failed.
    #[error("the service failed: {0}")]
    Http(#[from] hyper::Error),
}

/// A session's connections to its service.
pub struct Pool {
    route: Route,
    idle: Mutex<Vec<SendRequest<ReqBody>>>,
}

impl Pool {
    /// An empty pool toward `route`.
    pub fn new(route: Route) -> Pool {
        Pool {
            route,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends `req` on an idle connection, or a new one. With `upgrade`, the connection is
    /// not reused (it becomes the WebSocket's).
    pub async fn send(
        &self,
        pipeline: &Pipeline,
        req: Request<ReqBody>,
        upgrade: bool,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let mut sender = match self.take_ready() {
            Some(s) => s,
            None => self.dial(pipeline).await?,
        };
        let response = sender.send_request(req).await?;
        if !upgrade {
            if let Ok(mut idle) = self.idle.lock() {
                if idle.len() < MAX_IDLE {
                    idle.push(sender);
                }
            }
        }
        Ok(response)
    }

    /// An idle connection that can take a request now; closed ones are dropped.
    fn take_ready(&self) -> Option<SendRequest<ReqBody>> {
        let mut idle = self.idle.lock().ok()?;
        idle.retain(|s| !s.is_closed());
        let i = idle.iter().position(SendRequest::is_ready)?;
        Some(idle.swap_remove(i))
    }

    async fn dial(&self, pipeline: &Pipeline) -> Result<SendRequest<ReqBody>, UpstreamError> {
        let stream = pipeline.dial(&self.route).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                debug!(error = %e, "service connection ended with an error");
            }
        });
        Ok(sender)
    }
}
