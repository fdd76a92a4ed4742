//! The MTA-STS policy cache against a real DNS server and an HTTPS policy
//! server on loopback.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::dns::{Rec, TestDns};
use common::fake_mx::TestPki;
use common::policy_server::PolicyServer;
use ugem::delivery::mta_sts::{Mode, MtaSts};
use ugem::delivery::route::Resolver;
use ugem::domain::Domain;

const POLICY: &str = "version: STSv1\r\nmode: enforce\r\nmx: mx.burst.example\r\nmax_age: 3600\r\n";

fn setup(delay: Duration) -> (TestDns, PolicyServer, Arc<MtaSts>) {
    let pki = TestPki::new(&["mta-sts.burst.example"]);
    let server = PolicyServer::start(
        pki.server.clone(),
        delay,
        vec![("mta-sts.burst.example", POLICY.into())],
    );
    let dns = TestDns::start(&[
        ("_mta-sts.burst.example", Rec::Txt("v=STSv1; id=1;")),
        (
            "mta-sts.burst.example",
            Rec::A("127.0.0.1".parse().unwrap()),
        ),
    ]);
    let resolver = Resolver::new_uncached(&[dns.addr()]).unwrap();
    let sts = MtaSts::new(resolver, server.addr.port(), vec![pki.ca.clone()], None);
    (dns, server, Arc::new(sts))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_deliveries_fetches_the_policy_once() {
    // The server takes 300 ms: every caller arrives while the first fetches.
    let (_dns, server, sts) = setup(Duration::from_millis(300));
    let d = Domain::parse("burst.example").unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (sts, d) = (sts.clone(), d.clone());
        tasks.spawn(async move { sts.policy(&d).await });
    }
    while let Some(r) = tasks.join_next().await {
        let p = r.unwrap().expect("a policy");
        assert_eq!(p.mode, Mode::Enforce);
        assert!(p.allows("mx.burst.example"));
    }
    assert_eq!(server.requests(), 1);
    let listed = sts.list();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["domain"], "burst.example");
    // Within the recheck interval the cache answers without DNS or HTTPS.
    assert!(sts.policy(&d).await.is_some());
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn an_untrusted_policy_server_gives_no_policy() {
    let (_dns, server, _) = setup(Duration::ZERO);
    // The same server, but the client trusts another CA.
    let other = TestPki::new(&["mta-sts.burst.example"]);
    let dns = TestDns::start(&[
        ("_mta-sts.burst.example", Rec::Txt("v=STSv1; id=1;")),
        (
            "mta-sts.burst.example",
            Rec::A("127.0.0.1".parse().unwrap()),
        ),
    ]);
    let resolver = Resolver::new_uncached(&[dns.addr()]).unwrap();
    let sts = MtaSts::new(resolver, server.addr.port(), vec![other.ca.clone()], None);
    let d = Domain::parse("burst.example").unwrap();
    assert!(sts.policy(&d).await.is_none());
    assert!(sts.list().is_empty());
}
