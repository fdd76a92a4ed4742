//! The blocklist watch: every `dnsbl.interval`, each gateway address
//! (`registration.gateway_addresses`) is looked up on each list of
//! `dnsbl.zones`, through the gateway's own resolver (`delivery.nameservers`).
//! A change (listed, delisted) of an (address, list) pair is recorded
//! through the registry ([`GatewayListing`], source `dnsbl`; the listings
//! report reads them), mailed to the postmaster, sent to the
//! webhooks and set on `ugem_gateway_listed{address,zone}`. The open
//! listings are read back at start, so a restart does not alarm again.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use serde::Serialize;
use tokio::sync::watch;

use super::Governor;
use super::blocklists::{Answer, interpret, query_name};
use crate::model::listings::GatewayListing;

/// How long one look-up may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The latest look-up of one address on one list, for `ugem governor`.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    /// The gateway address.
    pub address: IpAddr,
    /// The list's zone.
    pub zone: String,
    /// `listed`, `not listed`, `query refused` or `lookup failed`.
    pub state: String,
    /// The answer (`127.0.0.2`), when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// What the answer means, or why the look-up failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meaning: Option<String>,
    /// The list's TXT reason while listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Since when it is listed (the open listing's start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listed_since: Option<DateTime<Utc>>,
    /// When it was looked up.
    pub checked_at: DateTime<Utc>,
}

/// What the watch knows: the open listings and the latest look-ups.
#[derive(Debug, Default)]
pub struct Watched {
    open: BTreeMap<(IpAddr, String), GatewayListing>,
    checked: BTreeMap<(IpAddr, String), Checked>,
}

/// The shared state of the watch (the governor holds it for its status).
pub type WatchState = Mutex<Watched>;

/// One look-up's result.
enum Looked {
    Answer(Answer, Option<String>),
    Failed(String),
}

impl Governor {
    /// The latest look-ups, listed ones first, for `GET /api/v1/governor`.
    pub fn blocklist_status(&self) -> Vec<Checked> {
        let w = self.blocklists.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<Checked> = w.checked.values().cloned().collect();
        v.sort_by_key(|c| (c.state != "listed", c.address, c.zone.clone()));
        v
    }

    /// Runs the blocklist watch until `stop` turns true.
    pub async fn watch_blocklists(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        // Every open listing on a watched list counts as known, whoever
        // recorded it (a refusal naming the zone, or an earlier run).
        match self.registry.listings().await {
            Ok(all) => {
                let open = all.into_iter().filter(GatewayListing::is_open);
                let cfg = self.cfg();
                let mut w = self.blocklists.lock().unwrap_or_else(|p| p.into_inner());
                for l in open {
                    let watched = cfg.dnsbl.enabled
                        && cfg.dnsbl.zones.iter().any(|z| z.as_str() == l.list)
                        && cfg
                            .registration
                            .gateway_addresses
                            .iter()
                            .any(|a| crate::policy::canonical_ip(*a) == l.address);
                    // Listed as far as anyone knows, until a round says otherwise.
                    if watched {
                        crate::metrics::set_gateway_listed(&l.address.to_string(), &l.list, true);
                        w.open.insert((l.address, l.list.clone()), l);
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the gateway's listings"),
        }
        let resolver = match resolver(&self.cfg().delivery.nameservers) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "blocklist watch: no resolver; not watching");
                return;
            }
        };
        let mut reloads = self.cfg.subscribe();
        loop {
            let cfg = self.cfg();
            if cfg.dnsbl.enabled {
                self.blocklist_round(&resolver).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(cfg.dnsbl.interval.0) => {}
                _ = reloads.changed() => {}
                _ = crate::shutdown::stopped(&mut stop) => return,
            }
        }
    }

    /// Looks up every configured address on every configured list once.
    async fn blocklist_round(&self, resolver: &TokioResolver) {
        let cfg = self.cfg();
        let addresses: Vec<IpAddr> = cfg
            .registration
            .gateway_addresses
            .iter()
            .map(|ip| crate::policy::canonical_ip(*ip))
            .collect();
        // Pairs no longer configured leave the status and the metric (an
        // open listing's record stays as it was: nobody looks any more).
        {
            let mut w = self.blocklists.lock().unwrap_or_else(|p| p.into_inner());
            w.checked.retain(|(a, z), _| {
                let keep = addresses.contains(a) && cfg.dnsbl.zones.iter().any(|x| x.as_str() == z);
                if !keep {
                    crate::metrics::forget_gateway_listed(&a.to_string(), z);
                }
                keep
            });
        }
        for address in &addresses {
            for zone in &cfg.dnsbl.zones {
                let looked = look_up(resolver, *address, zone.as_str()).await;
                self.note_lookup(*address, zone.as_str(), looked).await;
            }
        }
    }

