//! The contract every [`RegistryStore`] backend must keep, written once as
//! async checks over `&dyn RegistryStore` so that each backend runs the same
//! suite (`tests/registry_store_contract.rs` runs it on the redb backend; a
//! networked backend runs it on its own). Each check expects an empty store
//! and panics on the first broken promise. Races are run for real: the
//! calls are joined, so a backend that serves them concurrently is tested
//! concurrently.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Duration, Utc};

use super::{DomainWrite, Expect, RegistryStore, StoreError};
use crate::domain::Domain;
use crate::model::applications::{ApplicantCategory, ApplicationRecord, ApplicationStatus};
use crate::model::audit::{AuditFilter, AuditRecord, DENIED, RefusedUpdate};
use crate::model::changes::{ChangeRequest, ChangeStatus, DomainChange, DomainVersion};
use crate::model::domains::{Contact, DomainRecord, DomainStatus};
use crate::model::listings::GatewayListing;
use crate::model::servers::ServerSuspension;
use crate::model::sightings::UnregisteredServer;
use crate::model::suspensions::{Restoration, Scope, SuspensionRecord};

/// One check of the contract, on an empty store.
pub type Check = for<'a> fn(&'a dyn RegistryStore) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Every check, by name: run each on a fresh, empty store.
pub const CHECKS: &[(&str, Check)] = &[
    ("domains_round_trip", |s| Box::pin(domains_round_trip(s))),
    ("domain_writes_are_conditional", |s| {
        Box::pin(domain_writes_are_conditional(s))
    }),
    ("racing_registrations_one_wins", |s| {
        Box::pin(racing_registrations_one_wins(s))
    }),
    ("suspensions_start_and_end", |s| {
        Box::pin(suspensions_start_and_end(s))
    }),
    ("one_active_suspension_per_scope", |s| {
        Box::pin(one_active_suspension_per_scope(s))
    }),
    ("suspension_and_domain_change_together", |s| {
        Box::pin(suspension_and_domain_change_together(s))
    }),
    ("applications_ids_and_decisions", |s| {
        Box::pin(applications_ids_and_decisions(s))
    }),
    ("racing_applications_and_decisions", |s| {
        Box::pin(racing_applications_and_decisions(s))
    }),
    ("audit_trail", |s| Box::pin(audit_trail(s))),
    ("audit_query_and_retention", |s| {
        Box::pin(audit_query_and_retention(s))
    }),
    ("notice_claims", |s| Box::pin(notice_claims(s))),
    ("racing_notice_claims_one_wins", |s| {
        Box::pin(racing_notice_claims_one_wins(s))
    }),
    ("notice_numbers_never_repeat", |s| {
        Box::pin(notice_numbers_never_repeat(s))
    }),
    ("domain_versions_kept_with_the_write", |s| {
        Box::pin(domain_versions_kept_with_the_write(s))
    }),
    ("change_requests_ids_and_decisions", |s| {
        Box::pin(change_requests_ids_and_decisions(s))
    }),
    ("unregistered_servers_merge_and_new_once", |s| {
        Box::pin(unregistered_servers_merge_and_new_once(s))
    }),
    ("server_suspensions_one_active_per_address", |s| {
        Box::pin(server_suspensions_one_active_per_address(s))
    }),
    ("gateway_listings_one_open_per_address_and_list", |s| {
        Box::pin(gateway_listings_one_open_per_address_and_list(s))
    }),
];

/// A connected domain record, as registration makes it.
pub fn domain(name: &str) -> DomainRecord {
    let now = Utc::now();
    DomainRecord::connected(
        Domain::parse(name).expect("a domain name"),
        "Ministry of Examples".into(),
        vec!["192.0.2.10/32".parse().expect("a range")],
        vec![Contact {
            name: "Aliya Nurlanova".into(),
            email: format!("it@{name}"),
            office_phone: Some("+7 7172 000000".parse().expect("a phone")),
            mobile_phone: None,
        }],
        now,
    )
}

/// A new active suspension of `scope` (id 0: the store assigns it).
pub fn suspension(scope: Scope) -> SuspensionRecord {
    SuspensionRecord {
        id: 0,
        scope,
        rule: "manual".into(),
        reason: "phishing".into(),
        evidence: serde_json::json!({"recipients_per_hour": 5000}),
        actor: "ops".into(),
        started_at: Utc::now(),
        expires_at: None,
        restored: None,
    }
}

/// How a suspension ends in these checks.
pub fn restoration(by: &str) -> Restoration {
    Restoration {
        by: by.into(),
        at: Utc::now(),
        reason: Some("password reset".into()),
        held_mail: "released".into(),
    }
}

