//! The client-facing startup: SSL negotiation, the startup packet, and the token presented as
//! the password. Reads exactly one packet at a time, so no byte meant for TLS is consumed early.

use crate::codec::frontend::{password, StartupPacket};
use crate::codec::{encode, CodecError};
use bytes::BytesMut;
use sluice_core::Secret;
use sluice_pipeline::stream::ClientStream;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

/// The whole startup must finish within this time.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a finished handshake produced.
pub enum Handshake {
    /// A client that wants a session.
    Session(ClientHello),
    /// A CancelRequest with the gateway-issued key.
    Cancel {
        /// Process id.
        pid: i32,
        /// Secret.
        secret: i32,
    },
    /// The client went away before presenting a password (e.g. psql about to prompt).
    Closed,
}

/// A client asking for a session.
pub struct ClientHello {
    /// The negotiated stream.
    pub stream: ClientStream,
    /// The connection it named (startup `user`).
    pub connection: String,
    /// The database it named, if any.
    pub database: Option<String>,
    /// Other startup parameters, passed through to the target.
    pub options: Vec<(String, String)>,
    /// The presented token.
    pub token: Secret<String>,
}

/// Why a handshake failed. Each carries the SQLSTATE the client is told.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// Bytes that are not a valid startup.
    #[error("malformed startup: {0}")]
    Malformed(#[from] CodecError),
    /// Plaintext where TLS is required.
    #[error("TLS is required: connect with sslmode=require")]
    TlsRequired,
    /// A startup without `user`.
    #[error("no connection named: put the connection name in the user field")]
    NoConnection,
    /// Replication connections are not proxied.
    #[error("replication connections are not supported")]
    Replication,
    /// The TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    /// The socket failed.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// The client took too long.
    #[error("startup timed out")]
    Timeout,
}

impl HandshakeError {
    /// SQLSTATE for the client.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            HandshakeError::TlsRequired => "28000",
            HandshakeError::NoConnection => "28000",
            HandshakeError::Replication => "0A000",
            _ => "08P01",
        }
    }
}

/// Settings of the handshake.
pub struct HandshakeConfig {
    /// TLS acceptor; `None` answers SSLRequest with `N`.
    pub tls: Option<TlsAcceptor>,
    /// Whether plaintext sessions are allowed (loopback peers only).
    pub allow_plaintext: bool,
}

/// Runs the handshake on a new client connection.
pub async fn run(
    tcp: TcpStream,
    cfg: &HandshakeConfig,
) -> Result<Handshake, (HandshakeError, Option<ClientStream>)> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, run_inner(tcp, cfg)).await {
        Ok(r) => r,
        Err(_) => Err((HandshakeError::Timeout, None)),
    }
}

async fn run_inner(
    tcp: TcpStream,
    cfg: &HandshakeConfig,
) -> Result<Handshake, (HandshakeError, Option<ClientStream>)> {
    let loopback = tcp
        .peer_addr()
        .map(|a| a.ip().is_loopback())
        .unwrap_or(false);
    let mut stream = ClientStream::Plain(tcp);
    let mut ssl_asked = false;
    loop {
        let packet = match read_startup(&mut stream).await {
            Ok(p) => p,
            Err(e) => return Err((e, Some(stream))),
        };
        let parsed = match StartupPacket::parse(&packet) {
            Ok(p) => p,
            Err(e) => return Err((e.into(), Some(stream))),
        };
        match parsed {
            StartupPacket::GssEncRequest if !stream.is_tls() => {
                // GSS encryption is not offered; libpq then tries SSL or plaintext.
                if let Err(e) = stream.write_all(b"N").await {
                    return Err((e.into(), None));
                }
            }
            StartupPacket::SslRequest if !ssl_asked => {
                ssl_asked = true;
                stream = match stream {
                    ClientStream::Plain(tcp) => negotiate(tcp, cfg.tls.as_ref())
                        .await
                        .map_err(|e| (e, None))?,
                    tls => return Err((CodecError::Malformed("startup").into(), Some(tls))),
                };
            }
            StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                return Err((CodecError::Malformed("startup").into(), Some(stream)))
            }
            StartupPacket::Cancel { pid, secret } => return Ok(Handshake::Cancel { pid, secret }),
            StartupPacket::Startup { minor, params } => {
                let plaintext_ok = cfg.allow_plaintext && loopback;
                if !(stream.is_tls() || plaintext_ok) {
                    return Err((HandshakeError::TlsRequired, Some(stream)));
                }
                return hello(stream, minor, &params).await;
            }
        }
    }
}

