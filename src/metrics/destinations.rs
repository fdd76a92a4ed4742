//! Delivery results by destination domain with a bounded number of series:
//! the busiest domains get a label value of their own, the rest share
//! "other", whatever the traffic.
//!
//! Counters must only grow, so a domain's series counts from when it got
//! its label; a domain that loses its label to a busier one loses its
//! series (Prometheus sees it end), and its later results go to "other".

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// Destination domains with a label value of their own on
/// `ugem_delivery_destination_recipients_total`; the rest are "other".
pub const DESTINATION_LABELS: usize = 20;

/// Domains whose recipients are tallied to rank them, per label: enough
/// to find a rising domain, bounded so that random domains cannot grow it.
const CANDIDATES_PER_LABEL: usize = 8;

/// A domain takes the label of the least busy labelled one only when it
/// has seen this many times its recipients, so two domains of about the
/// same traffic do not swap labels back and forth.
const TAKEOVER_FACTOR: u64 = 2;

/// The label value of the domains without one of their own.
const OTHER: &str = "other";

type Labels = [(&'static str, String); 2];

/// The per-destination counters and who has a label.
pub(super) struct Destinations {
    family: Family<Labels, Counter>,
    ranks: Mutex<Ranks>,
}

/// Recipients seen per domain (a space-saving tally: a new domain takes
/// the place of the least seen unlabelled one, starting above it) and the
/// domains with a label.
struct Ranks {
    limit: usize,
    seen: HashMap<String, u64>,
    labelled: HashSet<String>,
}

impl Ranks {
    /// Counts one recipient for `domain`; returns whether it has a label,
    /// and the domain that lost its label to it, if any.
    fn observe(&mut self, domain: &str) -> (bool, Option<String>) {
        if let Some(n) = self.seen.get_mut(domain) {
            *n += 1;
        } else {
            let cap = self.limit * CANDIDATES_PER_LABEL;
            let mut start = 1;
            if self.seen.len() >= cap {
                let evict = self
                    .seen
                    .iter()
                    .filter(|(d, _)| !self.labelled.contains(*d))
                    .min_by_key(|(_, n)| **n)
                    .map(|(d, n)| (d.clone(), *n));
                match evict {
                    Some((d, n)) => {
                        self.seen.remove(&d);
                        start = n + 1;
                    }
                    None => return (false, None),
                }
            }
            self.seen.insert(domain.to_string(), start);
        }
        if self.labelled.contains(domain) {
            return (true, None);
        }
        if self.labelled.len() < self.limit {
            self.labelled.insert(domain.to_string());
            return (true, None);
        }
        let mine = self.seen.get(domain).copied().unwrap_or(0);
        let least = self
            .labelled
            .iter()
            .map(|d| (d, self.seen.get(d).copied().unwrap_or(0)))
            .min_by_key(|(_, n)| *n)
            .map(|(d, n)| (d.clone(), n));
        match least {
            Some((d, n)) if mine > n.saturating_mul(TAKEOVER_FACTOR) => {
                self.labelled.remove(&d);
                self.labelled.insert(domain.to_string());
                (true, Some(d))
            }
            _ => (false, None),
        }
    }
}

impl Destinations {
    /// No domain labelled yet; at most `limit` will be.
    pub(super) fn new(limit: usize) -> Destinations {
        Destinations {
            family: Family::default(),
            ranks: Mutex::new(Ranks {
                limit,
                seen: HashMap::new(),
                labelled: HashSet::new(),
            }),
        }
    }

    /// Counts one recipient of `domain` with `result`.
    pub(super) fn count(&self, domain: &str, result: &'static str) {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let (own, dropped) = self
            .ranks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(&domain);
        if let Some(d) = dropped {
            for class in ["delivered", "deferred", "failed"] {
                self.family
                    .remove(&[("domain", d.clone()), ("class", class.to_string())]);
            }
        }
        let label = if own { domain } else { OTHER.to_string() };
        self.family
            .get_or_create(&[("domain", label), ("class", result.to_string())])
            .inc();
    }

    /// The counters, to register for a scrape.
    pub(super) fn family(&self) -> Family<Labels, Counter> {
        self.family.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains(d: &Destinations) -> HashSet<String> {
        let mut r = prometheus_client::registry::Registry::default();
        r.register("x", "x", d.family());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        text.lines()
            .filter_map(|l| l.split("domain=\"").nth(1))
            .filter_map(|l| l.split('"').next())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_first_domains_get_labels_and_the_rest_are_other() {
        let d = Destinations::new(3);
        for name in [
            "a.example",
            "b.example",
            "c.example",
            "d.example",
            "e.example",
        ] {
            d.count(name, "delivered");
        }
        let seen = domains(&d);
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert!(
            seen.contains("other") && !seen.contains("d.example"),
            "{seen:?}"
        );
    }

    #[test]
    fn a_much_busier_domain_takes_a_label() {
        let d = Destinations::new(2);
        d.count("a.example", "delivered");
        d.count("b.example", "delivered");
        for _ in 0..2 {
            d.count("busy.example", "delivered");
        }
        assert!(
            !domains(&d).contains("busy.example"),
            "not yet twice as busy"
        );
        d.count("busy.example", "failed");
        let seen = domains(&d);
        assert!(seen.contains("busy.example"), "{seen:?}");
        assert_eq!(seen.len(), 3, "one of a/b lost its series: {seen:?}");
    }

    #[test]
    fn random_domains_keep_the_series_bounded() {
        let d = Destinations::new(4);
        for i in 0..10_000 {
            d.count(&format!("r{i}.example"), "deferred");
        }
        assert!(domains(&d).len() <= 5);
        let ranks = d.ranks.lock().unwrap();
        assert!(ranks.seen.len() <= 4 * CANDIDATES_PER_LABEL);
        assert!(ranks.labelled.len() <= 4);
    }

    #[test]
    fn domain_case_and_trailing_dot_do_not_split_a_domain() {
        let d = Destinations::new(1);
        d.count("Mail.Example", "delivered");
        d.count("mail.example.", "delivered");
        d.count("x.example", "delivered");
        let seen = domains(&d);
        assert!(
            seen.contains("mail.example") && seen.contains("other"),
            "{seen:?}"
        );
        assert_eq!(seen.len(), 2, "{seen:?}");
    }
}
