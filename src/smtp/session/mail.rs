//! MAIL FROM: the sender, asked of the policy (is the client registered for
//! the sender's domain, is anything suspended) and of the governor's rates.

use super::{Flow, Session, Transaction};
use crate::address::ReversePath;
use crate::policy::{self, MailVerdict, SenderStanding};
use crate::reply::Reply;
use crate::smtp::command::MailParams;
use crate::smtp::spool::SpoolError;

impl Session {
    /// MAIL FROM: starts a transaction, or refuses with the reason.
    pub(super) fn mail(&mut self, from: ReversePath, params: MailParams) -> Option<Flow> {
        self.rec.mail_count += 1;
        if let ReversePath::Mailbox(mb) = &from {
            self.note_claimed(&mb.domain.to_string());
        }
        if self.helo.is_none() {
            return self.error(Reply::new(503, "5.5.1", "send EHLO or HELO first"));
        }
        if self.txn.is_some() {
            return self.error(Reply::new(503, "5.5.1", "nested MAIL command"));
        }
        if !self.esmtp && params != MailParams::default() {
            return self.error(Reply::new(555, "5.5.4", "parameters need EHLO"));
        }
        if let ReversePath::Mailbox(mb) = &from
            && mb.is_utf8()
            && !params.smtputf8
        {
            return self.error(Reply::new(553, "5.6.7", "non-ASCII address needs SMTPUTF8"));
        }
        let max = self.cfg.smtp.max_message_size.0;
        if params.size.is_some_and(|s| s > max) {
            return self.error(Reply::new(
                552,
                "5.3.4",
                format!("message size exceeds the limit of {max} bytes"),
            ));
        }
        // Free space first: a client that cannot be accepted anyway is not
        // made to send the message for a 452 at its end (not its error).
        if let Some(r) = self.no_room(params.size.unwrap_or(0)) {
            self.reply(r);
            return None;
        }
        let snap = self.gw.registry.snapshot();
        let postmaster = self.cfg.server.postmaster.to_string();
        match policy::mail_verdict(&snap, self.peer.ip(), &from, &postmaster) {
            MailVerdict::Refuse(r) => {
                tracing::info!(from = %from, code = r.code, reason = %r.first_line(), "MAIL refused");
                // An address sending as a domain it is no server of: noted
                // (buffered, no store write) and the session tagged with it.
                if let Some(d) = policy::unregistered_claim(&snap, self.peer.ip(), &from) {
                    self.gw.registry.note_unregistered(
                        d,
                        self.peer.ip(),
                        &format!("MAIL FROM:<{from}>: {} {}", r.code, r.first_line()),
                    );
                    self.note_domain(d.as_str());
                }
                self.error(r)
            }
            MailVerdict::Accept(standing) => {
                if let SenderStanding::Relay { domain } = &standing {
                    self.note_domain(domain.as_str());
                }
                let sender_key = match (&standing, &from) {
                    (SenderStanding::Relay { .. }, ReversePath::Mailbox(mb)) => {
                        Some(policy::sender_key(mb))
                    }
                    _ => None,
                };
                // Message rates of the agency's domain and sender (governor).
                if let (SenderStanding::Relay { domain }, Some(key)) = (&standing, &sender_key)
                    && let Err(r) = self.gw.governor.check_mail(&snap, domain, key)
                {
                    tracing::info!(from = %from, reason = %r.first_line(), "MAIL rate-limited");
                    self.reply(r);
                    return None;
                }
                self.txn = Some(Transaction {
                    from,
                    standing,
                    params,
                    rcpts: Vec::new(),
                    bdat: None,
                    sender_key,
                    spool: None,
                });
                self.tally.mail_accepted();
                self.reply(Reply::new(250, "2.1.0", "sender OK"));
                None
            }
        }
    }

    /// Notes a domain a MAIL FROM claimed (connection log), at most 10.
    fn note_claimed(&mut self, d: &str) {
        if self.rec.claimed.len() < 10 && !self.rec.claimed.iter().any(|x| x == d) {
            self.rec.claimed.push(d.to_string());
        }
    }

