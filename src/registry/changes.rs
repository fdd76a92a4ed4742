//! Changing a connected domain's data without disconnecting it: staff
//! updates (each replaced version kept, what changed named field by field)
//! and the agencies' change requests, decided within the same working-day
//! deadline as applications.

use std::sync::Arc;

use chrono::NaiveDate;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::applications::{Clock, SystemClock};
use super::{NewDomain, RangeLimits, Registry, RegistryError, check_server_ranges, check_text};
use crate::calendar::Calendar;
use crate::config::RegistrationSection;
use crate::domain::Domain;
use crate::model::applications::ApplicantCategory;
use crate::model::changes::{
    ChangeRequest, ChangeStatus, DomainChange, DomainVersion, FieldChange,
};
use crate::model::domains::{Contact, DomainRecord, DomainStatus};
use crate::store::{DomainWrite, Expect, StoreError};
use crate::values::HostPort;

/// A change as staff or the API give it: servers as IPs or CIDRs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeInput {
    /// New mail-server IPs or CIDRs (the whole list).
    #[serde(default, deserialize_with = "opt_servers_de")]
    pub servers: Option<Vec<IpNet>>,
    /// New technical contacts (the whole list).
    #[serde(default)]
    pub contacts: Option<Vec<Contact>>,
    /// New owner organization.
    #[serde(default)]
    pub owner: Option<String>,
    /// New applicant category.
    #[serde(default)]
    pub category: Option<ApplicantCategory>,
    /// New inbound next hop.
    #[serde(default)]
    pub inbound: Option<HostPort>,
    /// New inbound servers with preferences (the whole list).
    #[serde(default)]
    pub inbound_servers: Option<Vec<crate::model::domains::InboundServer>>,
    /// Allow (true) or stop allowing (false) shared server ranges.
    #[serde(default)]
    pub shared_servers: Option<bool>,
    /// Accept server ranges wider than the configured limit.
    #[serde(default)]
    pub allow_wide_range: bool,
    /// Why (kept with the version, sent to the contacts). Required.
    #[serde(default)]
    pub reason: String,
    /// For a change request: its date of receipt (default today).
    #[serde(default)]
    pub received_on: Option<NaiveDate>,
}

impl ChangeInput {
    /// The fields to change.
    pub fn change(&self) -> DomainChange {
        DomainChange {
            servers: self.servers.clone(),
            contacts: self.contacts.clone(),
            owner: self.owner.as_ref().map(|o| o.trim().to_string()),
            category: self.category,
            inbound: self.inbound.clone(),
            inbound_servers: self.inbound_servers.clone(),
            shared_servers: self.shared_servers,
            allow_wide_range: self.allow_wide_range,
        }
    }
}

fn opt_servers_de<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<IpNet>>, D::Error> {
    let v: Option<Vec<String>> = Deserialize::deserialize(d)?;
    v.map(|v| {
        v.iter()
            .map(|s| super::parse_server(s).map_err(serde::de::Error::custom))
            .collect()
    })
    .transpose()
}

/// What an update did.
#[derive(Debug, Clone, Serialize)]
pub struct Updated {
    /// The record before.
    pub before: DomainRecord,
    /// The record now.
    pub after: DomainRecord,
    /// The number the replaced version is kept under.
    pub version: u64,
    /// What changed.
    pub changes: Vec<FieldChange>,
}

