//! One SMTP session, from greeting to QUIT: the state machine that ties the
//! pure parsers to the client's stream, asks the policy at MAIL and RCPT, and
//! hands accepted messages to the queue.
//!
//! This file holds the session's state and the command loop; each verb or
//! group of verbs has its own file:
//! - `greeting.rs`: the greeting (after the governor's connection check),
//!   EHLO and HELO;
//! - `mail.rs`, `rcpt.rs`: MAIL FROM and RCPT TO, asking the policy and the
//!   governor;
//! - `data.rs`: DATA and BDAT, reading the message (to a spool file when
//!   large); `enqueue.rs`: its end, checks and the queue, `250` once on disk;
//! - `starttls.rs`: STARTTLS and the TLS upgrade of `conn.rs`;
//! - `simple.rs`: RSET, NOOP, VRFY, EXPN, HELP, AUTH, QUIT, unknown commands;
//! - `io.rs`: replies queued and flushed together, reads under deadlines.
//!
//! The session runs over any [`ClientStream`]: a TCP stream from the
//! listener, an in-memory duplex in the unit tests.

mod conn;
mod data;
mod enqueue;
mod greeting;
mod io;
mod mail;
mod rcpt;
mod simple;
mod starttls;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

pub use conn::ClientStream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

use super::Gateway;
use super::command::{Command, CommandError, MailParams, parse_command};
use super::data::BdatReader;
use super::line::{LineBuffer, LineError};
use super::spool::Spool;
use crate::address::ReversePath;
use crate::config::Config;
use crate::model::connections::{ConnectionRecord, logged_command};
use crate::policy::{RcptKind, SenderStanding};
use crate::reply::Reply;
use conn::Conn;

/// Runs one session over `stream` to its end and records it in the
/// connection log.
pub async fn run<S: ClientStream>(
    gw: Arc<Gateway>,
    stream: S,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    let id = session_id();
    let span = tracing::info_span!("smtp", session = %id, peer = %peer);
    async move {
        let mut s = Session::new(gw, peer, id, stop);
        let close = s.serve(stream).await;
        s.finish(close);
    }
    .instrument(span)
    .await
}

/// The command loop's read buffer starts at this size (a command line, or a short
/// pipelined group, fits)...
const READ_BUF_MIN: usize = 256;
/// ...and doubles while reads fill it, up to this.
const READ_BUF_MAX: usize = 16 * 1024;

fn session_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{:x}{:04x}", crate::store::now_ms(), n & 0xffff)
}

/// How a session ended, for the connection log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    Quit,
    Eof,
    Timeout,
    IoError,
    TooManyErrors,
    Smuggling,
    ForeignProtocol,
    Pipelining,
    Shutdown,
    TlsFailed,
    RateLimited,
}

impl Close {
    fn as_str(self) -> &'static str {
        match self {
            Close::Quit => "quit",
            Close::Eof => "eof",
            Close::Timeout => "timeout",
            Close::IoError => "io-error",
            Close::TooManyErrors => "too-many-errors",
            Close::Smuggling => "bare-newline",
            Close::ForeignProtocol => "foreign-protocol",
            Close::Pipelining => "unauthorized-pipelining",
            Close::Shutdown => "shutdown",
            Close::TlsFailed => "tls-failed",
            Close::RateLimited => "rate-limited",
        }
    }
}

/// What the command loop asks of its caller.
enum Flow {
    Close(Close),
    StartTls,
}

/// The transaction between MAIL and the end of DATA.
struct Transaction {
    from: ReversePath,
    standing: SenderStanding,
    params: MailParams,
    rcpts: Vec<(String, RcptKind)>,
    bdat: Option<BdatReader>,
    /// The governor's key of a relaying agency sender (lowercased address),
    /// made once at MAIL for every RCPT of the transaction.
    sender_key: Option<String>,
    /// The part of a BDAT message already on disk (kept across chunks).
    spool: Option<Spool>,
}