    /// Notes a registered domain the session dealt with (connection log).
    pub(super) fn note_domain(&mut self, d: &str) {
        if !self.rec.domains.iter().any(|x| x == d) {
            self.rec.domains.push(d.to_string());
        }
    }

    /// `452 4.3.1` while the queue's disk is below its free-space floor
    /// (with `incoming` octets on their way), so that a client is not made
    /// to send a whole message only to be refused at its end.
    fn no_room(&self, incoming: u64) -> Option<Reply> {
        match self.gw.queue.check_room(incoming) {
            Ok(()) => None,
            Err(ugem_queue::QueueError::DiskFull { free, floor }) => {
                tracing::warn!(
                    free,
                    floor,
                    "queue below its free-space floor; transaction refused"
                );
                Some(SpoolError::DiskFull.reply())
            }
            Err(e) => {
                // The check itself failed: the queue will say more at the end.
                tracing::warn!(error = %e, "cannot check the queue's free space");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;

    #[tokio::test]
    async fn an_agency_sender_from_its_registered_server_is_accepted() {
        let rig = rig();
        let mut c = rig.ehlo(AGENCY_IP).await;
        c.send("MAIL FROM:<it@agency.example.kz>\r\n").await;
        assert_eq!(c.expect(250).await.text(), "2.1.0 sender OK");
    }

    #[tokio::test]
    async fn an_agency_sender_from_an_unregistered_ip_is_refused() {
        let rig = rig();
        let mut c = rig.ehlo(STRANGER_IP).await;
        c.send("MAIL FROM:<it@agency.example.kz>\r\n").await;
        let r = c.expect(550).await;
        assert_eq!(
            r.text(),
            format!("5.7.1 sender domain {AGENCY} is registered, but not for client {STRANGER_IP}")
        );
        // No transaction was started.
        c.send("RCPT TO:<someone@external.example>\r\n").await;
        c.expect(503).await;
    }

    #[tokio::test]
    async fn mail_needs_ehlo_first_and_no_nesting() {
        let rig = rig();
        let mut c = rig.connect(AGENCY_IP);
        c.expect(220).await;
        c.send("MAIL FROM:<it@agency.example.kz>\r\n").await;
        assert_eq!(c.expect(503).await.text(), "5.5.1 send EHLO or HELO first");
        c.send("EHLO client.example\r\n").await;
        c.expect(250).await;
        c.send("MAIL FROM:<it@agency.example.kz>\r\n").await;
        c.expect(250).await;
        c.send("MAIL FROM:<it@agency.example.kz>\r\n").await;
        assert_eq!(c.expect(503).await.text(), "5.5.1 nested MAIL command");
    }

    #[tokio::test]
    async fn a_declared_size_over_the_limit_is_refused_at_mail() {
        let rig = rig_with(|cfg, _| cfg.smtp.max_message_size = crate::values::ByteSize(1000));
        let mut c = rig.ehlo(AGENCY_IP).await;
        c.send("MAIL FROM:<it@agency.example.kz> SIZE=1001\r\n")
            .await;
        assert_eq!(
            c.expect(552).await.text(),
            "5.3.4 message size exceeds the limit of 1000 bytes"
        );
        c.send("MAIL FROM:<it@agency.example.kz> SIZE=1000\r\n")
            .await;
        c.expect(250).await;
    }

    #[tokio::test]
    async fn a_non_ascii_sender_needs_smtputf8() {
        let rig = rig();
        let mut c = rig.ehlo(STRANGER_IP).await;
        c.send("MAIL FROM:<тест@external.example>\r\n").await;
        assert_eq!(
            c.expect(553).await.text(),
            "5.6.7 non-ASCII address needs SMTPUTF8"
        );
        c.send("MAIL FROM:<тест@external.example> SMTPUTF8\r\n")
            .await;
        c.expect(250).await;
    }
}
