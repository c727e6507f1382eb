//! The agent's requests to a gateway: enrollment, and the upgrade that opens a tunnel.

use super::proxy::Proxy;
use super::state::AgentState;
use crate::proto::{self, ENROLL_PATH, TUNNEL_PATH, UPGRADE};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, UPGRADE as UPGRADE_HEADER};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How long connecting, TLS and the upgrade may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A gateway's API address, `https://host:port`.
#[derive(Clone, Debug)]
pub struct GatewayAddr {
    /// As given.
    pub url: String,
    host: String,
    port: u16,
    proxy: Option<Proxy>,
}

/// Why a request to the gateway failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Not an `https://host[:port]` URL.
    #[error("invalid gateway URL {0:?}: use https://host:port")]
    BadUrl(String),
    /// Connecting or TLS failed.
    #[error("cannot reach {url}: {source}")]
    Io {
        /// Gateway.
        url: String,
        /// Cause.
        source: std::io::Error,
    },
    /// HTTP failed.
    #[error("{url}: {source}")]
    Http {
        /// Gateway.
        url: String,
        /// Cause.
        source: hyper::Error,
    },
    /// The gateway answered with an error.
    #[error("{url} refused: {message} (HTTP {status})")]
    Refused {
        /// Gateway.
        url: String,
        /// Status.
        status: StatusCode,
        /// The gateway's words.
        message: String,
    },
    /// Took too long.
    #[error("{0}: no answer within {CONNECT_TIMEOUT:?}")]
    Timeout(String),
}

impl ClientError {
    /// True when the gateway refused the agent itself (unknown, revoked, bad proof), as
    /// opposed to a network or server failure.
    pub fn is_refusal(&self) -> bool {
        matches!(self, ClientError::Refused { status, .. } if status.is_client_error())
    }
}

