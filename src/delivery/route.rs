//! Where mail for a recipient domain goes: the registered inbound route, a
//! static next hop from `[delivery.routes]`, or the domain's MX hosts
//! (RFC 5321 §5.1, RFC 7505) resolved with hickory into an ordered list of
//! addresses to try.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::ResolveHosts;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use rand::Rng;
use rand::seq::SliceRandom;

use super::dane::{DaneHosts, HostDane, Tlsa, TlsaSet};
use crate::config::HostPort;
pub use crate::dns::{resolver_builder, txt_strings};
use crate::domain::Domain;
use crate::model::domains::DomainStatus;
use crate::registry::Snapshot;
use crate::reply::Enhanced;

/// The SMTP port of MX targets (RFC 5321 §4.5.4.2 does not allow another).
pub const SMTP_PORT: u16 = 25;
/// At most this many MX hosts are looked at, lowest preferences first, so a
/// hostile zone cannot make one delivery attempt do unbounded work.
pub const MAX_MX_HOSTS: usize = 10;
/// At most this many addresses are taken from one host, so that one host
/// with hundreds of A records cannot crowd out the backup MX hosts.
pub const MAX_ADDRS_PER_HOST: usize = 5;
/// At most this many targets are returned for one route.
pub const MAX_TARGETS: usize = 20;

/// Where mail for one recipient domain goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A registered domain's inbound route: always wins.
    Registered(HostPort),
    /// A registered domain's inbound servers, in preference order: tried
    /// one after the other.
    RegisteredList(Vec<HostPort>),
    /// A `[delivery.routes]` next hop: the exact domain, else `"*"`.
    Static(HostPort),
    /// The domain's MX hosts (or its implicit MX).
    Mx(Domain),
}

/// Chooses the route for a recipient domain.
///
/// A registered domain that is connected or suspended goes to its inbound
/// route: suspension stops the agency *sending*, mail *to* it still flows.
/// A disconnected domain is no longer served by the gateway (the policy no
/// longer accepts mail for it either), so it is routed like any other.
pub fn route_for(domain: &Domain, snap: &Snapshot, routes: &BTreeMap<String, HostPort>) -> Route {
    if let Some(rec) = snap.domain(domain)
        && rec.status != DomainStatus::Disconnected
        && let Some(r) = registered(rec)
    {
        return r;
    }
    if let Some(hp) = static_route(domain, routes) {
        return Route::Static(hp.clone());
    }
    Route::Mx(domain.clone())
}

/// The route for mail the gateway itself sends (bounces, notices): like
/// [`route_for`], but a disconnected domain still gets its last registered
/// server. Its MX records usually still name the gateway, so a bounce or the
/// disconnection notice sent by MX would loop back here and be refused.
pub fn route_for_local(
    domain: &Domain,
    snap: &Snapshot,
    routes: &BTreeMap<String, HostPort>,
) -> Route {
    if let Some(rec) = snap.domain(domain)
        && let Some(r) = registered(rec)
    {
        return r;
    }
    route_for(domain, snap, routes)
}

/// A registered domain's route: its one inbound next hop, or its inbound
/// servers in preference order.
fn registered(rec: &crate::model::domains::DomainRecord) -> Option<Route> {
    let mut hops = rec.inbound_routes();
    match hops.len() {
        0 => None,
        1 => hops.pop().map(Route::Registered),
        _ => Some(Route::RegisteredList(hops)),
    }
}

/// The `[delivery.routes]` entry for a domain: exact match, else `"*"`.
fn static_route<'a>(
    domain: &Domain,
    routes: &'a BTreeMap<String, HostPort>,
) -> Option<&'a HostPort> {
    if let Some(hp) = routes.get(domain.as_str()) {
        return Some(hp);
    }
    // Keys come from the configuration as typed ("Example.ORG.", a U-label):
    // compare them in canonical form too.
    routes
        .iter()
        .find(|(k, _)| k.as_str() != "*" && Domain::parse(k).is_ok_and(|d| &d == domain))
        .map(|(_, hp)| hp)
        .or_else(|| routes.get("*"))
}

/// One address to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The MX or next-hop host name, for TLS SNI and certificate checks (the
    /// IP text when the route named a literal address).
    pub host: String,
    /// Where to connect.
    pub addr: SocketAddr,
}

