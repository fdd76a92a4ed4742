//! Changes to a connected domain's data: what staff changed (a versioned
//! history per domain) and the agencies' change requests, decided like
//! applications within the working-day deadline.

use chrono::{DateTime, NaiveDate, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::applications::ApplicantCategory;
use super::domains::{Contact, DomainRecord};
use crate::domain::Domain;
use crate::values::HostPort;

/// The fields of a domain a change replaces; absent ones stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainChange {
    /// New mail-server addresses (the whole list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servers: Option<Vec<IpNet>>,
    /// New technical contacts (the whole list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<Contact>>,
    /// New owner organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// New applicant category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<ApplicantCategory>,
    /// New inbound next hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound: Option<HostPort>,
    /// New inbound servers with preferences (the whole list; empty: back
    /// to the one inbound route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_servers: Option<Vec<super::domains::InboundServer>>,
    /// Allow (or stop allowing) servers shared with other domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_servers: Option<bool>,
    /// Staff accept server ranges wider than the configured limit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_wide_range: bool,
    /// New languages of the domain's notices (empty: back to the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub languages: Option<Vec<super::language::Lang>>,
}

impl DomainChange {
    /// True when the change names no field.
    pub fn is_empty(&self) -> bool {
        self.servers.is_none()
            && self.contacts.is_none()
            && self.owner.is_none()
            && self.category.is_none()
            && self.inbound.is_none()
            && self.inbound_servers.is_none()
            && self.shared_servers.is_none()
            && self.languages.is_none()
    }
}

/// One field as it was and as it became.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The field's name (`servers`, `contacts`, ...).
    pub field: String,
    /// Its value before, as JSON.
    pub before: serde_json::Value,
    /// Its value after, as JSON.
    pub after: serde_json::Value,
}

/// A version of a domain's data that a change replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainVersion {
    /// The domain.
    pub domain: Domain,
    /// 1 for the first replaced version; the store assigns it.
    pub version: u64,
    /// The record as it was before the change.
    pub record: DomainRecord,
    /// When it was replaced.
    pub replaced_at: DateTime<Utc>,
    /// Who replaced it (token name).
    pub by: String,
    /// Why.
    pub reason: String,
    /// What changed.
    pub changes: Vec<FieldChange>,
    /// The change request that asked for it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_request: Option<u64>,
}

/// Where a change request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeStatus {
    /// Awaiting a decision.
    Pending,
    /// Applied to the domain.
    Approved,
    /// Refused, with reasons.
    Rejected,
}

impl std::fmt::Display for ChangeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChangeStatus::Pending => "pending",
            ChangeStatus::Approved => "approved",
            ChangeStatus::Rejected => "rejected",
        })
    }
}

/// An agency's request to change its connected domain's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRequest {
    /// Assigned by the store.
    pub id: u64,
    /// The domain.
    pub domain: Domain,
    /// What it asks to change.
    pub change: DomainChange,
    /// Why the agency asks.
    pub reason: String,
    /// Date of receipt (local).
    pub received_on: NaiveDate,
    /// The decision is due by this date (working days after receipt).
    pub decision_due: NaiveDate,
    /// pending | approved | rejected.
    pub status: ChangeStatus,
    /// Who recorded it (token name).
    pub submitted_by: String,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// Who decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    /// The reasons of a rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_reason: Option<String>,
}