impl GatewayAddr {
    /// Parses `https://host[:port][/]` (port 443 when omitted).
    pub fn parse(url: &str) -> Result<GatewayAddr, ClientError> {
        let bad = || ClientError::BadUrl(url.to_string());
        let rest = url.strip_prefix("https://").ok_or_else(bad)?;
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, tail) = v6.split_once(']').ok_or_else(bad)?;
            let port = match tail.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad())?,
                None if tail.is_empty() => 443,
                None => return Err(bad()),
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
                None => (authority.to_string(), 443),
            }
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(GatewayAddr {
            url: url.trim_end_matches('/').to_string(),
            host,
            port,
            proxy: None,
        })
    }

    /// Reaches this gateway through `proxy` (unless `no_proxy` exempts its host).
    pub fn via_proxy(mut self, proxy: Option<&Proxy>, no_proxy: &str) -> GatewayAddr {
        self.proxy = proxy
            .filter(|_| !super::proxy::bypassed(no_proxy, &self.host))
            .cloned();
        self
    }

    fn authority(&self) -> String {
        proto::authority(&self.host, self.port)
    }

    async fn connect(
        &self,
        tls: &Arc<rustls::ClientConfig>,
    ) -> Result<TlsStream<TcpStream>, ClientError> {
        let io = |source| ClientError::Io {
            url: self.url.clone(),
            source,
        };
        let tcp = match &self.proxy {
            Some(p) => p.connect(&self.host, self.port).await.map_err(io)?,
            None => TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(io)?,
        };
        tcp.set_nodelay(true).map_err(io)?;
        let name = ServerName::try_from(self.host.clone())
            .map_err(|_| ClientError::BadUrl(self.url.clone()))?;
        TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(io)
    }

    /// Sends one request on a fresh connection; returns the response (and the connection
    /// task, for upgrades).
    async fn send(
        &self,
        tls: TlsStream<TcpStream>,
        req: Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let http = |source| ClientError::Http {
            url: self.url.clone(),
            source,
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(http)?;
        tokio::spawn(conn.with_upgrades());
        sender.send_request(req).await.map_err(http)
    }

    async fn refused(&self, resp: hyper::Response<hyper::body::Incoming>) -> ClientError {
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
        ClientError::Refused {
            url: self.url.clone(),
            status,
            message,
        }
    }

    /// Trades the enrollment `token` for the pinning of this agent's key; returns the
    /// agent's name.
    pub async fn enroll(
        &self,
        tls: &Arc<rustls::ClientConfig>,
        state: &AgentState,
        token: &str,
    ) -> Result<String, ClientError> {
        let body = serde_json::json!({
            "token": token,
            "public_key": proto::encode_key(state.public_key()),
            "version": env!("CARGO_PKG_VERSION"),
        });
        let req = Request::post(ENROLL_PATH)
            .header(HOST, self.authority())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|_| ClientError::BadUrl(self.url.clone()))?;
        let work = async {
            let tls_stream = self.connect(tls).await?;
            let resp = self.send(tls_stream, req).await?;
            if resp.status() != StatusCode::CREATED && resp.status() != StatusCode::OK {
                return Err(self.refused(resp).await);
            }
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|source| ClientError::Http {
                    url: self.url.clone(),
                    source,
                })?
                .to_bytes();
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["name"].as_str().map(str::to_string))
                .ok_or_else(|| ClientError::Refused {
                    url: self.url.clone(),
                    status: StatusCode::BAD_GATEWAY,
                    message: "enrollment answer without a name".into(),
                })
        };
        tokio::time::timeout(CONNECT_TIMEOUT, work)
            .await
            .map_err(|_| ClientError::Timeout(self.url.clone()))?
    }

    /// Opens a tunnel as `name`: TLS, then an upgrade carrying a proof signed over this TLS
    /// connection's exporter value.
    pub async fn open_tunnel(
        &self,
        tls: &Arc<rustls::ClientConfig>,
        state: &AgentState,
        name: &str,
    ) -> Result<hyper::upgrade::Upgraded, ClientError> {
        let work = async {
            let tls_stream = self.connect(tls).await?;
            let binding =
                proto::binding(tls_stream.get_ref().1).ok_or_else(|| ClientError::Io {
                    url: self.url.clone(),
                    source: std::io::Error::other("TLS exporter unavailable"),
                })?;
            let sig = base64::engine::general_purpose::STANDARD
                .encode(state.sign(&proto::signed_message(name, &binding)));
            let req = Request::get(TUNNEL_PATH)
                .header(HOST, self.authority())
                .header(CONNECTION, "upgrade")
                .header(UPGRADE_HEADER, UPGRADE)
                .header(proto::HEADER_NAME, name)
                .header(proto::HEADER_VERSION, env!("CARGO_PKG_VERSION"))
                .header(proto::HEADER_SIGNATURE, sig)
                .body(Full::new(Bytes::new()))
                .map_err(|_| ClientError::BadUrl(self.url.clone()))?;
            let mut resp = self.send(tls_stream, req).await?;
            if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
                return Err(self.refused(resp).await);
            }
            hyper::upgrade::on(&mut resp)
                .await
                .map_err(|source| ClientError::Http {
                    url: self.url.clone(),
                    source,
                })
        };
        tokio::time::timeout(CONNECT_TIMEOUT, work)
            .await
            .map_err(|_| ClientError::Timeout(self.url.clone()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_urls() -> Result<(), Box<dyn std::error::Error>> {
        let g = GatewayAddr::parse("https://gw.example:8443/")?;
        assert_eq!((g.host.as_str(), g.port), ("gw.example", 8443));
        assert_eq!(g.url, "https://gw.example:8443");
        let g = GatewayAddr::parse("https://[::1]:9443")?;
        assert_eq!((g.host.as_str(), g.port), ("::1", 9443));
        assert_eq!(g.authority(), "[::1]:9443");
        assert_eq!(GatewayAddr::parse("https://gw")?.port, 443);
        for bad in ["http://gw:1", "https://:1", "https://gw:x", "gw:8443"] {
            assert!(GatewayAddr::parse(bad).is_err(), "{bad}");
        }
        Ok(())
    }
}
