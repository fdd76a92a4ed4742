//! Advice for the operator deciding an application, shown by `application
//! show`: never a gate, and never an error. Anything that cannot be checked
//! (DNS down, a timeout) says so instead of failing the request.
//!
//! DNS lookups are small and separate from delivery's resolver on purpose:
//! they answer an operator's question, with a short timeout, and must not
//! share delivery's caches or failure handling.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::RData;
use ipnet::IpNet;
use serde::Serialize;

use super::overlaps;
use crate::config::Config;
use crate::domain::Domain;
use crate::model::applications::{ApplicationRecord, ApplicationStatus};
use crate::model::domains::{DomainRecord, DomainStatus};

/// How a check came out, from good to bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Nothing to worry about.
    Ok,
    /// Could not be checked.
    Unknown,
    /// Worth a look before deciding.
    Warning,
    /// Likely to stop the connection from working.
    Problem,
}

/// One piece of advice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Advice {
    /// Which check: `domain_syntax`, `registry`, `mx`, `spf`, `server_address`, `server_overlap`.
    pub check: &'static str,
    /// The outcome.
    pub verdict: Verdict,
    /// What was found, in words.
    pub detail: String,
}

fn advice(check: &'static str, verdict: Verdict, detail: impl Into<String>) -> Advice {
    Advice {
        check,
        verdict,
        detail: detail.into(),
    }
}

/// The domain name as a mail domain: LDH labels (RFC 5321 4.1.2), a non-numeric top label.
pub fn domain_syntax(d: &Domain) -> Advice {
    let name = d.as_str();
    if let Some(label) = name.split('.').find(|l| l.contains('_')) {
        return advice(
            "domain_syntax",
            Verdict::Problem,
            format!("label `{label}` has an underscore: not a valid mail domain"),
        );
    }
    let tld = name.rsplit('.').next().unwrap_or("");
    if tld.bytes().all(|b| b.is_ascii_digit()) {
        return advice(
            "domain_syntax",
            Verdict::Problem,
            format!("top-level label `{tld}` is numeric"),
        );
    }
    let (unicode, _) = idna::domain_to_unicode(name);
    let detail = if unicode != name {
        format!("valid domain name ({unicode})")
    } else {
        "valid domain name".to_string()
    };
    advice("domain_syntax", Verdict::Ok, detail)
}

/// What approving would do to the registry.
pub fn registry_standing(app: &ApplicationRecord, domains: &[Arc<DomainRecord>]) -> Advice {
    match domains.iter().find(|d| d.name == app.domain) {
        None => advice(
            "registry",
            Verdict::Ok,
            "not registered: approval registers it",
        ),
        Some(d) if d.status == DomainStatus::Disconnected => advice(
            "registry",
            Verdict::Ok,
            format!(
                "disconnected since {}: approval connects it again with this application's data",
                d.status_since.format("%Y-%m-%d")
            ),
        ),
        Some(d) => advice(
            "registry",
            Verdict::Problem,
            format!(
                "already registered ({}): approval will be refused",
                d.status
            ),
        ),
    }
}

