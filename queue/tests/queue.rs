//! The queue through its public API, on a real file in a temporary directory.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use redb::{Database, TableDefinition};
use ugem_queue::{
    AttemptOutcome, Direction, ListFilter, MessageState, NewEnvelope, Queue, QueueError, QueueId,
    QueueOptions, RcptStatus, RecipientUpdate, unix_ms,
};

fn open(dir: &Path) -> Queue {
    Queue::open(dir, opts()).expect("queue opens")
}

fn opts() -> QueueOptions {
    // The floor is not under test here; a nearly full CI disk must not fail these tests.
    QueueOptions {
        min_free_bytes: 0,
        ..QueueOptions::default()
    }
}

fn envelope(sender: &str, rcpts: &[&str], domain: &str) -> NewEnvelope {
    NewEnvelope {
        sender: sender.into(),
        recipients: rcpts.iter().map(|r| (*r).to_owned()).collect(),
        client_ip: Some("192.0.2.10".parse().unwrap()),
        helo: "mx.agency.example".into(),
        tls: Some("TLSv1.3".into()),
        domain: Some(domain.into()),
        direction: Direction::Outbound,
        arrived_at_ms: unix_ms(),
        size: 5,
    }
}

fn simple() -> NewEnvelope {
    envelope(
        "alice@agency.example",
        &["bob@remote.example"],
        "agency.example",
    )
}

fn outcome(now: u64, next: u64, updates: &[(usize, RcptStatus)]) -> AttemptOutcome {
    AttemptOutcome {
        attempted_at_ms: now,
        next_attempt_ms: next,
        recipients: updates
            .iter()
            .map(|&(index, status)| RecipientUpdate {
                index,
                status,
                last_error: (!matches!(status, RcptStatus::Delivered))
                    .then(|| "450 4.2.0 try later".to_owned()),
            })
            .collect(),
    }
}

#[tokio::test]
async fn enqueued_mail_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    {
        let q = open(dir.path());
        for i in 0..3 {
            let body = format!("Subject: {i}\r\n\r\nbody {i}\r\n").into_bytes();
            ids.push(q.enqueue(simple(), body).await.unwrap());
        }
    }
    let q = open(dir.path());
    for (i, id) in ids.iter().enumerate() {
        let env = q.get(*id).unwrap().expect("envelope kept");
        assert_eq!(env.id, *id);
        assert_eq!(env.sender, "alice@agency.example");
        assert_eq!(env.recipients[0].status, RcptStatus::Pending);
        let body = q.body(*id).unwrap().expect("body kept");
        assert_eq!(
            body,
            format!("Subject: {i}\r\n\r\nbody {i}\r\n").into_bytes()
        );
    }
    let due = q.lease_due(unix_ms(), 10, 60_000).await.unwrap();
    assert_eq!(due.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_enqueues_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let q = q.clone();
            tokio::spawn(async move {
                q.enqueue(simple(), format!("message {i}").into_bytes())
                    .await
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        ids.insert(task.await.unwrap().unwrap());
    }
    assert_eq!(ids.len(), 200);
    let stats = q.stats();
    assert_eq!(stats.ops, 200);
    assert!(
        stats.commits <= 50,
        "200 concurrent enqueues took {} commits",
        stats.commits
    );
    assert!(stats.largest_batch > 1);
    assert_eq!(q.counts().unwrap().total, 200);
}

#[tokio::test]
async fn lease_record_and_removal() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    let env = envelope(
        "alice@agency.example",
        &["bob@remote.example", "carol@remote.example"],
        "agency.example",
    );
    let id = q.enqueue(env, b"hello".to_vec()).await.unwrap();
    let now = unix_ms();

    let leased = q.lease_due(now, 10, 60_000).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].leased_until_ms, Some(now + 60_000));
    assert!(
        q.lease_due(now, 10, 60_000).await.unwrap().is_empty(),
        "leased twice"
    );
    assert_eq!(q.counts().unwrap().leased, 1);

    // One recipient delivered, one deferred: the message stays, due later.
    let retry_at = now + 600_000;
    let kept = q
        .record_attempt(
            id,
            outcome(
                now,
                retry_at,
                &[(0, RcptStatus::Delivered), (1, RcptStatus::Deferred)],
            ),
        )
        .await
        .unwrap();
    assert!(kept.is_none());
    let env = q.get(id).unwrap().unwrap();
    assert_eq!(env.attempts, 1);
    assert_eq!(env.state(), MessageState::Deferred);
    assert_eq!(env.leased_until_ms, None);
    assert_eq!(env.last_attempt_ms, Some(now));
    assert_eq!(env.recipients[0].status, RcptStatus::Delivered);
    assert_eq!(env.recipients[1].status, RcptStatus::Deferred);
    assert_eq!(env.recipients[1].attempts, 1);
    assert!(env.recipients[1].last_error.is_some());
    assert!(
        q.lease_due(now, 10, 60_000).await.unwrap().is_empty(),
        "not due yet"
    );

    // At the retry time it is due again; a failure of the last recipient ends it.
    let leased = q.lease_due(retry_at, 10, 60_000).await.unwrap();
    assert_eq!(leased.len(), 1);
    let done = q
        .record_attempt(
            id,
            outcome(retry_at, retry_at + 1, &[(1, RcptStatus::Failed)]),
        )
        .await
        .unwrap()
        .expect("final envelope returned");
    assert_eq!(done.attempts, 2);
    assert!(done.is_done());
    assert_eq!(done.recipients[0].status, RcptStatus::Delivered);
    assert_eq!(done.recipients[1].status, RcptStatus::Failed);
    assert!(q.get(id).unwrap().is_none());
    assert!(q.body(id).unwrap().is_none());
    assert_eq!(q.counts().unwrap().total, 0);
    assert!(q.lease_due(u64::MAX, 10, 1).await.unwrap().is_empty());

    // Recording for a message that is gone is not an error.
    assert!(
        q.record_attempt(id, outcome(now, now, &[]))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn lease_due_honours_max_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(q.enqueue(simple(), b"x".to_vec()).await.unwrap());
    }
    let now = unix_ms();
    let first = q.lease_due(now, 2, 1_000).await.unwrap();
    let rest = q.lease_due(now, 10, 1_000).await.unwrap();
    let got: Vec<_> = first.iter().chain(&rest).map(|e| e.id).collect();
    assert_eq!(got, ids);
    assert!(q.lease_due(now, 0, 1_000).await.unwrap().is_empty());
}

