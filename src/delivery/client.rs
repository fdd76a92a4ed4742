//! The outbound SMTP client: one connection to one target host, carrying one
//! or more messages. It says EHLO (HELO if refused), upgrades with STARTTLS
//! per [`TlsPolicy`], pipelines MAIL and RCPT when offered, honours SIZE, and
//! reports a result per recipient.
//!
//! mail-send 0.7 provides the transport: `SmtpClient::connect` (TCP with a
//! timeout) and `SmtpClient::into_tls` (the TLS handshake, its errors
//! mapped). The SMTP dialogue is written here, one level lower, because of
//! what mail-send does (read in its source and tried against a hostile feed):
//! - Its reply reader (smtp-proto's `ResponseReceiver`) caps reply text at
//!   4096 octets, but empty continuation lines (`250-\r\n` over and over) grow
//!   its buffer without bound (6 MB of them were taken without an error); only
//!   the command timeout would end it (attacks.md F1). [`parse_reply`] bounds
//!   the line length, the line count and the reply size.
//! - `read()` throws away whatever follows the first reply in a read, so
//!   replies that arrive together desynchronise the session. This reader
//!   keeps its buffer, which also lets it refuse plaintext queued behind the
//!   STARTTLS 220 (the CVE-2011-0411 injection).
//! - `data()` does not stuff a '.' that is the message's first octet (a
//!   message starting with `.\r\n` would end DATA and turn the rest into
//!   commands), uses one timeout for the whole message and writes tiny
//!   pieces. Here the message is checked first (CRLF only, no NUL, lines of
//!   at most 998 octets: attacks.md D3), stuffed, and written in blocks with
//!   the RFC 5321 §4.5.3.2 timeouts per block and for the final reply.
//! - `send()` stops at the first refused RCPT, and the builder cannot fall
//!   back from STARTTLS to plaintext.

use std::fmt;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mail_send::SmtpClient;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::outcome::{Class, classify};
use crate::reply::Enhanced;

/// Longest reply line accepted, LF included. RFC 5321 §4.5.3.1.5 says 512;
/// real servers exceed it a little, hostile ones by megabytes.
pub const MAX_REPLY_LINE: usize = 2048;
/// Most lines in one (multi-line) reply; an EHLO reply has about 20.
pub const MAX_REPLY_LINES: usize = 100;
/// Most octets in one reply, all lines together.
pub const MAX_REPLY_SIZE: usize = 32 * 1024;
/// Longest text line in a message, CRLF excluded (RFC 5322 §2.1.1).
pub const MAX_LINE_LENGTH: usize = 998;
/// Recipients per pipelined batch: bounds what waits unread on both sides.
const PIPELINE_BATCH: usize = 100;
/// Octets per write while sending a message; each write gets
/// `data_block` to complete.
const WRITE_BLOCK: usize = 64 * 1024;
/// How much of a reply's text goes into a result or error message.
const MAX_REPLY_TEXT: usize = 900;

/// The host to talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The name used for TLS (SNI and certificate check): the MX name, or the IP as text.
    pub host: String,
    /// The address to connect to.
    pub addr: SocketAddr,
}

impl From<&super::route::Target> for Target {
    fn from(t: &super::route::Target) -> Target {
        Target {
            host: t.host.clone(),
            addr: t.addr,
        }
    }
}

// The policy is a configuration value (`[delivery] tls`), so it lives on
// the ground floor; re-exported here where the client uses it.
pub use crate::values::TlsPolicy;

/// Client timeouts; the defaults are RFC 5321 §4.5.3.2's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect (30 s).
    pub connect: Duration,
    /// The 220 greeting (5 min).
    pub greeting: Duration,
    /// Each reply to EHLO, STARTTLS (and its handshake), RSET, MAIL, RCPT (5 min).
    pub command: Duration,
    /// The 354 reply to DATA (2 min).
    pub data_init: Duration,
    /// Each block of message data written (3 min).
    pub data_block: Duration,
    /// The reply after the final dot (10 min).
    pub data_end: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            greeting: Duration::from_secs(300),
            command: Duration::from_secs(300),
            data_init: Duration::from_secs(120),
            data_block: Duration::from_secs(180),
            data_end: Duration::from_secs(600),
        }
    }
}

/// How the client behaves; one value serves every connection.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The EHLO/HELO name (`server.hostname`).
    pub helo: String,
    /// The STARTTLS policy.
    pub tls: TlsPolicy,
    /// Timeouts per phase.
    pub timeouts: Timeouts,
    /// Trust anchors added to the system's (tests use a private CA).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Told our address of every TCP connection made, before the greeting
    /// (a greeting may already be a blocklist refusal naming it).
    pub on_connect: Option<SourceHook>,
}

/// A callback for the source address of outbound connections.
#[derive(Clone)]
pub struct SourceHook(pub Arc<dyn Fn(std::net::IpAddr) + Send + Sync>);

impl fmt::Debug for SourceHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SourceHook")
    }
}

impl ClientSettings {
    /// Defaults: policy `May`, RFC timeouts, system roots only.
    pub fn new(helo: impl Into<String>) -> ClientSettings {
        ClientSettings {
            helo: helo.into(),
            tls: TlsPolicy::May,
            timeouts: Timeouts::default(),
            extra_roots: Vec::new(),
            on_connect: None,
        }
    }
}

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

    fn from_class(class: Class, reply: String) -> RcptResult {
        match class {
            Class::Success => RcptResult::Delivered { reply },
            Class::Temporary => RcptResult::Deferred { reply },
            Class::Permanent => RcptResult::Failed { reply },
        }
    }
}

/// Where in the dialogue something went wrong (for error texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Opening the TCP connection.
    Connect,
    /// Waiting for the 220 greeting.
    Greeting,
    /// EHLO.
    Ehlo,
    /// HELO (after EHLO was refused).
    Helo,
    /// STARTTLS and the handshake.
    StartTls,
    /// RSET before a further message.
    Rset,
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// DATA, waiting for 354.
    Data,
    /// Writing the message.
    Message,
    /// Waiting for the reply to the final dot.
    DataEnd,
    /// QUIT.
    Quit,
}

impl Stage {
    /// "EHLO", "RCPT TO", "end of data", ...
    fn name(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Greeting => "the greeting",
            Stage::Ehlo => "EHLO",
            Stage::Helo => "HELO",
            Stage::StartTls => "STARTTLS",
            Stage::Rset => "RSET",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Message => "the message",
            Stage::DataEnd => "end of data",
            Stage::Quit => "QUIT",
        }
    }
}

