//! Placeholder: replaced by the classification branch.

use std::net::IpAddr;

/// How a delivery result counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// 2xx.
    Delivered,
    /// 4xx without a spam pattern.
    Deferred,
    /// 5xx.
    Rejected,
    /// 4xx or 5xx naming a blocklist or spam.
    Spam,
    /// 5.1.1 user unknown.
    Unknown,
    /// A blocklist refusal naming the gateway's own address: about the
    /// gateway, not this sender; it raises a gateway alarm instead.
    GatewayListed,
}

/// Which reply texts mean what; from `[governor]`.
#[derive(Debug, Clone, Copy)]
pub struct Patterns<'a> {
    /// A blocklist or spam refusal.
    pub spam: &'a [String],
    /// A blocklist listing (with a gateway address: the gateway is listed).
    pub listing: &'a [String],
    /// The gateway's addresses (configured, and seen as the source of
    /// outbound connections).
    pub own: &'a [IpAddr],
}

fn mentions(lower: &str, patterns: &[String]) -> bool {
    patterns
        .iter()
        .any(|p| !p.is_empty() && lower.contains(&p.to_ascii_lowercase()))
}

/// Classifies a remote reply for the detector.
pub fn classify(delivered: bool, permanent: bool, text: &str, p: Patterns<'_>) -> OutcomeKind {
    if delivered {
        return OutcomeKind::Delivered;
    }
    let lower = text.to_ascii_lowercase();
    // "Client host [our address] blocked using zen.spamhaus.org" is about
    // the gateway; "[our address] this message is likely unsolicited" (no
    // listing) is about the message, and stays the sender's.
    if mentions(&lower, p.listing) && names_address(text, p.own).is_some() {
        return OutcomeKind::GatewayListed;
    }
    if permanent
        && (lower.contains("5.1.1")
            || lower.contains("user unknown")
            || lower.contains("no such user")
            || lower.contains("mailbox unavailable")
            || lower.contains("does not exist"))
    {
        return OutcomeKind::Unknown;
    }
    if mentions(&lower, p.spam) {
        return OutcomeKind::Spam;
    }
    if permanent {
        OutcomeKind::Rejected
    } else {
        OutcomeKind::Deferred
    }
}

/// The first of `own` that `text` names as an address literal
/// ("Client host [203.0.113.5] blocked using zen.spamhaus.org").
pub fn names_address(text: &str, own: &[IpAddr]) -> Option<IpAddr> {
    if own.is_empty() {
        return None;
    }
    // "[IPv6:2001:db8::25]": the tag would glue "6:" to the address.
    let text = text.replace("IPv6:", " ").replace("ipv6:", " ");
    text.split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
        .map(|t| t.trim_matches(|c| c == '.' || c == ':'))
        .filter(|t| t.len() >= 2)
        .filter_map(|t| t.parse::<IpAddr>().ok())
        .map(crate::policy::canonical_ip)
        .find(|ip| own.contains(ip))
}


impl OutcomeKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Delivered => "delivered",
            OutcomeKind::Deferred => "deferred",
            OutcomeKind::Rejected => "rejected",
            OutcomeKind::Spam => "spam",
            OutcomeKind::Unknown => "unknown",
            OutcomeKind::GatewayListed => "gateway_listed",
        }
    }
}
