//! The acceptance journal: what makes a 250 after DATA durable in one short, sequential write.
//!
//! A redb commit of a new message writes about a dozen pages scattered over the file (the
//! envelope, body, schedule and lease B-trees, the allocator) and fdatasyncs them; on the
//! machines measured that sync is 0.25-0.35 ms, where one small overwrite of a preallocated
//! file syncs in about 0.1 ms. So a batch that only enqueues small messages (plus relaxed
//! bookkeeping) is made durable by appending its envelopes and bodies to `accept.journal`
//! and fdatasyncing that; its redb transaction commits without a sync (`Durability::None`).
//!
//! **Generations.** Every durable redb commit stores a watermark, `journal_gen` in `meta`,
//! one above the generation of the records written before it, and the journal then starts
//! over at offset 0 in the new generation. So a record of the current generation holds a
//! message that may not be in the database's durable state; an older one never does. Open,
//! and every reopen after a failed batch (which drops the relaxed commits), replays the
//! current generation's records in order, skips ids already present, and makes the result
//! durable. A durable commit (a *checkpoint*) is made whenever relaxed state is older than
//! [`crate::QueueOptions::checkpoint_after`], so a crash repeats at most that much work.
//!
//! **Records.** A 24-byte header (magic, payload length, generation, CRC-32 of header and
//! payload, envelope length), then the envelope's JSON and the body; a tombstone has
//! [`TOMBSTONE`] for the envelope length and 16-byte queue ids for payload. Reading stops at the
//! first record that is not whole and of the current generation: a torn append, the zeros
//! ahead of the tail, or older records beyond it.
//!
//! **Removals.** A relaxed batch that removed messages (delivered, bounced) appends a
//! *tombstone* naming them, without a sync of its own: a process that is killed leaves it in
//! the page cache, so its replay does not deliver those messages again (a power cut may lose
//! it, and they are delivered twice then). The next synced append makes it durable with it,
//! so an unsynced tombstone can only be torn at the very end, where it costs nothing.
//!
//! **Failures.** A journal that cannot be written or synced is not trusted: the batch falls
//! back to a durable redb commit (which starts a new generation). A redb commit that fails
//! after its records were appended has them taken back (the header at the batch's start is
//! zeroed and synced) before its senders get 451; should that fail too, the reopen deletes the
//! batch's messages after the replay, as it always did for a failed commit.
//!
//! The file is grown in zero-filled steps and then only overwritten, so a sync writes data
//! blocks, not the inode; it never shrinks (its high-water mark is bounded by [`MAX_LEN`]).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use std::collections::HashSet;

use crate::{Envelope, QueueId};

/// The journal's file name in the queue directory.
pub const JOURNAL_FILE: &str = "accept.journal";
/// Bodies larger than this are committed to redb durably, as before the journal: their own
/// write dominates, and the journal stays small.
pub(crate) const MAX_BODY: usize = 256 * 1024;
/// The journal's largest size; a batch that would pass it commits durably instead.
pub(crate) const MAX_LEN: u64 = 64 << 20;
/// Past this much journal, the next batch checkpoints (so replay at open stays short).
const CHECKPOINT_LEN: u64 = 16 << 20;
/// The file grows by this much at a time (written zeros, synced once).
const GROW: u64 = 1 << 20;
/// "UGJ1".
const MAGIC: u32 = 0x5547_4a31;
const HEADER: usize = 24;
/// The envelope length that marks a tombstone.
const TOMBSTONE: u32 = u32::MAX;

/// One message read back from the journal.
pub(crate) struct Record {
    /// The envelope as it was accepted.
    pub env: Envelope,
    /// Its body.
    pub body: Vec<u8>,
}

/// Why reading a record stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// Zeros, another generation, or the end of the file: nothing more was written.
    Clean,
    /// A record that is not whole (a torn append) or does not decode.
    Torn,
}

/// The open journal.
pub(crate) struct Journal {
    file: File,
    path: PathBuf,
    /// The generation records are written in: the watermark of the last durable commit.
    generation: u64,
    /// Where the next record goes.
    tail: u64,
    /// The file's zero-filled length.
    filled: u64,
    /// When relaxed state first waited for a checkpoint; None while everything is durable.
    pending_since: Option<Instant>,
    /// A write or sync failed since the last checkpoint: nothing more goes in until then.
    broken: bool,
}