#[tokio::test]
async fn expired_lease_is_due_again() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    let id = q.enqueue(simple(), b"x".to_vec()).await.unwrap();
    let now = unix_ms();
    assert_eq!(q.lease_due(now, 10, 1_000).await.unwrap().len(), 1);
    assert!(q.lease_due(now + 999, 10, 1_000).await.unwrap().is_empty());
    let again = q.lease_due(now + 1_000, 10, 1_000).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, id);
}

#[tokio::test]
async fn held_messages_are_not_leased() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    let held = q.enqueue(simple(), b"x".to_vec()).await.unwrap();
    let free = q.enqueue(simple(), b"y".to_vec()).await.unwrap();
    assert!(q.hold(held, "domain suspended".into()).await.unwrap());
    assert_eq!(
        q.get(held).unwrap().unwrap().held.as_deref(),
        Some("domain suspended")
    );

    let now = unix_ms();
    let leased = q.lease_due(now, 10, 1_000).await.unwrap();
    assert_eq!(leased.iter().map(|e| e.id).collect::<Vec<_>>(), vec![free]);

    assert!(q.release(held).await.unwrap());
    assert!(!q.release(held).await.unwrap(), "already released");
    let leased = q.lease_due(now, 10, 1_000).await.unwrap();
    assert_eq!(leased.iter().map(|e| e.id).collect::<Vec<_>>(), vec![held]);

    let missing = QueueId::from_parts(1, 1);
    assert!(!q.hold(missing, "x".into()).await.unwrap());
    assert!(!q.release(missing).await.unwrap());
}

#[tokio::test]
async fn lease_expiry_recovered_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let env = simple();
    let now = env.arrived_at_ms;
    let id = {
        let q = open(dir.path());
        let id = q.enqueue(env, b"x".to_vec()).await.unwrap();
        // A worker leases it for an hour, then the process dies.
        assert_eq!(q.lease_due(now, 10, 3_600_000).await.unwrap().len(), 1);
        assert!(q.lease_due(now, 10, 3_600_000).await.unwrap().is_empty());
        id
    };
    let q = open(dir.path());
    assert_eq!(q.get(id).unwrap().unwrap().leased_until_ms, None);
    let leased = q.lease_due(now, 10, 1_000).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].id, id);
}