/// One client's state, from greeting to close; the stream is not part of
/// it (STARTTLS swaps the stream under the same session).
struct Session {
    gw: Arc<Gateway>,
    /// The configuration in force when the session began: a reload applies
    /// to the next session, so that what EHLO announced (SIZE) still holds.
    cfg: Arc<Config>,
    peer: SocketAddr,
    id: String,
    helo: Option<String>,
    esmtp: bool,
    tls: Option<String>,
    txn: Option<Transaction>,
    lines: LineBuffer,
    out: Vec<u8>,
    errors: u32,
    deadline: Instant,
    rec: ConnectionRecord,
    /// Number of the next transaction, for Received `id`.
    txn_seq: u32,
    /// Turns true when the gateway shuts down: the session answers
    /// `421 4.3.2` instead of reading on (a message already read to its end
    /// is queued and answered first).
    stop: watch::Receiver<bool>,
    /// The session in the metrics (started, active, its outcome).
    tally: crate::metrics::SessionTally,
}

impl Session {
    fn new(gw: Arc<Gateway>, peer: SocketAddr, id: String, stop: watch::Receiver<bool>) -> Session {
        let now = Utc::now();
        let cfg = gw.cfg.current();
        let deadline = Instant::now() + cfg.smtp.session_timeout.0;
        let max_line = cfg.smtp.max_line_length;
        Session {
            rec: ConnectionRecord {
                session: id.clone(),
                peer: peer.to_string(),
                ehlo: None,
                tls: None,
                domains: Vec::new(),
                claimed: Vec::new(),
                mail_count: 0,
                rcpt_count: 0,
                messages: 0,
                queue_ids: Vec::new(),
                refusals: Vec::new(),
                started_at: now,
                ended_at: now,
                bytes_in: 0,
                bytes_out: 0,
                close: String::new(),
            },
            gw,
            cfg,
            peer,
            id,
            helo: None,
            esmtp: false,
            tls: None,
            txn: None,
            lines: LineBuffer::new(max_line),
            // Grows with the first replies; an idle session keeps only what its greeting took.
            out: Vec::new(),
            errors: 0,
            deadline,
            txn_seq: 0,
            tally: crate::metrics::SessionTally::start(),
            stop,
        }
    }

    fn finish(mut self, close: Close) {
        self.rec.ended_at = Utc::now();
        self.rec.close = close.as_str().into();
        self.rec.ehlo = self.helo.clone();
        self.rec.tls = self.tls.clone();
        self.tally.end(crate::metrics::SessionEnd {
            close: close.as_str(),
            messages: self.rec.messages,
            mail_commands: self.rec.mail_count,
            rcpt_commands: self.rec.rcpt_count,
        });
        tracing::info!(
            close = close.as_str(),
            messages = self.rec.messages,
            bytes_in = self.rec.bytes_in,
            "session ended"
        );
        self.gw.connlog.record(self.rec);
    }

