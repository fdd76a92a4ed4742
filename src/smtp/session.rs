//! One SMTP session, from greeting to QUIT: the state machine that ties the
//! pure parsers to the socket, asks the policy at MAIL and RCPT, and hands
//! accepted messages to the queue.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use chrono::Utc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

use super::Gateway;
use super::command::{Command, CommandError, MailParams, parse_command};
use super::data::{BdatReader, DataLimits, DataOutcome, DataReader, FramingError};
use super::line::{LineBuffer, LineError};
use super::spool::{Spool, SpoolError};
use crate::address::{ForwardPath, ReversePath};
use crate::policy::{self, MailVerdict, RcptKind, RcptVerdict, SenderStanding};
use crate::reply::Reply;
use crate::store::connections::{ConnectionRecord, Refusal};

/// Most refusals kept in one connection record.
const MAX_REFUSALS_LOGGED: usize = 50;

/// Runs one session to its end and records it in the connection log.
pub async fn run(
    gw: Arc<Gateway>,
    stream: TcpStream,
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

fn session_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{:x}{:04x}", crate::store::now_ms(), n & 0xffff)
}

/// The client connection, plain or after STARTTLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
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

struct Session {
    gw: Arc<Gateway>,
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
        let deadline = Instant::now() + gw.cfg.smtp.session_timeout.0;
        let max_line = gw.cfg.smtp.max_line_length;
        Session {
            rec: ConnectionRecord {
                session: id.clone(),
                peer: peer.to_string(),
                ehlo: None,
                tls: None,
                domains: Vec::new(),
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
            peer,
            id,
            helo: None,
            esmtp: false,
            tls: None,
            txn: None,
            lines: LineBuffer::new(max_line),
            out: Vec::with_capacity(512),
            errors: 0,
            deadline,
            txn_seq: 0,
            stop,
            tally: crate::metrics::SessionTally::start(),
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

    async fn serve(&mut self, stream: TcpStream) -> Close {
        let mut conn = Conn::Plain(stream);
        let host = self.gw.cfg.server.hostname.clone();
        // Connections per client IP (governor): 421 instead of the greeting.
        if let Err(r) = self.gw.governor.check_connection(self.peer.ip()) {
            tracing::info!(reason = %r.first_line(), "connection rate-limited");
            self.reply(r);
            let _ = self.flush(&mut conn).await;
            return Close::RateLimited;
        }
        // RFC 5321 4.2: the greeting starts with the server's name, so no
        // enhanced status code before it (scanners read the first word).
        self.reply(Reply::new(220, "", format!("{host} ESMTP ugem ready")));
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
                    let Conn::Plain(tcp) = conn else {
                        return Close::TlsFailed;
                    };
                    let Some(cfg) = self.gw.tls.current() else {
                        return Close::TlsFailed;
                    };
                    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                    let hs = tokio::time::timeout(
                        self.gw.cfg.smtp.tls_handshake_timeout.0,
                        acceptor.accept(tcp),
                    )
                    .await;
                    match hs {
                        Ok(Ok(tls)) => {
                            let desc = crate::tls::describe(tls.get_ref().1);
                            tracing::info!(tls = %desc, "TLS established");
                            self.tls = Some(desc);
                            conn = Conn::Tls(Box::new(tls));
                            // RFC 3207: forget everything learnt before TLS.
                            self.helo = None;
                            self.esmtp = false;
                            self.txn = None;
                        }
                        Ok(Err(e)) => {
                            tracing::info!(error = %e, "TLS handshake failed");
                            return Close::TlsFailed;
                        }
                        Err(_) => return Close::Timeout,
                    }
                }
            }
        }
    }

    /// Queues a reply; replies go out together before the next read, so a
    /// pipelined batch gets its answers in one write.
    fn reply(&mut self, r: Reply) {
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
    fn error(&mut self, r: Reply) -> Option<Flow> {
        self.reply(r);
        self.errors += 1;
        if self.errors >= self.gw.cfg.smtp.max_errors {
            self.reply(Reply::new(
                421,
                "4.7.0",
                "too many errors, closing connection",
            ));
            return Some(Flow::Close(Close::TooManyErrors));
        }
        None
    }

    async fn flush(&mut self, conn: &mut Conn) -> std::io::Result<()> {
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
    async fn read_more(
        &mut self,
        conn: &mut Conn,
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

    async fn command_loop(&mut self, conn: &mut Conn) -> Flow {
        let mut buf = vec![0u8; 16 * 1024];
        // A total deadline per command line, not per read: a client that
        // trickles one byte a second (slowloris) is cut off all the same.
        let timeout = self.gw.cfg.smtp.command_timeout.0;
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
                if let Some(flow) = self.command(&line, conn).await {
                    return flow;
                }
                deadline = Instant::now() + timeout;
            }
            let n = match self.read_more(conn, &mut buf, deadline).await {
                Ok(n) => n,
                Err(c) => return Flow::Close(c),
            };
            self.lines.push(&buf[..n]);
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

    /// Handles one command line; `Some` ends the command loop.
    async fn command(&mut self, line: &[u8], conn: &mut Conn) -> Option<Flow> {
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
            Command::Mail { from, params } => return self.mail(from, params),
            Command::Rcpt { to, .. } => return self.rcpt(to).await,
            Command::Data => return self.data(conn).await,
            Command::Bdat { size, last } => return self.bdat(conn, size, last).await,
            Command::Rset => {
                self.txn = None;
                self.reply(Reply::new(250, "2.0.0", "reset"));
            }
            Command::Noop => self.reply(Reply::new(250, "2.0.0", "OK")),
            Command::Quit => {
                self.reply(Reply::new(221, "2.0.0", "bye"));
                return Some(Flow::Close(Close::Quit));
            }
            Command::Help => self.reply(Reply::new(
                214,
                "2.0.0",
                "commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP STARTTLS",
            )),
            Command::Vrfy => self.reply(Reply::new(
                252,
                "2.5.2",
                "cannot verify addresses; send the message and delivery will be attempted",
            )),
            Command::Expn => return self.error(Reply::new(502, "5.5.1", "EXPN is not available")),
            Command::Auth => {
                return self.error(Reply::new(502, "5.5.1", "AUTH is not offered here"));
            }
            Command::StartTls => return self.starttls(),
            Command::Unknown(_) => {
                return self.error(Reply::new(500, "5.5.1", "command not recognized"));
            }
        }
        None
    }

    fn ehlo(&mut self, name: String, esmtp: bool) {
        self.txn = None;
        self.helo = Some(name.clone());
        self.esmtp = esmtp;
        let host = &self.gw.cfg.server.hostname;
        let greet = format!(
            "{host} greets {name} [{}]",
            policy::canonical_ip(self.peer.ip())
        );
        if !esmtp {
            self.reply(Reply::new(250, "", greet));
            return;
        }
        let mut lines = vec![
            greet,
            "PIPELINING".to_string(),
            format!("SIZE {}", self.gw.cfg.smtp.max_message_size.0),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
            "CHUNKING".into(),
        ];
        if self.tls.is_none() && self.gw.tls.current().is_some() {
            lines.push("STARTTLS".into());
        }
        lines.push("HELP".into());
        self.reply(Reply::multi(250, "", lines));
    }

    fn starttls(&mut self) -> Option<Flow> {
        if self.tls.is_some() {
            return self.error(Reply::new(503, "5.5.1", "TLS is already active"));
        }
        if self.gw.tls.current().is_none() {
            return self.error(Reply::new(502, "5.5.1", "STARTTLS is not offered here"));
        }
        if self.helo.is_none() {
            return self.error(Reply::new(503, "5.5.1", "send EHLO first"));
        }
        // Anything pipelined after STARTTLS was sent in the clear: drop it
        // (the STARTTLS command-injection attack).
        let dropped = self.lines.take_rest();
        if !dropped.is_empty() {
            tracing::info!(
                bytes = dropped.len(),
                "discarded plaintext pipelined after STARTTLS"
            );
        }
        self.reply(Reply::new(220, "2.0.0", "ready to start TLS"));
        Some(Flow::StartTls)
    }

    fn mail(&mut self, from: ReversePath, params: MailParams) -> Option<Flow> {
        self.rec.mail_count += 1;
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
        let max = self.gw.cfg.smtp.max_message_size.0;
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
        let postmaster = self.gw.cfg.server.postmaster.to_string();
        match policy::mail_verdict(&snap, self.peer.ip(), &from, &postmaster) {
            MailVerdict::Refuse(r) => {
                tracing::info!(from = %from, code = r.code, reason = %r.first_line(), "MAIL refused");
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

    fn note_domain(&mut self, d: &str) {
        if !self.rec.domains.iter().any(|x| x == d) {
            self.rec.domains.push(d.to_string());
        }
    }

    async fn rcpt(&mut self, to: ForwardPath) -> Option<Flow> {
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
        if txn.rcpts.len() >= self.gw.cfg.smtp.max_recipients {
            // Not an error: the client sends the rest in another transaction.
            self.reply(Reply::new(452, "4.5.3", "too many recipients"));
            return None;
        }
        let snap = self.gw.registry.snapshot();
        match policy::rcpt_verdict(&snap, &txn.standing, &to, &self.gw.cfg.server.hostname) {
            RcptVerdict::Refuse(r) => {
                tracing::info!(to = %to, code = r.code, "RCPT refused");
                self.error(r)
            }
            RcptVerdict::Accept(kind) => {
                let address = match (&kind, &to) {
                    (RcptKind::Postmaster, _) => self.gw.cfg.server.postmaster.to_string(),
                    (_, ForwardPath::Mailbox(mb)) => mb.to_string(),
                    (_, ForwardPath::Postmaster) => self.gw.cfg.server.postmaster.to_string(),
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
        let dc = &self.gw.cfg.delivery;
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
                if self.gw.cfg.smtp.verify_unsettled == crate::config::VerifyUnsettled::Defer =>
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

    fn data_limits(&self) -> DataLimits {
        let c = &self.gw.cfg.smtp;
        DataLimits {
            max_size: c.max_message_size.0,
            max_header_size: c.max_header_size.0,
            max_line_length: c.max_data_line_length,
        }
    }

    async fn data(&mut self, conn: &mut Conn) -> Option<Flow> {
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

    async fn bdat(&mut self, conn: &mut Conn, size: u64, last: bool) -> Option<Flow> {
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

    /// Checks a complete message and queues it; replies 250 only once it is
    /// on disk. `body` is what the reader still holds: all of the message,
    /// or its tail when the rest went to `spool`.
    async fn end_of_message(
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
        if info.received_headers > self.gw.cfg.smtp.max_received_headers {
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
            message_id: (outbound && !info.has_message_id).then(|| {
                format!(
                    "{}.{}@{}",
                    self.id, self.txn_seq, self.gw.cfg.server.hostname
                )
            }),
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
        let queued = crate::prepare::enqueue(&self.gw.queue, env, origin, content).await;
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
            host = self.gw.cfg.server.hostname,
            id = self.id,
            seq = self.txn_seq,
        )
    }
}

/// The reply to message data whose framing broke; the session closes after
/// it. Bare CR or LF: `521 5.5.2` (an SMTP smuggling attempt, the line ends
/// can no longer be trusted). NUL: `554 5.6.0`, its own reason (RFC 5322
/// text excludes it; `<CR><LF>NUL.<CR><LF>` is a known smuggling variant).
fn framing_reply(f: Option<FramingError>) -> Reply {
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

/// `421 4.3.2`: the gateway is stopping; the client keeps its mail.
fn shutting_down() -> Reply {
    Reply::new(421, "4.3.2", "gateway shutting down, try again later")
}
