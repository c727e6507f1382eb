//! The client-side byte stream of any protocol listener: plain TCP or TLS, behind one type.

use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A client connection after (optional) TLS negotiation.
pub enum ClientStream {
    /// Plaintext (only where the config allows it, on loopback).
    Plain(TcpStream),
    /// TLS-protected.
    Tls(Box<TlsStream<TcpStream>>),
}

impl ClientStream {
    /// True when the stream is TLS-protected.
    pub fn is_tls(&self) -> bool {
        matches!(self, ClientStream::Tls(_))
    }
}

delegate_read!(ClientStream, Plain, Tls);
delegate_write!(ClientStream, Plain, Tls);

/// Writes `bytes` and flushes. Every relay writes this way: over TLS (or an agent's tunnel),
/// `write_all` can return with the last records still buffered in the session when the
/// socket was full, and only a flush sends them; the peer would otherwise wait for them
/// forever. On plain TCP the flush costs nothing.
pub async fn write_flushed<W>(w: &mut W, bytes: &[u8]) -> std::io::Result<()>
where
    W: tokio::io::AsyncWrite + Unpin + ?Sized,
{
    use tokio::io::AsyncWriteExt;
    w.write_all(bytes).await?;
    w.flush().await
}