impl fmt::Display for Stage {
    /// "waiting for the greeting", "after RCPT TO", "while sending the message".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Connect => f.write_str("while connecting"),
            Stage::Greeting => f.write_str("waiting for the greeting"),
            Stage::Message => f.write_str("while sending the message"),
            other => write!(f, "after {}", other.name()),
        }
    }
}

/// Why a reply could not be read (the server's fault, not ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A line longer than [`MAX_REPLY_LINE`].
    #[error("reply line longer than {MAX_REPLY_LINE} octets")]
    LineTooLong,
    /// More than [`MAX_REPLY_LINES`] lines.
    #[error("reply of more than {MAX_REPLY_LINES} lines")]
    TooManyLines,
    /// More than [`MAX_REPLY_SIZE`] octets.
    #[error("reply larger than {MAX_REPLY_SIZE} octets")]
    TooLarge,
    /// Not three digits from 2xx to 5xx at the start of a line.
    #[error("reply without a valid code")]
    BadCode,
    /// A code followed by something other than space, '-' or the line end.
    #[error("reply with a bad separator after the code")]
    BadSeparator,
}

/// Why a connection could not be opened or a message not sent. Connection
/// problems are temporary (the recipients are deferred); the text starts
/// with an enhanced status code or the remote's reply, for queue records
/// and DSNs.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// TCP connect failed.
    #[error("4.4.1 cannot connect: {source}")]
    Connect {
        /// The socket error.
        source: std::io::Error,
    },
    /// A phase took longer than its timeout.
    #[error("{} timeout {stage}", if *stage == Stage::Connect { "4.4.1" } else { "4.4.2" })]
    Timeout {
        /// Where.
        stage: Stage,
    },
    /// A read or write failed.
    #[error("4.4.2 connection lost {stage}: {source}")]
    Io {
        /// Where.
        stage: Stage,
        /// The socket error.
        source: std::io::Error,
    },
    /// The remote closed the connection.
    #[error("4.4.2 connection closed by the remote {stage}")]
    Closed {
        /// Where.
        stage: Stage,
    },
    /// The remote sent something that is not a valid reply.
    #[error("4.5.0 bad reply {stage}: {why}")]
    BadReply {
        /// Where.
        stage: Stage,
        /// What was wrong with it.
        why: ReplyError,
    },
    /// The remote refused the session (greeting, EHLO/HELO, RSET).
    #[error("{reply} (in reply to {})", stage.name())]
    Refused {
        /// Where.
        stage: Stage,
        /// What it said.
        reply: RemoteReply,
    },
    /// A reply that makes no sense at that point (a 250 to DATA, say).
    #[error("4.5.0 protocol error {stage}: unexpected reply {reply}")]
    Protocol {
        /// Where.
        stage: Stage,
        /// What it said.
        reply: RemoteReply,
    },
    /// The policy requires TLS and the remote does not offer or refuses STARTTLS.
    #[error("4.7.4 TLS required but STARTTLS {}", match reply {
        Some(r) => format!("refused: {r}"),
        None => "not offered".to_string(),
    })]
    TlsRequired {
        /// The refusal, if STARTTLS was tried.
        reply: Option<RemoteReply>,
    },
    /// The TLS handshake or certificate check failed.
    #[error("4.7.5 TLS failed: {reason}")]
    Tls {
        /// The TLS library's words.
        reason: String,
    },
    /// Something local is misconfigured (HELO name, no trust anchors).
    #[error("4.3.5 local configuration: {0}")]
    Setup(String),
    /// The connection failed or was closed by the remote earlier.
    #[error("4.4.2 connection no longer usable")]
    Unusable,
}

impl ConnError {
    /// True when the remote refused the session with a 5xx (greeting,
    /// EHLO/HELO): this host will not take mail from us. It is permanent for
    /// that host only; like Postfix (`smtp_skip_5xx_greeting`), callers try
    /// the next MX and otherwise defer, never bounce on it alone.
    pub fn is_permanent(&self) -> bool {
        matches!(self, ConnError::Refused { reply, .. } if reply.code >= 500)
    }
}

/// A reply from the remote server, its text sanitised (printable ASCII only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteReply {
    /// The three-digit code.
    pub code: u16,
    /// The enhanced status code of the first line, if it had one matching the code's class.
    pub enhanced: Option<Enhanced>,
    /// The text of each line, without code and enhanced code.
    pub lines: Vec<String>,
}

impl RemoteReply {
    /// Done, retry, or bounce.
    pub fn class(&self) -> Class {
        classify(self.code, None)
    }
}

impl fmt::Display for RemoteReply {
    /// `550 5.1.1 user unknown`; lines joined by a space, the text bounded.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = format!("{}", self.code);
        if let Some(e) = self.enhanced {
            let _ = write!(out, " {e}");
        }
        for line in self.lines.iter().filter(|l| !l.is_empty()) {
            out.push(' ');
            out.push_str(line);
            if out.len() > MAX_REPLY_TEXT {
                break;
            }
        }
        if out.len() > MAX_REPLY_TEXT {
            // Text is ASCII (sanitised), so any index is a char boundary.
            out.truncate(MAX_REPLY_TEXT);
            out.push_str("...");
        }
        f.write_str(&out)
    }
}

/// Collects one reply line by line, within the limits.
#[derive(Debug, Default)]
struct ReplyBuilder {
    code: u16,
    enhanced: Option<Enhanced>,
    lines: Vec<String>,
    size: usize,
}

impl ReplyBuilder {
    /// Takes one line without its LF (a trailing CR is dropped); returns the
    /// reply once its last line has come.
    fn line(&mut self, raw: &[u8]) -> Result<Option<RemoteReply>, ReplyError> {
        self.size += raw.len() + 1;
        if raw.len() + 1 > MAX_REPLY_LINE {
            return Err(ReplyError::LineTooLong);
        }
        if self.size > MAX_REPLY_SIZE {
            return Err(ReplyError::TooLarge);
        }
        if self.lines.len() >= MAX_REPLY_LINES {
            return Err(ReplyError::TooManyLines);
        }
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let (code, rest) = match raw {
            [a @ b'2'..=b'5', b @ b'0'..=b'9', c @ b'0'..=b'9', rest @ ..] => (
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'),
                rest,
            ),
            _ => return Err(ReplyError::BadCode),
        };
        let (last, text) = match rest {
            [] => (true, &[][..]),
            [b' ', text @ ..] => (true, text),
            [b'-', text @ ..] => (false, text),
            _ => return Err(ReplyError::BadSeparator),
        };
        // RFC 5321 §4.2.1 wants the same code on every line; the first
        // line's code is the one that counts.
        if self.lines.is_empty() {
            self.code = code;
        }
        let mut text = sanitize(text);
        let class = (self.code / 100) as u8;
        let first_word = text.split(' ').next().unwrap_or("");
        match Enhanced::parse(first_word) {
            Some(e) if e.class == class && (self.lines.is_empty() || self.enhanced == Some(e)) => {
                if self.lines.is_empty() {
                    self.enhanced = Some(e);
                }
                text = text[first_word.len()..].trim_start().to_string();
            }
            _ => {}
        }
        self.lines.push(text);
        if !last {
            return Ok(None);
        }
        let done = std::mem::take(self);
        Ok(Some(RemoteReply {
            code: done.code,
            enhanced: done.enhanced,
            lines: done.lines,
        }))
    }
}

