//! The key files on the gateway host: `data_dir/dkim/<domain>/` (mode 0700)
//! holds one private key per selector (`<selector>.key`, DER, mode 0600) and
//! `keys.json`, the index (selector, algorithm, state, dates, public key).
//! Every file is written whole to a temporary name, synced and renamed, so
//! a crash leaves the old file or the new one, never half of either.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Algorithm, DkimError, Selector, record};
use crate::domain::Domain;

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Signs the domain's mail now.
    Active,
    /// Made by a rotation: to be published, then activated.
    Next,
    /// Signed once; its record may stay published a while for mail in transit.
    Retired,
}

/// One key of a domain, as staff see it (never the private half).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// The selector (`s=`).
    pub selector: Selector,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// active, next or retired.
    pub state: KeyState,
    /// When it was generated.
    pub created_at: DateTime<Utc>,
    /// When it started signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<DateTime<Utc>>,
    /// When it stopped signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<DateTime<Utc>>,
    /// The public key, base64, as in the record's `p=`.
    pub public_key: String,
}

/// The key folder of the gateway.
#[derive(Debug, Clone)]
pub(super) struct KeyDir {
    root: PathBuf,
}

const INDEX: &str = "keys.json";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DkimError + '_ {
    move |source| DkimError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Makes `dir` with mode 0700 (and tightens it if it exists).
fn private_dir(dir: &Path) -> Result<(), DkimError> {
    use std::os::unix::fs::PermissionsExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))
}

/// Writes `bytes` to `path` atomically, mode 0600.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DkimError> {
    let dir = path.parent().expect("key files live in a folder");
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    // A stale temporary from a crash is ours to replace.
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io(path))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

impl KeyDir {
    /// The key folder under `data_dir`, made (mode 0700) if missing.
    pub(super) fn open(data_dir: &Path) -> Result<KeyDir, DkimError> {
        let root = data_dir.join("dkim");
        private_dir(&root)?;
        Ok(KeyDir { root })
    }

    fn domain_dir(&self, domain: &Domain) -> PathBuf {
        self.root.join(domain.as_str())
    }

    /// The domains that have a key folder.
    pub(super) fn domains(&self) -> Result<Vec<Domain>, DkimError> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.root).map_err(io(&self.root))? {
            let e = e.map_err(io(&self.root))?;
            if let Some(d) = e.file_name().to_str().and_then(|n| Domain::parse(n).ok()) {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// A domain's keys, oldest first (none when it has no folder).
    pub(super) fn index(&self, domain: &Domain) -> Result<Vec<KeyInfo>, DkimError> {
        let path = self.domain_dir(domain).join(INDEX);
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| DkimError::Index {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Replaces a domain's index.
    pub(super) fn write_index(&self, domain: &Domain, keys: &[KeyInfo]) -> Result<(), DkimError> {
        let dir = self.domain_dir(domain);
        private_dir(&dir)?;
        let json = serde_json::to_vec_pretty(keys).expect("key index serialises");
        write_atomic(&dir.join(INDEX), &json)
    }

    /// The private key (DER) of a selector.
    pub(super) fn private_key(
        &self,
        domain: &Domain,
        selector: &Selector,
    ) -> Result<Vec<u8>, DkimError> {
        let path = self.domain_dir(domain).join(format!("{selector}.key"));
        fs::read(&path).map_err(io(&path))
    }

    /// Generates a key pair, writes its private half, and returns its
    /// entry (not yet in the index: the caller places it).
    pub(super) fn create(
        &self,
        domain: &Domain,
        selector: Selector,
        algorithm: Algorithm,
        state: KeyState,
    ) -> Result<KeyInfo, DkimError> {
        use mail_auth::dkim::generate::DkimKeyPair;
        let crypto = |e: mail_auth::Error| DkimError::Crypto(e.to_string());
        let (private, public) = match algorithm {
            // 2048 bits: RFC 8301's recommendation, and what fits one TXT
            // record in two strings.
            Algorithm::RsaSha256 => {
                let (private, pkcs1) = DkimKeyPair::generate_rsa(2048)
                    .map_err(crypto)?
                    .into_inner();
                (private, record::rsa_spki(&pkcs1))
            }
            Algorithm::Ed25519Sha256 => DkimKeyPair::generate_ed25519()
                .map_err(crypto)?
                .into_inner(),
        };
        let dir = self.domain_dir(domain);
        private_dir(&dir)?;
        let path = dir.join(format!("{selector}.key"));
        if path.exists() {
            return Err(DkimError::SelectorTaken(selector.to_string()));
        }
        write_atomic(&path, &private)?;
        let now = Utc::now();
        Ok(KeyInfo {
            selector,
            algorithm,
            state,
            created_at: now,
            activated_at: (state == KeyState::Active).then_some(now),
            retired_at: None,
            public_key: record::base64(&public),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_are_private_files_and_the_index_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = KeyDir::open(tmp.path()).unwrap();
        let d = Domain::parse("a.example.kz").unwrap();
        let k = dir
            .create(
                &d,
                Selector::parse("s1").unwrap(),
                Algorithm::Ed25519Sha256,
                KeyState::Active,
            )
            .unwrap();
        dir.write_index(&d, std::slice::from_ref(&k)).unwrap();
        assert_eq!(dir.index(&d).unwrap(), vec![k.clone()]);
        assert_eq!(dir.domains().unwrap(), vec![d.clone()]);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&tmp.path().join("dkim")), 0o700);
        assert_eq!(mode(&tmp.path().join("dkim/a.example.kz")), 0o700);
        assert_eq!(mode(&tmp.path().join("dkim/a.example.kz/s1.key")), 0o600);
        assert_eq!(mode(&tmp.path().join("dkim/a.example.kz/keys.json")), 0o600);
        // No temporary is left behind.
        let names: Vec<_> = fs::read_dir(tmp.path().join("dkim/a.example.kz"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        // A selector is never reused: its old key could still be published.
        let again = dir.create(&d, k.selector.clone(), Algorithm::RsaSha256, KeyState::Next);
        assert!(matches!(again, Err(DkimError::SelectorTaken(_))));
    }
}
