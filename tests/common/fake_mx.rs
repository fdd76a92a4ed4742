//! A fake remote MX for delivery tests: a small SMTP server on 127.0.0.1:0
//! (std threads, one per connection) whose behaviour a test chooses, and
//! which records exactly what it received.
//!
//! Always on, whatever the [`Behaviour`]: a recipient whose local part
//! starts with `reject` gets `550 5.1.1`, one starting with `defer` gets
//! `451 4.2.1`, one starting with `shutdown` gets `421 4.3.2` and the
//! connection closes; a sender starting with `reject` gets `550 5.7.1` at
//! MAIL, one starting with `defer` `451 4.3.0`.
//!
//! Bounded so a broken client cannot hang or exhaust a test run: 64
//! connections at a time, 64 KiB command lines, 64 MiB of message, a 30 s
//! read timeout, and every socket shut down when the `FakeMx` is dropped.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

const MAX_CONNECTIONS: usize = 64;
const MAX_COMMAND_LINE: usize = 64 * 1024;
const MAX_MESSAGE: usize = 64 << 20;
const MAX_RECORDED: usize = 64 << 20;
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A server misbehaving on purpose, from its greeting on.
#[derive(Clone, Debug)]
pub enum Hostile {
    /// A greeting line of this many octets (`220 aaaa...`) before its CRLF.
    LongLine(usize),
    /// `220-` continuation lines without end (up to 256 MiB or 30 s).
    EndlessMultiline,
    /// Accepts the connection and never says anything.
    Silent,
}

/// How the fake MX behaves. Start from [`Behaviour::accept`] or one of the
/// other constructors and adjust fields or use the `with_*` methods.
#[derive(Clone)]
pub struct Behaviour {
    /// The greeting (default `220 fake.mx ESMTP`).
    pub greeting: String,
    /// Answer EHLO (false: 502, so the client must fall back to HELO).
    pub ehlo: bool,
    /// Announce PIPELINING.
    pub pipelining: bool,
    /// Announce `SIZE n`.
    pub size: Option<u64>,
    /// Offer STARTTLS with this configuration.
    pub tls: Option<Arc<ServerConfig>>,
    /// After `220` to STARTTLS, send garbage and hang up (a broken TLS stack).
    pub tls_broken: bool,
    /// The reply to every RCPT that the local-part rules leave alone
    /// (default `250 2.1.5 ok`).
    pub rcpt_reply: Option<String>,
    /// The reply after the final dot (default `250 2.0.0 queued as N`).
    pub data_reply: Option<String>,
    /// Hang up after the first line of message data.
    pub drop_in_data: bool,
    /// Wait this long before every reply.
    pub delay: Duration,
    /// Misbehave instead of speaking SMTP.
    pub hostile: Option<Hostile>,
    /// Answer 354 to DATA even without a recipient (against RFC 2920 3.1), then
    /// refuse what comes with 554.
    pub lax_data: bool,
}

impl Behaviour {
    /// Accepts everything (subject to the local-part rules).
    pub fn accept() -> Behaviour {
        Behaviour {
            greeting: "220 fake.mx ESMTP".into(),
            ehlo: true,
            pipelining: true,
            size: None,
            tls: None,
            tls_broken: false,
            rcpt_reply: None,
            data_reply: None,
            drop_in_data: false,
            delay: Duration::ZERO,
            hostile: None,
            lax_data: false,
        }
    }

    /// `451 4.3.0` to every RCPT.
    pub fn defer_rcpt() -> Behaviour {
        Behaviour {
            rcpt_reply: Some("451 4.3.0 try again later".into()),
            ..Behaviour::accept()
        }
    }

    /// `451 4.3.0` after the final dot.
    pub fn defer_data() -> Behaviour {
        Behaviour {
            data_reply: Some("451 4.3.0 queue full, try again later".into()),
            ..Behaviour::accept()
        }
    }

    /// `554 5.6.0` after the final dot.
    pub fn reject_data() -> Behaviour {
        Behaviour {
            data_reply: Some("554 5.6.0 content rejected".into()),
            ..Behaviour::accept()
        }
    }

    /// Hangs up in the middle of the message data.
    pub fn drop_in_data() -> Behaviour {
        Behaviour {
            drop_in_data: true,
            ..Behaviour::accept()
        }
    }

    /// Waits `delay` before every reply, the greeting included.
    pub fn slow(delay: Duration) -> Behaviour {
        Behaviour {
            delay,
            ..Behaviour::accept()
        }
    }