/// Why a route has no addresses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The domain publishes a null MX (RFC 7505): it accepts no mail.
    #[error("the domain accepts no mail (null MX, RFC 7505)")]
    NullMx,
    /// The domain does not exist (NXDOMAIN).
    #[error("the domain does not exist (NXDOMAIN)")]
    NoSuchDomain,
    /// The mail hosts have no usable A/AAAA records.
    #[error("no usable address for the mail hosts")]
    NoAddress,
    /// DNS failed for now (SERVFAIL, timeout, refused...).
    #[error("temporary DNS failure: {0}")]
    Temporary(String),
    /// The resolver or the route is misconfigured.
    #[error("resolver configuration: {0}")]
    Config(String),
    /// A DNSSEC-signed answer failed validation (bogus): an attack or a
    /// broken zone; the mail waits (RFC 7672 §2.1.1).
    #[error("DNSSEC validation failed: {0}")]
    Bogus(String),
}

impl ResolveError {
    /// True when retrying cannot help: bounce now.
    pub fn is_permanent(&self) -> bool {
        matches!(self, ResolveError::NullMx | ResolveError::NoSuchDomain)
    }

    /// The RFC 3463 enhanced status code for DSNs and logs.
    pub fn enhanced(&self) -> Enhanced {
        match self {
            // RFC 7505 §4.2.
            ResolveError::NullMx => Enhanced::new(5, 1, 10),
            // Bad destination system address.
            ResolveError::NoSuchDomain => Enhanced::new(5, 1, 2),
            // Unable to route.
            ResolveError::NoAddress => Enhanced::new(4, 4, 4),
            // Directory server failure.
            ResolveError::Temporary(_) => Enhanced::new(4, 4, 3),
            // System incorrectly configured: our fault, keep the mail.
            ResolveError::Config(_) => Enhanced::new(4, 3, 5),
            // Cryptographic failure.
            ResolveError::Bogus(_) => Enhanced::new(4, 7, 5),
        }
    }
}

/// Turns routes into addresses with hickory; cheap to clone (shared cache).
#[derive(Debug, Clone)]
pub struct Resolver {
    dns: TokioResolver,
    /// The same servers, validating DNSSEC: for destinations under DANE
    /// (none until [`Resolver::with_dnssec`]).
    secure: Option<TokioResolver>,
    cache: bool,
    nameservers: Vec<SocketAddr>,
    smtp_port: u16,
}

impl Resolver {
    /// A caching resolver: the system's (`/etc/resolv.conf`) when
    /// `nameservers` is empty, else exactly these servers over UDP and TCP.
    pub fn new(nameservers: &[SocketAddr]) -> Result<Resolver, ResolveError> {
        Self::build(nameservers, true)
    }

    /// For tests against a loopback DNS: no cache, so zone changes show at
    /// once, and a 1 s timeout with one retry instead of 5 s with two, so a
    /// dead server fails in 2 s rather than 15 s.
    pub fn new_uncached(nameservers: &[SocketAddr]) -> Result<Resolver, ResolveError> {
        Self::build(nameservers, false)
    }

    /// Uses `port` instead of 25 for MX targets (tests: a fake MX on loopback).
    pub fn with_smtp_port(mut self, port: u16) -> Resolver {
        self.smtp_port = port;
        self
    }

    /// Adds the DNSSEC-validating resolver that DANE uses, trusting the
    /// DNSKEYs in `anchor` (none: the built-in root keys).
    pub fn with_dnssec(
        mut self,
        anchor: Option<&std::path::Path>,
    ) -> Result<Resolver, ResolveError> {
        let builder = crate::dns::validating_resolver_builder(&self.nameservers, anchor)
            .map_err(|e| ResolveError::Config(format!("DNSSEC resolver: {e}")))?;
        self.secure = Some(Self::finish(builder, self.cache)?);
        Ok(self)
    }

    /// Whether DNSSEC validation is set up (DANE can apply).
    pub fn validates(&self) -> bool {
        self.secure.is_some()
    }