/// Printable ASCII stays, TAB becomes a space, anything else `?`: reply
/// text ends up in logs, queue records and DSNs.
fn sanitize(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            0x20..=0x7e => b as char,
            b'\t' => ' ',
            _ => '?',
        })
        .collect()
}

/// Parses the first complete reply at the start of `buf`: `Ok(None)` when
/// more bytes are needed, else the reply and how many bytes it used. Pure
/// and bounded (lines, line count, size), for fuzzing.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(RemoteReply, usize)>, ReplyError> {
    let mut builder = ReplyBuilder::default();
    let mut pos = 0;
    loop {
        let rest = &buf[pos..];
        let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
            if rest.len() >= MAX_REPLY_LINE {
                return Err(ReplyError::LineTooLong);
            }
            return Ok(None);
        };
        pos += lf + 1;
        if let Some(reply) = builder.line(&rest[..lf])? {
            return Ok(Some((reply, pos)));
        }
    }
}

/// The extensions the remote announced in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// SIZE: `Some(0)` offered without a limit, `Some(n)` the limit.
    pub size: Option<u64>,
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// STARTTLS (RFC 3207).
    pub starttls: bool,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// ENHANCEDSTATUSCODES (RFC 2034).
    pub enhanced_status_codes: bool,
}

impl Extensions {
    /// Reads the keywords of an EHLO reply (all lines after the first).
    pub fn from_ehlo(reply: &RemoteReply) -> Extensions {
        let mut ext = Extensions::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let keyword = words.next().unwrap_or("").to_ascii_uppercase();
            match keyword.as_str() {
                "SIZE" => ext.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "PIPELINING" => ext.pipelining = true,
                "STARTTLS" => ext.starttls = true,
                "8BITMIME" => ext.eight_bit_mime = true,
                "SMTPUTF8" => ext.smtputf8 = true,
                "ENHANCEDSTATUSCODES" => ext.enhanced_status_codes = true,
                _ => {}
            }
        }
        ext
    }
}

/// Checks a message before it goes out: CRLF line ends only, no NUL, no
/// line over 998 octets. The inbound side already refuses such content;
/// this keeps anything else (a bug, a damaged spool file, locally generated
/// mail) from ever being re-emitted (attacks.md D3: SMTP smuggling).
pub fn check_message(body: &[u8]) -> Result<(), &'static str> {
    let mut line_len = 0usize;
    let mut prev_cr = false;
    for &b in body {
        match b {
            b'\n' if prev_cr => line_len = 0,
            b'\n' => return Err("message has bare line endings"),
            _ if prev_cr => return Err("message has bare line endings"),
            b'\r' => {}
            0 => return Err("message contains a NUL octet"),
            _ => {
                line_len += 1;
                if line_len > MAX_LINE_LENGTH {
                    return Err("message has lines longer than 998 octets");
                }
            }
        }
        prev_cr = b == b'\r';
    }
    if prev_cr {
        return Err("message has bare line endings");
    }
    Ok(())
}

/// Dot-stuffs a checked message (RFC 5321 §4.5.2) block by block: every
/// line starting with '.' gets another, the first line included.
struct Stuffer<'a> {
    rest: &'a [u8],
}

impl Stuffer<'_> {
    /// Appends whole stuffed lines to `out` until it holds at least `block`
    /// octets or the message is used up; false once nothing is left.
    fn fill(&mut self, out: &mut Vec<u8>, block: usize) -> bool {
        while out.len() < block && !self.rest.is_empty() {
            let end = self
                .rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(self.rest.len(), |i| i + 1);
            let (line, rest) = self.rest.split_at(end);
            if line.first() == Some(&b'.') {
                out.push(b'.');
            }
            out.extend_from_slice(line);
            self.rest = rest;
        }
        !self.rest.is_empty()
    }
}

/// The message as it goes on the wire after DATA: stuffed, CRLF-terminated,
/// ended by `.\r\n`. Used by tests; sending streams the same bytes in blocks.
pub fn wire_form(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    let mut s = Stuffer { rest: body };
    while s.fill(&mut out, usize::MAX) {}
    finish_message(body, &mut out);
    out
}

/// The final CRLF (if the message lacks one) and the terminating dot.
fn finish_message(body: &[u8], out: &mut Vec<u8>) {
    if !body.is_empty() && !body.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

/// An address usable inside `<...>` on a command line: no control
/// characters, no angle brackets (they would end the path early).
fn valid_path(addr: &str) -> bool {
    addr.len() <= 512
        && !addr
            .bytes()
            .any(|b| b < 0x20 || b == 0x7f || b == b'<' || b == b'>')
}

/// The plaintext or TLS socket.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Between taking the TCP stream for the handshake and putting the TLS one back.
    Gone,
}

/// A socket with a read buffer and the reply being collected.
struct Wire {
    stream: Stream,
    buf: Vec<u8>,
    /// How far `buf` is known to hold no LF.
    scanned: usize,
    partial: ReplyBuilder,
}

fn io_error(stage: Stage, e: std::io::Error) -> ConnError {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => ConnError::Closed { stage },
        _ => ConnError::Io { stage, source: e },
    }
}

impl Wire {
    fn new(tcp: TcpStream) -> Wire {
        Wire {
            stream: Stream::Plain(tcp),
            buf: Vec::with_capacity(1024),
            scanned: 0,
            partial: ReplyBuilder::default(),
        }
    }

