use std::collections::HashMap;

use chrono::Utc;

use super::*;
use crate::model::applications::ApplicantCategory;
use crate::model::domains::Contact;

/// DNS answers from a table; names missing from it are NXDOMAIN.
#[derive(Default)]
struct FakeDns {
    mx: HashMap<String, Result<Vec<(u16, String)>, DnsFail>>,
    txt: HashMap<String, Vec<String>>,
    ips: HashMap<String, Vec<IpAddr>>,
}

impl FakeDns {
    fn txt(mut self, name: &str, records: &[&str]) -> Self {
        self.txt
            .insert(name.into(), records.iter().map(|s| s.to_string()).collect());
        self
    }
    fn ip(mut self, name: &str, ips: &[&str]) -> Self {
        self.ips.insert(
            name.into(),
            ips.iter().map(|s| s.parse().unwrap()).collect(),
        );
        self
    }
    fn mx(mut self, name: &str, r: Result<Vec<(u16, String)>, DnsFail>) -> Self {
        self.mx.insert(name.into(), r);
        self
    }
}

impl Lookup for FakeDns {
    async fn mx(&self, name: &str) -> Result<Vec<(u16, String)>, DnsFail> {
        self.mx.get(name).cloned().unwrap_or(Err(DnsFail::NxDomain))
    }
    async fn txt(&self, name: &str) -> Result<Vec<String>, DnsFail> {
        self.txt.get(name).cloned().ok_or(DnsFail::NxDomain)
    }
    async fn ips(&self, name: &str) -> Result<Vec<IpAddr>, DnsFail> {
        self.ips.get(name).cloned().ok_or(DnsFail::NxDomain)
    }
}

