//! The loaded signing keys: read once at start and again for a domain when
//! staff generate, rotate or activate one of its keys, never per message.
//! Staff operations go through here too, so the keys in memory and on disk
//! change together.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use chrono::Utc;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer};

use super::keys::{KeyDir, KeyInfo, KeyState};
use super::{Algorithm, DkimError, Selector};
use crate::domain::Domain;

/// The header fields we sign, per RFC 6376 5.4.1's advice; each absent one
/// is signed as absent (so it cannot be added on the way; list and resent
/// fields are left out, as mailing lists add them), and `From`
/// appears once more than any message carries it (over-signing: a second
/// `From` added later breaks the signature).
const SIGNED: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-ID",
    "Content-Description",
    "Sender",
    "From",
];

/// How much of a spooled message is read at a time.
const CHUNK: usize = 64 * 1024;

enum Key {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

/// A message's content as the signer reads it.
pub enum SourceBody<'a> {
    /// All in memory.
    Memory(&'a [u8]),
    /// In a file, from its start, this many bytes: read in chunks at
    /// offsets (its position does not matter), never whole.
    File(&'a std::fs::File, u64),
}

struct Inner {
    dir: KeyDir,
    /// Staff operations one at a time (the index is read, changed, written).
    ops: Mutex<()>,
    active: RwLock<Arc<HashMap<Domain, Arc<Key>>>>,
}

/// The gateway's DKIM keys: the signers of the domains that have an active
/// key, and the staff operations on the key files. Cheap to clone.
#[derive(Clone)]
pub struct Signers {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Signers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("Signers").finish_non_exhaustive()
    }
}

fn load(dir: &KeyDir, domain: &Domain) -> Result<Option<Key>, DkimError> {
    let Some(info) = dir
        .index(domain)?
        .into_iter()
        .find(|k| k.state == KeyState::Active)
    else {
        return Ok(None);
    };
    let der = dir.private_key(domain, &info.selector)?;
    let crypto = |e: mail_auth::Error| DkimError::Crypto(e.to_string());
    let relaxed = Canonicalization::Relaxed;
    Ok(Some(match info.algorithm {
        Algorithm::RsaSha256 => {
            let key =
                RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der)))
                    .map_err(crypto)?;
            Key::Rsa(
                DkimSigner::from_key(key)
                    .domain(domain.as_str())
                    .selector(info.selector.as_str())
                    .headers(SIGNED.iter().copied())
                    .header_canonicalization(relaxed)
                    .body_canonicalization(relaxed),
            )
        }
        Algorithm::Ed25519Sha256 => {
            let key = Ed25519Key::from_pkcs8_der(&der).map_err(crypto)?;
            Key::Ed25519(
                DkimSigner::from_key(key)
                    .domain(domain.as_str())
                    .selector(info.selector.as_str())
                    .headers(SIGNED.iter().copied())
                    .header_canonicalization(relaxed)
                    .body_canonicalization(relaxed),
            )
        }
    }))
}

/// A selector not yet used for `domain`: `ugem-YYYYMMDD`, then `-2`, `-3`...
fn fresh_selector(taken: &[KeyInfo]) -> Selector {
    let base = format!("ugem-{}", Utc::now().format("%Y%m%d"));
    let free = |s: &str| !taken.iter().any(|k| k.selector.as_str() == s);
    let name = std::iter::once(base.clone())
        .chain((2..).map(|n| format!("{base}-{n}")))
        .find(|s| free(s))
        .expect("some suffix is free");
    Selector::parse(&name).expect("a generated selector is a label")
}

impl Signers {
    /// Opens `data_dir/dkim` (made if missing) and loads every active key.
    /// A domain whose key cannot be loaded is logged and left unsigned: one
    /// broken file must not keep the gateway from starting.
    pub fn open(data_dir: &Path) -> Result<Signers, DkimError> {
        let dir = KeyDir::open(data_dir)?;
        let mut active = HashMap::new();
        for d in dir.domains()? {
            match load(&dir, &d) {
                Ok(Some(k)) => {
                    active.insert(d, Arc::new(k));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(domain = %d, error = %e, "DKIM key not loaded; the domain's mail goes unsigned")
                }
            }
        }
        Ok(Signers {
            inner: Arc::new(Inner {
                dir,
                ops: Mutex::new(()),
                active: RwLock::new(Arc::new(active)),
            }),
        })
    }

