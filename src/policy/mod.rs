//! Who may relay what: (client IP, MAIL FROM, RCPT TO) -> accept or refuse,
//! with the exact reply. Pure functions over a registry snapshot.
//!
//! - Outbound relay: the client IP lies in the registered servers of the MAIL
//!   FROM domain (the exact registered domain), and that domain is connected:
//!   recipients anywhere are accepted.
//! - Inbound: a recipient in a connected (or suspended) registered domain is
//!   accepted from anyone; the null sender only takes this path.
//! - A registered sender domain used from an IP outside its servers is
//!   refused at MAIL: one agency cannot send as another, and nobody outside
//!   can forge an agency's envelope through the gateway.
//! - Anything else: 550 5.7.1 naming why.

use std::net::IpAddr;
use std::sync::Arc;

use crate::address::{ForwardPath, MailDomain, Mailbox, ReversePath};
use crate::domain::Domain;
use crate::model::domains::{DomainRecord, DomainStatus};
use crate::model::suspensions::{Scope, SuspensionRecord};
use crate::registry::Snapshot;
use crate::reply::Reply;

/// What the MAIL FROM allows for the rest of the transaction.
#[derive(Debug, Clone)]
pub enum SenderStanding {
    /// A registered, connected agency relaying from its own servers.
    Relay {
        /// The registered sender domain.
        domain: Domain,
    },
    /// Anybody else (including the null sender): only inbound recipients.
    Inbound,
}

/// The verdict on MAIL FROM.
#[derive(Debug, Clone)]
pub enum MailVerdict {
    /// Go on; recipients are judged by the standing.
    Accept(SenderStanding),
    /// Refuse the transaction with this reply.
    Refuse(Reply),
}

/// The verdict on one RCPT TO.
#[derive(Debug, Clone)]
pub enum RcptVerdict {
    /// Accept; delivered by route (`domain` is the registered domain for inbound).
    Accept(RcptKind),
    /// Refuse this recipient.
    Refuse(Reply),
}

/// Why a recipient was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptKind {
    /// To a registered domain: forwarded to its registered server.
    Inbound(Domain),
    /// To anywhere else, relayed for a registered agency.
    Outbound,
    /// To the gateway's postmaster.
    Postmaster,
}

fn suspended_reply(s: &SuspensionRecord, postmaster: &str) -> Reply {
    Reply::new(
        451,
        "4.7.1",
        format!(
            "{} suspended since {} ({}); contact {}",
            s.scope,
            s.started_at.format("%Y-%m-%d %H:%M UTC"),
            s.reason,
            postmaster
        ),
    )
}

fn denied(text: String) -> Reply {
    Reply::new(550, "5.7.1", text)
}

fn client_in(rec: &DomainRecord, ip: IpAddr) -> bool {
    let ip = canonical_ip(ip);
    rec.servers.iter().any(|n| n.contains(&ip))
        // Staff's time-limited allowances; the clock is read only for them.
        || (!rec.allowed_servers.is_empty()
            && rec
                .allowed_servers
                .iter()
                .any(|a| a.address == ip && a.until > chrono::Utc::now()))
}

/// The registered domain a MAIL FROM claims when the client is not one of
/// its servers (what `mail_verdict` refuses as "registered, but not for
/// client"): for the record of unregistered servers.
pub fn unregistered_claim<'a>(
    snap: &'a Snapshot,
    client: IpAddr,
    from: &ReversePath,
) -> Option<&'a Domain> {
    let ReversePath::Mailbox(mb) = from else {
        return None;
    };
    let MailDomain::Name(d) = &mb.domain else {
        return None;
    };
    let rec = snap.domain(d)?;
    (rec.status != DomainStatus::Disconnected && !client_in(rec, client)).then_some(&rec.name)
}

