use super::*;

fn reg() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, Registry::open(store).unwrap())
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

#[test]
fn add_then_duplicate_refused() {
    let (_d, r) = reg();
    r.add_domain(new("a.example.kz", &["192.0.2.10/32"]))
        .unwrap();
    assert!(matches!(
        r.add_domain(new("A.example.kz", &["192.0.2.99/32"])),
        Err(RegistryError::Exists(_))
    ));
}

#[test]
fn overlap_refused_unless_both_share() {
    let (_d, r) = reg();
    let mut a = new("a.example.kz", &["192.0.2.0/28"]);
    a.shared_servers = true;
    r.add_domain(a).unwrap();
    let err = r
        .add_domain(new("b.example.kz", &["192.0.2.5"]))
        .unwrap_err();
    assert!(err.to_string().contains("--shared-servers"), "{err}");
    let mut b = new("b.example.kz", &["192.0.2.5"]);
    b.shared_servers = true;
    r.add_domain(b).unwrap();
    // IPv6 overlap is checked too.
    r.add_domain(new("c.example.kz", &["2001:db8::/48"]))
        .unwrap();
    assert!(
        r.add_domain(new("d.example.kz", &["2001:db8:0:1::1"]))
            .is_err()
    );
}

#[test]
fn suspend_restore_disconnect_cycle() {
    let (_d, r) = reg();
    let name = Domain::parse("a.example.kz").unwrap();
    r.add_domain(new("a.example.kz", &["192.0.2.10"])).unwrap();
    let s = r
        .suspend_domain(&name, SuspendRequest::manual("ops", "spam run"))
        .unwrap();
    assert_eq!(r.get(&name).unwrap().status, DomainStatus::Suspended);
    assert!(
        r.snapshot()
            .suspension(&Scope::Domain(name.clone()))
            .is_some()
    );
    assert!(
        r.suspend_domain(&name, SuspendRequest::manual("ops", "again"))
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
    .unwrap();
    assert_eq!(r.get(&name).unwrap().status, DomainStatus::Connected);
    let hist = r.suspensions(true).unwrap();
    assert_eq!(hist.len(), 1);
    assert_eq!(hist[0].id, s.id);
    assert_eq!(hist[0].restored.as_ref().unwrap().by, "ops");
    assert!(r.suspensions(false).unwrap().is_empty());
    r.disconnect_domain(&name, "left the sector").unwrap();
    assert_eq!(r.get(&name).unwrap().status, DomainStatus::Disconnected);
    assert!(r.disconnect_domain(&name, "again").is_err());
}

#[test]
fn sender_suspension_is_case_insensitive() {
    let (_d, r) = reg();
    r.suspend_sender("Bot@A.example.kz", SuspendRequest::manual("ops", "phish"))
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
    .unwrap();
    assert!(r.suspensions(false).unwrap().is_empty());
}

#[test]
fn unknown_domain_is_not_found() {
    let (_d, r) = reg();
    let err = r
        .suspend_domain(
            &Domain::parse("nobody.example.kz").unwrap(),
            SuspendRequest::manual("ops", "x"),
        )
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound(_)));
}