/// A new pending application for `domain` (id 0: the store assigns it).
pub fn application(domain: &str) -> ApplicationRecord {
    ApplicationRecord {
        id: 0,
        domain: Domain::parse(domain).expect("a domain name"),
        owner: "Ministry of Finance".into(),
        category: ApplicantCategory::StateBody,
        head: "A. Minister".into(),
        servers: vec!["192.0.2.10/32".parse().expect("a range")],
        contacts: vec![Contact {
            name: "Aliya Nurlanova".into(),
            email: format!("it@{domain}"),
            office_phone: Some("+7 7172 000000".parse().expect("a phone")),
            mobile_phone: None,
        }],
        inbound: None,
        received_on: "2026-03-02".parse().expect("a date"),
        decision_due: "2026-03-10".parse().expect("a date"),
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

/// An audit record `age_days` old with `outcome`.
pub fn audit(outcome: &str, age_days: i64, target: &str) -> AuditRecord {
    AuditRecord {
        seq: 0,
        at: Utc::now() - Duration::days(age_days),
        actor: "(unauthenticated)".into(),
        action: "domain.suspend".into(),
        target: target.into(),
        client: Some("192.0.2.1".into()),
        outcome: outcome.into(),
        count: 1,
        reason: None,
        before: None,
        after: None,
    }
}

fn d(name: &str) -> Domain {
    Domain::parse(name).expect("a domain name")
}

fn is_conflict<T: std::fmt::Debug>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict(_)))
}

fn is_not_found<T: std::fmt::Debug>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::NotFound(_)))
}

/// `rec` changed as a new version of itself (a later `updated_at`).
fn changed(rec: &DomainRecord, owner: &str) -> DomainWrite {
    let mut next = rec.clone();
    next.owner = owner.into();
    next.updated_at = later(rec.updated_at);
    DomainWrite {
        record: next,
        expect: Expect::unchanged(rec),
    }
}

fn later(t: DateTime<Utc>) -> DateTime<Utc> {
    t + Duration::milliseconds(1)
}

fn new_domain(rec: &DomainRecord) -> DomainWrite {
    DomainWrite {
        record: rec.clone(),
        expect: Expect::Absent,
    }
}

/// Whole records come back as written; the list is in name order.
pub async fn domains_round_trip(s: &dyn RegistryStore) {
    assert!(s.list_domains().await.unwrap().is_empty());
    let b = domain("b.example.kz");
    let mut a = domain("a.example.kz");
    a.senders.insert(
        "bulk@a.example.kz".into(),
        crate::model::domains::SenderLimits {
            messages_per_hour: Some(5000),
            ..Default::default()
        },
    );
    s.put_domain(&new_domain(&b)).await.unwrap();
    s.put_domain(&new_domain(&a)).await.unwrap();
    assert_eq!(s.get_domain(&a.name).await.unwrap(), Some(a.clone()));
    assert_eq!(s.list_domains().await.unwrap(), vec![a, b]);
    assert_eq!(s.get_domain(&d("other.example.kz")).await.unwrap(), None);
}

/// A domain write happens only over what its writer read.
pub async fn domain_writes_are_conditional(s: &dyn RegistryStore) {
    let v1 = domain("a.example.kz");
    s.put_domain(&new_domain(&v1)).await.unwrap();
    // Registering it again is a conflict, and writes nothing.
    let mut other = domain("a.example.kz");
    other.owner = "Someone Else".into();
    assert!(is_conflict(&s.put_domain(&new_domain(&other)).await));
    assert_eq!(s.get_domain(&v1.name).await.unwrap(), Some(v1.clone()));
    // A change over the version read goes in.
    let w2 = changed(&v1, "Second");
    s.put_domain(&w2).await.unwrap();
    assert_eq!(
        s.get_domain(&v1.name).await.unwrap(),
        Some(w2.record.clone())
    );
    // A change over the old version is refused: someone else was first.
    let stale = changed(&v1, "Third");
    assert!(is_conflict(&s.put_domain(&stale).await));
    assert_eq!(
        s.get_domain(&v1.name).await.unwrap().unwrap().owner,
        "Second"
    );
    // A change of a domain that is not there is refused too.
    let ghost = changed(&domain("ghost.example.kz"), "Nobody");
    assert!(is_conflict(&s.put_domain(&ghost).await));
    assert_eq!(s.get_domain(&d("ghost.example.kz")).await.unwrap(), None);
}

