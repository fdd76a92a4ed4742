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
            .into_tls(cfg, self.cfg.smtp.tls_handshake_timeout.0)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::Close;
    use super::super::testkit::*;

    /// A rig with a self-signed certificate for [`HOST`]; the client's TLS
    /// configuration trusts it.
    fn tls_rig() -> (Rig, tokio_rustls::TlsConnector) {
        let ck = rcgen::generate_simple_self_signed(vec![HOST.to_string()]).unwrap();
        let rig = rig_with(|cfg, dir| {
            std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
            std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
            cfg.smtp.tls_cert = Some(dir.join("cert.pem"));
            cfg.smtp.tls_key = Some(dir.join("key.pem"));
        });
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ck.cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (rig, tokio_rustls::TlsConnector::from(Arc::new(client)))
    }

    #[tokio::test]
    async fn starttls_is_refused_without_a_certificate() {
        let rig = rig();
        let mut c = rig.ehlo(AGENCY_IP).await;
        c.send("STARTTLS\r\n").await;
        assert_eq!(
            c.expect(502).await.text(),
            "5.5.1 STARTTLS is not offered here"
        );
    }

    #[tokio::test]
    async fn starttls_needs_ehlo_first() {
        let (rig, _) = tls_rig();
        let mut c = rig.connect(AGENCY_IP);
        c.expect(220).await;
        c.send("STARTTLS\r\n").await;
        assert_eq!(c.expect(503).await.text(), "5.5.1 send EHLO first");
    }

    #[tokio::test]
    async fn starttls_starts_over_on_tls_and_drops_injected_plaintext() {
        let (rig, connector) = tls_rig();
        let mut c = rig.connect(AGENCY_IP);
        c.expect(220).await;
        c.send("EHLO client.example\r\n").await;
        assert!(c.expect(250).await.lines.iter().any(|l| l == "STARTTLS"));
        // The command-injection attack: plaintext pipelined after STARTTLS.
        c.send("STARTTLS\r\nMAIL FROM:<injected@agency.example.kz>\r\n")
            .await;
        assert_eq!(c.expect(220).await.text(), "2.0.0 ready to start TLS");
        let name = rustls::pki_types::ServerName::try_from(HOST).unwrap();
        let mut c = c
            .map_io(|io| async move { connector.connect(name, io).await.unwrap() })
            .await;
        // Everything learnt before TLS is forgotten; the injected MAIL
        // was never run (its reply would come first).
        c.send("MAIL FROM:<it@agency.example.kz>\r\n").await;
        assert_eq!(c.expect(503).await.text(), "5.5.1 send EHLO or HELO first");
        c.send("EHLO client.example\r\n").await;
        let ehlo = c.expect(250).await;
        assert!(!ehlo.lines.iter().any(|l| l == "STARTTLS"), "{ehlo:?}");
        c.send("STARTTLS\r\n").await;
        assert_eq!(c.expect(503).await.text(), "5.5.1 TLS is already active");
        c.send("MAIL FROM:<it@agency.example.kz>\r\n").await;
        c.expect(250).await;
        c.send("RCPT TO:<someone@external.example>\r\n").await;
        c.expect(250).await;
        c.send("DATA\r\n").await;
        c.expect(354).await;
        c.send("Subject: secret\r\n\r\nhi\r\n.\r\n").await;
        let queued = c.expect(250).await;
        let (env, body) = rig.queued(&queued);
        assert!(
            env.tls.as_deref().is_some_and(|t| t.starts_with("TLSv1.3")),
            "{env:?}"
        );
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains(" (ugem) with ESMTPS (TLSv1.3"), "{text}");
        c.send("QUIT\r\n").await;
        c.expect(221).await;
    }

    #[tokio::test]
    async fn a_failed_handshake_ends_the_session() {
        let (rig, _) = tls_rig();
        let mut c = rig.ehlo(AGENCY_IP).await;
        c.send("STARTTLS\r\n").await;
        c.expect(220).await;
        c.send("this is no ClientHello\r\n").await;
        assert_eq!(c.ended().await, Close::TlsFailed);
    }
}
