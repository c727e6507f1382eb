//! The client-facing connection phase: the gateway's greeting, TLS, and the token presented
//! as the password.
//!
//! The greeting names `caching_sha2_password`. Whatever the client answers, the gateway asks
//! for "full authentication", in which the client sends the password itself; clients do that
//! only over TLS, which is what the gateway requires. A client that logged in with another
//! plugin is switched to `caching_sha2_password` first. Where plaintext is allowed (loopback,
//! by configuration) the gateway asks for `mysql_clear_password` instead, since clients send
//! a caching_sha2 password in the clear only to a server whose RSA key they hold.

use crate::auth::{CACHING_SHA2, CLEAR, FULL_AUTH};
use crate::codec::handshake::{encode_auth_switch, is_ssl_request, Greeting, HandshakeResponse};
use crate::codec::{caps, response, status, CodecError};
use crate::exchange::{read_packet, send};
use ring::rand::{SecureRandom, SystemRandom};
use sluice_core::Secret;
use sluice_pipeline::stream::ClientStream;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

/// The whole connection phase must finish within this time.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest login packet accepted.
const MAX_LOGIN: usize = 64 * 1024;
/// Version the gateway announces before it knows the target. Clients pick defaults by
/// version: a MySQL 8 version makes them ask for collation 255 (utf8mb4_0900_ai_ci), which
/// MariaDB does not know; 5.7's defaults (utf8mb4_general_ci) work on MySQL and MariaDB.
pub const SERVER_VERSION: &str = "5.7.99-sluice";
/// utf8mb4_general_ci.
pub const DEFAULT_CHARSET: u8 = 45;

/// TLS and plaintext policy for clients.
#[derive(Clone)]
pub struct HandshakeConfig {
    /// The gateway's TLS acceptor.
    pub tls: Option<TlsAcceptor>,
    /// Whether loopback clients may skip TLS.
    pub allow_plaintext: bool,
}

/// A client asking for a session.
pub struct ClientHello {
    /// The negotiated stream.
    pub stream: ClientStream,
    /// The connection it named (the user name).
    pub connection: String,
    /// The database it named, if any.
    pub database: Option<String>,
    /// The presented token.
    pub token: Secret<String>,
    /// Its login (capabilities, character set, attributes).
    pub login: HandshakeResponse,
    /// Sequence id of the gateway's final answer (OK or ERR).
    pub seq: u8,
}

/// What a finished handshake produced.
pub enum Handshake {
    /// A client that wants a session.
    Session(Box<ClientHello>),
    /// The client went away before logging in.
    Closed,
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// Bytes that are not a valid login.
    #[error("malformed login: {0}")]
    Malformed(#[from] CodecError),
    /// Plaintext where TLS is required.
    #[error("TLS is required: connect with --ssl (mariadb) or --ssl-mode=REQUIRED (mysql)")]
    TlsRequired,
    /// No user name.
    #[error("no connection named: put the connection name in the user field")]
    NoConnection,
    /// The client asked for compression, which the gateway does not offer.
    #[error("compressed connections are not supported")]
    Compression,
    /// The TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    /// The socket failed.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// The client took too long.
    #[error("login timed out")]
    Timeout,
}

impl HandshakeError {
    /// MySQL error number and SQLSTATE for the client.
    pub fn code(&self) -> (u16, &'static str) {
        match self {
            HandshakeError::TlsRequired => (3159, "HY000"),
            HandshakeError::NoConnection => (1045, "28000"),
            _ => (1043, "08S01"),
        }
    }
}

/// A failed handshake and, when the client can still be told, its stream and the next
/// sequence id.
pub type Failure = (HandshakeError, Option<(ClientStream, u8)>);

/// Runs the connection phase; `connection_id` is the id the client is told.
pub async fn run(
    tcp: TcpStream,
    config: &HandshakeConfig,
    connection_id: u32,
) -> Result<Handshake, Failure> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, phases(tcp, config, connection_id)).await {
        Ok(r) => r,
        Err(_) => Err((HandshakeError::Timeout, None)),
    }
}

