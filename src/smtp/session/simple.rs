//! The small commands: RSET, NOOP, VRFY, EXPN, HELP, AUTH, QUIT, and the
//! reply to a command ugem does not know. None of them reads more input.

use super::{Close, Flow, Session};
use crate::reply::Reply;

impl Session {
    /// RSET: the transaction is forgotten; EHLO and TLS stay.
    pub(super) fn rset(&mut self) -> Option<Flow> {
        self.txn = None;
        self.reply(Reply::new(250, "2.0.0", "reset"));
        None
    }

    /// NOOP.
    pub(super) fn noop(&mut self) -> Option<Flow> {
        self.reply(Reply::new(250, "2.0.0", "OK"));
        None
    }

    /// QUIT: `221`, then the session closes.
    pub(super) fn quit(&mut self) -> Option<Flow> {
        self.reply(Reply::new(221, "2.0.0", "bye"));
        Some(Flow::Close(Close::Quit))
    }

    /// HELP: the commands ugem knows.
    pub(super) fn help(&mut self) -> Option<Flow> {
        self.reply(Reply::new(
            214,
            "2.0.0",
            "commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP STARTTLS",
        ));
        None
    }

    /// VRFY: `252` (RFC 5321 3.5.3), never an answer that would let a
    /// client harvest addresses.
    pub(super) fn vrfy(&mut self) -> Option<Flow> {
        self.reply(Reply::new(
            252,
            "2.5.2",
            "cannot verify addresses; send the message and delivery will be attempted",
        ));
        None
    }

    /// EXPN: not offered (a refusal that counts toward the error limit).
    pub(super) fn expn(&mut self) -> Option<Flow> {
        self.error(Reply::new(502, "5.5.1", "EXPN is not available"))
    }

    /// AUTH: not offered; clients are known by their IP address.
    pub(super) fn auth(&mut self) -> Option<Flow> {
        self.error(Reply::new(502, "5.5.1", "AUTH is not offered here"))
    }

    /// A command ugem does not know.
    pub(super) fn unknown(&mut self) -> Option<Flow> {
        self.error(Reply::new(500, "5.5.1", "command not recognized"))
    }
}