    /// Reads one domain's active key again (after its files changed).
    fn refresh(&self, domain: &Domain) -> Result<(), DkimError> {
        let key = load(&self.inner.dir, domain)?;
        let mut guard = self.inner.active.write().expect("signers lock");
        let mut map = (**guard).clone();
        match key {
            Some(k) => map.insert(domain.clone(), Arc::new(k)),
            None => map.remove(domain),
        };
        *guard = Arc::new(map);
        Ok(())
    }

    /// True when `domain` has an active key (its outbound mail is signed).
    pub fn signs_for(&self, domain: &Domain) -> bool {
        self.inner
            .active
            .read()
            .expect("signers lock")
            .contains_key(domain)
    }

    /// Generates the first key of `domain`, active at once; refused when
    /// it already has one (that is a rotation).
    pub fn generate(
        &self,
        domain: &Domain,
        selector: Option<Selector>,
        algorithm: Algorithm,
    ) -> Result<KeyInfo, DkimError> {
        let _one = self.inner.ops.lock().expect("dkim ops lock");
        let mut keys = self.inner.dir.index(domain)?;
        if keys.iter().any(|k| k.state == KeyState::Active) {
            return Err(DkimError::HasActive(domain.to_string()));
        }
        let selector = selector.unwrap_or_else(|| fresh_selector(&keys));
        check_free(&keys, &selector)?;
        let key = self
            .inner
            .dir
            .create(domain, selector, algorithm, KeyState::Active)?;
        keys.push(key.clone());
        self.inner.dir.write_index(domain, &keys)?;
        self.refresh(domain)?;
        Ok(key)
    }

    /// Generates the next key of `domain` (to be published, then
    /// activated); the active one keeps signing meanwhile.
    pub fn rotate(
        &self,
        domain: &Domain,
        selector: Option<Selector>,
        algorithm: Algorithm,
    ) -> Result<KeyInfo, DkimError> {
        let _one = self.inner.ops.lock().expect("dkim ops lock");
        let mut keys = self.inner.dir.index(domain)?;
        if !keys.iter().any(|k| k.state == KeyState::Active) {
            return Err(DkimError::NoActive(domain.to_string()));
        }
        if let Some(n) = keys.iter().find(|k| k.state == KeyState::Next) {
            return Err(DkimError::HasNext(
                domain.to_string(),
                n.selector.to_string(),
            ));
        }
        let selector = selector.unwrap_or_else(|| fresh_selector(&keys));
        check_free(&keys, &selector)?;
        let key = self
            .inner
            .dir
            .create(domain, selector, algorithm, KeyState::Next)?;
        keys.push(key.clone());
        self.inner.dir.write_index(domain, &keys)?;
        Ok(key)
    }

    /// Switches `domain`'s signing to its next key; the active one retires.
    /// Returns the newly active key.
    pub fn activate(&self, domain: &Domain) -> Result<KeyInfo, DkimError> {
        let _one = self.inner.ops.lock().expect("dkim ops lock");
        let mut keys = self.inner.dir.index(domain)?;
        if !keys.iter().any(|k| k.state == KeyState::Next) {
            return Err(DkimError::NoNext(domain.to_string()));
        }
        let now = Utc::now();
        for k in keys.iter_mut() {
            match k.state {
                KeyState::Active => {
                    k.state = KeyState::Retired;
                    k.retired_at = Some(now);
                }
                KeyState::Next => {
                    k.state = KeyState::Active;
                    k.activated_at = Some(now);
                }
                KeyState::Retired => {}
            }
        }
        self.inner.dir.write_index(domain, &keys)?;
        self.refresh(domain)?;
        Ok(keys
            .into_iter()
            .find(|k| k.state == KeyState::Active)
            .expect("just activated"))
    }