async fn phases(
    tcp: TcpStream,
    config: &HandshakeConfig,
    connection_id: u32,
) -> Result<Handshake, Failure> {
    let mut nonce = [0u8; 20];
    SystemRandom::new().fill(&mut nonce).map_err(|_| {
        (
            HandshakeError::Io(std::io::Error::other("no randomness")),
            None,
        )
    })?;
    // Nonce bytes are printable and never NUL, as servers make them.
    for b in &mut nonce {
        *b = 0x21 + (*b % 0x5E);
    }
    let loopback = tcp
        .peer_addr()
        .map(|a| a.ip().is_loopback())
        .unwrap_or(false);
    let mut offered = caps::GATEWAY;
    if config.tls.is_none() {
        offered &= !caps::SSL;
    }
    let greeting = Greeting {
        version: SERVER_VERSION.into(),
        connection_id,
        scramble: nonce.to_vec(),
        capabilities: offered,
        charset: DEFAULT_CHARSET,
        status: status::AUTOCOMMIT,
        plugin: CACHING_SHA2.into(),
    };
    let mut out = Vec::new();
    greeting.encode(&mut out);
    let mut stream = ClientStream::Plain(tcp);
    send(&mut stream, 0, &out)
        .await
        .map_err(|e| (e.into(), None))?;

    let Some((mut seq, first)) = read_packet(&mut stream, MAX_LOGIN)
        .await
        .map_err(|e| (e.into(), None))?
    else {
        return Ok(Handshake::Closed);
    };
    let payload = if is_ssl_request(&first) {
        let Some(acceptor) = &config.tls else {
            return Err((HandshakeError::TlsRequired, None));
        };
        let ClientStream::Plain(tcp) = stream else {
            return Err((HandshakeError::TlsRequired, None));
        };
        let tls = acceptor
            .accept(tcp)
            .await
            .map_err(|e| (HandshakeError::Tls(e), None))?;
        stream = ClientStream::Tls(Box::new(tls));
        match read_packet(&mut stream, MAX_LOGIN).await {
            Ok(Some((s, p))) => {
                seq = s;
                p
            }
            Ok(None) => return Ok(Handshake::Closed),
            Err(e) => return Err((e.into(), None)),
        }
    } else {
        first
    };
    let tls = stream.is_tls();
    if !(tls || config.allow_plaintext && loopback) {
        return Err((
            HandshakeError::TlsRequired,
            Some((stream, seq.wrapping_add(1))),
        ));
    }
    let login = match HandshakeResponse::parse(&payload) {
        Ok(l) => l,
        Err(e) => return Err((e.into(), Some((stream, seq.wrapping_add(1))))),
    };
    if login.capabilities & caps::COMPRESS != 0 {
        return Err((
            HandshakeError::Compression,
            Some((stream, seq.wrapping_add(1))),
        ));
    }
    if login.user.is_empty() {
        return Err((
            HandshakeError::NoConnection,
            Some((stream, seq.wrapping_add(1))),
        ));
    }
    let password = match obtain_password(&mut stream, &login, seq, &nonce, tls).await {
        Ok(Some(p)) => p,
        Ok(None) => return Ok(Handshake::Closed),
        Err(e) => return Err((e, None)),
    };
    Ok(Handshake::Session(Box::new(ClientHello {
        connection: login.user.clone(),
        database: login.database.clone(),
        token: Secret::new(password.1),
        login,
        stream,
        seq: password.0,
    })))
}

/// Gets the password (the token) itself from the client: (next sequence id, password).
async fn obtain_password(
    stream: &mut ClientStream,
    login: &HandshakeResponse,
    mut seq: u8,
    nonce: &[u8],
    tls: bool,
) -> Result<Option<(u8, String)>, HandshakeError> {
    let plugin = login.plugin.as_deref().unwrap_or(CACHING_SHA2);
    let answer = if plugin == CLEAR {
        login.auth.clone()
    } else if !tls {
        // Plaintext (allowed on loopback): ask for the password in the clear.
        let mut out = Vec::new();
        encode_auth_switch(&mut out, CLEAR, &[]);
        seq = seq.wrapping_add(1);
        send(stream, seq, &out).await?;
        match read_packet(stream, MAX_LOGIN).await? {
            Some((s, p)) => {
                seq = s;
                p
            }
            None => return Ok(None),
        }
    } else {
        if plugin != CACHING_SHA2 {
            let mut out = Vec::new();
            encode_auth_switch(&mut out, CACHING_SHA2, nonce);
            seq = seq.wrapping_add(1);
            send(stream, seq, &out).await?;
            match read_packet(stream, MAX_LOGIN).await? {
                Some((s, _scramble)) => seq = s,
                None => return Ok(None),
            }
        }
        seq = seq.wrapping_add(1);
        send(stream, seq, &[0x01, FULL_AUTH]).await?;
        match read_packet(stream, MAX_LOGIN).await? {
            Some((s, p)) => {
                seq = s;
                p
            }
            None => return Ok(None),
        }
    };
    let answer = answer.strip_suffix(&[0]).unwrap_or(&answer);
    let password = String::from_utf8(answer.to_vec())
        .map_err(|_| CodecError::Malformed("password (not UTF-8)"))?;
    Ok(Some((seq.wrapping_add(1), password)))
}

/// Tells the client its login succeeded.
pub async fn accept(stream: &mut ClientStream, seq: u8) -> std::io::Result<()> {
    let mut ok = Vec::new();
    response::encode_ok(&mut ok, status::AUTOCOMMIT);
    send(stream, seq, &ok).await
}

/// Sends an ERR packet and closes; errors are ignored (the client may be gone).
pub async fn refuse(stream: &mut ClientStream, seq: u8, code: u16, sqlstate: &str, message: &str) {
    let mut err = Vec::new();
    response::encode_err(&mut err, code, sqlstate, message);
    let _ = send(stream, seq, &err).await;
    let _ = stream.shutdown().await;
}
