//! One task per key at a time: the first of a burst does the work (a policy
//! fetch, a recipient probe), the others wait for it and then find its
//! answer in the cache.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// Per-key turns.
#[derive(Debug, Default)]
pub struct Gates {
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Gates {
    /// Runs `work` when no other task holds `key`'s turn. `work` should look
    /// at the cache first: the task before may have filled it.
    pub async fn run<T>(&self, key: &str, work: impl Future<Output = T>) -> T {
        let gate = self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_string())
            .or_default()
            .clone();
        let out = {
            let _turn = gate.lock().await;
            work.await
        };
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        // The map's reference and ours only: nobody waits, forget the key.
        if Arc::strong_count(&gate) <= 2 {
            m.remove(key);
        }
        out
    }

    /// Keys with a turn taken or awaited.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when no key is busy.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_runs_one_at_a_time_and_the_map_empties() {
        let gates = Arc::new(Gates::default());
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (g, running, most) = (gates.clone(), running.clone(), most.clone());
            tasks.spawn(async move {
                g.run("k", async {
                    let n = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            });
        }
        while tasks.join_next().await.is_some() {}
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert!(gates.is_empty());
    }
}
