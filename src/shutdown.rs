//! Shutdown signalling shared by every long-running task (the ground
//! floor: imports nothing from the crate).
//!
//! `server::run` owns a `watch::Sender<bool>` and sets it to `true` when a
//! termination signal arrives; each task holds a receiver and races its
//! work against [`stopped`] in a `select!`.

use tokio::sync::watch;

/// Resolves once the stop flag turns true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard wait_for returns is not Send: drop it here.
    let _ = stop.wait_for(|s| *s).await;
}