    fn build(nameservers: &[SocketAddr], cache: bool) -> Result<Resolver, ResolveError> {
        let builder = resolver_builder(nameservers)
            .map_err(|e| ResolveError::Config(format!("system resolver: {e}")))?;
        Ok(Resolver {
            dns: Self::finish(builder, cache)?,
            secure: None,
            cache,
            nameservers: nameservers.to_vec(),
            smtp_port: SMTP_PORT,
        })
    }

    fn finish(
        mut builder: hickory_resolver::ResolverBuilder<
            hickory_resolver::net::runtime::TokioRuntimeProvider,
        >,
        cache: bool,
    ) -> Result<TokioResolver, ResolveError> {
        let opts = builder.options_mut();
        // Mail routing follows the DNS only, like Postfix's default
        // smtp_host_lookup = dns: /etc/hosts must not redirect an MX.
        opts.use_hosts_file = ResolveHosts::Never;
        if !cache {
            opts.cache_size = 0;
            opts.timeout = Duration::from_secs(1);
            opts.attempts = 1;
        }
        builder
            .build()
            .map_err(|e| ResolveError::Config(e.to_string()))
    }

    /// The ordered addresses to try for a route; never empty on success.
    ///
    /// MX hosts come in preference order, equal preferences shuffled; the
    /// addresses of one host interleave IPv6 and IPv4, AAAA first
    /// (RFC 8305 §4), so a broken family costs one attempt, not all.
    pub async fn targets(&self, route: &Route) -> Result<Vec<Target>, ResolveError> {
        match route {
            Route::Registered(hp) | Route::Static(hp) => self.next_hop(hp).await,
            Route::RegisteredList(hops) => self.next_hops(hops).await,
            Route::Mx(domain) => self.mx(domain).await,
        }
    }

    /// The strings of `name`'s TXT records (each record's strings joined);
    /// empty when the name or the records do not exist.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, ResolveError> {
        let name = fqdn(name)?;
        match self.dns.lookup(name, RecordType::TXT).await {
            Ok(lookup) => Ok(txt_strings(lookup.answers())),
            Err(e) => match classify(&e) {
                Negative::NxDomain | Negative::NoData => Ok(Vec::new()),
                Negative::Bogus(text) => Err(ResolveError::Bogus(text)),
                Negative::Failure(text) => Err(ResolveError::Temporary(text)),
            },
        }
    }

    /// The targets for `domain`'s MX hosts, like [`Resolver::targets`], but
    /// looked up with DNSSEC validation, and what DANE says for each host:
    /// TLSA records (`_25._tcp.<host>`) are used only when both the MX and
    /// the host's address records are secure (RFC 7672 §2.2). A bogus MX
    /// answer is an error: the mail waits, and never goes in the clear.
    pub async fn dane_targets(
        &self,
        domain: &Domain,
    ) -> Result<(Vec<Target>, DaneHosts), ResolveError> {
        let Some(dns) = &self.secure else {
            return Err(ResolveError::Config(
                "DNSSEC validation is not set up".into(),
            ));
        };
        let mx = mx_hosts(dns, domain).await?;
        let mut jobs = tokio::task::JoinSet::new();
        let mut hosts = DaneHosts::default();
        for (host, found) in &mx.hosts {
            if !mx.secure {
                continue;
            }
            if let Some(why) = &found.error {
                // A failed (or bogus) address look-up must not pass for an
                // insecure host: that would switch DANE off.
                let failed = HostDane::Failed(format!("address look-up failed: {why}"));
                hosts.0.insert(host.clone(), failed);
            } else if found.secure {
                let (dns, host) = (dns.clone(), host.clone());
                jobs.spawn(async move { (host.clone(), tlsa(&dns, &host).await) });
            }
        }
        while let Some(joined) = jobs.join_next().await {
            match joined {
                Ok((host, dane)) => {
                    hosts.0.insert(host, dane);
                }
                Err(e) => return Err(ResolveError::Temporary(format!("lookup task failed: {e}"))),
            }
        }
        Ok((mx.into_targets(self.smtp_port)?, hosts))
    }

    /// The addresses of `host` on `port` (A/AAAA, no MX), as targets.
    pub async fn addresses(&self, host: &str, port: u16) -> Result<Vec<Target>, ResolveError> {
        self.next_hop(&HostPort {
            host: host.to_string(),
            port,
        })
        .await
    }

    /// Several next hops in order: their addresses one after the other (at
    /// most [`MAX_TARGETS`]); an error only when none has an address.
    async fn next_hops(&self, hops: &[HostPort]) -> Result<Vec<Target>, ResolveError> {
        let mut out = Vec::new();
        let mut last = ResolveError::NoAddress;
        for hp in hops {
            match self.next_hop(hp).await {
                Ok(t) => out.extend(t),
                Err(e) => last = e,
            }
        }
        out.truncate(MAX_TARGETS);
        if out.is_empty() { Err(last) } else { Ok(out) }
    }

    /// A configured next hop: a literal address, or a name's A/AAAA without
    /// an MX lookup (Postfix's `[host]`).
    async fn next_hop(&self, hp: &HostPort) -> Result<Vec<Target>, ResolveError> {
        let text = hp.host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = text.parse::<IpAddr>() {
            if !usable(ip) {
                return Err(ResolveError::Config(format!(
                    "next hop {hp} is not a usable address"
                )));
            }
            return Ok(vec![Target {
                host: ip.to_string(),
                addr: SocketAddr::new(ip, hp.port),
            }]);
        }
        let name = fqdn(text)?;
        let found = host_addrs(self.dns.clone(), name).await;
        // NXDOMAIN for our own next hop is a configuration mistake, not the
        // recipient's: keep the mail (NoAddress is temporary).
        let targets = to_targets(text, &found.addrs, hp.port, &mut HashSet::new());
        if targets.is_empty() {
            return Err(found
                .error
                .map_or(ResolveError::NoAddress, ResolveError::Temporary));
        }
        Ok(targets)
    }

    /// RFC 5321 §5.1: MX hosts, else the implicit MX; RFC 7505 null MX.
    async fn mx(&self, domain: &Domain) -> Result<Vec<Target>, ResolveError> {
        mx_hosts(&self.dns, domain)
            .await?
            .into_targets(self.smtp_port)
    }
}