impl Journal {
    /// Opens (creating) the journal of the queue in `dir`.
    pub(crate) fn open(dir: &Path) -> io::Result<Journal> {
        let path = dir.join(JOURNAL_FILE);
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)?;
        if !existed {
            crate::disk::sync_dir(dir)?;
        }
        let filled = file.metadata()?.len();
        Ok(Journal {
            file,
            path,
            generation: 0,
            tail: 0,
            filled,
            pending_since: None,
            broken: false,
        })
    }

    /// The generation's records, in order, with why reading stopped.
    pub(crate) fn records(&self, generation: u64) -> io::Result<(Vec<Record>, End)> {
        read(&self.file, self.filled, generation)
    }

    /// Starts writing generation `generation` at the beginning (after a durable commit stored it).
    pub(crate) fn checkpointed(&mut self, generation: u64) {
        self.generation = generation;
        self.tail = 0;
        self.pending_since = None;
        self.broken = false;
    }

    /// The generation records are written in now.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Notes that relaxed state now waits for a checkpoint.
    pub(crate) fn relaxed(&mut self) {
        self.pending_since.get_or_insert_with(Instant::now);
    }

    /// How long relaxed state has waited for a checkpoint.
    pub(crate) fn waiting(&self) -> Option<std::time::Duration> {
        self.pending_since.map(|t| t.elapsed())
    }

    /// Whether `len` more bytes may go in now (else the batch commits durably).
    pub(crate) fn takes(&self, len: usize) -> bool {
        !self.broken && self.tail + (len + HEADER) as u64 <= MAX_LEN && self.tail < CHECKPOINT_LEN
    }

    /// Appends a batch's records (made by [`encode`]) and syncs them; returns where they
    /// start, for [`Journal::retract`]. On failure the journal takes nothing more until the
    /// next checkpoint.
    pub(crate) fn append(&mut self, records: &mut Vec<u8>) -> io::Result<u64> {
        let start = self.tail;
        let len = records.len();
        // A zeroed header after the records ends the reading exactly there: what lies
        // beyond is the previous generation's leftovers. (Added in place: no copy.)
        records.extend_from_slice(&[0u8; HEADER]);
        let r = self.write_synced(records, start);
        records.truncate(len);
        if r.is_err() {
            self.broken = true;
            // Best effort: a record that reached the file must not be replayed.
            let _ = self.zero_header(start);
        }
        r?;
        self.tail = start + len as u64;
        Ok(start)
    }

    /// Notes that `ids` were removed by a relaxed commit: a tombstone, written without a sync
    /// (see the module's notes). Nothing if the journal cannot take it; on failure the journal
    /// takes nothing more until the next checkpoint.
    pub(crate) fn note_removed(&mut self, ids: &[QueueId]) {
        if ids.is_empty() || self.tail == 0 {
            // No record of this generation to cancel.
            return;
        }
        let mut buf = Vec::with_capacity(HEADER + 16 * ids.len() + HEADER);
        encode_removed(&mut buf, self.generation, ids);
        if !self.takes(buf.len()) {
            return;
        }
        let start = self.tail;
        let len = buf.len() as u64;
        buf.extend_from_slice(&[0u8; HEADER]);
        let end = start + buf.len() as u64;
        let r = if end > self.filled {
            // Growing needs its sync; rare (once per MiB of high water).
            self.grow(end)
                .and_then(|()| self.file.write_all_at(&buf, start))
        } else {
            self.file.write_all_at(&buf, start)
        };
        match r {
            Ok(()) => self.tail = start + len,
            Err(e) => {
                tracing::warn!(error = %e, "acceptance journal: a removal could not be noted");
                self.broken = true;
            }
        }
    }

    /// Extends the zero-filled part of the file to at least `end`.
    fn grow(&mut self, end: u64) -> io::Result<()> {
        // Written zeros, not a hole or fallocate's unwritten extents: later overwrites
        // then change no metadata, and their sync is the short one.
        let to = end.div_ceil(GROW) * GROW;
        let zeros = vec![0u8; (to - self.filled) as usize];
        self.file.write_all_at(&zeros, self.filled)?;
        self.file.sync_all()?;
        self.filled = to;
        Ok(())
    }

    fn write_synced(&mut self, bytes: &[u8], start: u64) -> io::Result<()> {
        let end = start + bytes.len() as u64;
        if end > self.filled {
            self.grow(end)?;
        }
        self.file.write_all_at(bytes, start)?;
        self.file.sync_data()
    }

    /// Takes back the records appended at `start` (their batch failed after all).
    pub(crate) fn retract(&mut self, start: u64) -> io::Result<()> {
        self.tail = start;
        let r = self.zero_header(start);
        if r.is_err() {
            self.broken = true;
        }
        r
    }

    fn zero_header(&self, at: u64) -> io::Result<()> {
        if at + HEADER as u64 > self.filled {
            return Ok(());
        }
        self.file.write_all_at(&[0u8; HEADER], at)?;
        self.file.sync_data()
    }

    /// The journal's path, for messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Where records are read from: the journal file, or bytes (the fuzz target).