fn dom(s: &str) -> Domain {
    Domain::parse(s).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn app(id: u64, domain: &str, servers: &[&str]) -> ApplicationRecord {
    ApplicationRecord {
        id,
        domain: dom(domain),
        owner: "Agency".into(),
        category: ApplicantCategory::StateBody,
        head: "Head".into(),
        servers: servers
            .iter()
            .map(|s| crate::registry::parse_server(s).unwrap())
            .collect(),
        contacts: vec![Contact {
            name: "IT".into(),
            email: "it@agency.example.kz".into(),
            office_phone: None,
            mobile_phone: Some("+7 701 000 0000".parse().unwrap()),
        }],
        inbound: None,
        received_on: "2026-03-02".parse().unwrap(),
        decision_due: "2026-03-10".parse().unwrap(),
        status: ApplicationStatus::Pending,
        decided_on: None,
        decided_at: None,
        decided_by: None,
        reason: None,
        submitted_by: "root".into(),
        created_at: Utc::now(),
        alerted_on: None,
        allow_wide_range: false,
        form: None,
        languages: Vec::new(),
    }
}

fn registered(
    name: &str,
    servers: &[&str],
    status: DomainStatus,
    shared: bool,
) -> Arc<DomainRecord> {
    let now = Utc::now();
    let mut r = DomainRecord::connected(
        dom(name),
        "Other".into(),
        servers
            .iter()
            .map(|s| crate::registry::parse_server(s).unwrap())
            .collect(),
        Vec::new(),
        now,
    );
    r.status = status;
    r.shared_servers = shared;
    Arc::new(r)
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn domain_syntax_flags_underscores_and_shows_u_labels() {
    assert_eq!(domain_syntax(&dom("minfin.gov.kz")).verdict, Verdict::Ok);
    let a = domain_syntax(&dom("_dmarc.gov.kz"));
    assert_eq!(a.verdict, Verdict::Problem, "{a:?}");
    let idn = domain_syntax(&dom("министерство.қаз"));
    assert_eq!(idn.verdict, Verdict::Ok);
    assert!(idn.detail.contains("министерство.қаз"), "{idn:?}");
}

#[test]
fn non_public_server_addresses_are_named() {
    let servers: Vec<IpNet> = [
        "127.0.0.1/32",
        "10.1.2.3/32",
        "169.254.1.1/32",
        "192.0.2.10/32",
        "fd00::1/128",
        "2001:db8::/64",
        "100.64.0.1/32",
        "95.59.10.20/32",
        "95.59.0.0/16",
        "2a03:5a00::/64",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let v: Vec<(Verdict, String)> = server_addresses(&servers)
        .into_iter()
        .map(|a| (a.verdict, a.detail))
        .collect();
    assert!(v[0].1.contains("loopback"), "{v:?}");
    assert!(v[1].1.contains("private"), "{v:?}");
    assert!(v[2].1.contains("link-local"), "{v:?}");
    assert!(v[3].1.contains("documentation"), "{v:?}");
    assert!(v[4].1.contains("unique local"), "{v:?}");
    assert!(v[5].1.contains("documentation"), "{v:?}");
    assert!(v[6].1.contains("carrier-grade"), "{v:?}");
    assert!(
        v[..7]
            .iter()
            .all(|(verdict, _)| *verdict == Verdict::Problem)
    );
    assert_eq!(v[7].0, Verdict::Ok, "{v:?}");
    assert_eq!(v[8].0, Verdict::Warning, "{v:?}");
    assert!(v[8].1.contains("65536 addresses"), "{v:?}");
    assert_eq!(v[9].0, Verdict::Ok, "{v:?}");
    // A range that merely contains a private block is not public either.
    assert!(special_range(&"8.0.0.0/4".parse().unwrap()).is_some());
}

#[test]
fn overlaps_with_registered_domains_and_pending_applications() {
    let a = app(1, "new.example.kz", &["95.59.10.0/28"]);
    let domains = vec![
        registered(
            "old.example.kz",
            &["95.59.10.5/32"],
            DomainStatus::Connected,
            false,
        ),
        registered(
            "gone.example.kz",
            &["95.59.10.6/32"],
            DomainStatus::Disconnected,
            false,
        ),
    ];
    let r = server_overlap(&a, &domains, &[]);
    assert_eq!(r.verdict, Verdict::Problem, "{r:?}");
    assert!(r.detail.contains("old.example.kz"), "{r:?}");
    assert!(!r.detail.contains("gone.example.kz"), "{r:?}");

    let shared = vec![registered(
        "hub.example.kz",
        &["95.59.10.5/32"],
        DomainStatus::Connected,
        true,
    )];
    let r = server_overlap(&a, &shared, &[]);
    assert_eq!(r.verdict, Verdict::Warning, "{r:?}");
    assert!(r.detail.contains("--shared-servers"), "{r:?}");

    let other = app(2, "rival.example.kz", &["95.59.10.1"]);
    let r = server_overlap(&a, &[], &[a.clone(), other]);
    assert_eq!(r.verdict, Verdict::Warning, "{r:?}");
    assert!(r.detail.contains("pending application #2"), "{r:?}");

    assert_eq!(
        server_overlap(&a, &[], std::slice::from_ref(&a)).verdict,
        Verdict::Ok
    );
}

#[test]
fn registry_standing_says_what_approval_does() {
    let a = app(1, "a.example.kz", &["95.59.10.1"]);
    assert_eq!(registry_standing(&a, &[]).verdict, Verdict::Ok);
    let gone = [registered(
        "a.example.kz",
        &["95.59.10.1"],
        DomainStatus::Disconnected,
        false,
    )];
    let r = registry_standing(&a, &gone);
    assert_eq!(r.verdict, Verdict::Ok);
    assert!(r.detail.contains("again"), "{r:?}");
    let live = [registered(
        "a.example.kz",
        &["95.59.10.1"],
        DomainStatus::Suspended,
        false,
    )];
    assert_eq!(registry_standing(&a, &live).verdict, Verdict::Problem);
}

#[test]
fn mx_points_at_the_gateway_or_not() {
    let gw = dom("mx.gateway.example");
    let d = dom("agency.example.kz");
    let dns = FakeDns::default().mx(
        "agency.example.kz",
        Ok(vec![(10, "mx.gateway.example".into())]),
    );
    assert_eq!(block_on(mx_advice(&dns, &d, &gw)).verdict, Verdict::Ok);

    let dns = FakeDns::default().mx(
        "agency.example.kz",
        Ok(vec![
            (10, "mx.gateway.example".into()),
            (5, "mail.agency.example.kz".into()),
        ]),
    );
    let r = block_on(mx_advice(&dns, &d, &gw));
    assert_eq!(r.verdict, Verdict::Warning, "{r:?}");
    assert!(r.detail.contains("prefers other hosts"), "{r:?}");

    let dns = FakeDns::default().mx(
        "agency.example.kz",
        Ok(vec![(10, "mail.agency.example.kz".into())]),
    );
    let r = block_on(mx_advice(&dns, &d, &gw));
    assert_eq!(r.verdict, Verdict::Warning);
    assert!(r.detail.contains("not at the gateway"), "{r:?}");

    let dns = FakeDns::default().mx("agency.example.kz", Err(DnsFail::NoRecords));
    assert_eq!(block_on(mx_advice(&dns, &d, &gw)).verdict, Verdict::Warning);
    let r = block_on(mx_advice(&FakeDns::default(), &d, &gw));
    assert_eq!(r.verdict, Verdict::Problem);
    assert!(r.detail.contains("NXDOMAIN"), "{r:?}");
    let dns = FakeDns::default().mx(
        "agency.example.kz",
        Err(DnsFail::Failed("request timed out".into())),
    );
    let r = block_on(mx_advice(&dns, &d, &gw));
    assert_eq!(r.verdict, Verdict::Unknown);
    assert_eq!(r.detail, "could not check: request timed out");
}

#[test]
fn spf_mechanisms_are_evaluated() {
    let gw = [ip("203.0.113.25"), ip("2001:db8:25::1")];
    let d = dom("agency.example.kz");
    let check = |dns: &FakeDns| block_on(spf_advice(dns, &d, &gw));

    // Direct ip4/ip6 mechanisms.
    let dns = FakeDns::default().txt(
        "agency.example.kz",
        &[
            "google-site-verification=x",
            "v=spf1 ip4:203.0.113.0/24 ip6:2001:db8:25::/48 -all",
        ],
    );
    let r = check(&dns);
    assert_eq!(r.verdict, Verdict::Ok, "{r:?}");

    // Through include: and a: of another name.
    let dns = FakeDns::default()
        .txt(
            "agency.example.kz",
            &["v=spf1 include:_spf.gateway.example ~all"],
        )
        .txt(
            "_spf.gateway.example",
            &["v=spf1 a:out.gateway.example -all"],
        )
        .ip("out.gateway.example", &["203.0.113.25", "2001:db8:25::1"]);
    assert_eq!(check(&dns).verdict, Verdict::Ok);

    // mx mechanism with a prefix length.
    let dns = FakeDns::default()
        .txt("agency.example.kz", &["v=spf1 mx/24 -all"])
        .mx(
            "agency.example.kz",
            Ok(vec![(10, "mx.gateway.example".into())]),
        )
        .ip("mx.gateway.example", &["203.0.113.1"]);
    let r = check(&dns);
    // The IPv6 address is not covered: a warning naming it.
    assert_eq!(r.verdict, Verdict::Warning, "{r:?}");
    assert!(
        r.detail.contains("2001:db8:25::1 (softfail)")
            || r.detail.contains("2001:db8:25::1 (fail)"),
        "{r:?}"
    );
    assert!(!r.detail.contains("203.0.113.25"), "{r:?}");

    // Order matters: an earlier -ip4 wins over a later +all.
    let dns = FakeDns::default().txt("agency.example.kz", &["v=spf1 -ip4:203.0.113.25 +all"]);
    let r = check(&dns);
    assert!(r.detail.contains("203.0.113.25 (fail)"), "{r:?}");

    // redirect=, and an exp= with macros that does not matter.
    let dns = FakeDns::default()
        .txt(
            "agency.example.kz",
            &["v=spf1 exp=explain.%{d} redirect=_spf.agency.example.kz"],
        )
        .txt(
            "_spf.agency.example.kz",
            &["v=spf1 ip4:203.0.113.25 ip6:2001:db8:25::1 -all"],
        );
    assert_eq!(check(&dns).verdict, Verdict::Ok);
}

#[test]
fn spf_errors_are_reported_not_raised() {
    let gw = [ip("203.0.113.25")];
    let d = dom("agency.example.kz");
    let check = |dns: &FakeDns| block_on(spf_advice(dns, &d, &gw));

    let r = check(&FakeDns::default().txt("agency.example.kz", &["v=spf1 -all", "v=spf1 +all"]));
    assert_eq!(r.verdict, Verdict::Problem);
    assert!(r.detail.contains("2 SPF records"), "{r:?}");

    let r = check(&FakeDns::default().txt("agency.example.kz", &["some other text"]));
    assert_eq!(r.verdict, Verdict::Warning);
    assert!(r.detail.contains("no SPF record"), "{r:?}");

    // An include loop ends at the lookup limit.
    let dns = FakeDns::default().txt(
        "agency.example.kz",
        &["v=spf1 include:agency.example.kz -all"],
    );
    let r = check(&dns);
    assert_eq!(r.verdict, Verdict::Problem, "{r:?}");
    assert!(r.detail.contains("more than 10"), "{r:?}");

    let r = check(
        &FakeDns::default().txt("agency.example.kz", &["v=spf1 exists:%{i}.bl.example -all"]),
    );
    assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");

    let r = check(&FakeDns::default().txt("agency.example.kz", &["v=spf1 ip4:not-an-ip -all"]));
    assert_eq!(r.verdict, Verdict::Problem, "{r:?}");

    // Without gateway addresses configured, the record is shown and the question left open.
    let dns = FakeDns::default().txt("agency.example.kz", &["v=spf1 mx -all"]);
    let r = block_on(spf_advice(&dns, &d, &[]));
    assert_eq!(r.verdict, Verdict::Unknown);
    assert!(r.detail.contains("gateway_addresses"), "{r:?}");
}

#[test]
fn unreachable_dns_degrades_to_could_not_check() {
    // Nothing listens on the discard port of loopback: every lookup fails fast.
    let mut cfg = Config::default();
    cfg.delivery.nameservers = vec!["127.0.0.1:9".parse().unwrap()];
    let a = app(1, "agency.example.kz", &["95.59.10.20"]);
    let out = block_on(async {
        tokio::time::timeout(
            DNS_BUDGET + Duration::from_secs(5),
            advise(&a, &[], std::slice::from_ref(&a), &cfg),
        )
        .await
        .expect("advice within the budget")
    });
    let by = |c: &str| out.iter().find(|x| x.check == c).unwrap().clone();
    assert_eq!(by("mx").verdict, Verdict::Unknown, "{out:?}");
    assert!(by("mx").detail.starts_with("could not check: "), "{out:?}");
    assert_eq!(by("spf").verdict, Verdict::Unknown, "{out:?}");
    assert_eq!(by("dmarc").verdict, Verdict::Unknown, "{out:?}");
    assert_eq!(by("domain_syntax").verdict, Verdict::Ok);
    assert_eq!(by("server_address").verdict, Verdict::Ok);
    assert_eq!(by("server_overlap").verdict, Verdict::Ok);
}
