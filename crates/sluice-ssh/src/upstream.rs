//! The gateway's SSH client toward the target: dial (directly or through an agent), check the
//! target's host key (pinned in the connection, or trusted on first use and enforced after),
//! and log in with the credential the gateway holds (a password, its own key, or a
//! certificate from its target CA). Channels the target opens toward the client (a forwarded
//! agent, `-R` connections) are refused unless the connection allows them.

use crate::certs;
use crate::forward::{self, Inbound};
use crate::keys::{self, GatewayKeys};
use russh::client::{self, AuthResult, ChannelOpenHandle, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{Channel, ChannelOpenFailure};
use sluice_pipeline::{Authorized, DialError, Pipeline, Route};
use sluice_store::ssh_keys::{check_host_key, HostKeyCheck};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;
use tracing::info;

/// Why the target session could not be opened. Messages name no secret.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The target could not be reached.
    #[error(transparent)]
    Dial(#[from] DialError),
    /// The target did not answer in time.
    #[error("the target did not answer within {0:?}")]
    Timeout(Duration),
    /// The target's host key is not the one trusted.
    #[error("{0}")]
    HostKey(String),
    /// The target refused the gateway's login.
    #[error("{0}")]
    Login(String),
    /// The target credential is unavailable.
    #[error("{0}")]
    Credential(String),
    /// SSH failed.
    #[error("SSH to the target failed: {0}")]
    Ssh(#[from] russh::Error),
}

/// The client handler toward the target.
pub(crate) struct TargetHandler {
    pipeline: Pipeline,
    connection: String,
    host: String,
    port: u16,
    pinned: Option<String>,
    refusal: Arc<Mutex<Option<String>>>,
    gone: Arc<Notify>,
    inbound: Arc<OnceLock<Inbound>>,
}

/// Refuses a channel the target opened that the connection does not allow (logged: a target
/// asking for the client's agent unasked is worth a look).
fn prohibited(what: &str) -> ChannelOpenFailure {
    info!(
        channel = what,
        "the target opened a channel this connection does not allow"
    );
    ChannelOpenFailure::AdministrativelyProhibited
}

impl client::Handler for TargetHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            PublicKeyOrCertificate::Certificate(_) => {
                self.refuse("the target presented a host certificate; pin its host key in the connection (ssh.host_key)".into());
                return Ok(false);
            }
        };
        let seen = keys::key_text(key);
        if let Some(pinned) = &self.pinned {
            if *pinned == seen {
                return Ok(true);
            }
            self.refuse(format!(
                "the target's host key ({}) is not the key pinned for connection {} — refusing to connect",
                keys::fingerprint(key),
                self.connection
            ));
            return Ok(false);
        }
        let (c, h, p, s) = (self.connection.clone(), self.host.clone(), self.port, seen);
        let checked = self
            .pipeline
            .store()
            .run(move |db| check_host_key(db, &c, &h, p, &s))
            .await;
        match checked {
            Ok(HostKeyCheck::Known) => Ok(true),
            Ok(HostKeyCheck::Recorded) => {
                info!(fingerprint = %keys::fingerprint(key), "target host key recorded (first use)");
                Ok(true)
            }
            Ok(HostKeyCheck::Mismatch { .. }) => {
                self.refuse(format!(
                    "the target's host key changed (now {}) since the gateway first connected to connection {} — refusing to connect; if the change is legitimate, an administrator runs `sluice ssh forget-host-key {}`",
                    keys::fingerprint(key),
                    self.connection,
                    self.connection
                ));
                Ok(false)
            }
            Err(e) => {
                self.refuse(format!("cannot check the target's host key: {e}"));
                Ok(false)
            }
        }
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        channel: Channel<client::Msg>,
        reply: ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        match self.inbound.get() {
            Some(i) if i.shared.options.agent_forwarding => {
                tokio::spawn(forward::agent(i.clone(), channel, reply));
            }
            _ => reply.reject(prohibited("agent")).await,
        }
        Ok(())
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: Channel<client::Msg>,
        connected_address: &str,
        connected_port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        match self.inbound.get() {
            Some(i) if i.shared.options.remote_forwarding => {
                let listen = (connected_address.to_string(), connected_port);
                let from = (originator_address.to_string(), originator_port);
                tokio::spawn(forward::remote(i.clone(), channel, reply, listen, from));
            }
            _ => reply.reject(prohibited("forwarded-tcpip")).await,
        }
        Ok(())
    }

    async fn server_channel_open_forwarded_streamlocal(
        &mut self,
        _channel: Channel<client::Msg>,
        _socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        reply.reject(prohibited("forwarded-streamlocal")).await;
        Ok(())
    }

    async fn disconnected(
        &mut self,
        reason: client::DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        self.gone.notify_one();
        match reason {
            client::DisconnectReason::ReceivedDisconnect(_) => Ok(()),
            client::DisconnectReason::Error(e) => Err(e),
        }
    }
}

impl TargetHandler {
    fn refuse(&self, why: String) {
        if let Ok(mut r) = self.refusal.lock() {
            *r = Some(why);
        }
    }
}

