//! A DNSSEC-signed DNS server on loopback for the DANE tests: hickory-server
//! serves a root zone "." signed with a key generated here (NSEC denials),
//! which the gateway trusts through `[delivery] dnssec_trust_anchor`, so its
//! validation is real. Child zones hang below it:
//!
//! - [`Child::Unsigned`]: an insecure delegation (NS, no DS; the signed NSEC
//!   of the root proves the DS absent);
//! - [`Child::Bogus`]: a DS in the root for one key while the child is
//!   signed with another, so every answer from it fails validation.
//!
//! An authoritative server answers a DS query from the zone that holds the
//! name, the child; DS records live in the parent. [`Router`] sends DS
//! queries to the root zone, as a recursive resolver would.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::dnssec::crypto::EcdsaSigningKey;
use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, DS};
use hickory_proto::dnssec::{Algorithm, DigestType, DnssecSigner, SigningKey};
use hickory_proto::rr::rdata::{A, MX, NS, SOA, TLSA, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::Server;
use hickory_server::dnssec::NxProofKind;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};

/// Every record's TTL, in seconds.
pub const TTL: u32 = 60;

/// One record.
#[derive(Debug, Clone)]
pub enum SRec {
    /// An IPv4 address.
    A(std::net::Ipv4Addr),
    /// A mail exchanger.
    Mx(u16, String),
    /// A TLSA record: usage, selector, matching type, data.
    Tlsa(u8, u8, u8, Vec<u8>),
    /// A text record (one string).
    Txt(String),
}

/// A zone below the root.
#[derive(Debug, Clone)]
pub enum Child {
    /// Delegated without a DS: insecure.
    Unsigned(String, Vec<(String, SRec)>),
    /// Delegated with a DS that does not match the key that signs it: bogus.
    Bogus(String, Vec<(String, SRec)>),
}

