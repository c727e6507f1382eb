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
