//! Listings of the gateway's own addresses on DNS blocklists, as the
//! blocklist watch found them: one record per listing, from the round that
//! first saw it to the round that saw it gone.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One listing of one gateway address on one list, open or ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayListing {
    /// The gateway address that is (or was) listed.
    pub address: IpAddr,
    /// The list's DNS zone (`zen.spamhaus.org`).
    pub zone: String,
    /// The answer that listed it (`127.0.0.2`).
    pub code: String,
    /// What the list says that answer means (`SBL: Spamhaus spam sources`).
    pub meaning: String,
    /// The list's TXT record for the address (its reason, often a URL), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The round that first found it listed.
    pub listed_at: DateTime<Utc>,
    /// The round that first found it gone; absent while listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delisted_at: Option<DateTime<Utc>>,
}

impl GatewayListing {
    /// True while no round has found it gone.
    pub fn is_open(&self) -> bool {
        self.delisted_at.is_none()
    }

    /// True when the listing overlapped `[from, to)`.
    pub fn overlaps(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        self.listed_at < to && self.delisted_at.is_none_or(|d| d >= from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_and_openness() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let mut l = GatewayListing {
            address: "192.0.2.1".parse().unwrap(),
            zone: "zen.spamhaus.org".into(),
            code: "127.0.0.2".into(),
            meaning: "SBL".into(),
            reason: None,
            listed_at: t("2026-12-01T10:00:00Z"),
            delisted_at: None,
        };
        assert!(l.is_open());
        assert!(l.overlaps(t("2026-12-05T00:00:00Z"), t("2026-12-06T00:00:00Z")));
        assert!(!l.overlaps(t("2026-11-01T00:00:00Z"), t("2026-12-01T10:00:00Z")));
        l.delisted_at = Some(t("2026-12-02T00:00:00Z"));
        assert!(!l.is_open());
        assert!(!l.overlaps(t("2026-12-03T00:00:00Z"), t("2026-12-04T00:00:00Z")));
        assert!(l.overlaps(t("2026-11-01T00:00:00Z"), t("2026-12-01T10:00:01Z")));
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(serde_json::from_str::<GatewayListing>(&json).unwrap(), l);
    }
}