    /// Writes and flushes `bytes` within `limit`.
    async fn write(
        &mut self,
        bytes: &[u8],
        limit: Duration,
        stage: Stage,
    ) -> Result<(), ConnError> {
        let io = async {
            match &mut self.stream {
                Stream::Plain(s) => {
                    s.write_all(bytes).await?;
                    s.flush().await
                }
                Stream::Tls(s) => {
                    s.write_all(bytes).await?;
                    s.flush().await
                }
                Stream::Gone => Err(std::io::ErrorKind::NotConnected.into()),
            }
        };
        match tokio::time::timeout(limit, io).await {
            Err(_) => Err(ConnError::Timeout { stage }),
            Ok(Err(e)) => Err(io_error(stage, e)),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Reads the next reply; the whole reply must arrive within `limit`.
    async fn reply(&mut self, limit: Duration, stage: Stage) -> Result<RemoteReply, ConnError> {
        match tokio::time::timeout(limit, self.reply_inner(stage)).await {
            Err(_) => Err(ConnError::Timeout { stage }),
            Ok(r) => r,
        }
    }

    async fn reply_inner(&mut self, stage: Stage) -> Result<RemoteReply, ConnError> {
        let mut chunk = [0u8; 4096];
        loop {
            // Complete lines first: replies that came together stay in order.
            while let Some(i) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + i;
                let done = self.partial.line(&self.buf[..end]);
                self.buf.drain(..=end);
                self.scanned = 0;
                match done {
                    Ok(Some(reply)) => return Ok(reply),
                    Ok(None) => {}
                    Err(why) => return Err(ConnError::BadReply { stage, why }),
                }
            }
            self.scanned = self.buf.len();
            if self.buf.len() >= MAX_REPLY_LINE {
                return Err(ConnError::BadReply {
                    stage,
                    why: ReplyError::LineTooLong,
                });
            }
            let n = match &mut self.stream {
                Stream::Plain(s) => s.read(&mut chunk).await,
                Stream::Tls(s) => s.read(&mut chunk).await,
                Stream::Gone => Err(std::io::ErrorKind::NotConnected.into()),
            }
            .map_err(|e| io_error(stage, e))?;
            if n == 0 {
                return Err(ConnError::Closed { stage });
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends `cmd` and reads its reply.
    async fn command(
        &mut self,
        cmd: &str,
        limit: Duration,
        stage: Stage,
    ) -> Result<RemoteReply, ConnError> {
        self.write(cmd.as_bytes(), limit, stage).await?;
        self.reply(limit, stage).await
    }

    async fn shutdown(&mut self) {
        let close = async {
            match &mut self.stream {
                Stream::Plain(s) => s.shutdown().await,
                Stream::Tls(s) => s.shutdown().await,
                Stream::Gone => Ok(()),
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), close).await;
    }
}

/// One SMTP session with one host, reusable for several messages.
pub struct Connection {
    wire: Wire,
    ext: Extensions,
    remote: String,
    /// The host name it was opened for (MX name, next hop, or address text).
    host: String,
    /// The address it is connected to.
    addr: SocketAddr,
    tls: Option<String>,
    verified: bool,
    timeouts: Timeouts,
    /// A transaction was started: RSET before the next.
    used: bool,
    /// Broken or closed by the remote (an error, a 421): not to be reused.
    closing: bool,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("remote", &self.remote)
            .field("tls", &self.tls)
            .field("verified", &self.verified)
            .field("closing", &self.closing)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects, reads the greeting, says EHLO (HELO if refused) and
    /// upgrades with STARTTLS as the policy says. Under `May`, a failed
    /// handshake is followed by a new connection without STARTTLS.
    pub async fn open(target: &Target, s: &ClientSettings) -> Result<Connection, ConnError> {
        Self::open_as(target, s, s.tls).await
    }

    /// [`Connection::open`] under `policy` instead of the settings' own (a
    /// destination's entry in `[delivery.tls_policy]`).
    pub async fn open_as(
        target: &Target,
        s: &ClientSettings,
        policy: TlsPolicy,
    ) -> Result<Connection, ConnError> {
        match Self::open_with(target, s, policy).await {
            Err(e @ ConnError::Tls { .. }) if policy == TlsPolicy::May => {
                tracing::warn!(
                    remote = %target.addr, host = %target.host, error = %e,
                    "STARTTLS failed; delivering in plaintext (opportunistic TLS, RFC 7435)"
                );
                Self::open_with(target, s, TlsPolicy::None).await
            }
            other => other,
        }
    }

    async fn open_with(
        target: &Target,
        s: &ClientSettings,
        policy: TlsPolicy,
    ) -> Result<Connection, ConnError> {
        if s.helo.is_empty() || !s.helo.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConnError::Setup(format!("bad HELO name {:?}", s.helo)));
        }
        let t = s.timeouts;
        let tcp = match SmtpClient::connect(target.addr, t.connect).await {
            Ok(c) => c.stream,
            Err(mail_send::Error::Timeout) => {
                return Err(ConnError::Timeout {
                    stage: Stage::Connect,
                });
            }
            Err(mail_send::Error::Io(source)) => return Err(ConnError::Connect { source }),
            Err(e) => {
                return Err(ConnError::Connect {
                    source: std::io::Error::other(e.to_string()),
                });
            }
        };
        // Commands are written whole; Nagle would only hold back the last
        // small write (the final dot) for a delayed ACK.
        let _ = tcp.set_nodelay(true);
        if let (Some(hook), Ok(local)) = (&s.on_connect, tcp.local_addr()) {
            (hook.0)(local.ip());
        }
        let mut c = Connection {
            wire: Wire::new(tcp),
            ext: Extensions::default(),
            remote: format!("{} [{}]", target.host, target.addr.ip()),
            host: target.host.clone(),
            addr: target.addr,
            tls: None,
            verified: false,
            timeouts: t,
            used: false,
            closing: false,
        };
        let greeting = c.wire.reply(t.greeting, Stage::Greeting).await?;
        if greeting.class() != Class::Success {
            c.quit_quietly().await;
            return Err(ConnError::Refused {
                stage: Stage::Greeting,
                reply: greeting,
            });
        }
        c.hello(&s.helo).await?;
        if policy == TlsPolicy::None {
            return Ok(c);
        }
        if !c.ext.starttls {
            if policy == TlsPolicy::May {
                return Ok(c);
            }
            c.quit_quietly().await;
            return Err(ConnError::TlsRequired { reply: None });
        }
        let reply = c
            .wire
            .command("STARTTLS\r\n", t.command, Stage::StartTls)
            .await?;
        if reply.code != 220 {
            // The session goes on unchanged after a refused STARTTLS.
            if policy == TlsPolicy::May {
                tracing::info!(remote = %c.remote, reply = %reply, "STARTTLS refused; going on in plaintext");
                return Ok(c);
            }
            c.quit_quietly().await;
            return Err(ConnError::TlsRequired { reply: Some(reply) });
        }
        if !c.wire.buf.is_empty() {
            // Plaintext sent after the 220 would be read as if it came
            // through TLS (CVE-2011-0411): refuse the session.
            return Err(ConnError::Tls {
                reason: "data after the STARTTLS reply".into(),
            });
        }
        c.start_tls(target, s, policy).await?;
        c.hello(&s.helo).await?;
        Ok(c)
    }

    /// EHLO, or HELO when EHLO gets a 5xx; records the extensions.
    async fn hello(&mut self, name: &str) -> Result<(), ConnError> {
        let t = self.timeouts.command;
        let reply = self
            .wire
            .command(&format!("EHLO {name}\r\n"), t, Stage::Ehlo)
            .await?;
        if reply.class() == Class::Success {
            self.ext = Extensions::from_ehlo(&reply);
            return Ok(());
        }
        if reply.code < 500 {
            self.quit_quietly().await;
            return Err(ConnError::Refused {
                stage: Stage::Ehlo,
                reply,
            });
        }
        let reply = self
            .wire
            .command(&format!("HELO {name}\r\n"), t, Stage::Helo)
            .await?;
        if reply.class() != Class::Success {
            self.quit_quietly().await;
            return Err(ConnError::Refused {
                stage: Stage::Helo,
                reply,
            });
        }
        self.ext = Extensions::default();
        Ok(())
    }

    /// The TLS handshake on the plaintext socket (after the 220 to STARTTLS).
    async fn start_tls(
        &mut self,
        target: &Target,
        s: &ClientSettings,
        policy: TlsPolicy,
    ) -> Result<(), ConnError> {
        let host = target.host.trim_end_matches('.');
        // A name rustls cannot use (an underscore, say) is still good for
        // encryption: the IP then stands in, without SNI.
        let name = if ServerName::try_from(host).is_ok() {
            host.to_string()
        } else if policy == TlsPolicy::Verify {
            return Err(ConnError::Tls {
                reason: format!("{host:?} is not a name a certificate can be checked against"),
            });
        } else {
            target.addr.ip().to_string()
        };
        let (config, verdict) = tls_config(policy, &s.extra_roots)?;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.wire.stream, Stream::Gone) else {
            return Err(ConnError::Unusable);
        };
        let client = SmtpClient {
            stream: tcp,
            timeout: self.timeouts.command,
        };
        let tls = match client.into_tls(&TlsConnector::from(config), &name).await {
            Ok(tls) => tls,
            Err(mail_send::Error::Timeout) => {
                return Err(ConnError::Tls {
                    reason: "handshake timeout".into(),
                });
            }
            Err(e) => {
                return Err(ConnError::Tls {
                    reason: e.to_string(),
                });
            }
        };
        let description = describe(tls.tls_connection());
        self.verified = match &verdict {
            Some(v) => match &*v.verdict.lock().unwrap_or_else(|p| p.into_inner()) {
                Verdict::Verified => true,
                Verdict::Failed(why) => {
                    // Common and harmless under opportunistic TLS: said once
                    // a day per server at INFO, otherwise at DEBUG.
                    if first_word_today(&self.remote) {
                        tracing::info!(remote = %self.remote, reason = %why, "TLS certificate of this server not verified (opportunistic TLS: encrypting anyway; said once a day per server)");
                    } else {
                        tracing::debug!(remote = %self.remote, reason = %why, "TLS certificate not verified; encrypting anyway");
                    }
                    false
                }
                Verdict::NotChecked => false,
            },
            // The strict verifier: the handshake succeeding means it verified.
            None => true,
        };
        tracing::debug!(remote = %self.remote, tls = %description, verified = self.verified, "STARTTLS");
        self.tls = Some(description);
        self.wire.stream = Stream::Tls(Box::new(tls.stream));
        Ok(())
    }

    /// Address verification (like Postfix's `reject_unverified_recipient`):
    /// `MAIL FROM:<>` and `RCPT TO:<rcpt>`, nothing more; the transaction is
    /// left open for RSET or QUIT. Returns the reply to RCPT; a refused MAIL
    /// is an `Err` (it says nothing of the recipient).
    pub async fn probe(&mut self, rcpt: &str) -> Result<RemoteReply, ConnError> {
        if rcpt.is_empty() || !valid_path(rcpt) || (!rcpt.is_ascii() && !self.ext.smtputf8) {
            return Err(ConnError::Setup(format!("cannot probe {rcpt:?}")));
        }
        let r = self.probe_inner(rcpt).await;
        if r.is_err() {
            self.closing = true;
        }
        r
    }

    /// Starts a transaction: RSET first if the connection carried one.
    async fn begin(&mut self, t: Timeouts) -> Result<(), ConnError> {
        if self.used {
            let reply = self
                .wire
                .command("RSET\r\n", t.command, Stage::Rset)
                .await?;
            if reply.code != 250 {
                return Err(ConnError::Refused {
                    stage: Stage::Rset,
                    reply,
                });
            }
        }
        self.used = true;
        Ok(())
    }

    async fn probe_inner(&mut self, rcpt: &str) -> Result<RemoteReply, ConnError> {
        let t = self.timeouts;
        self.begin(t).await?;
        let mail = if rcpt.is_ascii() {
            "MAIL FROM:<>\r\n"
        } else {
            "MAIL FROM:<> SMTPUTF8\r\n"
        };
        let reply = self.wire.command(mail, t.command, Stage::Mail).await?;
        if reply.class() != Class::Success {
            // Says nothing of the recipient (the null sender refused, say).
            return Err(ConnError::Refused {
                stage: Stage::Mail,
                reply,
            });
        }
        self.wire
            .command(&format!("RCPT TO:<{rcpt}>\r\n"), t.command, Stage::Rcpt)
            .await
    }

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
    ) -> Result<Vec<RcptResult>, ConnError> {
        let mut results: Vec<Option<RcptResult>> = vec![None; rcpts.len()];
        let fail_rest = |results: &mut Vec<Option<RcptResult>>, reply: &str| {
            for r in results.iter_mut().filter(|r| r.is_none()) {
                *r = Some(RcptResult::Failed {
                    reply: reply.into(),
                });
            }
        };
        // Local checks: a message that can never go is not started.
        if let Err(why) = check_message(body) {
            tracing::error!(remote = %self.remote, reason = why, "refusing to send a malformed message");
            fail_rest(&mut results, &format!("5.6.0 {why}; not sent"));
        }
        if !valid_path(sender) {
            fail_rest(&mut results, "5.1.7 bad sender address; not sent");
        }
        if !sender.is_ascii() && !self.ext.smtputf8 {
            fail_rest(
                &mut results,
                "5.6.7 the sender address is not ASCII and the remote does not offer SMTPUTF8",
            );
        }
        if let Some(limit) = self.ext.size.filter(|&n| n > 0)
            && body.len() as u64 > limit
        {
            let reply = format!(
                "5.3.4 message size {} exceeds the remote's limit of {limit} (SIZE); not sent",
                body.len()
            );
            fail_rest(&mut results, &reply);
        }
        for (r, addr) in results.iter_mut().zip(rcpts) {
            if r.is_some() {
                continue;
            }
            if addr.is_empty() || !valid_path(addr) {
                *r = Some(RcptResult::Failed {
                    reply: "5.1.3 bad recipient address; not sent".into(),
                });
            } else if !addr.is_ascii() && !self.ext.smtputf8 {
                *r = Some(RcptResult::Failed {
                    reply: "5.6.7 the recipient address is not ASCII and the remote does not offer SMTPUTF8".into(),
                });
            }
        }
        let todo: Vec<usize> = (0..rcpts.len()).filter(|&i| results[i].is_none()).collect();
        if todo.is_empty() {
            return Ok(finish(results));
        }

        let t = self.timeouts;
        self.begin(t).await?;

        let mut mail = format!("MAIL FROM:<{sender}>");
        if self.ext.size.is_some() {
            let _ = write!(mail, " SIZE={}", body.len());
        }
        if self.ext.eight_bit_mime && !body.is_ascii() {
            mail.push_str(" BODY=8BITMIME");
        }
        if self.ext.smtputf8 && (!sender.is_ascii() || todo.iter().any(|&i| !rcpts[i].is_ascii())) {
            mail.push_str(" SMTPUTF8");
        }
        mail.push_str("\r\n");

        let mut accepted = Vec::new();
        let batch = if self.ext.pipelining {
            PIPELINE_BATCH
        } else {
            1
        };
        let mut mail_reply: Option<RemoteReply> = None;
        for (k, chunk) in todo.chunks(batch).enumerate() {
            let mut out = String::new();
            if k == 0 {
                out.push_str(&mail);
                if !self.ext.pipelining {
                    // Without PIPELINING, MAIL waits for its reply alone.
                    let reply = self.wire.command(&out, t.command, Stage::Mail).await?;
                    let ok = reply.class() == Class::Success;
                    mail_reply = Some(reply);
                    if !ok {
                        break;
                    }
                    out.clear();
                }
            }
            for &i in chunk {
                let _ = write!(out, "RCPT TO:<{}>\r\n", rcpts[i]);
            }
            self.wire
                .write(out.as_bytes(), t.command, Stage::Rcpt)
                .await?;
            if mail_reply.is_none() {
                mail_reply = Some(self.wire.reply(t.command, Stage::Mail).await?);
            }
            let mail_ok = mail_reply
                .as_ref()
                .is_some_and(|r| r.class() == Class::Success);
            for &i in chunk {
                let reply = match self.wire.reply(t.command, Stage::Rcpt).await {
                    Ok(r) => r,
                    // MAIL was refused; the RCPT replies (503s) do not
                    // matter and a server that hung up owes us none.
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
                    // Closing: the remaining RCPTs get no reply (deferred below).
                    self.closing = true;
                    results[i] = Some(RcptResult::Deferred {
                        reply: reply.to_string(),
                    });
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
                    results[i] = Some(RcptResult::from_class(class, reply.to_string()));
                }
            }
            if !mail_ok || self.closing {
                break;
            }
        }
        match &mail_reply {
            Some(r) if r.class() == Class::Success => {}
            Some(r) => {
                if r.code == 421 {
                    self.closing = true;
                }
                let text = r.to_string();
                let class = r.class();
                for &i in &todo {
                    results[i] = Some(RcptResult::from_class(class, text.clone()));
                }
                return Ok(finish(results));
            }
            None => return Err(ConnError::Unusable),
        }
        let deferred = |results: &mut Vec<Option<RcptResult>>, text: &str| {
            for &i in &todo {
                if results[i].is_none() {
                    results[i] = Some(RcptResult::Deferred { reply: text.into() });
                }
            }
        };
        if self.closing {
            // A 421 came in the middle of the RCPTs: the rest were not
            // answered, and the accepted ones get no DATA on this connection.
            deferred(&mut results, "421 4.4.2 remote closing the connection");
            return Ok(finish(results));
        }
        if accepted.is_empty() {
            return Ok(finish(results));
        }

        let reply = self
            .wire
            .command("DATA\r\n", t.data_init, Stage::Data)
            .await?;
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
            let text = reply.to_string();
            for &i in &accepted {
                results[i] = Some(RcptResult::from_class(class, text.clone()));
            }
            return Ok(finish(results));
        }
        self.write_message(body).await?;
        let reply = self.wire.reply(t.data_end, Stage::DataEnd).await?;
        if reply.code == 421 {
            self.closing = true;
        }
        let class = match reply.class() {
            // A 1xx/3xx after the dot is no answer; nothing is known.
            Class::Temporary if reply.code < 400 => {
                return Err(ConnError::Protocol {
                    stage: Stage::DataEnd,
                    reply,
                });
            }
            c => c,
        };
        let text = reply.to_string();
        for &i in &accepted {
            results[i] = Some(RcptResult::from_class(class, text.clone()));
        }
        Ok(finish(results))
    }

    /// Writes the stuffed message and the final dot, block by block.
    async fn write_message(&mut self, body: &[u8]) -> Result<(), ConnError> {
        let limit = self.timeouts.data_block;
        let mut block = Vec::with_capacity(WRITE_BLOCK.min(body.len()) + MAX_LINE_LENGTH + 8);
        let mut stuffer = Stuffer { rest: body };
        while stuffer.fill(&mut block, WRITE_BLOCK) {
            self.wire.write(&block, limit, Stage::Message).await?;
            block.clear();
        }
        // The last block carries the terminator: one write, no small trailing segment.
        finish_message(body, &mut block);
        self.wire.write(&block, limit, Stage::Message).await
    }

    /// The TLS protocol and cipher, e.g. `"TLSv1.3 TLS13_AES_256_GCM_SHA384"`,
    /// when the session is encrypted.
    pub fn tls(&self) -> Option<&str> {
        self.tls.as_deref()
    }

    /// Whether the certificate verified for the host name (false in plaintext).
    pub fn tls_verified(&self) -> bool {
        self.tls.is_some() && self.verified
    }

    /// The host name the connection was opened for.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `"mx.example.org [192.0.2.1]"`, for logs and DSNs (Remote-MTA).
    pub fn remote(&self) -> &str {
        &self.remote
    }

    /// The address the connection goes to.
    pub fn peer_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The extensions from the last EHLO.
    pub fn extensions(&self) -> &Extensions {
        &self.ext
    }

    /// False once the connection broke or the remote announced it is closing.
    pub fn is_usable(&self) -> bool {
        !self.closing
    }

    /// QUIT and close; errors do not matter any more.
    pub async fn quit(mut self) {
        self.quit_quietly().await;
    }

    async fn quit_quietly(&mut self) {
        if !self.closing {
            self.closing = true;
            let limit = self.timeouts.command.min(Duration::from_secs(10));
            if self
                .wire
                .write(b"QUIT\r\n", limit, Stage::Quit)
                .await
                .is_ok()
            {
                let _ = self.wire.reply(limit, Stage::Quit).await;
            }
        }
        self.wire.shutdown().await;
    }
}

