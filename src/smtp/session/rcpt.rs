//! RCPT TO: one recipient, asked of the policy (relay or inbound), of the
//! domain's own server when recipients are verified, and of the governor.

use super::io::shutting_down;
use super::{Close, Flow, Session, Transaction};
use crate::address::ForwardPath;
use crate::policy::{self, RcptKind, RcptVerdict, SenderStanding};
use crate::reply::Reply;

impl Session {
    /// RCPT TO: adds a recipient to the transaction, or refuses it.
    pub(super) async fn rcpt(&mut self, to: ForwardPath) -> Option<Flow> {
        self.rec.rcpt_count += 1;
        let Some(txn) = self.txn.as_ref() else {
            return self.error(Reply::new(503, "5.5.1", "send MAIL first"));
        };
        if let ForwardPath::Mailbox(mb) = &to
            && mb.is_utf8()
            && !txn.params.smtputf8
        {
            return self.error(Reply::new(553, "5.6.7", "non-ASCII address needs SMTPUTF8"));
        }
        if txn.rcpts.len() >= self.cfg.smtp.max_recipients {
            // Not an error: the client sends the rest in another transaction.
            self.reply(Reply::new(452, "4.5.3", "too many recipients"));
            return None;
        }
        let snap = self.gw.registry.snapshot();
        match policy::rcpt_verdict(&snap, &txn.standing, &to, &self.cfg.server.hostname) {
            RcptVerdict::Refuse(r) => {
                tracing::info!(to = %to, code = r.code, "RCPT refused");
                self.error(r)
            }
            RcptVerdict::Accept(kind) => {
                let address = match (&kind, &to) {
                    (RcptKind::Postmaster, _) => self.cfg.server.postmaster.to_string(),
                    (_, ForwardPath::Mailbox(mb)) => mb.to_string(),
                    (_, ForwardPath::Postmaster) => self.cfg.server.postmaster.to_string(),
                };
                if let RcptKind::Inbound(d) = &kind {
                    self.note_domain(d.as_str());
                    let mut stop = self.stop.clone();
                    let unknown = tokio::select! {
                        biased;
                        _ = crate::shutdown::stopped(&mut stop) => {
                            self.txn = None;
                            self.reply(shutting_down());
                            return Some(Flow::Close(Close::Shutdown));
                        }
                        u = self.unknown_inbound(d, &address, &snap) => u,
                    };
                    if let Some(r) = unknown {
                        tracing::info!(to = %to, code = r.code, reason = %r.first_line(), "RCPT not verified with the domain's server");
                        if r.code >= 500 {
                            return self.error(r);
                        }
                        // A deferral is not the client's error.
                        self.reply(r);
                        return None;
                    }
                }
                // Recipient rates and the anomaly detector see outbound relay only.
                if kind == RcptKind::Outbound
                    && let Some(Transaction {
                        standing: SenderStanding::Relay { domain },
                        sender_key: Some(key),
                        ..
                    }) = self.txn.as_ref()
                    && let Err(r) = self.gw.governor.check_rcpt(&snap, domain, key, &address)
                {
                    tracing::info!(to = %to, reason = %r.first_line(), "RCPT rate-limited");
                    self.reply(r);
                    return None;
                }
                if let Some(txn) = self.txn.as_mut() {
                    txn.rcpts.push((address, kind));
                }
                self.tally.rcpt_accepted();
                self.reply(Reply::new(250, "2.1.5", "recipient OK"));
                None
            }
        }
    }

