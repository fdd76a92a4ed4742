//! Sending one message over an open session, step by step: the local
//! checks that refuse a message before anything is sent, MAIL and RCPT
//! (pipelined in batches when offered), DATA and the message, and a result
//! for every recipient ([`RcptResult`]).
//!
//! Unlike mail-send's `send()`, which stops at the first refused RCPT,
//! every recipient gets its own result.

use std::fmt::Write as _;

use super::connection::Connection;
use super::error::{ConnError, Stage};
use super::framing::{
    MAX_LINE_LENGTH, Stuffer, WRITE_BLOCK, check_message, finish_message, mail_command, valid_path,
};
use super::reply::RemoteReply;
use crate::delivery::outcome::Class;
use crate::reply::{Enhanced, Fate, Outcome};

/// Recipients per pipelined batch: bounds what waits unread on both sides.
const PIPELINE_BATCH: usize = 100;

/// What became of one recipient in one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptResult {
    /// Accepted by the remote after the message was sent.
    Delivered {
        /// The reply to the end of data, e.g. `"250 2.0.0 queued as X"`.
        reply: String,
    },
    /// Temporarily refused: retry later.
    Deferred {
        /// The remote reply (`"451 4.3.0 try later"`) or local reason.
        reply: String,
    },
    /// Permanently refused: bounce.
    Failed {
        /// The remote reply (`"550 5.1.1 user unknown"`) or local reason (`"5.6.0 ..."`).
        reply: String,
    },
}

impl RcptResult {
    /// The reply or reason text.
    pub fn reply(&self) -> &str {
        match self {
            RcptResult::Delivered { reply }
            | RcptResult::Deferred { reply }
            | RcptResult::Failed { reply } => reply,
        }
    }
}

impl From<Outcome> for RcptResult {
    fn from(o: Outcome) -> RcptResult {
        let reply = o.text;
        match o.fate {
            Fate::Delivered => RcptResult::Delivered { reply },
            Fate::Temporary => RcptResult::Deferred { reply },
            Fate::Permanent | Fate::Expired => RcptResult::Failed { reply },
        }
    }
}

/// The results of one transaction as they come in, one slot per recipient.
struct Results(Vec<Option<Outcome>>);

impl Results {
    fn new(n: usize) -> Results {
        Results(vec![None; n])
    }

    /// Every recipient without a result yet fails: `enhanced` and `why`.
    fn fail_rest(&mut self, enhanced: Enhanced, why: &str) {
        for r in self.0.iter_mut().filter(|r| r.is_none()) {
            *r = Some(Outcome::local(Fate::Permanent, enhanced, why));
        }
    }

    /// The recipients without a result yet.
    fn pending(&self) -> Vec<usize> {
        (0..self.0.len()).filter(|&i| self.0[i].is_none()).collect()
    }

    fn set(&mut self, i: usize, o: Outcome) {
        self.0[i] = Some(o);
    }

    /// Each of `who` gets what `reply` means.
    fn all(&mut self, who: &[usize], class: Class, reply: &RemoteReply) {
        let o = reply.outcome(class);
        for &i in who {
            self.set(i, o.clone());
        }
    }

    /// Each of `who` without a result yet gets `o`.
    fn fill(&mut self, who: &[usize], o: &Outcome) {
        for &i in who {
            if self.0[i].is_none() {
                self.set(i, o.clone());
            }
        }
    }

    /// Every recipient has a result by now; a gap would be a bug, so it is
    /// deferred rather than lost.
    fn finish(self) -> Vec<Outcome> {
        self.0
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Outcome::local(
                        Fate::Temporary,
                        Enhanced::new(4, 3, 0),
                        "no result for this recipient",
                    )
                })
            })
            .collect()
    }
}

