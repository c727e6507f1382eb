//! # sluice-kube
//!
//! Kubernetes API servers behind the gateway. kubectl talks to the gateway's HTTPS listener
//! at `/kube/<connection>` (written into a kubeconfig by `sluice kubeconfig`), with the
//! identity's gateway token from the `sluice kube-credentials` exec plugin. The gateway
//! forwards to the API server with the credential it holds (bearer token or client
//! certificate), optionally impersonating the identity, and refuses impersonation from
//! clients.
//!
//! Every request is read the way the API server reads it ([`request`]) and judged on verb,
//! resource, namespace and name; exec and attach are judged on the pod they enter
//! (its spec fetched by the gateway, [`pod`]) and on the command; creating or changing
//! pods and workloads on the pod spec in the body. Refusals are `Status` objects
//! ([`status`]). Exec and attach streams are recorded as terminal sessions and their
//! output masked ([`exec`] over [`ws`]); other requests are recorded as HTTP exchanges
//! with Secret data always redacted ([`secret`]).
//!
//! ## Layout
//! - [`request`]: verb, resource, namespace and name of a request.
//! - [`pod`]: the risks of a pod spec.
//! - [`secret`]: Secret data out of recordings.
//! - [`guard`]: the facts the rules see, and the verdict (held requests wait for it).
//! - [`proxy`]: one request from credential to answer.
//! - [`exec`] (over [`ws`]) and [`spdy`]: exec and attach streams.
//! - [`status`]: answers as `metav1.Status`.

pub mod exec;
pub mod guard;
pub mod pod;
pub mod proxy;
pub mod request;
pub mod secret;
pub mod spdy;
pub mod status;
mod stream;
pub mod ws;

use sluice_core::Protocol;
use sluice_http::Matched;
use sluice_pipeline::Pipeline;

/// Where kubectl finds a connection's API on the gateway: `/kube/<connection>`.
pub const PREFIX: &str = "/kube/";

/// The Kubernetes proxy: shared by every client connection of the HTTPS listener.
#[derive(Clone)]
pub struct KubeProxy {
    pipeline: Pipeline,
}

impl KubeProxy {
    /// A proxy for the connections of `pipeline`'s catalog.
    pub fn new(pipeline: Pipeline) -> KubeProxy {
        KubeProxy { pipeline }
    }

    /// The Kubernetes connection `path` is under (`/kube/<connection>/…`), if any.
    pub fn route(&self, path: &str) -> Option<Matched> {
        let rest = path.strip_prefix(PREFIX)?;
        let name = rest.split('/').next().unwrap_or_default();
        let catalog = self.pipeline.catalog();
        let connection = catalog.connection(name)?.clone();
        (connection.protocol == Protocol::Kubernetes).then(|| Matched {
            prefix: format!("{PREFIX}{name}"),
            connection,
        })
    }
}
