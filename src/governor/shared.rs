//! What the governor learned, kept in the store the nodes share
//! (PostgreSQL), so that a new or replacement node starts with the
//! cluster's history instead of judging every sender as new.
//!
//! - **Scope states.** At every housekeeping save a node writes its changed
//!   scopes to the shared store too (one statement per batch, in a task of
//!   its own: the SMTP path never waits for it; a failed write is kept and
//!   tried again at the next tick). At start a node loads its own redb
//!   state, then takes from the shared store every scope it lacks or whose
//!   stored state was seen later (the state's `last_seen_ms`). *Last writer
//!   wins per scope* is enough: the cluster exchange ([`super::cluster`])
//!   already makes each node's windows, peaks and cells reflect the
//!   cluster's traffic, so the nodes' copies of a scope differ only by
//!   what one exchange interval carried; the newer one is the better. An
//!   evicted scope is deleted there only if this node wrote it last (a
//!   node that wrote since still tracks it); rows that nobody wrote for
//!   [`SCOPE_RETENTION_MS`] (a node gone for good never evicts its own)
//!   are pruned.
//! - **Recipient memory.** One seed per cluster: the first node to join
//!   stores its own (so a node that ran alone keeps its memory valid);
//!   every other node reads it, and one whose memory has another seed
//!   drops it for the cluster's copy: a snapshot (taken by some node at
//!   most every [`SNAPSHOT_EVERY_MS`]) and the journal chunks every node
//!   wrote since ([`super::journal`]). The local files stay the fast
//!   restart path and the copy that holds while the store is unreachable.
//!   A node that cannot reach the store at start keeps its own seed and
//!   shares no memory this run (its chunks would mean nothing to others).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::store::{ScopeRow, SharedState};

use super::{Governor, Tracked, journal};

/// How often a node offers the shared store a new snapshot of the memory
/// (it is stored if none newer than that is there already).
pub const SNAPSHOT_EVERY_MS: u64 = 3600 * 1000;
/// Chunks written this long before a snapshot are still kept: pairs that
/// reached the snapshot's node late (the exchange's latency) are not lost.
const SNAPSHOT_MARGIN_MS: u64 = 60 * 1000;
/// Scope rows nobody wrote for this long are pruned.
pub const SCOPE_RETENTION_MS: u64 = 30 * 24 * 3600 * 1000;
/// Pairs kept for the shared store while it is unreachable; beyond, the
/// oldest are dropped (the local journal still has them).
const MAX_PENDING_PAIRS: usize = 4_000_000;
/// Scope rows per statement.
const BATCH: usize = 1000;
/// How long joining waits for the store before going on without it.
const JOIN_WAIT: Duration = Duration::from_secs(15);

/// The governor's link to the shared store.
#[derive(Debug)]
pub(crate) struct Shared {
    store: Arc<dyn SharedState>,
    node: String,
    /// Scope states not written yet, by name (the newest of each).
    scopes: Mutex<HashMap<String, ScopeRow>>,
    /// Evicted scopes not deleted yet.
    evicted: Mutex<Vec<String>>,
    /// Memory pairs not written yet.
    pairs: Mutex<Vec<u64>>,
    /// This node's memory is of the cluster's seed: its chunks are shared.
    memory: AtomicBool,
    /// When this node last offered a snapshot (and pruned old scopes).
    last_snapshot_ms: AtomicU64,
    /// One write at a time; a tick that finds one running leaves its rows
    /// for the next.
    busy: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// What `GET /api/v1/governor` shows of it: whether the memory is the
    /// cluster's, and what waits to be written.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "memory_shared": self.memory.load(Ordering::Relaxed),
            "pending_scopes": lock(&self.scopes).len(),
            "pending_evictions": lock(&self.evicted).len(),
            "pending_pairs": lock(&self.pairs).len(),
        })
    }

    fn keep_scopes(&self, rows: Vec<ScopeRow>) {
        let mut m = lock(&self.scopes);
        for r in rows {
            match m.get(&r.scope) {
                Some(old) if old.stamp_ms > r.stamp_ms => {}
                _ => {
                    m.insert(r.scope.clone(), r);
                }
            }
        }
    }

    fn keep_pairs(&self, mut pairs: Vec<u64>) {
        let mut p = lock(&self.pairs);
        p.append(&mut pairs);
        if p.len() > MAX_PENDING_PAIRS {
            let excess = p.len() - MAX_PENDING_PAIRS;
            p.drain(..excess);
            tracing::warn!(
                dropped = excess,
                "recipient pairs for the shared store dropped while it is unreachable"
            );
        }
    }
}