/// Two writers registering one domain at once: one wins, the other learns.
pub async fn racing_registrations_one_wins(s: &dyn RegistryStore) {
    let mut first = domain("a.example.kz");
    first.owner = "First".into();
    let mut second = domain("a.example.kz");
    second.owner = "Second".into();
    let (w1, w2) = (new_domain(&first), new_domain(&second));
    let (r1, r2) = tokio::join!(s.put_domain(&w1), s.put_domain(&w2));
    assert!(
        r1.is_ok() != r2.is_ok(),
        "exactly one registration wins: {r1:?} {r2:?}"
    );
    assert!(is_conflict(&r1) || is_conflict(&r2));
    let winner = if r1.is_ok() { "First" } else { "Second" };
    assert_eq!(
        s.get_domain(&first.name).await.unwrap().unwrap().owner,
        winner
    );
    // Two changes of one version at once: one wins.
    let cur = s.get_domain(&first.name).await.unwrap().unwrap();
    let (c1, c2) = (changed(&cur, "C1"), changed(&cur, "C2"));
    let (r1, r2) = tokio::join!(s.put_domain(&c1), s.put_domain(&c2));
    assert!(
        r1.is_ok() != r2.is_ok(),
        "exactly one change wins: {r1:?} {r2:?}"
    );
    let winner = if r1.is_ok() { "C1" } else { "C2" };
    assert_eq!(
        s.get_domain(&first.name).await.unwrap().unwrap().owner,
        winner
    );
}

/// Suspensions get growing ids, keep their evidence, and end once.
pub async fn suspensions_start_and_end(s: &dyn RegistryStore) {
    assert!(s.list_suspensions().await.unwrap().is_empty());
    let scope = Scope::Sender("bot@agency.example.kz".into());
    let rec = s
        .start_suspension(&suspension(scope.clone()), None)
        .await
        .unwrap();
    assert!(rec.id >= 1);
    assert!(rec.is_active());
    assert_eq!(s.get_suspension(rec.id).await.unwrap(), Some(rec.clone()));
    let how = restoration("ops");
    let ended = s.end_suspension(&scope, &how, None).await.unwrap();
    assert_eq!(ended.id, rec.id);
    assert_eq!(ended.restored, Some(how.clone()));
    assert!(is_not_found(&s.end_suspension(&scope, &how, None).await));
    let again = s
        .start_suspension(&suspension(scope.clone()), None)
        .await
        .unwrap();
    assert!(again.id > rec.id, "ids grow: {} after {}", again.id, rec.id);
    let all = s.list_suspensions().await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![rec.id, again.id]
    );
    assert!(!all[0].is_active());
    assert!(all[1].is_active());
    assert_eq!(all[0].evidence["recipients_per_hour"], 5000);
    assert_eq!(s.get_suspension(again.id + 100).await.unwrap(), None);
    assert!(is_not_found(
        &s.end_suspension(&Scope::Sender("nobody@x.kz".into()), &how, None)
            .await
    ));
}

/// At most one active suspension per scope, also when two start at once.
pub async fn one_active_suspension_per_scope(s: &dyn RegistryStore) {
    let scope = Scope::Sender("bot@agency.example.kz".into());
    s.start_suspension(&suspension(scope.clone()), None)
        .await
        .unwrap();
    assert!(is_conflict(
        &s.start_suspension(&suspension(scope.clone()), None).await
    ));
    // Another scope is another matter.
    let other = Scope::Domain(d("agency.example.kz"));
    s.start_suspension(&suspension(other), None).await.unwrap();
    // Two at once on a fresh scope: exactly one starts.
    let racing = Scope::Sender("racer@agency.example.kz".into());
    let (a, b) = (suspension(racing.clone()), suspension(racing.clone()));
    let (r1, r2) = tokio::join!(s.start_suspension(&a, None), s.start_suspension(&b, None));
    assert!(
        r1.is_ok() != r2.is_ok(),
        "exactly one starts: {r1:?} {r2:?}"
    );
    let active = s
        .list_suspensions()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.scope == racing && r.is_active())
        .count();
    assert_eq!(active, 1);
    // Two ends at once: exactly one ends it.
    let (how1, how2) = (restoration("one"), restoration("two"));
    let (e1, e2) = tokio::join!(
        s.end_suspension(&racing, &how1, None),
        s.end_suspension(&racing, &how2, None)
    );
    assert!(e1.is_ok() != e2.is_ok(), "exactly one ends: {e1:?} {e2:?}");
    assert!(is_not_found(&e1) || is_not_found(&e2));
}

