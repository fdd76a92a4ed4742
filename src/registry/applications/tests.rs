use super::*;
use crate::registry::parse_contact;

struct World {
    _dir: tempfile::TempDir,
    clock: Arc<FixedClock>,
    apps: Applications,
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// A workflow on a fresh store with the Kazakhstan calendar, today = `today`.
async fn world(today: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = crate::store::open(dir.path()).unwrap();
    let registry = Arc::new(Registry::open(Arc::new(store)).await.unwrap());
    let clock = Arc::new(FixedClock::on(d(today)));
    let apps = Applications::with_clock(registry, &RegistrationSection::default(), clock.clone());
    World {
        _dir: dir,
        clock,
        apps,
    }
}

fn new_app(domain: &str, server: &str) -> NewApplication {
    NewApplication {
        domain: Domain::parse(domain).unwrap(),
        owner: "Ministry of Examples".into(),
        category: ApplicantCategory::StateBody,
        head: "A. Minister".into(),
        servers: vec![parse_server(server).unwrap()],
        contacts: vec![
            parse_contact("Aliya Nurlanova <it@agency.example.kz>; mobile=+7 701 000 0000")
                .unwrap(),
        ],
        inbound: None,
        received_on: None,
        allow_wide_range: false,
        form: None,
        languages: Vec::new(),
    }
}

#[tokio::test]
async fn submit_sets_the_deadline_in_working_days() {
    let w = world("2026-03-19").await;
    let v = w
        .apps
        .submit(new_app("a.example.kz", "95.59.10.1"), "root")
        .await
        .unwrap();
    assert_eq!(v.application.id, 1);
    assert_eq!(v.application.status, ApplicationStatus::Pending);
    assert_eq!(v.application.received_on, d("2026-03-19"));
    // Over Nauryz: 20, 26, 27, 30, 31 March.
    assert_eq!(v.application.decision_due, d("2026-03-31"));
    assert_eq!(v.working_days_left, Some(5));
    assert!(!v.overdue);
    assert_eq!(v.application.submitted_by, "root");
}

#[tokio::test]
async fn received_date_is_checked() {
    let w = world("2026-03-19").await;
    let mut n = new_app("a.example.kz", "95.59.10.1");
    n.received_on = Some(d("2026-03-20"));
    let err = w.apps.submit(n.clone(), "root").await.unwrap_err();
    assert!(err.to_string().contains("in the future"), "{err}");
    n.received_on = Some(d("2025-01-01"));
    assert!(w.apps.submit(n.clone(), "root").await.is_err());
    n.received_on = Some(d("2026-03-10"));
    let v = w.apps.submit(n, "root").await.unwrap();
    assert_eq!(v.application.decision_due, d("2026-03-17"));
    assert!(v.overdue);
    assert_eq!(v.working_days_left, Some(-2));
}

#[tokio::test]
async fn every_field_is_validated() {
    let w = world("2026-03-02").await;
    let mut n = new_app("a.example.kz", "95.59.10.1");
    n.head = "  ".into();
    assert!(
        w.apps
            .submit(n, "root")
            .await
            .unwrap_err()
            .to_string()
            .contains("head")
    );
    let mut n = new_app("a.example.kz", "95.59.10.1");
    n.owner = "x\ny".into();
    assert!(w.apps.submit(n, "root").await.is_err());
    let mut n = new_app("a.example.kz", "95.59.10.1");
    n.servers.clear();
    assert!(w.apps.submit(n, "root").await.is_err());
    let mut n = new_app("a.example.kz", "95.59.10.1");
    n.servers = vec![parse_server("0.0.0.0/0").unwrap()];
    assert!(w.apps.submit(n, "root").await.is_err());
    let mut n = new_app("a.example.kz", "95.59.10.1");
    n.contacts = vec![parse_contact("it@agency.example.kz; mobile=+7 701 000 0000").unwrap()];
    let err = w.apps.submit(n, "root").await.unwrap_err().to_string();
    assert!(err.contains("full name"), "{err}");
    let mut n = new_app("a.example.kz", "95.59.10.1");
    n.contacts = vec![parse_contact("IT <it@agency.example.kz>").unwrap()];
    let err = w.apps.submit(n, "root").await.unwrap_err().to_string();
    assert!(err.contains("phone"), "{err}");
    assert!(
        w.apps
            .list(&ApplicationFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn one_pending_application_per_domain() {
    let w = world("2026-03-02").await;
    w.apps
        .submit(new_app("a.example.kz", "95.59.10.1"), "root")
        .await
        .unwrap();
    let err = w
        .apps
        .submit(new_app("A.example.kz", "95.59.10.2"), "root")
        .await
        .unwrap_err();
    assert!(matches!(err, ApplicationError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("pending application #1"), "{err}");
}

#[tokio::test]
async fn approve_connects_and_registered_domains_refuse_new_applications() {
    let w = world("2026-03-02").await;
    let mut n = new_app("a.example.kz", "95.59.10.1");
    n.inbound = Some("mail.a.example.kz:2525".parse().unwrap());
    w.apps.submit(n, "root").await.unwrap();
    w.clock.set(d("2026-03-04"));
    let ok = w.apps.approve(1, "chief", false).await.unwrap();
    assert!(!ok.reconnected);
    assert_eq!(ok.domain.status, DomainStatus::Connected);
    assert_eq!(ok.domain.owner, "Ministry of Examples");
    assert_eq!(ok.domain.servers, vec![parse_server("95.59.10.1").unwrap()]);
    assert_eq!(ok.domain.contacts[0].email, "it@agency.example.kz");
    assert_eq!(
        ok.domain.inbound_route().unwrap().to_string(),
        "mail.a.example.kz:2525"
    );
    let app = ok.application.application;
    assert_eq!(app.status, ApplicationStatus::Approved);
    assert_eq!(app.decided_on, Some(d("2026-03-04")));
    assert_eq!(app.decided_by.as_deref(), Some("chief"));
    let name = Domain::parse("a.example.kz").unwrap();
    assert!(w.apps.registry().get(&name).is_some());

    // Decided applications stay decided.
    let err = w.apps.approve(1, "chief", false).await.unwrap_err();
    assert!(err.to_string().contains("approved, not pending"), "{err}");
    assert!(w.apps.reject(1, "chief", "late").await.is_err());
    // The domain is connected: a new application is refused.
    let err = w
        .apps
        .submit(new_app("a.example.kz", "95.59.10.1"), "root")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("already registered (connected)"),
        "{err}"
    );
}

#[tokio::test]
async fn approval_of_an_overlapping_server_is_refused_and_stays_pending() {
    let w = world("2026-03-02").await;
    w.apps
        .submit(new_app("a.example.kz", "95.59.10.1"), "root")
        .await
        .unwrap();
    w.apps.approve(1, "chief", false).await.unwrap();
    let mut b = new_app("b.example.kz", "95.59.10.0/30");
    b.inbound = Some("95.59.10.2:25".parse().unwrap());
    w.apps.submit(b, "root").await.unwrap();
    let err = w.apps.approve(2, "chief", false).await.unwrap_err();
    assert!(
        matches!(
            err,
            ApplicationError::Registry(RegistryError::Overlap { .. })
        ),
        "{err}"
    );
    assert_eq!(
        w.apps.get(2).await.unwrap().application.status,
        ApplicationStatus::Pending
    );
}

#[tokio::test]
async fn disconnected_domain_is_reconnected_by_a_new_application() {
    let w = world("2026-03-02").await;
    w.apps
        .submit(new_app("a.example.kz", "95.59.10.1"), "root")
        .await
        .unwrap();
    let first = w.apps.approve(1, "chief", false).await.unwrap().domain;
    let name = first.name.clone();
    w.apps
        .registry()
        .disconnect_domain(&name, "left the sector")
        .await
        .unwrap();
    let v = w
        .apps
        .submit(new_app("a.example.kz", "95.59.20.1"), "root")
        .await
        .unwrap();
    let ok = w
        .apps
        .approve(v.application.id, "chief", false)
        .await
        .unwrap();
    assert!(ok.reconnected);
    assert_eq!(ok.domain.status, DomainStatus::Connected);
    assert_eq!(ok.domain.status_reason, None);
    assert_eq!(ok.domain.servers, vec![parse_server("95.59.20.1").unwrap()]);
    assert_eq!(ok.domain.created_at, first.created_at);
    assert_eq!(
        w.apps.registry().get(&name).unwrap().status,
        DomainStatus::Connected
    );
}

#[tokio::test]
async fn rejection_needs_a_reason_and_locks_for_30_calendar_days() {
    let w = world("2026-03-02").await;
    w.apps
        .submit(new_app("a.example.kz", "95.59.10.1"), "root")
        .await
        .unwrap();
    assert!(w.apps.reject(1, "chief", "   ").await.is_err());
    let v = w
        .apps
        .reject(1, "chief", "not an eligible category")
        .await
        .unwrap();
    assert_eq!(v.application.status, ApplicationStatus::Rejected);
    assert_eq!(
        v.application.reason.as_deref(),
        Some("not an eligible category")
    );
    assert_eq!(v.resubmit_from, Some(d("2026-04-01")));

    // Day 29 after the rejection: refused, naming the first allowed date.
    w.clock.set(d("2026-03-31"));
    let err = w
        .apps
        .submit(new_app("a.example.kz", "95.59.10.1"), "root")
        .await
        .unwrap_err();
    match &err {
        ApplicationError::Locked {
            id,
            rejected_on,
            first_date,
            ..
        } => {
            assert_eq!(*id, 1);
            assert_eq!(*rejected_on, d("2026-03-02"));
            assert_eq!(*first_date, d("2026-04-01"));
        }
        other => panic!("expected Locked, got {other}"),
    }
    assert!(
        err.to_string()
            .contains("a new application may be submitted from 2026-04-01"),
        "{err}"
    );
    // Other domains are not affected.
    w.apps
        .submit(new_app("b.example.kz", "95.59.10.2"), "root")
        .await
        .unwrap();

    // Day 30: accepted.
    w.clock.set(d("2026-04-01"));
    let v = w
        .apps
        .submit(new_app("a.example.kz", "95.59.10.1"), "root")
        .await
        .unwrap();
    assert_eq!(v.application.status, ApplicationStatus::Pending);
}

#[tokio::test]
async fn a_backdated_receipt_inside_the_lock_is_refused() {
    let w = world("2026-03-02").await;
    w.apps
        .submit(new_app("a.example.kz", "95.59.10.1"), "root")
        .await
        .unwrap();
    w.apps.reject(1, "chief", "incomplete").await.unwrap();
    w.clock.set(d("2026-04-10"));
    let mut n = new_app("a.example.kz", "95.59.10.1");
    // Received on day 29, entered later: still inside the lock.
    n.received_on = Some(d("2026-03-31"));
    assert!(matches!(
        w.apps.submit(n, "root").await,
        Err(ApplicationError::Locked { .. })
    ));
}

#[tokio::test]
async fn withdrawal_ends_a_pending_application_without_a_lock() {
    let w = world("2026-03-02").await;
    w.apps
        .submit(new_app("a.example.kz", "95.59.10.1"), "root")
        .await
        .unwrap();
    let v = w
        .apps
        .withdraw(1, "root", Some("applicant's letter"))
        .await
        .unwrap();
    assert_eq!(v.application.status, ApplicationStatus::Withdrawn);
    assert!(v.resubmit_from.is_none());
    w.apps
        .submit(new_app("a.example.kz", "95.59.10.1"), "root")
        .await
        .unwrap();
}

#[tokio::test]
async fn unknown_ids_are_not_found() {
    let w = world("2026-03-02").await;
    assert!(matches!(
        w.apps.get(7).await,
        Err(ApplicationError::NotFound(7))
    ));
    assert!(matches!(
        w.apps.approve(7, "x", false).await,
        Err(ApplicationError::NotFound(7))
    ));
}

#[tokio::test]
async fn overdue_filter_and_list_filters() {
    let w = world("2026-03-02").await;
    w.apps
        .submit(new_app("a.example.kz", "95.59.10.1"), "root")
        .await
        .unwrap(); // due 10 Mar
    w.clock.set(d("2026-03-06"));
    w.apps
        .submit(new_app("b.example.kz", "95.59.10.2"), "root")
        .await
        .unwrap(); // due 16 Mar (9 Mar off)
    assert_eq!(
        w.apps.get(2).await.unwrap().application.decision_due,
        d("2026-03-16")
    );
    w.apps
        .submit(new_app("c.example.kz", "95.59.10.3"), "root")
        .await
        .unwrap();
    w.apps.reject(3, "chief", "no").await.unwrap();

    w.clock.set(d("2026-03-10"));
    let v = w.apps.get(1).await.unwrap();
    assert!(!v.overdue, "due today is not overdue");
    assert_eq!(v.working_days_left, Some(0));
    w.clock.set(d("2026-03-11"));
    let overdue = w
        .apps
        .list(&ApplicationFilter {
            overdue: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(overdue.len(), 1);
    assert_eq!(overdue[0].application.id, 1);
    assert_eq!(overdue[0].working_days_left, Some(-1));
    let rejected = w
        .apps
        .list(&ApplicationFilter {
            status: Some(ApplicationStatus::Rejected),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rejected.len(), 1);
    assert!(
        !rejected[0].overdue,
        "decided applications are never overdue"
    );
    let for_b = w
        .apps
        .list(&ApplicationFilter {
            domain: Some(Domain::parse("b.example.kz").unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(for_b.len(), 1);
}

#[tokio::test]
async fn deadline_alerts_go_out_once_a_day_from_the_due_date() {
    let w = world("2026-03-02").await;
    w.apps
        .submit(new_app("a.example.kz", "95.59.10.1"), "root")
        .await
        .unwrap(); // due 10 Mar
    w.clock.set(d("2026-03-09"));
    assert!(w.apps.due_for_alert().await.unwrap().is_empty());
    w.clock.set(d("2026-03-10"));
    let due = w.apps.due_for_alert().await.unwrap();
    assert_eq!(due.len(), 1);
    w.apps.mark_alerted(1).await.unwrap();
    assert!(w.apps.due_for_alert().await.unwrap().is_empty());
    w.clock.set(d("2026-03-11"));
    assert_eq!(w.apps.due_for_alert().await.unwrap().len(), 1);
    w.apps.mark_alerted(1).await.unwrap();
    w.apps.approve(1, "chief", false).await.unwrap();
    w.clock.set(d("2026-03-12"));
    assert!(w.apps.due_for_alert().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_year_without_holidays_is_flagged() {
    let w = world("2027-12-28").await;
    let v = w
        .apps
        .submit(new_app("a.example.kz", "95.59.10.1"), "root")
        .await
        .unwrap();
    let warning = v
        .calendar_warning
        .expect("2028 is not in the shipped calendar");
    assert!(warning.contains("2028"), "{warning}");
    let w = world("2026-03-02").await;
    let v = w
        .apps
        .submit(new_app("a.example.kz", "95.59.10.1"), "root")
        .await
        .unwrap();
    assert!(v.calendar_warning.is_none());
}

#[tokio::test]
async fn the_weekend_after_a_friday_deadline_is_overdue() {
    let w = world("2026-02-06").await;
    let v = w
        .apps
        .submit(new_app("a.example.kz", "95.59.10.1"), "root")
        .await
        .unwrap();
    assert_eq!(v.application.decision_due, d("2026-02-13"));
    w.clock.set(d("2026-02-14"));
    let v = w.apps.get(1).await.unwrap();
    assert!(v.overdue);
    assert_eq!(v.working_days_left, Some(-1));
    w.clock.set(d("2026-02-17"));
    assert_eq!(w.apps.get(1).await.unwrap().working_days_left, Some(-2));
}

#[tokio::test]
async fn wide_ranges_need_an_explicit_allowance_and_ranges_an_inbound_route() {
    let w = world("2026-03-02").await;
    // Half the internet: refused at intake, with the way out named.
    let mut n = new_app("a.example.kz", "128.0.0.0/1");
    n.inbound = Some("95.59.10.1:25".parse().unwrap());
    let err = w
        .apps
        .submit(n.clone(), "root")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("wider than /24"), "{err}");
    assert!(err.contains("--allow-wide-range"), "{err}");
    // A range as the first server needs an inbound route.
    let err = w
        .apps
        .submit(new_app("a.example.kz", "95.59.10.0/28"), "root")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("network address 95.59.10.0:25"), "{err}");
    assert!(err.contains("--inbound"), "{err}");
    // IPv6: /48 is the widest by default.
    let mut v6 = new_app("a.example.kz", "2001:db8::/32");
    v6.inbound = Some("95.59.10.1:25".parse().unwrap());
    assert!(w.apps.submit(v6, "root").await.is_err());
    // Staff allow it explicitly: recorded, and the approval honours it.
    n.allow_wide_range = true;
    let v = w.apps.submit(n, "root").await.unwrap();
    assert!(v.application.allow_wide_range);
    let ok = w
        .apps
        .approve(v.application.id, "chief", false)
        .await
        .unwrap();
    assert_eq!(ok.domain.servers[0].to_string(), "128.0.0.0/1");
}
