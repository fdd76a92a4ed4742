//! The session's unit-test rig: a real gateway (store, registry, queue,
//! governor, connection log) in a temporary folder, and a client that talks
//! SMTP to a session over an in-memory duplex. Nothing is mocked: only the
//! socket is replaced.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Close, Session};
use crate::config::Config;
use crate::domain::Domain;
use crate::registry::{NewDomain, Registry, parse_contact, parse_server};
use crate::smtp::{Gateway, spool};
use crate::store::local::ConnectionLog;

/// The registered agency domain.
pub(super) const AGENCY: &str = "agency.example.kz";
/// The agency's registered mail server.
pub(super) const AGENCY_IP: &str = "192.0.2.1";
/// A client registered for nothing.
pub(super) const STRANGER_IP: &str = "198.51.100.7";
/// The gateway's host name.
pub(super) const HOST: &str = "gw.test.example";

/// How long a test waits for any one reply before it fails.
const WAIT: Duration = Duration::from_secs(10);

/// A gateway in a temporary folder; sessions are started with
/// [`Rig::connect`].
pub(super) struct Rig {
    pub(super) gw: Arc<Gateway>,
    pub(super) stop: watch::Sender<bool>,
    pub(super) dir: tempfile::TempDir,
}

/// A rig with the default configuration.
pub(super) fn rig() -> Rig {
    rig_with(|_, _| {})
}

/// A rig whose configuration `tune` adjusts first.
pub(super) fn rig_with(tune: impl FnOnce(&mut Config, &std::path::Path)) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    cfg.server.data_dir = dir.path().to_path_buf();
    cfg.server.hostname = Domain::parse(HOST).unwrap();
    cfg.smtp.min_free_space = crate::values::ByteSize(1 << 20);
    tune(&mut cfg, dir.path());
    let live = crate::config::Live::fixed(cfg.clone());
    let (store, shared) = crate::store::open(dir.path()).unwrap();
    // The registry's set-up is async; it runs on a runtime of its own (on
    // another thread: the test's runtime cannot block on it), so that the
    // rig stays a plain function and each test starts with one line.
    let registry = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let registry = Registry::open(Arc::new(shared)).await.unwrap();
                registry
                    .add_domain(NewDomain {
                        name: Domain::parse(AGENCY).unwrap(),
                        owner: "Agency".into(),
                        servers: vec![parse_server(AGENCY_IP).unwrap()],
                        contacts: vec![parse_contact("it@agency.example.kz").unwrap()],
                        inbound: None,
                        shared_servers: false,
                    })
                    .await
                    .unwrap();
                Arc::new(registry)
            })
    })
    .join()
    .unwrap();
    let queue = ugem_queue::Queue::open(
        &dir.path().join("queue"),
        ugem_queue::QueueOptions {
            min_free_bytes: cfg.smtp.min_free_space.0,
            ..Default::default()
        },
    )
    .unwrap();
    spool::prepare_dir(&spool::dir(dir.path())).unwrap();
    let connlog = ConnectionLog::start(store.clone());
    let governor =
        crate::governor::Governor::new(live.clone(), registry.clone(), store, queue.clone());
    let dkim = crate::dkim::Signers::open(dir.path()).unwrap();
    let gw = Gateway::new(live, registry, queue, connlog, governor, None, dkim).unwrap();
    let (stop, _) = watch::channel(false);
    Rig { gw, stop, dir }
}

impl Rig {
    /// Starts a session for a client at `ip` over an in-memory duplex.
    pub(super) fn connect(&self, ip: &str) -> Client {
        // Large enough that a test's pipelined batch is one write.
        let (client, server) = tokio::io::duplex(1 << 20);
        let peer = SocketAddr::new(ip.parse().unwrap(), 40000);
        let gw = self.gw.clone();
        let stop = self.stop.subscribe();
        let session = tokio::spawn(async move {
            let mut s = Session::new(gw, peer, "test".into(), stop);
            let close = s.serve(server).await;
            s.finish(close);
            close
        });
        Client {
            io: client,
            buf: Vec::new(),
            session,
        }
    }

