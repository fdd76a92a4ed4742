//! The end of a message: the last checks, its `Received:` line, and the
//! queue; `250` only once the queue has it on disk.

use chrono::Utc;

use super::data::framing_reply;
use super::{Close, Flow, Session, Transaction};
use crate::address::ReversePath;
use crate::policy::{self, RcptKind, SenderStanding};
use crate::reply::Reply;
use crate::smtp::data::{DataOutcome, FramingError};
use crate::smtp::spool::Spool;

impl Session {
    /// Checks a complete message and queues it; replies 250 only once it is
    /// on disk. `body` is what the reader still holds: all of the message,
    /// or its tail when the rest went to `spool`.
    pub(super) async fn end_of_message(
        &mut self,
        end: DataOutcome,
        framing: Option<FramingError>,
        mut body: Vec<u8>,
        mut spool: Spool,
    ) -> Option<Flow> {
        let Some(txn) = self.txn.take() else {
            return self.error(Reply::new(503, "5.5.1", "no transaction"));
        };
        let info = match end {
            DataOutcome::Complete(info) => info,
            DataOutcome::BareNewline => {
                self.reply(framing_reply(framing));
                return Some(Flow::Close(Close::Smuggling));
            }
            DataOutcome::Refused(r) => return self.error(r),
        };
        if info.received_headers > self.cfg.smtp.max_received_headers {
            return self.error(Reply::new(
                554,
                "5.4.6",
                "too many Received headers: mail loop?",
            ));
        }
        let outbound = matches!(txn.standing, SenderStanding::Relay { .. });
        self.txn_seq += 1;
        let origin = crate::prepare::Origin::Smtp {
            received: self.received_header(&txn),
            message_id: (outbound && !info.has_message_id)
                .then(|| format!("{}.{}@{}", self.id, self.txn_seq, self.cfg.server.hostname)),
        };
        if spool.written() > 0 {
            let queue = &self.gw.queue;
            spool.spill(&mut body, |n| queue.check_room(n)).await;
        }
        if let Some(e) = spool.failed() {
            self.reply(e.reply());
            return None;
        }
        let spooled = spool.into_file();
        if let SenderStanding::Relay { domain } = &txn.standing
            && let Some(refusal) = self.header_from_refusal(domain, &body, spooled.as_ref(), &info)
        {
            self.reply(refusal);
            return None;
        }
        let body_len = match &spooled {
            Some((_, len)) => *len,
            None => body.len() as u64,
        };

        let domain = match &txn.standing {
            SenderStanding::Relay { domain } => Some(domain.to_string()),
            SenderStanding::Inbound => txn.rcpts.iter().find_map(|(_, k)| match k {
                RcptKind::Inbound(d) => Some(d.to_string()),
                _ => None,
            }),
        };
        let env = ugem_queue::NewEnvelope {
            sender: match &txn.from {
                ReversePath::Null => String::new(),
                ReversePath::Mailbox(mb) => mb.to_string(),
            },
            recipients: txn.rcpts.iter().map(|(a, _)| a.clone()).collect(),
            client_ip: Some(policy::canonical_ip(self.peer.ip())),
            helo: self.helo.clone().unwrap_or_default(),
            tls: self.tls.clone(),
            domain,
            direction: if outbound {
                ugem_queue::Direction::Outbound
            } else {
                ugem_queue::Direction::Inbound
            },
            arrived_at_ms: crate::store::now_ms(),
            // Set by the preparation step, to what is queued.
            size: 0,
        };
        let content = match spooled {
            Some((file, len)) => crate::prepare::Body::Spooled(file, len),
            None => crate::prepare::Body::Memory(body),
        };
        let queued =
            crate::prepare::enqueue_signed(&self.gw.queue, &self.gw.dkim, env, origin, content)
                .await;
        match queued {
            Ok(id) => {
                tracing::info!(target: crate::maillog::TARGET, queue_id = %id, client = %self.client_text(), from = %txn.from, size = body_len, nrcpt = txn.rcpts.len(), tls = %self.tls.as_deref().unwrap_or("none"), direction = %if outbound { "outbound" } else { "inbound" }, "message queued");
                self.rec.messages += 1;
                crate::metrics::message_accepted(body_len);
                if self.rec.queue_ids.len() < 100 {
                    self.rec.queue_ids.push(id.to_string());
                }
                self.reply(Reply::new(250, "2.0.0", format!("queued as {id}")));
                None
            }
            Err(ugem_queue::QueueError::DiskFull { .. }) => {
                tracing::warn!("queue below its free-space floor; message refused");
                self.reply(Reply::new(
                    452,
                    "4.3.1",
                    "insufficient system storage, try again later",
                ));
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "enqueue failed");
                self.reply(Reply::new(
                    451,
                    "4.3.0",
                    "local storage error, try again later",
                ));
                None
            }
        }
    }

    /// The `550 5.7.1` for relayed mail whose header From is not the
    /// domain's to use (issue #18, item 2); `None` lets it through.
    fn header_from_refusal(
        &self,
        domain: &crate::domain::Domain,
        body: &[u8],
        spooled: Option<&(std::fs::File, u64)>,
        info: &crate::smtp::data::MessageInfo,
    ) -> Option<Reply> {
        let snap = self.gw.registry.snapshot();
        let rec = snap.domain(domain)?;
        if !rec.header_from.enforce {
            return None;
        }
        // The header section is at the start, in memory or in the spool
        // file; it is bounded by smtp.max_header_size.
        let header = match spooled {
            None => body
                .get(..info.header_size as usize)
                .unwrap_or(body)
                .to_vec(),
            Some((file, _)) => {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0; info.header_size as usize];
                if let Err(e) = file.read_exact_at(&mut buf, 0) {
                    tracing::error!(error = %e, "cannot read the spooled header section");
                    return Some(Reply::new(
                        451,
                        "4.3.0",
                        "local storage error, try again later",
                    ));
                }
                buf
            }
        };
        let refusal = policy::header_from::verdict(rec, &header)?;
        tracing::info!(client = %self.client_text(), domain = %domain, reply = %refusal, "header From refused");
        Some(refusal)
    }

    /// The client as the mail log names it: `helo[ip]:port`, the name
    /// being the one it gave in EHLO/HELO (`unknown` before it said one;
    /// ugem does no reverse DNS).
    fn client_text(&self) -> String {
        format!(
            "{}[{}]:{}",
            self.helo.as_deref().unwrap_or("unknown"),
            policy::canonical_ip(self.peer.ip()),
            self.peer.port()
        )
    }

    fn received_header(&self, txn: &Transaction) -> String {
        let helo = self.helo.as_deref().unwrap_or("unknown");
        let ip = policy::canonical_ip(self.peer.ip());
        let proto = match (&self.tls, self.esmtp, txn.params.smtputf8) {
            (Some(_), _, true) => "UTF8SMTPS",
            (None, _, true) => "UTF8SMTP",
            (Some(_), _, false) => "ESMTPS",
            (None, true, false) => "ESMTP",
            (None, false, false) => "SMTP",
        };
        let tls = self
            .tls
            .as_ref()
            .map(|t| format!(" ({t})"))
            .unwrap_or_default();
        let date = Utc::now().to_rfc2822();
        let for_clause = if txn.rcpts.len() == 1 {
            format!("\r\n\tfor <{}>", txn.rcpts[0].0)
        } else {
            String::new()
        };
        format!(
            "Received: from {helo} ([{ip}])\r\n\tby {host} (ugem) with {proto}{tls}\r\n\tid {id}.{seq}{for_clause};\r\n\t{date}\r\n",
            host = self.cfg.server.hostname,
            id = self.id,
            seq = self.txn_seq,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use crate::values::ByteSize;

    async fn send_message(c: &mut Client, text: &str) -> Answer {
        c.send("DATA\r\n").await;
        c.expect(354).await;
        c.send(text).await;
        c.reply().await
    }

    async fn in_transaction(rig: &Rig, rcpts: &[&str]) -> Client {
        let mut c = rig.ehlo(AGENCY_IP).await;
        c.send("MAIL FROM:<it@agency.example.kz>\r\n").await;
        c.expect(250).await;
        for r in rcpts {
            c.send(&format!("RCPT TO:<{r}>\r\n")).await;
            c.expect(250).await;
        }
        c
    }

    #[tokio::test]
    async fn the_250_comes_once_the_message_is_in_the_queue() {
        let rig = rig();
        let mut c = in_transaction(&rig, &["someone@external.example"]).await;
        let queued = send_message(&mut c, "Subject: on disk\r\n\r\nhello\r\n.\r\n").await;
        // Read back the moment the reply is read: committed, not on its way.
        let (env, body) = rig.queued(&queued);
        assert_eq!(env.sender, "it@agency.example.kz");
        assert_eq!(env.domain.as_deref(), Some(AGENCY));
        assert_eq!(env.client_ip, Some(AGENCY_IP.parse().unwrap()));
        assert_eq!(env.helo, "client.example");
        assert_eq!(env.direction, ugem_queue::Direction::Outbound);
        assert!(body.ends_with(b"\r\n\r\nhello\r\n"), "{body:?}");
        assert_eq!(rig.queued_count(), 1);
    }

    #[tokio::test]
    async fn a_spooled_message_is_in_the_queue_before_its_250() {
        let rig = rig_with(|cfg, _| cfg.smtp.spool_threshold = ByteSize(1024));
        let mut c = in_transaction(&rig, &["someone@external.example"]).await;
        let line = format!("{}\r\n", "z".repeat(78));
        let text = format!("Subject: large\r\n\r\n{}", line.repeat(200));
        let queued = send_message(&mut c, &format!("{text}.\r\n")).await;
        let (env, body) = rig.queued(&queued);
        assert!(body.ends_with(text.as_bytes()));
        assert_eq!(env.size, body.len() as u64);
        // The spool file was handed over, not left behind.
        let spool = crate::smtp::spool::dir(rig.dir.path());
        assert_eq!(std::fs::read_dir(spool).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn the_received_line_and_a_missing_message_id_are_added() {
        let rig = rig();
        let mut c = in_transaction(&rig, &["someone@external.example"]).await;
        let queued = send_message(&mut c, "Subject: no id\r\n\r\nhi\r\n.\r\n").await;
        let (_, body) = rig.queued(&queued);
        let text = String::from_utf8(body).unwrap();
        assert!(
            text.starts_with(&format!(
                "Received: from client.example ([{AGENCY_IP}])\r\n\tby {HOST} (ugem) with ESMTP\r\n\tid test.1\r\n\tfor <someone@external.example>;\r\n\t"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "\r\nMessage-ID: <test.1@{HOST}>\r\nSubject: no id\r\n"
            )),
            "{text}"
        );
    }

    #[tokio::test]
    async fn too_many_received_lines_are_taken_for_a_loop() {
        let rig = rig_with(|cfg, _| cfg.smtp.max_received_headers = 2);
        let mut c = in_transaction(&rig, &["someone@external.example"]).await;
        let hops = "Received: from a by b; Mon, 1 Dec 2025 00:00:00 +0000\r\n".repeat(3);
        let r = send_message(&mut c, &format!("{hops}Subject: loop\r\n\r\nhi\r\n.\r\n")).await;
        assert_eq!(
            (r.code, r.text()),
            (554, "5.4.6 too many Received headers: mail loop?".into())
        );
        assert_eq!(rig.queued_count(), 0);
    }
}