/// `cur` with `ch` applied, and the fields that differ.
pub fn apply(cur: &DomainRecord, ch: &DomainChange) -> (DomainRecord, Vec<FieldChange>) {
    let mut next = cur.clone();
    let mut changes = Vec::new();
    fn note<T: Serialize + PartialEq + Clone>(
        changes: &mut Vec<FieldChange>,
        field: &str,
        slot: &mut T,
        new: Option<T>,
    ) {
        if let Some(new) = new
            && *slot != new
        {
            changes.push(FieldChange {
                field: field.into(),
                before: serde_json::to_value(&*slot).unwrap_or_default(),
                after: serde_json::to_value(&new).unwrap_or_default(),
            });
            *slot = new;
        }
    }
    let servers = ch
        .servers
        .as_ref()
        .map(|s| s.iter().map(|n| n.trunc()).collect::<Vec<_>>());
    note(&mut changes, "servers", &mut next.servers, servers);
    note(
        &mut changes,
        "contacts",
        &mut next.contacts,
        ch.contacts.clone(),
    );
    note(&mut changes, "owner", &mut next.owner, ch.owner.clone());
    note(
        &mut changes,
        "category",
        &mut next.category,
        ch.category.map(Some),
    );
    note(
        &mut changes,
        "inbound",
        &mut next.inbound,
        ch.inbound.clone().map(Some),
    );
    note(
        &mut changes,
        "inbound_servers",
        &mut next.inbound_servers,
        ch.inbound_servers.clone(),
    );
    note(
        &mut changes,
        "shared_servers",
        &mut next.shared_servers,
        ch.shared_servers,
    );
    (next, changes)
}

impl Registry {
    /// Checks `ch` against the domain as it is now, without writing: the
    /// same rules as registration (servers, contacts, ranges, overlaps).
    pub fn check_change(
        &self,
        cur: &DomainRecord,
        ch: &DomainChange,
        limits: RangeLimits,
    ) -> Result<(DomainRecord, Vec<FieldChange>), RegistryError> {
        if cur.status == DomainStatus::Disconnected {
            return Err(RegistryError::State(format!(
                "domain {} is disconnected; reconnecting takes a new application",
                cur.name
            )));
        }
        if ch.is_empty() {
            return Err(RegistryError::Invalid(
                "nothing to change: give at least one of servers, contacts, owner, category, inbound, inbound_servers, shared_servers".into(),
            ));
        }
        let (next, changes) = apply(cur, ch);
        if changes.is_empty() {
            return Err(RegistryError::Invalid(format!(
                "domain {} already has these values; nothing changes",
                cur.name
            )));
        }
        if next.inbound_servers.len() > 10 {
            return Err(RegistryError::Invalid(
                "at most 10 inbound servers per domain".into(),
            ));
        }
        if let Some(s) = next.inbound_servers.iter().find(|s| s.next_hop.port == 0) {
            return Err(RegistryError::Invalid(format!(
                "inbound server {}: port 0 is not a port",
                s.next_hop
            )));
        }
        if ch.servers.is_some() || ch.inbound.is_some() {
            check_server_ranges(
                &next.servers,
                next.inbound.as_ref(),
                ch.allow_wide_range,
                limits,
            )
            .map_err(RegistryError::Invalid)?;
        }
        self.check_new_domain(&NewDomain {
            name: next.name.clone(),
            owner: next.owner.clone(),
            servers: next.servers.clone(),
            contacts: next.contacts.clone(),
            inbound: next.inbound.clone(),
            shared_servers: next.shared_servers,
        })?;
        Ok((next, changes))
    }

    /// Changes a connected or suspended domain's data; the replaced record
    /// is kept as a version (with `by`, `reason` and what changed) in the
    /// same store write.
    pub async fn update_domain(
        &self,
        name: &Domain,
        ch: &DomainChange,
        by: &str,
        reason: &str,
        limits: RangeLimits,
        change_request: Option<u64>,
    ) -> Result<Updated, RegistryError> {
        check_reason(reason)?;
        let _g = self.lock().await;
        let mut tries = 0;
        let out = loop {
            let cur = self.stored(name).await?;
            let (mut next, changes) = self.check_change(&cur, ch, limits)?;
            let expect = Expect::unchanged(&cur);
            next.updated_at = super::later_than(chrono::Utc::now(), expect);
            let previous = DomainVersion {
                domain: cur.name.clone(),
                version: 0,
                record: cur.clone(),
                replaced_at: next.updated_at,
                by: by.to_string(),
                reason: reason.trim().to_string(),
                changes: changes.clone(),
                change_request,
            };
            let w = DomainWrite {
                record: next,
                expect,
            };
            match self.store.put_domain_versioned(&w, &previous).await {
                Err(StoreError::Conflict(_)) if tries < super::RETRIES => tries += 1,
                Err(e) => return Err(e.into()),
                Ok(version) => {
                    break Updated {
                        before: cur,
                        after: w.record,
                        version,
                        changes,
                    };
                }
            }
        };
        self.reload().await?;
        Ok(out)
    }

