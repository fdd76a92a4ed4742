//! Registered domains: who may relay, from where, and who to call.

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::phone::Phone;
use crate::domain::Domain;
use crate::values::HostPort;

/// A technical contact of a registered domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Full name.
    pub name: String,
    /// E-mail address (alerts go here).
    pub email: String,
    /// Office phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office_phone: Option<Phone>,
    /// Mobile phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile_phone: Option<Phone>,
}

/// Where a domain stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DomainStatus {
    /// Mail flows.
    Connected,
    /// Temporarily refused (451 4.7.1); queued outbound mail is held.
    Suspended,
    /// Refused like an unregistered domain; reconnecting takes a new application.
    Disconnected,
}

impl std::fmt::Display for DomainStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DomainStatus::Connected => "connected",
            DomainStatus::Suspended => "suspended",
            DomainStatus::Disconnected => "disconnected",
        })
    }
}

/// A registered domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRecord {
    /// The domain, lowercased A-label.
    pub name: Domain,
    /// The organization that owns it.
    pub owner: String,
    /// Mail-server addresses allowed to relay for it.
    pub servers: Vec<IpNet>,
    /// Technical contacts.
    pub contacts: Vec<Contact>,
    /// Where inbound mail goes; default: the first server address, port 25.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound: Option<HostPort>,
    /// connected | suspended | disconnected.
    pub status: DomainStatus,
    /// Why it has its status (suspension or disconnection reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// When the status last changed.
    pub status_since: DateTime<Utc>,
    /// May share server addresses with other domains that also allow it.
    #[serde(default)]
    pub shared_servers: bool,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Rate limits that replace the `[governor]` defaults for this domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<DomainLimits>,
    /// Senders declared by staff (bulk senders), by lowercased address,
    /// with the limits that replace the domain's for them.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub senders: std::collections::BTreeMap<String, SenderLimits>,
    /// Which header From relayed mail may carry (records made before the
    /// check came in get it on).
    #[serde(default)]
    pub header_from: HeaderFrom,
    /// The applicant category (kept from the application; staff may change it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<super::category::ApplicantCategory>,
    /// A disconnection agreed for a later date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect_on: Option<ScheduledDisconnection>,
    /// Addresses staff let relay as the domain for a while (not servers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_servers: Vec<super::sightings::ServerAllowance>,
    /// Inbound next hops with preferences (lowest first, like MX); when
    /// set, they replace `inbound`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inbound_servers: Vec<InboundServer>,
    /// The application it was connected (last) from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<u64>,
    /// Set when staff registered it without an application: who, when, why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub without_application: Option<DirectRegistration>,
}

/// A registration without an application (`ugem domain add`), kept on the
/// domain so that an inspection sees which domains skipped the procedure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectRegistration {
    /// Who registered it (token name).
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Why there was no application.
    pub reason: String,
}

/// One of a domain's inbound servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundServer {
    /// Where to deliver.
    pub next_hop: HostPort,
    /// Lower is tried first; equal ones in the order given.
    pub preference: u16,
}

/// A disconnection scheduled for an agreed date (local, per
/// `[registration] utc_offset`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledDisconnection {
    /// The first local date the domain is disconnected.
    pub on: chrono::NaiveDate,
    /// Why.
    pub reason: String,
    /// Who scheduled it.
    pub by: String,
    /// When it was scheduled.
    pub at: DateTime<Utc>,
    /// The reminders sent, by working days before the date (5, 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reminded: Vec<u32>,
}

/// The header From check of a domain's outbound mail: the author must be of
/// the domain (or a subdomain), or of a domain staff approved for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderFrom {
    /// Refuse mail whose header From is of another domain (default on).
    #[serde(default = "on")]
    pub enforce: bool,
    /// Further domains (and their subdomains) the header From may name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_domains: Vec<Domain>,
}

fn on() -> bool {
    true
}

impl Default for HeaderFrom {
    fn default() -> Self {
        HeaderFrom {
            enforce: true,
            extra_domains: Vec::new(),
        }
    }
}

/// Per-domain governor overrides (absent fields keep the defaults).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainLimits {
    /// Messages per hour for the whole domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_per_hour: Option<u32>,
    /// Outbound recipients per hour for the whole domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients_per_hour: Option<u32>,
    /// Messages per hour for each sender of the domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_messages_per_hour: Option<u32>,
    /// Outbound recipients per hour for each sender of the domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_recipients_per_hour: Option<u32>,
    /// Messages per minute for each sender of the domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_messages_per_minute: Option<u32>,
    /// Outbound recipients per minute for each sender of the domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_recipients_per_minute: Option<u32>,
    /// Never-seen recipients per 5 minutes each sender may reach before its
    /// own peak is consulted (the novelty floor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_recipients_5min: Option<u32>,
    /// The same per hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_recipients_hour: Option<u32>,
    /// Never-seen recipients per hour of the whole domain (its senders that
    /// answer for their own traffic left out) before its own peak is consulted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_new_recipients_hour: Option<u32>,
}