/// A running signed DNS server; stops when dropped.
pub struct SignedDns {
    addr: std::net::SocketAddr,
    anchor: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SignedDns {
    /// Serves the signed root with `records` and the `children` below it.
    pub fn start(records: &[(String, SRec)], children: &[Child]) -> SignedDns {
        let root_key = new_key();
        let anchor = format!(
            ". 3600 IN DNSKEY {}",
            DNSKEY::from_key(&root_key.to_public_key().unwrap())
        );

        let mut root = zone(Name::root());
        let ns = Record::from_rdata(Name::root(), TTL, RData::NS(NS(name("ns.test"))));
        assert!(root.upsert_mut(ns, 1));
        let glue = SRec::A(std::net::Ipv4Addr::LOCALHOST);
        assert!(root.upsert_mut(record("ns.test", &glue), 1));
        for (owner, rec) in records {
            assert!(root.upsert_mut(record(owner, rec), 1), "cannot add {owner}");
        }
        let mut child_zones = Vec::new();
        for child in children {
            let (origin, recs, bogus) = match child {
                Child::Unsigned(o, r) => (o, r, false),
                Child::Bogus(o, r) => (o, r, true),
            };
            let origin_name = name(origin);
            let ns = Record::from_rdata(origin_name.clone(), TTL, RData::NS(NS(name("ns.test"))));
            assert!(root.upsert_mut(ns.clone(), 1));
            let mut child = zone(origin_name.clone());
            assert!(child.upsert_mut(ns, 1));
            for (owner, rec) in recs {
                assert!(
                    child.upsert_mut(record(owner, rec), 1),
                    "cannot add {owner}"
                );
            }
            if bogus {
                // The DS names a key that signs nothing; the zone is signed
                // with another one.
                let named = new_key();
                let ds = DS::from_key(
                    &named.to_public_key().unwrap(),
                    &origin_name,
                    DigestType::SHA256,
                )
                .unwrap();
                assert!(root.upsert_mut(
                    Record::from_rdata(
                        origin_name.clone(),
                        TTL,
                        RData::DNSSEC(DNSSECRData::DS(ds))
                    ),
                    1
                ));
                sign(&mut child, &origin_name, new_key());
            }
            child_zones.push((origin_name, Arc::new(child)));
        }
        sign(&mut root, &Name::root(), root_key);
        let root = Arc::new(root);

        let mut all = Catalog::new();
        all.upsert(
            LowerName::new(&Name::root()),
            vec![root.clone() as Arc<dyn ZoneHandler>],
        );
        for (origin, z) in &child_zones {
            all.upsert(
                LowerName::new(origin),
                vec![z.clone() as Arc<dyn ZoneHandler>],
            );
        }
        let mut parent = Catalog::new();
        parent.upsert(
            LowerName::new(&Name::root()),
            vec![root as Arc<dyn ZoneHandler>],
        );
        let router = Router { all, parent };

        // One port for both (another test's connection may hold a UDP port's TCP twin).
        let (udp, tcp) = super::dns::bind_pair();
        let addr = udp.local_addr().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("dns runtime");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            rt.block_on(async move {
                let mut server = Server::new(router);
                server.register_socket(tokio::net::UdpSocket::from_std(udp).unwrap());
                server.register_listener(
                    tokio::net::TcpListener::from_std(tcp).unwrap(),
                    Duration::from_secs(5),
                    16,
                );
                let _ = ready_tx.send(());
                let _ = stopped.await;
                server.shutdown_token().cancel();
            });
        });
        ready_rx.recv().expect("signed dns started");
        SignedDns {
            addr,
            anchor,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The server's address (UDP and TCP).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// The root's DNSKEY as a trust anchor file's line.
    pub fn anchor(&self) -> &str {
        &self.anchor
    }
}

impl Drop for SignedDns {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A fresh ECDSA P-256 zone key.
pub fn new_key() -> EcdsaSigningKey {
    let pkcs8 = EcdsaSigningKey::generate_pkcs8(Algorithm::ECDSAP256SHA256).unwrap();
    EcdsaSigningKey::from_pkcs8(&pkcs8, Algorithm::ECDSAP256SHA256).unwrap()
}

/// A trust anchor line for a key nobody signs with (a wrong anchor).
pub fn stranger_anchor() -> String {
    format!(
        ". 3600 IN DNSKEY {}",
        DNSKEY::from_key(&new_key().to_public_key().unwrap())
    )
}

/// An empty zone with its SOA, denials by NSEC.
fn zone(origin: Name) -> InMemoryZoneHandler {
    let mut z = InMemoryZoneHandler::empty(
        origin.clone(),
        ZoneType::Primary,
        AxfrPolicy::Deny,
        Some(NxProofKind::Nsec),
    );
    let soa = SOA::new(
        name("ns.test"),
        name("hostmaster.test"),
        1,
        60,
        60,
        600,
        TTL,
    );
    assert!(z.upsert_mut(Record::from_rdata(origin, TTL, RData::SOA(soa)), 1));
    z
}

/// Signs `z` with `key` (its DNSKEY is added), NSEC chain and all.
fn sign(z: &mut InMemoryZoneHandler, origin: &Name, key: EcdsaSigningKey) {
    let public = key.to_public_key().unwrap();
    let dnskey = DNSKEY::from_key(&public);
    let signer = DnssecSigner::new(
        dnskey,
        Box::new(key) as Box<dyn SigningKey>,
        origin.clone(),
        Duration::from_secs(86_400),
    );
    z.add_zone_signing_key_mut(signer).unwrap();
    z.secure_zone_mut().unwrap();
}

/// A fully qualified name from test text.
pub fn name(text: &str) -> Name {
    if text == "." {
        return Name::root();
    }
    let mut n = Name::from_ascii(text).unwrap_or_else(|e| panic!("bad test name {text}: {e}"));
    n.set_fqdn(true);
    n
}

fn record(owner: &str, rec: &SRec) -> Record {
    let data = match rec {
        SRec::A(ip) => RData::A(A(*ip)),
        SRec::Mx(pref, host) => RData::MX(MX::new(*pref, name(host))),
        SRec::Tlsa(u, s, m, d) => {
            RData::TLSA(TLSA::new((*u).into(), (*s).into(), (*m).into(), d.clone()))
        }
        SRec::Txt(t) => RData::TXT(TXT::new(vec![t.clone()])),
    };
    Record::from_rdata(name(owner), TTL, data)
}

/// DS queries to the parent (the root), everything else to the zone that
/// holds the name.
struct Router {
    all: Catalog,
    parent: Catalog,
}

// `RequestHandler` is declared with `#[async_trait]`; this is that macro's
// expansion written out, as in `dns.rs`.
impl RequestHandler for Router {
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
            let ds = request
                .queries
                .queries()
                .iter()
                .any(|q| q.query_type() == RecordType::DS);
            let catalog = if ds { &self.parent } else { &self.all };
            catalog
                .handle_request::<R, T>(request, response_handle)
                .await
        })
    }
}
