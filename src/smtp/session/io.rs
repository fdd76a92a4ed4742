//! The session's side of the wire: replies are queued and go out together
//! before the next read (a pipelined batch gets its answers in one write),
//! and reads end at the command or data deadline, the session's own, or
//! the gateway's shutdown.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::conn::{ClientStream, Conn};
use super::{Close, Flow, Session};
use crate::model::connections::Refusal;
use crate::reply::Reply;

/// Most refusals kept in one connection record.
const MAX_REFUSALS_LOGGED: usize = 50;

impl Session {
    /// Queues a reply; replies go out together before the next read, so a
    /// pipelined batch gets its answers in one write.
    pub(super) fn reply(&mut self, r: Reply) {
        if r.code >= 400 {
            self.note_refusal(&r);
            let enhanced = r.enhanced.map(|e| e.to_string()).unwrap_or_default();
            crate::metrics::refusal(r.code, &enhanced);
        }
        r.write_to(&mut self.out);
    }

    fn note_refusal(&mut self, r: &Reply) {
        if self.rec.refusals.len() < MAX_REFUSALS_LOGGED {
            self.rec.refusals.push(Refusal {
                command: String::new(),
                code: r.code,
                text: r.first_line(),
            });
        }
    }

    /// A refusal that counts toward the error limit.
    pub(super) fn error(&mut self, r: Reply) -> Option<Flow> {
        self.reply(r);
        self.errors += 1;
        if self.errors >= self.cfg.smtp.max_errors {
            self.reply(Reply::new(
                421,
                "4.7.0",
                "too many errors, closing connection",
            ));
            return Some(Flow::Close(Close::TooManyErrors));
        }
        None
    }

    /// Writes the queued replies; a client that does not read them within
    /// a minute is dropped.
    pub(super) async fn flush<S: ClientStream>(
        &mut self,
        conn: &mut Conn<S>,
    ) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let r = tokio::time::timeout(Duration::from_secs(60), async {
            conn.write_all(&self.out).await?;
            conn.flush().await
        })
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
        self.rec.bytes_out += self.out.len() as u64;
        self.out.clear();
        r
    }

    /// Flushes replies, then reads more input before `deadline`.
    pub(super) async fn read_more<S: ClientStream>(
        &mut self,
        conn: &mut Conn<S>,
        buf: &mut [u8],
        deadline: Instant,
    ) -> Result<usize, Close> {
        if self.flush(conn).await.is_err() {
            return Err(Close::IoError);
        }
        let deadline = deadline.min(self.deadline);
        let mut stop = self.stop.clone();
        let read = tokio::select! {
            biased;
            _ = crate::shutdown::stopped(&mut stop) => {
                // Whatever the session was waiting for (a command, the rest
                // of a message), the client keeps its mail and comes back.
                self.txn = None;
                self.reply(shutting_down());
                return Err(Close::Shutdown);
            }
            r = tokio::time::timeout_at(deadline, conn.read(buf)) => r,
        };
        match read {
            Ok(Ok(0)) => Err(Close::Eof),
            Ok(Ok(n)) => {
                self.rec.bytes_in += n as u64;
                Ok(n)
            }
            Ok(Err(_)) => Err(Close::IoError),
            Err(_) => {
                self.reply(Reply::new(421, "4.4.2", "timeout, closing connection"));
                Err(Close::Timeout)
            }
        }
    }
}

/// `421 4.3.2`: the gateway is stopping; the client keeps its mail.
pub(super) fn shutting_down() -> Reply {
    Reply::new(421, "4.3.2", "gateway shutting down, try again later")
}