    /// The keys of `domain`, or of every domain, by domain then age.
    pub fn list(&self, domain: Option<&Domain>) -> Result<Vec<(Domain, KeyInfo)>, DkimError> {
        let domains = match domain {
            Some(d) => vec![d.clone()],
            None => self.inner.dir.domains()?,
        };
        let mut out = Vec::new();
        for d in domains {
            for k in self.inner.dir.index(&d)? {
                out.push((d.clone(), k));
            }
        }
        Ok(out)
    }

    /// Signs a message (`head` then `body`) for `domain`: its
    /// `DKIM-Signature:` field, CRLF-terminated, to put in front; `None`
    /// when the domain has no active key. The body is hashed as it is read,
    /// so a spooled message is never held whole in memory (only its header
    /// section is).
    pub fn sign(
        &self,
        domain: &Domain,
        head: &[u8],
        body: SourceBody<'_>,
    ) -> Result<Option<String>, DkimError> {
        let Some(key) = self
            .inner
            .active
            .read()
            .expect("signers lock")
            .get(domain)
            .cloned()
        else {
            return Ok(None);
        };
        let signature = match &*key {
            Key::Rsa(s) => {
                let mut st = s.sign_streaming();
                feed(head, body, |c| st.write(c))?;
                st.finish()
            }
            Key::Ed25519(s) => {
                let mut st = s.sign_streaming();
                feed(head, body, |c| st.write(c))?;
                st.finish()
            }
        }
        .map_err(|e| DkimError::Crypto(e.to_string()))?;
        Ok(Some(signature.to_header()))
    }
}

fn check_free(keys: &[KeyInfo], selector: &Selector) -> Result<(), DkimError> {
    if keys.iter().any(|k| &k.selector == selector) {
        return Err(DkimError::SelectorTaken(selector.to_string()));
    }
    Ok(())
}

/// The signer holds the header section in memory until the blank line
/// that ends it; a file whose first this-many octets hold none is not
/// signed, so a message without a body cannot make it hold the whole file.
const MAX_HEADER_SECTION: u64 = 1 << 20;

