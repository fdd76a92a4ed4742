//! `[dnsbl]`: which DNS blocklists the gateway's own addresses
//! (`registration.gateway_addresses`) are looked up on, and how often.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigProblem;
use crate::domain::Domain;
use crate::values::Span;

/// The lists watched when `zones` is not set: the big ones receivers use,
/// each with its terms in the README ("The gateway on blocklists").
pub const DEFAULT_ZONES: [&str; 6] = [
    "zen.spamhaus.org",
    "bl.spamcop.net",
    "b.barracudacentral.org",
    "dnsbl-1.uceprotect.net",
    "psbl.surriel.com",
    "bl.mailspike.net",
];

/// `[dnsbl]`: the blocklist watch.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsblSection {
    /// Off: no look-ups (the metric and `ugem governor` show nothing).
    pub enabled: bool,
    /// The lists' DNS zones, queried as `<reversed address>.<zone>`.
    pub zones: Vec<Domain>,
    /// Time between two rounds of look-ups.
    pub interval: Span,
}

impl Default for DnsblSection {
    fn default() -> Self {
        DnsblSection {
            enabled: true,
            zones: DEFAULT_ZONES
                .iter()
                .map(|z| Domain::parse(z).expect("default zones are domain names"))
                .collect(),
            interval: Span(Duration::from_secs(15 * 60)),
        }
    }
}

impl DnsblSection {
    /// A round more often than every second would hammer the lists, and
    /// the metric's labels must stay few.
    pub fn check(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        if self.interval.0 < Duration::from_secs(1) {
            out.push(ConfigProblem::new(
                "dnsbl.interval",
                "must be at least 1s (15m is kind to the lists)",
            ));
        }
        if self.zones.len() > 32 {
            out.push(ConfigProblem::new("dnsbl.zones", "at most 32 lists"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{MINIMAL, keys, load};

    #[test]
    fn defaults_and_bad_values() {
        let cfg = load(MINIMAL, &[]).unwrap();
        assert!(cfg.dnsbl.enabled);
        assert_eq!(cfg.dnsbl.zones.len(), 6);
        assert_eq!(cfg.dnsbl.zones[0].as_str(), "zen.spamhaus.org");
        let cfg = load(
            &format!("{MINIMAL}[dnsbl]\nzones = [\"bl.test\"]\ninterval = \"2s\"\n"),
            &[],
        )
        .unwrap();
        assert_eq!(cfg.dnsbl.zones[0].as_str(), "bl.test");
        let err = load(
            &format!("{MINIMAL}[dnsbl]\nzones = [\"not a zone\"]\ninterval = \"10ms\"\n"),
            &[],
        )
        .unwrap_err();
        let k = keys(&err);
        assert!(k.contains(&"dnsbl.zones"), "{err}");
        assert!(k.contains(&"dnsbl.interval"), "{err}");
    }
}
