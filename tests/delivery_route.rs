//! Routes and MX resolution against a real DNS server on loopback.

#[path = "common/dns.rs"]
mod dns;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;

use dns::{Rec, TestDns};
use ugem::config::HostPort;
use ugem::delivery::route::{MAX_TARGETS, ResolveError, Resolver, Route, Target, route_for};
use ugem::domain::Domain;
use ugem::registry::{NewDomain, Registry, Snapshot, SuspendRequest, parse_contact};

/// The fake MX port the resolver puts on MX targets.
const PORT: u16 = 2525;

fn resolver(dns: &TestDns) -> Resolver {
    Resolver::new_uncached(&[dns.addr()])
        .expect("resolver")
        .with_smtp_port(PORT)
}

fn d(s: &str) -> Domain {
    Domain::parse(s).unwrap()
}

fn hp(s: &str) -> HostPort {
    s.parse().unwrap()
}

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

fn t(host: &str, addr: &str) -> Target {
    Target {
        host: host.into(),
        addr: addr.parse::<SocketAddr>().unwrap(),
    }
}

async fn mx(dns: &TestDns, domain: &str) -> Result<Vec<Target>, ResolveError> {
    resolver(dns).targets(&Route::Mx(d(domain))).await
}

#[tokio::test]
async fn mx_hosts_in_preference_order() {
    let dns = TestDns::start(&[
        ("example.org", Rec::Mx(20, "mx2.example.org")),
        ("example.org", Rec::Mx(10, "mx1.example.org")),
        ("example.org", Rec::Mx(30, "mx3.example.org")),
        ("mx1.example.org", Rec::A("127.0.0.1".parse().unwrap())),
        ("mx2.example.org", Rec::A("127.0.0.2".parse().unwrap())),
        ("mx3.example.org", Rec::A("127.0.0.3".parse().unwrap())),
    ]);
    let got = mx(&dns, "example.org").await.unwrap();
    assert_eq!(
        got,
        vec![
            t("mx1.example.org", "127.0.0.1:2525"),
            t("mx2.example.org", "127.0.0.2:2525"),
            t("mx3.example.org", "127.0.0.3:2525"),
        ]
    );
}

#[tokio::test]
async fn mx_targets_use_port_25_by_default() {
    let dns = TestDns::start(&[
        ("example.org", Rec::Mx(10, "mx1.example.org")),
        ("mx1.example.org", Rec::A("127.0.0.1".parse().unwrap())),
    ]);
    let r = Resolver::new_uncached(&[dns.addr()]).unwrap();
    let got = r.targets(&Route::Mx(d("example.org"))).await.unwrap();
    assert_eq!(got, vec![t("mx1.example.org", "127.0.0.1:25")]);
}

#[tokio::test]
async fn equal_preferences_are_shuffled() {
    let dns = TestDns::start(&[
        ("example.org", Rec::Mx(10, "a.example.org")),
        ("example.org", Rec::Mx(10, "b.example.org")),
        ("example.org", Rec::Mx(20, "c.example.org")),
        ("a.example.org", Rec::A("127.0.0.1".parse().unwrap())),
        ("b.example.org", Rec::A("127.0.0.2".parse().unwrap())),
        ("c.example.org", Rec::A("127.0.0.3".parse().unwrap())),
    ]);
    let r = resolver(&dns);
    let mut firsts = HashSet::new();
    for _ in 0..40 {
        let got = r.targets(&Route::Mx(d("example.org"))).await.unwrap();
        assert_eq!(got.len(), 3);
        // The lower preference never moves behind the higher one.
        assert_eq!(got[2].host, "c.example.org");
        firsts.insert(got[0].host.clone());
    }
    // Both orders appear (a false failure has odds 2^-39).
    assert_eq!(firsts.len(), 2, "{firsts:?}");
}

#[tokio::test]
async fn no_mx_means_implicit_mx() {
    let dns = TestDns::start(&[
        ("implicit.example", Rec::A("127.0.0.9".parse().unwrap())),
        ("implicit.example", Rec::Aaaa("::1".parse().unwrap())),
    ]);
    let got = mx(&dns, "implicit.example").await.unwrap();
    assert_eq!(
        got,
        vec![
            t("implicit.example", "[::1]:2525"),
            t("implicit.example", "127.0.0.9:2525"),
        ]
    );
}

