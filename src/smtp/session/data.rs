//! DATA and BDAT: the message's octets, read with the pure readers of
//! [`crate::smtp::data`] and spilled to a spool file beyond the threshold;
//! the complete message goes on to [`super::enqueue`].

use tokio::time::Instant;

use super::conn::{ClientStream, Conn};
use super::{Close, Flow, Session};
use crate::reply::Reply;
use crate::smtp::data::{BdatReader, DataLimits, DataReader, FramingError};
use crate::smtp::spool::Spool;

impl Session {
    fn data_limits(&self) -> DataLimits {
        let c = &self.cfg.smtp;
        DataLimits {
            max_size: c.max_message_size.0,
            max_header_size: c.max_header_size.0,
            max_line_length: c.max_data_line_length,
        }
    }

    /// DATA: `354`, then the dot-terminated message.
    pub(super) async fn data<S: ClientStream>(&mut self, conn: &mut Conn<S>) -> Option<Flow> {
        match &self.txn {
            None => return self.error(Reply::new(503, "5.5.1", "send MAIL first")),
            Some(t) if t.rcpts.is_empty() => {
                return self.error(Reply::new(554, "5.5.1", "no valid recipients"));
            }
            Some(t) if t.bdat.is_some() => {
                return self.error(Reply::new(503, "5.5.1", "DATA after BDAT"));
            }
            Some(_) => {}
        }
        self.reply(Reply::new(354, "", "end data with <CR><LF>.<CR><LF>"));
        let mut reader = DataReader::new(self.data_limits());
        let mut spool = self.new_spool();
        let deadline = Instant::now() + self.cfg.smtp.data_timeout.0;
        let mut pending = self.lines.take_rest();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let progress = reader.feed(&pending);
            if let Some(end) = progress.done {
                let rest = pending.split_off(progress.consumed.min(pending.len()));
                self.lines.push(&rest);
                let framing = reader.framing_error();
                return self
                    .end_of_message(end, framing, reader.take_body(), spool)
                    .await;
            }
            if spool.wants(reader.body().len()) {
                let queue = &self.gw.queue;
                spool
                    .spill(reader.body_mut(), |n| queue.check_room(n))
                    .await;
            }
            pending.clear();
            match self.read_more(conn, &mut buf, deadline).await {
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(c) => return Some(Flow::Close(c)),
            }
        }
    }

    fn new_spool(&self) -> Spool {
        Spool::new(
            self.gw.spool_dir.clone(),
            usize::try_from(self.cfg.smtp.spool_threshold.0).unwrap_or(usize::MAX),
        )
    }

    /// BDAT: one chunk of `size` octets; the message ends with the `LAST`
    /// one.
    pub(super) async fn bdat<S: ClientStream>(
        &mut self,
        conn: &mut Conn<S>,
        size: u64,
        last: bool,
    ) -> Option<Flow> {
        // The chunk's octets are always consumed, refused or not, so that
        // they are never read as commands.
        let refusal = match &self.txn {
            None => Some(Reply::new(503, "5.5.1", "send MAIL first")),
            Some(t) if t.rcpts.is_empty() => Some(Reply::new(554, "5.5.1", "no valid recipients")),
            Some(_) => None,
        };
        let limits = self.data_limits();
        let mut reader = match (&refusal, self.txn.as_mut()) {
            (None, Some(t)) => Some(t.bdat.take().unwrap_or_else(|| BdatReader::new(limits))),
            _ => None,
        };
        let mut spool = match (&reader, self.txn.as_mut()) {
            (Some(_), Some(t)) => t.spool.take(),
            _ => None,
        };
        if reader.is_some() && spool.is_none() {
            spool = Some(self.new_spool());
        }
        let deadline = Instant::now() + self.cfg.smtp.data_timeout.0;
        let mut remaining = size;
        let mut pending = self.lines.take_rest();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let take = (remaining.min(pending.len() as u64)) as usize;
            if let Some(r) = reader.as_mut() {
                r.feed(&pending[..take]);
                if let Some(sp) = spool.as_mut()
                    && sp.wants(r.stored())
                {
                    let queue = &self.gw.queue;
                    sp.spill(r.body_mut(), |n| queue.check_room(n)).await;
                }
            }
            remaining -= take as u64;
            if remaining == 0 {
                self.lines.push(&pending[take..]);
                break;
            }
            pending.clear();
            match self.read_more(conn, &mut buf, deadline).await {
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(c) => return Some(Flow::Close(c)),
            }
        }
        if let Some(r) = refusal {
            return self.error(r);
        }
        // No refusal means a transaction took the chunk.
        let reader = reader?;
        if let Some(f) = reader.framing_error() {
            // Close at the first bad chunk rather than at LAST.
            self.reply(framing_reply(Some(f)));
            return Some(Flow::Close(Close::Smuggling));
        }
        let spool = spool.unwrap_or_else(|| self.new_spool());
        if last {
            let framing = reader.framing_error();
            let (end, body) = reader.finish();
            return self.end_of_message(end, framing, body, spool).await;
        }
        if let Some(t) = self.txn.as_mut() {
            t.bdat = Some(reader);
            t.spool = Some(spool);
        }
        self.reply(Reply::new(250, "2.0.0", format!("{size} octets received")));
        None
    }
}

