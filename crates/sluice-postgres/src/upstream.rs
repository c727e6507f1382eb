//! Opening the target: TCP, startup, and authentication with the credentials the gateway
//! holds (SCRAM-SHA-256, MD5, cleartext or trust). The client never sees them.

use crate::codec::backend::{authentication, backend_key_data, error_fields};
use crate::codec::{next_message, CodecError};
use bytes::BytesMut;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend;
use sluice_core::Secret;
use sluice_pipeline::{DialError, Pipeline, Route, TargetStream};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the gateway needs to open a target session.
pub struct TargetSpec<'a> {
    /// Where the target is (directly, or through an agent).
    pub route: &'a Route,
    /// Dials the route.
    pub pipeline: &'a Pipeline,
    /// User to log in as.
    pub user: &'a str,
    /// Database to open.
    pub database: &'a str,
    /// Password, when the target asks for one.
    pub password: Option<&'a Secret<String>>,
    /// Further startup parameters passed through from the client (application_name, …).
    pub options: &'a [(String, String)],
    /// Limit for connecting and authenticating.
    pub timeout: Duration,
}

/// An authenticated target connection, ready for queries.
pub struct Upstream {
    /// The connection.
    pub stream: TargetStream,
    /// What it leads to, for the recording (peer address, or the route through an agent).
    pub target: String,
    /// The target's BackendKeyData.
    pub key: (i32, i32),
    /// ParameterStatus and NoticeResponse messages to relay to the client, raw.
    pub greeting: BytesMut,
}

/// Why the target could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Connecting failed (directly or through an agent).
    #[error(transparent)]
    Connect(#[from] DialError),
    /// The connection broke during startup.
    #[error("target connection failed during startup: {0}")]
    Io(#[from] std::io::Error),
    /// Connecting and authenticating took too long.
    #[error("target did not complete startup within {0:?}")]
    Timeout(Duration),
    /// The target refused (bad gateway credentials, unknown database, too many clients…).
    #[error("target refused the session: {message} (SQLSTATE {code})")]
    Refused {
        /// SQLSTATE from the target.
        code: String,
        /// Message from the target.
        message: String,
    },
    /// The target asked for a password and the connection has none configured.
    #[error("target requires a password and connection has none configured")]
    PasswordRequired,
    /// The target asked for an authentication method sluice does not support.
    #[error("target requested unsupported authentication method {0}")]
    UnsupportedAuth(i32),
    /// The target spoke invalid protocol.
    #[error("target sent invalid protocol: {0}")]
    Protocol(String),
}

impl From<CodecError> for UpstreamError {
    fn from(e: CodecError) -> Self {
        UpstreamError::Protocol(e.to_string())
    }
}

/// Connects to and authenticates against the target.
pub async fn connect(spec: &TargetSpec<'_>) -> Result<Upstream, UpstreamError> {
    tokio::time::timeout(spec.timeout, connect_inner(spec))
        .await
        .map_err(|_| UpstreamError::Timeout(spec.timeout))?
}

async fn connect_inner(spec: &TargetSpec<'_>) -> Result<Upstream, UpstreamError> {
    let stream = spec.pipeline.dial(spec.route).await?;
    let target = stream.describe(spec.route);
    let mut conn = Startup {
        stream,
        buf: BytesMut::with_capacity(8192),
        out: BytesMut::with_capacity(512),
    };
    let mut params: Vec<(&str, &str)> = vec![("user", spec.user), ("database", spec.database)];
    params.extend(spec.options.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    frontend::startup_message(params, &mut conn.out)?;
    conn.send().await?;

    let mut scram: Option<ScramSha256> = None;
    let mut key = (0, 0);
    let mut greeting = BytesMut::new();
    loop {
        let (tag, body) = conn.next().await?;
        match tag {
            b'R' => conn.authenticate(spec, &body, &mut scram).await?,
            b'E' => {
                let f = error_fields(&body)?;
                return Err(UpstreamError::Refused {
                    code: f.code.to_string(),
                    message: f.message.to_string(),
                });
            }
            b'K' => key = backend_key_data(&body)?,
            b'S' | b'N' => crate::codec::encode::raw(&mut greeting, tag, &body),
            b'Z' => {
                return Ok(Upstream {
                    stream: conn.stream,
                    target,
                    key,
                    greeting,
                })
            }
            other => {
                return Err(UpstreamError::Protocol(format!(
                    "unexpected message {:?} during startup",
                    other as char
                )))
            }
        }
    }
}

/// The startup-phase connection: a read buffer and an output buffer.
struct Startup {
    stream: TargetStream,
    buf: BytesMut,
    out: BytesMut,
}

impl Startup {
    async fn send(&mut self) -> Result<(), UpstreamError> {
        self.stream.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    /// The next whole message (tag, body).
    async fn next(&mut self) -> Result<(u8, Vec<u8>), UpstreamError> {
        loop {
            if let Some(f) = next_message(&self.buf)? {
                let msg = (f.tag, f.body.to_vec());
                let _ = self.buf.split_to(f.len);
                return Ok(msg);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(UpstreamError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    async fn authenticate(
        &mut self,
        spec: &TargetSpec<'_>,
        body: &[u8],
        scram: &mut Option<ScramSha256>,
    ) -> Result<(), UpstreamError> {
        let (code, data) = authentication(body)?;
        let password = || {
            spec.password
                .map(|p| p.expose().as_bytes())
                .ok_or(UpstreamError::PasswordRequired)
        };
        match code {
            0 => return Ok(()),
            3 => frontend::password_message(password()?, &mut self.out)?,
            5 => {
                let salt: [u8; 4] = data
                    .try_into()
                    .map_err(|_| UpstreamError::Protocol("bad MD5 salt".into()))?;
                let hash = md5_hash(spec.user.as_bytes(), password()?, salt);
                frontend::password_message(hash.as_bytes(), &mut self.out)?;
            }
            10 => {
                let offers_scram = data.split(|&b| b == 0).any(|m| m == b"SCRAM-SHA-256");
                if !offers_scram {
                    return Err(UpstreamError::UnsupportedAuth(code));
                }
                let s = ScramSha256::new(password()?, ChannelBinding::unsupported());
                frontend::sasl_initial_response("SCRAM-SHA-256", s.message(), &mut self.out)?;
                *scram = Some(s);
            }
            11 => {
                let s = scram
                    .as_mut()
                    .ok_or_else(|| UpstreamError::Protocol("SASL continue without start".into()))?;
                s.update(data)
                    .map_err(|e| UpstreamError::Protocol(format!("SCRAM: {e}")))?;
                frontend::sasl_response(s.message(), &mut self.out)?;
            }
            12 => {
                let mut s = scram
                    .take()
                    .ok_or_else(|| UpstreamError::Protocol("SASL final without start".into()))?;
                s.finish(data)
                    .map_err(|e| UpstreamError::Protocol(format!("SCRAM server proof: {e}")))?;
                return Ok(());
            }
            other => return Err(UpstreamError::UnsupportedAuth(other)),
        }
        self.send().await
    }
}
