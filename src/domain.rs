//! Typed DNS domain names: lowercased A-label form, checked once at the edge.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a text is not a domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The name is empty.
    #[error("empty domain name")]
    Empty,
    /// The name is longer than 253 octets in A-label form.
    #[error("domain name longer than 253 octets")]
    TooLong,
    /// A label is empty or longer than 63 octets.
    #[error("bad label length in domain name")]
    BadLabel,
    /// A character that no host name may hold.
    #[error("invalid character in domain name")]
    BadChar,
    /// The internationalized name cannot be converted to an A-label.
    #[error("invalid internationalized domain name")]
    Idna,
    /// A single label: gateways deal only in fully qualified names.
    #[error("domain name must have at least two labels")]
    NotQualified,
}

/// A fully qualified domain name, lowercased, in A-label (punycode) form,
/// without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    /// Parses a host name (ASCII or U-label); a single trailing dot is dropped.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let s = input.strip_suffix('.').unwrap_or(input);
        if s.is_empty() {
            return Err(DomainError::Empty);
        }
        let ascii = if s.is_ascii() {
            s.to_ascii_lowercase()
        } else {
            idna::domain_to_ascii_strict(s).map_err(|_| DomainError::Idna)?
        };
        if ascii.len() > 253 {
            return Err(DomainError::TooLong);
        }
        let mut labels = 0;
        for label in ascii.split('.') {
            labels += 1;
            if label.is_empty() || label.len() > 63 {
                return Err(DomainError::BadLabel);
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                || label.starts_with('-')
                || label.ends_with('-')
            {
                return Err(DomainError::BadChar);
            }
        }
        if labels < 2 {
            return Err(DomainError::NotQualified);
        }
        Ok(Domain(ascii))
    }

    /// The A-label text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `self` equals `other` or lies below it (`a.b.c` is within `b.c`).
    pub fn is_within(&self, other: &Domain) -> bool {
        self.0 == other.0
            || (self.0.len() > other.0.len()
                && self.0.ends_with(other.0.as_str())
                && self.0.as_bytes()[self.0.len() - other.0.len() - 1] == b'.')
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Domain {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Domain::parse(s)
    }
}

impl AsRef<str> for Domain {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Domain {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Domain {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Domain::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercases_and_drops_trailing_dot() {
        assert_eq!(
            Domain::parse("Agency.GOV.kz.").unwrap().as_str(),
            "agency.gov.kz"
        );
    }

    #[test]
    fn idn_becomes_a_label() {
        let d = Domain::parse("министерство.қаз").unwrap();
        assert!(d.as_str().starts_with("xn--"), "{d}");
        assert_eq!(Domain::parse(d.as_str()).unwrap(), d);
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            ".",
            "a..b",
            "-a.b",
            "a-.b",
            "a b.c",
            "a@b.c",
            "localhost",
            "[1.2.3.4]",
        ] {
            assert!(Domain::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            Domain::parse(&format!("{}.kz", "a".repeat(64))),
            Err(DomainError::BadLabel)
        );
    }

    #[test]
    fn within_is_label_aligned() {
        let parent = Domain::parse("agency.kz").unwrap();
        assert!(Domain::parse("mail.agency.kz").unwrap().is_within(&parent));
        assert!(Domain::parse("agency.kz").unwrap().is_within(&parent));
        assert!(!Domain::parse("xagency.kz").unwrap().is_within(&parent));
        assert!(
            !Domain::parse("agency.kz.evil.example")
                .unwrap()
                .is_within(&parent)
        );
    }
}