/// Address blocks that are not public unicast space (IANA special-purpose
/// registries, RFC 6890 and its updates), with why.
const SPECIAL: &[(&str, &str)] = &[
    ("0.0.0.0/8", "\"this network\" (RFC 791)"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "shared carrier-grade NAT space (RFC 6598)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
    ("192.0.2.0/24", "documentation (RFC 5737)"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast (RFC 7526)"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation (RFC 5737)"),
    ("203.0.113.0/24", "documentation (RFC 5737)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved (RFC 1112)"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::ffff:0:0/96", "IPv4-mapped (register the IPv4 address)"),
    ("100::/64", "discard-only (RFC 6666)"),
    ("2001:db8::/32", "documentation (RFC 3849)"),
    ("3fff::/20", "documentation (RFC 9637)"),
    ("fc00::/7", "unique local (RFC 4193)"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
];

/// Why an address range is not public and routable, if it is not.
pub fn special_range(net: &IpNet) -> Option<&'static str> {
    SPECIAL.iter().find_map(|(block, why)| {
        let block: IpNet = block.parse().ok()?;
        overlaps(net, &block).then_some(*why)
    })
}

/// One piece of advice per server address: public and routable, and not too wide.
pub fn server_addresses(servers: &[IpNet]) -> Vec<Advice> {
    servers
        .iter()
        .map(|s| {
            if let Some(why) = special_range(s) {
                return advice(
                    "server_address",
                    Verdict::Problem,
                    format!("{s}: {why}, not reachable from the internet"),
                );
            }
            let (len, host, wide) = match s {
                IpNet::V4(n) => (n.prefix_len(), 32, 24),
                IpNet::V6(n) => (n.prefix_len(), 128, 48),
            };
            if len < wide {
                let count = if host - len >= 64 {
                    format!("2^{}", host - len)
                } else {
                    (1u128 << (host - len)).to_string()
                };
                return advice(
                    "server_address",
                    Verdict::Warning,
                    format!("{s}: a wide range, {count} addresses may relay for the domain"),
                );
            }
            advice(
                "server_address",
                Verdict::Ok,
                format!("{s}: public and routable"),
            )
        })
        .collect()
}

/// Overlap of the application's servers with other domains' registered
/// servers, and with other pending applications.
pub fn server_overlap(
    app: &ApplicationRecord,
    domains: &[Arc<DomainRecord>],
    applications: &[ApplicationRecord],
) -> Advice {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for s in &app.servers {
        for d in domains {
            if d.name == app.domain || d.status == DomainStatus::Disconnected {
                continue;
            }
            for o in d.servers.iter().filter(|o| overlaps(s, o)) {
                if d.shared_servers {
                    warnings.push(format!(
                        "{s} overlaps {o} of {} ({}), which allows shared servers: approve with --shared-servers",
                        d.name, d.status
                    ));
                } else {
                    problems.push(format!(
                        "{s} overlaps {o} of {} ({}): approval will be refused",
                        d.name, d.status
                    ));
                }
            }
        }
        for a in applications {
            if a.id == app.id || a.domain == app.domain || a.status != ApplicationStatus::Pending {
                continue;
            }
            for o in a.servers.iter().filter(|o| overlaps(s, o)) {
                warnings.push(format!(
                    "{s} overlaps {o} of pending application #{} ({})",
                    a.id, a.domain
                ));
            }
        }
    }
    if !problems.is_empty() {
        problems.extend(warnings);
        advice("server_overlap", Verdict::Problem, problems.join("; "))
    } else if !warnings.is_empty() {
        advice("server_overlap", Verdict::Warning, warnings.join("; "))
    } else {
        advice(
            "server_overlap",
            Verdict::Ok,
            "no overlap with other domains' servers",
        )
    }
}

/// Why a DNS question got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsFail {
    /// The name does not exist.
    NxDomain,
    /// The name exists without records of the type.
    NoRecords,
    /// The lookup failed (timeout, refused, ...).
    Failed(String),
}

/// The DNS questions the checks ask; a trait so that tests answer them.
pub trait Lookup: Send + Sync {
    /// MX records as (preference, exchange without the trailing dot).
    fn mx(&self, name: &str) -> impl Future<Output = Result<Vec<(u16, String)>, DnsFail>> + Send;
    /// TXT records, each one's strings joined.
    fn txt(&self, name: &str) -> impl Future<Output = Result<Vec<String>, DnsFail>> + Send;
    /// A and AAAA records.
    fn ips(&self, name: &str) -> impl Future<Output = Result<Vec<IpAddr>, DnsFail>> + Send;
}

/// Lookups through hickory-resolver, with a short timeout and no retries.
pub struct HickoryLookup {
    resolver: TokioResolver,
}

impl HickoryLookup {
    /// Uses `nameservers` (`[delivery] nameservers`), or the system's when empty.
    pub fn new(nameservers: &[SocketAddr], timeout: Duration) -> Result<HickoryLookup, String> {
        let mut builder = crate::dns::resolver_builder(nameservers)
            .map_err(|e| format!("no system resolver configuration: {e}"))?;
        let opts = builder.options_mut();
        opts.timeout = timeout;
        opts.attempts = 1;
        let resolver = builder
            .build()
            .map_err(|e| format!("cannot set up the resolver: {e}"))?;
        Ok(HickoryLookup { resolver })
    }
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

fn dns_fail(e: NetError) -> DnsFail {
    if e.is_nx_domain() {
        DnsFail::NxDomain
    } else if e.is_no_records_found() {
        DnsFail::NoRecords
    } else {
        DnsFail::Failed(e.to_string())
    }
}

impl Lookup for HickoryLookup {
    async fn mx(&self, name: &str) -> Result<Vec<(u16, String)>, DnsFail> {
        let l = self
            .resolver
            .mx_lookup(fqdn(name))
            .await
            .map_err(dns_fail)?;
        Ok(l.answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::MX(mx) => Some((
                    mx.preference,
                    mx.exchange
                        .to_ascii()
                        .trim_end_matches('.')
                        .to_ascii_lowercase(),
                )),
                _ => None,
            })
            .collect())
    }

    async fn txt(&self, name: &str) -> Result<Vec<String>, DnsFail> {
        let l = self
            .resolver
            .txt_lookup(fqdn(name))
            .await
            .map_err(dns_fail)?;
        // A long SPF record comes as several strings, joined without spaces.
        Ok(crate::dns::txt_strings(l.answers()))
    }

    async fn ips(&self, name: &str) -> Result<Vec<IpAddr>, DnsFail> {
        let l = self
            .resolver
            .lookup_ip(fqdn(name))
            .await
            .map_err(dns_fail)?;
        Ok(l.iter().collect())
    }
}