    /// Every replaced version of a domain, oldest first.
    pub async fn domain_history(&self, name: &Domain) -> Result<Vec<DomainVersion>, RegistryError> {
        Ok(self.store.list_domain_versions(name).await?)
    }
}

fn check_reason(reason: &str) -> Result<(), RegistryError> {
    if reason.trim().is_empty() {
        return Err(RegistryError::Invalid("a reason is required".into()));
    }
    check_text("reason", reason, 1000)
}

/// A change request with what follows from today's date.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeRequestView {
    /// The stored record.
    #[serde(flatten)]
    pub request: ChangeRequest,
    /// Pending past its decision date.
    pub overdue: bool,
    /// For pending ones: working days left until the due date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_days_left: Option<i64>,
}

/// The change-request workflow: recorded on receipt, decided within
/// `[registration] decision_days` working days; approval applies the change.
pub struct ChangeRequests {
    registry: Arc<Registry>,
    calendar: Calendar,
    decision_days: u32,
    ranges: RangeLimits,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ChangeRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeRequests")
            .field("decision_days", &self.decision_days)
            .finish_non_exhaustive()
    }
}

/// A store error, with a lost race said as a state conflict.
fn conflict(e: StoreError) -> RegistryError {
    match e {
        StoreError::Conflict(m) => RegistryError::State(m),
        e => RegistryError::Store(e),
    }
}

impl ChangeRequests {
    /// The workflow with the configured calendar and the system clock.
    pub fn from_config(registry: Arc<Registry>, cfg: &RegistrationSection) -> ChangeRequests {
        Self::with_clock(
            registry,
            cfg,
            Arc::new(SystemClock {
                offset: cfg.utc_offset.0,
            }),
        )
    }

    /// The workflow with another clock (tests).
    pub fn with_clock(
        registry: Arc<Registry>,
        cfg: &RegistrationSection,
        clock: Arc<dyn Clock>,
    ) -> ChangeRequests {
        ChangeRequests {
            registry,
            calendar: cfg.calendar(),
            decision_days: cfg.decision_days,
            ranges: RangeLimits::from(cfg),
            clock,
        }
    }

    /// Adds what follows from today's date to a record.
    pub fn view(&self, request: ChangeRequest) -> ChangeRequestView {
        let today = self.clock.today();
        let pending = request.status == ChangeStatus::Pending;
        let overdue = pending && today > request.decision_due;
        let working_days_left = pending.then(|| {
            let n = self
                .calendar
                .working_days_between(today, request.decision_due);
            if overdue { n.min(-1) } else { n }
        });
        ChangeRequestView {
            request,
            overdue,
            working_days_left,
        }
    }

    /// Records a received change request after checking it against the
    /// domain as it is now.
    pub async fn submit(
        &self,
        domain: &Domain,
        input: &ChangeInput,
        actor: &str,
    ) -> Result<ChangeRequestView, RegistryError> {
        check_reason(&input.reason)?;
        let change = input.change();
        let cur = self
            .registry
            .get(domain)
            .ok_or_else(|| RegistryError::NotFound(format!("domain {domain}")))?;
        self.registry.check_change(&cur, &change, self.ranges)?;
        let today = self.clock.today();
        let received_on = input.received_on.unwrap_or(today);
        if received_on > today {
            return Err(RegistryError::Invalid(format!(
                "received_on {received_on} is in the future (today is {today})"
            )));
        }
        let rec = ChangeRequest {
            id: 0,
            domain: domain.clone(),
            change,
            reason: input.reason.trim().to_string(),
            received_on,
            decision_due: self
                .calendar
                .add_working_days(received_on, self.decision_days),
            status: ChangeStatus::Pending,
            submitted_by: actor.to_string(),
            created_at: self.clock.now(),
            decided_by: None,
            decided_at: None,
            decision_reason: None,
        };
        let rec = self
            .registry
            .store
            .insert_change_request(&rec)
            .await
            .map_err(conflict)?;
        Ok(self.view(rec))
    }

