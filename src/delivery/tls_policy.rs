//! Per-destination STARTTLS policy, like Postfix's `smtp_tls_policy_maps`:
//! `[delivery.tls_policy]` maps a recipient domain (`"partner.example"`) or
//! its subdomains (`".partner.example"`) to none, may, encrypt or verify;
//! other domains get `delivery.tls`.

use std::collections::BTreeMap;

use super::client::TlsPolicy;
use crate::domain::Domain;

/// The policy for mail to `domain`: its own entry, else the nearest parent's
/// `.parent` entry, else `default`.
pub fn policy_for(
    domain: &Domain,
    map: &BTreeMap<String, TlsPolicy>,
    default: TlsPolicy,
) -> TlsPolicy {
    lookup(domain, map).unwrap_or(default)
}

/// The entry that applies to `domain`, if any (an explicit entry also
/// overrides the domain's MTA-STS policy).
pub fn lookup(domain: &Domain, map: &BTreeMap<String, TlsPolicy>) -> Option<TlsPolicy> {
    if map.is_empty() {
        return None;
    }
    let name = domain.as_str();
    if let Some(p) = map.get(name) {
        return Some(*p);
    }
    // "a.b.example" -> ".b.example", then ".example".
    let mut rest = name;
    while let Some((_, parent)) = rest.split_once('.') {
        if let Some(p) = map.get(&format!(".{parent}")) {
            return Some(*p);
        }
        rest = parent;
    }
    None
}

pub use crate::values::check_key;

#[cfg(test)]
mod tests {
    use super::*;
    use TlsPolicy::*;

    fn map() -> BTreeMap<String, TlsPolicy> {
        [
            ("gov.kz".to_string(), Verify),
            (".gov.kz".to_string(), Encrypt),
            ("legacy.example".to_string(), None),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn exact_then_parent_then_default() {
        let m = map();
        let p = |d: &str| policy_for(&Domain::parse(d).unwrap(), &m, May);
        assert_eq!(p("gov.kz"), Verify);
        assert_eq!(p("egov.gov.kz"), Encrypt);
        assert_eq!(p("mail.egov.gov.kz"), Encrypt);
        assert_eq!(p("legacy.example"), None);
        assert_eq!(p("sub.legacy.example"), May);
        assert_eq!(p("example.org"), May);
        // Not a label boundary: "notgov.kz" is not under ".gov.kz".
        assert_eq!(p("notgov.kz"), May);
    }

    #[test]
    fn keys_are_checked() {
        assert!(check_key("gov.kz").is_ok());
        assert!(check_key(".gov.kz").is_ok());
        assert!(check_key("*.gov.kz").is_err());
        assert!(check_key("Gov.KZ").is_err());
        assert!(check_key("").is_err());
    }
}