    /// Records one look-up; on a change of state, records, alarms and
    /// notifies.
    async fn note_lookup(&self, address: IpAddr, zone: &str, looked: Looked) {
        let now = Utc::now();
        let k = (address, zone.to_string());
        let (label_address, label_zone) = (address.to_string(), zone.to_string());
        let mut changed: Option<(GatewayListing, bool)> = None;
        let mut refused: Option<String> = None;
        {
            let mut w = self.blocklists.lock().unwrap_or_else(|p| p.into_inner());
            let open = w.open.get(&k).cloned();
            let mut checked = Checked {
                address,
                zone: zone.to_string(),
                state: String::new(),
                code: None,
                meaning: None,
                reason: None,
                listed_since: open.as_ref().map(|l| l.at),
                checked_at: now,
            };
            match &looked {
                Looked::Failed(why) => {
                    checked.state = "lookup failed".into();
                    checked.meaning = Some(why.clone());
                }
                Looked::Answer(answer, reason) => {
                    checked.state = answer.state().into();
                    match answer {
                        Answer::NotListed => {}
                        Answer::Listed { code, meaning } | Answer::Refused { code, meaning } => {
                            checked.code = Some(code.to_string());
                            checked.meaning = Some(meaning.clone());
                        }
                    }
                    match (answer, open) {
                        (Answer::Listed { code, meaning }, None) => {
                            let meaning = match reason {
                                Some(r) => format!("{meaning}; the list says: {r}"),
                                None => meaning.clone(),
                            };
                            let l = GatewayListing {
                                id: 0,
                                at: now,
                                address,
                                list: zone.to_string(),
                                code: code.to_string(),
                                meaning,
                                source: "dnsbl".into(),
                                last_seen: Some(now),
                                delisted_at: None,
                            };
                            checked.listed_since = Some(now);
                            w.open.insert(k.clone(), l.clone());
                            changed = Some((l, true));
                        }
                        (Answer::NotListed, Some(mut l)) => {
                            l.delisted_at = Some(now);
                            w.open.remove(&k);
                            checked.listed_since = None;
                            changed = Some((l, false));
                        }
                        _ => {}
                    }
                    if matches!(answer, Answer::Listed { .. }) {
                        checked.reason = reason.clone();
                    }
                }
            }
            let was = w.checked.insert(k, checked.clone());
            match &looked {
                Looked::Answer(Answer::Refused { meaning, .. }, _)
                    if was.as_ref().is_none_or(|c| c.state != checked.state) =>
                {
                    tracing::warn!(address = %address, zone, state = %checked.state, detail = %meaning, "blocklist look-up gave no answer about the address");
                    refused = Some(meaning.clone());
                }
                Looked::Failed(_) if was.as_ref().is_none_or(|c| c.state != checked.state) => {
                    tracing::warn!(address = %address, zone, state = %checked.state, detail = ?checked.meaning, "blocklist look-up gave no answer about the address");
                }
                _ => {}
            }
            match &looked {
                Looked::Answer(Answer::Listed { .. }, _) => {
                    crate::metrics::set_gateway_listed(&label_address, &label_zone, true)
                }
                Looked::Answer(Answer::NotListed, _) => {
                    crate::metrics::set_gateway_listed(&label_address, &label_zone, false)
                }
                _ => {}
            }
        }
        if let Some((l, listed)) = changed {
            self.listing_changed(l, listed).await;
        }
        if let Some(why) = refused {
            // The watch is blind on this list until the set-up is fixed:
            // the postmaster hears of it once a day per list.
            let cfg = self.cfg();
            let text = super::notices::blocklist_refused(&cfg, zone, &why);
            let day = now.format("%Y-%m-%d");
            self.notify(None, &format!("dnsbl-refused|{zone}|{day}"), text)
                .await;
        }
    }

