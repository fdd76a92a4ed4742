//! The store outbox: the registry writes this node decided on its own (an
//! automatic suspension, an audit record of it, a notice claim, a gateway
//! listing, a notice waiting for its number) while the shared store
//! (PostgreSQL) could not be reached. Each waits here, durably and in the
//! order it was made, until the registry replays it (`registry::outbox`).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use super::LocalStore;
use crate::model::audit::{AuditRecord, RefusedUpdate};
use crate::model::listings::GatewayListing;
use crate::model::suspensions::{Restoration, Scope, SuspensionRecord};
use crate::store::StoreError;
use crate::store::db::{decode, encode, next_u64_key};

pub(crate) const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("store_outbox");

/// Ids of records started while the shared store was down are this plus
/// the outbox entry's number until the store assigns the real one: far
/// above any id a store hands out, and still exact in JSON (below 2^53).
pub const PROVISIONAL_BASE: u64 = 1 << 48;

/// The provisional id of the record started by outbox entry `seq`.
pub fn provisional_id(seq: u64) -> u64 {
    PROVISIONAL_BASE + seq
}

/// True for an id given while the shared store was down.
pub fn is_provisional(id: u64) -> bool {
    id >= PROVISIONAL_BASE
}

/// One registry write waiting for the shared store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "write", rename_all = "snake_case")]
pub enum PendingWrite {
    /// An automatic suspension (its id is provisional: see [`provisional_id`]).
    StartSuspension {
        /// The record as decided.
        rec: SuspensionRecord,
    },
    /// The automatic end of a suspension (an expiry).
    EndSuspension {
        /// Whose suspension.
        scope: Scope,
        /// How it ended.
        how: Restoration,
    },
    /// A disconnection agreed for a date that came while the store was down.
    Disconnect {
        /// The domain.
        domain: crate::domain::Domain,
        /// Why (the agreed date and staff's reason).
        reason: String,
        /// When it took effect on this node.
        at: DateTime<Utc>,
    },
    /// An audit record of the gateway's own decision.
    Audit {
        /// The record.
        rec: AuditRecord,
    },
    /// A record of refused admin calls (its number is provisional until
    /// written, like a suspension's id).
    Refused {
        /// The record.
        rec: AuditRecord,
    },
    /// Final counts of refused-call records, some named by a provisional
    /// number.
    RefusedCounts {
        /// The counts.
        updates: Vec<RefusedUpdate>,
    },
    /// A notice claimed while the store was down (so that other nodes do
    /// not send it again once they can see the claim).
    Claim {
        /// The notice's key.
        key: String,
        /// When.
        at_ms: u64,
    },
    /// A listing of a gateway address seen.
    Listing {
        /// The listing.
        rec: GatewayListing,
    },
    /// A listing that ended.
    EndListing {
        /// The gateway address.
        address: IpAddr,
        /// The list.
        list: String,
        /// When it was seen delisted.
        at: DateTime<Utc>,
    },
    /// A notice waiting for its outgoing number (the notifier's own form).
    Notice {
        /// The notice, as the notifier wrote it.
        notice: serde_json::Value,
    },
}

impl PendingWrite {
    /// A short name for logs and status.
    pub fn kind(&self) -> &'static str {
        match self {
            PendingWrite::StartSuspension { .. } => "start_suspension",
            PendingWrite::EndSuspension { .. } => "end_suspension",
            PendingWrite::Disconnect { .. } => "disconnect",
            PendingWrite::Audit { .. } => "audit",
            PendingWrite::Refused { .. } => "refused",
            PendingWrite::RefusedCounts { .. } => "refused_counts",
            PendingWrite::Claim { .. } => "claim",
            PendingWrite::Listing { .. } => "listing",
            PendingWrite::EndListing { .. } => "end_listing",
            PendingWrite::Notice { .. } => "notice",
        }
    }

    /// Replaces the provisional suspension id `from` by `to` where this
    /// write names it (an audit record's before and after states).
    fn remap(&mut self, from: u64, to: u64) -> bool {
        if let PendingWrite::RefusedCounts { updates } = self {
            let mut changed = false;
            for u in updates.iter_mut().filter(|u| u.seq == from) {
                u.seq = to;
                changed = true;
            }
            return changed;
        }
        let PendingWrite::Audit { rec } = self else {
            return false;
        };
        let mut changed = false;
        for v in [rec.before.as_mut(), rec.after.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Some(s) = v.get_mut("suspension")
                && s.as_u64() == Some(from)
            {
                *s = to.into();
                changed = true;
            }
        }
        changed
    }
}

