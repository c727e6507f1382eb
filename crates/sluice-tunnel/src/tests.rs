//! Both ends of a tunnel in one process, over an in-memory pipe, with real TCP destinations.

use crate::agent::{serve, AllowList};
use crate::gateway::AgentHello;
use crate::{DialError, Tunnels};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

type TestResult<T> = Result<T, Box<dyn std::error::Error>>;

/// A TCP server that echoes, and one that sends `n` bytes and closes.
async fn echo_server() -> TestResult<u16> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let port = l.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    Ok(port)
}

async fn source_server(n: usize) -> TestResult<u16> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let port = l.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let chunk = vec![7u8; 64 * 1024];
                let mut left = n;
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

/// A connected tunnel: the registry, and the agent's shutdown switch.
async fn tunnel(allow: &[String]) -> TestResult<(Arc<Tunnels>, watch::Sender<bool>)> {
    let tunnels = Arc::new(Tunnels::new());
    let (gw_io, agent_io) = tokio::io::duplex(256 * 1024);
    let (up_tx, up_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let allow = Arc::new(AllowList::parse(allow)?);
    tokio::spawn(serve::serve(
        TokioIo::new(agent_io),
        allow,
        None,
        "test".into(),
        up_tx,
        stop_rx,
    ));
    let t = tunnels.clone();
    let peer = "127.0.0.1:1".parse()?;
    tokio::spawn(async move {
        let hello = AgentHello {
            name: "edge".into(),
            version: "test".into(),
            peer,
        };
        t.serve(hello, TokioIo::new(gw_io)).await
    });
    up_rx.await.map_err(|_| "the agent never greeted")?;
    Ok((tunnels, stop_tx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_relay_and_the_allow_list_decides() -> Result<(), Box<dyn std::error::Error>> {
    let echo = echo_server().await?;
    let closed = TcpListener::bind("127.0.0.1:0").await?;
    let closed_port = closed.local_addr()?.port();
    drop(closed);
    let (tunnels, _stop) = tunnel(&[
        format!("127.0.0.1:{echo}"),
        format!("127.0.0.1:{closed_port}"),
    ])
    .await?;

    let mut s = tunnels.dial("edge", "127.0.0.1", echo).await?;
    s.write_all(b"hello through the tunnel").await?;
    let mut buf = [0u8; 24];
    s.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"hello through the tunnel");
    let status = tunnels.status();
    assert_eq!(status.len(), 1);
    assert_eq!((status[0].streams, status[0].streams_total), (1, 1));
    assert_eq!(status[0].bytes_to_agent, 24);
    assert_eq!(status[0].bytes_from_agent, 24);
    drop(s);
    assert_eq!(tunnels.status()[0].streams, 0);

    match tunnels.dial("edge", "127.0.0.1", echo + 1).await {
        Err(DialError::Refused { reason, .. }) => {
            assert!(reason.contains("allow-list"), "{reason}")
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    match tunnels.dial("edge", "127.0.0.1", closed_port).await {
        Err(DialError::Unreachable { reason, .. }) => {
            assert!(reason.contains("refused"), "{reason}")
        }
        other => panic!("expected unreachable, got {:?}", other.map(|_| ())),
    }
    assert!(matches!(
        tunnels.dial("other", "127.0.0.1", echo).await,
        Err(DialError::NotConnected(_))
    ));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_does_not_stall_the_others() -> Result<(), Box<dyn std::error::Error>> {
    let echo = echo_server().await?;
    let source = source_server(32 * 1024 * 1024).await?;
    let (tunnels, _stop) = tunnel(&["127.0.0.1:*".to_string()]).await?;
    // Nobody reads this stream: its window fills and the agent stops sending on it.
    let stalled = tunnels.dial("edge", "127.0.0.1", source).await?;
    let mut s = tunnels.dial("edge", "127.0.0.1", echo).await?;
    for i in 0..50u32 {
        s.write_all(&i.to_be_bytes()).await?;
        let mut b = [0u8; 4];
        s.read_exact(&mut b).await?;
        assert_eq!(u32::from_be_bytes(b), i);
    }
    // The stalled stream still delivers everything once read.
    let mut stalled = stalled;
    let mut sink = tokio::io::sink();
    let n = tokio::io::copy(&mut stalled, &mut sink).await?;
    assert_eq!(n, 32 * 1024 * 1024);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_ends_streams_and_dials() -> Result<(), Box<dyn std::error::Error>> {
    let echo = echo_server().await?;
    let (tunnels, _stop) = tunnel(&[format!("127.0.0.1:{echo}")]).await?;
    let mut s = tunnels.dial("edge", "127.0.0.1", echo).await?;
    assert!(tunnels.disconnect("edge"));
    let mut buf = [0u8; 1];
    let r = s.read(&mut buf).await;
    assert!(
        !matches!(r, Ok(1)),
        "stream should end with the tunnel: {r:?}"
    );
    assert!(matches!(
        tunnels.dial("edge", "127.0.0.1", echo).await,
        Err(DialError::NotConnected(_))
    ));
    assert!(tunnels.status().is_empty());
    Ok(())
}