    /// Connects and says EHLO: the greeting and the EHLO reply are read.
    pub(super) async fn ehlo(&self, ip: &str) -> Client {
        let mut c = self.connect(ip);
        c.expect(220).await;
        c.send("EHLO client.example\r\n").await;
        c.expect(250).await;
        c
    }

    /// The queued envelope and content of the message `reply` (a `250
    /// queued as ID`) names, read back from the queue.
    pub(super) fn queued(&self, reply: &Answer) -> (ugem_queue::Envelope, Vec<u8>) {
        assert_eq!(reply.code, 250, "{reply:?}");
        let id: ugem_queue::QueueId = reply
            .text()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("no queue id in {reply:?}"));
        let env = self.gw.queue.get(id).unwrap().expect("envelope queued");
        let body = self.gw.queue.body(id).unwrap().expect("body queued");
        (env, body)
    }

    /// Messages in the queue.
    pub(super) fn queued_count(&self) -> usize {
        self.gw.queue.counts().unwrap().total
    }
}

/// One reply: its code and the text of each line (after `250-`/`250 `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Answer {
    pub(super) code: u16,
    pub(super) lines: Vec<String>,
}

impl Answer {
    /// The lines joined with newlines.
    pub(super) fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// The client end of a session.
pub(super) struct Client<C = DuplexStream> {
    pub(super) io: C,
    buf: Vec<u8>,
    session: JoinHandle<Close>,
}

impl<C: AsyncRead + AsyncWrite + Unpin> Client<C> {
    /// Writes `text` as it is (CRLFs included).
    pub(super) async fn send(&mut self, text: &str) {
        self.send_bytes(text.as_bytes()).await;
    }

    /// Writes raw octets.
    pub(super) async fn send_bytes(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
        self.io.flush().await.unwrap();
    }

    /// Reads the next reply (all its lines); fails the test on a timeout
    /// or at the end of the stream.
    pub(super) async fn reply(&mut self) -> Answer {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await;
            assert!(line.len() >= 3, "short reply line {line:?}");
            let code: u16 = line[..3].parse().unwrap_or_else(|_| panic!("{line:?}"));
            lines.push(line.get(4..).unwrap_or_default().to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Answer { code, lines };
            }
        }
    }

    /// Reads a reply and checks its code.
    pub(super) async fn expect(&mut self, code: u16) -> Answer {
        let a = self.reply().await;
        assert_eq!(a.code, code, "unexpected reply {a:?}");
        a
    }

    async fn line(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..i + 2).collect();
                return String::from_utf8(line[..i].to_vec()).unwrap();
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, self.io.read(&mut chunk))
                .await
                .expect("a reply in time")
                .unwrap();
            assert!(n > 0, "session closed; unread {:?}", self.buf);
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Waits for the session to close the stream with nothing more said,
    /// and returns why it closed.
    pub(super) async fn closed(mut self) -> Close {
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT, self.io.read_to_end(&mut rest))
            .await
            .expect("the session closes")
            .unwrap();
        rest.splice(0..0, self.buf.drain(..));
        assert!(
            rest.is_empty(),
            "unread output: {:?}",
            String::from_utf8_lossy(&rest)
        );
        tokio::time::timeout(WAIT, self.session)
            .await
            .expect("the session ends")
            .unwrap()
    }

    /// Waits for the session to end, whatever it wrote last; why it ended.
    pub(super) async fn ended(self) -> Close {
        tokio::time::timeout(WAIT, self.session)
            .await
            .expect("the session ends")
            .unwrap()
    }

    /// Swaps the client's stream for what `f` makes of it (a TLS client
    /// over it), keeping the session.
    pub(super) async fn map_io<D, F>(self, f: impl FnOnce(C) -> F) -> Client<D>
    where
        F: std::future::Future<Output = D>,
    {
        assert!(self.buf.is_empty(), "unread output before the swap");
        Client {
            io: f(self.io).await,
            buf: Vec::new(),
            session: self.session,
        }
    }
}