    /// Offers STARTTLS with `config`.
    pub fn starttls(config: Arc<ServerConfig>) -> Behaviour {
        Behaviour::accept().with_tls(config)
    }

    /// Misbehaves as told.
    pub fn hostile(h: Hostile) -> Behaviour {
        Behaviour {
            hostile: Some(h),
            ..Behaviour::accept()
        }
    }

    /// Also offers STARTTLS.
    pub fn with_tls(mut self, config: Arc<ServerConfig>) -> Behaviour {
        self.tls = Some(config);
        self
    }

    /// Announces `SIZE n`.
    pub fn with_size(mut self, n: u64) -> Behaviour {
        self.size = Some(n);
        self
    }

    /// Does not announce PIPELINING.
    pub fn without_pipelining(mut self) -> Behaviour {
        self.pipelining = false;
        self
    }

    /// Answers EHLO with 502.
    pub fn without_ehlo(mut self) -> Behaviour {
        self.ehlo = false;
        self
    }

    /// Answers 354 to DATA without a recipient ([`Behaviour::lax_data`]).
    pub fn with_lax_data(mut self) -> Behaviour {
        self.lax_data = true;
        self
    }
}

/// One message transaction that reached the end of data.
#[derive(Debug, Clone)]
pub struct Received {
    /// Which connection (1-based, in accept order).
    pub connection: usize,
    /// The EHLO/HELO name.
    pub helo: String,
    /// The MAIL FROM address.
    pub sender: String,
    /// What followed the address on the MAIL line (` SIZE=123`).
    pub mail_params: String,
    /// The recipients accepted at RCPT.
    pub recipients: Vec<String>,
    /// The data exactly as sent, dot-stuffed, up to and including `.\r\n`.
    pub wire: Vec<u8>,
    /// The message after unstuffing, without the terminating `.\r\n`.
    pub body: Vec<u8>,
    /// Whether the session was under TLS.
    pub tls: bool,
    /// Whether the final reply was 2xx.
    pub accepted: bool,
}

#[derive(Default)]
struct State {
    attempts: Vec<Received>,
    commands: Vec<(usize, String)>,
    inbound: Vec<Vec<u8>>,
    pipelined: usize,
    recorded: usize,
}

struct Shared {
    behaviour: Behaviour,
    state: Mutex<State>,
    connections: AtomicUsize,
    active: AtomicUsize,
    stop: AtomicBool,
    /// Clones of the live sockets, to end them when the test is done.
    sockets: Mutex<HashMap<usize, TcpStream>>,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running fake MX; stops when dropped.
pub struct FakeMx {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeMx {
    /// Binds 127.0.0.1:0 and serves in the background.
    pub fn start(behaviour: Behaviour) -> FakeMx {
        Self::start_at("127.0.0.1:0".parse().unwrap(), behaviour)
    }