pub(crate) trait Source {
    /// Fills `buf` from offset `at`.
    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<()>;
}

impl Source for File {
    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        self.read_exact_at(buf, at)
    }
}

impl Source for [u8] {
    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        let from = usize::try_from(at).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let part = from
            .checked_add(buf.len())
            .and_then(|to| self.get(from..to))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(part);
        Ok(())
    }
}

/// Reads the records of `generation` from the first `len` octets of `src`, in order, with why
/// reading stopped. A record whose envelope does not decode ends the reading as torn (the CRC
/// matched, so only a bug writes one). Memory: one record at a time beyond the results, each
/// at most `len`.
pub(crate) fn read(
    src: &(impl Source + ?Sized),
    len: u64,
    generation: u64,
) -> io::Result<(Vec<Record>, End)> {
    let mut gone = HashSet::new();
    let (mut out, end) = read_all(src, len, generation, &mut gone)?;
    // Removed after they were written: not brought back.
    out.retain(|r| !gone.contains(&r.env.id.key()));
    Ok((out, end))
}

/// Every message record of `generation`, and in `gone` the ids its tombstones name.
fn read_all(
    src: &(impl Source + ?Sized),
    len: u64,
    generation: u64,
    gone: &mut HashSet<u128>,
) -> io::Result<(Vec<Record>, End)> {
    let mut out = Vec::new();
    let mut at = 0u64;
    loop {
        let mut head = [0u8; HEADER];
        if at + HEADER as u64 > len {
            return Ok((out, End::Clean));
        }
        src.read_at(&mut head, at)?;
        let magic = u32::from_le_bytes(word(&head, 0));
        let size = u64::from(u32::from_le_bytes(word(&head, 4)));
        let rgeneration = u64::from_le_bytes(dword(&head, 8));
        if magic != MAGIC || rgeneration != generation {
            let end = if head.iter().all(|b| *b == 0) || magic == MAGIC {
                End::Clean
            } else {
                End::Torn
            };
            return Ok((out, end));
        }
        let crc = u32::from_le_bytes(word(&head, 16));
        let kind = u32::from_le_bytes(word(&head, 20));
        let env_len = u64::from(kind);
        if size > MAX_LEN
            || at + HEADER as u64 + size > len
            || (kind != TOMBSTONE && env_len > size)
            || (kind == TOMBSTONE && size % 16 != 0)
        {
            return Ok((out, End::Torn));
        }
        let mut payload = vec![0u8; size as usize];
        src.read_at(&mut payload, at + HEADER as u64)?;
        if checksum(&head, &payload) != crc {
            return Ok((out, End::Torn));
        }
        at += HEADER as u64 + size;
        if kind == TOMBSTONE {
            for id in payload.chunks_exact(16) {
                let mut k = [0u8; 16];
                k.copy_from_slice(id);
                gone.insert(u128::from_be_bytes(k));
            }
            continue;
        }
        let body = payload.split_off(env_len as usize);
        let env = match serde_json::from_slice::<Envelope>(&payload) {
            Ok(env) => env,
            Err(e) => {
                tracing::error!(error = %e, "journal record does not decode; replay stops");
                return Ok((out, End::Torn));
            }
        };
        out.push(Record { env, body });
    }
}

