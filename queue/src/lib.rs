//! The durable mail spool of ugem.
//!
//! It knows nothing about SMTP policy: it stores messages, says which are due, and remembers
//! how their deliveries went.
//!
//! # Durability and group commit
//! The SMTP layer answers 250 after DATA only once [`Queue::enqueue`] has returned, so enqueue
//! returns only after envelope and body are in a committed redb transaction with
//! `Durability::Immediate` (one fdatasync). To keep throughput from being one fsync per
//! message, one writer thread owns the write side: every mutation is a job sent to it over a
//! channel; it takes everything waiting (up to [`QueueOptions::max_batch`]), applies it in
//! **one** write transaction, commits once, then answers each job. If the commit fails, every
//! job of the batch gets the error and nothing of it is visible.
//!
//! A batch whose durable jobs are all enqueues of bodies up to 256 KiB is made durable by the
//! **acceptance journal** instead (`DIR/accept.journal`, `journal.rs`): one sequential append
//! of envelopes and bodies and one fdatasync of those few blocks, while the redb transaction
//! commits with `Durability::None`. Every durable redb commit (at most 200 ms later) stores
//! the journal's generation watermark in `meta`; open, and every reopen after a failed batch,
//! replay the records of the current generation. Reads ([`Queue::get`],
//! [`Queue::body`], [`Queue::list`], [`Queue::counts`]) use redb read transactions (MVCC
//! snapshots) from any thread and never wait for the writer.
//!
//! # Storage layout
//! One redb file, `DIR/queue.redb`, opened exclusively ([`QueueError::Locked`] otherwise):
//! - `envelopes`: id -> serde_json [`Envelope`] (JSON escapes whatever untrusted bytes the
//!   addresses hold);
//! - `bodies`: id -> raw message bytes;
//! - `schedule`: (due ms, id) -> (), where "due" is `next_attempt_ms`, or the lease end while
//!   leased; held messages have no entry. [`Queue::lease_due`] is a range scan over it, and
//!   every mutation moves the entry in the same transaction;
//! - `leases`: id -> lease end, the messages under a lease;
//! - `quarantine` and `quarantine_bodies`: records that did not decode, kept for staff;
//! - `meta`: `format`, the layout version (absent in files written before `leases` existed,
//!   which are migrated at their first open: one pass over the envelopes), and `journal_gen`,
//!   the acceptance journal's watermark.
//!
//! Ids ([`QueueId`]) are 48 bits of unix milliseconds then 48 bits of a strictly increasing,
//! randomly seeded per-process sequence, so keys and their hex text both sort by arrival.
//!
//! # Leases and crash recovery
//! A lease ends with [`Queue::record_attempt`], or by running out, which makes the message due
//! again. Every table changes in the same transactions, so a crash cannot make them disagree,
//! and open does only what a crash requires: it ends every lease found in `leases` (the
//! exclusive file lock proves their holders are gone), in time proportional to the leases, not
//! to the queue. The schedule is kept on disk, so delivery starts at once. What only a bug or
//! a damaged disk could leave (undecodable records, bodies without envelopes, messages missing
//! from the schedule, envelopes without bodies) is looked for by a background check that reads
//! the whole queue after every open while it already serves, and repaired through the writer
//! ([`Queue::checked`]; `check.rs`). A message is removed, envelope and body, in the
//! transaction that makes its last recipient final. A scheduler sleeps until
//! [`Queue::next_due_ms`] or until [`Queue::changed`] (new, released or retried mail); a
//! `lease_due` that finds nothing writes nothing and costs no fsync.
//!
//! # Disk space
//! Enqueue first checks free space (statvfs on the queue directory): with less than
//! [`QueueOptions::min_free_bytes`] plus the message free it fails with
//! [`QueueError::DiskFull`] (SMTP 452 4.3.1), before anything is written. After a real I/O
//! failure redb refuses further writes until the queue is reopened; every later mutation then
//! fails as [`QueueError::Storage`] (SMTP 451 4.3.0), which is the safe side.

#![warn(missing_docs)]

mod check;
mod db;
mod disk;
mod envelope;
mod error;
mod fresh;
mod id;
mod journal;
mod queue;
mod store;
mod writer;