#[tokio::test]
async fn no_mx_and_no_address_is_no_address() {
    let dns = TestDns::start(&[("txtonly.example", Rec::Txt("v=spf1 -all"))]);
    let e = mx(&dns, "txtonly.example").await.unwrap_err();
    assert_eq!(e, ResolveError::NoAddress);
    assert!(!e.is_permanent());
}

#[tokio::test]
async fn null_mx_is_a_permanent_failure() {
    let dns = TestDns::start(&[
        ("nullmx.example", Rec::Mx(0, ".")),
        // An address does not revive a domain that said it takes no mail.
        ("nullmx.example", Rec::A("127.0.0.1".parse().unwrap())),
    ]);
    let e = mx(&dns, "nullmx.example").await.unwrap_err();
    assert_eq!(e, ResolveError::NullMx);
    assert!(e.is_permanent());
    assert_eq!(e.enhanced().to_string(), "5.1.10");
}

#[tokio::test]
async fn nxdomain_is_a_permanent_failure() {
    let dns = TestDns::start(&[("example.org", Rec::A("127.0.0.1".parse().unwrap()))]);
    let e = mx(&dns, "nosuch.example").await.unwrap_err();
    assert_eq!(e, ResolveError::NoSuchDomain);
    assert!(e.is_permanent());
    assert_eq!(e.enhanced().to_string(), "5.1.2");
}

#[tokio::test]
async fn ipv6_and_ipv4_interleave_aaaa_first() {
    let dns = TestDns::start(&[
        ("v6.example", Rec::Mx(10, "mx.v6.example")),
        ("mx.v6.example", Rec::A("127.0.0.1".parse().unwrap())),
        ("mx.v6.example", Rec::A("127.0.0.2".parse().unwrap())),
        ("mx.v6.example", Rec::Aaaa("::1".parse().unwrap())),
        ("mx.v6.example", Rec::Aaaa("::2".parse().unwrap())),
    ]);
    let got = mx(&dns, "v6.example").await.unwrap();
    let addrs: Vec<_> = got.iter().map(|t| t.addr.ip()).collect();
    assert_eq!(addrs.len(), 4);
    assert!(addrs[0].is_ipv6() && addrs[2].is_ipv6(), "{addrs:?}");
    assert!(addrs[1].is_ipv4() && addrs[3].is_ipv4(), "{addrs:?}");
    let set: HashSet<_> = addrs.into_iter().collect();
    for a in ["127.0.0.1", "127.0.0.2", "::1", "::2"] {
        assert!(set.contains(&ip(a)), "{a} missing");
    }
    assert!(got.iter().all(|t| t.host == "mx.v6.example"));
}

#[tokio::test]
async fn ipv6_only_mx_host() {
    let dns = TestDns::start(&[
        ("v6only.example", Rec::Mx(10, "mx.v6only.example")),
        ("mx.v6only.example", Rec::Aaaa("::1".parse().unwrap())),
    ]);
    let got = mx(&dns, "v6only.example").await.unwrap();
    assert_eq!(got, vec![t("mx.v6only.example", "[::1]:2525")]);
}

#[tokio::test]
async fn mx_host_without_address_is_skipped_or_no_address() {
    let dns = TestDns::start(&[
        ("example.org", Rec::Mx(10, "ghost.example.org")),
        ("example.org", Rec::Mx(20, "mx2.example.org")),
        ("mx2.example.org", Rec::A("127.0.0.2".parse().unwrap())),
        ("only-ghosts.example", Rec::Mx(10, "ghost.example.org")),
        ("only-ghosts.example", Rec::Mx(20, "ghost2.example.org")),
        ("ghost2.example.org", Rec::Txt("no address here")),
    ]);
    let got = mx(&dns, "example.org").await.unwrap();
    assert_eq!(got, vec![t("mx2.example.org", "127.0.0.2:2525")]);

    let e = mx(&dns, "only-ghosts.example").await.unwrap_err();
    assert_eq!(e, ResolveError::NoAddress);
    assert!(!e.is_permanent());
    assert_eq!(e.enhanced().to_string(), "4.4.4");
}

