//! The one error type of the queue, shaped after what the SMTP layer must answer.

use std::path::PathBuf;

/// Why a queue operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// Another process (or another handle in this one) has the queue database open.
    #[error("queue database {} is already open by another ugem process or handle", path.display())]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// The queue's filesystem has less free space than the configured floor.
    #[error("queue disk almost full: {free} bytes free, floor is {floor}")]
    DiskFull {
        /// Bytes available to ugem on the queue's filesystem.
        free: u64,
        /// The configured floor (plus the message that was refused).
        floor: u64,
    },
    /// Any redb or I/O failure; the operation had no effect.
    #[error("queue storage error: {0}")]
    Storage(String),
    /// The writer thread is gone (the queue is shutting down or it crashed).
    #[error("queue writer is not running")]
    Closed,
}

impl QueueError {
    /// Whether trying again later may succeed: SMTP answers these with 4xx, not 5xx.
    pub fn is_transient(&self) -> bool {
        // Only a second open is a configuration mistake; everything else clears with time
        // (space freed, disk replaced, restart), and the sender must keep the mail meanwhile.
        !matches!(self, QueueError::Locked { .. })
    }
}

/// Every redb failure is a storage error; the message keeps redb's own wording.
macro_rules! storage_from {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for QueueError {
            fn from(e: $t) -> QueueError {
                QueueError::Storage(e.to_string())
            }
        }
    )*};
}

storage_from!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    std::io::Error,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_locked_is_permanent() {
        assert!(!QueueError::Locked { path: "q".into() }.is_transient());
        assert!(QueueError::DiskFull { free: 1, floor: 2 }.is_transient());
        assert!(QueueError::Storage("x".into()).is_transient());
        assert!(QueueError::Closed.is_transient());
    }

    #[test]
    fn locked_names_the_path() {
        let e = QueueError::Locked {
            path: "/var/ugem/queue/queue.redb".into(),
        };
        assert!(e.to_string().contains("/var/ugem/queue/queue.redb"));
    }
}