pub use check::CheckReport;
pub use envelope::{
    AttemptOutcome, Counts, Direction, Envelope, ListFilter, MessageState, NewEnvelope, RcptStatus,
    Recipient, RecipientUpdate,
};
pub use error::QueueError;
pub use fresh::{FreshMessage, MAX_HANDED_BODY};
pub use id::{ParseQueueIdError, QueueId, unix_ms};
pub use journal::JOURNAL_FILE;
pub use queue::{DB_FILE, Queue, QueueOptions};
pub use writer::QueueStats;

/// Entry points for the fuzz targets (`fuzz/fuzz_targets/queue_record.rs`) and the corpus replay
/// on stable (`tests/fuzz_corpus.rs`): the decode path every stored envelope goes through at
/// open, with its invariants.
pub mod fuzzing {
    use crate::store::decode;
    use crate::{Envelope, QueueId};

    /// Decodes `bytes` as a stored envelope record, as [`crate::Queue::open`] does, and checks:
    /// no panic on any input; a record decodes only under its own key; whatever decodes
    /// re-encodes to JSON that decodes to the same envelope; the derived questions (state,
    /// schedule entry, lease) do not panic.
    ///
    /// The first 16 bytes (big-endian, zero-padded when shorter) are the key the record is
    /// stored under; the rest is the record.
    pub fn check(bytes: &[u8]) {
        let split = bytes.len().min(16);
        let mut key = [0u8; 16];
        key[16 - split..].copy_from_slice(&bytes[..split]);
        let key = u128::from_be_bytes(key);
        let record = &bytes[split..];
        if let Ok(env) = decode(key, record) {
            assert_eq!(env.id.key(), key, "decoded under a foreign key");
            roundtrip(&env);
        }
        // The whole input as a record, under its own id if it has one.
        if let Ok(env) = serde_json::from_slice::<Envelope>(bytes) {
            let again = decode(env.id.key(), bytes).expect("decodes under its own key");
            assert_eq!(again, env);
            roundtrip(&env);
            let other = QueueId::from_key(env.id.key() ^ 1);
            assert!(
                decode(other.key(), bytes).is_err(),
                "a record decoded under another id's key"
            );
        }
    }

    /// Reads `bytes` as an acceptance journal, as open does (the first 8 bytes, little-endian,
    /// are the generation to read; the rest is the file), and checks: no panic on any input; the
    /// records read, written again, read back the same and end cleanly; no record is read
    /// under another generation.
    pub fn journal(bytes: &[u8]) {
        let split = bytes.len().min(8);
        let mut g = [0u8; 8];
        g[..split].copy_from_slice(&bytes[..split]);
        let generation = u64::from_le_bytes(g);
        let file = &bytes[split..];
        let Ok((records, _)) = crate::journal::read(file, file.len() as u64, generation) else {
            panic!("reading bytes in memory cannot fail");
        };
        let mut again = Vec::new();
        for r in &records {
            let json = serde_json::to_vec(&r.env).expect("an envelope always encodes");
            crate::journal::encode(&mut again, generation, &json, &r.body);
        }
        let (back, end) =
            crate::journal::read(&again[..], again.len() as u64, generation).expect("in memory");
        assert_eq!(end, crate::journal::End::Clean);
        assert_eq!(back.len(), records.len());
        for (a, b) in back.iter().zip(&records) {
            assert_eq!(a.env, b.env);
            assert_eq!(a.body, b.body);
        }
        if !records.is_empty() {
            let (other, _) =
                crate::journal::read(&again[..], again.len() as u64, generation.wrapping_add(1))
                    .expect("in memory");
            assert!(other.is_empty(), "a record read under another generation");
        }
    }

    fn roundtrip(env: &Envelope) {
        let json = serde_json::to_vec(env).expect("an envelope always encodes");
        let back = decode(env.id.key(), &json).expect("re-encoded envelope decodes");
        assert_eq!(&back, env, "round trip changed the envelope");
        let _ = env.state();
        let _ = env.is_done();
        let _ = env.is_leased(u64::MAX);
        let _ = env.schedule_key();
        assert_eq!(env.id.to_string().parse::<QueueId>().ok(), Some(env.id));
    }
}
