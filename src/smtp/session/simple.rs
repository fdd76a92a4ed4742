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

#[cfg(test)]
mod tests {
    use super::super::Close;
    use super::super::testkit::*;

    #[tokio::test]
    async fn rset_forgets_the_transaction_but_not_the_ehlo() {
        let rig = rig();
        let mut c = rig.ehlo(AGENCY_IP).await;
        c.send("MAIL FROM:<it@agency.example.kz>\r\n").await;
        c.expect(250).await;
        c.send("RCPT TO:<someone@external.example>\r\n").await;
        c.expect(250).await;
        c.send("RSET\r\n").await;
        assert_eq!(c.expect(250).await.text(), "2.0.0 reset");
        c.send("DATA\r\n").await;
        assert_eq!(c.expect(503).await.text(), "5.5.1 send MAIL first");
        // A new MAIL is not nested, and needs no new EHLO.
        c.send("MAIL FROM:<it@agency.example.kz>\r\n").await;
        c.expect(250).await;
        c.send("RCPT TO:<other@external.example>\r\n").await;
        c.expect(250).await;
        c.send("DATA\r\n").await;
        c.expect(354).await;
        c.send("Subject: after reset\r\n\r\nhi\r\n.\r\n").await;
        let queued = c.expect(250).await;
        let (env, _) = rig.queued(&queued);
        let to: Vec<_> = env.recipients.iter().map(|r| r.address.as_str()).collect();
        assert_eq!(to, ["other@external.example"]);
    }

    #[tokio::test]
    async fn quit_says_bye_and_closes() {
        let rig = rig();
        let mut c = rig.ehlo(STRANGER_IP).await;
        c.send("QUIT\r\n").await;
        assert_eq!(c.expect(221).await.text(), "2.0.0 bye");
        assert_eq!(c.closed().await, Close::Quit);
    }

    #[tokio::test]
    async fn the_small_commands_answer_as_documented() {
        let rig = rig();
        let mut c = rig.ehlo(STRANGER_IP).await;
        for (cmd, code, text) in [
            ("NOOP", 250, "2.0.0 OK"),
            (
                "HELP",
                214,
                "2.0.0 commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP STARTTLS",
            ),
            (
                "VRFY postmaster",
                252,
                "2.5.2 cannot verify addresses; send the message and delivery will be attempted",
            ),
            ("EXPN staff", 502, "5.5.1 EXPN is not available"),
            ("AUTH PLAIN", 502, "5.5.1 AUTH is not offered here"),
            ("XYZZY", 500, "5.5.1 command not recognized"),
        ] {
            c.send(&format!("{cmd}\r\n")).await;
            let r = c.reply().await;
            assert_eq!((r.code, r.text().as_str()), (code, text), "{cmd}");
        }
    }

    #[tokio::test]
    async fn refusals_count_toward_the_error_limit() {
        let rig = rig_with(|cfg, _| cfg.smtp.max_errors = 3);
        let mut c = rig.ehlo(STRANGER_IP).await;
        for _ in 0..2 {
            c.send("EXPN staff\r\n").await;
            c.expect(502).await;
        }
        // Answers that are not errors do not count.
        c.send("VRFY someone\r\nNOOP\r\n").await;
        c.expect(252).await;
        c.expect(250).await;
        c.send("XYZZY\r\n").await;
        c.expect(500).await;
        assert_eq!(
            c.expect(421).await.text(),
            "4.7.0 too many errors, closing connection"
        );
        assert_eq!(c.closed().await, Close::TooManyErrors);
    }
}
