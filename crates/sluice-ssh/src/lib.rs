//! The SSH adapter: sluice as a man-in-the-middle between OpenSSH clients and SSH targets.
//!
//! A client runs `ssh -p 12222 [login+]connection@gateway`. It logs in with a public key
//! registered to its identity (`sluice identities keys add`) or a certificate of the gateway's
//! user CA; the gateway checks the grant, opens the target with the credential it holds (a
//! password, its own key, or a certificate from its target CA), verifies the target's host key
//! (pinned, or trusted on first use), and pairs every channel the client opens with one on the
//! target:
//!
//! - `handler.rs`: the server side (login, channel opens) and the session's containment.
//! - `upstream.rs`: the client side toward the target (dial, host key, login).
//! - `channel.rs`: one shell/exec/subsystem channel relayed: requests, guard, masking,
//!   recording.
//! - `forward.rs`: `-L` to allowed destinations; `-R` and agent forwarding where enabled.
//! - `session.rs`: what a session's channels share, and the guard's verdict on a command.
//! - `keys.rs`: the gateway's keys and CAs; `certs.rs`: the certificates they sign;
//!   `login.rs`: `login+connection`.

pub mod certs;
mod channel;
mod files;
mod forward;
mod handler;
pub mod keys;
pub mod login;
mod session;
mod upstream;

pub use keys::GatewayKeys;
pub use upstream::UpstreamError;

use handler::{ClientHandler, ConnState};
use sluice_core::{EndReason, SessionEvent};
use sluice_pipeline::{audit, Pipeline};
use sluice_policy::analysis::AnalysisCache;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, Instrument};

/// SSH flow-control window per channel.
pub(crate) const WINDOW: u32 = 8 * 1024 * 1024;
/// Largest SSH packet payload accepted.
pub(crate) const MAX_PACKET: u32 = 32 * 1024;
/// Messages queued per channel before the connection's reader waits.
pub(crate) const CHANNEL_BUFFER: usize = 256;

/// How long a session's end waits for its channels to record theirs.
const CHANNEL_DRAIN: Duration = Duration::from_secs(5);

/// Ciphers offered to clients when the config names none: the AES-GCM AEADs, which every
/// OpenSSH since 6.2 speaks and which run on the CPU's AES instructions. An SSH client picks
/// the first of *its* list that the server offers, so offering ChaCha20-Poly1305 (OpenSSH's
/// first choice) would make every default client use it, and its OpenSSH variant costs the
/// gateway about twice the CPU per byte here (ring has no vectorised Poly1305 for it); see
/// `bench/ssh.sh`. `listeners.ssh.ciphers` can add it, or AES-CTR for older clients.
pub const DEFAULT_CLIENT_CIPHERS: &[russh::cipher::Name] =
    &[russh::cipher::AES_128_GCM, russh::cipher::AES_256_GCM];

/// Ciphers a config may offer to clients: authenticated encryption or CTR with a MAC (no CBC,
/// no 3DES, no `none`).
const ALLOWED_CLIENT_CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::AES_128_GCM,
    russh::cipher::AES_256_GCM,
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_128_CTR,
    russh::cipher::AES_192_CTR,
    russh::cipher::AES_256_CTR,
];

/// The ciphers `names` (as OpenSSH spells them) for the client side, or why not.
pub fn client_ciphers(names: &[String]) -> Result<Vec<russh::cipher::Name>, String> {
    if names.is_empty() {
        return Err("name at least one cipher".into());
    }
    names
        .iter()
        .map(|n| {
            ALLOWED_CLIENT_CIPHERS
                .iter()
                .find(|c| c.as_ref() == n.as_str())
                .copied()
                .ok_or_else(|| {
                    let allowed: Vec<&str> =
                        ALLOWED_CLIENT_CIPHERS.iter().map(AsRef::as_ref).collect();
                    format!("unsupported cipher {n:?} (one of: {})", allowed.join(", "))
                })
        })
        .collect()
}

/// Settings of the SSH listener.
#[derive(Clone, Debug)]
pub struct SshSettings {
    /// Ciphers offered to clients, in order.
    pub ciphers: Vec<russh::cipher::Name>,
    /// Limit for opening and logging in to the target.
    pub connect_timeout: Duration,
    /// Output bytes recorded per channel and stream (the rest is counted).
    pub output_cap: u64,
    /// Dropped when the listener and all its sessions are done (shutdown waits on it).
    pub drained: tokio::sync::mpsc::Sender<()>,
}

pub(crate) struct Ctx {
    pub pipeline: Pipeline,
    pub keys: GatewayKeys,
    pub settings: SshSettings,
    pub analyses: Arc<AnalysisCache>,
    config: Arc<russh::server::Config>,
    shutdown: watch::Receiver<bool>,
}

