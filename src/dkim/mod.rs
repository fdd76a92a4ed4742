//! DKIM signing (RFC 6376, RFC 8463) of outbound mail, per registered
//! domain: the keys kept on the gateway host (`keys`), their DNS record
//! (`record`), and the loaded signers the preparation step uses (`signer`).
//! Private keys never leave this module except as files of mode 0600.

mod keys;
mod record;
mod signer;

pub use keys::{KeyInfo, KeyState};
pub use record::{published_key, txt_name, txt_value};
pub use signer::{Signers, SourceBody};

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A signing algorithm staff may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    /// RSA 2048 with SHA-256 (RFC 6376): what every verifier knows.
    #[serde(rename = "rsa-sha256")]
    RsaSha256,
    /// Ed25519 with SHA-256 (RFC 8463): short keys, not yet known everywhere.
    #[serde(rename = "ed25519-sha256")]
    Ed25519Sha256,
}

impl Algorithm {
    /// The `k=` tag of its key record.
    pub fn key_type(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsa",
            Algorithm::Ed25519Sha256 => "ed25519",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::RsaSha256 => "rsa-sha256",
            Algorithm::Ed25519Sha256 => "ed25519-sha256",
        })
    }
}

impl FromStr for Algorithm {
    type Err = DkimError;
    fn from_str(s: &str) -> Result<Self, DkimError> {
        match s.to_ascii_lowercase().as_str() {
            "rsa-sha256" | "rsa" => Ok(Algorithm::RsaSha256),
            "ed25519-sha256" | "ed25519" => Ok(Algorithm::Ed25519Sha256),
            _ => Err(DkimError::Algorithm(s.to_string())),
        }
    }
}

/// A DKIM selector: one DNS label (letters, digits, hyphens), lowercased.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Selector(String);

impl Selector {
    /// Parses a selector; it names a file too, so nothing but a plain label.
    pub fn parse(s: &str) -> Result<Selector, DkimError> {
        let l = s.to_ascii_lowercase();
        let ok = !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-');
        if ok {
            Ok(Selector(l))
        } else {
            Err(DkimError::Selector(s.to_string()))
        }
    }

    /// The label.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Selector {
    type Error = DkimError;
    fn try_from(s: String) -> Result<Self, DkimError> {
        Selector::parse(&s)
    }
}

impl From<Selector> for String {
    fn from(s: Selector) -> String {
        s.0
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a DKIM key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    /// Not an algorithm we sign with.
    #[error("unknown DKIM algorithm `{0}` (rsa-sha256 or ed25519-sha256)")]
    Algorithm(String),
    /// Not a usable selector.
    #[error("bad DKIM selector `{0}`: one DNS label of letters, digits and hyphens")]
    Selector(String),
    /// The selector is taken for the domain.
    #[error("selector {0} already exists for this domain")]
    SelectorTaken(String),
    /// The domain already has an active key (rotate instead).
    #[error("{0} already has an active DKIM key: use `ugem dkim rotate`")]
    HasActive(String),
    /// Rotation asked of a domain without a key.
    #[error("{0} has no active DKIM key: use `ugem dkim generate` first")]
    NoActive(String),
    /// Rotation started twice.
    #[error("{0} already has a next DKIM key ({1}): activate it first")]
    HasNext(String, String),
    /// Activation without a next key.
    #[error("{0} has no next DKIM key: use `ugem dkim rotate` first")]
    NoNext(String),
    /// A spooled message whose header section does not end early enough.
    #[error("no blank line in the first {0} octets: the message is not signed")]
    NoBody(u64),
    /// Key generation or loading failed in the crypto library.
    #[error("DKIM key: {0}")]
    Crypto(String),
    /// The key index of a domain cannot be read.
    #[error("DKIM key index {path}: {reason}")]
    Index {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file operation failed.
    #[error("DKIM key files {path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

impl DkimError {
    /// True when the caller asked for something the state does not allow
    /// (a 4xx), not a failure of the gateway.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            DkimError::SelectorTaken(_)
                | DkimError::HasActive(_)
                | DkimError::NoActive(_)
                | DkimError::HasNext(..)
                | DkimError::NoNext(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_plain_labels() {
        assert_eq!(Selector::parse("UGEM-2026").unwrap().as_str(), "ugem-2026");
        for bad in ["", "-a", "a-", "a.b", "../x", "a/b", &"x".repeat(64)] {
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn algorithms_parse_and_print() {
        for a in [Algorithm::RsaSha256, Algorithm::Ed25519Sha256] {
            assert_eq!(a.to_string().parse::<Algorithm>().unwrap(), a);
        }
        assert!("rsa-sha1".parse::<Algorithm>().is_err());
    }
}
