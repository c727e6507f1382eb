//! The agent: enrolls once, then holds a tunnel to every gateway it is given, reconnecting
//! with backoff and jitter, and relays the streams the gateways open to the destinations its
//! allow-list permits.

pub mod allow;
pub mod client;
pub mod proxy;
pub mod serve;
pub mod state;

pub use allow::AllowList;
pub use client::{ClientError, GatewayAddr};
pub use proxy::Proxy;
pub use state::AgentState;

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tracing::{error, info, warn};

/// First wait after a failure; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How an agent runs.
pub struct AgentSettings {
    /// Gateways to hold a tunnel to (replicas).
    pub gateways: Vec<GatewayAddr>,
    /// TLS toward the gateways (trusting their CA).
    pub tls: Arc<rustls::ClientConfig>,
    /// Identity and name.
    pub state: Arc<AgentState>,
    /// Enrollment token, used when not yet enrolled.
    pub token: Option<String>,
    /// Destinations it may dial.
    pub allow: Arc<AllowList>,
    /// Runs programs for command connections (`--allow-exec`); `None` refuses them.
    pub exec: Option<Arc<dyn ExecService>>,
}

/// A stream on which the agent runs a program for the gateway.
pub type ExecStream = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;

/// Runs programs on the agent's host for command connections `via` this agent. The agent
/// itself only hands the stream over; what may run is the service's to decide.
pub trait ExecService: Send + Sync {
    /// Serves one run on `stream` until it ends.
    fn serve(
        &self,
        stream: ExecStream,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;
}

/// Why the agent cannot run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Not enrolled and no token given.
    #[error("this agent is not enrolled yet: pass --token with an enrollment token from `sluice agents add`")]
    NotEnrolled,
    /// Enrollment failed everywhere.
    #[error("enrollment failed: {0}")]
    Enroll(ClientError),
    /// The state dir could not be written.
    #[error(transparent)]
    State(#[from] state::StateError),
}

/// Enrolls when needed (at the first gateway that accepts the token), then runs one tunnel
/// loop per gateway until `shutdown` turns true.
pub async fn run(
    settings: AgentSettings,
    shutdown: watch::Receiver<bool>,
) -> Result<(), AgentError> {
    let name = match settings.state.name() {
        Some(n) => n,
        None => enroll(&settings).await?,
    };
    let mut tasks = Vec::new();
    for gw in settings.gateways.clone() {
        tasks.push(tokio::spawn(hold_tunnel(
            gw,
            name.clone(),
            settings.tls.clone(),
            settings.state.clone(),
            settings.allow.clone(),
            settings.exec.clone(),
            shutdown.clone(),
        )));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

async fn enroll(settings: &AgentSettings) -> Result<String, AgentError> {
    let token = settings.token.as_deref().ok_or(AgentError::NotEnrolled)?;
    let mut last = None;
    for gw in &settings.gateways {
        match gw.enroll(&settings.tls, &settings.state, token).await {
            Ok(name) => {
                settings.state.set_name(&name)?;
                info!(gateway = %gw.url, agent = %name, "enrolled");
                return Ok(name);
            }
            Err(e) => {
                warn!(gateway = %gw.url, error = %e, "enrollment failed");
                last = Some(e);
            }
        }
    }
    Err(AgentError::Enroll(
        last.unwrap_or(ClientError::BadUrl("no gateway given".into())),
    ))
}

/// Keeps one tunnel to `gw` up until shutdown.
async fn hold_tunnel(
    gw: GatewayAddr,
    name: String,
    tls: Arc<rustls::ClientConfig>,
    state: Arc<AgentState>,
    allow: Arc<AllowList>,
    exec: Option<Arc<dyn ExecService>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = MIN_BACKOFF;
    while !*shutdown.borrow() {
        let opened = tokio::select! {
            r = gw.open_tunnel(&tls, &state, &name) => r,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        match opened {
            Ok(io) => {
                let (up_tx, up_rx) = oneshot::channel();
                let url = gw.url.clone();
                let announce = async move {
                    if up_rx.await.is_ok() {
                        info!(gateway = %url, "tunnel up");
                        true
                    } else {
                        false
                    }
                };
                let served = serve::serve(
                    io,
                    allow.clone(),
                    exec.clone(),
                    gw.url.clone(),
                    up_tx,
                    shutdown.clone(),
                );
                let (result, was_up) = tokio::join!(served, announce);
                if was_up {
                    backoff = MIN_BACKOFF;
                }
                match result {
                    Ok(()) => info!(gateway = %gw.url, "tunnel closed"),
                    Err(e) => warn!(gateway = %gw.url, error = %e, "tunnel lost"),
                }
            }
            Err(e) if e.is_refusal() => {
                error!(gateway = %gw.url, error = %e, "gateway refused this agent")
            }
            Err(e) => warn!(gateway = %gw.url, error = %e, "cannot open tunnel"),
        }
        let wait = jitter(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// `d` scaled by a random factor in [0.5, 1.5), so reconnecting agents spread out.
fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    let frac = u16::from_le_bytes(b) as f64 / 65536.0;
    d.mul_f64(0.5 + frac)
}