fn could_not(check: &'static str, why: &str) -> Advice {
    advice(check, Verdict::Unknown, format!("could not check: {why}"))
}

/// Does the domain's MX point at the gateway, and is it the preferred one?
pub async fn mx_advice<L: Lookup>(dns: &L, domain: &Domain, gateway: &Domain) -> Advice {
    let mut mx = match dns.mx(domain.as_str()).await {
        Ok(v) if !v.is_empty() => v,
        Ok(_) | Err(DnsFail::NoRecords) => {
            return advice(
                "mx",
                Verdict::Warning,
                format!("no MX records: the domain's MX must point at {gateway}"),
            );
        }
        Err(DnsFail::NxDomain) => {
            return advice(
                "mx",
                Verdict::Problem,
                format!("{domain} does not exist in DNS (NXDOMAIN)"),
            );
        }
        Err(DnsFail::Failed(e)) => return could_not("mx", &e),
    };
    mx.sort();
    let list: Vec<String> = mx.iter().map(|(p, h)| format!("{h} ({p})")).collect();
    let list = list.join(", ");
    let ours = mx.iter().find(|(_, h)| h == gateway.as_str());
    match ours {
        None => advice(
            "mx",
            Verdict::Warning,
            format!("MX points at {list}, not at the gateway {gateway}"),
        ),
        Some((p, _)) if mx.iter().any(|(q, h)| q < p && h != gateway.as_str()) => advice(
            "mx",
            Verdict::Warning,
            format!("MX includes the gateway but prefers other hosts: {list}"),
        ),
        Some(_) => advice(
            "mx",
            Verdict::Ok,
            format!("MX points at the gateway: {list}"),
        ),
    }
}

/// The result of evaluating an SPF record for one address (RFC 7208 2.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpfResult {
    /// Authorized.
    Pass,
    /// Explicitly not authorized.
    Fail,
    /// Weakly not authorized.
    SoftFail,
    /// No assertion.
    Neutral,
    /// No SPF record.
    None,
    /// The record is broken.
    PermError(String),
    /// DNS failed, or the record uses what this evaluator does not (macros, exists).
    TempError(String),
}

/// RFC 7208 4.6.4: at most 10 mechanisms and modifiers that query DNS.
const SPF_LOOKUP_LIMIT: u32 = 10;

