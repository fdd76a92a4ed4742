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
        let c = &self.gw.cfg.smtp;
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
        let deadline = Instant::now() + self.gw.cfg.smtp.data_timeout.0;
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
            usize::try_from(self.gw.cfg.smtp.spool_threshold.0).unwrap_or(usize::MAX),
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
        let deadline = Instant::now() + self.gw.cfg.smtp.data_timeout.0;
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