/// A domain's mail hosts in the order to try them, each with its addresses.
struct MxHosts {
    /// Host name (lowercase, no trailing dot) and what its look-ups gave.
    hosts: Vec<(String, HostAddrs)>,
    /// Whether the MX answer was DNSSEC-secure (an implicit MX counts as
    /// secure: its address records' own proof then decides).
    secure: bool,
}

impl MxHosts {
    /// The addresses to try, at most [`MAX_TARGETS`]; an error when none.
    fn into_targets(self, port: u16) -> Result<Vec<Target>, ResolveError> {
        let mut seen = HashSet::new();
        let mut targets = Vec::new();
        let mut first_error = None;
        for (host, found) in &self.hosts {
            if first_error.is_none() {
                first_error = found.error.clone();
            }
            targets.extend(to_targets(host, &found.addrs, port, &mut seen));
            if targets.len() >= MAX_TARGETS {
                targets.truncate(MAX_TARGETS);
                break;
            }
        }
        if targets.is_empty() {
            // A failed lookup may still succeed later; hosts that answered
            // "no such address" leave nothing to wait for but the zone's fix,
            // which NoAddress (temporary) waits for too.
            return Err(first_error.map_or(ResolveError::NoAddress, ResolveError::Temporary));
        }
        Ok(targets)
    }
}