type SpfFuture<'a> = Pin<Box<dyn Future<Output = SpfResult> + Send + 'a>>;

/// Finds the single `v=spf1` record of a domain.
async fn spf_record<L: Lookup>(dns: &L, domain: &str) -> Result<Option<String>, SpfResult> {
    let txt = match dns.txt(domain).await {
        Ok(v) => v,
        Err(DnsFail::NxDomain | DnsFail::NoRecords) => return Ok(None),
        Err(DnsFail::Failed(e)) => return Err(SpfResult::TempError(e)),
    };
    let spf: Vec<String> = txt
        .into_iter()
        .filter(|t| {
            let l = t.to_ascii_lowercase();
            l == "v=spf1" || l.starts_with("v=spf1 ")
        })
        .collect();
    match spf.len() {
        0 => Ok(None),
        1 => Ok(spf.into_iter().next()),
        n => Err(SpfResult::PermError(format!(
            "{domain} has {n} SPF records (RFC 7208 3.2 allows one)"
        ))),
    }
}

/// The target of an `a`, `mx` or `include` term: `:domain/24//64`.
struct Target<'a> {
    /// The domain named, if any (else the current domain).
    domain: Option<&'a str>,
    /// IPv4 prefix length.
    v4: Option<u8>,
    /// IPv6 prefix length.
    v6: Option<u8>,
}

/// Splits `:domain/24//64` into the optional domain and the two prefix lengths.
fn spec_and_cidr(rest: &str) -> Result<Target<'_>, String> {
    let (spec, v4, v6) = match rest.split_once("//") {
        Some((left, v6)) => {
            let (spec, v4) = left
                .split_once('/')
                .map_or((left, None), |(s, c)| (s, Some(c)));
            (spec, v4, Some(v6))
        }
        None => {
            let (spec, v4) = rest
                .split_once('/')
                .map_or((rest, None), |(s, c)| (s, Some(c)));
            (spec, v4, None)
        }
    };
    let num = |c: Option<&str>, max: u8| -> Result<Option<u8>, String> {
        c.map(|c| {
            c.parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("bad prefix length `{c}`"))
        })
        .transpose()
    };
    let spec = spec.strip_prefix(':');
    Ok(Target {
        domain: spec.filter(|s| !s.is_empty()),
        v4: num(v4, 32)?,
        v6: num(v6, 128)?,
    })
}

fn in_cidr(ip: IpAddr, target: IpAddr, v4: Option<u8>, v6: Option<u8>) -> bool {
    match (ip, target) {
        (IpAddr::V4(_), IpAddr::V4(_)) => IpNet::new(target, v4.unwrap_or(32))
            .map(|n| n.contains(&ip))
            .unwrap_or(false),
        (IpAddr::V6(_), IpAddr::V6(_)) => IpNet::new(target, v6.unwrap_or(128))
            .map(|n| n.contains(&ip))
            .unwrap_or(false),
        _ => false,
    }
}