#[tokio::test]
async fn corrupt_envelope_is_quarantined_and_queue_opens() {
    const ENVELOPES: TableDefinition<u128, &[u8]> = TableDefinition::new("envelopes");
    let dir = tempfile::tempdir().unwrap();
    let (bad, good) = {
        let q = open(dir.path());
        // Nothing quarantined yet (the table is created by the first quarantine).
        assert!(q.quarantined().unwrap().is_empty());
        let bad = q.enqueue(simple(), b"bad".to_vec()).await.unwrap();
        let good = q.enqueue(simple(), b"good".to_vec()).await.unwrap();
        (bad, good)
    };
    // Damage one record behind the queue's back.
    {
        let db = Database::create(dir.path().join(ugem_queue::DB_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(ENVELOPES).unwrap();
            let key = u128::from(bad.unix_ms()) << 48 | u128::from(bad.seq());
            table
                .insert(key, b"{\"id\": \"not json at all".as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let q = open(dir.path());
    // The background check after open finds it.
    assert_eq!(q.checked().await.repaired, 1);
    assert_eq!(q.quarantined().unwrap(), vec![bad]);
    assert!(q.get(bad).unwrap().is_none());
    assert!(q.body(bad).unwrap().is_none());
    assert!(q.get(good).unwrap().is_some());
    assert_eq!(q.counts().unwrap().total, 1);
    let leased = q.lease_due(unix_ms(), 10, 1_000).await.unwrap();
    assert_eq!(leased.iter().map(|e| e.id).collect::<Vec<_>>(), vec![good]);
    // The queue keeps working.
    q.enqueue(simple(), b"more".to_vec()).await.unwrap();
}

#[tokio::test]
async fn disk_full_below_the_floor() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(
        dir.path(),
        QueueOptions {
            min_free_bytes: u64::MAX / 2,
            ..QueueOptions::default()
        },
    )
    .unwrap();
    let err = q.enqueue(simple(), b"x".to_vec()).await.unwrap_err();
    assert!(matches!(err, QueueError::DiskFull { .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(q.counts().unwrap().total, 0);
    assert_eq!(q.stats().commits, 0);
}

#[tokio::test]
async fn injected_commit_failure_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fail = Arc::new(AtomicUsize::new(0));
    let q = Queue::open(
        dir.path(),
        QueueOptions {
            min_free_bytes: 0,
            fail_next_commits: Some(fail.clone()),
            ..QueueOptions::default()
        },
    )
    .unwrap();
    let kept = q.enqueue(simple(), b"kept".to_vec()).await.unwrap();

    fail.store(1, std::sync::atomic::Ordering::SeqCst);
    let err = q.enqueue(simple(), b"lost".to_vec()).await.unwrap_err();
    assert!(matches!(err, QueueError::Storage(_)), "{err:?}");
    assert!(err.is_transient());
    let listed = q.list(&ListFilter::default()).unwrap();
    assert_eq!(listed.iter().map(|e| e.id).collect::<Vec<_>>(), vec![kept]);

    fail.store(1, std::sync::atomic::Ordering::SeqCst);
    assert!(q.hold(kept, "x".into()).await.is_err());
    assert!(
        q.get(kept).unwrap().unwrap().held.is_none(),
        "hold rolled back"
    );
    assert!(q.delete(kept).await.is_ok(), "failures used up");
    assert_eq!(q.counts().unwrap().total, 0);
    let stats = q.stats();
    assert_eq!(stats.failed_batches, 2);
    // Every failed batch reopens the database (what an I/O error requires of redb); the
    // queue keeps working on the new handle, reads and writes alike.
    assert_eq!(stats.reopens, 2);
    let again = q.enqueue(simple(), b"again".to_vec()).await.unwrap();
    assert_eq!(q.body(again).unwrap().as_deref(), Some(&b"again"[..]));
}

#[tokio::test]
async fn ids_strictly_increase() {
    let mut last = QueueId::generate();
    let mut last_text = last.to_string();
    for _ in 0..10_000 {
        let id = QueueId::generate();
        let text = id.to_string();
        assert!(id > last);
        assert!(text > last_text, "{text} after {last_text}");
        assert_eq!(text.len(), 24);
        assert_eq!(text.parse::<QueueId>().unwrap(), id);
        last = id;
        last_text = text;
    }
    // Ids handed out by enqueue keep arrival order too.
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    let a = q.enqueue(simple(), b"a".to_vec()).await.unwrap();
    let b = q.enqueue(simple(), b"b".to_vec()).await.unwrap();
    assert!(last < a && a < b);
}

#[tokio::test]
async fn list_filters() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    let a = q
        .enqueue(
            envelope("Alice@Agency.example", &["x@r.example"], "agency.example"),
            b"a".to_vec(),
        )
        .await
        .unwrap();
    let b = q
        .enqueue(
            envelope("bob@other.example", &["x@r.example"], "other.example"),
            b"b".to_vec(),
        )
        .await
        .unwrap();
    let c = q
        .enqueue(
            envelope("carol@agency.example", &["x@r.example"], "agency.example"),
            b"c".to_vec(),
        )
        .await
        .unwrap();
    q.hold(b, "staff".into()).await.unwrap();
    let now = unix_ms();
    // c becomes deferred; a stays leased.
    let leased = q.lease_due(now, 10, 600_000).await.unwrap();
    assert_eq!(leased.len(), 2);
    q.record_attempt(c, outcome(now, now + 60_000, &[(0, RcptStatus::Deferred)]))
        .await
        .unwrap();

    let ids =
        |f: ListFilter| -> Vec<QueueId> { q.list(&f).unwrap().into_iter().map(|e| e.id).collect() };
    assert_eq!(ids(ListFilter::default()), vec![a, b, c]);
    let by_domain = ListFilter {
        domain: Some("Agency.Example".into()),
        ..ListFilter::default()
    };
    assert_eq!(ids(by_domain), vec![a, c]);
    let by_sender = ListFilter {
        sender: Some("ALICE".into()),
        ..ListFilter::default()
    };
    assert_eq!(ids(by_sender), vec![a]);
    let held = ListFilter {
        held: Some(true),
        ..ListFilter::default()
    };
    assert_eq!(ids(held), vec![b]);
    let not_held = ListFilter {
        held: Some(false),
        ..ListFilter::default()
    };
    assert_eq!(ids(not_held), vec![a, c]);
    let deferred = ListFilter {
        state: Some(MessageState::Deferred),
        ..ListFilter::default()
    };
    assert_eq!(ids(deferred), vec![c]);
    let active = ListFilter {
        state: Some(MessageState::Active),
        ..ListFilter::default()
    };
    assert_eq!(ids(active), vec![a]);
    let limited = ListFilter {
        limit: Some(2),
        ..ListFilter::default()
    };
    assert_eq!(ids(limited), vec![a, b]);

    let counts = q.counts().unwrap();
    assert_eq!(counts.total, 3);
    assert_eq!(counts.active, 1);
    assert_eq!(counts.deferred, 1);
    assert_eq!(counts.held, 1);
    assert_eq!(counts.leased, 1, "a is still leased");
    assert_eq!(counts.bytes, 15);
    assert!(counts.oldest_arrival_ms.is_some());
}

#[tokio::test]
async fn bulk_hold_release_delete_and_retry() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    let mut suspended = Vec::new();
    for _ in 0..3 {
        let env = envelope("x@bad.example", &["y@r.example"], "bad.example");
        suspended.push(q.enqueue(env, b"s".to_vec()).await.unwrap());
    }
    let other = q.enqueue(simple(), b"o".to_vec()).await.unwrap();
    // One of them already held by staff keeps its reason.
    q.hold(suspended[0], "staff".into()).await.unwrap();

    let is_bad = |e: &ugem_queue::Envelope| e.domain.as_deref() == Some("bad.example");
    assert_eq!(
        q.hold_where("bad.example suspended".into(), is_bad)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        q.get(suspended[0]).unwrap().unwrap().held.as_deref(),
        Some("staff")
    );
    assert_eq!(
        q.get(suspended[1]).unwrap().unwrap().held.as_deref(),
        Some("bad.example suspended")
    );
    let now = unix_ms();
    let leased = q.lease_due(now, 10, 1_000).await.unwrap();
    assert_eq!(leased.iter().map(|e| e.id).collect::<Vec<_>>(), vec![other]);

    assert_eq!(q.release_where(is_bad).await.unwrap(), 3);
    assert_eq!(q.release_where(is_bad).await.unwrap(), 0);

    // Defer `other` far into the future, then retry it.
    q.record_attempt(
        other,
        outcome(now, now + 3_600_000, &[(0, RcptStatus::Deferred)]),
    )
    .await
    .unwrap();
    let later = now + 10;
    let due: Vec<_> = q.lease_due(later, 10, 1_000).await.unwrap();
    assert_eq!(due.len(), 3, "released mail is due");
    assert!(q.retry(other, later).await.unwrap());
    let due = q.lease_due(later, 10, 1_000).await.unwrap();
    assert_eq!(due.iter().map(|e| e.id).collect::<Vec<_>>(), vec![other]);
    q.record_attempt(
        other,
        outcome(later, now + 3_600_000, &[(0, RcptStatus::Deferred)]),
    )
    .await
    .unwrap();
    // retry_all skips leased messages (the three above) and moves `other`.
    assert_eq!(q.retry_all(later).await.unwrap(), 1);
    assert_eq!(q.get(other).unwrap().unwrap().next_attempt_ms, later);
    assert!(!q.retry(QueueId::from_parts(1, 1), later).await.unwrap());

    assert_eq!(q.delete_where(is_bad).await.unwrap(), 3);
    assert!(q.delete(other).await.unwrap());
    assert!(!q.delete(other).await.unwrap());
    assert_eq!(q.counts().unwrap().total, 0);
    assert!(q.lease_due(u64::MAX, 10, 1).await.unwrap().is_empty());
}

#[tokio::test]
async fn second_open_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    let err = Queue::open(dir.path(), opts()).unwrap_err();
    match &err {
        QueueError::Locked { path } => assert_eq!(path, &dir.path().join(ugem_queue::DB_FILE)),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert!(err.to_string().contains("queue.redb"));
    // Once the last handle is gone the file is free again.
    let clone = q.clone();
    drop(q);
    assert!(matches!(
        Queue::open(dir.path(), opts()),
        Err(QueueError::Locked { .. })
    ));
    drop(clone);
    open(dir.path());
}

#[tokio::test]
async fn scheduler_wakeups_and_idle_polls() {
    use std::time::Duration;
    use tokio::time::timeout;
    let woken = |q: Queue| async move {
        timeout(Duration::from_millis(50), q.changed())
            .await
            .is_ok()
    };

    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    assert_eq!(q.next_due_ms().unwrap(), None);
    assert!(!woken(q.clone()).await);

    let env = simple();
    let arrived = env.arrived_at_ms;
    let id = q.enqueue(env, b"x".to_vec()).await.unwrap();
    assert!(woken(q.clone()).await, "enqueue wakes the scheduler");
    assert_eq!(q.next_due_ms().unwrap(), Some(arrived));

    // Polling with nothing due writes nothing, so it costs no fsync.
    let commits = q.stats().commits;
    assert!(
        q.lease_due(arrived - 1, 10, 1_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(q.stats().commits, commits);

    // Leasing moves the entry later: no wake-up for the scheduler's own work.
    assert_eq!(q.lease_due(arrived, 10, 1_000).await.unwrap().len(), 1);
    assert_eq!(q.next_due_ms().unwrap(), Some(arrived + 1_000));
    assert!(!woken(q.clone()).await);

    assert!(q.hold(id, "staff".into()).await.unwrap());
    assert_eq!(q.next_due_ms().unwrap(), None);
    assert!(q.release(id).await.unwrap());
    assert!(woken(q.clone()).await, "release wakes the scheduler");
    assert_eq!(q.next_due_ms().unwrap(), Some(arrived + 1_000));
}

/// The scheduler's path for mail of a suspended scope: it leases the
/// message, holds it unattempted, and the restore releases it. Released,
/// it must be due at once (not when the 30-minute lease would have run
/// out) and its retry backoff must start over.
#[tokio::test]
async fn mail_its_lease_holder_held_is_due_at_once_when_released() {
    const LEASE: u64 = 30 * 60 * 1000;
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    let id = q.enqueue(simple(), b"x".to_vec()).await.unwrap();
    // Two deferred attempts: its next one is an hour away.
    for _ in 0..2 {
        let now = unix_ms();
        assert!(q.retry(id, now).await.unwrap());
        assert_eq!(q.lease_due(now, 10, LEASE).await.unwrap().len(), 1);
        q.record_attempt(
            id,
            outcome(now, now + 3_600_000, &[(0, RcptStatus::Deferred)]),
        )
        .await
        .unwrap();
    }
    // Due again (staff retried); the scheduler leases it and finds its
    // scope suspended.
    let now = unix_ms();
    assert!(q.retry(id, now).await.unwrap());
    assert_eq!(
        q.next_due_ms().unwrap(),
        Some(now),
        "retry makes it due now"
    );
    assert_eq!(q.lease_due(now, 10, LEASE).await.unwrap().len(), 1);
    assert!(q.hold_leased(id, "domain suspended".into()).await.unwrap());
    let held = q.get(id).unwrap().unwrap();
    assert_eq!(held.leased_until_ms, None, "the holder's lease ended");
    assert_eq!(q.next_due_ms().unwrap(), None);

    // Restore: released by scope, due at once, backoff reset.
    assert_eq!(q.release_where(|_| true).await.unwrap(), 1);
    let due = q.next_due_ms().unwrap().expect("scheduled");
    assert!(due <= unix_ms(), "due {due}, not at once");
    let env = q.get(id).unwrap().unwrap();
    assert_eq!(env.attempts, 2);
    assert_eq!(env.backoff_since, 2);
    assert_eq!(env.backoff_attempts(), 0);
    let leased = q.lease_due(unix_ms(), 10, LEASE).await.unwrap();
    assert_eq!(leased.iter().map(|e| e.id).collect::<Vec<_>>(), vec![id]);

    // A message released one at a time is due at once as well.
    assert!(q.hold_leased(id, "again".into()).await.unwrap());
    assert!(q.release(id).await.unwrap());
    assert!(q.next_due_ms().unwrap().unwrap() <= unix_ms());
}

#[tokio::test]
async fn enqueue_file_stores_head_and_file_whole() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let small_cache = || QueueOptions {
        cache_bytes: 2 << 20,
        ..opts()
    };
    let q = Queue::open(dir.path(), small_cache()).unwrap();
    let mut file = tempfile::tempfile().unwrap();
    // Larger than the whole page cache.
    let body: Vec<u8> = (0..5u32 << 20).map(|i| (i % 251) as u8).collect();
    file.write_all(&body).unwrap();
    file.write_all(b"trailing bytes past len are not part of the message")
        .unwrap();
    let head = b"Received: from x\r\n".to_vec();
    let id = q
        .enqueue_file(simple(), head.clone(), file, body.len() as u64)
        .await
        .unwrap();
    // A small message in between keeps its own body.
    let small = q.enqueue(simple(), b"small".to_vec()).await.unwrap();
    drop(q);
    let q = Queue::open(dir.path(), small_cache()).unwrap();
    let got = q.body(id).unwrap().unwrap();
    assert_eq!(got.len(), head.len() + body.len());
    assert_eq!(&got[..head.len()], &head[..]);
    assert!(got[head.len()..] == body[..], "body differs");
    assert_eq!(q.body(small).unwrap().unwrap(), b"small");
    assert_eq!(q.lease_due(unix_ms(), 10, 1_000).await.unwrap().len(), 2);
}

#[tokio::test]
async fn enqueue_file_that_cannot_be_read_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    let file = tempfile::tempfile().unwrap();
    // The file is shorter than claimed: the message is refused, alone.
    let err = q
        .enqueue_file(simple(), b"head".to_vec(), file, 1_000)
        .await
        .unwrap_err();
    assert!(matches!(err, QueueError::Storage(_)), "{err:?}");
    assert!(q.list(&ListFilter::default()).unwrap().is_empty());
    let ok = q.enqueue(simple(), b"after".to_vec()).await.unwrap();
    assert_eq!(q.body(ok).unwrap().unwrap(), b"after");
    // Below the floor: refused before anything is read.
    let full = Queue::open(
        &dir.path().join("other"),
        QueueOptions {
            min_free_bytes: u64::MAX / 2,
            ..QueueOptions::default()
        },
    )
    .unwrap();
    let err = full
        .enqueue_file(simple(), Vec::new(), tempfile::tempfile().unwrap(), 1)
        .await
        .unwrap_err();
    assert!(matches!(err, QueueError::DiskFull { .. }), "{err:?}");
    assert!(matches!(
        full.check_room(0),
        Err(QueueError::DiskFull { .. })
    ));
}

#[tokio::test]
async fn matching_forms_return_the_ids_they_changed() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    let a = q.enqueue(simple(), b"a".to_vec()).await.unwrap();
    let b = q
        .enqueue(
            envelope("carol@other.example", &["dan@far.example"], "other.example"),
            b"b".to_vec(),
        )
        .await
        .unwrap();
    let now = unix_ms();
    let leased = q.lease_due(now, 10, 600_000).await.unwrap();
    assert_eq!(leased.len(), 2);
    for id in [a, b] {
        q.record_attempt(
            id,
            outcome(now, now + 3_600_000, &[(0, RcptStatus::Deferred)]),
        )
        .await
        .unwrap();
    }
    let ours = |e: &ugem_queue::Envelope| e.domain.as_deref() == Some("agency.example");
    assert_eq!(q.hold_matching("x".into(), ours).await.unwrap(), vec![a]);
    // Already held: not held again, not counted.
    assert!(q.hold_matching("y".into(), ours).await.unwrap().is_empty());
    // Retry skips held mail and makes the rest due now, backoff or not.
    assert_eq!(q.retry_matching(now, |_| true).await.unwrap(), vec![b]);
    assert!(q.get(b).unwrap().unwrap().next_attempt_ms <= now);
    assert_eq!(q.release_matching(|_| true).await.unwrap(), vec![a]);
    assert!(q.get(a).unwrap().unwrap().next_attempt_ms <= unix_ms());
    assert_eq!(q.delete_matching(ours).await.unwrap(), vec![a]);
    assert_eq!(
        q.list(&ListFilter::default())
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect::<Vec<_>>(),
        vec![b]
    );
}

#[tokio::test]
async fn requeue_releases_makes_due_and_starts_the_backoff_over() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    let a = q.enqueue(simple(), b"a".to_vec()).await.unwrap();
    let b = q.enqueue(simple(), b"b".to_vec()).await.unwrap();
    let c = q.enqueue(simple(), b"c".to_vec()).await.unwrap();
    let now = unix_ms();
    // Three failed attempts each: the backoff has grown.
    for round in 0..3u64 {
        let t = now + round;
        let leased = q.lease_due(t + 10_000_000, 10, 600_000).await.unwrap();
        assert_eq!(leased.len(), 3, "round {round}");
        for id in [a, b, c] {
            q.record_attempt(id, outcome(t, t + 3_600_000, &[(0, RcptStatus::Deferred)]))
                .await
                .unwrap();
        }
    }
    assert_eq!(q.get(a).unwrap().unwrap().backoff_attempts(), 3);
    q.hold(b, "staff".into()).await.unwrap();
    // c is being delivered right now: left alone.
    let later = now + 20_000_000;
    let leased = q.lease_due(later, 10, 600_000).await.unwrap();
    assert_eq!(leased.len(), 2, "a and c are due, b is held");
    q.record_attempt(
        a,
        outcome(later, later + 3_600_000, &[(0, RcptStatus::Deferred)]),
    )
    .await
    .unwrap();
    let mut done = q.requeue_matching(later, |_| true).await.unwrap();
    done.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(done, want, "the leased message is not requeued");
    for id in [a, b] {
        let e = q.get(id).unwrap().unwrap();
        assert!(e.held.is_none(), "released");
        assert!(e.next_attempt_ms <= later, "due");
        assert_eq!(e.backoff_attempts(), 0, "backoff starts over");
        assert!(e.attempts >= 3, "the attempt count is history, kept");
    }
    assert_eq!(q.get(c).unwrap().unwrap().backoff_attempts(), 3);
}

#[tokio::test]
async fn scheduler_bookkeeping_is_relaxed_and_made_durable_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    let id = q.enqueue(simple(), b"x".to_vec()).await.unwrap();
    let after_enqueue = q.stats();
    // Durable at once, by the acceptance journal: no database sync.
    assert_eq!(after_enqueue.journaled, 1, "{after_enqueue:?}");
    assert_eq!(after_enqueue.commits, 0, "{after_enqueue:?}");
    let now = unix_ms();
    assert_eq!(q.lease_due(now, 10, 600_000).await.unwrap().len(), 1);
    q.record_attempt(
        id,
        outcome(now, now + 3_600_000, &[(0, RcptStatus::Deferred)]),
    )
    .await
    .unwrap();
    let s = q.stats();
    // Lease and attempt record: committed without an fsync of their own
    // (they may share one relaxed batch).
    assert!(s.relaxed_commits >= 2, "{s:?}");
    assert_eq!(s.commits, 0, "no database sync yet: {s:?}");
    // Idle: one durable commit makes them so (the journal's checkpoint).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while q.stats().commits < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "no idle flush: {:?}",
            q.stats()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(q.stats().commits, 1, "one flush for all three");
    // A durable operation by staff is durable when answered.
    q.hold(id, "staff".into()).await.unwrap();
    assert_eq!(q.stats().commits, 2);
    drop(q);
    let q = open(dir.path());
    let e = q.get(id).unwrap().unwrap();
    assert_eq!(e.attempts, 1, "the attempt record survived the reopen");
    assert!(e.held.is_some());
}