/// A domain's suspension and its record change in one step, or not at all.
pub async fn suspension_and_domain_change_together(s: &dyn RegistryStore) {
    let v1 = domain("agency.example.kz");
    s.put_domain(&new_domain(&v1)).await.unwrap();
    let scope = Scope::Domain(v1.name.clone());
    let suspended = |from: &DomainRecord| {
        let mut next = from.clone();
        next.status = DomainStatus::Suspended;
        next.updated_at = later(from.updated_at);
        DomainWrite {
            record: next,
            expect: Expect::unchanged(from),
        }
    };
    // Someone changed the domain since it was read: nothing is written.
    let v2 = changed(&v1, "Changed");
    s.put_domain(&v2).await.unwrap();
    let stale = suspended(&v1);
    assert!(is_conflict(
        &s.start_suspension(&suspension(scope.clone()), Some(&stale))
            .await
    ));
    assert!(s.list_suspensions().await.unwrap().is_empty());
    assert_eq!(
        s.get_domain(&v1.name).await.unwrap(),
        Some(v2.record.clone())
    );
    // Over the current version: both are written.
    let w = suspended(&v2.record);
    let rec = s
        .start_suspension(&suspension(scope.clone()), Some(&w))
        .await
        .unwrap();
    assert_eq!(
        s.get_domain(&v1.name).await.unwrap(),
        Some(w.record.clone())
    );
    // Ending over a stale version: the suspension stays active.
    let back = |from: &DomainRecord, expect: Expect| {
        let mut next = from.clone();
        next.status = DomainStatus::Connected;
        next.updated_at = later(from.updated_at);
        DomainWrite {
            record: next,
            expect,
        }
    };
    let how = restoration("ops");
    let stale = back(&w.record, Expect::unchanged(&v1));
    assert!(is_conflict(
        &s.end_suspension(&scope, &how, Some(&stale)).await
    ));
    assert!(s.get_suspension(rec.id).await.unwrap().unwrap().is_active());
    assert_eq!(
        s.get_domain(&v1.name).await.unwrap().unwrap().status,
        DomainStatus::Suspended
    );
    let ok = back(&w.record, Expect::unchanged(&w.record));
    let ended = s.end_suspension(&scope, &how, Some(&ok)).await.unwrap();
    assert_eq!(ended.id, rec.id);
    assert!(!s.get_suspension(rec.id).await.unwrap().unwrap().is_active());
    assert_eq!(s.get_domain(&v1.name).await.unwrap(), Some(ok.record));
}

/// Applications get ids from the store; one pending per domain; decisions
/// only over the status they were made on.
pub async fn applications_ids_and_decisions(s: &dyn RegistryStore) {
    assert!(s.list_applications().await.unwrap().is_empty());
    let a = s
        .insert_application(&application("minfin.example.kz"))
        .await
        .unwrap();
    let b = s
        .insert_application(&application("minjust.example.kz"))
        .await
        .unwrap();
    assert!(a.id >= 1 && b.id > a.id, "ids grow: {} then {}", a.id, b.id);
    assert_eq!(s.get_application(a.id).await.unwrap(), Some(a.clone()));
    // One pending application per domain.
    assert!(is_conflict(
        &s.insert_application(&application("minfin.example.kz"))
            .await
    ));
    // A decision over the pending status goes in; a second one does not.
    let mut rejected = a.clone();
    rejected.status = ApplicationStatus::Rejected;
    rejected.reason = Some("not an eligible category".into());
    s.update_application(&rejected, ApplicationStatus::Pending)
        .await
        .unwrap();
    let mut approved = a.clone();
    approved.status = ApplicationStatus::Approved;
    assert!(is_conflict(
        &s.update_application(&approved, ApplicationStatus::Pending)
            .await
    ));
    assert_eq!(
        s.get_application(a.id).await.unwrap(),
        Some(rejected.clone())
    );
    // A rejected domain may apply again (the workflow's lock is not the store's).
    let c = s
        .insert_application(&application("minfin.example.kz"))
        .await
        .unwrap();
    assert!(c.id > b.id);
    // A change over the status as read (an alert mark) goes in.
    let mut marked = rejected.clone();
    marked.alerted_on = Some("2026-03-10".parse().unwrap());
    s.update_application(&marked, ApplicationStatus::Rejected)
        .await
        .unwrap();
    let mut missing = application("x.example.kz");
    missing.id = c.id + 100;
    assert!(is_not_found(
        &s.update_application(&missing, ApplicationStatus::Pending)
            .await
    ));
    let all = s.list_applications().await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![a.id, b.id, c.id]
    );
    assert_eq!(all[0], marked);
    assert_eq!(s.get_application(c.id + 100).await.unwrap(), None);
}

