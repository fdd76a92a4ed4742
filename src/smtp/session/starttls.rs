//! STARTTLS (RFC 3207): the command, and the handshake that swaps the
//! session's stream for TLS over it.

use super::conn::{ClientStream, Conn, HandshakeError};
use super::{Close, Flow, Session};
use crate::reply::Reply;

impl Session {
    /// STARTTLS: `220`, then the caller flushes and calls [`Self::upgrade`].
    pub(super) fn starttls(&mut self) -> Option<Flow> {
        if self.tls.is_some() {
            return self.error(Reply::new(503, "5.5.1", "TLS is already active"));
        }
        if self.gw.tls.current().is_none() {
            return self.error(Reply::new(502, "5.5.1", "STARTTLS is not offered here"));
        }
        if self.helo.is_none() {
            return self.error(Reply::new(503, "5.5.1", "send EHLO first"));
        }
        // Anything pipelined after STARTTLS was sent in the clear: drop it
        // (the STARTTLS command-injection attack).
        let dropped = self.lines.take_rest();
        if !dropped.is_empty() {
            tracing::info!(
                bytes = dropped.len(),
                "discarded plaintext pipelined after STARTTLS"
            );
        }
        self.reply(Reply::new(220, "2.0.0", "ready to start TLS"));
        Some(Flow::StartTls)
    }

    /// Runs the TLS handshake over `conn`; the session starts over on the
    /// TLS stream, or ends with the reason it could not.
    pub(super) async fn upgrade<S: ClientStream>(
        &mut self,
        conn: Conn<S>,
    ) -> Result<Conn<S>, Close> {
        let Some(cfg) = self.gw.tls.current() else {
            return Err(Close::TlsFailed);
        };
        match conn
            .into_tls(cfg, self.gw.cfg.smtp.tls_handshake_timeout.0)
            .await
        {
            Ok((tls, desc)) => {
                tracing::info!(tls = %desc, "TLS established");
                self.tls = Some(desc);
                // RFC 3207: forget everything learnt before TLS.
                self.helo = None;
                self.esmtp = false;
                self.txn = None;
                Ok(tls)
            }
            Err(HandshakeError::Timeout) => Err(Close::Timeout),
            Err(HandshakeError::Failed(e)) => {
                tracing::info!(error = %e, "TLS handshake failed");
                Err(Close::TlsFailed)
            }
            Err(HandshakeError::AlreadyTls) => Err(Close::TlsFailed),
        }
    }
}