/// The reply to message data whose framing broke; the session closes after
/// it. Bare CR or LF: `521 5.5.2` (an SMTP smuggling attempt, the line ends
/// can no longer be trusted). NUL: `554 5.6.0`, its own reason (RFC 5322
/// text excludes it; `<CR><LF>NUL.<CR><LF>` is a known smuggling variant).
pub(super) fn framing_reply(f: Option<FramingError>) -> Reply {
    match f {
        Some(FramingError::Nul) => {
            tracing::warn!("NUL octet in message data");
            Reply::new(
                554,
                "5.6.0",
                "NUL octet in message data (not allowed in mail); closing connection",
            )
        }
        _ => {
            tracing::warn!(
                framing = f.map(|f| f.to_string()).unwrap_or_default(),
                "bare CR or LF in message data (SMTP smuggling attempt?)"
            );
            Reply::new(
                521,
                "5.5.2",
                "bare CR or LF in message data; closing connection",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Close;
    use super::super::testkit::*;
    use crate::values::ByteSize;

    /// A client that has sent MAIL and one RCPT, both accepted.
    async fn in_transaction(rig: &Rig) -> Client {
        let mut c = rig.ehlo(AGENCY_IP).await;
        c.send("MAIL FROM:<it@agency.example.kz>\r\n").await;
        c.expect(250).await;
        c.send("RCPT TO:<someone@external.example>\r\n").await;
        c.expect(250).await;
        c
    }

    /// The message as queued, without the `Received:` line ugem added.
    fn content(body: &[u8]) -> &[u8] {
        let text = body.strip_prefix(b"Received: ").expect("Received: first");
        let end = text
            .windows(2)
            .enumerate()
            .position(|(i, w)| w == b"\r\n" && !matches!(text.get(i + 2), Some(b'\t' | b' ')))
            .unwrap();
        &text[end + 2..]
    }

    #[tokio::test]
    async fn data_unstuffs_leading_dots() {
        let rig = rig();
        let mut c = in_transaction(&rig).await;
        c.send("DATA\r\n").await;
        assert_eq!(
            c.expect(354).await.text(),
            "end data with <CR><LF>.<CR><LF>"
        );
        c.send("Subject: dots\r\nMessage-ID: <1@agency.example.kz>\r\n\r\n..one dot\r\n...two dots\r\n.\r\n")
            .await;
        let queued = c.expect(250).await;
        let (_, body) = rig.queued(&queued);
        assert_eq!(
            content(&body),
            b"Subject: dots\r\nMessage-ID: <1@agency.example.kz>\r\n\r\n.one dot\r\n..two dots\r\n"
        );
    }

    #[tokio::test]
    async fn data_needs_a_recipient() {
        let rig = rig();
        let mut c = rig.ehlo(AGENCY_IP).await;
        c.send("DATA\r\n").await;
        assert_eq!(c.expect(503).await.text(), "5.5.1 send MAIL first");
        c.send("MAIL FROM:<it@agency.example.kz>\r\n").await;
        c.expect(250).await;
        c.send("DATA\r\n").await;
        assert_eq!(c.expect(554).await.text(), "5.5.1 no valid recipients");
    }

    #[tokio::test]
    async fn bdat_chunks_make_one_message_and_are_never_read_as_commands() {
        let rig = rig();
        let mut c = in_transaction(&rig).await;
        let first = "Subject: chunks\r\nMessage-ID: <2@agency.example.kz>\r\n\r\nQUIT\r\n";
        let last = "RSET\r\nend\r\n";
        c.send(&format!("BDAT {}\r\n{first}", first.len())).await;
        assert_eq!(
            c.expect(250).await.text(),
            format!("2.0.0 {} octets received", first.len())
        );
        c.send(&format!("BDAT {} LAST\r\n{last}", last.len())).await;
        let queued = c.expect(250).await;
        let (env, body) = rig.queued(&queued);
        assert_eq!(env.recipients.len(), 1);
        assert_eq!(content(&body)[..first.len()], *first.as_bytes());
        assert!(content(&body).ends_with(last.as_bytes()));
    }

    #[tokio::test]
    async fn a_refused_bdat_chunk_is_consumed_all_the_same() {
        let rig = rig();
        let mut c = rig.ehlo(AGENCY_IP).await;
        c.send("BDAT 6\r\nQUIT\r\nNOOP\r\n").await;
        assert_eq!(c.expect(503).await.text(), "5.5.1 send MAIL first");
        c.expect(250).await;
        assert_eq!(rig.queued_count(), 0);
    }

    #[tokio::test]
    async fn data_after_bdat_is_refused() {
        let rig = rig();
        let mut c = in_transaction(&rig).await;
        c.send("BDAT 4\r\nab\r\n").await;
        c.expect(250).await;
        c.send("DATA\r\n").await;
        assert_eq!(c.expect(503).await.text(), "5.5.1 DATA after BDAT");
    }

    #[tokio::test]
    async fn a_message_over_the_size_limit_is_refused_and_the_session_goes_on() {
        let rig = rig_with(|cfg, _| cfg.smtp.max_message_size = ByteSize(1000));
        let mut c = in_transaction(&rig).await;
        c.send("DATA\r\n").await;
        c.expect(354).await;
        let line = format!("{}\r\n", "x".repeat(98));
        c.send(&format!("Subject: big\r\n\r\n{}.\r\n", line.repeat(11)))
            .await;
        let r = c.expect(552).await;
        assert!(r.text().starts_with("5.3.4 "), "{r:?}");
        assert_eq!(rig.queued_count(), 0);
        c.send("NOOP\r\n").await;
        c.expect(250).await;
    }

    #[tokio::test]
    async fn a_data_line_over_the_limit_is_refused() {
        let rig = rig_with(|cfg, _| cfg.smtp.max_data_line_length = 100);
        let mut c = in_transaction(&rig).await;
        c.send("DATA\r\n").await;
        c.expect(354).await;
        c.send(&format!("Subject: long\r\n\r\n{}\r\n.\r\n", "y".repeat(99)))
            .await;
        let r = c.expect(550).await;
        assert!(r.text().starts_with("5.6.0 "), "{r:?}");
        assert_eq!(rig.queued_count(), 0);
    }

    #[tokio::test]
    async fn a_bare_newline_in_data_closes_the_session() {
        let rig = rig();
        let mut c = in_transaction(&rig).await;
        c.send("DATA\r\n").await;
        c.expect(354).await;
        // The smuggling shape: a bare LF before a dot.
        c.send("Subject: smuggle\r\n\r\nhi\n.\r\nMAIL FROM:<x@y.example>\r\n.\r\n")
            .await;
        assert_eq!(
            c.expect(521).await.text(),
            "5.5.2 bare CR or LF in message data; closing connection"
        );
        assert_eq!(c.closed().await, Close::Smuggling);
        assert_eq!(rig.queued_count(), 0);
    }
}