/// Applications entered at once get distinct ids (one per domain pending);
/// two decisions at once: one wins.
pub async fn racing_applications_and_decisions(s: &dyn RegistryStore) {
    let (x, y) = (application("x.example.kz"), application("y.example.kz"));
    let (r1, r2) = tokio::join!(s.insert_application(&x), s.insert_application(&y));
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert_ne!(r1.id, r2.id);
    let (z1, z2) = (application("z.example.kz"), application("z.example.kz"));
    let (q1, q2) = tokio::join!(s.insert_application(&z1), s.insert_application(&z2));
    assert!(
        q1.is_ok() != q2.is_ok(),
        "one pending per domain: {q1:?} {q2:?}"
    );
    let mut approve = r1.clone();
    approve.status = ApplicationStatus::Approved;
    let mut reject = r1.clone();
    reject.status = ApplicationStatus::Rejected;
    let (d1, d2) = tokio::join!(
        s.update_application(&approve, ApplicationStatus::Pending),
        s.update_application(&reject, ApplicationStatus::Pending)
    );
    assert!(
        d1.is_ok() != d2.is_ok(),
        "exactly one decision: {d1:?} {d2:?}"
    );
    let stored = s.get_application(r1.id).await.unwrap().unwrap();
    let winner = if d1.is_ok() {
        ApplicationStatus::Approved
    } else {
        ApplicationStatus::Rejected
    };
    assert_eq!(stored.status, winner);
}

/// The audit trail: numbered in order, newest first, refused calls folded,
/// counted and pruned while staff actions stay. (Records are appended in
/// time order, as the gateway writes them; pruning may rely on it.)
pub async fn audit_trail(s: &dyn RegistryStore) {
    let old_denied = s
        .append_refused(&audit(DENIED, 40, "old-refused"))
        .await
        .unwrap();
    let old_staff = s.append_audit(&audit("ok", 40, "old-staff")).await.unwrap();
    let mut seqs = Vec::new();
    for i in 0..3 {
        let mut rec = audit("ok", 0, &format!("d{i}.example.kz"));
        rec.actor = "ops".into();
        seqs.push(s.append_audit(&rec).await.unwrap());
    }
    assert!(old_denied < old_staff && old_staff < seqs[0]);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let recent = s.list_audit(2).await.unwrap();
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[0].target, "d2.example.kz");
    assert_eq!(recent[1].seq, seqs[1]);

    let new_denied = s
        .append_refused(&audit(DENIED, 0, "new-refused"))
        .await
        .unwrap();
    let up = |seq, count| RefusedUpdate {
        seq,
        count,
        action: "domain.suspend,queue.delete".into(),
    };
    // Staff records and missing ones are left alone.
    s.update_refused(&[
        up(new_denied, 57),
        up(old_staff, 9),
        up(new_denied + 1000, 3),
    ])
    .await
    .unwrap();
    s.update_refused(&[]).await.unwrap();
    let pruned = s
        .prune_refused_audit(Utc::now() - Duration::days(30))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    let left = s.list_audit(100).await.unwrap();
    let seqs_left: Vec<u64> = left.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs_left,
        vec![new_denied, seqs[2], seqs[1], seqs[0], old_staff]
    );
    assert_eq!(left[0].count, 57);
    assert_eq!(left[0].action, "domain.suspend,queue.delete");
    assert_eq!(left[4].count, 1, "only refused records take a count");
    assert_eq!(left[4].action, "domain.suspend");
    assert_eq!(s.audit_size().await.unwrap().records, 5);
}

/// The audit trail filtered by actor, action, target and period, its
/// reasons and changes kept as written, and every record older than the
/// retention pruned (staff's and the gateway's alike).
pub async fn audit_query_and_retention(s: &dyn RegistryStore) {
    let mut old = audit("ok", 400, "old.example.kz");
    old.actor = "root".into();
    s.append_audit(&old).await.unwrap();
    let auto = AuditRecord::auto(
        Utc::now() - Duration::days(2),
        "domain.suspend",
        "a.example.kz",
        "burst of new recipients",
    )
    .change(
        serde_json::json!({"status": "connected"}),
        serde_json::json!({"status": "suspended"}),
    );
    s.append_audit(&auto).await.unwrap();
    let mut update = audit("ok", 1, "a.example.kz");
    update.actor = "root".into();
    update.action = "domain.update".into();
    update.reason = Some("new server".into());
    s.append_audit(&update).await.unwrap();

    let q = |f: AuditFilter| async move { s.query_audit(&f).await.unwrap() };
    let all = q(AuditFilter::default()).await;
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].action, "domain.update", "newest first");
    let by_auto = q(AuditFilter {
        actor: Some("auto".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(by_auto.len(), 1);
    assert_eq!(
        by_auto[0].reason.as_deref(),
        Some("burst of new recipients")
    );
    assert_eq!(
        by_auto[0].after,
        Some(serde_json::json!({"status": "suspended"}))
    );
    let domain_family = q(AuditFilter {
        action: Some("domain.".into()),
        target: Some("a.example.kz".into()),
        from: Some(Utc::now() - Duration::days(3)),
        to: Some(Utc::now()),
        ..Default::default()
    })
    .await;
    assert_eq!(domain_family.len(), 2);
    let one = q(AuditFilter {
        limit: Some(1),
        ..Default::default()
    })
    .await;
    assert_eq!(one.len(), 1);

    assert_eq!(
        s.prune_audit(Utc::now() - Duration::days(365))
            .await
            .unwrap(),
        1
    );
    let left = q(AuditFilter::default()).await;
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|r| r.target == "a.example.kz"));
}

