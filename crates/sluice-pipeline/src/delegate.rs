//! `AsyncRead`/`AsyncWrite` for an enum of streams, each variant passing the call through.
//! The stream types ([`ClientStream`](crate::stream::ClientStream),
//! [`TargetStream`](crate::dial::TargetStream) and its halves) use them.

macro_rules! delegate_read {
    ($t:ty, $($v:ident),+) => {
        impl ::tokio::io::AsyncRead for $t {
            fn poll_read(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &mut ::tokio::io::ReadBuf<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                match self.get_mut() {
                    $(Self::$v(s) => ::std::pin::Pin::new(s).poll_read(cx, buf),)+
                }
            }
        }
    };
}

macro_rules! delegate_write {
    ($t:ty, $($v:ident),+) => {
        impl ::tokio::io::AsyncWrite for $t {
            fn poll_write(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &[u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                match self.get_mut() {
                    $(Self::$v(s) => ::std::pin::Pin::new(s).poll_write(cx, buf),)+
                }
            }

            fn poll_flush(self: ::std::pin::Pin<&mut Self>, cx: &mut ::std::task::Context<'_>) -> ::std::task::Poll<::std::io::Result<()>> {
                match self.get_mut() {
                    $(Self::$v(s) => ::std::pin::Pin::new(s).poll_flush(cx),)+
                }
            }

            fn poll_shutdown(self: ::std::pin::Pin<&mut Self>, cx: &mut ::std::task::Context<'_>) -> ::std::task::Poll<::std::io::Result<()>> {
                match self.get_mut() {
                    $(Self::$v(s) => ::std::pin::Pin::new(s).poll_shutdown(cx),)+
                }
            }
        }
    };
}