/// Every recipient has a result by now; a gap would be a bug, so it is
/// deferred rather than lost.
fn finish(results: Vec<Option<RcptResult>>) -> Vec<RcptResult> {
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| RcptResult::Deferred {
                reply: "4.3.0 no result for this recipient".into(),
            })
        })
        .collect()
}

/// "TLSv1.3 TLS13_AES_256_GCM_SHA384", the same form the inbound side logs.
fn describe(conn: &rustls::ClientConnection) -> String {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(v) => format!("{v:?}"),
        None => "TLS".to_string(),
    };
    match conn.negotiated_cipher_suite() {
        Some(cs) => format!("{version} {:?}", cs.suite()),
        None => version,
    }
}

fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The system's trust anchors as a root store, built once from
/// [`crate::trust::system_certs`]; this also lets `May` record a failed
/// check instead of failing the handshake.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = RootCertStore::empty();
            store.add_parsable_certificates(crate::trust::system_certs().iter().cloned());
            if store.is_empty() {
                tracing::warn!("no system CA roots found: TLS policy `verify` cannot succeed");
            }
            Arc::new(store)
        })
        .clone()
}

/// The webpki verifier over the system roots plus `extra`; None when there
/// are no roots at all.
fn webpki(extra: &[CertificateDer<'static>]) -> Option<Arc<WebPkiServerVerifier>> {
    let roots = if extra.is_empty() {
        system_roots()
    } else {
        let mut store = (*system_roots()).clone();
        store.add_parsable_certificates(extra.iter().cloned());
        Arc::new(store)
    };
    WebPkiServerVerifier::builder_with_provider(roots, provider())
        .build()
        .ok()
}

/// The client TLS configuration for a policy. `Verify` uses the webpki
/// verifier as is; `May` and `Encrypt` use [`Opportunistic`], returned too so
/// that the caller can read whether the certificate verified.
fn tls_config(
    policy: TlsPolicy,
    extra: &[CertificateDer<'static>],
) -> Result<(Arc<ClientConfig>, Option<Arc<Opportunistic>>), ConnError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnError::Setup(format!("TLS: {e}")))?;
    if policy == TlsPolicy::Verify {
        let verifier =
            webpki(extra).ok_or_else(|| ConnError::Setup("no trusted CA roots".into()))?;
        let config = builder.with_webpki_verifier(verifier).with_no_client_auth();
        return Ok((Arc::new(config), None));
    }
    let verdict = Arc::new(Opportunistic {
        inner: webpki(extra),
        algorithms: provider().signature_verification_algorithms,
        verdict: Mutex::new(Verdict::NotChecked),
    });
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verdict.clone())
        .with_no_client_auth();
    Ok((Arc::new(config), Some(verdict)))
}