/// RFC 5321 §5.1: the MX hosts of `domain` through `dns`, else the implicit
/// MX; RFC 7505 null MX.
async fn mx_hosts(dns: &TokioResolver, domain: &Domain) -> Result<MxHosts, ResolveError> {
    let name = fqdn(domain.as_str())?;
    let (exchanges, secure): (Vec<(u16, Name)>, bool) =
        match dns.lookup(name.clone(), RecordType::MX).await {
            // A CNAME chain leaves CNAME records among the answers: keep MX only.
            Ok(lookup) => (
                lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some((mx.preference, mx.exchange.clone())),
                        _ => None,
                    })
                    .collect(),
                all_secure(lookup.answers()),
            ),
            Err(e) => match classify(&e) {
                Negative::NxDomain => return Err(ResolveError::NoSuchDomain),
                Negative::NoData => (Vec::new(), true),
                Negative::Bogus(text) => {
                    return Err(ResolveError::Bogus(format!("MX of {domain}: {text}")));
                }
                Negative::Failure(text) => return Err(ResolveError::Temporary(text)),
            },
        };

    if exchanges.is_empty() {
        // Implicit MX: the domain itself, as if "MX 0 domain".
        let found = host_addrs(dns.clone(), name).await;
        return Ok(MxHosts {
            hosts: vec![(domain.as_str().to_string(), found)],
            secure,
        });
    }
    // RFC 7505 §3: a null MX is the only MX record. Its preference
    // should be 0, but the root exchange alone says it unambiguously.
    if exchanges.iter().all(|(_, ex)| ex.is_root()) {
        return Err(ResolveError::NullMx);
    }
    let hosts = order_exchanges(exchanges, &mut rand::rng());

    // Resolve all hosts at once: one slow or failing host must not
    // delay the others by a full DNS timeout each.
    let mut jobs = tokio::task::JoinSet::new();
    for (i, host) in hosts.iter().enumerate() {
        let dns = dns.clone();
        let host = host.clone();
        jobs.spawn(async move { (i, host_addrs(dns, host).await) });
    }
    let mut results: Vec<Option<HostAddrs>> = (0..hosts.len()).map(|_| None).collect();
    while let Some(joined) = jobs.join_next().await {
        match joined {
            Ok((i, found)) => results[i] = Some(found),
            Err(e) => return Err(ResolveError::Temporary(format!("lookup task failed: {e}"))),
        }
    }
    Ok(MxHosts {
        hosts: hosts
            .iter()
            .zip(results)
            .filter_map(|(h, found)| Some((host_text(h), found?)))
            .collect(),
        secure,
    })
}

/// Whether an answer is DNSSEC-secure: records there, every one proven
/// (signatures themselves aside). Never true from a non-validating resolver.
fn all_secure(answers: &[Record]) -> bool {
    let mut data = answers
        .iter()
        .filter(|r| r.record_type() != RecordType::RRSIG)
        .peekable();
    data.peek().is_some() && data.all(|r| r.proof.is_secure())
}

/// What DANE says for `host` (secure MX and addresses already): its TLSA
/// records at `_25._tcp.<host>` (port 25 whatever `mx_port` says: the TLSA
/// name follows the MX, RFC 7672 §2.2.1).
async fn tlsa(dns: &TokioResolver, host: &str) -> HostDane {
    let name = match fqdn(&format!("_25._tcp.{host}")) {
        Ok(n) => n,
        Err(e) => return HostDane::Failed(e.to_string()),
    };
    match dns.lookup(name, RecordType::TLSA).await {
        Ok(lookup) => {
            let records: Vec<&Record> = lookup
                .answers()
                .iter()
                .filter(|r| r.record_type() == RecordType::TLSA)
                .collect();
            // Insecure TLSA records (a CNAME into an unsigned zone) are as
            // good as none.
            if records.is_empty() || !records.iter().all(|r| r.proof.is_secure()) {
                return HostDane::None;
            }
            let usable: Vec<Tlsa> = records
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TLSA(t) => Tlsa::usable(
                        t.cert_usage.into(),
                        t.selector.into(),
                        t.matching.into(),
                        &t.cert_data,
                    ),
                    _ => None,
                })
                .collect();
            if usable.is_empty() {
                HostDane::Unusable
            } else {
                HostDane::Usable(std::sync::Arc::new(TlsaSet {
                    host: host.to_string(),
                    records: usable,
                }))
            }
        }
        Err(e) => match classify(&e) {
            Negative::NxDomain | Negative::NoData => HostDane::None,
            Negative::Bogus(text) | Negative::Failure(text) => {
                HostDane::Failed(format!("TLSA look-up for {host} failed: {text}"))
            }
        },
    }
}

/// A fully qualified DNS name, so that no search domain is appended.
fn fqdn(text: &str) -> Result<Name, ResolveError> {
    let mut name = Name::from_ascii(text)
        .map_err(|e| ResolveError::Config(format!("`{text}` is not a DNS name: {e}")))?;
    name.set_fqdn(true);
    Ok(name)
}

