//! Message data beyond `smtp.spool_threshold` goes to a spool file instead
//! of memory, so what a session holds stays small however large the message
//! and however many clients sit in DATA at once.
//!
//! A session keeps up to the threshold of message data in memory (a 5 KiB
//! message never touches a file); past it, the data so far and every
//! further threshold's worth is appended to a file under
//! `data_dir/spool/`, and the queue's writer reads that file straight into
//! the database when the message is complete ([`ugem_queue::Queue::enqueue_file`]).
//!
//! Spool files are unlinked as soon as they are created: the open descriptor
//! is the only reference, so a session that ends in any way (refusal,
//! disconnect, shutdown, crash) leaves nothing on disk. Files found in the
//! folder at start (a crash in the instant between create and unlink) are
//! removed by [`prepare_dir`]. They are not fsynced: durability comes from
//! the queue's commit, and nothing is answered before it.
//!
//! Every write first checks the queue's free-space floor; below it, or on a
//! write error, the session stops storing, reads the rest of the message,
//! and answers `452 4.3.1` (or `451 4.3.0`) at its end.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::reply::Reply;

/// The spool folder inside the data folder.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("spool")
}

/// Creates the spool folder (0700) and removes anything left in it by an
/// earlier run; returns how many files were removed.
pub fn prepare_dir(dir: &Path) -> std::io::Result<usize> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Why spooling stopped; the message is refused at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolError {
    /// Below the queue's free-space floor (or no space left).
    DiskFull,
    /// The file could not be created or written.
    Io,
}

impl SpoolError {
    /// `452 4.3.1` or `451 4.3.0`, as the queue's own refusals.
    pub fn reply(self) -> Reply {
        match self {
            SpoolError::DiskFull => {
                Reply::new(452, "4.3.1", "insufficient system storage, try again later")
            }
            SpoolError::Io => Reply::new(451, "4.3.0", "local storage error, try again later"),
        }
    }
}

/// The part of one message that went to disk.
pub struct Spool {
    dir: Arc<Path>,
    threshold: usize,
    file: Option<File>,
    written: u64,
    failed: Option<SpoolError>,
}

impl Spool {
    /// A spool for one message: files go to `dir`, once the reader holds
    /// `threshold` octets.
    pub fn new(dir: Arc<Path>, threshold: usize) -> Spool {
        Spool {
            dir,
            threshold: threshold.max(1),
            file: None,
            written: 0,
            failed: None,
        }
    }

    /// Whether a reader holding `stored` octets should hand them over.
    pub fn wants(&self, stored: usize) -> bool {
        stored >= self.threshold
    }

    /// Octets on disk so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Why spooling stopped, if it did.
    pub fn failed(&self) -> Option<SpoolError> {
        self.failed
    }

    /// Appends the reader's stored octets to the file; `body` comes back
    /// empty, its allocation kept for what follows (one buffer per session:
    /// the session reads nothing while it waits here). After a failure the
    /// octets are only dropped. `room` asks the queue's free-space floor
    /// about `n` more octets.
    pub async fn spill(
        &mut self,
        body: &mut Vec<u8>,
        room: impl FnOnce(u64) -> Result<(), ugem_queue::QueueError>,
    ) {
        if body.is_empty() || self.failed.is_some() {
            body.clear();
            return;
        }
        match room(body.len() as u64) {
            Ok(()) => {}
            Err(ugem_queue::QueueError::DiskFull { .. }) => {
                tracing::warn!("spool: below the free-space floor; the message will be refused");
                body.clear();
                return self.fail(SpoolError::DiskFull);
            }
            Err(e) => {
                tracing::error!(error = %e, "spool: cannot check free space");
                body.clear();
                return self.fail(SpoolError::Io);
            }
        }
        let mut chunk = std::mem::take(body);
        let file = self.file.take();
        let dir = self.dir.clone();
        let n = chunk.len() as u64;
        let done = tokio::task::spawn_blocking(move || {
            let mut file = match file {
                Some(f) => f,
                None => create(&dir)?,
            };
            file.write_all(&chunk)?;
            chunk.clear();
            Ok::<_, std::io::Error>((file, chunk))
        })
        .await;
        match done {
            Ok(Ok((file, chunk))) => {
                self.file = Some(file);
                self.written += n;
                *body = chunk;
            }
            Ok(Err(e)) => {
                let why = if e.raw_os_error() == Some(libc::ENOSPC) {
                    SpoolError::DiskFull
                } else {
                    SpoolError::Io
                };
                tracing::error!(error = %e, dir = %self.dir.display(), "spool write failed; the message will be refused");
                self.fail(why);
            }
            Err(e) => {
                tracing::error!(error = %e, "spool task failed");
                self.fail(SpoolError::Io);
            }
        }
    }

    fn fail(&mut self, why: SpoolError) {
        self.failed = Some(why);
        // Dropping the unlinked file frees its blocks at once.
        self.file = None;
    }

    /// The file and its length, once the whole message is in it.
    pub fn into_file(self) -> Option<(File, u64)> {
        self.file.map(|f| (f, self.written))
    }
}

/// Creates a new spool file (0600, never an existing one) and unlinks it at
/// once, so only the open descriptor refers to it.
fn create(dir: &Path) -> std::io::Result<File> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let path = dir.join(format!(
        "{}-{}-{:x}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    ));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[tokio::test]
    async fn spills_past_the_threshold_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new(dir.path().into(), 8);
        assert!(!s.wants(7));
        assert!(s.wants(8));
        let mut body = b"0123456789".to_vec();
        s.spill(&mut body, |_| Ok(())).await;
        assert!(body.is_empty());
        body.extend_from_slice(b"abc");
        s.spill(&mut body, |_| Ok(())).await;
        assert_eq!(s.written(), 13);
        // Unlinked at once: nothing in the folder, the descriptor still reads.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let (f, len) = s.into_file().unwrap();
        let mut back = vec![0u8; len as usize];
        f.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(back, b"0123456789abc");
    }

    #[tokio::test]
    async fn below_the_floor_it_stops_storing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new(dir.path().into(), 1);
        let mut body = b"first".to_vec();
        s.spill(&mut body, |_| Ok(())).await;
        let mut body = b"second".to_vec();
        s.spill(&mut body, |_| {
            Err(ugem_queue::QueueError::DiskFull { free: 1, floor: 2 })
        })
        .await;
        assert!(body.is_empty());
        assert_eq!(s.failed(), Some(SpoolError::DiskFull));
        let mut body = b"third".to_vec();
        s.spill(&mut body, |_| Ok(())).await;
        assert_eq!(s.written(), 5);
        assert!(s.into_file().is_none());
        assert_eq!(SpoolError::DiskFull.reply().code, 452);
    }

    #[test]
    fn prepare_dir_removes_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        assert_eq!(prepare_dir(&spool).unwrap(), 0);
        std::fs::write(spool.join("123-0-ab"), b"old").unwrap();
        assert_eq!(prepare_dir(&spool).unwrap(), 1);
        assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
    }
}
