//! Servers the registry does not know (the sister gateway's rule 13): the
//! SMTP path notes each refusal of a client that is not a registered server
//! of the domain it claims in a bounded in-memory buffer (a mutex and a
//! map entry, no store write); the housekeeping tick flushes it to the
//! store in one batch. Staff may let one such address relay for a while.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};

use super::{Registry, RegistryError, check_text};
use crate::domain::Domain;
use crate::model::domains::{DomainRecord, DomainStatus};
use crate::model::sightings::{ServerAllowance, UnregisteredServer};

/// Most (domain, address) pairs held between flushes: a flood of spoofed
/// sources cannot grow memory; the overflow is counted, not kept.
pub const BUFFER_MAX: usize = 4096;

/// Sightings not yet written, by (domain, address).
#[derive(Debug, Default)]
pub struct SightingBuffer {
    pending: Mutex<HashMap<(Domain, IpAddr), UnregisteredServer>>,
    dropped: AtomicU64,
}

impl SightingBuffer {
    /// Notes one refusal; cheap (no I/O).
    pub fn note(&self, domain: &Domain, address: IpAddr, sample: &str) {
        let now = Utc::now();
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = p.get_mut(&(domain.clone(), address)) {
            s.count += 1;
            s.last_seen = now;
            s.sample.clear();
            s.sample.push_str(sample);
            return;
        }
        if p.len() >= BUFFER_MAX {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        p.insert(
            (domain.clone(), address),
            UnregisteredServer {
                domain: domain.clone(),
                address,
                first_seen: now,
                last_seen: now,
                count: 1,
                sample: sample.chars().take(300).collect(),
            },
        );
    }

    /// Takes everything noted so far.
    fn take(&self) -> Vec<UnregisteredServer> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *p).into_values().collect()
    }

    /// Puts back a batch the store did not take (as room allows).
    fn put_back(&self, batch: Vec<UnregisteredServer>) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for s in batch {
            let key = (s.domain.clone(), s.address);
            if let Some(cur) = p.get_mut(&key) {
                cur.count += s.count;
                cur.first_seen = cur.first_seen.min(s.first_seen);
            } else if p.len() < BUFFER_MAX {
                p.insert(key, s);
            }
        }
    }

    /// Sightings dropped because the buffer was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Registry {
    /// Notes that `address`, not a server of `domain`, was refused sending
    /// as it (the SMTP path; no store write).
    pub fn note_unregistered(&self, domain: &Domain, address: IpAddr, sample: &str) {
        self.sightings.note(domain, address, sample);
    }

    /// Writes the noted sightings in one batch; returns the addresses seen
    /// for the first time (to be notified once).
    pub async fn flush_unregistered(&self) -> Result<Vec<UnregisteredServer>, RegistryError> {
        let batch = self.sightings.take();
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        match self.store.record_unregistered(&batch).await {
            Ok(new) => Ok(new),
            Err(e) => {
                self.sightings.put_back(batch);
                Err(e.into())
            }
        }
    }

    /// Every unregistered address seen sending as `domain`.
    pub async fn unregistered(
        &self,
        domain: &Domain,
    ) -> Result<Vec<UnregisteredServer>, RegistryError> {
        Ok(self.store.list_unregistered(domain).await?)
    }

    /// Lets `address` relay as the domain until `until` (replacing an
    /// earlier allowance of that address). Staff only: never automatic.
    pub async fn allow_server(
        &self,
        name: &Domain,
        address: IpAddr,
        until: DateTime<Utc>,
        reason: &str,
        by: &str,
    ) -> Result<DomainRecord, RegistryError> {
        if reason.trim().is_empty() {
            return Err(RegistryError::Invalid("a reason is required".into()));
        }
        check_text("reason", reason, 1000)?;
        let now = Utc::now();
        if until <= now {
            return Err(RegistryError::Invalid(format!(
                "the allowance would end at {until}, which has passed"
            )));
        }
        // IPv4-mapped IPv6 (dual-stack sockets) compares as IPv4, as in the policy.
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(address),
            v4 => v4,
        };
        let _g = self.lock().await;
        let rec = self
            .modify_domain(name, |mut rec| {
                if rec.status == DomainStatus::Disconnected {
                    return Err(RegistryError::State(format!(
                        "domain {name} is disconnected"
                    )));
                }
                if rec.servers.iter().any(|n| n.contains(&address)) {
                    return Err(RegistryError::Invalid(format!(
                        "{address} is a registered server of {name} already"
                    )));
                }
                // Expired allowances go; one per address.
                rec.allowed_servers
                    .retain(|a| a.until > now && a.address != address);
                rec.allowed_servers.push(ServerAllowance {
                    address,
                    until,
                    reason: reason.trim().to_string(),
                    by: by.to_string(),
                    at: now,
                });
                rec.updated_at = now;
                Ok(rec)
            })
            .await?;
        self.reload().await?;
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_merges_per_address_and_is_bounded() {
        let b = SightingBuffer::default();
        let d = Domain::parse("agency.example.kz").unwrap();
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        b.note(&d, ip, "first");
        b.note(&d, ip, "second");
        for i in 0..BUFFER_MAX as u32 + 10 {
            b.note(&d, IpAddr::from(std::net::Ipv4Addr::from(i)), "x");
        }
        assert_eq!(b.dropped(), 11);
        let all = b.take();
        assert_eq!(all.len(), BUFFER_MAX);
        let s = all.iter().find(|s| s.address == ip).unwrap();
        assert_eq!((s.count, s.sample.as_str()), (2, "second"));
        assert!(b.take().is_empty());
    }
}
