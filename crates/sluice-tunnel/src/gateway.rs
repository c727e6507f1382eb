//! The gateway side: the live tunnels by agent name, and dialing a target through one.

use crate::proto::HELLO_PATH;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tracing::{info, warn};

/// How often each end pings the other; a tunnel whose pings go unanswered is dropped.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// How long a ping may go unanswered.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(20);
/// Per-stream receive window: enough for full speed on one stream without letting one
/// stream's unread bytes crowd out the others.
pub const STREAM_WINDOW: u32 = 1024 * 1024;
/// Whole-tunnel receive window.
pub const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
/// How long an agent gets to answer a `CONNECT` (it dials the target meanwhile).
const DIAL_TIMEOUT: Duration = Duration::from_secs(15);

/// Who is at the other end of a tunnel.
#[derive(Clone, Debug)]
pub struct AgentHello {
    /// Agent name (verified).
    pub name: String,
    /// Version it announced.
    pub version: String,
    /// Address the tunnel came from.
    pub peer: SocketAddr,
}

/// One live tunnel.
struct Tunnel {
    hello: AgentHello,
    since_us: i64,
    generation: u64,
    sender: SendRequest<Empty<Bytes>>,
    stats: Arc<Stats>,
    close: watch::Sender<bool>,
}

/// Counters of one tunnel.
#[derive(Default)]
struct Stats {
    open: AtomicU64,
    total: AtomicU64,
    to_agent: AtomicU64,
    from_agent: AtomicU64,
}

/// A connected agent, as `sluice agents list` shows it.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct AgentStatus {
    /// Agent name.
    pub name: String,
    /// Version it announced.
    pub version: String,
    /// Address its tunnel came from.
    pub peer: String,
    /// When the tunnel came up (µs since the epoch).
    pub connected_since_us: i64,
    /// Streams open now.
    pub streams: u64,
    /// Streams opened over this tunnel.
    pub streams_total: u64,
    /// Bytes sent to the agent (toward targets).
    pub bytes_to_agent: u64,
    /// Bytes received from the agent (from targets).
    pub bytes_from_agent: u64,
}

/// Why a target could not be reached through an agent.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The agent has no tunnel to this gateway right now.
    #[error("agent {0} is not connected")]
    NotConnected(String),
    /// The agent refused: the destination is not in its allow-list.
    #[error("agent {agent} refused {target}: {reason}")]
    Refused {
        /// Agent.
        agent: String,
        /// `host:port`.
        target: String,
        /// The agent's words.
        reason: String,
    },
    /// The agent could not open the destination.
    #[error("agent {agent} cannot reach {target}: {reason}")]
    Unreachable {
        /// Agent.
        agent: String,
        /// `host:port`.
        target: String,
        /// The agent's words.
        reason: String,
    },
    /// The tunnel failed while opening the stream.
    #[error("tunnel to agent {agent} failed: {reason}")]
    Tunnel {
        /// Agent.
        agent: String,
        /// Cause.
        reason: String,
    },
}

/// The live tunnels, by agent name. Cheap to share (`Arc`).
#[derive(Default)]
pub struct Tunnels {
    live: Mutex<HashMap<String, Arc<Tunnel>>>,
    generations: AtomicU64,
}

impl Tunnels {
    /// An empty registry.
    pub fn new() -> Tunnels {
        Tunnels::default()
    }