/// A notice is claimed once until its claim is pruned.
pub async fn notice_claims(s: &dyn RegistryStore) {
    let key = "warn|d:a.example|2026-03-02";
    assert!(s.claim_notice(key, 5).await.unwrap());
    assert!(!s.claim_notice(key, 6).await.unwrap());
    assert!(s.claim_notice("another", 500).await.unwrap());
    assert_eq!(s.prune_notices(100).await.unwrap(), 1);
    assert!(s.claim_notice(key, 8).await.unwrap());
    assert!(!s.claim_notice("another", 9).await.unwrap());
}

/// Many claims of one notice at once (two nodes, several tasks): exactly
/// one is told to send it.
pub async fn racing_notice_claims_one_wins(s: &dyn RegistryStore) {
    let key = "suspend|s:bot@agency.example.kz|2026-03-02";
    let (a, b) = tokio::join!(s.claim_notice(key, 1), s.claim_notice(key, 2));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a != b, "exactly one of two claims wins: {a} {b}");
    let key = "restore|d:agency.example.kz|2026-03-02";
    let (r1, r2, r3, r4) = tokio::join!(
        s.claim_notice(key, 1),
        s.claim_notice(key, 2),
        s.claim_notice(key, 3),
        s.claim_notice(key, 4)
    );
    let won = [r1, r2, r3, r4]
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(won, 1);
}

/// Outgoing notice numbers count up from 1 per year, and racing callers
/// each get their own.
pub async fn notice_numbers_never_repeat(s: &dyn RegistryStore) {
    assert_eq!(s.next_notice_number(2026).await.unwrap(), 1);
    assert_eq!(s.next_notice_number(2026).await.unwrap(), 2);
    assert_eq!(s.next_notice_number(2027).await.unwrap(), 1);
    let (a, b, c) = tokio::join!(
        s.next_notice_number(2026),
        s.next_notice_number(2026),
        s.next_notice_number(2026)
    );
    let mut got = [a.unwrap(), b.unwrap(), c.unwrap()];
    got.sort();
    assert_eq!(got, [3, 4, 5]);
}

/// A version of `rec` replaced by `by` (number 0: the store assigns it).
pub fn version(rec: &DomainRecord, by: &str) -> DomainVersion {
    DomainVersion {
        domain: rec.name.clone(),
        version: 0,
        record: rec.clone(),
        replaced_at: Utc::now(),
        by: by.into(),
        reason: "new server".into(),
        changes: Vec::new(),
        change_request: None,
    }
}

/// A new pending change request for `domain` (id 0: the store assigns it).
pub fn change_request(domain: &str) -> ChangeRequest {
    let today = Utc::now().date_naive();
    ChangeRequest {
        id: 0,
        domain: Domain::parse(domain).expect("a domain name"),
        change: DomainChange {
            owner: Some("Ministry of Renamed Things".into()),
            ..Default::default()
        },
        reason: "renamed by decree".into(),
        received_on: today,
        decision_due: today,
        status: ChangeStatus::Pending,
        submitted_by: "ops".into(),
        created_at: Utc::now(),
        decided_by: None,
        decided_at: None,
        decision_reason: None,
    }
}