    /// Binds `addr` (e.g. a port the gateway was refused on until now).
    pub fn start_at(addr: SocketAddr, behaviour: Behaviour) -> FakeMx {
        let listener = TcpListener::bind(addr).expect("bind fake MX");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("fake MX address");
        let shared = Arc::new(Shared {
            behaviour,
            state: Mutex::new(State::default()),
            connections: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            sockets: Mutex::new(HashMap::new()),
        });
        let s = shared.clone();
        let acceptor = thread::spawn(move || accept_loop(listener, s));
        FakeMx {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Messages it accepted (final reply 2xx), in order.
    pub fn messages(&self) -> Vec<Received> {
        self.shared
            .state()
            .attempts
            .iter()
            .filter(|m| m.accepted)
            .cloned()
            .collect()
    }

    /// Every transaction that reached the end of data, accepted or not.
    pub fn attempts(&self) -> Vec<Received> {
        self.shared.state().attempts.clone()
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Every command line received (without CRLF), in order, with its connection number.
    pub fn commands(&self) -> Vec<(usize, String)> {
        self.shared.state().commands.clone()
    }

    /// The command verbs received on all connections, e.g. `["EHLO", "MAIL", ...]`.
    pub fn verbs(&self) -> Vec<String> {
        self.commands()
            .into_iter()
            .map(|(_, c)| {
                c.split([' ', ':'])
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase()
            })
            .collect()
    }

    /// All octets received per connection (after TLS decryption), in accept order.
    pub fn inbound(&self) -> Vec<Vec<u8>> {
        self.shared.state().inbound.clone()
    }

    /// How many commands arrived before the reply to the previous one was sent.
    pub fn pipelined(&self) -> usize {
        self.shared.state().pipelined
    }

    /// Waits until `n` messages were accepted or `timeout` passed.
    pub fn wait_for_messages(&self, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.messages().len() >= n {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.messages().len() >= n
    }
}

impl Drop for FakeMx {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for (_, s) in self
            .shared
            .sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
        {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// True if `bytes` holds a CR not followed by LF or an LF not preceded by CR.
pub fn has_bare_line_ending(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(i, &b)| match b {
        b'\r' => bytes.get(i + 1) != Some(&b'\n'),
        b'\n' => i == 0 || bytes[i - 1] != b'\r',
        _ => false,
    })
}

/// A private CA and a server certificate it signed for `names`: the CA goes
/// into the client's `extra_roots`, the config into [`Behaviour::with_tls`].
pub struct TestPki {
    /// The CA certificate to trust.
    pub ca: CertificateDer<'static>,
    /// The same, PEM-encoded (for `delivery.tls_ca_file`).
    pub ca_pem: String,
    /// A server configuration with the leaf certificate and its key.
    pub server: Arc<ServerConfig>,
}

impl TestPki {
    /// Generates a CA and a leaf for `names`.
    pub fn new(names: &[&str]) -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ugem test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("CA cert");
        let leaf_key = KeyPair::generate().expect("leaf key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let leaf = CertificateParams::new(names)
            .expect("leaf params")
            .signed_by(&leaf_key, &ca)
            .expect("leaf cert");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let server =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_no_client_auth()
                .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
                .expect("server config");
        TestPki {
            ca: ca.der().clone(),
            ca_pem: ca.pem(),
            server: Arc::new(server),
        }
    }
}

/// A self-signed certificate for `names` (no CA vouches for it: only DANE-EE
/// can make it trusted) and a server configuration presenting it.
pub fn self_signed_server(names: &[&str]) -> (CertificateDer<'static>, Arc<ServerConfig>) {
    let key = rcgen::KeyPair::generate().expect("key");
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = rcgen::CertificateParams::new(names)
        .expect("params")
        .self_signed(&key)
        .expect("self-signed cert");
    let der = cert.der().clone();
    let server =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("server config");
    (der, Arc::new(server))
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let n = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
                if shared.active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                    let mut s = stream;
                    let _ = s.write_all(b"421 4.3.2 too many connections\r\n");
                    continue;
                }
                if let Ok(clone) = stream.try_clone() {
                    shared
                        .sockets
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(n, clone);
                }
                shared.state().inbound.push(Vec::new());
                shared.active.fetch_add(1, Ordering::SeqCst);
                let s = shared.clone();
                thread::spawn(move || {
                    let _ = serve(stream, &s, n);
                    // The clone kept for Drop would hold the connection open.
                    if let Some(sock) = s
                        .sockets
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&n)
                    {
                        let _ = sock.shutdown(Shutdown::Both);
                    }
                    s.active.fetch_sub(1, Ordering::SeqCst);
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5))
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

enum Io {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
    Gone,
}

impl Read for Io {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Plain(s) => s.read(buf),
            Io::Tls(s) => s.read(buf),
            Io::Gone => Ok(0),
        }
    }
}

impl Write for Io {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Io::Plain(s) => s.write(buf),
            Io::Tls(s) => s.write(buf),
            Io::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Io::Plain(s) => s.flush(),
            Io::Tls(s) => s.flush(),
            Io::Gone => Ok(()),
        }
    }
}

/// One connection's socket, read buffer and recorder.
struct Conn<'a> {
    io: Io,
    buf: Vec<u8>,
    shared: &'a Shared,
    n: usize,
}

impl Conn<'_> {
    /// The next line, LF included, at most `max` octets; None at EOF.
    fn line(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                return Ok(Some(self.buf.drain(..=i).collect()));
            }
            if self.buf.len() > max {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.io.read(&mut chunk)?;
            if n == 0 {
                return Ok(None);
            }
            self.record(&chunk[..n]);
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn record(&self, bytes: &[u8]) {
        let mut st = self.shared.state();
        if st.recorded + bytes.len() > MAX_RECORDED {
            return;
        }
        st.recorded += bytes.len();
        if let Some(v) = st.inbound.get_mut(self.n - 1) {
            v.extend_from_slice(bytes);
        }
    }

    fn reply(&mut self, text: &str) -> io::Result<()> {
        let delay = self.shared.behaviour.delay;
        if !delay.is_zero() {
            thread::sleep(delay);
        }
        self.io.write_all(text.as_bytes())?;
        self.io.write_all(b"\r\n")?;
        self.io.flush()
    }
}

/// The transaction in progress.
struct Tx {
    sender: String,
    params: String,
    rcpts: Vec<String>,
}

/// `<addr> params` after `MAIL FROM:` / `RCPT TO:`.
fn path(arg: &str) -> (String, String) {
    let arg = arg.trim_start();
    match (arg.find('<'), arg.find('>')) {
        (Some(0), Some(end)) => (arg[1..end].to_string(), arg[end + 1..].to_string()),
        _ => (
            arg.split(' ').next().unwrap_or("").to_string(),
            String::new(),
        ),
    }
}

fn local_part(addr: &str) -> String {
    addr.rsplit_once('@')
        .map_or(addr, |(l, _)| l)
        .to_ascii_lowercase()
}

fn serve(stream: TcpStream, shared: &Shared, n: usize) -> io::Result<()> {
    let b = &shared.behaviour;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut c = Conn {
        io: Io::Plain(stream),
        buf: Vec::new(),
        shared,
        n,
    };
    if let Some(h) = &b.hostile {
        return hostile(&mut c, h);
    }
    c.reply(&b.greeting)?;
    if !b.greeting.starts_with('2') {
        // RFC 5321 §3.1: after a 554 greeting the client should QUIT.
        if let Some(raw) = c.line(MAX_COMMAND_LINE)? {
            let line = String::from_utf8_lossy(&raw).trim_end().to_string();
            shared.state().commands.push((n, line));
            c.reply("221 2.0.0 bye")?;
        }
        return Ok(());
    }
    let mut helo = String::new();
    let mut tls = false;
    let mut tx: Option<Tx> = None;
    let mut queued = 0usize;
    loop {
        let Some(raw) = c.line(MAX_COMMAND_LINE)? else {
            return Ok(());
        };
        let line = String::from_utf8_lossy(&raw)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        {
            let more = !c.buf.is_empty();
            let mut st = shared.state();
            st.commands.push((n, line.clone()));
            if more {
                st.pipelined += 1;
            }
        }
        let upper = line.to_ascii_uppercase();
        let verb = upper.split(' ').next().unwrap_or("");
        match verb {
            "EHLO" if b.ehlo => {
                helo = line[4..].trim().to_string();
                tx = None;
                let mut lines = vec!["fake.mx hello".to_string()];
                if let Some(s) = b.size {
                    lines.push(format!("SIZE {s}"));
                }
                if b.pipelining {
                    lines.push("PIPELINING".into());
                }
                lines.push("8BITMIME".into());
                lines.push("ENHANCEDSTATUSCODES".into());
                if b.tls.is_some() && !tls {
                    lines.push("STARTTLS".into());
                }
                lines.push("SMTPUTF8".into());
                let last = lines.len() - 1;
                let text: Vec<String> = lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
                    .collect();
                c.reply(&text.join("\r\n"))?;
            }
            "EHLO" => c.reply("502 5.5.1 EHLO not implemented")?,
            "HELO" => {
                helo = line[4..].trim().to_string();
                tx = None;
                c.reply("250 fake.mx")?;
            }
            "STARTTLS" => {
                let Some(config) = b.tls.clone().filter(|_| !tls) else {
                    c.reply("502 5.5.1 no TLS here")?;
                    continue;
                };
                c.reply("220 2.0.0 ready to start TLS")?;
                if b.tls_broken {
                    let _ = c.io.write_all(b"this is not a TLS record\r\n");
                    return Ok(());
                }
                let Io::Plain(mut tcp) = std::mem::replace(&mut c.io, Io::Gone) else {
                    return Ok(());
                };
                let mut conn = ServerConnection::new(config).map_err(io::Error::other)?;
                while conn.is_handshaking() {
                    // A client that refuses the certificate ends here.
                    conn.complete_io(&mut tcp)?;
                }
                c.io = Io::Tls(Box::new(StreamOwned::new(conn, tcp)));
                c.buf.clear();
                tls = true;
                helo.clear();
                tx = None;
            }
            "MAIL" if upper.starts_with("MAIL FROM:") => {
                let (sender, params) = path(&line[10..]);
                let lp = local_part(&sender);
                if lp.starts_with("reject") {
                    c.reply("550 5.7.1 sender rejected")?;
                } else if lp.starts_with("defer") {
                    c.reply("451 4.3.0 sender deferred, try later")?;
                } else {
                    tx = Some(Tx {
                        sender,
                        params,
                        rcpts: Vec::new(),
                    });
                    c.reply("250 2.1.0 ok")?;
                }
            }
            "RCPT" if upper.starts_with("RCPT TO:") => {
                let Some(t) = tx.as_mut() else {
                    c.reply("503 5.5.1 MAIL first")?;
                    continue;
                };
                let (rcpt, _) = path(&line[8..]);
                let lp = local_part(&rcpt);
                if lp.starts_with("reject") {
                    c.reply(&format!("550 5.1.1 <{rcpt}>: user unknown"))?;
                } else if lp.starts_with("defer") {
                    c.reply("451 4.2.1 mailbox busy, try later")?;
                } else if lp.starts_with("shutdown") {
                    c.reply("421 4.3.2 shutting down")?;
                    return Ok(());
                } else if let Some(r) = &b.rcpt_reply {
                    if r.starts_with('2') {
                        t.rcpts.push(rcpt);
                    }
                    c.reply(r)?;
                } else {
                    t.rcpts.push(rcpt);
                    c.reply("250 2.1.5 ok")?;
                }
            }
            "DATA" => {
                let Some(t) = tx.take().filter(|t| !t.rcpts.is_empty()) else {
                    if !b.lax_data {
                        c.reply("503 5.5.1 no valid recipients")?;
                        continue;
                    }
                    c.reply("354 go ahead")?;
                    while let Some(l) = c.line(MAX_MESSAGE)? {
                        if l == b".\r\n" {
                            break;
                        }
                    }
                    c.reply("554 5.5.1 no valid recipients")?;
                    continue;
                };
                c.reply("354 end data with <CR><LF>.<CR><LF>")?;
                let mut wire = Vec::new();
                let mut body = Vec::new();
                loop {
                    let Some(l) = c.line(MAX_MESSAGE)? else {
                        return Ok(());
                    };
                    wire.extend_from_slice(&l);
                    if l == b".\r\n" {
                        break;
                    }
                    body.extend_from_slice(l.strip_prefix(b".").unwrap_or(&l));
                    if b.drop_in_data {
                        // serve()'s caller shuts the socket down.
                        return Ok(());
                    }
                    if wire.len() > MAX_MESSAGE {
                        c.reply("552 5.3.4 too big")?;
                        return Ok(());
                    }
                }
                queued += 1;
                let reply = b
                    .data_reply
                    .clone()
                    .unwrap_or_else(|| format!("250 2.0.0 queued as {n}.{queued}"));
                shared.state().attempts.push(Received {
                    connection: n,
                    helo: helo.clone(),
                    sender: t.sender,
                    mail_params: t.params,
                    recipients: t.rcpts,
                    wire,
                    body,
                    tls,
                    accepted: reply.starts_with('2'),
                });
                c.reply(&reply)?;
            }
            "RSET" => {
                tx = None;
                c.reply("250 2.0.0 ok")?;
            }
            "NOOP" => c.reply("250 2.0.0 ok")?,
            "QUIT" => {
                c.reply("221 2.0.0 bye")?;
                return Ok(());
            }
            _ => c.reply("500 5.5.2 unknown command")?,
        }
    }
}

fn hostile(c: &mut Conn<'_>, h: &Hostile) -> io::Result<()> {
    let started = Instant::now();
    match h {
        Hostile::LongLine(len) => {
            c.io.write_all(b"220 ")?;
            let chunk = vec![b'a'; 64 * 1024];
            let mut left = *len;
            while left > 0 {
                let k = left.min(chunk.len());
                c.io.write_all(&chunk[..k])?;
                left -= k;
            }
            c.io.write_all(b"\r\n")?;
            // Wait for the client to give up.
            let _ = c.line(MAX_COMMAND_LINE);
        }
        Hostile::EndlessMultiline => {
            let chunk = b"220-\r\n".repeat(10_000);
            let mut sent = 0usize;
            while sent < 256 << 20 && started.elapsed() < READ_TIMEOUT {
                c.io.write_all(&chunk)?;
                sent += chunk.len();
            }
        }
        Hostile::Silent => {
            let _ = c.line(MAX_COMMAND_LINE);
        }
    }
    Ok(())
}