    /// Greets, then answers commands until the session ends; at STARTTLS
    /// the stream is swapped for TLS over it and the loop starts over.
    async fn serve<S: ClientStream>(&mut self, stream: S) -> Close {
        let mut conn = Conn::Plain(stream);
        if let Err(close) = self.greet() {
            let _ = self.flush(&mut conn).await;
            return close;
        }
        loop {
            match self.command_loop(&mut conn).await {
                Flow::Close(c) => {
                    let _ = self.flush(&mut conn).await;
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn.shutdown()).await;
                    return c;
                }
                Flow::StartTls => {
                    if self.flush(&mut conn).await.is_err() {
                        return Close::IoError;
                    }
                    conn = match Box::pin(self.upgrade(conn)).await {
                        Ok(tls) => tls,
                        Err(close) => return close,
                    };
                }
            }
        }
    }

    /// Reads and answers command lines until the session ends or STARTTLS
    /// asks for the upgrade.
    async fn command_loop<S: ClientStream>(&mut self, conn: &mut Conn<S>) -> Flow {
        // Small until a read fills it: an idle session (10,000 of them must
        // fit in 200 MB, 50,000 should) holds 256 bytes here, a pipelining
        // client grows it to 16 KiB within a few reads.
        let mut buf = vec![0u8; READ_BUF_MIN];
        // A total deadline per command line, not per read: a client that
        // trickles one byte a second (slowloris) is cut off all the same.
        let timeout = self.cfg.smtp.command_timeout.0;
        let mut deadline = Instant::now() + timeout;
        loop {
            while let Some(item) = self.lines.next_line() {
                let line = match item {
                    Ok(l) => l,
                    Err(LineError::BareNewline) => {
                        self.reply(Reply::new(
                            521,
                            "5.5.2",
                            "bare CR or LF in command; closing connection",
                        ));
                        return Flow::Close(Close::Smuggling);
                    }
                    Err(LineError::TooLong) => {
                        if let Some(f) = self.error(Reply::new(500, "5.5.2", "line too long")) {
                            return f;
                        }
                        deadline = Instant::now() + timeout;
                        continue;
                    }
                };
                // Boxed: the verbs' futures (the DATA path above all) are large and
                // live only while a command runs; inline, every idle session would
                // carry their size (about 13 KiB) for its whole life.
                if let Some(flow) = Box::pin(self.command(&line, conn)).await {
                    return flow;
                }
                deadline = Instant::now() + timeout;
            }
            let n = match self.read_more(conn, &mut buf, deadline).await {
                Ok(n) => n,
                Err(c) => return Flow::Close(c),
            };
            self.lines.push(&buf[..n]);
            if n == buf.len() && buf.len() < READ_BUF_MAX {
                buf.resize(buf.len() * 2, 0);
            }
            // A line that cannot start a command (a TLS ClientHello, binary
            // junk) never ends with CRLF: drop the client at once rather than
            // at the deadline, as parse_command would at the line's end.
            if self
                .lines
                .line_start()
                .is_some_and(|b| !b.is_ascii_alphabetic() && b != b'\r' && b != b'\n')
            {
                tracing::info!("foreign protocol on the SMTP port; closing");
                return Flow::Close(Close::ForeignProtocol);
            }
        }
    }

    /// Handles one command line; `Some` ends the command loop. The
    /// refusals it caused are logged with the line (sanitised, cut).
    async fn command<S: ClientStream>(&mut self, line: &[u8], conn: &mut Conn<S>) -> Option<Flow> {
        let first = self.rec.refusals.len();
        let flow = self.dispatch(line, conn).await;
        if self.rec.refusals.len() > first {
            let logged = logged_command(line);
            for r in &mut self.rec.refusals[first..] {
                r.command.clone_from(&logged);
            }
        }
        flow
    }

    /// Parses one command line and runs its verb.
    async fn dispatch<S: ClientStream>(&mut self, line: &[u8], conn: &mut Conn<S>) -> Option<Flow> {
        let cmd = match parse_command(line) {
            Ok(c) => c,
            Err(CommandError::ForeignProtocol) => {
                tracing::info!("foreign protocol on the SMTP port; closing");
                return Some(Flow::Close(Close::ForeignProtocol));
            }
            Err(e) => return self.error(e.reply()),
        };
        // Commands sent ahead of time where the client could not know that
        // pipelining is allowed (before the EHLO reply, in HELO sessions, or
        // message text before the 354): the smuggling and injection attacks
        // rely on it (Postfix's smtpd_forbid_unauth_pipelining).
        let ahead = !self.lines.is_empty()
            && (!self.esmtp || matches!(cmd, Command::Data))
            && !matches!(cmd, Command::Quit);
        if ahead {
            tracing::info!("improper command pipelining; closing");
            self.reply(Reply::new(
                503,
                "5.5.0",
                "improper use of SMTP command pipelining; closing connection",
            ));
            return Some(Flow::Close(Close::Pipelining));
        }
        match cmd {
            Command::Ehlo(name) => self.ehlo(name, true),
            Command::Helo(name) => self.ehlo(name, false),
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to, .. } => self.rcpt(to).await,
            Command::Data => self.data(conn).await,
            Command::Bdat { size, last } => self.bdat(conn, size, last).await,
            Command::StartTls => self.starttls(),
            Command::Rset => self.rset(),
            Command::Noop => self.noop(),
            Command::Quit => self.quit(),
            Command::Help => self.help(),
            Command::Vrfy => self.vrfy(),
            Command::Expn => self.expn(),
            Command::Auth => self.auth(),
            Command::Unknown(_) => self.unknown(),
        }
    }
}