/// A DNS name as a host name: lowercase, without the trailing dot.
fn host_text(name: &Name) -> String {
    let text = name.to_lowercase().to_ascii();
    match text.strip_suffix('.') {
        Some(t) if !t.is_empty() => t.to_string(),
        _ => text,
    }
}

/// The MX exchanges by preference, equal preferences in random order
/// (RFC 5321 §5.1), without null-MX entries or duplicates, at most
/// [`MAX_MX_HOSTS`].
fn order_exchanges<R: Rng + ?Sized>(mut mx: Vec<(u16, Name)>, rng: &mut R) -> Vec<Name> {
    // Shuffle first, then a stable sort: ties stay in random order.
    mx.shuffle(rng);
    mx.sort_by_key(|(pref, _)| *pref);
    let mut seen = HashSet::new();
    mx.into_iter()
        .map(|(_, ex)| ex.to_lowercase())
        .filter(|ex| !ex.is_root() && seen.insert(ex.clone()))
        .take(MAX_MX_HOSTS)
        .collect()
}

/// Whether an answer address can be an SMTP server at all. Loopback stays
/// allowed: tests and local relays use it.
fn usable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

/// Targets for one host's addresses, skipping any already in `seen`.
fn to_targets(host: &str, addrs: &[IpAddr], port: u16, seen: &mut HashSet<IpAddr>) -> Vec<Target> {
    addrs
        .iter()
        .filter(|ip| seen.insert(**ip))
        .map(|ip| Target {
            host: host.to_string(),
            addr: SocketAddr::new(*ip, port),
        })
        .collect()
}

/// What a host's A and AAAA lookups gave.
#[derive(Debug, Clone, Default)]
struct HostAddrs {
    /// Usable addresses, IPv6 and IPv4 interleaved, at most [`MAX_ADDRS_PER_HOST`].
    addrs: Vec<IpAddr>,
    /// A lookup that failed in a way that may pass (not "no such record").
    error: Option<String>,
    /// Every address record found was DNSSEC-secure (and there was one).
    secure: bool,
}

/// Looks up AAAA and A for one host at the same time.
async fn host_addrs(dns: TokioResolver, name: Name) -> HostAddrs {
    let (v6, v4) = tokio::join!(
        dns.lookup(name.clone(), RecordType::AAAA),
        dns.lookup(name.clone(), RecordType::A)
    );
    let mut error = None;
    let mut found = 0usize;
    let mut secure = true;
    let mut family = |r: Result<hickory_resolver::lookup::Lookup, NetError>| -> Vec<IpAddr> {
        match r {
            Ok(lookup) => {
                found += 1;
                secure &= all_secure(lookup.answers());
                lookup
                    .answers()
                    .iter()
                    .filter_map(|rec| match &rec.data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                        _ => None,
                    })
                    .filter(|ip| usable(*ip))
                    .collect()
            }
            Err(e) => {
                if let Negative::Failure(text) | Negative::Bogus(text) = classify(&e) {
                    error.get_or_insert(format!("{name}: {text}"));
                }
                Vec::new()
            }
        }
    };
    let v6 = family(v6);
    let v4 = family(v4);
    HostAddrs {
        addrs: interleave(v6, v4, MAX_ADDRS_PER_HOST),
        secure: secure && found > 0 && error.is_none(),
        error,
    }
}

/// `a[0], b[0], a[1], b[1], ...` without duplicates, at most `max`.
fn interleave(a: Vec<IpAddr>, b: Vec<IpAddr>, max: usize) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let (mut a, mut b) = (a.into_iter(), b.into_iter());
    loop {
        let (x, y) = (a.next(), b.next());
        if x.is_none() && y.is_none() {
            break;
        }
        for ip in [x, y].into_iter().flatten() {
            if out.len() < max && !out.contains(&ip) {
                out.push(ip);
            }
        }
        if out.len() >= max {
            break;
        }
    }
    out
}

/// How a failed lookup failed.
enum Negative {
    /// The name does not exist.
    NxDomain,
    /// The name exists without records of the asked type.
    NoData,
    /// Signed, but the signatures do not validate.
    Bogus(String),
    /// Anything else (SERVFAIL, REFUSED, timeout, I/O): worth a retry.
    Failure(String),
}

