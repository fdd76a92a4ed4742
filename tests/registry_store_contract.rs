//! The registry store's contract (`ugem::store::contract`) on the redb
//! backend: every check on a fresh store in its own folder.

use std::sync::Arc;

use ugem::store::RegistryStore;
use ugem::store::contract::CHECKS;

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