/// Evaluates `domain`'s SPF policy for `ip`: the `check_host()` of RFC 7208,
/// without macros, `exists` and `ptr` (rare, and not needed for the question
/// "does the record authorize the gateway").
pub fn check_host<'a, L: Lookup>(
    dns: &'a L,
    ip: IpAddr,
    domain: String,
    lookups: &'a mut u32,
) -> SpfFuture<'a> {
    Box::pin(async move {
        let record = match spf_record(dns, &domain).await {
            Ok(Some(r)) => r,
            Ok(None) => return SpfResult::None,
            Err(e) => return e,
        };
        let mut redirect = None;
        for term in record.split_ascii_whitespace().skip(1) {
            let lower = term.to_ascii_lowercase();
            // A modifier has `=` before any `:` or `/`; only redirect matters here.
            if let Some((name, value)) = lower.split_once('=')
                && !name.contains(':')
                && !name.contains('/')
            {
                if name == "redirect" {
                    redirect = Some(value.to_string());
                }
                continue;
            }
            if term.contains('%') {
                return SpfResult::TempError(format!("`{term}` uses macros, not evaluated"));
            }
            let (qualifier, mech) = match lower.as_bytes().first() {
                Some(b'+' | b'-' | b'~' | b'?') => (&lower[..1], &lower[1..]),
                _ => ("+", lower.as_str()),
            };
            let (name, rest) = match mech.find([':', '/']) {
                Some(i) => (&mech[..i], &mech[i..]),
                None => (mech, ""),
            };
            let matched = match name {
                "all" => true,
                "ip4" | "ip6" => {
                    let net = rest.strip_prefix(':').unwrap_or("");
                    match net
                        .parse::<IpNet>()
                        .or_else(|_| net.parse::<IpAddr>().map(IpNet::from))
                    {
                        Ok(n) => n.contains(&ip),
                        Err(_) => return SpfResult::PermError(format!("bad mechanism `{term}`")),
                    }
                }
                "a" | "mx" | "include" => {
                    *lookups += 1;
                    if *lookups > SPF_LOOKUP_LIMIT {
                        return SpfResult::PermError(
                            "more than 10 DNS-querying terms (RFC 7208 4.6.4)".into(),
                        );
                    }
                    let Target {
                        domain: spec,
                        v4,
                        v6,
                    } = match spec_and_cidr(rest) {
                        Ok(x) => x,
                        Err(e) => return SpfResult::PermError(format!("`{term}`: {e}")),
                    };
                    let target = spec.unwrap_or(&domain).to_string();
                    match name {
                        "include" => {
                            if spec.is_none() {
                                return SpfResult::PermError(format!("`{term}` names no domain"));
                            }
                            match check_host(dns, ip, target, lookups).await {
                                SpfResult::Pass => true,
                                SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => false,
                                SpfResult::None => {
                                    return SpfResult::PermError(format!(
                                        "`{term}`: the included domain has no SPF record"
                                    ));
                                }
                                other => return other,
                            }
                        }
                        "a" => match dns.ips(&target).await {
                            Ok(ips) => ips.into_iter().any(|t| in_cidr(ip, t, v4, v6)),
                            Err(DnsFail::NxDomain | DnsFail::NoRecords) => false,
                            Err(DnsFail::Failed(e)) => return SpfResult::TempError(e),
                        },
                        _ => {
                            let hosts = match dns.mx(&target).await {
                                Ok(v) => v,
                                Err(DnsFail::NxDomain | DnsFail::NoRecords) => Vec::new(),
                                Err(DnsFail::Failed(e)) => return SpfResult::TempError(e),
                            };
                            let mut hit = false;
                            // RFC 7208 4.6.4: at most 10 MX names are looked up.
                            for (_, host) in hosts.iter().take(10) {
                                match dns.ips(host).await {
                                    Ok(ips) if ips.iter().any(|t| in_cidr(ip, *t, v4, v6)) => {
                                        hit = true;
                                        break;
                                    }
                                    Ok(_) | Err(DnsFail::NxDomain | DnsFail::NoRecords) => {}
                                    Err(DnsFail::Failed(e)) => return SpfResult::TempError(e),
                                }
                            }
                            hit
                        }
                    }
                }
                "exists" => {
                    return SpfResult::TempError(format!("`{term}` not evaluated"));
                }
                // ptr is deprecated (RFC 7208 5.5) and slow: taken as no match.
                "ptr" => false,
                _ => return SpfResult::PermError(format!("unknown mechanism `{term}`")),
            };
            if matched {
                return match qualifier {
                    "-" => SpfResult::Fail,
                    "~" => SpfResult::SoftFail,
                    "?" => SpfResult::Neutral,
                    _ => SpfResult::Pass,
                };
            }
        }
        if let Some(target) = redirect {
            if target.contains('%') {
                return SpfResult::TempError(format!(
                    "redirect={target} uses macros, not evaluated"
                ));
            }
            *lookups += 1;
            if *lookups > SPF_LOOKUP_LIMIT {
                return SpfResult::PermError(
                    "more than 10 DNS-querying terms (RFC 7208 4.6.4)".into(),
                );
            }
            return match check_host(dns, ip, target.clone(), lookups).await {
                SpfResult::None => SpfResult::PermError(format!(
                    "redirect={target}: that domain has no SPF record"
                )),
                other => other,
            };
        }
        SpfResult::Neutral
    })
}