impl DomainLimits {
    /// Every value, by name (for checks).
    pub fn values(&self) -> [(&'static str, Option<u32>); 9] {
        [
            ("messages_per_hour", self.messages_per_hour),
            ("recipients_per_hour", self.recipients_per_hour),
            ("sender_messages_per_hour", self.sender_messages_per_hour),
            (
                "sender_recipients_per_hour",
                self.sender_recipients_per_hour,
            ),
            (
                "sender_messages_per_minute",
                self.sender_messages_per_minute,
            ),
            (
                "sender_recipients_per_minute",
                self.sender_recipients_per_minute,
            ),
            ("new_recipients_5min", self.new_recipients_5min),
            ("new_recipients_hour", self.new_recipients_hour),
            (
                "domain_new_recipients_hour",
                self.domain_new_recipients_hour,
            ),
        ]
    }
}

/// A sender declared by staff (typically a bulk sender: tax notices, a
/// notification service): its own limits, which replace its domain's. A
/// declared sender is bounded by these rates and is not judged on how
/// many of its recipients are new.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderLimits {
    /// Messages per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_per_minute: Option<u32>,
    /// Messages per hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_per_hour: Option<u32>,
    /// Outbound recipients per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients_per_minute: Option<u32>,
    /// Outbound recipients per hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients_per_hour: Option<u32>,
    /// Why it was declared (shown with the limits; e.g. "tax notices, order 12").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl SenderLimits {
    /// Every rate, by name (for checks).
    pub fn values(&self) -> [(&'static str, Option<u32>); 4] {
        [
            ("messages_per_minute", self.messages_per_minute),
            ("messages_per_hour", self.messages_per_hour),
            ("recipients_per_minute", self.recipients_per_minute),
            ("recipients_per_hour", self.recipients_per_hour),
        ]
    }
}

impl DomainRecord {
    /// A connected domain as of `now`, everything else at its default.
    pub fn connected(
        name: Domain,
        owner: String,
        servers: Vec<IpNet>,
        contacts: Vec<Contact>,
        now: DateTime<Utc>,
    ) -> DomainRecord {
        DomainRecord {
            name,
            owner,
            servers,
            contacts,
            inbound: None,
            status: DomainStatus::Connected,
            status_reason: None,
            status_since: now,
            shared_servers: false,
            created_at: now,
            updated_at: now,
            limits: None,
            senders: Default::default(),
            header_from: Default::default(),
            category: None,
            disconnect_on: None,
            allowed_servers: Vec::new(),
            inbound_servers: Vec::new(),
            application: None,
            without_application: None,
        }
    }

    /// Every inbound next hop in the order to try: the inbound servers by
    /// preference, else the one inbound route.
    pub fn inbound_routes(&self) -> Vec<HostPort> {
        if self.inbound_servers.is_empty() {
            return self.inbound_route().into_iter().collect();
        }
        let mut v: Vec<&InboundServer> = self.inbound_servers.iter().collect();
        v.sort_by_key(|s| s.preference);
        v.into_iter().map(|s| s.next_hop.clone()).collect()
    }

    /// The next hop for inbound mail to this domain.
    pub fn inbound_route(&self) -> Option<HostPort> {
        self.inbound.clone().or_else(|| {
            self.servers.first().map(|n| HostPort {
                host: n.addr().to_string(),
                port: 25,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_without_the_header_from_setting_get_the_check_on() {
        let h: HeaderFrom = serde_json::from_str("{}").unwrap();
        assert_eq!(h, HeaderFrom::default());
        assert!(h.enforce);
        let h: HeaderFrom =
            serde_json::from_str(r#"{"enforce": false, "extra_domains": ["B.example"]}"#).unwrap();
        assert!(!h.enforce);
        assert_eq!(h.extra_domains[0].as_str(), "b.example");
    }

    #[test]
    fn records_from_before_the_registration_mark_stay_readable() {
        let old = r#"{"name":"a.example.kz","owner":"A","servers":["192.0.2.10/32"],
            "contacts":[{"name":"N","email":"it@a.example.kz","office_phone":"+7 7172 000000","mobile_phone":"12-3"}],
            "status":"connected","status_since":"2026-03-02T10:00:00Z",
            "created_at":"2026-03-02T10:00:00Z","updated_at":"2026-03-02T10:00:00Z"}"#;
        let rec: DomainRecord = serde_json::from_str(old).unwrap();
        assert_eq!(rec.without_application, None);
        assert_eq!(rec.application, None);
        let c = &rec.contacts[0];
        assert_eq!(c.office_phone.as_ref().unwrap().as_str(), "+77172000000");
        assert_eq!(c.mobile_phone.as_ref().unwrap().as_str(), "12-3");
        let again: DomainRecord =
            serde_json::from_str(&serde_json::to_string(&rec).unwrap()).unwrap();
        assert_eq!(again, rec);
    }

    #[test]
    fn default_inbound_route_is_first_server_port_25() {
        let now = Utc::now();
        let rec = DomainRecord::connected(
            Domain::parse("a.example.kz").unwrap(),
            "Agency".into(),
            vec!["192.0.2.10/32".parse().unwrap()],
            Vec::new(),
            now,
        );
        assert_eq!(rec.inbound_route().unwrap().to_string(), "192.0.2.10:25");
        assert_eq!(rec.inbound_routes(), vec![rec.inbound_route().unwrap()]);
        let hp = |s: &str| s.parse::<HostPort>().unwrap();
        let mut rec = rec;
        rec.inbound_servers = vec![
            InboundServer {
                next_hop: hp("backup.a.example.kz:25"),
                preference: 20,
            },
            InboundServer {
                next_hop: hp("mx.a.example.kz:25"),
                preference: 10,
            },
            InboundServer {
                next_hop: hp("other.a.example.kz:25"),
                preference: 20,
            },
        ];
        let order: Vec<String> = rec.inbound_routes().iter().map(|h| h.to_string()).collect();
        assert_eq!(
            order,
            [
                "mx.a.example.kz:25",
                "backup.a.example.kz:25",
                "other.a.example.kz:25"
            ]
        );
    }
}