    /// A listing began or ended: the record first (so a crash before the
    /// alarm re-alarms rather than forgets), then the postmaster and the
    /// webhooks.
    async fn listing_changed(&self, mut l: GatewayListing, listed: bool) {
        let saved = if listed {
            self.registry.record_listing(&l).await.map(|(rec, _)| rec)
        } else {
            let at = l.delisted_at.unwrap_or_else(Utc::now);
            self.registry.end_listing(l.address, &l.list, at).await
        };
        match saved {
            Ok(rec) => l = rec,
            Err(e) => tracing::error!(error = %e, "cannot record the gateway's listing"),
        }
        if listed {
            // The stored record (its id) is the one a later delisting ends.
            self.blocklists
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .open
                .insert((l.address, l.list.clone()), l.clone());
        }
        let cfg = self.cfg();
        if listed {
            tracing::warn!(address = %l.address, zone = %l.list, code = %l.code, meaning = %l.meaning, "gateway address listed on a blocklist");
        } else {
            tracing::info!(address = %l.address, zone = %l.list, "gateway address delisted from a blocklist");
        }
        let text = if listed {
            super::notices::blocklist_listed(&cfg, &l)
        } else {
            super::notices::blocklist_delisted(&cfg, &l)
        };
        let to = [cfg.server.postmaster.to_string()];
        match crate::notify::enqueue_notice(&self.queue, &self.registry, &cfg, &to, &text).await {
            Ok((id, number)) => {
                tracing::info!(queue_id = %id, number, notice = text.name, "blocklist alarm queued")
            }
            Err(e @ crate::notify::NotifyError::Deferred) => {
                tracing::info!(notice = text.name, "{e}")
            }
            Err(e) => tracing::error!(error = %e, "cannot queue the blocklist alarm"),
        }
        self.webhooks.send(
            &cfg.governor.webhooks,
            serde_json::json!({
                "event": if listed { "gateway_blocklisted" } else { "gateway_delisted" },
                "gateway": cfg.server.hostname.to_string(),
                "address": l.address,
                "zone": l.list,
                "code": l.code,
                "meaning": l.meaning,
                "listed_at": l.at,
                "delisted_at": l.delisted_at,
                "at": Utc::now(),
            }),
        );
    }
}

/// The watch's resolver: `delivery.nameservers` (or the system's), without
/// a cache (a round is a few queries every `interval`, and a list's answer
/// must not outlive its change).
fn resolver(nameservers: &[std::net::SocketAddr]) -> Result<TokioResolver, String> {
    let mut b = crate::dns::resolver_builder(nameservers)?;
    let o = b.options_mut();
    o.cache_size = 0;
    o.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
    // No search domains: the name is absolute.
    o.ndots = 0;
    b.build().map_err(|e| e.to_string())
}

/// Looks `address` up on `zone`: the A records, and the TXT reason when listed.
async fn look_up(resolver: &TokioResolver, address: IpAddr, zone: &str) -> Looked {
    let name = match Name::from_ascii(query_name(address, zone)) {
        Ok(n) => n,
        Err(e) => return Looked::Failed(format!("bad name: {e}")),
    };
    let a =
        tokio::time::timeout(LOOKUP_TIMEOUT, resolver.lookup(name.clone(), RecordType::A)).await;
    let codes: Vec<Ipv4Addr> = match a {
        Err(_) => return Looked::Failed("timed out".into()),
        Ok(Ok(l)) => l
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect(),
        Ok(Err(e)) if e.is_nx_domain() || e.is_no_records_found() => Vec::new(),
        Ok(Err(e)) => return Looked::Failed(e.to_string()),
    };
    let answer = interpret(zone, &codes);
    let reason = if matches!(answer, Answer::Listed { .. }) {
        match tokio::time::timeout(LOOKUP_TIMEOUT, resolver.lookup(name, RecordType::TXT)).await {
            Ok(Ok(l)) => {
                let t = crate::dns::txt_strings(l.answers()).join(" ");
                // A reason is for people: bounded, one line.
                let t: String = t
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .take(500)
                    .collect();
                (!t.is_empty()).then_some(t)
            }
            _ => None,
        }
    } else {
        None
    };
    Looked::Answer(answer, reason)
}