/// What the certificate check said.
/// A certificate verification failure in words (rustls's own error reads
/// like Rust: `Other(OtherError(CaUsedAsEndEntity))`).
fn certificate_problem(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::Expired | C::ExpiredContext { .. } => "the certificate has expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "the certificate is not valid yet".into()
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "the certificate does not name this server".into()
            }
            C::UnknownIssuer => {
                "the certificate is not signed by a trusted CA (self-signed or a private CA)".into()
            }
            C::Revoked => "the certificate was revoked".into(),
            C::BadSignature | C::BadEncoding => "the certificate is malformed".into(),
            C::Other(o) if format!("{o:?}").contains("CaUsedAsEndEntity") => {
                "the server presents a CA certificate as its own (self-signed CA)".into()
            }
            other => format!("the certificate was refused ({other:?})"),
        },
        other => other.to_string(),
    }
}

/// True the first time today that `remote` is named (bounded memory).
fn first_word_today(remote: &str) -> bool {
    static SEEN: std::sync::Mutex<Option<(u64, std::collections::HashSet<String>)>> =
        std::sync::Mutex::new(None);
    let day = crate::store::now_ms() / 86_400_000;
    let mut g = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    let (d, set) = g.get_or_insert_with(|| (day, Default::default()));
    if *d != day || set.len() >= 10_000 {
        *d = day;
        set.clear();
    }
    set.insert(remote.to_string())
}