/// Does the domain's SPF record authorize every gateway address?
pub async fn spf_advice<L: Lookup>(dns: &L, domain: &Domain, gateway: &[IpAddr]) -> Advice {
    let record = match spf_record(dns, domain.as_str()).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return advice(
                "spf",
                Verdict::Warning,
                "no SPF record: receivers cannot tell that the gateway may send for the domain",
            );
        }
        Err(SpfResult::TempError(e)) => return could_not("spf", &e),
        Err(SpfResult::PermError(e)) => return advice("spf", Verdict::Problem, e),
        Err(other) => return could_not("spf", &format!("{other:?}")),
    };
    if gateway.is_empty() {
        return advice(
            "spf",
            Verdict::Unknown,
            format!(
                "SPF record `{record}`; set [registration] gateway_addresses to check that it authorizes the gateway"
            ),
        );
    }
    let mut missing = Vec::new();
    let mut unknown = Vec::new();
    for ip in gateway {
        let mut lookups = 0;
        match check_host(dns, *ip, domain.to_string(), &mut lookups).await {
            SpfResult::Pass => {}
            SpfResult::PermError(e) => {
                return advice(
                    "spf",
                    Verdict::Problem,
                    format!("SPF record `{record}`: {e}"),
                );
            }
            SpfResult::TempError(e) => unknown.push(format!("{ip} ({e})")),
            other => missing.push(format!("{ip} ({})", format!("{other:?}").to_lowercase())),
        }
    }
    if !missing.is_empty() {
        advice(
            "spf",
            Verdict::Warning,
            format!(
                "SPF record `{record}` does not authorize the gateway address(es) {}",
                missing.join(", ")
            ),
        )
    } else if !unknown.is_empty() {
        could_not(
            "spf",
            &format!("SPF record `{record}`: {}", unknown.join(", ")),
        )
    } else {
        advice(
            "spf",
            Verdict::Ok,
            format!("SPF record `{record}` authorizes the gateway"),
        )
    }
}

/// How long the DNS checks may take together.
pub const DNS_BUDGET: Duration = Duration::from_secs(8);

/// Every check for an application: `domains` are the registered domains,
/// `applications` all applications (for overlaps with pending ones). DNS:
/// MX, SPF and DMARC.
pub async fn advise(
    app: &ApplicationRecord,
    domains: &[Arc<DomainRecord>],
    applications: &[ApplicationRecord],
    cfg: &Config,
) -> Vec<Advice> {
    let mut out = vec![domain_syntax(&app.domain), registry_standing(app, domains)];
    match HickoryLookup::new(&cfg.delivery.nameservers, Duration::from_secs(2)) {
        Ok(dns) => {
            let gateway = &cfg.server.hostname;
            let both = async {
                tokio::join!(
                    mx_advice(&dns, &app.domain, gateway),
                    spf_advice(&dns, &app.domain, &cfg.registration.gateway_addresses),
                    domain::dmarc_advice(&dns, &app.domain)
                )
            };
            match tokio::time::timeout(DNS_BUDGET, both).await {
                Ok((mx, spf, dmarc)) => out.extend([mx, spf, dmarc]),
                Err(_) => {
                    let why = format!("DNS did not answer within {}s", DNS_BUDGET.as_secs());
                    out.extend(["mx", "spf", "dmarc"].map(|c| could_not(c, &why)));
                }
            }
        }
        Err(e) => out.extend(["mx", "spf", "dmarc"].map(|c| could_not(c, &e))),
    }
    out.extend(server_addresses(&app.servers));
    out.push(server_overlap(app, domains, applications));
    out
}

pub mod domain;

#[cfg(test)]
mod tests;