impl Connection {
    /// Sends one message: RSET if the connection carried one before, MAIL
    /// (with SIZE, BODY=8BITMIME, SMTPUTF8 as needed), RCPT for each
    /// recipient (pipelined when offered), DATA if at least one was
    /// accepted. Returns a result per recipient, in order. A message that
    /// fails the local checks (bare CR/LF, NUL, long lines, over the remote's
    /// SIZE) fails every recipient without anything being sent. An `Err` means
    /// the connection broke: nothing is known to be delivered and the
    /// connection must not be reused.
    pub async fn send(
        &mut self,
        sender: &str,
        recipients: &[String],
        body: &[u8],
    ) -> Result<Vec<RcptResult>, ConnError> {
        let outcomes = self.deliver(sender, recipients, body).await?;
        Ok(outcomes.into_iter().map(RcptResult::from).collect())
    }

    /// [`Connection::send`] with each recipient's outcome typed (fate, the
    /// reply's code and enhanced code, the text), for the scheduler and
    /// the governor.
    pub async fn deliver(
        &mut self,
        sender: &str,
        recipients: &[String],
        body: &[u8],
    ) -> Result<Vec<Outcome>, ConnError> {
        if self.closing {
            return Err(ConnError::Unusable);
        }
        let r = self.transaction(sender, recipients, body).await;
        if r.is_err() {
            self.closing = true;
        }
        r
    }

    async fn transaction(
        &mut self,
        sender: &str,
        rcpts: &[String],
        body: &[u8],
    ) -> Result<Vec<Outcome>, ConnError> {
        let mut results = Results::new(rcpts.len());
        self.refuse_locally(sender, rcpts, body, &mut results);
        let todo = results.pending();
        if todo.is_empty() {
            return Ok(results.finish());
        }
        self.begin(self.timeouts).await?;
        let utf8_rcpt = todo.iter().any(|&i| !rcpts[i].is_ascii());
        let mail = mail_command(sender, body, &self.ext, utf8_rcpt);
        let (mail_reply, accepted, data_reply) =
            self.envelope(&mail, rcpts, &todo, &mut results).await?;
        if let Some(r) = &data_reply
            && r.code == 354
            && (accepted.is_empty() || mail_reply.class() != Class::Success)
        {
            // A server that took the pipelined DATA with nothing to deliver to: end the
            // empty message so the stream stays in step.
            self.end_empty_data().await?;
        }
        let class = mail_reply.class();
        if class != Class::Success {
            if mail_reply.code == 421 {
                self.closing = true;
            }
            // No transaction began.
            self.used = false;
            results.all(&todo, class, &mail_reply);
            return Ok(results.finish());
        }
        if self.closing {
            // A 421 came in the middle of the RCPTs: the rest were not
            // answered, and the accepted ones get no DATA on this connection.
            let closing = RemoteReply {
                code: 421,
                enhanced: Some(Enhanced::new(4, 4, 2)),
                lines: vec!["remote closing the connection".into()],
            };
            results.fill(&todo, &closing.outcome(Class::Temporary));
            return Ok(results.finish());
        }
        if !accepted.is_empty() {
            let reply = match data_reply {
                Some(r) => r,
                None => {
                    self.wire
                        .command("DATA\r\n", self.timeouts.data_init, Stage::Data)
                        .await?
                }
            };
            self.data(reply, body, &accepted, &mut results).await?;
        }
        Ok(results.finish())
    }