#[derive(Debug)]
enum Verdict {
    NotChecked,
    Verified,
    Failed(String),
}

/// For `May` and `Encrypt`: checks the certificate like `Verify` would but
/// accepts it either way, recording the verdict. The handshake signatures
/// are still verified, so the peer must hold the certificate's key (an
/// unauthenticated but real TLS session, not mail-send's accept-anything
/// verifier that also skips signatures).
#[derive(Debug)]
struct Opportunistic {
    inner: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
    verdict: Mutex<Verdict>,
}

impl ServerCertVerifier for Opportunistic {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = match &self.inner {
            Some(v) => match v.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Ok(_) => Verdict::Verified,
                Err(e) => Verdict::Failed(certificate_problem(&e)),
            },
            None => Verdict::Failed("no trusted CA roots".into()),
        };
        *self.verdict.lock().unwrap_or_else(|p| p.into_inner()) = verdict;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_problems_read_as_words_and_are_said_once_a_day() {
        use rustls::CertificateError as C;
        let w = |c| certificate_problem(&rustls::Error::InvalidCertificate(c));
        assert_eq!(
            w(C::UnknownIssuer),
            "the certificate is not signed by a trusted CA (self-signed or a private CA)"
        );
        assert_eq!(w(C::Expired), "the certificate has expired");
        assert_eq!(
            w(C::NotValidForName),
            "the certificate does not name this server"
        );
        assert!(first_word_today("mx.once.example:25"));
        assert!(!first_word_today("mx.once.example:25"));
        assert!(first_word_today("mx.other.example:25"));
    }

    fn parse(s: &str) -> Result<Option<(RemoteReply, usize)>, ReplyError> {
        parse_reply(s.as_bytes())
    }

    #[test]
    fn single_and_multi_line_replies() {
        let (r, used) = parse("250 2.1.5 ok\r\nrest").unwrap().unwrap();
        assert_eq!((r.code, used), (250, 14));
        assert_eq!(r.enhanced, Enhanced::parse("2.1.5"));
        assert_eq!(r.to_string(), "250 2.1.5 ok");

        let (r, _) = parse("550-5.1.1 no such\r\n550-5.1.1 user\r\n550 5.1.1 here\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.to_string(), "550 5.1.1 no such user here");
        assert_eq!(r.class(), Class::Permanent);

        let (r, _) = parse("220\n").unwrap().unwrap();
        assert_eq!((r.code, r.to_string()), (220, "220".to_string()));
        assert_eq!(parse("250-a\r\n250 b").unwrap(), None);
        assert_eq!(parse("").unwrap(), None);
    }

    #[test]
    fn enhanced_code_must_match_the_class() {
        let (r, _) = parse("550 4.2.2 mailbox full\r\n").unwrap().unwrap();
        assert_eq!(r.enhanced, None);
        assert_eq!(r.to_string(), "550 4.2.2 mailbox full");
    }

    #[test]
    fn bad_replies() {
        assert_eq!(parse("hello\r\n"), Err(ReplyError::BadCode));
        assert_eq!(parse("25\r\n"), Err(ReplyError::BadCode));
        assert_eq!(parse("650 x\r\n"), Err(ReplyError::BadCode));
        assert_eq!(parse("250x\r\n"), Err(ReplyError::BadSeparator));
        let long = format!("250 {}\r\n", "a".repeat(MAX_REPLY_LINE));
        assert_eq!(parse(&long), Err(ReplyError::LineTooLong));
        // Also without the line end: the reader must not wait for one forever.
        assert_eq!(
            parse(&long[..MAX_REPLY_LINE + 1]),
            Err(ReplyError::LineTooLong)
        );
        let many = "250-\r\n".repeat(MAX_REPLY_LINES + 1);
        assert_eq!(parse(&many), Err(ReplyError::TooManyLines));
        let big = format!("250-{}\r\n", "a".repeat(1000)).repeat(40);
        assert_eq!(parse(&big), Err(ReplyError::TooLarge));
    }

    #[test]
    fn reply_text_is_sanitised_and_bounded() {
        let (r, _) = parse_reply(b"550 5.7.1 caf\xc3\xa9\x1b[31m\tx\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.to_string(), "550 5.7.1 caf???[31m x");
        let lines = "250-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
            .repeat(50)
            + "250 end\r\n";
        let (r, _) = parse(&lines).unwrap().unwrap();
        let text = r.to_string();
        assert!(
            text.len() <= MAX_REPLY_TEXT + 3 && text.ends_with("..."),
            "{text}"
        );
    }

    #[test]
    fn ehlo_extensions() {
        let (r, _) = parse(
            "250-mx.example Hello\r\n250-SIZE 1000\r\n250-pipelining\r\n250-STARTTLS\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES\r\n",
        )
        .unwrap()
        .unwrap();
        let e = Extensions::from_ehlo(&r);
        assert_eq!(
            e,
            Extensions {
                size: Some(1000),
                pipelining: true,
                starttls: true,
                eight_bit_mime: true,
                smtputf8: true,
                enhanced_status_codes: true,
            }
        );
        let (r, _) = parse("250-x\r\n250 SIZE\r\n").unwrap().unwrap();
        assert_eq!(Extensions::from_ehlo(&r).size, Some(0));
        // The greeting line itself is no keyword.
        let (r, _) = parse("250 STARTTLS\r\n").unwrap().unwrap();
        assert!(!Extensions::from_ehlo(&r).starttls);
    }

    #[test]
    fn message_checks() {
        assert_eq!(check_message(b""), Ok(()));
        assert_eq!(check_message(b"a: b\r\n\r\nbody\r\n"), Ok(()));
        assert!(check_message(b"a\nb\r\n").is_err());
        assert!(check_message(b"a\rb\r\n").is_err());
        assert!(check_message(b"a\r\n\r").is_err());
        assert!(check_message(b"a\r\r\n").is_err());
        assert!(check_message(b"a\0b\r\n").is_err());
        let ok = [vec![b'x'; 998], b"\r\n".to_vec()].concat();
        assert_eq!(check_message(&ok), Ok(()));
        let long = [vec![b'x'; 999], b"\r\n".to_vec()].concat();
        assert!(check_message(&long).is_err());
    }

    #[test]
    fn dot_stuffing() {
        assert_eq!(wire_form(b""), b".\r\n");
        assert_eq!(wire_form(b"a\r\n"), b"a\r\n.\r\n");
        assert_eq!(wire_form(b"a"), b"a\r\n.\r\n");
        // The first line too: mail-send misses this one.
        assert_eq!(
            wire_form(b".\r\nMAIL FROM:<x>\r\n"),
            b"..\r\nMAIL FROM:<x>\r\n.\r\n"
        );
        assert_eq!(
            wire_form(b"a\r\n.\r\n..b\r\n c.\r\n"),
            b"a\r\n..\r\n...b\r\n c.\r\n.\r\n"
        );
    }

    #[test]
    fn stuffing_in_small_blocks_gives_the_same_bytes() {
        let body = b"x\r\n.a\r\n\r\n.\r\nlonger line here\r\n..\r\nend\r\n";
        let mut out = Vec::new();
        let mut s = Stuffer { rest: body };
        let mut block = Vec::new();
        while s.fill(&mut block, 5) {
            out.extend_from_slice(&block);
            block.clear();
        }
        finish_message(body, &mut block);
        out.extend_from_slice(&block);
        assert_eq!(out, wire_form(body));
    }

    #[test]
    fn paths() {
        assert!(valid_path(""));
        assert!(valid_path("a@b.example"));
        assert!(valid_path("\"john doe\"@b.example"));
        assert!(!valid_path("a@b>\r\nRCPT TO:<c@d"));
        assert!(!valid_path("a@b> SIZE=1"));
    }

    #[test]
    fn error_texts_lead_with_a_status() {
        let e = ConnError::Timeout {
            stage: Stage::Greeting,
        };
        assert_eq!(e.to_string(), "4.4.2 timeout waiting for the greeting");
        let e = ConnError::Closed {
            stage: Stage::Message,
        };
        assert_eq!(
            e.to_string(),
            "4.4.2 connection closed by the remote while sending the message"
        );
        let (reply, _) = parse("554 5.7.1 go away\r\n").unwrap().unwrap();
        let e = ConnError::Refused {
            stage: Stage::Greeting,
            reply,
        };
        assert_eq!(
            e.to_string(),
            "554 5.7.1 go away (in reply to the greeting)"
        );
        assert!(e.is_permanent());
        assert!(!ConnError::TlsRequired { reply: None }.is_permanent());
        assert_eq!(
            ConnError::TlsRequired { reply: None }.to_string(),
            "4.7.4 TLS required but STARTTLS not offered"
        );
    }
}