    /// Change requests, oldest first, optionally of one status and domain.
    pub async fn list(
        &self,
        status: Option<ChangeStatus>,
        domain: Option<&Domain>,
    ) -> Result<Vec<ChangeRequestView>, RegistryError> {
        let mut all = self.registry.store.list_change_requests().await?;
        all.retain(|r| {
            status.is_none_or(|s| r.status == s) && domain.is_none_or(|d| &r.domain == d)
        });
        Ok(all.into_iter().map(|r| self.view(r)).collect())
    }

    async fn pending(&self, id: u64) -> Result<ChangeRequest, RegistryError> {
        let rec = self
            .registry
            .store
            .get_change_request(id)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("change request #{id}")))?;
        if rec.status != ChangeStatus::Pending {
            return Err(RegistryError::State(format!(
                "change request #{id} is {}, not pending",
                rec.status
            )));
        }
        Ok(rec)
    }

    /// One change request.
    pub async fn get(&self, id: u64) -> Result<ChangeRequestView, RegistryError> {
        let rec = self
            .registry
            .store
            .get_change_request(id)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("change request #{id}")))?;
        Ok(self.view(rec))
    }

    /// Approves a pending request: the change is applied to the domain (the
    /// checks made again, `allow_wide_range` added to the request's own),
    /// then the decision is recorded.
    pub async fn approve(
        &self,
        id: u64,
        actor: &str,
        allow_wide_range: bool,
    ) -> Result<(ChangeRequestView, Updated), RegistryError> {
        let mut rec = self.pending(id).await?;
        let mut change = rec.change.clone();
        change.allow_wide_range |= allow_wide_range;
        let reason = format!("change request #{id}: {}", rec.reason);
        let updated = self
            .registry
            .update_domain(&rec.domain, &change, actor, &reason, self.ranges, Some(id))
            .await?;
        rec.status = ChangeStatus::Approved;
        rec.decided_by = Some(actor.to_string());
        rec.decided_at = Some(self.clock.now());
        self.registry
            .store
            .update_change_request(&rec, ChangeStatus::Pending)
            .await
            .map_err(conflict)?;
        Ok((self.view(rec), updated))
    }

    /// Rejects a pending request with reasons.
    pub async fn reject(
        &self,
        id: u64,
        actor: &str,
        reason: &str,
    ) -> Result<ChangeRequestView, RegistryError> {
        check_reason(reason)?;
        let mut rec = self.pending(id).await?;
        rec.status = ChangeStatus::Rejected;
        rec.decided_by = Some(actor.to_string());
        rec.decided_at = Some(self.clock.now());
        rec.decision_reason = Some(reason.trim().to_string());
        self.registry
            .store
            .update_change_request(&rec, ChangeStatus::Pending)
            .await
            .map_err(conflict)?;
        Ok(self.view(rec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::domains::Contact;

    fn rec() -> DomainRecord {
        crate::store::contract::domain("agency.example.kz")
    }

    #[test]
    fn apply_names_only_the_fields_that_differ() {
        let cur = rec();
        let ch = DomainChange {
            owner: Some(cur.owner.clone()),
            servers: Some(vec!["192.0.2.20/32".parse().unwrap()]),
            category: Some(ApplicantCategory::QuasiPublic),
            ..Default::default()
        };
        let (next, changes) = apply(&cur, &ch);
        let fields: Vec<_> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["servers", "category"]);
        assert_eq!(changes[0].before, serde_json::json!(["192.0.2.10/32"]));
        assert_eq!(changes[0].after, serde_json::json!(["192.0.2.20/32"]));
        assert_eq!(next.owner, cur.owner);
        assert_eq!(next.category, Some(ApplicantCategory::QuasiPublic));
        let contacts = vec![Contact {
            name: "New Person".into(),
            email: "new@agency.example.kz".into(),
            office_phone: None,
            mobile_phone: Some("+7 701 111 1111".parse().unwrap()),
        }];
        let (_, c) = apply(
            &cur,
            &DomainChange {
                contacts: Some(contacts),
                ..Default::default()
            },
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].before[0]["email"], "it@agency.example.kz");
    }
}