/// Appends one record of generation `generation` to `buf`.
pub(crate) fn encode(buf: &mut Vec<u8>, generation: u64, env_json: &[u8], body: &[u8]) {
    let len = env_json.len() + body.len();
    let mut head = [0u8; HEADER];
    head[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    head[4..8].copy_from_slice(&(len as u32).to_le_bytes());
    head[8..16].copy_from_slice(&generation.to_le_bytes());
    head[20..24].copy_from_slice(&(env_json.len() as u32).to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&head);
    h.update(env_json);
    h.update(body);
    head[16..20].copy_from_slice(&h.finalize().to_le_bytes());
    buf.extend_from_slice(&head);
    buf.extend_from_slice(env_json);
    buf.extend_from_slice(body);
}

/// Appends a tombstone of generation `generation` naming `ids` to `buf`.
pub(crate) fn encode_removed(buf: &mut Vec<u8>, generation: u64, ids: &[QueueId]) {
    let payload: Vec<u8> = ids.iter().flat_map(|id| id.key().to_be_bytes()).collect();
    let mut head = [0u8; HEADER];
    head[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    head[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    head[8..16].copy_from_slice(&generation.to_le_bytes());
    head[20..24].copy_from_slice(&TOMBSTONE.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&head);
    h.update(&payload);
    head[16..20].copy_from_slice(&h.finalize().to_le_bytes());
    buf.extend_from_slice(&head);
    buf.extend_from_slice(&payload);
}

/// The CRC of a record: its header with the CRC field zeroed, then its payload.
fn checksum(head: &[u8; HEADER], payload: &[u8]) -> u32 {
    let mut zeroed = *head;
    zeroed[16..20].fill(0);
    let mut h = crc32fast::Hasher::new();
    h.update(&zeroed);
    h.update(payload);
    h.finalize()
}

fn word(b: &[u8; HEADER], at: usize) -> [u8; 4] {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    w
}

fn dword(b: &[u8; HEADER], at: usize) -> [u8; 8] {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(name: &str) -> Vec<u8> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus/queue_journal")
            .join(name);
        std::fs::read(p).unwrap()
    }

    fn read_corpus(name: &str) -> (Vec<Record>, End) {
        let b = corpus(name);
        read(&b[8..], (b.len() - 8) as u64, 7).unwrap()
    }

    #[test]
    fn records_end_where_the_writer_stopped() {
        let (r, end) = read_corpus("two-records");
        assert_eq!((r.len(), end), (2, End::Clean));
        assert_eq!(r[0].body, b"Subject: hello\r\n\r\nbody\r\n");
        assert!(r[1].body.is_empty());
        assert_eq!(r[1].env.leased_until_ms, Some(1_764_400_060_000));
        let (r, end) = read_corpus("torn-second");
        assert_eq!((r.len(), end), (1, End::Torn));
        assert_eq!(read_corpus("bad-crc").1, End::Torn);
        let (r, end) = read_corpus("older-generation-after");
        assert_eq!((r.len(), end), (1, End::Clean));
        assert_eq!(read_corpus("undecodable-envelope").1, End::Torn);
        assert_eq!(read_corpus("huge-length").1, End::Torn);
        assert_eq!(read_corpus("zeros").0.len(), 0);
        let (r, end) = read_corpus("tombstone");
        assert_eq!((r.len(), end), (1, End::Clean));
        assert_eq!(r[0].env.id.to_string(), "0192f0a1b2c3000000000008");
    }

    #[test]
    fn a_replay_keeps_the_lease_of_a_handed_message_and_skips_what_is_there() {
        use redb::ReadableTable;
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::open(&dir.path().join("q.redb"), 1 << 20).unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.checkpointed(0);
        let (records, _) = read_corpus("two-records");
        let mut buf = Vec::new();
        for r in &records {
            encode(&mut buf, 0, &serde_json::to_vec(&r.env).unwrap(), &r.body);
        }
        j.append(&mut buf).unwrap();
        let leased = records[1].env.id;
        for round in 0..2 {
            let txn = db.begin_write().unwrap();
            let (back, generation) = crate::store::replay_journal(&txn, &j).unwrap();
            {
                // A reopen's replay: the delivery holding the lease is still running.
                let leases = txn.open_table(crate::store::LEASES).unwrap();
                assert_eq!(
                    leases.get(leased.key()).unwrap().map(|v| v.value()),
                    records[1].env.leased_until_ms
                );
            }
            txn.commit().unwrap();
            if round == 0 {
                assert_eq!((back, generation), (2, 1));
                // Not checkpointed: the same records are read again, and skipped.
                j.checkpointed(0);
                let txn = db.begin_write().unwrap();
                crate::store::set_journal_gen(&txn, 0).unwrap();
                txn.commit().unwrap();
            } else {
                assert_eq!(back, 0);
            }
        }
    }

    #[test]
    fn an_append_is_read_back_and_a_retracted_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.checkpointed(3);
        let env = serde_json::to_vec(&read_corpus("two-records").0[0].env).unwrap();
        let mut buf = Vec::new();
        encode(&mut buf, 3, &env, b"one");
        j.append(&mut buf).unwrap();
        let mut second = Vec::new();
        encode(&mut second, 3, &env, b"two");
        let at = j.append(&mut second).unwrap();
        assert_eq!(j.records(3).unwrap().0.len(), 2);
        j.retract(at).unwrap();
        let (r, end) = j.records(3).unwrap();
        assert_eq!((r.len(), end), (1, End::Clean));
        // A new generation starts over at the beginning; the old records read as nothing.
        j.checkpointed(4);
        assert!(j.records(4).unwrap().0.is_empty());
        // The file was grown in written zeros, not left sparse.
        assert_eq!(
            std::fs::metadata(dir.path().join(JOURNAL_FILE))
                .unwrap()
                .len(),
            GROW
        );
    }
}