impl Governor {
    /// Joins the state shared by the nodes: takes the newer scope states
    /// and the cluster's recipient memory, then keeps writing there. Call
    /// once, before traffic; a store that does not answer is skipped.
    pub async fn join_shared(&self, store: Arc<dyn SharedState>, node: String) {
        let now = self.now_ms();
        let shared = Shared {
            store,
            node,
            scopes: Mutex::default(),
            evicted: Mutex::default(),
            pairs: Mutex::default(),
            memory: AtomicBool::new(false),
            last_snapshot_ms: AtomicU64::new(now),
            busy: tokio::sync::Mutex::new(()),
        };
        match tokio::time::timeout(JOIN_WAIT, self.take_shared_scopes(&shared)).await {
            Ok(Ok(n)) => tracing::info!(scopes = n, "detector state taken from the shared store"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the detector state of the shared store")
            }
            Err(_) => tracing::warn!("the shared store did not answer with the detector state"),
        }
        match tokio::time::timeout(JOIN_WAIT, self.join_memory(&shared)).await {
            Ok(Ok(())) => shared.memory.store(true, Ordering::Relaxed),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "recipient memory not joined with the cluster's yet: the shared store failed (joined when it answers after a start without it, else at the next start)")
            }
            Err(_) => tracing::warn!(
                "recipient memory not joined with the cluster's yet: the shared store did not answer (joined when it answers after a start without it, else at the next start)"
            ),
        }
        let shared = Arc::new(shared);
        self.webhooks
            .share(shared.store.clone(), shared.node.clone());
        let _ = self.shared.set(shared);
    }

    /// Tries again what [`Governor::join_shared`] could not do because the
    /// shared store was out of reach (a node started on its local copy of
    /// the registry): takes the newer scope states and the cluster's
    /// recipient memory. True once the memory is the cluster's (or there is
    /// no shared store).
    pub async fn rejoin_shared(&self) -> bool {
        let Some(shared) = self.shared.get().cloned() else {
            return true;
        };
        if shared.memory.load(Ordering::Relaxed) {
            return true;
        }
        match tokio::time::timeout(JOIN_WAIT, self.take_shared_scopes(&shared)).await {
            Ok(Ok(n)) => tracing::info!(scopes = n, "detector state taken from the shared store"),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "cannot read the detector state of the shared store yet");
                return false;
            }
            Err(_) => return false,
        }
        match tokio::time::timeout(JOIN_WAIT, self.join_memory(&shared)).await {
            Ok(Ok(())) => {
                shared.memory.store(true, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// Takes the scopes this node lacks or saw earlier; returns how many.
    async fn take_shared_scopes(&self, shared: &Shared) -> Result<usize, crate::store::StoreError> {
        let rows = shared.store.load_scopes().await?;
        let mut taken: Vec<(String, Vec<u8>)> = Vec::new();
        for row in rows {
            let mut t = match serde_json::from_slice::<Tracked>(&row.state) {
                Ok(t) => t,
                Err(e) => {
                    tracing::info!(scope = %row.scope, error = %e, "shared detector state of another version; skipped");
                    continue;
                }
            };
            let k = self.keyer.key(&row.scope);
            let mut shard = self.scopes.shard(k);
            let newer = shard
                .get(&k)
                .is_none_or(|mine| mine.stats.last_seen_ms < row.stamp_ms);
            if newer {
                t.name = row.scope.clone();
                t.dirty = false;
                shard.insert(k, t);
                taken.push((row.scope, row.state));
            }
        }
        let n = taken.len();
        if self.state_dir.is_some() && !taken.is_empty() {
            // Kept locally too: the next start (or the store down) has them.
            let local = self.local.clone();
            let r = tokio::task::spawn_blocking(move || local.save_governor_stats(&taken)).await;
            if !matches!(r, Ok(Ok(()))) {
                tracing::warn!("cannot keep the shared detector state locally");
            }
        }
        Ok(n)
    }

    /// Agrees on the cluster's seed and brings this node's memory up to
    /// the cluster's copy.
    async fn join_memory(&self, shared: &Shared) -> Result<(), crate::store::StoreError> {
        let mine = self.memory.seed();
        let seed = shared.store.memory_seed(&shared.node, mine).await?;
        let memory = self.memory.clone();
        if seed == mine {
            // The cluster's memory is this one (plus what other nodes added).
            let copy = shared.store.load_memory(0, Some(&shared.node)).await?;
            if copy.snapshot.is_none() {
                let bytes = memory.encode();
                let now = self.now_ms();
                // Stored only if there is none yet (taken_at 0 < 1).
                shared
                    .store
                    .save_memory_snapshot(&shared.node, &bytes, now, 1, SNAPSHOT_MARGIN_MS)
                    .await?;
            }
            let n = apply_chunks(&memory, &copy.chunks);
            tracing::info!(pairs = n, "recipient memory brought up to the cluster's");
        } else {
            let copy = shared.store.load_memory(0, None).await?;
            let used = memory.adopt(seed, copy.snapshot.as_deref());
            let n = apply_chunks(&memory, &copy.chunks);
            tracing::info!(
                snapshot = used,
                pairs = n,
                "recipient memory of another seed replaced by the cluster's"
            );
        }
        if self.state_dir.is_some() {
            let r = tokio::task::spawn_blocking(move || memory.snapshot()).await;
            if !matches!(r, Ok(Ok(()))) {
                tracing::warn!("cannot save the cluster's recipient memory locally");
            }
        }
        Ok(())
    }

    /// Hands the rows and pairs just saved locally to the shared store (in
    /// a task of its own; awaited when `wait`, at shutdown).
    pub(crate) async fn save_shared(&self, rows: Vec<ScopeRow>, pairs: Vec<u64>, wait: bool) {
        let Some(shared) = self.shared.get().cloned() else {
            return;
        };
        shared.keep_scopes(rows);
        if shared.memory.load(Ordering::Relaxed) {
            shared.keep_pairs(pairs);
        }
        let now = self.now_ms();
        let memory = self.memory.clone();
        let task = tokio::spawn(async move { flush(&shared, memory, now, wait).await });
        if wait {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }

    /// Eviction: forget `gone` in the shared store too (if written here last).
    pub(crate) fn evicted_shared(&self, gone: &[String]) {
        if let Some(shared) = self.shared.get() {
            lock(&shared.evicted).extend(gone.iter().cloned());
        }
    }
}

/// Sets the pairs of the chunks of this memory's seed; returns how many.
fn apply_chunks(memory: &super::novelty::RecipientMemory, chunks: &[Vec<u8>]) -> usize {
    let tag = memory.seed_tag();
    let mut n = 0;
    for c in chunks {
        match journal::decode(c, tag) {
            Ok(pairs) => {
                n += pairs.len();
                memory.apply(&pairs);
            }
            Err(e) => tracing::debug!(error = %e, "recipient journal chunk skipped"),
        }
    }
    n
}

/// Writes what waits; what fails waits for the next call. A call that
/// finds another writing leaves its rows to the next, unless it is the
/// last (`wait`): that one waits its turn.
async fn flush(
    shared: &Shared,
    memory: Arc<super::novelty::RecipientMemory>,
    now: u64,
    wait: bool,
) {
    let _one = if wait {
        shared.busy.lock().await
    } else {
        match shared.busy.try_lock() {
            Ok(g) => g,
            Err(_) => return,
        }
    };
    let rows: Vec<ScopeRow> = lock(&shared.scopes).drain().map(|(_, r)| r).collect();
    let mut failed = None;
    let mut rest = rows.into_iter().peekable();
    while rest.peek().is_some() {
        let batch: Vec<ScopeRow> = rest.by_ref().take(BATCH).collect();
        if let Err(e) = shared.store.save_scopes(&shared.node, &batch).await {
            failed = Some(e);
            shared.keep_scopes(batch);
            shared.keep_scopes(rest.collect());
            break;
        }
    }
    let gone = std::mem::take(&mut *lock(&shared.evicted));
    if !gone.is_empty()
        && failed.is_none()
        && let Err(e) = shared.store.delete_scopes(&shared.node, &gone).await
    {
        failed = Some(e);
        lock(&shared.evicted).extend(gone);
    } else if failed.is_some() {
        lock(&shared.evicted).extend(gone);
    }
    let pairs = std::mem::take(&mut *lock(&shared.pairs));
    if !pairs.is_empty() {
        if failed.is_none() {
            let chunk = journal::encode(memory.seed_tag(), &pairs);
            if let Err(e) = shared
                .store
                .append_memory_chunk(&shared.node, now, &chunk)
                .await
            {
                failed = Some(e);
                shared.keep_pairs(pairs);
            }
        } else {
            shared.keep_pairs(pairs);
        }
    }
    if failed.is_none()
        && now.saturating_sub(shared.last_snapshot_ms.load(Ordering::Relaxed)) >= SNAPSHOT_EVERY_MS
    {
        // A few MB copied: off the async workers.
        let m = memory.clone();
        let bytes = tokio::task::spawn_blocking(move || m.encode())
            .await
            .unwrap_or_default();
        let r = async {
            if shared.memory.load(Ordering::Relaxed) {
                shared
                    .store
                    .save_memory_snapshot(
                        &shared.node,
                        &bytes,
                        now,
                        now.saturating_sub(SNAPSHOT_EVERY_MS),
                        SNAPSHOT_MARGIN_MS,
                    )
                    .await?;
            }
            shared
                .store
                .prune_scopes(now.saturating_sub(SCOPE_RETENTION_MS))
                .await
        }
        .await;
        match r {
            Ok(_) => shared.last_snapshot_ms.store(now, Ordering::Relaxed),
            Err(e) => failed = Some(e),
        }
    }
    if let Some(e) = failed {
        tracing::warn!(error = %e, "cannot write the detector state to the shared store; will retry");
    }
}