/// IPv4-mapped IPv6 addresses (from dual-stack sockets) compare as IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Judges MAIL FROM for a client IP.
pub fn mail_verdict(
    snap: &Snapshot,
    client: IpAddr,
    from: &ReversePath,
    postmaster: &str,
) -> MailVerdict {
    let mb = match from {
        ReversePath::Null => return MailVerdict::Accept(SenderStanding::Inbound),
        ReversePath::Mailbox(mb) => mb,
    };
    let domain = match &mb.domain {
        MailDomain::Name(d) => d,
        MailDomain::Literal(_) => return MailVerdict::Accept(SenderStanding::Inbound),
    };
    let Some(rec) = snap.domain(domain) else {
        return MailVerdict::Accept(SenderStanding::Inbound);
    };
    if rec.status == DomainStatus::Disconnected {
        return MailVerdict::Accept(SenderStanding::Inbound);
    }
    if !client_in(rec, client) {
        return MailVerdict::Refuse(denied(format!(
            "sender domain {domain} is registered, but not for client {}",
            canonical_ip(client)
        )));
    }
    if let Some(s) = snap.server_suspension(&canonical_ip(client)) {
        return MailVerdict::Refuse(Reply::new(
            451,
            "4.7.1",
            format!(
                "server {} suspended since {} ({}); contact {}",
                s.address,
                s.started_at.format("%Y-%m-%d %H:%M UTC"),
                s.reason,
                postmaster
            ),
        ));
    }
    if let Some(s) = snap.suspension(&Scope::Domain(domain.clone())) {
        return MailVerdict::Refuse(suspended_reply(s, postmaster));
    }
    if let Some(s) = snap.suspension(&Scope::Sender(sender_key(mb))) {
        return MailVerdict::Refuse(suspended_reply(s, postmaster));
    }
    if rec.status != DomainStatus::Connected {
        return MailVerdict::Refuse(Reply::new(
            451,
            "4.7.1",
            format!("domain {domain} is {}; contact {postmaster}", rec.status),
        ));
    }
    MailVerdict::Accept(SenderStanding::Relay {
        domain: domain.clone(),
    })
}

/// The key of a sender suspension: the address, lowercased.
pub fn sender_key(mb: &Mailbox) -> String {
    format!("{}@{}", mb.local.to_lowercase(), mailbox_domain(mb))
}

fn mailbox_domain(mb: &Mailbox) -> String {
    match &mb.domain {
        MailDomain::Name(d) => d.to_string(),
        MailDomain::Literal(ip) => format!("[{ip}]"),
    }
}

/// Judges one RCPT TO under the standing MAIL FROM gave.
pub fn rcpt_verdict(
    snap: &Snapshot,
    standing: &SenderStanding,
    to: &ForwardPath,
    gateway_host: &Domain,
) -> RcptVerdict {
    let mb = match to {
        ForwardPath::Postmaster => return RcptVerdict::Accept(RcptKind::Postmaster),
        ForwardPath::Mailbox(mb) => mb,
    };
    let domain = match &mb.domain {
        MailDomain::Name(d) => d,
        MailDomain::Literal(ip) => {
            return RcptVerdict::Refuse(denied(format!(
                "relaying denied: address literal [{ip}] is not accepted"
            )));
        }
    };
    if domain == gateway_host && mb.local.eq_ignore_ascii_case("postmaster") {
        return RcptVerdict::Accept(RcptKind::Postmaster);
    }
    let registered: Option<&Arc<DomainRecord>> = snap
        .domain(domain)
        .filter(|r| r.status != DomainStatus::Disconnected);
    match (registered, standing) {
        (Some(rec), _) => RcptVerdict::Accept(RcptKind::Inbound(rec.name.clone())),
        (None, SenderStanding::Relay { .. }) => RcptVerdict::Accept(RcptKind::Outbound),
        (None, SenderStanding::Inbound) => RcptVerdict::Refuse(denied(format!(
            "relaying denied: {domain} is not a registered domain and the sender is not a registered agency sending from its servers"
        ))),
    }
}

pub mod header_from;

#[cfg(test)]
mod tests;
