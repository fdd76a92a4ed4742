//! The greeting, EHLO and HELO.

use super::{Close, Flow, Session};
use crate::policy;
use crate::reply::Reply;

impl Session {
    /// Queues the `220` greeting, or the governor's `421` when the client IP
    /// opens connections too fast (then the session ends after it).
    pub(super) fn greet(&mut self) -> Result<(), Close> {
        if let Err(r) = self.gw.governor.check_connection(self.peer.ip()) {
            tracing::info!(reason = %r.first_line(), "connection rate-limited");
            self.reply(r);
            return Err(Close::RateLimited);
        }
        // RFC 5321 4.2: the greeting starts with the server's name, so no
        // enhanced status code before it (scanners read the first word).
        let text = format!("{} ESMTP ugem ready", self.cfg.server.hostname);
        self.reply(Reply::new(220, "", text));
        Ok(())
    }

    /// EHLO (`esmtp`) or HELO: a new start (any transaction is dropped),
    /// answered with the extensions for EHLO.
    pub(super) fn ehlo(&mut self, name: String, esmtp: bool) -> Option<Flow> {
        self.txn = None;
        self.helo = Some(name.clone());
        self.esmtp = esmtp;
        let host = &self.cfg.server.hostname;
        let greet = format!(
            "{host} greets {name} [{}]",
            policy::canonical_ip(self.peer.ip())
        );
        if !esmtp {
            self.reply(Reply::new(250, "", greet));
            return None;
        }
        let mut lines = vec![
            greet,
            "PIPELINING".to_string(),
            format!("SIZE {}", self.cfg.smtp.max_message_size.0),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
            "CHUNKING".into(),
        ];
        if self.tls.is_none() && self.gw.tls.current().is_some() {
            lines.push("STARTTLS".into());
        }
        lines.push("HELP".into());
        self.reply(Reply::multi(250, "", lines));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;

    #[tokio::test]
    async fn the_greeting_names_the_host_with_no_enhanced_code() {
        let rig = rig();
        let mut c = rig.connect(STRANGER_IP);
        let hello = c.expect(220).await;
        assert_eq!(hello.lines, [format!("{HOST} ESMTP ugem ready")]);
    }

    #[tokio::test]
    async fn ehlo_lists_the_extensions() {
        let rig = rig_with(|cfg, _| cfg.smtp.max_message_size = crate::values::ByteSize(123_456));
        let mut c = rig.connect(AGENCY_IP);
        c.expect(220).await;
        c.send("EHLO client.example\r\n").await;
        let ehlo = c.expect(250).await;
        assert_eq!(
            ehlo.lines,
            [
                &format!("{HOST} greets client.example [{AGENCY_IP}]"),
                "PIPELINING",
                "SIZE 123456",
                "8BITMIME",
                "SMTPUTF8",
                "ENHANCEDSTATUSCODES",
                "CHUNKING",
                // No STARTTLS: no certificate is configured.
                "HELP",
            ]
        );
    }

    #[tokio::test]
    async fn helo_gets_one_line_and_no_extensions() {
        let rig = rig();
        let mut c = rig.connect(AGENCY_IP);
        c.expect(220).await;
        c.send("HELO client.example\r\n").await;
        let helo = c.expect(250).await;
        assert_eq!(
            helo.lines,
            [format!("{HOST} greets client.example [{AGENCY_IP}]")]
        );
        // Extensions need EHLO.
        c.send("MAIL FROM:<it@agency.example.kz> SIZE=100\r\n")
            .await;
        let r = c.expect(555).await;
        assert!(r.text().starts_with("5.5.4 "), "{r:?}");
    }

    #[tokio::test]
    async fn a_second_ehlo_drops_the_transaction() {
        let rig = rig();
        let mut c = rig.ehlo(AGENCY_IP).await;
        c.send("MAIL FROM:<it@agency.example.kz>\r\n").await;
        c.expect(250).await;
        c.send("EHLO again.example\r\n").await;
        c.expect(250).await;
        c.send("RCPT TO:<someone@external.example>\r\n").await;
        let r = c.expect(503).await;
        assert_eq!(r.text(), "5.5.1 send MAIL first");
    }
}