#[tokio::test]
async fn unspecified_addresses_are_skipped_and_duplicates_dropped() {
    let dns = TestDns::start(&[
        ("example.org", Rec::Mx(10, "mx1.example.org")),
        ("example.org", Rec::Mx(20, "mx2.example.org")),
        ("mx1.example.org", Rec::A("0.0.0.0".parse().unwrap())),
        ("mx1.example.org", Rec::Aaaa("::".parse().unwrap())),
        ("mx1.example.org", Rec::A("127.0.0.1".parse().unwrap())),
        // The same address under a second name is tried once.
        ("mx2.example.org", Rec::A("127.0.0.1".parse().unwrap())),
        ("zero.example", Rec::Mx(10, "mx.zero.example")),
        ("mx.zero.example", Rec::A("0.0.0.0".parse().unwrap())),
    ]);
    let got = mx(&dns, "example.org").await.unwrap();
    assert_eq!(got, vec![t("mx1.example.org", "127.0.0.1:2525")]);
    assert_eq!(
        mx(&dns, "zero.example").await.unwrap_err(),
        ResolveError::NoAddress
    );
}

#[tokio::test]
async fn mx_host_behind_a_cname() {
    let dns = TestDns::start(&[
        ("example.org", Rec::Mx(10, "alias.example.org")),
        ("alias.example.org", Rec::Cname("real.example.net")),
        ("real.example.net", Rec::A("127.0.0.7".parse().unwrap())),
    ]);
    let got = mx(&dns, "example.org").await.unwrap();
    // The MX name stays the TLS name, as RFC 5321 §5.1 and RFC 7672 expect.
    assert_eq!(got, vec![t("alias.example.org", "127.0.0.7:2525")]);
}

#[tokio::test]
async fn hostile_zone_is_capped() {
    let mut recs = Vec::new();
    let names: Vec<String> = (0..15).map(|i| format!("mx{i:02}.big.example")).collect();
    let addrs: Vec<String> = (0..15 * 3)
        .map(|i| format!("127.0.{}.{}", i / 3 + 1, i % 3 + 1))
        .collect();
    for (i, n) in names.iter().enumerate() {
        recs.push(("big.example", Rec::Mx(i as u16, n.as_str())));
        for a in &addrs[i * 3..i * 3 + 3] {
            recs.push((n.as_str(), Rec::A(a.parse().unwrap())));
        }
    }
    let wide: Vec<String> = (1..=40).map(|i| format!("127.1.0.{i}")).collect();
    recs.push(("wide.example", Rec::Mx(10, "mx.wide.example")));
    recs.push(("wide.example", Rec::Mx(20, "backup.wide.example")));
    for a in &wide {
        recs.push(("mx.wide.example", Rec::A(a.parse().unwrap())));
    }
    recs.push(("backup.wide.example", Rec::A("127.2.0.1".parse().unwrap())));
    let dns = TestDns::start(&recs);

    let got = mx(&dns, "big.example").await.unwrap();
    assert_eq!(got.len(), MAX_TARGETS);
    assert_eq!(got[0].host, "mx00.big.example");
    assert_eq!(got[MAX_TARGETS - 1].host, "mx06.big.example");

    // One host with 40 addresses does not crowd out the backup MX.
    let got = mx(&dns, "wide.example").await.unwrap();
    assert_eq!(got.len(), 6, "{got:?}");
    assert_eq!(got[5], t("backup.wide.example", "127.2.0.1:2525"));
}

#[tokio::test]
async fn servfail_is_temporary() {
    let dns = TestDns::start(&[
        ("broken.example", Rec::ServFail),
        ("example.org", Rec::Mx(10, "mx1.example.org")),
        ("mx1.example.org", Rec::ServFail),
    ]);
    let e = mx(&dns, "broken.example").await.unwrap_err();
    assert!(matches!(e, ResolveError::Temporary(_)), "{e:?}");
    assert!(!e.is_permanent());
    assert_eq!(e.enhanced().to_string(), "4.4.3");

    // An MX host whose address lookups fail: also temporary, not NoAddress.
    let e = mx(&dns, "example.org").await.unwrap_err();
    assert!(matches!(e, ResolveError::Temporary(_)), "{e:?}");

    // Recovery: the same resolver gets an answer once the server does.
    dns.set("mx1.example.org", &[Rec::A("127.0.0.1".parse().unwrap())]);
    let got = mx(&dns, "example.org").await.unwrap();
    assert_eq!(got, vec![t("mx1.example.org", "127.0.0.1:2525")]);
}