impl LocalStore {
    /// Appends a write durably; returns its number (they only grow while
    /// the outbox holds anything).
    pub fn push_pending(&self, w: &PendingWrite) -> Result<u64, StoreError> {
        self.db.write(|tx| {
            let mut t = tx.open_table(TABLE)?;
            let seq = next_u64_key(&t)?;
            t.insert(seq, encode(w).as_slice())?;
            Ok(seq)
        })
    }

    /// Every waiting write, oldest first.
    pub fn pending_writes(&self) -> Result<Vec<(u64, PendingWrite)>, StoreError> {
        self.db.read(|tx| {
            let t = tx.open_table(TABLE)?;
            let mut out = Vec::new();
            for row in t.iter()? {
                let (k, v) = row?;
                out.push((k.value(), decode("store_outbox", k.value(), v.value())?));
            }
            Ok(out)
        })
    }

    /// Stores raw bytes as the next write (tests: an entry another build wrote).
    #[cfg(test)]
    pub(crate) fn push_pending_raw(&self, bytes: &[u8]) -> Result<u64, StoreError> {
        self.db.write(|tx| {
            let mut t = tx.open_table(TABLE)?;
            let seq = next_u64_key(&t)?;
            t.insert(seq, bytes)?;
            Ok(seq)
        })
    }

    /// The oldest waiting write, with its number even when it cannot be
    /// decoded (so that the caller can set it aside rather than stall).
    #[allow(clippy::type_complexity)]
    pub fn first_pending(
        &self,
    ) -> Result<Option<(u64, Result<PendingWrite, StoreError>)>, StoreError> {
        self.db.read(|tx| {
            let t = tx.open_table(TABLE)?;
            match t.first()? {
                Some((k, v)) => Ok(Some((
                    k.value(),
                    decode("store_outbox", k.value(), v.value()),
                ))),
                None => Ok(None),
            }
        })
    }

    /// How many writes wait.
    pub fn pending_count(&self) -> Result<u64, StoreError> {
        self.db.read(|tx| Ok(tx.open_table(TABLE)?.len()?))
    }

    /// Removes write `seq` (done) and, with `remap`, replaces the
    /// provisional id it gave by the store's in the writes after it, in the
    /// same transaction: a crash between the two cannot leave a dangling id.
    pub fn finish_pending(&self, seq: u64, remap: Option<(u64, u64)>) -> Result<(), StoreError> {
        self.db.write(|tx| {
            let mut t = tx.open_table(TABLE)?;
            t.remove(seq)?;
            let Some((from, to)) = remap else {
                return Ok(());
            };
            let mut changed = Vec::new();
            for row in t.range(seq..)? {
                let (k, v) = row?;
                let mut w: PendingWrite = decode("store_outbox", k.value(), v.value())?;
                if w.remap(from, to) {
                    changed.push((k.value(), w));
                }
            }
            for (k, w) in changed {
                t.insert(k, encode(&w).as_slice())?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit(suspension: u64) -> PendingWrite {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut rec = AuditRecord::auto(at, "sender.suspend", "a@b.kz", "flood");
        rec.after = Some(serde_json::json!({"status": "suspended", "suspension": suspension}));
        PendingWrite::Audit { rec }
    }

    #[test]
    fn writes_survive_reopen_in_order_and_ids_are_remapped_on_finish() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (local, _) = crate::store::open(dir.path()).unwrap();
            let claim = PendingWrite::Claim {
                key: "warn|x".into(),
                at_ms: 1,
            };
            assert_eq!(local.push_pending(&claim).unwrap(), 1);
            assert_eq!(local.push_pending(&audit(provisional_id(1))).unwrap(), 2);
            assert_eq!(local.push_pending(&audit(7)).unwrap(), 3);
        }
        let (local, _) = crate::store::open(dir.path()).unwrap();
        let all = local.pending_writes().unwrap();
        assert_eq!(
            all.iter().map(|(s, w)| (*s, w.kind())).collect::<Vec<_>>(),
            [(1, "claim"), (2, "audit"), (3, "audit")]
        );
        local
            .finish_pending(1, Some((provisional_id(1), 42)))
            .unwrap();
        let all = local.pending_writes().unwrap();
        assert_eq!(local.pending_count().unwrap(), 2);
        assert_eq!(all[0].1, audit(42));
        // Another id is left alone.
        assert_eq!(all[1].1, audit(7));
        local.finish_pending(2, None).unwrap();
        local.finish_pending(3, None).unwrap();
        assert_eq!(local.pending_count().unwrap(), 0);
    }

    #[test]
    fn provisional_ids_are_far_above_store_ids_and_exact_in_json() {
        assert!(is_provisional(provisional_id(1)));
        assert!(!is_provisional(1_000_000_000));
        let v: serde_json::Value = serde_json::json!(provisional_id(5));
        assert_eq!(v.as_f64().unwrap() as u64, provisional_id(5));
    }
}
