//! The registry store's contract (`ugem::store::contract`) on each backend:
//! every check on a fresh, empty store (a folder for redb, a database of a
//! real PostgreSQL server for the shared store).

use std::sync::Arc;

use ugem::store::contract::CHECKS;
use ugem::store::{PgRegistry, RegistryStore, StoreError};

#[allow(dead_code)]
#[path = "common/postgres.rs"]
mod postgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redb_store_keeps_the_contract() {
    assert!(CHECKS.len() >= 10, "the suite lost its checks");
    for (name, check) in CHECKS {
        let dir = tempfile::tempdir().unwrap();
        let (_, store) = ugem::store::open(dir.path()).unwrap();
        let store: Arc<dyn RegistryStore> = Arc::new(store);
        eprintln!("contract check: {name}");
        check(store.as_ref()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_keeps_the_contract() {
    let pg = postgres::TestPostgres::start();
    for (i, (name, check)) in CHECKS.iter().enumerate() {
        let db = format!("contract{i}");
        pg.create_db(&db);
        let store = PgRegistry::new(&pg.url(&db), Some(postgres::PASSWORD), &[]).unwrap();
        assert_eq!(
            store.migrate().await.unwrap(),
            vec![1, 2, 3, 4, 5, 6],
            "a new database is migrated"
        );
        let store: Arc<dyn RegistryStore> = Arc::new(store);
        eprintln!("contract check (PostgreSQL): {name}");
        check(store.as_ref()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrations_apply_once_and_refuse_a_newer_schema() {
    let pg = postgres::TestPostgres::start();
    pg.create_db("m");
    let url = pg.url("m");
    let a = PgRegistry::new(&url, Some(postgres::PASSWORD), &[]).unwrap();
    let b = PgRegistry::new(&url, Some(postgres::PASSWORD), &[]).unwrap();
    assert_eq!(a.schema_version().await.unwrap(), 0);
    // Two nodes starting together: each migration is applied once.
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    let mut applied = ra.unwrap();
    applied.extend(rb.unwrap());
    applied.sort_unstable();
    assert_eq!(applied, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(a.schema_version().await.unwrap(), 6);
    assert_eq!(a.migrate().await.unwrap(), Vec::<u64>::new());

    // A database a newer ugem migrated is not written to.
    let out = pg.psql_in("m", "INSERT INTO ugem_schema (version) VALUES (99)");
    assert!(out.status.success());
    match a.migrate().await {
        Err(StoreError::SchemaTooNew {
            found: 99,
            supported: 6,
        }) => {}
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }

    // A wrong password and a server that is down: the store is unavailable.
    let wrong = PgRegistry::new(&url, Some("not-the-password"), &[]).unwrap();
    assert!(matches!(
        wrong.list_domains().await,
        Err(StoreError::Unavailable(_))
    ));
    pg.stop();
    assert!(matches!(
        a.list_domains().await,
        Err(StoreError::Unavailable(_))
    ));
    pg.restart();
    // The pool reconnects by itself once the server is back.
    let mut ok = false;
    for _ in 0..50 {
        if a.list_domains().await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "the store did not come back after the server restarted");
}

/// The governor's state shared by the nodes (`SharedState`, migration 6):
/// the newer scope state wins, an eviction deletes only the evicting
/// node's row, the first seed stays, a snapshot supersedes older journal
/// chunks, and two nodes claiming webhook jobs at once never get the same
/// one; a lease that ran out frees the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_keeps_the_governors_shared_state() {
    use ugem::model::webhooks::WebhookJob;
    use ugem::store::ScopeRow;
    let pg = postgres::TestPostgres::start();
    pg.create_db("s");
    let store = PgRegistry::new(&pg.url("s"), Some(postgres::PASSWORD), &[]).unwrap();
    store.migrate().await.unwrap();
    let s = store.shared_state().expect("PostgreSQL shares the state");
    let row = |state: &str, stamp_ms| ScopeRow {
        scope: "s:clerk@a.kz".into(),
        state: state.as_bytes().to_vec(),
        stamp_ms,
    };
    s.save_scopes("a", &[row(r#"{"n":1}"#, 10)]).await.unwrap();
    s.save_scopes("b", &[row(r#"{"n":2}"#, 5)]).await.unwrap();
    assert_eq!(s.load_scopes().await.unwrap(), vec![row(r#"{"n": 1}"#, 10)]);
    s.save_scopes("b", &[row(r#"{"n":3}"#, 20)]).await.unwrap();
    assert_eq!(s.load_scopes().await.unwrap(), vec![row(r#"{"n": 3}"#, 20)]);
    let names = vec!["s:clerk@a.kz".to_string()];
    assert_eq!(s.delete_scopes("a", &names).await.unwrap(), 0);
    assert_eq!(s.prune_scopes(0).await.unwrap(), 0);
    assert_eq!(s.delete_scopes("b", &names).await.unwrap(), 1);
    assert!(s.load_scopes().await.unwrap().is_empty());

    assert_eq!(s.memory_seed("a", [1, 2]).await.unwrap(), [1, 2]);
    assert_eq!(s.memory_seed("b", [3, 4]).await.unwrap(), [1, 2]);
    assert!(
        s.save_memory_snapshot("a", b"one", 1000, 1, 0)
            .await
            .unwrap()
    );
    // Only when there is none yet, or none newer than asked.
    assert!(
        !s.save_memory_snapshot("b", b"two", 1500, 1, 0)
            .await
            .unwrap()
    );
    s.append_memory_chunk("a", 500, b"early").await.unwrap();
    s.append_memory_chunk("b", 2500, b"margin").await.unwrap();
    s.append_memory_chunk("b", 2600, b"late").await.unwrap();
    let m = s.load_memory(0, None).await.unwrap();
    assert_eq!(m.snapshot.as_deref(), Some(&b"one"[..]));
    assert_eq!(m.chunks.len(), 3);
    assert!(
        s.save_memory_snapshot("b", b"two", 3000, 2000, 500)
            .await
            .unwrap()
    );
    let m = s.load_memory(0, None).await.unwrap();
    assert_eq!(
        (m.snapshot.as_deref(), m.taken_at_ms),
        (Some(&b"two"[..]), 3000)
    );
    assert_eq!(m.chunks, vec![b"margin".to_vec(), b"late".to_vec()]);
    assert!(s.load_memory(0, Some("b")).await.unwrap().chunks.is_empty());

    let job = |key: &str, at| WebhookJob {
        id: 0,
        key: key.into(),
        url: "http://127.0.0.1:9/hook".into(),
        body: serde_json::json!({"event": "suspend", "key": key}),
        attempts: 0,
        next_at_ms: at,
    };
    let jobs: Vec<WebhookJob> = (0..20).map(|i| job(&format!("k{i}"), 100 + i)).collect();
    s.add_webhook_jobs(&jobs).await.unwrap();
    // Moved twice (a crash between the two writes): stored once.
    s.add_webhook_jobs(&jobs[..5]).await.unwrap();
    let (a, b) = tokio::join!(
        s.claim_webhook_jobs("a", 1000, 60_000, 15),
        s.claim_webhook_jobs("b", 1000, 60_000, 15)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut keys: Vec<&str> = a.iter().chain(&b).map(|j| j.key.as_str()).collect();
    assert_eq!(keys.len(), 20, "{a:?} {b:?}");
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 20, "a job claimed twice");
    // Leased: nobody gets them until the lease runs out.
    assert!(
        s.claim_webhook_jobs("b", 2000, 60_000, 50)
            .await
            .unwrap()
            .is_empty()
    );
    let again = s.claim_webhook_jobs("b", 61_001, 60_000, 50).await.unwrap();
    assert_eq!(again.len(), 20);
    // Oldest first.
    assert_eq!(again[0].key, "k0");
    let mut retry = again[0].clone();
    retry.attempts = 1;
    retry.next_at_ms = 500_000;
    s.finish_webhook_job(retry.id, Some(&retry)).await.unwrap();
    for j in &again[1..] {
        s.finish_webhook_job(j.id, None).await.unwrap();
    }
    assert!(
        s.claim_webhook_jobs("a", 400_000, 1, 50)
            .await
            .unwrap()
            .is_empty()
    );
    let last = s.claim_webhook_jobs("a", 500_000, 1, 50).await.unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!((last[0].key.as_str(), last[0].attempts), ("k0", 1));
}
