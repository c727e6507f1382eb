//! A WebSocket through the proxy: once both sides switched protocols, bytes are relayed
//! untouched and counted until either side closes or containment stops the session.

use crate::body::Exchange;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::debug;

/// Relays the upgraded client and service connections in a task of their own; the exchange
/// is recorded with the byte counts when they close.
pub fn relay(client: OnUpgrade, service: OnUpgrade, mut exchange: Exchange) {
    let mut stop = exchange.session.stop_signal();
    tokio::spawn(async move {
        let (client, service) = match tokio::try_join!(client, service) {
            Ok(pair) => pair,
            Err(e) => {
                exchange.record.error = Some(format!("the WebSocket upgrade failed: {e}"));
                drop(exchange);
                return;
            }
        };
        let mut client = Counted {
            inner: TokioIo::new(client),
            read: 0,
            written: 0,
        };
        let mut service = TokioIo::new(service);
        tokio::select! {
            r = tokio::io::copy_bidirectional(&mut client, &mut service) => match r {
                Ok(_) => exchange.complete = true,
                // Most clients end a WebSocket by closing the connection after the close
                // frames; what was relayed counts either way.
                Err(e) => debug!(error = %e, "websocket relay ended with an error"),
            },
            _ = stop.wait_for(Option::is_some) => {
                exchange.record.error = Some("the session was stopped".into());
            }
        }
        exchange.record.request_bytes = client.read;
        exchange.record.response_bytes = client.written;
        // Recorded now, with what was learned above.
        drop(exchange);
    });
}

/// The client's side, counting what it sent and received.
struct Counted<T> {
    inner: T,
    read: u64,
    written: u64,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.read += (buf.filled().len() - before) as u64;
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = r {
            self.written += n as u64;
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
