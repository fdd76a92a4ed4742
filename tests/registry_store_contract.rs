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