/// A versioned write keeps the replaced record under the next number, in
/// the same step as the write: a write that loses its condition keeps none.
pub async fn domain_versions_kept_with_the_write(s: &dyn RegistryStore) {
    let v1 = domain("agency.example.kz");
    s.put_domain(&new_domain(&v1)).await.unwrap();
    assert_eq!(s.list_domain_versions(&v1.name).await.unwrap(), vec![]);
    let mut v2 = v1.clone();
    v2.owner = "Ministry of Renamed Things".into();
    v2.updated_at = later(v1.updated_at);
    let w = DomainWrite {
        record: v2.clone(),
        expect: Expect::unchanged(&v1),
    };
    assert_eq!(
        s.put_domain_versioned(&w, &version(&v1, "one"))
            .await
            .unwrap(),
        1
    );
    // The same write again names a version that is gone: nothing is kept.
    assert!(is_conflict(
        &s.put_domain_versioned(&w, &version(&v1, "two")).await
    ));
    let mut v3 = v2.clone();
    v3.owner = "Ministry of Third Names".into();
    v3.updated_at = later(v2.updated_at);
    let w3 = DomainWrite {
        record: v3.clone(),
        expect: Expect::unchanged(&v2),
    };
    assert_eq!(
        s.put_domain_versioned(&w3, &version(&v2, "three"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(s.get_domain(&v1.name).await.unwrap(), Some(v3));
    let kept = s.list_domain_versions(&v1.name).await.unwrap();
    assert_eq!(
        kept.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(kept[0].record, v1);
    assert_eq!(kept[1].record, v2);
    assert_eq!(kept[1].by, "three");
    // Versions are per domain.
    let other = domain("other.example.kz");
    assert_eq!(s.list_domain_versions(&other.name).await.unwrap(), vec![]);
}

/// Change request ids are assigned by the store, one pending request per
/// domain, and a decision is written only over the status it was made on.
pub async fn change_requests_ids_and_decisions(s: &dyn RegistryStore) {
    let first = s
        .insert_change_request(&change_request("agency.example.kz"))
        .await
        .unwrap();
    assert!(first.id > 0);
    assert!(is_conflict(
        &s.insert_change_request(&change_request("agency.example.kz"))
            .await
    ));
    let other = s
        .insert_change_request(&change_request("other.example.kz"))
        .await
        .unwrap();
    assert!(other.id > first.id);
    let mut approved = first.clone();
    approved.status = ChangeStatus::Approved;
    approved.decided_by = Some("one".into());
    let mut rejected = first.clone();
    rejected.status = ChangeStatus::Rejected;
    let (a, b) = tokio::join!(
        s.update_change_request(&approved, ChangeStatus::Pending),
        s.update_change_request(&rejected, ChangeStatus::Pending)
    );
    assert!(a.is_ok() != b.is_ok(), "exactly one decision: {a:?} {b:?}");
    assert!(is_conflict(&a) || is_conflict(&b));
    let stored = s.get_change_request(first.id).await.unwrap().unwrap();
    assert_ne!(stored.status, ChangeStatus::Pending);
    // Decided: the domain may ask again.
    s.insert_change_request(&change_request("agency.example.kz"))
        .await
        .unwrap();
    assert_eq!(s.list_change_requests().await.unwrap().len(), 3);
    assert_eq!(s.get_change_request(999).await.unwrap(), None);
    let mut missing = first.clone();
    missing.id = 999;
    assert!(is_not_found(
        &s.update_change_request(&missing, ChangeStatus::Pending)
            .await
    ));
}

/// A sighting of `address` sending as `domain`, `count` times at `at`.
pub fn sighting(domain: &str, address: &str, count: u64, at: DateTime<Utc>) -> UnregisteredServer {
    UnregisteredServer {
        domain: d(domain),
        address: address.parse().expect("an address"),
        first_seen: at,
        last_seen: at,
        count,
        sample: format!("MAIL FROM:<clerk@{domain}> at {at}"),
    }
}

/// Sightings merge (counts add up, first and last seen widen, the latest
/// sample stays); an address is new once, also when two batches race.
pub async fn unregistered_servers_merge_and_new_once(s: &dyn RegistryStore) {
    let t0 = Utc::now();
    let t1 = t0 + Duration::seconds(10);
    let first = vec![
        sighting("agency.example.kz", "198.51.100.7", 2, t0),
        sighting("agency.example.kz", "2001:db8::7", 1, t0),
        sighting("other.example.kz", "198.51.100.7", 1, t0),
    ];
    assert_eq!(s.record_unregistered(&first).await.unwrap().len(), 3);
    let later = vec![sighting("agency.example.kz", "198.51.100.7", 3, t1)];
    assert_eq!(s.record_unregistered(&later).await.unwrap(), vec![]);
    let seen = s.list_unregistered(&d("agency.example.kz")).await.unwrap();
    assert_eq!(seen.len(), 2);
    let v4 = seen
        .iter()
        .find(|x| x.address.to_string() == "198.51.100.7")
        .unwrap();
    assert_eq!(v4.count, 5);
    assert_eq!((v4.first_seen, v4.last_seen), (t0, t1));
    assert_eq!(v4.sample, later[0].sample);
    // An older batch arriving late widens first_seen, keeps the newer sample.
    let early = vec![sighting(
        "agency.example.kz",
        "198.51.100.7",
        1,
        t0 - Duration::seconds(5),
    )];
    s.record_unregistered(&early).await.unwrap();
    let v4 = s.list_unregistered(&d("agency.example.kz")).await.unwrap()[0].clone();
    assert_eq!(v4.first_seen, t0 - Duration::seconds(5));
    assert_eq!(v4.last_seen, t1);
    assert_eq!(v4.count, 6);
    assert_eq!(
        s.list_unregistered(&d("other.example.kz"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.list_unregistered(&d("none.example.kz")).await.unwrap(),
        vec![]
    );
    // Two batches with the same new address at once: it is new for one only.
    let a = vec![sighting("race.example.kz", "203.0.113.9", 1, t0)];
    let b = a.clone();
    let (ra, rb) = tokio::join!(s.record_unregistered(&a), s.record_unregistered(&b));
    assert_eq!(ra.unwrap().len() + rb.unwrap().len(), 1);
    assert_eq!(
        s.list_unregistered(&d("race.example.kz")).await.unwrap()[0].count,
        2
    );
}

/// A new active suspension of server `address` (id 0: the store assigns it).
pub fn server_suspension(address: &str) -> ServerSuspension {
    ServerSuspension {
        id: 0,
        address: address.parse().expect("an address"),
        reason: "compromised".into(),
        actor: "ops".into(),
        started_at: Utc::now(),
        domains: vec![d("agency.example.kz"), d("other.example.kz")],
        restored: None,
    }
}

/// At most one active suspension per server address, also when two start
/// at once; ending one ends the active one, once.
pub async fn server_suspensions_one_active_per_address(s: &dyn RegistryStore) {
    let first = s
        .start_server_suspension(&server_suspension("198.51.100.7"))
        .await
        .unwrap();
    assert!(first.id > 0 && first.is_active());
    assert!(is_conflict(
        &s.start_server_suspension(&server_suspension("198.51.100.7"))
            .await
    ));
    let (a, b) = (
        server_suspension("203.0.113.9"),
        server_suspension("203.0.113.9"),
    );
    let (ra, rb) = tokio::join!(s.start_server_suspension(&a), s.start_server_suspension(&b));
    assert!(
        ra.is_ok() != rb.is_ok(),
        "exactly one starts: {ra:?} {rb:?}"
    );
    let ip = first.address;
    let ended = s
        .end_server_suspension(ip, &restoration("ops"))
        .await
        .unwrap();
    assert_eq!(ended.id, first.id);
    assert!(!ended.is_active());
    assert!(is_not_found(
        &s.end_server_suspension(ip, &restoration("again")).await
    ));
    let again = s
        .start_server_suspension(&server_suspension("198.51.100.7"))
        .await
        .unwrap();
    assert!(again.id > first.id);
    let all = s.list_server_suspensions().await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].domains.len(), 2);
    assert_eq!(all.iter().filter(|x| x.is_active()).count(), 2);
}

/// A new listing of `address` on `list` (id 0: the store assigns it).
pub fn gateway_listing(address: &str, list: &str) -> GatewayListing {
    GatewayListing {
        id: 0,
        at: Utc::now(),
        address: address.parse().expect("an address"),
        list: list.into(),
        code: "554 5.7.1".into(),
        meaning: "listed".into(),
        source: "refusal".into(),
        last_seen: None,
        delisted_at: None,
    }
}

/// One open listing per address and list: a second sighting updates it,
/// also when two arrive at once; ending it ends that one, once; a later
/// sighting opens a new one.
pub async fn gateway_listings_one_open_per_address_and_list(s: &dyn RegistryStore) {
    let (first, new) = s
        .record_listing(&gateway_listing("203.0.113.25", "zen.spamhaus.org"))
        .await
        .unwrap();
    assert!(new && first.id > 0 && first.is_open());
    let mut again = gateway_listing("203.0.113.25", "zen.spamhaus.org");
    again.code = "550 5.7.1".into();
    let (same, new) = s.record_listing(&again).await.unwrap();
    assert!(!new);
    assert_eq!((same.id, same.code.as_str()), (first.id, "550 5.7.1"));
    assert!(same.last_seen.is_some());
    // Another list is another listing; two at once open one.
    let (a, b) = (
        gateway_listing("203.0.113.25", "b.barracudacentral.org"),
        gateway_listing("203.0.113.25", "b.barracudacentral.org"),
    );
    let (ra, rb) = tokio::join!(s.record_listing(&a), s.record_listing(&b));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(ra.1 != rb.1, "exactly one opens: {ra:?} {rb:?}");
    assert_eq!(ra.0.id, rb.0.id);
    let ip = first.address;
    let at = Utc::now();
    let ended = s.end_listing(ip, "zen.spamhaus.org", at).await.unwrap();
    assert_eq!((ended.id, ended.delisted_at), (first.id, Some(at)));
    assert!(is_not_found(
        &s.end_listing(ip, "zen.spamhaus.org", at).await
    ));
    let (reopened, new) = s
        .record_listing(&gateway_listing("203.0.113.25", "zen.spamhaus.org"))
        .await
        .unwrap();
    assert!(new && reopened.id > ra.0.id);
    let all = s.list_listings().await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all.iter().filter(|l| l.is_open()).count(), 2);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
}
