//! Listings of the gateway's own addresses: the one reader and writer of
//! [`GatewayListing`] records. The governor records a listing when a remote
//! refusal names a gateway address as listed ([`from_refusal`]); a blocklist
//! watcher records what its DNSBL queries find ([`Registry::record_listing`]
//! with `source = "dnsbl"`) and ends it when the address is clear again
//! ([`Registry::end_listing`]). Reports read them ([`Registry::listings`]).

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::{Registry, RegistryError};
use crate::model::listings::GatewayListing;
use crate::store::StoreError;
use crate::store::local::outbox::PendingWrite;

/// Blocklists named in refusals, by a part of their zone or wording.
const KNOWN_LISTS: &[(&str, &str)] = &[
    ("spamhaus", "spamhaus"),
    ("spamcop", "spamcop"),
    ("barracuda", "barracuda"),
    ("sorbs", "sorbs"),
    ("uceprotect", "uceprotect"),
    ("psbl", "psbl"),
    ("mailspike", "mailspike"),
    ("abuseat", "cbl.abuseat.org"),
    ("senderscore", "senderscore"),
    ("protection.outlook.com", "microsoft"),
    ("s3150", "microsoft"),
];

/// The listing a refusal reports: the list is the DNS zone named in the
/// reply (`zen.spamhaus.org`), else a known list's name, else `remote
/// refusal by DOMAIN`; the code is the reply code and enhanced code.
pub fn from_refusal(
    address: IpAddr,
    reply: &str,
    domain: Option<&str>,
    at: DateTime<Utc>,
) -> GatewayListing {
    let lower = reply.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        .map(|w| w.trim_matches('.'))
        .filter(|w| !w.is_empty())
        .collect();
    let zone = words.iter().find(|w| {
        w.contains('.')
            && !w.starts_with("http")
            && w.parse::<IpAddr>().is_err()
            && !w.chars().all(|c| c.is_ascii_digit() || c == '.')
            && KNOWN_LISTS.iter().any(|(k, _)| w.contains(k))
    });
    let list = match zone {
        Some(z) => z.to_string(),
        None => KNOWN_LISTS
            .iter()
            .find(|(k, _)| lower.contains(k))
            .map(|(_, name)| name.to_string())
            .unwrap_or_else(|| {
                format!("remote refusal by {}", domain.unwrap_or("a remote server"))
            }),
    };
    let code: Vec<&str> = reply
        .split_whitespace()
        .take(2)
        .take_while(|w| w.chars().all(|c| c.is_ascii_digit() || c == '.') && !w.is_empty())
        .collect();
    GatewayListing {
        id: 0,
        at,
        address,
        list,
        code: code.join(" "),
        meaning: reply.chars().take(500).collect(),
        source: "refusal".into(),
        last_seen: Some(at),
        delisted_at: None,
    }
}

impl Registry {
    /// Records a listing (see `RegistryStore::record_listing`): true when
    /// it opened a new one, false when it was already open.
    pub async fn record_listing(
        &self,
        rec: &GatewayListing,
    ) -> Result<(GatewayListing, bool), RegistryError> {
        match self.store.record_listing(rec).await {
            // Kept for the store; this node alarms as if it were new (the
            // notice claim settles whether it was).
            Err(StoreError::Unavailable(why)) => {
                let w = PendingWrite::Listing { rec: rec.clone() };
                self.defer(w, why).await?;
                Ok((rec.clone(), true))
            }
            r => Ok(r?),
        }
    }

    /// Ends the open listing of `address` on `list` (delisted at `at`).
    pub async fn end_listing(
        &self,
        address: IpAddr,
        list: &str,
        at: DateTime<Utc>,
    ) -> Result<GatewayListing, RegistryError> {
        match self.store.end_listing(address, list, at).await {
            Err(StoreError::Unavailable(why)) => {
                let w = PendingWrite::EndListing {
                    address,
                    list: list.to_string(),
                    at,
                };
                self.defer(w, why).await?;
                // As this node knows it: the record the store will end.
                Err(RegistryError::State(format!(
                    "the end of the listing of {address} on {list} waits in the local outbox"
                )))
            }
            r => Ok(r?),
        }
    }

    /// Every gateway listing, open or ended, oldest first.
    pub async fn listings(&self) -> Result<Vec<GatewayListing>, RegistryError> {
        Ok(self.store.list_listings().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_list_and_code() {
        let ip: IpAddr = "203.0.113.5".parse().unwrap();
        let at = Utc::now();
        let l = from_refusal(
            ip,
            "554 5.7.1 Service unavailable; Client host [203.0.113.5] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/203.0.113.5",
            Some("example.org"),
            at,
        );
        assert_eq!(l.list, "zen.spamhaus.org");
        assert_eq!(l.code, "554 5.7.1");
        assert_eq!(l.source, "refusal");
        let l = from_refusal(
            ip,
            "550 5.7.606 Access denied, banned sending IP [203.0.113.5]. To request removal from this list please visit https://sender.office.com/ and follow the directions. (S3150)",
            None,
            at,
        );
        assert_eq!(
            (l.list.as_str(), l.code.as_str()),
            ("microsoft", "550 5.7.606")
        );
        let l = from_refusal(ip, "554 your IP is listed", Some("mail.example"), at);
        assert_eq!(l.list, "remote refusal by mail.example");
        assert_eq!(l.code, "554");
    }
}
