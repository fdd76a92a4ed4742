//! Applications to connect a mail system: what was asked, by whom, and what
//! the operator decided.

use chrono::{DateTime, NaiveDate, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::domains::Contact;
use crate::domain::Domain;
use crate::values::HostPort;

pub use super::category::ApplicantCategory;

/// Where an application stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplicationStatus {
    /// Waiting for the operator's decision.
    Pending,
    /// The domain was connected.
    Approved,
    /// Refused with reasons; the applicant may apply again after the lock.
    Rejected,
    /// Taken back before a decision.
    Withdrawn,
}

impl ApplicationStatus {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicationStatus::Pending => "pending",
            ApplicationStatus::Approved => "approved",
            ApplicationStatus::Rejected => "rejected",
            ApplicationStatus::Withdrawn => "withdrawn",
        }
    }
}

impl std::fmt::Display for ApplicationStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ApplicationStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pending" => Ok(ApplicationStatus::Pending),
            "approved" => Ok(ApplicationStatus::Approved),
            "rejected" => Ok(ApplicationStatus::Rejected),
            "withdrawn" => Ok(ApplicationStatus::Withdrawn),
            _ => Err(format!(
                "`{s}` is not an application status (pending, approved, rejected, withdrawn)"
            )),
        }
    }
}

/// How an application reached the operator (the rules admit two ways).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Through the support portal (a ticket).
    Portal,
    /// As an official letter (its registration reference).
    Letter,
}

impl Channel {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Portal => "portal",
            Channel::Letter => "letter",
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "portal" => Ok(Channel::Portal),
            "letter" => Ok(Channel::Letter),
            _ => Err(format!("`{s}` is not a channel (portal, letter)")),
        }
    }
}

/// What the application form itself says, as the rules' form has it
/// (distinct from the operator's date of receipt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationForm {
    /// The application's number, as on the form.
    pub number: String,
    /// The application's date, as on the form.
    pub dated: NaiveDate,
    /// portal | letter.
    pub channel: Channel,
    /// The portal's ticket or the letter's registration reference.
    pub reference: String,
    /// The attached document (e.g. the scanned signed form's id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
}

/// One application and its decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationRecord {
    /// Identifier (assigned by the store).
    #[serde(default)]
    pub id: u64,
    /// The e-mail domain to connect.
    pub domain: Domain,
    /// The organization that owns the domain.
    pub owner: String,
    /// The applicant's category.
    pub category: ApplicantCategory,
    /// The head of the organization, who signed the application.
    pub head: String,
    /// The mail servers' addresses.
    pub servers: Vec<IpNet>,
    /// Technical contacts (notified of the decision).
    pub contacts: Vec<Contact>,
    /// Where inbound mail should go; default the first server, port 25.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound: Option<HostPort>,
    /// The date the operator received the application (local date).
    pub received_on: NaiveDate,
    /// The last day on which the decision is in time.
    pub decision_due: NaiveDate,
    /// pending | approved | rejected | withdrawn.
    pub status: ApplicationStatus,
    /// The local date of the decision (the resubmission lock counts from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_on: Option<NaiveDate>,
    /// When the decision was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    /// Who decided (token name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// Why it was rejected (or withdrawn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who entered it (token name).
    pub submitted_by: String,
    /// When it was entered.
    pub created_at: DateTime<Utc>,
    /// The last day the postmaster was alerted about its deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerted_on: Option<NaiveDate>,
    /// Staff accepted server ranges wider than the configured limit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_wide_range: bool,
    /// The form's own number, date, channel and document (records made
    /// before they were recorded have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<ApplicationForm>,
    /// The languages of the applicant's notices, in order (empty: the
    /// default); the domain keeps them when it is connected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub languages: Vec<super::language::Lang>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_without_the_form_stay_readable() {
        let old = r#"{"id":3,"domain":"a.example.kz","owner":"A","category":"state_body",
            "head":"H","servers":["192.0.2.10/32"],"contacts":[{"name":"N","email":"it@a.example.kz",
            "office_phone":"+7 7172 000000"}],"received_on":"2026-03-02","decision_due":"2026-03-10",
            "status":"pending","submitted_by":"admin","created_at":"2026-03-02T10:00:00Z"}"#;
        let rec: ApplicationRecord = serde_json::from_str(old).unwrap();
        assert_eq!(rec.form, None);
        assert_eq!(
            rec.contacts[0].office_phone.as_ref().unwrap().as_str(),
            "+77172000000"
        );
        assert_eq!("Letter".parse::<Channel>(), Ok(Channel::Letter));
        assert!("fax".parse::<Channel>().is_err());
    }

    #[test]
    fn categories_parse_in_both_spellings() {
        assert_eq!(
            "critical-infrastructure".parse::<ApplicantCategory>(),
            Ok(ApplicantCategory::CriticalInfrastructure)
        );
        assert_eq!(
            "Quasi_Public".parse::<ApplicantCategory>(),
            Ok(ApplicantCategory::QuasiPublic)
        );
        let err = "ngo".parse::<ApplicantCategory>().unwrap_err();
        assert!(err.contains("state_body, local_government"), "{err}");
        for c in ApplicantCategory::ALL {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{c}\""));
        }
    }
}
