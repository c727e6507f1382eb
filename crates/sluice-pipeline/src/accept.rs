//! The accept loop every protocol listener runs: accept until shutdown, set `TCP_NODELAY`,
//! hand each client to the listener, and ride out accept errors (out of file descriptors)
//! without ending the sessions already running.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Settings every protocol listener has; `H` is the protocol's TLS and plaintext policy.
pub struct ListenerSettings<H> {
    /// TLS and plaintext policy for clients.
    pub handshake: H,
    /// Limit for opening the target.
    pub connect_timeout: Duration,
    /// Dropped when the listener and all its sessions are done (shutdown waits on it).
    pub drained: tokio::sync::mpsc::Sender<()>,
}

/// Accepts clients until `shutdown` turns true; `on_client` spawns each one's task.
pub async fn accept_loop(
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    mut on_client: impl FnMut(TcpStream, SocketAddr),
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                on_client(tcp, peer);
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