    /// Runs the tunnel an authenticated agent opened on `io` (the upgraded connection) until
    /// it closes or the agent is disconnected. While it runs, dials to `hello.name` use it; a
    /// newer tunnel of the same agent takes over new dials from an older one.
    pub async fn serve<I>(&self, hello: AgentHello, io: I) -> Result<(), hyper::Error>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (close, closed) = watch::channel(false);
        let io = Killable::new(io, closed.clone());
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .keep_alive_interval(HEARTBEAT)
            .keep_alive_timeout(HEARTBEAT_TIMEOUT)
            .keep_alive_while_idle(true)
            .handshake::<_, Empty<Bytes>>(io)
            .await?;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let tunnel = Arc::new(Tunnel {
            hello: hello.clone(),
            since_us: sluice_core::time::now_micros(),
            generation,
            sender: sender.clone(),
            stats: Arc::default(),
            close,
        });
        let replaced = self
            .lock()
            .insert(hello.name.clone(), tunnel.clone())
            .is_some();
        info!(agent = %hello.name, version = %hello.version, peer = %hello.peer, replaced, "agent tunnel up");
        let mut conn = std::pin::pin!(conn);
        let mut hello_req = std::pin::pin!(send_hello(sender));
        let mut greeted = false;
        let mut closed = closed;
        let result = loop {
            tokio::select! {
                r = &mut conn => break r,
                ok = &mut hello_req, if !greeted => {
                    greeted = true;
                    if !ok {
                        warn!(agent = %hello.name, "agent did not answer the tunnel greeting");
                    }
                }
                _ = closed.wait_for(|c| *c) => break Ok(()),
            }
        };
        // Streams still open end with the tunnel.
        let _ = tunnel.close.send(true);
        let mut live = self.lock();
        if live
            .get(&hello.name)
            .is_some_and(|t| t.generation == generation)
        {
            live.remove(&hello.name);
        }
        drop(live);
        info!(agent = %hello.name, "agent tunnel down");
        result
    }

    /// Opens a stream to `host:port` through `agent`'s tunnel.
    pub async fn dial(
        &self,
        agent: &str,
        host: &str,
        port: u16,
    ) -> Result<TunnelStream, DialError> {
        self.open(agent, crate::proto::authority(host, port)).await
    }

    /// Opens a stream on which `agent` runs a program (`sluice agent --allow-exec`); what
    /// to run is the first thing sent on it.
    pub async fn exec(&self, agent: &str) -> Result<TunnelStream, DialError> {
        self.open(agent, crate::proto::EXEC_AUTHORITY.to_string())
            .await
    }

    /// Opens a `CONNECT target` stream through `agent`'s tunnel.
    async fn open(&self, agent: &str, target: String) -> Result<TunnelStream, DialError> {
        let tunnel = self
            .lock()
            .get(agent)
            .cloned()
            .ok_or_else(|| DialError::NotConnected(agent.to_string()))?;
        let broken = |reason: String| DialError::Tunnel {
            agent: agent.to_string(),
            reason,
        };
        let req = Request::builder()
            .method(Method::CONNECT)
            .uri(target.as_str())
            .body(Empty::new())
            .map_err(|e| broken(format!("invalid destination {target}: {e}")))?;
        let mut sender = tunnel.sender.clone();
        let opened = async {
            let mut resp = sender
                .send_request(req)
                .await
                .map_err(|e| broken(e.to_string()))?;
            match resp.status() {
                StatusCode::OK => hyper::upgrade::on(&mut resp)
                    .await
                    .map_err(|e| broken(e.to_string())),
                status => {
                    let body = resp.into_body().collect().await.map(|b| b.to_bytes());
                    let reason = body
                        .ok()
                        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
                        .filter(|r| !r.is_empty())
                        .unwrap_or_else(|| status.to_string());
                    let (agent, target) = (agent.to_string(), target.clone());
                    Err(if status == StatusCode::FORBIDDEN {
                        DialError::Refused {
                            agent,
                            target,
                            reason,
                        }
                    } else {
                        DialError::Unreachable {
                            agent,
                            target,
                            reason,
                        }
                    })
                }
            }
        };
        let upgraded = tokio::time::timeout(DIAL_TIMEOUT, opened)
            .await
            .map_err(|_| broken(format!("no answer within {DIAL_TIMEOUT:?}")))??;
        let stats = tunnel.stats.clone();
        stats.open.fetch_add(1, Ordering::Relaxed);
        stats.total.fetch_add(1, Ordering::Relaxed);
        Ok(TunnelStream {
            io: TokioIo::new(upgraded),
            stats,
            agent: Arc::from(agent),
        })
    }

    /// Closes `agent`'s tunnel (revocation); its streams end at once. False when it had none.
    pub fn disconnect(&self, agent: &str) -> bool {
        match self.lock().remove(agent) {
            Some(t) => {
                let _ = t.close.send(true);
                true
            }
            None => false,
        }
    }

    /// The connected agents.
    pub fn status(&self) -> Vec<AgentStatus> {
        let mut out: Vec<AgentStatus> = self
            .lock()
            .values()
            .map(|t| AgentStatus {
                name: t.hello.name.clone(),
                version: t.hello.version.clone(),
                peer: t.hello.peer.to_string(),
                connected_since_us: t.since_us,
                streams: t.stats.open.load(Ordering::Relaxed),
                streams_total: t.stats.total.load(Ordering::Relaxed),
                bytes_to_agent: t.stats.to_agent.load(Ordering::Relaxed),
                bytes_from_agent: t.stats.from_agent.load(Ordering::Relaxed),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Tunnel>>> {
        match self.live.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

/// Asks the agent to confirm the tunnel; the agent reports itself connected on this.
async fn send_hello(mut sender: SendRequest<Empty<Bytes>>) -> bool {
    let Ok(req) = Request::get(HELLO_PATH).body(Empty::new()) else {
        return false;
    };
    matches!(sender.send_request(req).await, Ok(r) if r.status().is_success())
}

/// One target connection inside a tunnel: a byte stream like a TCP connection.
pub struct TunnelStream {
    io: TokioIo<hyper::upgrade::Upgraded>,
    stats: Arc<Stats>,
    agent: Arc<str>,
}

impl TunnelStream {
    /// A failure of the stream, worded for the client: the tunnel's own error (TLS, HTTP/2)
    /// goes to the gateway log when the tunnel ends.
    fn lost(&self, e: io::Error) -> io::Error {
        io::Error::new(
            e.kind(),
            format!("the tunnel to agent {} was lost", self.agent),
        )
    }
}

impl Drop for TunnelStream {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for TunnelStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.stats.from_agent.fetch_add(n, Ordering::Relaxed);
        match r {
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.lost(e))),
            r => r,
        }
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                self.stats.to_agent.fetch_add(n as u64, Ordering::Relaxed);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.lost(e))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.lost(e))),
            r => r,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The tunnel's connection, which fails every read and write once `closed` turns true, so a
/// revoked tunnel ends at once even with streams open (HTTP/2 would otherwise wait for them).
struct Killable<I> {
    io: I,
    closed: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl<I> Killable<I> {
    fn new(io: I, mut closed: watch::Receiver<bool>) -> Self {
        Killable {
            io,
            closed: Box::pin(async move {
                let _ = closed.wait_for(|c| *c).await;
            }),
        }
    }

    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.closed.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "tunnel closed by the gateway",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl<I: hyper::rt::Read + Unpin> hyper::rt::Read for Killable<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check(cx)?;
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<I: hyper::rt::Write + Unpin> hyper::rt::Write for Killable<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check(cx)?;
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check(cx)?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