/// An open, logged-in target session.
pub(crate) struct Target {
    pub handle: Handle<TargetHandler>,
    /// `host:port` (and agent) for the recording.
    pub describe: String,
    /// Notified when the target connection ends.
    pub gone: Arc<Notify>,
    /// Set once the client side is known: channels the target opens go there.
    pub inbound: Arc<OnceLock<Inbound>>,
}

/// The SSH client settings toward targets.
pub(crate) fn client_config() -> Arc<client::Config> {
    Arc::new(client::Config {
        window_size: crate::WINDOW,
        maximum_packet_size: crate::MAX_PACKET,
        channel_buffer_size: crate::CHANNEL_BUFFER,
        nodelay: true,
        keepalive_interval: Some(Duration::from_secs(30)),
        preferred: russh::Preferred {
            cipher: std::borrow::Cow::Borrowed(TARGET_CIPHERS),
            ..Default::default()
        },
        ..Default::default()
    })
}

/// Ciphers toward targets, AES-GCM first: the gateway's leg is its own choice, and AES-GCM
/// (hardware AES through ring) costs the gateway less CPU than ChaCha20-Poly1305.
const TARGET_CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::AES_256_GCM,
    russh::cipher::AES_128_GCM,
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_256_CTR,
];

/// Opens and logs in to the target of `authorized` as `login`.
pub(crate) async fn connect(
    pipeline: &Pipeline,
    authorized: &Authorized,
    login: &str,
    gateway: &GatewayKeys,
    timeout: Duration,
) -> Result<Target, UpstreamError> {
    let conn = &authorized.connection;
    let route = Route::of(conn);
    let stream = tokio::time::timeout(timeout, pipeline.dial(&route))
        .await
        .map_err(|_| UpstreamError::Timeout(timeout))??;
    let describe = stream.describe(&route);
    let pinned = match conn.ssh.as_ref().and_then(|s| s.host_key.as_deref()) {
        Some(text) => Some(
            keys::parse_public_key(text)
                .map(|k| keys::key_text(&k))
                .map_err(|e| {
                    UpstreamError::HostKey(format!("the pinned host key is invalid: {e}"))
                })?,
        ),
        None => None,
    };
    let refusal = Arc::new(Mutex::new(None));
    let gone = Arc::new(Notify::new());
    let inbound = Arc::new(OnceLock::new());
    let handler = TargetHandler {
        pipeline: pipeline.clone(),
        connection: conn.name.0.clone(),
        host: conn.host.clone(),
        port: conn.port,
        pinned,
        refusal: refusal.clone(),
        gone: gone.clone(),
        inbound: inbound.clone(),
    };
    let handshake = client::connect_stream(client_config(), stream, handler);
    let mut handle = match tokio::time::timeout(timeout, handshake).await {
        Err(_) => return Err(UpstreamError::Timeout(timeout)),
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            let refused = refusal.lock().ok().and_then(|mut r| r.take());
            return Err(match refused {
                Some(why) => UpstreamError::HostKey(why),
                None => UpstreamError::Ssh(e),
            });
        }
    };
    let password = pipeline
        .target_password(conn)
        .await
        .map_err(|e| UpstreamError::Credential(e.to_string()))?;
    let options = conn.ssh.clone().unwrap_or_default();
    let certificate = match (&password, options.certificate) {
        (None, true) => Some(
            certs::issue_for_target(
                &gateway.target_ca,
                gateway.client.public_key(),
                login,
                &authorized.identity.name,
                &conn.name.0,
                options.agent_forwarding,
                certs::unix_now(),
            )
            .map_err(|e| UpstreamError::Credential(e.to_string()))?,
        ),
        _ => None,
    };
    let key = Arc::new(gateway.client.clone());
    let login_attempt = async {
        match (password, certificate) {
            (Some(p), _) => {
                handle
                    .authenticate_password(login, p.expose().clone())
                    .await
            }
            (None, Some(cert)) => handle.authenticate_openssh_cert(login, key, cert).await,
            (None, None) => {
                let key = PrivateKeyWithHashAlg::new(key, None);
                handle.authenticate_publickey(login, key).await
            }
        }
    };
    let result = tokio::time::timeout(timeout, login_attempt)
        .await
        .map_err(|_| UpstreamError::Timeout(timeout))??;
    match result {
        AuthResult::Success => Ok(Target {
            handle,
            describe,
            gone,
            inbound,
        }),
        AuthResult::Failure { .. } => Err(UpstreamError::Login(match &conn.credential {
            sluice_core::TargetCredential::None if options.certificate => format!(
                "the target refused the gateway's certificate for login {login:?}; the target's sshd must trust the key `sluice ssh gateway-key --target-ca` prints (TrustedUserCAKeys)"
            ),
            sluice_core::TargetCredential::None => format!(
                "the target refused the gateway's key for login {login:?}; add the key `sluice ssh gateway-key` prints to ~{login}/.ssh/authorized_keys on the target"
            ),
            _ => format!("the target refused the gateway's password for login {login:?}"),
        })),
    }
}
