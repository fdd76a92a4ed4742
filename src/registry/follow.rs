//! Keeps this node's registry snapshot in step with a store that other
//! nodes write too (PostgreSQL): reload on every change the store reports,
//! and on a slow timer in case a report was lost. A reload that fails
//! keeps the last snapshot in force (fail-static): mail is judged by the
//! registry as last known until the store answers again.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Registry;

/// A full reload at least this often, whatever the feed says.
const RESYNC: Duration = Duration::from_secs(30);

/// Changes that arrive this close together are read in one reload.
const SETTLE: Duration = Duration::from_millis(20);

/// Follows `changes` until `stop` turns true or the feed ends.
pub async fn follow(
    registry: Arc<Registry>,
    mut changes: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failing = false;
    loop {
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            _ = stop.changed() => return,
            _ = tokio::time::sleep(RESYNC) => {}
        }
        tokio::time::sleep(SETTLE).await;
        changes.borrow_and_update();
        match registry.refresh().await {
            Ok(()) => {
                if failing {
                    tracing::info!("registry reloaded from the shared store again");
                }
                failing = false;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot reload the registry from the shared store; keeping the last known one");
                }
                failing = true;
            }
        }
    }
}
