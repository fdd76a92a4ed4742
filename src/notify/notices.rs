//! The words of the registration notices, kept in one place so that they can
//! be reviewed (and translated) together.

use chrono::NaiveDate;

use crate::config::Config;
use crate::domain::Domain;
use crate::model::applications::ApplicationRecord;
use crate::model::domains::DomainRecord;

/// A notice's subject and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// The domain as people read it: the Unicode form of an IDN, with its A-label.
pub fn display_domain(d: &Domain) -> String {
    let (unicode, res) = idna::domain_to_unicode(d.as_str());
    if res.is_ok() && unicode != d.as_str() {
        format!("{unicode} ({d})")
    } else {
        d.to_string()
    }
}

pub(super) fn footer(cfg: &Config) -> String {
    format!(
        "\n--\nMail gateway {}\nQuestions: {}\nThis message was generated automatically.\n",
        cfg.server.hostname, cfg.server.postmaster
    )
}

/// To the contacts: the domain is connected.
pub fn application_approved(cfg: &Config, app: &ApplicationRecord, domain: &DomainRecord) -> Text {
    let name = display_domain(&app.domain);
    let servers: Vec<String> = domain.servers.iter().map(|s| s.to_string()).collect();
    let inbound = domain
        .inbound_route()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "-".into());
    let mut body = format!(
        "Application #{id} of {owner} to connect the mail domain {name} to the mail gateway \
         has been approved, and the domain is connected.\n\n\
         Domain:            {name}\n\
         Owner:             {owner}\n\
         Received on:       {received}\n\
         Approved on:       {decided}\n\
         Servers that may relay through the gateway: {servers}\n\
         Inbound mail is delivered to: {inbound}\n\n\
         What to do now:\n\
         - Relay all outgoing external mail through {host} (port 25) from the servers above.\n\
         - Point the domain's MX record at {host}.\n\
         - Make the domain's SPF record authorize the gateway",
        id = app.id,
        owner = app.owner,
        received = app.received_on,
        decided = app
            .decided_on
            .map(|d| d.to_string())
            .unwrap_or_else(|| "-".into()),
        servers = servers.join(", "),
        host = cfg.server.hostname,
    );
    let gw = &cfg.registration.gateway_addresses;
    if gw.is_empty() {
        body.push_str(".\n");
    } else {
        let ips: Vec<String> = gw.iter().map(|ip| ip.to_string()).collect();
        body.push_str(&format!(" ({}).\n", ips.join(", ")));
    }
    body.push_str(&footer(cfg));
    Text {
        subject: format!("Application #{} approved: {name} is connected", app.id),
        body,
    }
}

/// To the contacts: the application is rejected, with reasons and the lock.
pub fn application_rejected(
    cfg: &Config,
    app: &ApplicationRecord,
    resubmit_from: Option<NaiveDate>,
) -> Text {
    let name = display_domain(&app.domain);
    let mut body = format!(
        "Application #{id} of {owner} to connect the mail domain {name} to the mail gateway \
         has been rejected.\n\n\
         Received on:  {received}\n\
         Rejected on:  {decided}\n\
         Reasons:\n{reason}\n",
        id = app.id,
        owner = app.owner,
        received = app.received_on,
        decided = app
            .decided_on
            .map(|d| d.to_string())
            .unwrap_or_else(|| "-".into()),
        reason = app.reason.as_deref().unwrap_or("-"),
    );
    if let Some(d) = resubmit_from {
        body.push_str(&format!(
            "\nA new application for {name} may be submitted from {d} ({} calendar days after the rejection).\n",
            cfg.registration.resubmit_days
        ));
    }
    body.push_str(&footer(cfg));
    Text {
        subject: format!("Application #{} for {name} rejected", app.id),
        body,
    }
}

/// To the contacts: the domain is disconnected.
pub fn domain_disconnected(cfg: &Config, domain: &DomainRecord) -> Text {
    let name = display_domain(&domain.name);
    let body = format!(
        "The mail domain {name} ({owner}) has been disconnected from the mail gateway on {since}.\n\n\
         Reason:\n{reason}\n\n\
         The gateway now refuses mail from and to {name} as from an unregistered domain. \
         Mail of the domain still in the gateway's queue is held.\n\
         Connecting the domain again takes a new application.\n{footer}",
        owner = domain.owner,
        since = domain
            .status_since
            .with_timezone(&cfg.registration.utc_offset.0)
            .format("%Y-%m-%d %H:%M %:z"),
        reason = domain.status_reason.as_deref().unwrap_or("-"),
        footer = footer(cfg),
    );
    Text {
        subject: format!("{name} disconnected from the mail gateway"),
        body,
    }
}

/// To the postmaster: an application is due today or overdue.
pub fn deadline_alert(
    cfg: &Config,
    app: &ApplicationRecord,
    today: NaiveDate,
    working_days_left: i64,
) -> Text {
    let name = display_domain(&app.domain);
    let state = if today > app.decision_due {
        format!(
            "OVERDUE: the decision was due on {} ({} working day(s) ago)",
            app.decision_due, -working_days_left
        )
    } else {
        format!("the decision is due today, {}", app.decision_due)
    };
    let body = format!(
        "Application #{id} for {name} is still pending: {state}.\n\n\
         Owner:        {owner} ({category})\n\
         Received on:  {received}\n\
         Entered by:   {by}\n\n\
         Decide it with:\n  ugem application show {id}\n  ugem application approve {id}\n  \
         ugem application reject {id} --reason TEXT\n\n\
         This alert repeats once a day while the application is pending.\n{footer}",
        id = app.id,
        owner = app.owner,
        category = app.category.description(),
        received = app.received_on,
        by = app.submitted_by,
        footer = footer(cfg),
    );
    let subject = if today > app.decision_due {
        format!(
            "Overdue: application #{} for {name} (due {})",
            app.id, app.decision_due
        )
    } else {
        format!("Due today: application #{} for {name}", app.id)
    };
    Text { subject, body }
}

/// To the postmaster: the working-day calendar lacks a year.
pub fn calendar_review(cfg: &Config, years: &[i32]) -> Text {
    let years: Vec<String> = years.iter().map(|y| y.to_string()).collect();
    let years = years.join(", ");
    Text {
        subject: format!("Working-day calendar: no holidays configured for {years}"),
        body: format!(
            "The gateway's working-day calendar lists no public holidays or days off for \
             {years}. Decision deadlines of applications are then counted with weekends only.\n\n\
             Upgrade ugem, or add the year to your own copy of the calendar file (the \
             shipped one is data/calendar/kz.toml in the sources, \
             /usr/share/doc/ugem/calendar/kz.toml in the package) named by [registration] \
             calendar: its public holidays (holidays), religious holidays and transferred \
             days off (days_off), transferred working days (working_days) and sources; \
             then reload the gateway.\n{footer}",
            footer = footer(cfg),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idn_domains_are_shown_in_both_forms() {
        let d = Domain::parse("министерство.қаз").unwrap();
        let s = display_domain(&d);
        assert!(s.starts_with("министерство.қаз (xn--"), "{s}");
        assert_eq!(display_domain(&Domain::parse("gov.kz").unwrap()), "gov.kz");
    }
}
