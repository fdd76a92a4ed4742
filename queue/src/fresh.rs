//! New messages handed straight to the delivery side.
//!
//! Without this, a new message went writer -> scheduler wake-up -> `lease_due` (a second
//! writer round trip and commit) -> a body read back from the database: four thread hand-offs
//! per message before delivery could start, which is most of what one connection at a time
//! pays (`bench/results/2026-12-02-c1-profile.txt`). Instead the scheduler offers *slots*
//! ([`Queue::offer_fresh`]); an enqueue that takes one stores its message already leased, in
//! the same durable transaction, and the enqueuing task (not the writer thread) passes the
//! envelope and the body it still holds to the scheduler's channel. The lease is an ordinary
//! one: it ends with the attempt's record, or at the next open, or by running out, so a
//! message handed over and then forgotten (a stopped scheduler) is delivered all the same.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::{Envelope, Queue, unix_ms};

/// Bodies larger than this are not handed over: the attempt reads them from the database
/// under its memory budget, as any other.
pub const MAX_HANDED_BODY: usize = 256 * 1024;

/// A new message leased to the receiver of [`Queue::fresh_messages`].
#[derive(Debug)]
pub struct FreshMessage {
    /// The envelope as stored, leased.
    pub envelope: Envelope,
    /// The body, when small enough to hand over ([`MAX_HANDED_BODY`]).
    pub body: Option<Vec<u8>>,
}

/// The slots and the channel; one per queue.
#[derive(Debug, Default)]
pub(crate) struct Fresh {
    slots: AtomicUsize,
    lease_ms: AtomicU64,
    tx: Mutex<Option<UnboundedSender<FreshMessage>>>,
}

impl Fresh {
    /// Takes a slot: the lease end for the new message, or None (store it due, as before).
    pub(crate) fn take(&self) -> Option<u64> {
        if !self.open() {
            return None;
        }
        self.slots
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .ok()?;
        Some(unix_ms().saturating_add(self.lease_ms.load(Ordering::Relaxed)))
    }

    /// Gives back a slot whose enqueue failed.
    pub(crate) fn give_back(&self) {
        self.slots.fetch_add(1, Ordering::AcqRel);
    }

    fn open(&self) -> bool {
        self.tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|tx| !tx.is_closed())
    }

    /// Hands a stored, leased message over. A receiver gone meanwhile leaves it to its lease.
    pub(crate) fn hand(&self, envelope: Envelope, body: Vec<u8>) {
        let body = (body.len() <= MAX_HANDED_BODY).then_some(body);
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = tx.as_ref()
            && tx.send(FreshMessage { envelope, body }).is_err()
        {
            tracing::warn!("new message handed to a stopped scheduler; its lease will run out");
        }
    }
}

impl Queue {
    /// Starts handing new messages to the returned receiver, each leased for `lease_ms`, as
    /// many as [`Queue::offer_fresh`] allows. A second call replaces the first receiver.
    pub fn fresh_messages(&self, lease_ms: u64) -> UnboundedReceiver<FreshMessage> {
        let (tx, rx) = unbounded_channel();
        let fresh = self.fresh();
        fresh.lease_ms.store(lease_ms, Ordering::Relaxed);
        *fresh.tx.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        rx
    }

    /// How many new messages may be handed over from now on (replaces the earlier offer):
    /// the attempts the receiver can start at once.
    pub fn offer_fresh(&self, slots: usize) {
        self.fresh().slots.store(slots, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::queue::tests::{new_env as env, opts};

    /// The ids `lease_due` hands out now.
    async fn leased_now(q: &Queue) -> Vec<crate::QueueId> {
        q.lease_due(unix_ms(), 10, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect()
    }

    #[tokio::test]
    async fn a_new_message_is_handed_over_leased_with_its_body_and_not_leased_again() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), opts()).unwrap();
        // No receiver: stored due, as before.
        let plain = q.enqueue(env(), b"one\r\n".to_vec()).await.unwrap();
        let mut rx = q.fresh_messages(60_000);
        // A receiver without slots: still stored due.
        let due = q.enqueue(env(), b"two\r\n".to_vec()).await.unwrap();
        q.offer_fresh(1);
        let handed = q.enqueue(env(), b"three\r\n".to_vec()).await.unwrap();
        // The one slot is used up.
        let after = q.enqueue(env(), b"four\r\n".to_vec()).await.unwrap();
        let got = rx.try_recv().unwrap();
        assert_eq!(got.envelope.id, handed);
        assert_eq!(got.body.as_deref(), Some(&b"three\r\n"[..]));
        assert!(got.envelope.leased_until_ms.is_some());
        assert!(rx.try_recv().is_err());
        let stored = q.get(handed).unwrap().unwrap();
        assert_eq!(stored.leased_until_ms, got.envelope.leased_until_ms);
        assert_eq!(leased_now(&q).await, vec![plain, due, after]);
        // A reopen ends the lease, as any other: the message is due again.
        drop(q);
        drop(rx);
        let q = Queue::open(dir.path(), opts()).unwrap();
        assert!(leased_now(&q).await.contains(&handed));
    }

    #[tokio::test]
    async fn large_bodies_are_not_handed_over_and_a_closed_receiver_takes_no_slot() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), opts()).unwrap();
        let mut rx = q.fresh_messages(60_000);
        q.offer_fresh(2);
        let big = vec![b'x'; MAX_HANDED_BODY + 1];
        let id = q.enqueue(env(), big).await.unwrap();
        let got = rx.try_recv().unwrap();
        assert_eq!(got.envelope.id, id);
        assert!(got.body.is_none());
        drop(rx);
        let id2 = q.enqueue(env(), b"x\r\n".to_vec()).await.unwrap();
        assert!(q.get(id2).unwrap().unwrap().leased_until_ms.is_none());
    }
}