/// Accepts SSH clients until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    pipeline: Pipeline,
    keys: GatewayKeys,
    settings: SshSettings,
    shutdown: watch::Receiver<bool>,
) {
    let config = Arc::new(russh::server::Config {
        server_id: russh::SshId::Standard("SSH-2.0-sluice".into()),
        methods: russh::MethodSet::from(&[russh::MethodKind::PublicKey][..]),
        keys: vec![keys.host.clone()],
        auth_rejection_time: Duration::from_millis(200),
        auth_rejection_time_initial: Some(Duration::ZERO),
        window_size: WINDOW,
        maximum_packet_size: MAX_PACKET,
        channel_buffer_size: CHANNEL_BUFFER,
        nodelay: true,
        keepalive_interval: Some(Duration::from_secs(30)),
        preferred: russh::Preferred {
            cipher: std::borrow::Cow::Owned(settings.ciphers.clone()),
            ..Default::default()
        },
        ..Default::default()
    });
    let ctx = Arc::new(Ctx {
        pipeline,
        keys,
        settings,
        analyses: Arc::new(AnalysisCache::default()),
        config,
        shutdown: shutdown.clone(),
    });
    sluice_pipeline::accept::accept_loop(listener, shutdown, move |tcp, peer| {
        let ctx = ctx.clone();
        let span = tracing::info_span!("ssh", client = %peer, session = tracing::field::Empty, identity = tracing::field::Empty);
        tokio::spawn(handle_client(tcp, peer, ctx, None).instrument(span));
    })
    .await;
}

/// Runs the SSH login inside a jump channel to `destination` (boxed: a jump's login is a
/// client connection of its own, and would otherwise make the future type recursive).
pub(crate) fn jump(
    ctx: Arc<Ctx>,
    peer: SocketAddr,
    channel: russh::Channel<russh::server::Msg>,
    destination: String,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(handle_client(
        channel.into_stream(),
        peer,
        ctx,
        Some(destination),
    ))
}

async fn handle_client<S>(stream: S, peer: SocketAddr, ctx: Arc<Ctx>, jump_to: Option<String>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let _drained = ctx.settings.drained.clone();
    let state = Arc::new(Mutex::new(ConnState::Authenticating));
    let handler = ClientHandler {
        ctx: ctx.clone(),
        peer,
        state: state.clone(),
        failed_logins: Vec::new(),
        // russh runs the handler on its own task: the handler carries the span itself.
        span: tracing::Span::current(),
        jump_to,
    };
    let mut shutdown = ctx.shutdown.clone();
    let ended: Result<(), String> =
        match russh::server::run_stream(ctx.config.clone(), stream, handler).await {
            Err(e) => Err(e.to_string()),
            Ok(running) => {
                let handle = running.handle();
                tokio::pin!(running);
                let done = tokio::select! {
                    r = &mut running => Some(r.map_err(|e| e.to_string())),
                    _ = shutdown.wait_for(|s| *s) => None,
                };
                match done {
                    Some(r) => r,
                    None => {
                        let _ = handle
                            .disconnect(
                                russh::Disconnect::ByApplication,
                                "sluice: the gateway is shutting down".into(),
                                "en".into(),
                            )
                            .await;
                        let _ = running.await;
                        Err("gateway shutdown".into())
                    }
                }
            }
        };
    let state = std::mem::replace(
        &mut *state.lock().unwrap_or_else(|p| p.into_inner()),
        ConnState::Done,
    );
    match state {
        ConnState::Open(open) => {
            let shutting_down = *ctx.shutdown.borrow();
            finish(*open, ended, shutting_down).await
        }
        // A connection that never logged in was audited by the handler if it offered keys.
        ConnState::Authenticating | ConnState::Refused(_) | ConnState::Jump | ConnState::Done => {}
    }
}

/// Ends the recording of an open session with the reason it ended.
async fn finish(open: handler::Open, ended: Result<(), String>, shutting_down: bool) {
    let stop = open.shared.stop.borrow().clone();
    let (reason, detail) = match (stop, ended) {
        (Some(s), _) => (s.reason, Some(s.message)),
        (None, _) if shutting_down => (EndReason::GatewayShutdown, None),
        (None, _) if open.target.is_closed() => (
            EndReason::TargetClosed,
            Some("the target closed the connection".to_string()),
        ),
        (None, Ok(())) => (EndReason::ClientQuit, None),
        (None, Err(e)) => (EndReason::ClientDisconnected, Some(e)),
    };
    // Channels end as their two sides close; wait for them to record it.
    open.shared.channels_done(CHANNEL_DRAIN).await;
    let _ = open
        .target
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    let counts = open.shared.masked.lock().ok().map(|m| m.clone());
    let recorder = open.shared.recorder.lock().ok().and_then(|mut r| r.take());
    if let Some(mut recorder) = recorder {
        if let (Some(c), Some(p)) = (counts, open.shared.policy.as_ref()) {
            if let Some(m) = &p.policy.masker {
                let by_name = c.by_name(m.custom_names());
                if !by_name.is_empty() {
                    let _ = recorder.record(&SessionEvent::Masking { counts: by_name });
                }
            }
        }
        info!(reason = reason.as_str(), "session ended");
        recorder.finish(reason, detail);
    }
    drop(open.registration);
}

/// Audits a connection that never logged in although it offered keys.
fn audit_failed_login(pipeline: &Pipeline, peer: SocketAddr, failures: &[String]) {
    let mut e = audit::event("auth.connect", sluice_core::Outcome::Failure);
    e.source = Some(peer.to_string());
    e.protocol = Some("ssh".into());
    e.reason = Some(format!("public-key login failed: {}", failures.join("; ")));
    e.fault = Some(sluice_core::Fault::Client);
    pipeline.audit(e);
}
