//! `sluice connect`: a local port for tools that cannot carry a token (GUIs, ORMs). It speaks
//! PostgreSQL to the local client without asking for a password, opens a TLS session to the
//! gateway (verifying its certificate), logs in with the user's token and the connection name,
//! and then relays bytes unchanged. CancelRequests are forwarded, so Ctrl-C works.
//!
//! The local side is plaintext on loopback by design: it never leaves the machine, and the
//! identity comes from the token the tunnel holds, not from anything the local client sends.

use crate::codec::encode;
use crate::codec::frame::MAX_STARTUP_LEN;
use crate::codec::frontend::StartupPacket;
use bytes::BytesMut;
use postgres_protocol::message::frontend;
use sluice_core::Secret;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;
use tracing::{info, warn};

/// Where the tunnel goes and as whom.
pub struct TunnelConfig {
    /// Gateway PostgreSQL listener, `host:port`.
    pub gateway: String,
    /// Name the gateway's certificate must carry.
    pub server_name: ServerName<'static>,
    /// TLS client configuration trusting the gateway's CA.
    pub tls: TlsConnector,
    /// Connection name (sent as the user).
    pub connection: String,
    /// The user's gateway token or JWT (sent as the password).
    pub token: Secret<String>,
}

/// Why one tunnelled session failed before the relay.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// Local or gateway I/O failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A startup-phase packet (from the local client or the gateway) is malformed.
    #[error("invalid startup-phase packet")]
    Startup,
    /// The gateway would not speak TLS.
    #[error("the gateway refused TLS")]
    NoTls,
}

/// Accepts local clients until the listener fails.
pub async fn serve(listener: TcpListener, cfg: Arc<TunnelConfig>) -> std::io::Result<()> {
    loop {
        let (client, peer) = listener.accept().await?;
        let _ = client.set_nodelay(true);
        let cfg = cfg.clone();
        tokio::spawn(async move {
            match handle(client, &cfg).await {
                Ok(()) => info!(%peer, "local session ended"),
                Err(e) => warn!(%peer, error = %e, "local session failed"),
            }
        });
    }
}

async fn refuse(client: &mut TcpStream, message: &str) {
    let mut out = BytesMut::new();
    encode::error_response(&mut out, "FATAL", "08001", message);
    let _ = client.write_all(&out).await;
}

async fn handle(mut client: TcpStream, cfg: &TunnelConfig) -> Result<(), TunnelError> {
    let params: Vec<(String, String)> = loop {
        let body = crate::handshake::read_startup(&mut client)
            .await
            .map_err(|_| TunnelError::Startup)?;
        match StartupPacket::parse(&body).map_err(|_| TunnelError::Startup)? {
            StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                client.write_all(b"N").await?;
            }
            StartupPacket::Cancel { pid, secret } => {
                let mut gw = TcpStream::connect(&cfg.gateway).await?;
                let mut out = BytesMut::new();
                encode::cancel_request(&mut out, pid, secret);
                gw.write_all(&out).await?;
                let mut byte = [0u8; 1];
                let _ = gw.read(&mut byte).await;
                return Ok(());
            }
            StartupPacket::Startup { params, .. } => {
                break params
                    .into_iter()
                    .filter(|(k, _)| *k != "user")
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
            }
        }
    };
    let mut gw = match open(cfg).await {
        Ok(s) => s,
        Err(e) => {
            refuse(
                &mut client,
                &format!("sluice connect: cannot reach the gateway: {e}"),
            )
            .await;
            return Err(e);
        }
    };
    let mut out = BytesMut::new();
    let mut all: Vec<(&str, &str)> = vec![("user", cfg.connection.as_str())];
    all.extend(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    frontend::startup_message(all, &mut out)?;
    gw.write_all(&out).await?;
    // The gateway asks for the password first (or refuses); answer it, then relay.
    let tag = gw.read_u8().await?;
    let len = gw.read_i32().await?;
    // An authentication request or an error: small, whatever the gateway says.
    let len = usize::try_from(len)
        .ok()
        .filter(|l| (4..=MAX_STARTUP_LEN).contains(l))
        .ok_or(TunnelError::Startup)?;
    let mut body = vec![0; len - 4];
    gw.read_exact(&mut body).await?;
    if tag == b'R' && body.get(..4) == Some(&3i32.to_be_bytes()[..]) {
        let mut pw = BytesMut::new();
        frontend::password_message(cfg.token.expose().as_bytes(), &mut pw)?;
        gw.write_all(&pw).await?;
    } else {
        let mut raw = BytesMut::new();
        encode::raw(&mut raw, tag, &body);
        client.write_all(&raw).await?;
    }
    tokio::io::copy_bidirectional(&mut client, &mut gw).await?;
    Ok(())
}

async fn open(cfg: &TunnelConfig) -> Result<impl AsyncRead + AsyncWrite + Unpin, TunnelError> {
    let mut tcp = TcpStream::connect(&cfg.gateway).await?;
    tcp.set_nodelay(true)?;
    let mut ssl = BytesMut::new();
    encode::ssl_request(&mut ssl);
    tcp.write_all(&ssl).await?;
    if tcp.read_u8().await? != b'S' {
        return Err(TunnelError::NoTls);
    }
    Ok(cfg.tls.connect(cfg.server_name.clone(), tcp).await?)
}
