//! Opening the target: TCP, the server's greeting, and a login with the credentials the
//! gateway holds (`mysql_native_password`, `caching_sha2_password`'s fast path, or
//! `mysql_clear_password` to a loopback target). The target session gets the client's
//! command-phase capabilities, so everything after the login relays unchanged.

use crate::auth::{self, CACHING_SHA2, CLEAR, FAST_AUTH_OK, FULL_AUTH, NATIVE};
use crate::codec::handshake::{parse_auth_switch, Greeting, HandshakeResponse};
use crate::codec::{caps, response, CodecError};
use sluice_core::Secret;
use sluice_pipeline::{DialError, Pipeline, Route, TargetStream};
use std::time::Duration;

/// Largest packet read during the login.
const MAX_LOGIN_PACKET: usize = 64 * 1024;

/// Where and as whom to log in.
pub struct TargetSpec<'a> {
    /// Where the target is (directly, or through an agent).
    pub route: &'a Route,
    /// Dials the route.
    pub pipeline: &'a Pipeline,
    /// Target user.
    pub user: &'a str,
    /// Target password, if any.
    pub password: Option<&'a Secret<String>>,
    /// Initial database.
    pub database: Option<&'a str>,
    /// The client's login (its capabilities and character set are mirrored).
    pub client: &'a HandshakeResponse,
    /// Limit for the whole login.
    pub timeout: Duration,
}

/// A logged-in target session.
pub struct Upstream {
    /// The connection.
    pub stream: TargetStream,
    /// What it leads to (peer address, or the route through an agent).
    pub target: String,
    /// The target's id for this session (what `KILL` takes).
    pub connection_id: u32,
    /// The target's version text.
    pub version: String,
    /// Capabilities in force on the target session.
    pub capabilities: u32,
}

