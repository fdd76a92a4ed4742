//! SMTP sessions counted by how they went: a tally the session carries
//! from its start, told when MAIL and RCPT are accepted, ended with the
//! connection log's facts.

use super::METRICS;

/// How one SMTP session went, as counted (one outcome per session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionOutcome {
    /// At least one message was queued.
    Queued,
    /// Refused before the greeting (connection rate limit).
    RefusedConnect,
    /// Every MAIL FROM was refused.
    RefusedMail,
    /// Every RCPT TO was refused.
    RefusedRcpt,
    /// The TLS handshake after STARTTLS failed.
    TlsFailed,
    /// The client fell silent past a timeout.
    Timeout,
    /// The client said QUIT without sending a message.
    QuitWithoutMail,
    /// Closed for a protocol violation (too many errors, bare LF,
    /// unauthorised pipelining, not SMTP).
    ProtocolError,
    /// The client closed the connection without QUIT.
    Disconnected,
    /// The gateway shut down.
    Shutdown,
}

impl SessionOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionOutcome::Queued => "queued",
            SessionOutcome::RefusedConnect => "refused_connect",
            SessionOutcome::RefusedMail => "refused_mail",
            SessionOutcome::RefusedRcpt => "refused_rcpt",
            SessionOutcome::TlsFailed => "tls_failed",
            SessionOutcome::Timeout => "timeout",
            SessionOutcome::QuitWithoutMail => "quit_without_mail",
            SessionOutcome::ProtocolError => "protocol_error",
            SessionOutcome::Disconnected => "disconnected",
            SessionOutcome::Shutdown => "shutdown",
        }
    }
}

/// What the session's connection record says at its end.
#[derive(Debug, Clone, Copy)]
pub struct SessionEnd<'a> {
    /// How it closed, in the connection log's words (`quit`, `eof`,
    /// `timeout`, `tls-failed`, `rate-limited`, `shutdown`, ...).
    pub close: &'a str,
    /// Messages queued.
    pub messages: u32,
    /// MAIL commands given.
    pub mail_commands: u32,
    /// RCPT commands given.
    pub rcpt_commands: u32,
}

/// One SMTP session, counted: started (and active) from creation, its
/// outcome counted by [`SessionTally::end`], inactive when dropped.
#[derive(Debug)]
pub struct SessionTally {
    mail_accepted: bool,
    rcpt_accepted: bool,
    ended: bool,
}

impl SessionTally {
    /// Counts a session started and now active.
    pub fn start() -> SessionTally {
        METRICS.sessions.inc();
        METRICS.sessions_active.inc();
        SessionTally {
            mail_accepted: false,
            rcpt_accepted: false,
            ended: false,
        }
    }

    /// Notes a MAIL FROM accepted.
    pub fn mail_accepted(&mut self) {
        self.mail_accepted = true;
    }

    /// Notes a RCPT TO accepted.
    pub fn rcpt_accepted(&mut self) {
        self.rcpt_accepted = true;
    }

    /// The outcome of a session that ended as `end` says.
    pub fn outcome(&self, end: &SessionEnd<'_>) -> SessionOutcome {
        // What the client got done or was refused says more than how the
        // connection closed; the close only names the rest.
        match end.close {
            _ if end.messages > 0 => SessionOutcome::Queued,
            "rate-limited" => SessionOutcome::RefusedConnect,
            "tls-failed" => SessionOutcome::TlsFailed,
            _ if end.rcpt_commands > 0 && !self.rcpt_accepted => SessionOutcome::RefusedRcpt,
            _ if end.mail_commands > 0 && !self.mail_accepted => SessionOutcome::RefusedMail,
            "timeout" => SessionOutcome::Timeout,
            "quit" => SessionOutcome::QuitWithoutMail,
            "shutdown" => SessionOutcome::Shutdown,
            "eof" | "io-error" => SessionOutcome::Disconnected,
            _ => SessionOutcome::ProtocolError,
        }
    }

    /// Counts the session's outcome (once).
    pub fn end(&mut self, end: SessionEnd<'_>) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        METRICS
            .session_outcomes
            .get_or_create(&[("outcome", self.outcome(&end).as_str())])
            .inc();
    }
}

impl Drop for SessionTally {
    fn drop(&mut self) {
        METRICS.sessions_active.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(close: &str, messages: u32, mails: u32, rcpts: u32) -> SessionEnd<'_> {
        SessionEnd {
            close,
            messages,
            mail_commands: mails,
            rcpt_commands: rcpts,
        }
    }

    #[test]
    fn outcomes_from_the_record() {
        let mut t = SessionTally::start();
        assert_eq!(
            t.outcome(&end("rate-limited", 0, 0, 0)),
            SessionOutcome::RefusedConnect
        );
        assert_eq!(
            t.outcome(&end("quit", 0, 0, 0)),
            SessionOutcome::QuitWithoutMail
        );
        assert_eq!(
            t.outcome(&end("eof", 0, 0, 0)),
            SessionOutcome::Disconnected
        );
        assert_eq!(t.outcome(&end("timeout", 0, 0, 0)), SessionOutcome::Timeout);
        assert_eq!(
            t.outcome(&end("tls-failed", 0, 0, 0)),
            SessionOutcome::TlsFailed
        );
        assert_eq!(
            t.outcome(&end("bare-newline", 0, 0, 0)),
            SessionOutcome::ProtocolError
        );
        assert_eq!(
            t.outcome(&end("shutdown", 0, 0, 0)),
            SessionOutcome::Shutdown
        );
        assert_eq!(
            t.outcome(&end("quit", 0, 1, 0)),
            SessionOutcome::RefusedMail
        );
        t.mail_accepted();
        assert_eq!(
            t.outcome(&end("quit", 0, 1, 2)),
            SessionOutcome::RefusedRcpt
        );
        assert_eq!(
            t.outcome(&end("too-many-errors", 0, 1, 9)),
            SessionOutcome::RefusedRcpt
        );
        t.rcpt_accepted();
        assert_eq!(
            t.outcome(&end("quit", 0, 1, 2)),
            SessionOutcome::QuitWithoutMail
        );
        assert_eq!(t.outcome(&end("timeout", 0, 1, 2)), SessionOutcome::Timeout);
        assert_eq!(t.outcome(&end("eof", 1, 1, 2)), SessionOutcome::Queued);
    }

    #[test]
    fn ending_counts_the_outcome() {
        // Other tests start tallies in parallel: compare this test's own
        // change of the count of ended sessions.
        let label = [("outcome", "timeout")];
        let ended = || METRICS.session_outcomes.get_or_create(&label).get();
        let before = ended();
        let mut t = SessionTally::start();
        t.end(end("timeout", 0, 0, 0));
        t.end(end("timeout", 0, 0, 0));
        drop(t);
        assert!(ended() > before);
    }
}
