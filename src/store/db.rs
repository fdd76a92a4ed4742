//! The redb file under the node's data folder: opening, the schema, and the
//! transaction helpers both the node-local store and the registry's redb
//! backend build on. Calls block on disk I/O.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::StoreError;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The schema this build writes; older stores are migrated at open.
pub const SCHEMA_VERSION: u64 = 1;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Handle to the open database; cheap to clone. Every call blocks.
#[derive(Clone)]
pub(crate) struct Db {
    db: Arc<Database>,
    path: PathBuf,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
    }
}

/// Opens every table of the store in a write transaction.
pub(crate) type Tables = fn(&redb::WriteTransaction) -> Result<(), StoreError>;

impl Db {
    /// Opens (or creates) `data_dir/ugem.redb`; `tables` opens (so creates)
    /// every table the store's modules define, which this module does not
    /// know (they build on it, not it on them).
    pub(crate) fn open(data_dir: &Path, tables: Tables) -> Result<Db, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Backend(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let path = data_dir.join("ugem.redb");
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked {
                path: path.clone(),
                dir: data_dir.to_path_buf(),
            },
            other => StoreError::Corrupt {
                path: path.clone(),
                detail: other.to_string(),
            },
        })?;
        let store = Db {
            db: Arc::new(db),
            path,
        };
        store.migrate(tables)?;
        Ok(store)
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the database file in bytes.
    pub(crate) fn size_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// The schema version recorded in the store.
    pub(crate) fn schema_version(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read()?;
        let table = match tx.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        Ok(table.get("schema_version")?.map(|v| v.value()).unwrap_or(0))
    }

    fn migrate(&self, tables: Tables) -> Result<(), StoreError> {
        let found = self.schema_version()?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        // Version 1 is the first; later versions add their steps here.
        self.write(|tx| {
            tables(tx)?;
            let mut meta = tx.open_table(META)?;
            meta.insert("schema_version", SCHEMA_VERSION)?;
            Ok(())
        })
    }

    /// Runs `f` in one durable write transaction.
    pub(crate) fn write<R>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let tx = self.db.begin_write()?;
        let r = f(&tx)?;
        tx.commit()?;
        Ok(r)
    }

    /// Runs `f` in a write transaction whose last second may be lost on power
    /// failure (the next durable commit persists it): for high-rate logs.
    pub(crate) fn write_lazy<R>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(redb::Durability::None)?;
        let r = f(&tx)?;
        tx.commit()?;
        Ok(r)
    }

    /// Runs `f` in a read transaction.
    pub(crate) fn read<R>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let tx = self.db.begin_read()?;
        f(&tx)
    }
}

impl Db {
    /// Every row of a table of raw values keyed by text (empty if the table
    /// was never written).
    pub(crate) fn raw_rows(
        &self,
        def: TableDefinition<&str, &[u8]>,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.read(|tx| {
            let t = match tx.open_table(def) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::new();
            for row in t.iter()? {
                let (k, v) = row?;
                out.push((k.value().to_string(), v.value().to_vec()));
            }
            Ok(out)
        })
    }

    /// Removes `keys` from a table keyed by text, in one lazy transaction.
    pub(crate) fn remove_keys(
        &self,
        def: TableDefinition<&str, &[u8]>,
        keys: &[String],
    ) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.write_lazy(|tx| {
            let mut t = tx.open_table(def)?;
            for k in keys {
                t.remove(k.as_str())?;
            }
            Ok(())
        })
    }
}

/// Encodes a record; serde_json escapes every byte, so no input breaks framing.
pub(crate) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialize")
}

/// Decodes a record, naming the table and key on failure.
pub(crate) fn decode<T: DeserializeOwned>(
    table: &'static str,
    key: impl std::fmt::Display,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Decode {
        table,
        key: key.to_string(),
        detail: e.to_string(),
    })
}

/// Reads every value of a table keyed by `K`, in key order.
pub(crate) fn all_values<K, T>(
    tx: &redb::ReadTransaction,
    def: TableDefinition<K, &[u8]>,
    name: &'static str,
) -> Result<Vec<T>, StoreError>
where
    K: redb::Key + 'static,
    for<'a> K::SelfType<'a>: std::fmt::Debug,
    T: DeserializeOwned,
{
    let table = tx.open_table(def)?;
    let mut out = Vec::new();
    for row in table.iter()? {
        let (k, v) = row?;
        out.push(decode(name, format!("{:?}", k.value()), v.value())?);
    }
    Ok(out)
}

/// One value of a table keyed by number, decoded.
pub(crate) fn get_numbered<T: DeserializeOwned>(
    db: &Db,
    def: TableDefinition<u64, &[u8]>,
    name: &'static str,
    id: u64,
) -> Result<Option<T>, StoreError> {
    db.read(|tx| {
        let t = tx.open_table(def)?;
        match t.get(id)? {
            Some(v) => Ok(Some(decode(name, id, v.value())?)),
            None => Ok(None),
        }
    })
}

/// Next key of a table with u64 keys (1 for an empty table).
pub(crate) fn next_u64_key(table: &redb::Table<u64, &[u8]>) -> Result<u64, StoreError> {
    Ok(table.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store's own tables are not under test here.
    fn no_tables(_: &redb::WriteTransaction) -> Result<(), StoreError> {
        Ok(())
    }

    #[test]
    fn second_open_names_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Db::open(dir.path(), no_tables).unwrap();
        let err = Db::open(dir.path(), no_tables).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Locked { .. }), "{msg}");
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    }

    #[test]
    fn schema_version_is_recorded_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Db::open(dir.path(), no_tables).unwrap();
            assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        }
        let s = Db::open(dir.path(), no_tables).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn garbage_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ugem.redb"), vec![0x5a; 8192]).unwrap();
        let err = Db::open(dir.path(), no_tables).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }
}
