//! The socket under a session: opening the TCP connection (timeout, no
//! Nagle, the source address told to whoever wants it), the plaintext or
//! TLS stream, and the reply reader over it.
//!
//! Plain tokio: connecting is one call with a timeout (mail-send, used for
//! this and the handshake before, compiled eight crates for them).
//!
//! The reader keeps its buffer across replies: mail-send's `read()` throws
//! away whatever follows the first reply in a read, so replies that arrive
//! together desynchronise the session. Keeping it also lets the STARTTLS
//! step refuse plaintext queued behind the 220 (the CVE-2011-0411
//! injection).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::error::{ConnError, Stage, io_error};
use super::reply::ReplyError;
use super::reply::{MAX_REPLY_LINE, RemoteReply, ReplyBuilder};

/// Client timeouts; the defaults are RFC 5321 §4.5.3.2's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect (30 s).
    pub connect: Duration,
    /// The 220 greeting (5 min).
    pub greeting: Duration,
    /// Each reply to EHLO, STARTTLS (and its handshake), RSET, MAIL, RCPT (5 min).
    pub command: Duration,
    /// The 354 reply to DATA (2 min).
    pub data_init: Duration,
    /// Each block of message data written (3 min).
    pub data_block: Duration,
    /// The reply after the final dot (10 min).
    pub data_end: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            greeting: Duration::from_secs(300),
            command: Duration::from_secs(300),
            data_init: Duration::from_secs(120),
            data_block: Duration::from_secs(180),
            data_end: Duration::from_secs(600),
        }
    }
}

/// A callback for the source address of outbound connections.
#[derive(Clone)]
pub struct SourceHook(pub Arc<dyn Fn(IpAddr) + Send + Sync>);

impl fmt::Debug for SourceHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SourceHook")
    }
}

/// Opens the TCP connection within `limit`, and tells `hook` our address
/// on it before anything is read (a greeting may already be a blocklist
/// refusal naming it).
pub(super) async fn connect(
    addr: SocketAddr,
    limit: Duration,
    hook: Option<&SourceHook>,
) -> Result<TcpStream, ConnError> {
    let tcp = match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
        Err(_) => {
            return Err(ConnError::Timeout {
                stage: Stage::Connect,
            });
        }
        Ok(Err(source)) => return Err(ConnError::Connect { source }),
        Ok(Ok(tcp)) => tcp,
    };
    // Commands are written whole; Nagle would only hold back the last
    // small write (the final dot) for a delayed ACK.
    let _ = tcp.set_nodelay(true);
    if let (Some(hook), Ok(local)) = (hook, tcp.local_addr()) {
        (hook.0)(local.ip());
    }
    Ok(tcp)
}

/// The plaintext or TLS socket.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Between taking the TCP stream for the handshake and putting the TLS one back.
    Gone,
}

/// A socket with a read buffer and the reply being collected.
pub(super) struct Wire {
    stream: Stream,
    buf: Vec<u8>,
    /// How far `buf` is known to hold no LF.
    scanned: usize,
    partial: ReplyBuilder,
}

impl Wire {
    /// A plaintext session on `tcp`.
    pub(super) fn new(tcp: TcpStream) -> Wire {
        Wire {
            stream: Stream::Plain(tcp),
            buf: Vec::with_capacity(1024),
            scanned: 0,
            partial: ReplyBuilder::default(),
        }
    }

    /// Whether bytes the remote sent wait unread.
    pub(super) fn has_unread(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Takes the plaintext socket for a TLS handshake; None if it is not
    /// plaintext (any more).
    pub(super) fn take_plain(&mut self) -> Option<TcpStream> {
        match std::mem::replace(&mut self.stream, Stream::Gone) {
            Stream::Plain(tcp) => Some(tcp),
            other => {
                self.stream = other;
                None
            }
        }
    }

    /// Goes on over TLS.
    pub(super) fn put_tls(&mut self, tls: TlsStream<TcpStream>) {
        self.stream = Stream::Tls(Box::new(tls));
    }

    /// Writes and flushes `bytes` within `limit`.
    pub(super) async fn write(
        &mut self,
        bytes: &[u8],
        limit: Duration,
        stage: Stage,
    ) -> Result<(), ConnError> {
        let io = async {
            match &mut self.stream {
                Stream::Plain(s) => {
                    s.write_all(bytes).await?;
                    s.flush().await
                }
                Stream::Tls(s) => {
                    s.write_all(bytes).await?;
                    s.flush().await
                }
                Stream::Gone => Err(std::io::ErrorKind::NotConnected.into()),
            }
        };
        match tokio::time::timeout(limit, io).await {
            Err(_) => Err(ConnError::Timeout { stage }),
            Ok(Err(e)) => Err(io_error(stage, e)),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Reads the next reply; the whole reply must arrive within `limit`.
    pub(super) async fn reply(
        &mut self,
        limit: Duration,
        stage: Stage,
    ) -> Result<RemoteReply, ConnError> {
        match tokio::time::timeout(limit, self.reply_inner(stage)).await {
            Err(_) => Err(ConnError::Timeout { stage }),
            Ok(r) => r,
        }
    }

    async fn reply_inner(&mut self, stage: Stage) -> Result<RemoteReply, ConnError> {
        let mut chunk = [0u8; 4096];
        loop {
            // Complete lines first: replies that came together stay in order.
            while let Some(i) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + i;
                let done = self.partial.line(&self.buf[..end]);
                self.buf.drain(..=end);
                self.scanned = 0;
                match done {
                    Ok(Some(reply)) => return Ok(reply),
                    Ok(None) => {}
                    Err(why) => return Err(ConnError::BadReply { stage, why }),
                }
            }
            self.scanned = self.buf.len();
            if self.buf.len() >= MAX_REPLY_LINE {
                return Err(ConnError::BadReply {
                    stage,
                    why: ReplyError::LineTooLong,
                });
            }
            let n = match &mut self.stream {
                Stream::Plain(s) => s.read(&mut chunk).await,
                Stream::Tls(s) => s.read(&mut chunk).await,
                Stream::Gone => Err(std::io::ErrorKind::NotConnected.into()),
            }
            .map_err(|e| io_error(stage, e))?;
            if n == 0 {
                return Err(ConnError::Closed { stage });
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends `cmd` and reads its reply.
    pub(super) async fn command(
        &mut self,
        cmd: &str,
        limit: Duration,
        stage: Stage,
    ) -> Result<RemoteReply, ConnError> {
        self.write(cmd.as_bytes(), limit, stage).await?;
        self.reply(limit, stage).await
    }

    /// Closes the socket, waiting two seconds at most.
    pub(super) async fn shutdown(&mut self) {
        let close = async {
            match &mut self.stream {
                Stream::Plain(s) => s.shutdown().await,
                Stream::Tls(s) => s.shutdown().await,
                Stream::Gone => Ok(()),
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), close).await;
    }
}
