//! The last registry this node read from a shared store (PostgreSQL), so
//! that a node restarted while the database is down still knows its
//! domains and suspensions (fail-static across a restart). The registry
//! encodes the content; this table keeps opaque bytes and two times.

use redb::TableDefinition;

use super::LocalStore;
use crate::store::StoreError;

pub(crate) const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("registry_copy");

const CONTENT: &str = "content";
/// When the content was last seen in the shared store (unix ms, 8 bytes BE).
const AS_OF: &str = "as_of";

/// The saved copy: its content and when the store last showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryCopy {
    /// The registry's encoding of the snapshot.
    pub content: Vec<u8>,
    /// When the shared store last had exactly this content (unix ms).
    pub as_of_ms: u64,
}

impl LocalStore {
    /// Replaces the copy, durably: a node killed right after must find it.
    pub fn save_registry_copy(&self, content: &[u8], as_of_ms: u64) -> Result<(), StoreError> {
        self.db.write(|tx| {
            let mut t = tx.open_table(TABLE)?;
            t.insert(CONTENT, content)?;
            t.insert(AS_OF, as_of_ms.to_be_bytes().as_slice())?;
            Ok(())
        })
    }

    /// Moves the copy's time on when the store showed the same content
    /// again; lazily, since losing the last update only makes it look older.
    pub fn confirm_registry_copy(&self, as_of_ms: u64) -> Result<(), StoreError> {
        self.db.write_lazy(|tx| {
            tx.open_table(TABLE)?
                .insert(AS_OF, as_of_ms.to_be_bytes().as_slice())?;
            Ok(())
        })
    }

    /// The saved copy, if this node ever read the shared store.
    pub fn load_registry_copy(&self) -> Result<Option<RegistryCopy>, StoreError> {
        self.db.read(|tx| {
            let t = match tx.open_table(TABLE) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let Some(content) = t.get(CONTENT)?.map(|v| v.value().to_vec()) else {
                return Ok(None);
            };
            let as_of_ms = t
                .get(AS_OF)?
                .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            Ok(Some(RegistryCopy { content, as_of_ms }))
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_survives_reopen_and_confirm_moves_its_time() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = crate::store::open(dir.path()).unwrap().0;
            assert_eq!(s.load_registry_copy().unwrap(), None);
            s.save_registry_copy(b"{\"a\":1}", 10).unwrap();
            s.confirm_registry_copy(20).unwrap();
            // A durable write after the lazy one persists both.
            s.save_governor_stats(&[("k".into(), b"{}".to_vec())])
                .unwrap();
        }
        let s = crate::store::open(dir.path()).unwrap().0;
        let c = s.load_registry_copy().unwrap().unwrap();
        assert_eq!(c.content, b"{\"a\":1}");
        assert_eq!(c.as_of_ms, 20);
    }
}
