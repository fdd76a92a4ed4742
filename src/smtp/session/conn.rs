//! The client connection over any byte stream: plain, or TLS after STARTTLS.
//! tokio-rustls runs over any `AsyncRead + AsyncWrite`, so the session needs
//! no socket of its own: a TCP stream in production, an in-memory duplex in
//! the unit tests, and the handshake is the same code on both.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::server::TlsStream;

/// What a session can run over: any byte stream a task can own.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> ClientStream for S {}

/// The client connection, plain or after STARTTLS.
pub(super) enum Conn<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
}

/// Why a TLS handshake did not give a connection.
#[derive(Debug, thiserror::Error)]
pub(super) enum HandshakeError {
    /// The connection is already TLS.
    #[error("TLS is already active")]
    AlreadyTls,
    /// The handshake itself failed.
    #[error("TLS handshake failed: {0}")]
    Failed(#[from] std::io::Error),
    /// The client did not finish the handshake in time.
    #[error("TLS handshake timed out")]
    Timeout,
}

impl<S: ClientStream> Conn<S> {
    /// Runs the server side of a TLS handshake over the plain stream; on
    /// success, the TLS connection and its description (version, cipher).
    pub(super) async fn into_tls(
        self,
        cfg: Arc<rustls::ServerConfig>,
        timeout: Duration,
    ) -> Result<(Conn<S>, String), HandshakeError> {
        let Conn::Plain(plain) = self else {
            return Err(HandshakeError::AlreadyTls);
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
        let tls = tokio::time::timeout(timeout, acceptor.accept(plain))
            .await
            .map_err(|_| HandshakeError::Timeout)??;
        let desc = crate::tls::describe(tls.get_ref().1);
        Ok((Conn::Tls(Box::new(tls)), desc))
    }
}

impl<S: ClientStream> AsyncRead for Conn<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<S: ClientStream> AsyncWrite for Conn<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