    /// The local checks: a message that can never go is not started, and a
    /// recipient that cannot be named to this remote fails alone.
    fn refuse_locally(&self, sender: &str, rcpts: &[String], body: &[u8], results: &mut Results) {
        if let Err(why) = check_message(body) {
            tracing::error!(remote = %self.remote, reason = why, "refusing to send a malformed message");
            results.fail_rest(Enhanced::new(5, 6, 0), &format!("{why}; not sent"));
        }
        if !valid_path(sender) {
            results.fail_rest(Enhanced::new(5, 1, 7), "bad sender address; not sent");
        }
        if !sender.is_ascii() && !self.ext.smtputf8 {
            results.fail_rest(
                Enhanced::new(5, 6, 7),
                "the sender address is not ASCII and the remote does not offer SMTPUTF8",
            );
        }
        if let Some(limit) = self.ext.size.filter(|&n| n > 0)
            && body.len() as u64 > limit
        {
            results.fail_rest(
                Enhanced::new(5, 3, 4),
                &format!(
                    "message size {} exceeds the remote's limit of {limit} (SIZE); not sent",
                    body.len()
                ),
            );
        }
        for i in results.pending() {
            let addr = &rcpts[i];
            if addr.is_empty() || !valid_path(addr) {
                let why = "bad recipient address; not sent";
                results.set(
                    i,
                    Outcome::local(Fate::Permanent, Enhanced::new(5, 1, 3), why),
                );
            } else if !addr.is_ascii() && !self.ext.smtputf8 {
                let why =
                    "the recipient address is not ASCII and the remote does not offer SMTPUTF8";
                results.set(
                    i,
                    Outcome::local(Fate::Permanent, Enhanced::new(5, 6, 7), why),
                );
            }
        }
    }

    /// MAIL and the RCPTs of `todo`, in batches of [`PIPELINE_BATCH`] with
    /// PIPELINING (MAIL in the first, DATA at the end of the last, as RFC 2920
    /// allows: one round trip less per message), one at a time without.
    /// Returns MAIL's reply, the recipients accepted (refused ones get their
    /// result) and the reply to a pipelined DATA, if one was sent and answered.
    async fn envelope(
        &mut self,
        mail: &str,
        rcpts: &[String],
        todo: &[usize],
        results: &mut Results,
    ) -> Result<(RemoteReply, Vec<usize>, Option<RemoteReply>), ConnError> {
        let t = self.timeouts;
        let pipelining = self.ext.pipelining;
        let batch = if pipelining { PIPELINE_BATCH } else { 1 };
        let chunks = todo.len().div_ceil(batch);
        let mut accepted = Vec::new();
        let mut mail_reply: Option<RemoteReply> = None;
        let mut data_reply: Option<RemoteReply> = None;
        for (k, chunk) in todo.chunks(batch).enumerate() {
            let mut out = String::new();
            if k == 0 {
                if !pipelining {
                    // Without PIPELINING, MAIL waits for its reply alone.
                    let reply = self.wire.command(mail, t.command, Stage::Mail).await?;
                    let ok = reply.class() == Class::Success;
                    mail_reply = Some(reply);
                    if !ok {
                        break;
                    }
                } else {
                    out.push_str(mail);
                }
            }
            for &i in chunk {
                let _ = write!(out, "RCPT TO:<{}>\r\n", rcpts[i]);
            }
            let data_sent = pipelining && k + 1 == chunks;
            if data_sent {
                out.push_str("DATA\r\n");
            }
            self.wire
                .write(out.as_bytes(), t.command, Stage::Rcpt)
                .await?;
            let mail_ok = match &mail_reply {
                Some(r) => r.class() == Class::Success,
                None => {
                    let r = self.wire.reply(t.command, Stage::Mail).await?;
                    let ok = r.class() == Class::Success;
                    mail_reply = Some(r);
                    ok
                }
            };
            self.rcpt_replies(chunk, mail_ok, results, &mut accepted)
                .await?;
            if data_sent && !self.closing {
                // Owed whatever came before: a 503 after a refused MAIL or when
                // every RCPT was refused (RFC 2920 3.1), 354 otherwise.
                match self.wire.reply(t.data_init, Stage::Data).await {
                    Ok(r) => data_reply = Some(r),
                    Err(_) if !mail_ok => self.closing = true,
                    Err(e) => return Err(e),
                }
            }
            if !mail_ok || self.closing {
                break;
            }
        }
        let mail_reply = mail_reply.ok_or(ConnError::Unusable)?;
        Ok((mail_reply, accepted, data_reply))
    }