async fn negotiate(
    mut tcp: TcpStream,
    tls: Option<&TlsAcceptor>,
) -> Result<ClientStream, HandshakeError> {
    match tls {
        Some(acceptor) => {
            tcp.write_all(b"S").await?;
            let s = acceptor.accept(tcp).await.map_err(HandshakeError::Tls)?;
            Ok(ClientStream::Tls(Box::new(s)))
        }
        _ => {
            tcp.write_all(b"N").await?;
            Ok(ClientStream::Plain(tcp))
        }
    }
}

async fn hello(
    mut stream: ClientStream,
    minor: u16,
    params: &[(&str, &str)],
) -> Result<Handshake, (HandshakeError, Option<ClientStream>)> {
    let get = |k: &str| params.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    let Some(connection) = get("user").filter(|u| !u.is_empty()) else {
        return Err((HandshakeError::NoConnection, Some(stream)));
    };
    if get("replication").is_some_and(|v| v != "false" && v != "0" && v != "off") {
        return Err((HandshakeError::Replication, Some(stream)));
    }
    let options = params
        .iter()
        .filter(|(k, _)| !matches!(*k, "user" | "database" | "replication"))
        .filter(|(k, _)| !k.starts_with("_pq_."))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let connection = connection.to_string();
    let database = get("database").map(str::to_string);

    let mut out = BytesMut::new();
    // Newer clients may ask for protocol 3.x (x > 0) or send `_pq_.` options: answer as
    // PostgreSQL does, with the version sluice speaks (3.0) and the options it ignores.
    let unsupported: Vec<&str> = params
        .iter()
        .map(|(k, _)| *k)
        .filter(|k| k.starts_with("_pq_."))
        .collect();
    if minor > 0 || !unsupported.is_empty() {
        encode::negotiate_protocol_version(&mut out, 0, &unsupported);
    }
    encode::auth_cleartext(&mut out);
    if let Err(e) = stream.write_all(&out).await {
        return Err((e.into(), None));
    }
    let token = match read_password(&mut stream).await {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(Handshake::Closed),
        Err(e) => return Err((e, Some(stream))),
    };
    Ok(Handshake::Session(ClientHello {
        stream,
        connection,
        database,
        options,
        token,
    }))
}

/// Reads one untyped startup packet body.
/// Reads one startup-phase packet (length-checked); its body.
pub(crate) async fn read_startup<S: AsyncRead + Unpin>(
    s: &mut S,
) -> Result<Vec<u8>, HandshakeError> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await?;
    let n = i32::from_be_bytes(len);
    if !(8..=crate::codec::frame::MAX_STARTUP_LEN as i32).contains(&n) {
        return Err(CodecError::Length(n as i64).into());
    }
    let mut body = vec![0u8; n as usize - 4];
    s.read_exact(&mut body).await?;
    Ok(body)
}

/// Reads the PasswordMessage; `None` when the client closed instead.
async fn read_password<S: AsyncRead + Unpin>(
    s: &mut S,
) -> Result<Option<Secret<String>>, HandshakeError> {
    let mut head = [0u8; 5];
    match s.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    if head[0] != b'p' {
        return Err(CodecError::UnknownType(head[0] as char).into());
    }
    let n = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    if !(5..=4096).contains(&n) {
        return Err(CodecError::Length(n as i64).into());
    }
    let mut body = vec![0u8; n as usize - 4];
    s.read_exact(&mut body).await?;
    Ok(Some(Secret::new(password(&body)?.to_string())))
}

/// Sends a FATAL ErrorResponse to a client that has not started a session.
pub async fn refuse(stream: &mut ClientStream, code: &str, message: &str) {
    let mut out = BytesMut::new();
    encode::error_response(&mut out, "FATAL", code, message);
    let _ = stream.write_all(&out).await;
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
}

/// Shared handshake settings.
pub type SharedHandshakeConfig = Arc<HandshakeConfig>;