#[tokio::test]
async fn records_can_change_while_running() {
    let dns = TestDns::start(&[
        ("example.org", Rec::Mx(10, "mx1.example.org")),
        ("mx1.example.org", Rec::A("127.0.0.1".parse().unwrap())),
    ]);
    let r = resolver(&dns);
    let route = Route::Mx(d("example.org"));
    assert_eq!(
        r.targets(&route).await.unwrap()[0].addr.ip(),
        ip("127.0.0.1")
    );
    dns.set("mx1.example.org", &[Rec::A("127.0.0.5".parse().unwrap())]);
    assert_eq!(
        r.targets(&route).await.unwrap()[0].addr.ip(),
        ip("127.0.0.5")
    );
    // With a name below it, example.org would stay an empty non-terminal
    // (NODATA, then the implicit MX): remove both for NXDOMAIN.
    dns.set("mx1.example.org", &[]);
    dns.set("example.org", &[]);
    assert_eq!(
        r.targets(&route).await.unwrap_err(),
        ResolveError::NoSuchDomain
    );
    dns.set_servfail("example.org", true);
    assert!(matches!(
        r.targets(&route).await,
        Err(ResolveError::Temporary(_))
    ));
}

#[tokio::test]
async fn dns_server_answers_over_tcp_too() {
    use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    use hickory_resolver::proto::rr::{RData, RecordType};

    let dns = TestDns::start(&[("example.org", Rec::Mx(10, "mx1.example.org"))]);
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = dns.addr().port();
    let config = ResolverConfig::from_name_servers(vec![NameServerConfig::new(
        dns.addr().ip(),
        true,
        vec![tcp],
    )]);
    let r = hickory_resolver::TokioResolver::builder_with_config(
        config,
        TokioRuntimeProvider::default(),
    )
    .build()
    .unwrap();
    let lookup = r.lookup("example.org.", RecordType::MX).await.unwrap();
    let exchanges: Vec<String> = lookup
        .answers()
        .iter()
        .filter_map(|rec| match &rec.data {
            RData::MX(mx) => Some(mx.exchange.to_ascii()),
            _ => None,
        })
        .collect();
    assert_eq!(exchanges, ["mx1.example.org."]);
}

#[tokio::test]
async fn static_routes_by_domain_then_star() {
    let dns = TestDns::start(&[
        ("relay.example.net", Rec::A("127.0.0.4".parse().unwrap())),
        // A static route's host is not looked up as a mail domain.
        ("relay.example.net", Rec::Mx(10, "elsewhere.example.net")),
    ]);
    let snap = Snapshot::default();
    let mut routes = BTreeMap::new();
    routes.insert("example.org".to_string(), hp("relay.example.net:2600"));
    routes.insert("*".to_string(), hp("127.0.0.1:2601"));

    let route = route_for(&d("example.org"), &snap, &routes);
    assert_eq!(route, Route::Static(hp("relay.example.net:2600")));
    let got = resolver(&dns).targets(&route).await.unwrap();
    assert_eq!(got, vec![t("relay.example.net", "127.0.0.4:2600")]);

    let route = route_for(&d("other.example"), &snap, &routes);
    assert_eq!(route, Route::Static(hp("127.0.0.1:2601")));
    let got = resolver(&dns).targets(&route).await.unwrap();
    // A literal address is its own TLS name, and no DNS is asked.
    assert_eq!(got, vec![t("127.0.0.1", "127.0.0.1:2601")]);

    routes.remove("*");
    assert_eq!(
        route_for(&d("other.example"), &snap, &routes),
        Route::Mx(d("other.example"))
    );
}

