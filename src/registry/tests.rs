use super::*;

async fn reg() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = crate::store::open(dir.path()).unwrap();
    (dir, Registry::open(Arc::new(store)).await.unwrap())
}

fn new(name: &str, servers: &[&str]) -> NewDomain {
    NewDomain {
        name: Domain::parse(name).unwrap(),
        owner: "Agency".into(),
        servers: servers.iter().map(|s| parse_server(s).unwrap()).collect(),
        contacts: vec![parse_contact("IT <it@agency.example.kz>").unwrap()],
        inbound: None,
        shared_servers: false,
    }
}

#[tokio::test]
async fn add_then_duplicate_refused() {
    let (_d, r) = reg().await;
    r.add_domain(new("a.example.kz", &["192.0.2.10/32"]))
        .await
        .unwrap();
    assert!(matches!(
        r.add_domain(new("A.example.kz", &["192.0.2.99/32"])).await,
        Err(RegistryError::Exists(_))
    ));
}

#[tokio::test]
async fn a_domain_without_an_application_needs_a_reason_and_keeps_it() {
    let (_d, r) = reg().await;
    let direct = |reason: &str| crate::model::domains::DirectRegistration {
        by: "root".into(),
        at: Utc::now(),
        reason: reason.into(),
    };
    let err = r
        .add_domain_without_application(new("a.example.kz", &["192.0.2.10"]), direct("  "))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("reason"), "{err}");
    assert!(r.get(&Domain::parse("a.example.kz").unwrap()).is_none());
    let rec = r
        .add_domain_without_application(new("a.example.kz", &["192.0.2.10"]), direct("migration"))
        .await
        .unwrap();
    let mark = rec.without_application.as_ref().unwrap();
    assert_eq!(
        (mark.by.as_str(), mark.reason.as_str()),
        ("root", "migration")
    );
    // As stored, and in the snapshot the API reads.
    let stored = r.get(&rec.name).unwrap();
    assert_eq!(stored.without_application, rec.without_application);
}

#[tokio::test]
async fn overlap_refused_unless_both_share() {
    let (_d, r) = reg().await;
    let mut a = new("a.example.kz", &["192.0.2.0/28"]);
    a.shared_servers = true;
    r.add_domain(a).await.unwrap();
    let err = r
        .add_domain(new("b.example.kz", &["192.0.2.5"]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--shared-servers"), "{err}");
    let mut b = new("b.example.kz", &["192.0.2.5"]);
    b.shared_servers = true;
    r.add_domain(b).await.unwrap();
    // IPv6 overlap is checked too.
    r.add_domain(new("c.example.kz", &["2001:db8::/48"]))
        .await
        .unwrap();
    assert!(
        r.add_domain(new("d.example.kz", &["2001:db8:0:1::1"]))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn suspend_restore_disconnect_cycle() {
    let (_d, r) = reg().await;
    let name = Domain::parse("a.example.kz").unwrap();
    r.add_domain(new("a.example.kz", &["192.0.2.10"]))
        .await
        .unwrap();
    let s = r
        .suspend_domain(&name, SuspendRequest::manual("ops", "spam run"))
        .await
        .unwrap();
    assert_eq!(r.get(&name).unwrap().status, DomainStatus::Suspended);
    assert!(
        r.snapshot()
            .suspension(&Scope::Domain(name.clone()))
            .is_some()
    );
    assert!(
        r.suspend_domain(&name, SuspendRequest::manual("ops", "again"))
            .await
            .is_err()
    );
    r.restore_domain(
        &name,
        RestoreRequest {
            actor: "ops".into(),
            reason: Some("clean".into()),
            held_mail: "released".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(r.get(&name).unwrap().status, DomainStatus::Connected);
    let hist = r.suspensions(true).await.unwrap();
    assert_eq!(hist.len(), 1);
    assert_eq!(hist[0].id, s.id);
    assert_eq!(hist[0].restored.as_ref().unwrap().by, "ops");
    assert!(r.suspensions(false).await.unwrap().is_empty());
    r.disconnect_domain(&name, "left the sector").await.unwrap();
    assert_eq!(r.get(&name).unwrap().status, DomainStatus::Disconnected);
    assert!(r.disconnect_domain(&name, "again").await.is_err());
}

#[tokio::test]
async fn sender_suspension_is_case_insensitive() {
    let (_d, r) = reg().await;
    r.suspend_sender("Bot@A.example.kz", SuspendRequest::manual("ops", "phish"))
        .await
        .unwrap();
    assert!(
        r.snapshot()
            .suspension(&Scope::Sender("bot@a.example.kz".into()))
            .is_some()
    );
    r.restore_sender(
        "bot@a.example.kz",
        RestoreRequest {
            actor: "ops".into(),
            reason: None,
            held_mail: "released".into(),
        },
    )
    .await
    .unwrap();
    assert!(r.suspensions(false).await.unwrap().is_empty());
}

#[tokio::test]
async fn unknown_domain_is_not_found() {
    let (_d, r) = reg().await;
    let err = r
        .suspend_domain(
            &Domain::parse("nobody.example.kz").unwrap(),
            SuspendRequest::manual("ops", "x"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound(_)));
}

/// Two nodes over one shared store: a suspension raced from both starts
/// once; a change made on a node whose snapshot is stale loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_registries_over_one_store_do_not_lose_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = crate::store::open(dir.path()).unwrap();
    let store: Arc<dyn RegistryStore> = Arc::new(store);
    let a = Registry::open(store.clone()).await.unwrap();
    let b = Registry::open(store.clone()).await.unwrap();
    let name = Domain::parse("a.example.kz").unwrap();
    a.add_domain(new("a.example.kz", &["192.0.2.10"]))
        .await
        .unwrap();
    // b has not reloaded: its snapshot does not know the domain, the store does.
    assert!(b.get(&name).is_none());
    let limits = crate::model::domains::DomainLimits {
        messages_per_hour: Some(10),
        ..Default::default()
    };
    b.set_limits(&name, Some(limits)).await.unwrap();
    let (ra, rb) = tokio::join!(
        a.suspend_domain(&name, SuspendRequest::manual("ops-a", "spam run")),
        b.suspend_domain(&name, SuspendRequest::manual("ops-b", "spam run"))
    );
    assert!(
        ra.is_ok() != rb.is_ok(),
        "exactly one suspends: {ra:?} {rb:?}"
    );
    let lost = if ra.is_ok() { rb } else { ra };
    assert!(
        matches!(lost, Err(RegistryError::State(ref m)) if m.contains("already suspended")),
        "{lost:?}"
    );
    a.reload().await.unwrap();
    let rec = a.get(&name).unwrap();
    assert_eq!(rec.status, DomainStatus::Suspended);
    assert_eq!(
        rec.limits,
        Some(limits),
        "b's change survived a's suspension"
    );
    assert_eq!(a.suspensions(false).await.unwrap().len(), 1);
    // A second registration of the domain from the stale node is refused.
    let err = b
        .add_domain(new("a.example.kz", &["192.0.2.99"]))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Exists(_)), "{err:?}");
}
