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
    /// TLS toward the service failed (its certificate, the CA file).
    #[error("TLS to the service failed: {0}")]
    Tls(String),
}

/// TLS toward a service: the client config (its roots) and the name to verify.
struct Tls {
    connector: tokio_rustls::TlsConnector,
    name: rustls_pki_types::ServerName<'static>,
}

impl Tls {
    /// TLS toward a service at `host`, verified against `ca_file` (default: the system's
    /// bundle) for `server_name` (default: `host`), presenting `client` (certificate and
    /// key PEM files) when given.
    fn of(
        ca_file: Option<&str>,
        server_name: Option<&str>,
        client: Option<(&str, &str)>,
        host: &str,
    ) -> Result<Tls, UpstreamError> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let fail = |e: String| UpstreamError::Tls(e);
        let file = ca_file.unwrap_or("/etc/ssl/certs/ca-certificates.crt");
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(file)
            .map_err(|e| fail(format!("cannot read {file}: {e}")))?
        {
            let cert = cert.map_err(|e| fail(format!("invalid PEM in {file}: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| fail(format!("invalid certificate in {file}: {e}")))?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .with_root_certificates(roots);
        let mut config = match client {
            None => builder.with_no_client_auth(),
            Some((cert_file, key_file)) => {
                let chain = CertificateDer::pem_file_iter(cert_file)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        fail(format!(
                            "cannot read the client certificate {cert_file}: {e}"
                        ))
                    })?;
                // The key's content never appears in an error.
                let key = PrivateKeyDer::from_pem_file(key_file)
                    .map_err(|_| fail(format!("cannot read a private key from {key_file}")))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| fail(format!("the client certificate is unusable: {e}")))?
            }
        };
        // HTTP/1.1 only: WebSockets (and so exec) need its Upgrade.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = server_name.unwrap_or(host).to_string();
        let name = rustls_pki_types::ServerName::try_from(name)
            .map_err(|e| fail(format!("invalid server name: {e}")))?;
        Ok(Tls {
            connector: tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)),
            name,
        })
    }

    /// The TLS a connection asks for toward its service, if any.
    fn for_connection(c: &sluice_core::Connection) -> Option<Result<Tls, UpstreamError>> {
        if let Some(k) = &c.kubernetes {
            let client = k
                .client_cert_file
                .as_deref()
                .zip(k.client_key_file.as_deref());
            return Some(Tls::of(
                k.ca_file.as_deref(),
                k.server_name.as_deref(),
                client,
                &c.host,
            ));
        }
        let h = c.http.as_ref().filter(|h| h.tls)?;
        Some(Tls::of(
            h.ca_file.as_deref(),
            h.server_name.as_deref(),
            None,
            &c.host,
        ))
    }
}

/// A session's connections to its service.
pub struct Pool {
    route: Route,
    idle: Mutex<Vec<SendRequest<ReqBody>>>,
    /// TLS toward the service (`http.tls`), or why it cannot be set up.
    tls: Option<Result<Tls, String>>,
}

impl Pool {
    /// An empty pool toward `connection`'s service.
    pub fn new(connection: &sluice_core::Connection) -> Pool {
        let tls = Tls::for_connection(connection).map(|t| {
            t.map_err(|e| match e {
                UpstreamError::Tls(why) => why,
                other => other.to_string(),
            })
        });
        Pool {
            route: Route::of(connection),
            idle: Mutex::new(Vec::new()),
            tls,
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
        match &self.tls {
            None => handshake(stream).await,
            Some(Err(why)) => Err(UpstreamError::Tls(why.clone())),
            Some(Ok(tls)) => {
                let stream = tls
                    .connector
                    .connect(tls.name.clone(), stream)
                    .await
                    .map_err(|e| UpstreamError::Tls(e.to_string()))?;
                handshake(stream).await
            }
        }
    }
}

/// HTTP/1.1 over `io`, its connection driven by a task of its own.
async fn handshake<I>(io: I) -> Result<SendRequest<ReqBody>, UpstreamError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            debug!(error = %e, "service connection ended with an error");
        }
    });
    Ok(sender)
}