    /// Ends a message the server opened with 354 though nothing was to be
    /// delivered: the bare final dot, whose reply (a refusal, usually) ends it.
    async fn end_empty_data(&mut self) -> Result<(), ConnError> {
        let t = self.timeouts;
        self.wire
            .write(b".\r\n", t.data_block, Stage::Message)
            .await?;
        let reply = self.wire.reply(t.data_end, Stage::DataEnd).await?;
        if reply.code == 421 {
            self.closing = true;
        }
        tracing::warn!(remote = %self.remote, reply = %reply, "the remote answered 354 to DATA without a recipient; ended the empty message");
        Ok(())
    }

    /// Reads the replies to one batch of RCPTs. After a refused MAIL they
    /// do not matter (503s), and a server that hung up owes none.
    async fn rcpt_replies(
        &mut self,
        chunk: &[usize],
        mail_ok: bool,
        results: &mut Results,
        accepted: &mut Vec<usize>,
    ) -> Result<(), ConnError> {
        for &i in chunk {
            let reply = match self.wire.reply(self.timeouts.command, Stage::Rcpt).await {
                Ok(r) => r,
                Err(_) if !mail_ok => {
                    self.closing = true;
                    break;
                }
                Err(e) => return Err(e),
            };
            if !mail_ok {
                continue;
            }
            if reply.code == 421 {
                // Closing: the remaining RCPTs get no reply (deferred later).
                self.closing = true;
                results.set(i, reply.outcome(Class::Temporary));
                break;
            }
            let class = match reply.code {
                // RFC 5321 §4.5.3.1.10: 552 to RCPT means "too many
                // recipients" from old servers; treat it as 452.
                552 => Class::Temporary,
                _ => reply.class(),
            };
            if class == Class::Success {
                accepted.push(i);
            } else {
                results.set(i, reply.outcome(class));
            }
        }
        Ok(())
    }

    /// After the reply to DATA: the message and the final reply, which
    /// decides for every accepted recipient.
    async fn data(
        &mut self,
        reply: RemoteReply,
        body: &[u8],
        accepted: &[usize],
        results: &mut Results,
    ) -> Result<(), ConnError> {
        let t = self.timeouts;
        if reply.code != 354 {
            let class = reply.class();
            if class == Class::Success {
                return Err(ConnError::Protocol {
                    stage: Stage::Data,
                    reply,
                });
            }
            if reply.code == 421 {
                self.closing = true;
            }
            results.all(accepted, class, &reply);
            return Ok(());
        }
        self.write_message(body).await?;
        let reply = self.wire.reply(t.data_end, Stage::DataEnd).await?;
        if reply.code == 421 {
            self.closing = true;
        }
        let class = reply.class();
        if class == Class::Temporary && reply.code < 400 {
            // A 1xx/3xx after the dot is no answer; nothing is known.
            return Err(ConnError::Protocol {
                stage: Stage::DataEnd,
                reply,
            });
        }
        // Accepted or refused, the reply to the dot ends the transaction.
        self.used = false;
        results.all(accepted, class, &reply);
        Ok(())
    }

    /// Writes the stuffed message and the final dot, block by block.
    async fn write_message(&mut self, body: &[u8]) -> Result<(), ConnError> {
        let limit = self.timeouts.data_block;
        let mut block = Vec::with_capacity(WRITE_BLOCK.min(body.len()) + MAX_LINE_LENGTH + 8);
        let mut stuffer = Stuffer::new(body);
        while stuffer.fill(&mut block, WRITE_BLOCK) {
            self.wire.write(&block, limit, Stage::Message).await?;
            block.clear();
        }
        // The last block carries the terminator: one write, no small trailing segment.
        finish_message(body, &mut block);
        self.wire.write(&block, limit, Stage::Message).await
    }
}