fn feed(head: &[u8], body: SourceBody<'_>, mut write: impl FnMut(&[u8])) -> Result<(), DkimError> {
    write(head);
    match body {
        SourceBody::Memory(b) => write(b),
        SourceBody::File(f, len) => {
            let mut buf = vec![0u8; CHUNK];
            let mut left = len;
            // The last octets seen, so a blank line split across reads is found.
            let mut tail: Vec<u8> = head[head.len().saturating_sub(3)..].to_vec();
            let mut in_header = true;
            while left > 0 {
                let want = (left as usize).min(CHUNK);
                f.read_exact_at(&mut buf[..want], len - left)
                    .map_err(|source| DkimError::Io {
                        path: "spool file".into(),
                        source,
                    })?;
                if in_header {
                    tail.extend_from_slice(&buf[..want]);
                    if tail.windows(4).any(|w| w == b"\r\n\r\n") {
                        in_header = false;
                    } else if len - left + want as u64 > MAX_HEADER_SECTION {
                        return Err(DkimError::NoBody(MAX_HEADER_SECTION));
                    } else {
                        tail.drain(..tail.len() - 3);
                    }
                }
                write(&buf[..want]);
                left -= want as u64;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, Write};

    fn domain() -> Domain {
        Domain::parse("a.example.kz").unwrap()
    }

    #[test]
    fn rotation_goes_active_next_retired_and_signing_follows_it() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Signers::open(tmp.path()).unwrap();
        let d = domain();
        assert!(!s.signs_for(&d));
        assert!(matches!(
            s.rotate(&d, None, Algorithm::Ed25519Sha256),
            Err(DkimError::NoActive(_))
        ));
        let first = s.generate(&d, None, Algorithm::Ed25519Sha256).unwrap();
        assert!(s.signs_for(&d));
        assert!(matches!(
            s.generate(&d, None, Algorithm::Ed25519Sha256),
            Err(DkimError::HasActive(_))
        ));
        assert!(matches!(s.activate(&d), Err(DkimError::NoNext(_))));
        let next = s
            .rotate(
                &d,
                Some(Selector::parse("two").unwrap()),
                Algorithm::Ed25519Sha256,
            )
            .unwrap();
        assert_eq!(next.state, KeyState::Next);
        let msg = b"From: a@a.example.kz\r\n\r\nhi\r\n";
        let before = s.sign(&d, b"", SourceBody::Memory(msg)).unwrap().unwrap();
        assert!(
            before.contains(&format!("s={}", first.selector)),
            "{before}"
        );
        s.activate(&d).unwrap();
        let after = s.sign(&d, b"", SourceBody::Memory(msg)).unwrap().unwrap();
        assert!(after.contains("s=two"), "{after}");
        let states: Vec<_> = s
            .list(Some(&d))
            .unwrap()
            .into_iter()
            .map(|(_, k)| k.state)
            .collect();
        assert_eq!(states, vec![KeyState::Retired, KeyState::Active]);
        // A restart loads the same active key.
        let again = Signers::open(tmp.path()).unwrap();
        let reloaded = again
            .sign(&d, b"", SourceBody::Memory(msg))
            .unwrap()
            .unwrap();
        assert!(reloaded.contains("s=two"));
    }

    #[test]
    fn a_file_without_a_blank_line_early_is_not_held_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Signers::open(tmp.path()).unwrap();
        let d = domain();
        s.generate(&d, None, Algorithm::Ed25519Sha256).unwrap();
        let mut msg = b"From: a@a.example.kz\r\n".to_vec();
        msg.extend(std::iter::repeat_n(b'x', 2 << 20));
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&msg).unwrap();
        f.rewind().unwrap();
        let len = msg.len() as u64;
        let r = s.sign(&d, b"", SourceBody::File(&f, len));
        assert!(matches!(r, Err(DkimError::NoBody(_))), "{r:?}");
        // The blank line split across two reads is still found.
        let mut msg = b"From: a@a.example.kz\r\nX: ".to_vec();
        msg.extend(std::iter::repeat_n(b'y', CHUNK - msg.len() - 2));
        msg.extend_from_slice(b"\r\n\r\nbody\r\n");
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&msg).unwrap();
        f.rewind().unwrap();
        let len = msg.len() as u64;
        assert!(
            s.sign(&d, b"", SourceBody::File(&f, len))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_file_body_signs_like_the_same_bytes_in_memory() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Signers::open(tmp.path()).unwrap();
        let d = domain();
        s.generate(&d, None, Algorithm::Ed25519Sha256).unwrap();
        let mut body = b"From: a@a.example.kz\r\nTo: b@b.example\r\nSubject: x\r\n\r\n".to_vec();
        for i in 0..20_000 {
            body.extend_from_slice(format!("line {i}  \r\n").as_bytes());
        }
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&body).unwrap();
        f.rewind().unwrap();
        let head = b"Received: x\r\n";
        let bh = |h: &str| {
            h.split("bh=")
                .nth(1)
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .replace(['\r', '\n', '\t', ' '], "")
        };
        let m = s
            .sign(&d, head, SourceBody::Memory(&body))
            .unwrap()
            .unwrap();
        let len = body.len() as u64;
        let fsig = s
            .sign(&d, head, SourceBody::File(&f, len))
            .unwrap()
            .unwrap();
        assert_eq!(bh(&m), bh(&fsig));
        assert!(m.starts_with("DKIM-Signature: ") && m.ends_with("\r\n"));
        // From is signed once more than the message carries it.
        let h = m
            .split("h=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .replace(['\r', '\n', '\t', ' '], "");
        assert_eq!(
            h.split(':')
                .filter(|x| x.eq_ignore_ascii_case("from"))
                .count(),
            2,
            "{h}"
        );
    }
}
