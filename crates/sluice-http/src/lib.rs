//! # sluice-http
//!
//! Internal HTTP services behind the gateway: connections of type `http` are reached on the
//! gateway's HTTPS listener by host name (`Host: grafana.example.com`) or path prefix
//! (`/grafana/…`). People sign in through the identity provider (a session cookie); machines
//! send a gateway token or an IdP JWT as a bearer token. The gateway authenticates to the
//! service with the credential it holds and removes the client's.
//!
//! Each request is judged by the connection's guardrails (method as statement class, URL path
//! as path), recorded with selected headers and capped, masked bodies (JSON field by field),
//! and answered by the service through a pooled connection (direct or through an agent).
//! WebSockets are relayed untouched once upgraded.
//!
//! ## Layout
//! - [`route`]: which connection a request is for.
//! - [`session`]: sessions per client connection and identity; containment.
//! - [`guard`]: the verdict on a request; reviews answered 202 and approvals as tickets.
//! - [`headers`]: credentials out and in, hop-by-hop headers, what is recorded.
//! - [`proxy`]: one request from credential to answer.
//! - [`body`]: streaming bodies, their recorded copies, masking as they stream.
//! - [`json`]: field-aware masking of JSON documents.
//! - [`upstream`]: pooled HTTP/1.1 connections to a service.
//! - [`websocket`]: upgraded connections relayed.

pub mod body;
pub mod guard;
pub mod headers;
pub mod json;
pub mod proxy;
pub mod route;
pub mod session;
pub mod upstream;
pub mod websocket;

pub use route::Matched;
pub use session::ClientConn;

use sluice_pipeline::Pipeline;
use std::sync::Arc;

/// The proxy: shared by every client connection of the HTTPS listener.
#[derive(Clone)]
pub struct HttpProxy {
    pipeline: Pipeline,
    tickets: Arc<guard::Tickets>,
}

impl HttpProxy {
    /// A proxy for the connections of `pipeline`'s catalog.
    pub fn new(pipeline: Pipeline) -> HttpProxy {
        HttpProxy {
            pipeline,
            tickets: Arc::default(),
        }
    }

    /// The HTTP connection a request for `host` and `path` goes to, if any.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<Matched> {
        route::find(&self.pipeline.catalog(), host, path)
    }
}
