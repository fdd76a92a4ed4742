//! Bearer tokens with roles, compared in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{AdminSection, Role};

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name (the audit actor).
    pub name: String,
    /// What it may do.
    pub role: Role,
}

/// The configured tokens, kept only as SHA-256 digests.
#[derive(Debug, Clone)]
pub struct Tokens {
    entries: Vec<(String, Role, [u8; 32])>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// Builds the token table from `[admin]` (already validated).
    pub fn from_config(admin: &AdminSection) -> Tokens {
        let mut entries = Vec::new();
        if let Some(t) = &admin.token {
            entries.push(("admin".to_string(), Role::Admin, digest(t)));
        }
        for t in &admin.tokens {
            let hash = match (&t.token, &t.sha256) {
                (Some(tok), _) => digest(tok),
                (None, Some(h)) => {
                    let mut out = [0u8; 32];
                    if hex::decode_to_slice(h, &mut out).is_err() {
                        continue;
                    }
                    out
                }
                (None, None) => continue,
            };
            entries.push((t.name.clone(), t.role, hash));
        }
        Tokens { entries }
    }

    /// The caller a presented token belongs to. Every entry is compared, so
    /// the time taken does not tell which one matched or how much of it.
    pub fn verify(&self, presented: &str) -> Option<Caller> {
        let d = digest(presented);
        let mut found = None;
        for (name, role, hash) in &self.entries {
            if bool::from(hash.ct_eq(&d)) && found.is_none() {
                found = Some(Caller {
                    name: name.clone(),
                    role: *role,
                });
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TokenEntry;

    #[test]
    fn plain_and_hashed_tokens() {
        let admin = AdminSection {
            token: Some("root-token-123".into()),
            tokens: vec![
                TokenEntry {
                    name: "desk".into(),
                    role: Role::Viewer,
                    token: None,
                    sha256: Some(hex::encode(digest("viewer-token-1"))),
                },
                TokenEntry {
                    name: "ops".into(),
                    role: Role::Operator,
                    token: Some("operator-token".into()),
                    sha256: None,
                },
            ],
            ..AdminSection::default()
        };
        let t = Tokens::from_config(&admin);
        assert_eq!(t.verify("root-token-123").unwrap().role, Role::Admin);
        assert_eq!(t.verify("viewer-token-1").unwrap().name, "desk");
        assert_eq!(t.verify("operator-token").unwrap().role, Role::Operator);
        assert!(t.verify("operator-token ").is_none());
        assert!(t.verify("").is_none());
    }
}