fn classify(e: &NetError) -> Negative {
    if e.is_nx_domain() {
        Negative::NxDomain
    } else if e.is_no_records_found() {
        Negative::NoData
    } else if matches!(e, NetError::Dns(DnsError::DnssecBogus)) {
        Negative::Bogus(e.to_string())
    } else if let NetError::Dns(DnsError::Nsec { proof, .. }) = e
        && !proof.is_bogus()
    {
        // A denial the validator could not prove secure (NSEC3 with too
        // many iterations, say): no records, insecurely.
        Negative::NoData
    } else {
        Negative::Failure(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn exchanges_sorted_by_preference_without_root_and_duplicates() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let got = order_exchanges(
            vec![
                (20, n("b.example.")),
                (10, n("A.example.")),
                (30, n(".")),
                (40, n("a.example.")),
            ],
            &mut rng,
        );
        assert_eq!(got, vec![n("a.example."), n("b.example.")]);
    }

    #[test]
    fn equal_preferences_come_in_both_orders() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mx = vec![
            (10, n("x.example.")),
            (10, n("y.example.")),
            (5, n("first.example.")),
        ];
        let mut firsts = HashSet::new();
        for _ in 0..64 {
            let got = order_exchanges(mx.clone(), &mut rng);
            assert_eq!(got[0], n("first.example."));
            firsts.insert(got[1].clone());
        }
        assert_eq!(firsts.len(), 2);
    }

    #[test]
    fn exchanges_are_capped() {
        let mx = (0..50u16)
            .map(|i| (i, n(&format!("mx{i}.example."))))
            .collect();
        let got = order_exchanges(mx, &mut rand::rng());
        assert_eq!(got.len(), MAX_MX_HOSTS);
        assert_eq!(got[0], n("mx0.example."));
    }

    #[test]
    fn interleave_puts_v6_first_and_caps() {
        let v6: Vec<IpAddr> = vec!["::2".parse().unwrap(), "::3".parse().unwrap()];
        let v4: Vec<IpAddr> = (1..=9)
            .map(|i| format!("192.0.2.{i}").parse().unwrap())
            .collect();
        let got = interleave(v6, v4, 5);
        let text: Vec<String> = got.iter().map(|ip| ip.to_string()).collect();
        assert_eq!(text, ["::2", "192.0.2.1", "::3", "192.0.2.2", "192.0.2.3"]);
    }

    #[test]
    fn unspecified_and_multicast_are_not_usable() {
        for bad in ["0.0.0.0", "::", "224.0.0.1", "255.255.255.255", "ff02::1"] {
            assert!(!usable(bad.parse().unwrap()), "{bad}");
        }
        for good in ["127.0.0.1", "::1", "192.0.2.1", "2001:db8::1"] {
            assert!(usable(good.parse().unwrap()), "{good}");
        }
    }

    #[test]
    fn static_route_keys_compare_canonically() {
        let hp = |p| HostPort {
            host: "127.0.0.1".into(),
            port: p,
        };
        let mut routes = BTreeMap::new();
        routes.insert("Example.ORG.".to_string(), hp(1));
        routes.insert("*".to_string(), hp(2));
        let d = Domain::parse("example.org").unwrap();
        assert_eq!(static_route(&d, &routes), Some(&hp(1)));
        let other = Domain::parse("other.org").unwrap();
        assert_eq!(static_route(&other, &routes), Some(&hp(2)));
        routes.remove("*");
        assert_eq!(static_route(&other, &routes), None);
    }

    #[test]
    fn host_text_is_lowercase_without_dot() {
        assert_eq!(host_text(&n("MX1.Example.ORG.")), "mx1.example.org");
    }

    #[test]
    fn permanence_and_codes() {
        assert!(ResolveError::NullMx.is_permanent());
        assert!(ResolveError::NoSuchDomain.is_permanent());
        assert!(!ResolveError::NoAddress.is_permanent());
        assert!(!ResolveError::Temporary("x".into()).is_permanent());
        assert!(!ResolveError::Config("x".into()).is_permanent());
        assert_eq!(ResolveError::NullMx.enhanced().to_string(), "5.1.10");
        assert_eq!(ResolveError::NoSuchDomain.enhanced().to_string(), "5.1.2");
    }
}
