//! Serving one tunnel: the gateway's `CONNECT host:port` streams, checked against the
//! allow-list, dialed, and relayed.

use super::allow::AllowList;
use super::ExecService;
use crate::gateway::{CONNECTION_WINDOW, HEARTBEAT, HEARTBEAT_TIMEOUT, STREAM_WINDOW};
use crate::proto::{EXEC_AUTHORITY, HELLO_PATH};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

/// How long the agent tries to open a destination.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long streams get to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves the tunnel on `io` until it closes or `shutdown` turns true. `up` fires when the
/// gateway has registered the tunnel (its greeting arrived).
pub async fn serve<I>(
    io: I,
    allow: Arc<AllowList>,
    exec: Option<Arc<dyn ExecService>>,
    gateway: String,
    up: oneshot::Sender<()>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let up = std::sync::Mutex::new(Some(up));
    let up = Arc::new(up);
    let service = hyper::service::service_fn(move |req| {
        let allow = allow.clone();
        let exec = exec.clone();
        let up = up.clone();
        let gateway = gateway.clone();
        async move { Ok::<_, Infallible>(handle(req, &allow, exec, &up, &gateway).await) }
    });
    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .keep_alive_interval(Some(HEARTBEAT))
        .keep_alive_timeout(HEARTBEAT_TIMEOUT)
        .serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => return r,
        _ = shutdown.wait_for(|s| *s) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(DRAIN, conn).await;
    Ok(())
}

type Up = std::sync::Mutex<Option<oneshot::Sender<()>>>;

async fn handle(
    mut req: Request<Incoming>,
    allow: &AllowList,
    exec: Option<Arc<dyn ExecService>>,
    up: &Up,
    gateway: &str,
) -> Response<Full<Bytes>> {
    if req.method() == Method::GET && req.uri().path() == HELLO_PATH {
        if let Some(tx) = up.lock().ok().and_then(|mut g| g.take()) {
            let _ = tx.send(());
        }
        return answer(StatusCode::OK, env!("CARGO_PKG_VERSION").to_string());
    }
    if req.method() != Method::CONNECT {
        return answer(StatusCode::METHOD_NOT_ALLOWED, "only CONNECT".into());
    }
    if req.uri().authority().map(|a| a.as_str()) == Some(EXEC_AUTHORITY) {
        let Some(exec) = exec else {
            warn!(%gateway, "command run refused: this agent runs no commands");
            return answer(
                StatusCode::FORBIDDEN,
                "this agent runs no commands (start it with --allow-exec PROGRAM)".into(),
            );
        };
        let on_upgrade = hyper::upgrade::on(&mut req);
        // The service decides what may run; the stream is handed over once upgraded.
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(up) => exec.serve(TokioIo::new(up)).await,
                Err(e) => warn!(error = %e, "command stream was not opened"),
            }
        });
        return answer(StatusCode::OK, String::new());
    }
    let Some((host, port)) = req
        .uri()
        .authority()
        .and_then(|a| Some((a.host().trim_matches(['[', ']']).to_string(), a.port_u16()?)))
    else {
        return answer(StatusCode::BAD_REQUEST, "CONNECT needs host:port".into());
    };
    let addr = match resolve_allowed(allow, &host, port).await {
        Ok(addr) => addr,
        Err((status, reason)) => {
            warn!(%gateway, %host, port, %reason, "destination refused");
            return answer(status, reason);
        }
    };
    let tcp = match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return answer(StatusCode::BAD_GATEWAY, format!("{host}:{port}: {e}")),
        Err(_) => {
            return answer(
                StatusCode::GATEWAY_TIMEOUT,
                format!("{host}:{port}: no answer within {DIAL_TIMEOUT:?}"),
            )
        }
    };
    let _ = tcp.set_nodelay(true);
    info!(%gateway, %host, port, %addr, "stream opened");
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let mut tcp = tcp;
        match on_upgrade.await {
            Ok(up) => {
                let mut stream = TokioIo::new(up);
                match tokio::io::copy_bidirectional(&mut stream, &mut tcp).await {
                    Ok((to, from)) => {
                        info!(%addr, bytes_to_target = to, bytes_from_target = from, "stream closed")
                    }
                    Err(e) => info!(%addr, error = %e, "stream ended"),
                }
            }
            Err(e) => warn!(%addr, error = %e, "stream was not opened"),
        }
    });
    answer(StatusCode::OK, String::new())
}

/// Resolves `host` and returns the first address the allow-list permits.
async fn resolve_allowed(
    allow: &AllowList,
    host: &str,
    port: u16,
) -> Result<SocketAddr, (StatusCode, String)> {
    let refused = || {
        (
            StatusCode::FORBIDDEN,
            format!("destination {host}:{port} is not in the agent's allow-list"),
        )
    };
    if allow.is_empty() {
        return Err(refused());
    }
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host, port)).await {
        Ok(a) => a.collect(),
        Err(e) => {
            return Err((
                StatusCode::BAD_GATEWAY,
                format!("cannot resolve {host}: {e}"),
            ))
        }
    };
    addrs
        .into_iter()
        .find(|a| allow.allows(host, a.ip(), port))
        .ok_or_else(refused)
}

fn answer(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp
}
