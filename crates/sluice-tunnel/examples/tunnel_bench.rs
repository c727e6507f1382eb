//! Tunnel benchmark: N parallel streams of M bytes each from a TCP source, read directly and
//! through a tunnel (gateway side and agent side in this process, joined by TLS over
//! loopback, exactly the layers the product uses: TLS, HTTP/2, CONNECT streams). Prints
//! aggregate throughput and fairness (slowest stream time / fastest stream time).
//!
//! Run: `cargo run --release -p sluice-tunnel --example tunnel_bench [-- STREAMS MIB]`
//! (bench/tunnel.sh does this).

use hyper_util::rt::TokioIo;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use sluice_tunnel::agent::{serve, AllowList};
use sluice_tunnel::gateway::AgentHello;
use sluice_tunnel::Tunnels;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let streams: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let mib: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let bytes = mib * 1024 * 1024;
    let source = source_server(bytes).await?;

    let direct = run(streams, bytes, |_| async move {
        Ok(TcpStream::connect(("127.0.0.1", source)).await?)
    })
    .await?;
    let tunnels = tunnel(source).await?;
    let through = run(streams, bytes, |_| {
        let t = tunnels.clone();
        async move { Ok(t.dial("bench", "127.0.0.1", source).await?) }
    })
    .await?;

    println!();
    println!(
        "=== tunnel benchmark: {streams} parallel streams x {mib} MiB, {} cores ===",
        cores()
    );
    println!(
        "{:<10} {:>12} {:>12} {:>12} {:>12} {:>10}",
        "path", "MiB/s", "total s", "fastest s", "slowest s", "slow/fast"
    );
    for (name, r) in [("direct", &direct), ("tunnel", &through)] {
        println!(
            "{:<10} {:>12.0} {:>12.2} {:>12.2} {:>12.2} {:>10.2}",
            name,
            (streams * mib) as f64 / r.total.as_secs_f64(),
            r.total.as_secs_f64(),
            r.fastest.as_secs_f64(),
            r.slowest.as_secs_f64(),
            r.slowest.as_secs_f64() / r.fastest.as_secs_f64()
        );
    }
    println!(
        "tunnel/direct throughput: {:.2}",
        direct.total.as_secs_f64() / through.total.as_secs_f64()
    );
    Ok(())
}

struct Timing {
    total: Duration,
    fastest: Duration,
    slowest: Duration,
}

async fn run<F, Fut, S>(streams: usize, bytes: usize, open: F) -> Result<Timing, BoxError>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<S, BoxError>> + Send + 'static,
    S: AsyncRead + Unpin + Send + 'static,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..streams {
        let opening = open(i);
        tasks.push(tokio::spawn(async move {
            let mut s = opening.await?;
            let n = tokio::io::copy(&mut s, &mut tokio::io::sink()).await? as usize;
            if n != bytes {
                return Err(format!("a stream delivered {n} of {bytes} bytes").into());
            }
            Ok::<_, BoxError>(start.elapsed())
        }));
    }
    let mut times = Vec::new();
    for t in tasks {
        times.push(t.await??);
    }
    Ok(Timing {
        total: start.elapsed(),
        fastest: times.iter().copied().min().unwrap_or_default(),
        slowest: times.iter().copied().max().unwrap_or_default(),
    })
}

async fn source_server(bytes: usize) -> Result<u16, BoxError> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let port = l.local_addr()?.port();
    tokio::spawn(async move {
        let chunk = vec![0x5au8; 64 * 1024];
        while let Ok((mut s, _)) = l.accept().await {
            let chunk = chunk.clone();
            tokio::spawn(async move {
                let mut left = bytes;
                while left > 0 {
                    let k = left.min(chunk.len());
                    if s.write_all(&chunk[..k]).await.is_err() {
                        return;
                    }
                    left -= k;
                }
            });
        }
    });
    Ok(port)
}

/// A tunnel over TLS on loopback: this process plays both the gateway and the agent.
async fn tunnel(allowed_port: u16) -> Result<Arc<Tunnels>, BoxError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone())?;
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let tunnels = Arc::new(Tunnels::new());
    let t = tunnels.clone();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    tokio::spawn(async move {
        let (tcp, peer) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let tls = acceptor.accept(tcp).await?;
        let hello = AgentHello {
            name: "bench".into(),
            version: "bench".into(),
            peer,
        };
        t.serve(hello, TokioIo::new(tls)).await?;
        Ok::<_, BoxError>(())
    });
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let (up_tx, up_rx) = oneshot::channel();
    let (_stop_tx, stop_rx) = watch::channel(false);
    let allow = Arc::new(AllowList::parse(&[format!("127.0.0.1:{allowed_port}")])?);
    tokio::spawn(async move {
        let _keep = _stop_tx;
        serve::serve(
            TokioIo::new(tls),
            allow,
            None,
            "bench".into(),
            up_tx,
            stop_rx,
        )
        .await
    });
    up_rx.await?;
    Ok(tunnels)
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
