//! What can go wrong in an outbound session: where in the dialogue
//! ([`Stage`]), a reply that cannot be read ([`ReplyError`]), and a
//! connection or transaction that failed ([`ConnError`]).

use std::fmt;

use super::reply::{RemoteReply, ReplyError};
use crate::reply::Enhanced;

/// Where in the dialogue something went wrong (for error texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Opening the TCP connection.
    Connect,
    /// Waiting for the 220 greeting.
    Greeting,
    /// EHLO.
    Ehlo,
    /// HELO (after EHLO was refused).
    Helo,
    /// STARTTLS and the handshake.
    StartTls,
    /// RSET before a further message.
    Rset,
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// DATA, waiting for 354.
    Data,
    /// Writing the message.
    Message,
    /// Waiting for the reply to the final dot.
    DataEnd,
    /// QUIT.
    Quit,
}

impl Stage {
    /// "EHLO", "RCPT TO", "end of data", ...
    fn name(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Greeting => "the greeting",
            Stage::Ehlo => "EHLO",
            Stage::Helo => "HELO",
            Stage::StartTls => "STARTTLS",
            Stage::Rset => "RSET",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Message => "the message",
            Stage::DataEnd => "end of data",
            Stage::Quit => "QUIT",
        }
    }
}

impl fmt::Display for Stage {
    /// "waiting for the greeting", "after RCPT TO", "while sending the message".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Connect => f.write_str("while connecting"),
            Stage::Greeting => f.write_str("waiting for the greeting"),
            Stage::Message => f.write_str("while sending the message"),
            other => write!(f, "after {}", other.name()),
        }
    }
}

/// Why a connection could not be opened or a message not sent. Connection
/// problems are temporary (the recipients are deferred); the text starts
/// with an enhanced status code or the remote's reply, for queue records
/// and DSNs.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// TCP connect failed.
    #[error("4.4.1 cannot connect: {source}")]
    Connect {
        /// The socket error.
        source: std::io::Error,
    },
    /// A phase took longer than its timeout.
    #[error("{} timeout {stage}", if *stage == Stage::Connect { "4.4.1" } else { "4.4.2" })]
    Timeout {
        /// Where.
        stage: Stage,
    },
    /// A read or write failed.
    #[error("4.4.2 connection lost {stage}: {source}")]
    Io {
        /// Where.
        stage: Stage,
        /// The socket error.
        source: std::io::Error,
    },
    /// The remote closed the connection.
    #[error("4.4.2 connection closed by the remote {stage}")]
    Closed {
        /// Where.
        stage: Stage,
    },
    /// The remote sent something that is not a valid reply.
    #[error("4.5.0 bad reply {stage}: {why}")]
    BadReply {
        /// Where.
        stage: Stage,
        /// What was wrong with it.
        why: ReplyError,
    },
    /// The remote refused the session (greeting, EHLO/HELO, RSET).
    #[error("{reply} (in reply to {})", stage.name())]
    Refused {
        /// Where.
        stage: Stage,
        /// What it said.
        reply: RemoteReply,
    },
    /// A reply that makes no sense at that point (a 250 to DATA, say).
    #[error("4.5.0 protocol error {stage}: unexpected reply {reply}")]
    Protocol {
        /// Where.
        stage: Stage,
        /// What it said.
        reply: RemoteReply,
    },
    /// The policy requires TLS and the remote does not offer or refuses STARTTLS.
    #[error("4.7.4 TLS required but STARTTLS {}", match reply {
        Some(r) => format!("refused: {r}"),
        None => "not offered".to_string(),
    })]
    TlsRequired {
        /// The refusal, if STARTTLS was tried.
        reply: Option<RemoteReply>,
    },
    /// The TLS handshake or certificate check failed.
    #[error("4.7.5 TLS failed: {reason}")]
    Tls {
        /// The TLS library's words.
        reason: String,
    },
    /// Something local is misconfigured (HELO name, no trust anchors).
    #[error("4.3.5 local configuration: {0}")]
    Setup(String),
    /// The connection failed or was closed by the remote earlier.
    #[error("4.4.2 connection no longer usable")]
    Unusable,
}