    /// Asks the domain's own server whether `address` exists (see
    /// `delivery::verify`); the 550 to send when it says no, or the 450 when
    /// it cannot say and `smtp.verify_unsettled = "defer"`.
    async fn unknown_inbound(
        &self,
        d: &crate::domain::Domain,
        address: &str,
        snap: &crate::registry::Snapshot,
    ) -> Option<Reply> {
        use crate::delivery::verify::Verdict;
        let v = self.gw.verifier.as_ref()?;
        if !v.may_probe(self.peer.ip(), address) {
            return Some(Reply::new(
                450,
                "4.7.1",
                format!(
                    "too many recipients to verify from {}; try later",
                    self.peer.ip()
                ),
            ));
        }
        let dc = &self.cfg.delivery;
        let route = crate::delivery::route::route_for(d, snap, &dc.routes);
        let tls = crate::delivery::tls_policy::policy_for(d, &dc.tls_policy, dc.tls);
        match v.verify(&route, tls, address).await {
            Verdict::Unknown(remote) => Some(Reply::new(
                550,
                "5.1.1",
                format!(
                    "<{address}>: unknown at {d}'s mail server ({})",
                    remote
                        .chars()
                        .filter(|c| c.is_ascii_graphic() || *c == ' ')
                        .take(200)
                        .collect::<String>()
                ),
            )),
            Verdict::Unverified(why)
                if self.cfg.smtp.verify_unsettled == crate::config::VerifyUnsettled::Defer =>
            {
                Some(Reply::new(
                    450,
                    "4.1.1",
                    format!("<{address}>: cannot verify the recipient now ({why}); try later"),
                ))
            }
            Verdict::Exists | Verdict::Unverified(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;

    #[tokio::test]
    async fn an_agency_may_relay_to_any_domain() {
        let rig = rig();
        let mut c = rig.ehlo(AGENCY_IP).await;
        c.send("MAIL FROM:<it@agency.example.kz>\r\n").await;
        c.expect(250).await;
        c.send("RCPT TO:<someone@external.example>\r\n").await;
        assert_eq!(c.expect(250).await.text(), "2.1.5 recipient OK");
    }

    #[tokio::test]
    async fn a_stranger_relaying_to_an_external_domain_is_refused() {
        let rig = rig();
        let mut c = rig.ehlo(STRANGER_IP).await;
        // A stranger's sender is taken as inbound mail...
        c.send("MAIL FROM:<spammer@elsewhere.example>\r\n").await;
        c.expect(250).await;
        // ...so it may write to registered domains only: no open relay.
        c.send("RCPT TO:<victim@external.example>\r\n").await;
        let r = c.expect(550).await;
        assert!(
            r.text()
                .starts_with("5.7.1 relaying denied: external.example is not a registered domain"),
            "{r:?}"
        );
        c.send("RCPT TO:<it@agency.example.kz>\r\n").await;
        c.expect(250).await;
    }

    #[tokio::test]
    async fn a_sender_of_an_unknown_domain_cannot_relay_even_from_an_agency_server() {
        let rig = rig();
        let mut c = rig.ehlo(AGENCY_IP).await;
        c.send("MAIL FROM:<someone@unknown.example>\r\n").await;
        c.expect(250).await;
        c.send("RCPT TO:<victim@external.example>\r\n").await;
        let r = c.expect(550).await;
        assert!(r.text().starts_with("5.7.1 relaying denied"), "{r:?}");
    }

    #[tokio::test]
    async fn address_literals_are_refused() {
        let rig = rig();
        let mut c = rig.ehlo(AGENCY_IP).await;
        c.send("MAIL FROM:<it@agency.example.kz>\r\n").await;
        c.expect(250).await;
        c.send("RCPT TO:<someone@[203.0.113.5]>\r\n").await;
        let r = c.expect(550).await;
        assert!(
            r.text()
                .starts_with("5.7.1 relaying denied: address literal"),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn rcpt_needs_mail_first() {
        let rig = rig();
        let mut c = rig.ehlo(AGENCY_IP).await;
        c.send("RCPT TO:<someone@external.example>\r\n").await;
        assert_eq!(c.expect(503).await.text(), "5.5.1 send MAIL first");
    }

    #[tokio::test]
    async fn recipients_over_the_limit_get_452_and_the_rest_is_queued() {
        let rig = rig_with(|cfg, _| {
            cfg.smtp.max_recipients = 2;
            // A 452 is not the client's error: one error would close here.
            cfg.smtp.max_errors = 1;
        });
        let mut c = rig.ehlo(AGENCY_IP).await;
        c.send("MAIL FROM:<it@agency.example.kz>\r\n").await;
        c.expect(250).await;
        for n in 1..=2 {
            c.send(&format!("RCPT TO:<r{n}@external.example>\r\n"))
                .await;
            c.expect(250).await;
        }
        c.send("RCPT TO:<r3@external.example>\r\n").await;
        assert_eq!(c.expect(452).await.text(), "4.5.3 too many recipients");
        c.send("DATA\r\n").await;
        c.expect(354).await;
        c.send("Subject: two\r\n\r\nbody\r\n.\r\n").await;
        let queued = c.expect(250).await;
        let (env, _) = rig.queued(&queued);
        let to: Vec<_> = env.recipients.iter().map(|r| r.address.as_str()).collect();
        assert_eq!(to, ["r1@external.example", "r2@external.example"]);
    }
}