/// Why the target could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Socket failure.
    #[error("cannot reach the target: {0}")]
    Io(#[from] std::io::Error),
    /// Connecting failed (directly or through an agent).
    #[error(transparent)]
    Dial(#[from] DialError),
    /// The login took too long.
    #[error("the target did not answer in time")]
    Timeout,
    /// The target sent something unreadable.
    #[error("unexpected answer from the target: {0}")]
    Codec(#[from] CodecError),
    /// The target refused the login (or the connection).
    #[error("the target refused the login: {message} ({code})")]
    Refused {
        /// MySQL error number.
        code: u16,
        /// Message.
        message: String,
    },
    /// The gateway could not get the target's password (file or environment).
    #[error("target credential unavailable: {0}")]
    Credential(String),
    /// The login needs something the gateway cannot do here.
    #[error("{0}")]
    Unsupported(String),
}

/// Connects and logs in.
pub async fn connect(spec: &TargetSpec<'_>) -> Result<Upstream, UpstreamError> {
    tokio::time::timeout(spec.timeout, login(spec))
        .await
        .map_err(|_| UpstreamError::Timeout)?
}

async fn login(spec: &TargetSpec<'_>) -> Result<Upstream, UpstreamError> {
    let mut stream = spec.pipeline.dial(spec.route).await?;
    let target = stream.describe(spec.route);
    // Where the password may go in clear: a target on the dialing host's loopback.
    let loopback = stream.is_loopback(spec.route);
    let (seq, payload) = read_packet(&mut stream).await?;
    if payload.first() == Some(&0xFF) {
        return Err(refused(&payload));
    }
    let greeting = Greeting::parse(&payload)?;
    let missing =
        spec.client.capabilities & caps::GATEWAY & caps::COMMAND_PHASE & !greeting.capabilities;
    if missing != 0 {
        return Err(UpstreamError::Unsupported(format!(
            "the target ({}) lacks protocol capabilities the client uses (0x{missing:08x})",
            greeting.version
        )));
    }
    let mut capabilities = (spec.client.capabilities & caps::GATEWAY & caps::COMMAND_PHASE)
        | caps::LONG_PASSWORD
        | caps::PROTOCOL_41
        | caps::SECURE_CONNECTION
        | caps::PLUGIN_AUTH
        | caps::PLUGIN_AUTH_LENENC_CLIENT_DATA
        | caps::CONNECT_ATTRS;
    if spec.database.is_some() {
        capabilities |= caps::CONNECT_WITH_DB;
    }
    capabilities &= greeting.capabilities | caps::LONG_PASSWORD;
    let password = spec.password.map(|p| p.expose().as_bytes()).unwrap_or(b"");
    let (plugin, answer) = scramble(&greeting.plugin, password, &greeting.scramble, loopback)?;
    let login = HandshakeResponse {
        capabilities,
        max_packet: spec.client.max_packet.max(1 << 24),
        charset: spec.client.charset,
        user: spec.user.to_string(),
        auth: answer,
        database: spec.database.map(str::to_string),
        plugin: Some(plugin.to_string()),
        attrs: vec![("program_name".into(), "sluice".into())],
    };
    let mut out = Vec::new();
    login.encode(&mut out);
    let mut seq = seq.wrapping_add(1);
    crate::exchange::send(&mut stream, seq, &out).await?;
    let mut plugin = plugin.to_string();
    loop {
        let (s, payload) = read_packet(&mut stream).await?;
        seq = s.wrapping_add(1);
        match payload.first() {
            Some(0x00) => break,
            Some(0xFF) => return Err(refused(&payload)),
            Some(0xFE) => {
                let (next, nonce) = parse_auth_switch(&payload)?;
                let (p, answer) = scramble(&next, password, &nonce, loopback)?;
                plugin = p.to_string();
                crate::exchange::send(&mut stream, seq, &answer).await?;
            }
            Some(0x01) if plugin == CACHING_SHA2 => match payload.get(1) {
                Some(&FAST_AUTH_OK) => continue,
                Some(&FULL_AUTH) if loopback => {
                    let mut clear = password.to_vec();
                    clear.push(0);
                    crate::exchange::send(&mut stream, seq, &clear).await?;
                }
                _ => {
                    return Err(UpstreamError::Unsupported(
                        "the target asks for caching_sha2_password full authentication, \
                         which needs TLS to the target"
                            .into(),
                    ))
                }
            },
            _ => return Err(CodecError::Malformed("login answer").into()),
        }
    }
    Ok(Upstream {
        stream,
        target,
        connection_id: greeting.connection_id,
        version: greeting.version,
        capabilities,
    })
}

/// Runs one statement on a logged-in target session and reads its OK or ERR.
pub async fn run_query(stream: &mut TargetStream, sql: &str) -> Result<(), UpstreamError> {
    let mut payload = vec![crate::codec::command::code::QUERY];
    payload.extend_from_slice(sql.as_bytes());
    crate::exchange::send(stream, 0, &payload).await?;
    let (_, answer) = read_packet(stream).await?;
    match answer.first() {
        Some(0xFF) => Err(refused(&answer)),
        _ => Ok(()),
    }
}

/// The answer to `plugin`'s challenge.
fn scramble(
    plugin: &str,
    password: &[u8],
    nonce: &[u8],
    loopback: bool,
) -> Result<(&'static str, Vec<u8>), UpstreamError> {
    match plugin {
        NATIVE => Ok((NATIVE, auth::native_password(password, nonce))),
        CACHING_SHA2 => Ok((CACHING_SHA2, auth::caching_sha2(password, nonce))),
        CLEAR if loopback => {
            let mut clear = password.to_vec();
            clear.push(0);
            Ok((CLEAR, clear))
        }
        other => Err(UpstreamError::Unsupported(format!(
            "the target's authentication plugin {other:?} is not supported by the gateway"
        ))),
    }
}

fn refused(payload: &[u8]) -> UpstreamError {
    match response::parse_err(payload) {
        Ok(e) => UpstreamError::Refused {
            code: e.code,
            message: e.message,
        },
        Err(e) => e.into(),
    }
}

async fn read_packet(stream: &mut TargetStream) -> Result<(u8, Vec<u8>), UpstreamError> {
    crate::exchange::read_packet(stream, MAX_LOGIN_PACKET)
        .await?
        .ok_or_else(|| UpstreamError::Io(std::io::ErrorKind::UnexpectedEof.into()))
}