#[tokio::test]
async fn relaxed_records_are_flushed_when_the_queue_closes() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    let id = q.enqueue(simple(), b"x".to_vec()).await.unwrap();
    let now = unix_ms();
    q.lease_due(now, 10, 600_000).await.unwrap();
    q.record_attempt(id, outcome(now, now + 1, &[(0, RcptStatus::Delivered)]))
        .await
        .unwrap();
    // Closed at once, before the idle flush: the writer flushes on its way out.
    drop(q);
    let q = open(dir.path());
    assert!(
        q.get(id).unwrap().is_none(),
        "the delivered message stays removed"
    );
}

/// Leases the only message for a day, then closes the queue (as a crash during its delivery
/// would leave it).
async fn queue_with_a_day_long_lease(dir: &Path) -> QueueId {
    let q = open(dir);
    let id = q.enqueue(simple(), b"x".to_vec()).await.unwrap();
    let leased = q.lease_due(unix_ms(), 10, 86_400_000).await.unwrap();
    assert_eq!(leased.len(), 1);
    id
}

#[tokio::test]
async fn a_file_of_format_0_is_migrated_and_its_leases_ended() {
    let dir = tempfile::tempdir().unwrap();
    let id = queue_with_a_day_long_lease(dir.path()).await;
    // Format 0 had neither table.
    {
        let db = Database::create(dir.path().join(ugem_queue::DB_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        let meta: TableDefinition<&str, u64> = TableDefinition::new("meta");
        let leases: TableDefinition<u128, u64> = TableDefinition::new("leases");
        assert!(txn.delete_table(meta).unwrap());
        assert!(txn.delete_table(leases).unwrap());
        txn.commit().unwrap();
    }
    let q = open(dir.path());
    assert_eq!(q.get(id).unwrap().unwrap().leased_until_ms, None);
    let leased = q.lease_due(unix_ms(), 10, 1_000).await.unwrap();
    assert_eq!(leased.iter().map(|e| e.id).collect::<Vec<_>>(), vec![id]);
    drop(leased);
    drop(q);
    let db = Database::create(dir.path().join(ugem_queue::DB_FILE)).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let meta: TableDefinition<&str, u64> = TableDefinition::new("meta");
    let format = txn
        .open_table(meta)
        .unwrap()
        .get("format")
        .unwrap()
        .unwrap();
    assert_eq!(format.value(), 1);
}

#[tokio::test]
async fn a_lease_the_leases_table_does_not_know_is_ended_by_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let id = queue_with_a_day_long_lease(dir.path()).await;
    // As an older ugem, run in between, would leave it.
    {
        let db = Database::create(dir.path().join(ugem_queue::DB_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        let leases: TableDefinition<u128, u64> = TableDefinition::new("leases");
        let key = u128::from(id.unix_ms()) << 48 | u128::from(id.seq());
        assert!(
            txn.open_table(leases)
                .unwrap()
                .remove(key)
                .unwrap()
                .is_some()
        );
        txn.commit().unwrap();
    }
    let q = open(dir.path());
    assert_eq!(q.checked().await.repaired, 1);
    assert_eq!(q.get(id).unwrap().unwrap().leased_until_ms, None);
    let leased = q.lease_due(unix_ms(), 10, 1_000).await.unwrap();
    assert_eq!(leased.iter().map(|e| e.id).collect::<Vec<_>>(), vec![id]);
}

#[tokio::test]
async fn the_check_reads_every_message_of_a_queue_larger_than_a_chunk() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = open(dir.path());
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..2500 {
            let q = q.clone();
            tasks.spawn(async move { q.enqueue(simple(), b"x".to_vec()).await.unwrap() });
        }
        while tasks.join_next().await.is_some() {}
    }
    let q = open(dir.path());
    let report = q.checked().await;
    assert_eq!(report.messages, 2500);
    assert_eq!(report.repaired, 0);
    assert_eq!(q.check_report(), Some(report));
}
