//! A real DNS server on loopback for tests: hickory-server answers from one
//! in-memory zone rooted at "." (so any name can be served and every other
//! name is NXDOMAIN), over UDP and TCP on the same ephemeral port, in its own
//! thread with its own tokio runtime. Sync tests that run the `ugem` binary
//! and async tests that use the resolver in-process can both use it.
//!
//! ```ignore
//! let dns = TestDns::start(&[
//!     ("example.org", Rec::Mx(10, "mx1.example.org")),
//!     ("mx1.example.org", Rec::A("127.0.0.1".parse().unwrap())),
//!     ("broken.example", Rec::ServFail),
//! ]);
//! // [delivery] nameservers = ["127.0.0.1:PORT"] with dns.addr()
//! ```
#![allow(dead_code)]

use std::collections::HashSet;
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Header, HeaderCounts, Metadata, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, SOA, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{
    AxfrPolicy, Catalog, MessageResponseBuilder, ZoneHandler, ZoneType,
};

/// Every record's TTL, in seconds: short, so that a caching resolver (the
/// gateway's) sees changes made with [`TestDns::set`] almost at once.
pub const TTL: u32 = 1;

/// One record (or behaviour) for a name.
#[derive(Debug, Clone, Copy)]
pub enum Rec<'a> {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// A mail exchanger: preference and host name (`"."` for a null MX).
    Mx(u16, &'a str),
    /// An alias.
    Cname(&'a str),
    /// A text record (makes a name exist without mail records).
    Txt(&'a str),
    /// Every query for this name gets SERVFAIL.
    ServFail,
}

/// A running test DNS server; stops when dropped.
pub struct TestDns {
    addr: SocketAddr,
    zone: Arc<InMemoryZoneHandler>,
    servfail: Arc<Mutex<HashSet<LowerName>>>,
    rt: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestDns {
    /// Starts a server with these records; panics if it cannot (tests only).
    pub fn start(records: &[(&str, Rec<'_>)]) -> TestDns {
        let (udp, tcp) = bind_pair();
        let addr = udp.local_addr().expect("udp local addr");

        let mut zone =
            InMemoryZoneHandler::empty(Name::root(), ZoneType::Primary, AxfrPolicy::Deny, None);
        let soa = SOA::new(
            name("ns.test"),
            name("hostmaster.test"),
            1,
            60,
            60,
            600,
            TTL, // the negative-caching TTL (RFC 2308)
        );
        assert!(zone.upsert_mut(Record::from_rdata(Name::root(), TTL, RData::SOA(soa)), 1));
        let mut servfail = HashSet::new();
        for (owner, rec) in records {
            match record(owner, rec) {
                Some(r) => assert!(zone.upsert_mut(r, 1), "cannot add {owner} {rec:?}"),
                None => {
                    servfail.insert(LowerName::new(&name(owner)));
                }
            }
        }
        let zone = Arc::new(zone);
        let servfail = Arc::new(Mutex::new(servfail));

        let mut catalog = Catalog::new();
        catalog.upsert(
            LowerName::new(&Name::root()),
            vec![zone.clone() as Arc<dyn ZoneHandler>],
        );
        let handler = Handler {
            catalog,
            servfail: servfail.clone(),
        };

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("dns runtime");
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("test-dns-{}", addr.port()))
            .spawn(move || {
                rt.block_on(async move {
                    let mut server = Server::new(handler);
                    server.register_socket(
                        tokio::net::UdpSocket::from_std(udp).expect("udp to tokio"),
                    );
                    server.register_listener(
                        tokio::net::TcpListener::from_std(tcp).expect("tcp to tokio"),
                        Duration::from_secs(5),
                        16,
                    );
                    let _ = ready_tx.send(());
                    let _ = stopped.await;
                    server.shutdown_token().cancel();
                });
                // Dropping the runtime here ends every connection task.
            })
            .expect("spawn dns thread");
        ready_rx.recv().expect("dns server started");
        TestDns {
            addr,
            zone,
            servfail,
            rt: handle,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The server's address (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The TOML value for `[delivery] nameservers`.
    pub fn nameservers_toml(&self) -> String {
        format!("[\"{}\"]", self.addr)
    }

    /// Makes every query for `owner` fail with SERVFAIL, or stops that.
    pub fn set_servfail(&self, owner: &str, on: bool) {
        let n = LowerName::new(&name(owner));
        let mut set = self.servfail.lock().unwrap_or_else(|p| p.into_inner());
        if on {
            set.insert(n);
        } else {
            set.remove(&n);
        }
    }

    /// Replaces every record of `owner` with `records` (none: the name is
    /// gone, NXDOMAIN). `Rec::ServFail` among them sets SERVFAIL mode.
    /// Blocks until done; callable from sync and async tests alike.
    pub fn set(&self, owner: &str, records: &[Rec<'_>]) {
        let lower = LowerName::new(&name(owner));
        let mut new = Vec::new();
        let mut fail = false;
        for rec in records {
            match record(owner, rec) {
                Some(r) => new.push(r),
                None => fail = true,
            }
        }
        self.set_servfail(owner, fail);
        let zone = self.zone.clone();
        let (done_tx, done_rx) = mpsc::channel();
        // The zone's lock is tokio's: take it on the server's own runtime,
        // which also works when the caller is inside another runtime.
        self.rt.spawn(async move {
            zone.records_mut().await.retain(|key, _| key.name != lower);
            let serial = zone.serial().await + 1;
            let mut ok = true;
            for r in new {
                ok &= zone.upsert(r, serial).await;
            }
            let _ = done_tx.send(ok);
        });
        assert!(
            done_rx.recv().expect("dns server alive"),
            "cannot set {owner}"
        );
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A fully qualified name from test text; `"."` is the root.
fn name(text: &str) -> Name {
    if text == "." {
        return Name::root();
    }
    let mut n = Name::from_ascii(text).unwrap_or_else(|e| panic!("bad test name {text}: {e}"));
    n.set_fqdn(true);
    n
}

/// The zone record for a test record; `None` for `Rec::ServFail`.
fn record(owner: &str, rec: &Rec<'_>) -> Option<Record> {
    let data = match *rec {
        Rec::A(ip) => RData::A(A(ip)),
        Rec::Aaaa(ip) => RData::AAAA(AAAA(ip)),
        Rec::Mx(pref, host) => RData::MX(MX::new(pref, name(host))),
        Rec::Cname(target) => RData::CNAME(CNAME(name(target))),
        // A long value (a DKIM key) as several strings of at most 255
        // octets, as a zone file would have it.
        Rec::Txt("") => RData::TXT(TXT::new(vec![String::new()])),
        Rec::Txt(text) => RData::TXT(TXT::new(
            text.as_bytes()
                .chunks(255)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect(),
        )),
        Rec::ServFail => return None,
    };
    Some(Record::from_rdata(name(owner), TTL, data))
}

/// Binds UDP and TCP on the same loopback port, as the resolver config
/// (`ip:port`) uses one port for both.
pub fn bind_pair() -> (std::net::UdpSocket, std::net::TcpListener) {
    for _ in 0..100 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("udp addr").port();
        if let Ok(tcp) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            udp.set_nonblocking(true).expect("udp nonblocking");
            tcp.set_nonblocking(true).expect("tcp nonblocking");
            return (udp, tcp);
        }
    }
    panic!("no loopback port free for both UDP and TCP");
}

/// The catalog, with SERVFAIL for chosen names in front of it.
struct Handler {
    catalog: Catalog,
    servfail: Arc<Mutex<HashSet<LowerName>>>,
}

impl Handler {
    fn fails(&self, request: &Request) -> bool {
        let set = self.servfail.lock().unwrap_or_else(|p| p.into_inner());
        request
            .queries
            .queries()
            .iter()
            .any(|q| set.contains(q.name()))
    }
}

// `RequestHandler` is declared with `#[async_trait]`; this is that macro's
// expansion written out, so the tests need no async-trait dependency.
impl RequestHandler for Handler {
    fn handle_request<'life0, 'life1, 'async_trait, R, T>(
        &'life0 self,
        request: &'life1 Request,
        response_handle: R,
    ) -> Pin<Box<dyn Future<Output = ResponseInfo> + Send + 'async_trait>>
    where
        R: ResponseHandler + 'async_trait,
        T: Time + 'async_trait,
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            if !self.fails(request) {
                return self
                    .catalog
                    .handle_request::<R, T>(request, response_handle)
                    .await;
            }
            let mut handle = response_handle;
            let response = MessageResponseBuilder::new(&request.queries, None)
                .error_msg(&request.metadata, ResponseCode::ServFail);
            match handle.send_response(response).await {
                Ok(info) => info,
                Err(_) => {
                    let mut metadata = Metadata::response_from_request(&request.metadata);
                    metadata.response_code = ResponseCode::ServFail;
                    ResponseInfo::from(Header {
                        metadata,
                        counts: HeaderCounts::default(),
                    })
                }
            }
        })
    }
}