impl ConnError {
    /// True when the remote refused the session with a 5xx (greeting,
    /// EHLO/HELO): this host will not take mail from us. It is permanent for
    /// that host only; like Postfix (`smtp_skip_5xx_greeting`), callers try
    /// the next MX and otherwise defer, never bounce on it alone.
    pub fn is_permanent(&self) -> bool {
        matches!(self, ConnError::Refused { reply, .. } if reply.code >= 500)
    }
}

impl ConnError {
    /// The reply code and enhanced status code its text leads with: the
    /// remote's when it refused the session, else our own.
    pub fn codes(&self) -> (Option<u16>, Option<Enhanced>) {
        let own = |class, subject, detail| (None, Some(Enhanced::new(class, subject, detail)));
        match self {
            ConnError::Refused { reply, .. } => (Some(reply.code), reply.enhanced),
            ConnError::Connect { .. }
            | ConnError::Timeout {
                stage: Stage::Connect,
            } => own(4, 4, 1),
            ConnError::Timeout { .. }
            | ConnError::Io { .. }
            | ConnError::Closed { .. }
            | ConnError::Unusable => own(4, 4, 2),
            ConnError::BadReply { .. } | ConnError::Protocol { .. } => own(4, 5, 0),
            ConnError::TlsRequired { .. } => own(4, 7, 4),
            ConnError::Tls { .. } => own(4, 7, 5),
            ConnError::Setup(_) => own(4, 3, 5),
        }
    }
}

/// A socket error at `stage`: an unexpected end is the remote closing.
pub(super) fn io_error(stage: Stage, e: std::io::Error) -> ConnError {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => ConnError::Closed { stage },
        _ => ConnError::Io { stage, source: e },
    }
}

#[cfg(test)]
mod tests {
    use super::super::reply::parse_reply;
    use super::*;

    #[test]
    fn error_texts_lead_with_a_status() {
        let e = ConnError::Timeout {
            stage: Stage::Greeting,
        };
        assert_eq!(e.to_string(), "4.4.2 timeout waiting for the greeting");
        let e = ConnError::Closed {
            stage: Stage::Message,
        };
        assert_eq!(
            e.to_string(),
            "4.4.2 connection closed by the remote while sending the message"
        );
        let (reply, _) = parse_reply(b"554 5.7.1 go away\r\n").unwrap().unwrap();
        let e = ConnError::Refused {
            stage: Stage::Greeting,
            reply,
        };
        assert_eq!(
            e.to_string(),
            "554 5.7.1 go away (in reply to the greeting)"
        );
        assert!(e.is_permanent());
        assert!(!ConnError::TlsRequired { reply: None }.is_permanent());
        assert_eq!(
            ConnError::TlsRequired { reply: None }.to_string(),
            "4.7.4 TLS required but STARTTLS not offered"
        );
    }

    #[test]
    fn codes_are_the_ones_the_text_leads_with() {
        let reply = |s: &str| parse_reply(s.as_bytes()).unwrap().unwrap().0;
        let io = || std::io::Error::other("x");
        let all = [
            ConnError::Connect { source: io() },
            ConnError::Timeout {
                stage: Stage::Connect,
            },
            ConnError::Timeout { stage: Stage::Rcpt },
            ConnError::Io {
                stage: Stage::Mail,
                source: io(),
            },
            ConnError::Closed { stage: Stage::Data },
            ConnError::BadReply {
                stage: Stage::Ehlo,
                why: ReplyError::BadCode,
            },
            ConnError::Protocol {
                stage: Stage::Data,
                reply: reply("250 2.0.0 ok\r\n"),
            },
            ConnError::TlsRequired {
                reply: Some(reply("454 4.7.0 no\r\n")),
            },
            ConnError::Tls { reason: "x".into() },
            ConnError::Setup("x".into()),
            ConnError::Unusable,
        ];
        for e in all {
            let (code, enhanced) = e.codes();
            assert_eq!(code, None);
            let enhanced = enhanced.unwrap();
            assert!(e.to_string().starts_with(&format!("{enhanced} ")), "{e}");
        }
        let refused = ConnError::Refused {
            stage: Stage::Greeting,
            reply: reply("554 5.7.1 Client host [192.0.2.1] blocked\r\n"),
        };
        assert_eq!(refused.codes(), (Some(554), Some(Enhanced::new(5, 7, 1))));
        let bare = ConnError::Refused {
            stage: Stage::Ehlo,
            reply: reply("421 busy\r\n"),
        };
        assert_eq!(bare.codes(), (Some(421), None));
    }
}
