//! Reaching the gateway through an HTTP egress proxy with `CONNECT`, as networks that allow
//! only proxied HTTPS out require. TLS to the gateway then runs inside the proxied stream, so
//! the proxy sees only the gateway's address.

use base64::Engine;
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest proxy answer head accepted.
const MAX_HEAD: usize = 8 * 1024;

/// An HTTP proxy: `http://[user:password@]host:port`.
#[derive(Clone)]
pub struct Proxy {
    host: String,
    port: u16,
    auth: Option<String>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        write!(f, "http://{}:{}", self.host, self.port)
    }
}

/// Why a proxy URL was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid proxy URL: use http://[user:password@]host:port")]
pub struct ProxyUrlError;

impl Proxy {
    /// Parses `http://[user:password@]host[:port]` (port 3128 when omitted).
    pub fn parse(url: &str) -> Result<Proxy, ProxyUrlError> {
        let rest = url.strip_prefix("http://").ok_or(ProxyUrlError)?;
        let authority = rest.split('/').next().unwrap_or_default();
        let (auth, hostport) = match authority.rsplit_once('@') {
            Some((cred, hp)) => (
                Some(base64::engine::general_purpose::STANDARD.encode(cred)),
                hp,
            ),
            None => (None, authority),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.trim_matches(['[', ']']),
                p.parse().map_err(|_| ProxyUrlError)?,
            ),
            _ => (hostport, 3128),
        };
        if host.is_empty() {
            return Err(ProxyUrlError);
        }
        Ok(Proxy {
            host: host.to_string(),
            port,
            auth,
        })
    }

    /// A stream to `host:port` through the proxy.
    pub async fn connect(&self, host: &str, port: u16) -> io::Result<TcpStream> {
        let mut tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        tcp.set_nodelay(true)?;
        let target = crate::proto::authority(host, port);
        let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(a) = &self.auth {
            req.push_str(&format!("Proxy-Authorization: Basic {a}\r\n"));
        }
        req.push_str("\r\n");
        tcp.write_all(req.as_bytes()).await?;
        // Byte by byte: nothing after the head may be consumed (TLS starts right after it).
        let mut head = Vec::with_capacity(256);
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() >= MAX_HEAD {
                return Err(io::Error::other("proxy answer too long"));
            }
            head.push(tcp.read_u8().await?);
        }
        let status_line = String::from_utf8_lossy(&head);
        let status_line = status_line.lines().next().unwrap_or_default();
        let ok = status_line
            .split_whitespace()
            .nth(1)
            .is_some_and(|code| code == "200");
        if !ok {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("proxy {self:?} refused CONNECT {target}: {status_line}"),
            ));
        }
        Ok(tcp)
    }
}

/// True when `host` is exempt from the proxy by a `NO_PROXY` list (`*`, exact names, or
/// domain suffixes like `.internal` / `internal`).
pub fn bypassed(no_proxy: &str, host: &str) -> bool {
    no_proxy
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|e| {
            let e = e.trim_start_matches('.');
            e == "*"
                || host.eq_ignore_ascii_case(e)
                || host
                    .to_ascii_lowercase()
                    .ends_with(&format!(".{}", e.to_ascii_lowercase()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_and_exemptions() -> Result<(), Box<dyn std::error::Error>> {
        let p = Proxy::parse("http://u:p@proxy.corp:8080")?;
        assert_eq!((p.host.as_str(), p.port), ("proxy.corp", 8080));
        assert_eq!(p.auth.as_deref(), Some("dTpw"));
        assert_eq!(format!("{p:?}"), "http://proxy.corp:8080");
        assert_eq!(Proxy::parse("http://proxy")?.port, 3128);
        assert!(Proxy::parse("https://proxy:1").is_err());
        assert!(bypassed("localhost,.internal", "db.internal"));
        assert!(bypassed("internal", "gw.internal"));
        assert!(!bypassed("internal", "gwinternal"));
        assert!(bypassed("*", "anything"));
        Ok(())
    }
}