#[tokio::test]
async fn static_route_to_ipv6_literal_and_missing_host() {
    let dns = TestDns::start(&[]);
    let r = resolver(&dns);
    let got = r.targets(&Route::Static(hp("[::1]:2600"))).await.unwrap();
    assert_eq!(got, vec![t("::1", "[::1]:2600")]);

    // A next hop that does not exist is our configuration's fault: the mail
    // waits (temporary) instead of bouncing.
    let e = r
        .targets(&Route::Static(hp("gone.example.net:25")))
        .await
        .unwrap_err();
    assert_eq!(e, ResolveError::NoAddress);
    assert!(!e.is_permanent());

    let e = r
        .targets(&Route::Static(hp("0.0.0.0:25")))
        .await
        .unwrap_err();
    assert!(matches!(e, ResolveError::Config(_)), "{e:?}");
    assert!(!e.is_permanent());
}

fn new_domain(name: &str, server: &str, inbound: Option<HostPort>) -> NewDomain {
    NewDomain {
        name: d(name),
        owner: "Agency".into(),
        servers: vec![server.parse().unwrap()],
        contacts: vec![parse_contact(&format!("IT <it@{name}>")).unwrap()],
        inbound,
        shared_servers: false,
    }
}

async fn registry(dir: &std::path::Path) -> Registry {
    let (_, store) = ugem::store::open(dir).unwrap();
    Registry::open(std::sync::Arc::new(store)).await.unwrap()
}

#[tokio::test]
async fn registered_route_wins_over_static_routes() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path()).await;
    reg.add_domain(new_domain("agency.example", "127.0.0.1/32", None))
        .await
        .unwrap();
    let mut routes = BTreeMap::new();
    routes.insert("agency.example".to_string(), hp("127.0.0.1:2600"));
    routes.insert("*".to_string(), hp("127.0.0.1:2601"));

    // Without an explicit inbound route: the first server, port 25.
    let agency = d("agency.example");
    let route = route_for(&agency, &reg.snapshot(), &routes);
    assert_eq!(route, Route::Registered(hp("127.0.0.1:25")));
    let dns = TestDns::start(&[]);
    let got = resolver(&dns).targets(&route).await.unwrap();
    assert_eq!(got, vec![t("127.0.0.1", "127.0.0.1:25")]);

    // Suspension stops the agency sending; mail to it still goes to it.
    reg.suspend_domain(&agency, SuspendRequest::manual("staff", "test"))
        .await
        .unwrap();
    assert_eq!(
        route_for(&agency, &reg.snapshot(), &routes),
        Route::Registered(hp("127.0.0.1:25"))
    );

    // A disconnected domain is no longer ours: the static routes apply.
    reg.disconnect_domain(&agency, "left the gateway")
        .await
        .unwrap();
    assert_eq!(
        route_for(&agency, &reg.snapshot(), &routes),
        Route::Static(hp("127.0.0.1:2600"))
    );
}

#[tokio::test]

async fn explicit_inbound_route_wins() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path()).await;
    reg.add_domain(new_domain(
        "agency.example",
        "192.0.2.10/32",
        Some(hp("127.0.0.1:2700")),
    ))
    .await
    .unwrap();
    let mut routes = BTreeMap::new();
    routes.insert("*".to_string(), hp("127.0.0.1:2601"));
    assert_eq!(
        route_for(&d("agency.example"), &reg.snapshot(), &routes),
        Route::Registered(hp("127.0.0.1:2700"))
    );
}

/// The gateway may build its resolver before (outside) the tokio runtime.
#[test]
fn resolvers_build_outside_a_runtime() {
    Resolver::new(&["127.0.0.1:53".parse().unwrap()]).expect("configured resolver");
    if std::path::Path::new("/etc/resolv.conf").exists() {
        Resolver::new(&[]).expect("system resolver from /etc/resolv.conf");
    }
}

#[tokio::test]
async fn unreachable_dns_server_is_temporary() {
    // A port nobody listens on: the failure is a retry, never a bounce.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = Resolver::new_uncached(&[SocketAddr::from(([127, 0, 0, 1], port))]).unwrap();
    let started = std::time::Instant::now();
    let e = r.targets(&Route::Mx(d("example.org"))).await.unwrap_err();
    assert!(matches!(e, ResolveError::Temporary(_)), "{e:?}");
    assert!(!e.is_permanent());
    // new_uncached's short timeout: about 2 s, not the default 15 s.
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
