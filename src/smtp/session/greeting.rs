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
        let text = format!("{} ESMTP ugem ready", self.gw.cfg.server.hostname);
        self.reply(Reply::new(220, "", text));
        Ok(())
    }

    /// EHLO (`esmtp`) or HELO: a new start (any transaction is dropped),
    /// answered with the extensions for EHLO.
    pub(super) fn ehlo(&mut self, name: String, esmtp: bool) -> Option<Flow> {
        self.txn = None;
        self.helo = Some(name.clone());
        self.esmtp = esmtp;
        let host = &self.gw.cfg.server.hostname;
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
            format!("SIZE {}", self.gw.cfg.smtp.max_message_size.0),
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
