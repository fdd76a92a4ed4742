//! The application workflow: submit, decide within the working-day deadline,
//! and keep a rejected applicant out for the resubmission period.
//!
//! Every date here is a local date of the operator (`[registration]
//! utc_offset`), read from an injectable [`Clock`] so that deadlines and the
//! resubmission lock can be tested on any day.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Datelike, Days, FixedOffset, NaiveDate, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{NewDomain, RangeLimits, Registry, RegistryError, check_server_ranges, parse_server};
use crate::calendar::Calendar;
use crate::config::{HostPort, RegistrationSection};
use crate::domain::Domain;
use crate::model::applications::{
    ApplicantCategory, ApplicationForm, ApplicationRecord, ApplicationStatus,
};
use crate::model::domains::{Contact, DomainRecord, DomainStatus};
use crate::store::StoreError;

/// The time source of the workflow.
pub trait Clock: Send + Sync {
    /// Today's local date.
    fn today(&self) -> NaiveDate;
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock, with dates in a fixed UTC offset.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    /// The operator's offset from UTC.
    pub offset: FixedOffset,
}

impl Clock for SystemClock {
    fn today(&self) -> NaiveDate {
        Utc::now().with_timezone(&self.offset).date_naive()
    }
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until moved: for tests.
#[derive(Debug)]
pub struct FixedClock {
    now: Mutex<DateTime<Utc>>,
    offset: FixedOffset,
}

impl FixedClock {
    /// Noon (local, UTC+5) on `date`.
    pub fn on(date: NaiveDate) -> FixedClock {
        let offset = FixedOffset::east_opt(5 * 3600).expect("valid offset");
        FixedClock {
            now: Mutex::new(Self::noon(date, offset)),
            offset,
        }
    }

    fn noon(date: NaiveDate, offset: FixedOffset) -> DateTime<Utc> {
        date.and_hms_opt(12, 0, 0)
            .and_then(|t| t.and_local_timezone(offset).single())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    /// Moves the clock to noon on `date`.
    pub fn set(&self, date: NaiveDate) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = Self::noon(date, self.offset);
    }
}

impl Clock for FixedClock {
    fn today(&self) -> NaiveDate {
        self.now().with_timezone(&self.offset).date_naive()
    }
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why a workflow step was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApplicationError {
    /// No application with this id.
    #[error("application #{0} does not exist")]
    NotFound(u64),
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// The domain's last application was rejected too recently.
    #[error(
        "domain {domain}: application #{id} was rejected on {rejected_on}; a new application may be submitted from {first_date}"
    )]
    Locked {
        /// The domain.
        domain: Domain,
        /// The rejected application.
        id: u64,
        /// Its decision date.
        rejected_on: NaiveDate,
        /// The first date a new application is accepted.
        first_date: NaiveDate,
    },
    /// The step does not fit the application's or the domain's state.
    #[error("{0}")]
    Conflict(String),
    /// Connecting the domain failed (server overlap, ...).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What staff enter from a received application.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApplication {
    /// The e-mail domain.
    pub domain: Domain,
    /// The organization that owns it.
    pub owner: String,
    /// The applicant's category.
    pub category: ApplicantCategory,
    /// The head of the organization, who signed.
    pub head: String,
    /// Mail-server IPs or CIDRs.
    #[serde(deserialize_with = "servers_de")]
    pub servers: Vec<IpNet>,
    /// Technical contacts: full name, e-mail, and at least one phone.
    pub contacts: Vec<Contact>,
    /// Inbound next hop; default the first server, port 25.
    #[serde(default)]
    pub inbound: Option<HostPort>,
    /// Date of receipt; default today.
    #[serde(default)]
    pub received_on: Option<NaiveDate>,
    /// Staff accept server ranges wider than `[registration]
    /// widest_server_range_v4`/`_v6` (recorded; the approval honours it).
    #[serde(default)]
    pub allow_wide_range: bool,
    /// The form's number, date, channel and document.
    #[serde(default)]
    pub form: Option<ApplicationForm>,
    /// The languages of the applicant's notices, in order (empty: `[notify]
    /// languages`); the connected domain keeps them.
    #[serde(default)]
    pub languages: Vec<crate::model::language::Lang>,
}

fn servers_de<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let v: Vec<String> = Deserialize::deserialize(d)?;
    v.iter()
        .map(|s| parse_server(s).map_err(serde::de::Error::custom))
        .collect()
}

/// Filters of `list`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ApplicationFilter {
    /// Only this status.
    #[serde(default)]
    pub status: Option<ApplicationStatus>,
    /// Only pending applications past their deadline.
    #[serde(default)]
    pub overdue: bool,
    /// Only this domain.
    #[serde(default)]
    pub domain: Option<Domain>,
}

/// An application with what follows from today's date.
#[derive(Debug, Clone, Serialize)]
pub struct ApplicationView {
    /// The stored record.
    #[serde(flatten)]
    pub application: ApplicationRecord,
    /// Pending past its decision date.
    pub overdue: bool,
    /// For pending ones: working days left until the due date (0: due today;
    /// negative when overdue: the working days since, at least 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_days_left: Option<i64>,
    /// For rejected ones: the first date a new application may be submitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resubmit_from: Option<NaiveDate>,
    /// Set when the calendar has no holidays for a year the deadline touches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calendar_warning: Option<String>,
    /// The days off the decision deadline skipped between receipt and due
    /// date: weekends, holidays (named), their moved days, fixed days off.
    pub skipped_days: Vec<crate::calendar::SkippedDay>,
}

/// The result of an approval.
#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    /// The application, now approved.
    pub application: ApplicationView,
    /// The connected domain.
    pub domain: DomainRecord,
    /// True when a disconnected domain was connected again.
    pub reconnected: bool,
}

/// Serializes workflow changes in this process: check-then-write steps
/// (one pending application per domain, pending-only decisions) must not
/// interleave. (Across nodes, the store's conditional writes keep them apart.)
static WORKFLOW: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn workflow_lock() -> tokio::sync::MutexGuard<'static, ()> {
    WORKFLOW.lock().await
}

/// A store error, with a lost race said as a conflict of the workflow.
fn from_store(e: StoreError) -> ApplicationError {
    match e {
        StoreError::Conflict(m) => ApplicationError::Conflict(m),
        e => ApplicationError::Store(e),
    }
}

fn check_text(field: &str, s: &str, max: usize, required: bool) -> Result<(), ApplicationError> {
    if required && s.trim().is_empty() {
        return Err(ApplicationError::Invalid(format!("{field} is required")));
    }
    if s.chars().count() > max || s.chars().any(|c| c.is_control()) {
        return Err(ApplicationError::Invalid(format!(
            "{field} must be at most {max} characters without control characters"
        )));
    }
    Ok(())
}

/// The application workflow over the registry and its store.
pub struct Applications {
    registry: Arc<Registry>,
    calendar: Calendar,
    decision_days: u32,
    resubmit_days: u32,
    ranges: RangeLimits,
    clock: Arc<dyn Clock>,
}

/// How an approval connects the domain.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApproveOptions {
    /// Let the domain share server ranges with domains that allow it too.
    pub shared_servers: bool,
    /// Accept server ranges wider than the configured limit (also when the
    /// application was recorded with it).
    pub allow_wide_range: bool,
}

impl std::fmt::Debug for Applications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applications")
            .field("decision_days", &self.decision_days)
            .field("resubmit_days", &self.resubmit_days)
            .finish_non_exhaustive()
    }
}

impl Applications {
    /// The workflow with the configured calendar and the system clock.
    pub fn from_config(registry: Arc<Registry>, cfg: &RegistrationSection) -> Applications {
        Self::with_clock(
            registry,
            cfg,
            Arc::new(SystemClock {
                offset: cfg.utc_offset.0,
            }),
        )
    }

    /// The workflow with the configured calendar and another clock.
    pub fn with_clock(
        registry: Arc<Registry>,
        cfg: &RegistrationSection,
        clock: Arc<dyn Clock>,
    ) -> Applications {
        Applications {
            registry,
            calendar: cfg.calendar(),
            decision_days: cfg.decision_days,
            resubmit_days: cfg.resubmit_days,
            ranges: RangeLimits::from(cfg),
            clock,
        }
    }

    /// Today's local date, by the workflow's clock.
    pub fn today(&self) -> NaiveDate {
        self.clock.today()
    }

    /// The working-day calendar.
    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }

    /// The registry the workflow connects domains in.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Records a received application after checking every field, the
    /// domain's standing, and the resubmission lock.
    pub async fn submit(
        &self,
        new: NewApplication,
        actor: &str,
    ) -> Result<ApplicationView, ApplicationError> {
        check_text("owner", &new.owner, 300, true)?;
        check_text("head", &new.head, 200, true)?;
        validate_servers(&new.servers)?;
        check_server_ranges(
            &new.servers,
            new.inbound.as_ref(),
            new.allow_wide_range,
            self.ranges,
        )
        .map_err(ApplicationError::Invalid)?;
        validate_contacts(&new.contacts, new.form.is_some())?;
        if let Some(hp) = &new.inbound
            && hp.port == 0
        {
            return Err(ApplicationError::Invalid(
                "inbound: port 0 is not a port".into(),
            ));
        }
        let today = self.today();
        let received_on = new.received_on.unwrap_or(today);
        if received_on > today {
            return Err(ApplicationError::Invalid(format!(
                "received_on {received_on} is in the future (today is {today})"
            )));
        }
        if today.signed_duration_since(received_on).num_days() > 366 {
            return Err(ApplicationError::Invalid(format!(
                "received_on {received_on} is more than a year ago"
            )));
        }
        if let Some(form) = &new.form {
            validate_form(form, received_on)?;
        }

        let _g = workflow_lock().await;
        if let Some(d) = self.registry.get(&new.domain)
            && d.status != DomainStatus::Disconnected
        {
            return Err(ApplicationError::Conflict(format!(
                "domain {} is already registered ({}); a new application is needed only after disconnection",
                d.name, d.status
            )));
        }
        let history = self.for_domain(&new.domain).await?;
        if let Some(p) = history
            .iter()
            .find(|a| a.status == ApplicationStatus::Pending)
        {
            return Err(ApplicationError::Conflict(format!(
                "domain {} already has a pending application #{} (received {})",
                new.domain, p.id, p.received_on
            )));
        }
        // The lock counts from the latest rejection, whatever came after it.
        if let Some((rejected, rejected_on)) = history
            .iter()
            .filter(|a| a.status == ApplicationStatus::Rejected)
            .filter_map(|a| a.decided_on.map(|d| (a, d)))
            .max_by_key(|(_, d)| *d)
        {
            let first_date = self.resubmit_from(rejected_on);
            if received_on < first_date {
                return Err(ApplicationError::Locked {
                    domain: new.domain,
                    id: rejected.id,
                    rejected_on,
                    first_date,
                });
            }
        }

        let rec = ApplicationRecord {
            id: 0,
            domain: new.domain,
            owner: new.owner.trim().to_string(),
            category: new.category,
            head: new.head.trim().to_string(),
            servers: new.servers.iter().map(|n| n.trunc()).collect(),
            contacts: new.contacts,
            inbound: new.inbound,
            received_on,
            decision_due: self
                .calendar
                .add_working_days(received_on, self.decision_days),
            status: ApplicationStatus::Pending,
            decided_on: None,
            decided_at: None,
            decided_by: None,
            reason: None,
            submitted_by: actor.to_string(),
            created_at: self.clock.now(),
            alerted_on: None,
            allow_wide_range: new.allow_wide_range,
            form: new.form,
            languages: new.languages,
        };
        let rec = self
            .registry
            .store
            .insert_application(&rec)
            .await
            .map_err(from_store)?;
        Ok(self.view(rec))
    }

    /// The first date a new application is accepted after a rejection on `rejected_on`.
    pub fn resubmit_from(&self, rejected_on: NaiveDate) -> NaiveDate {
        rejected_on
            .checked_add_days(Days::new(u64::from(self.resubmit_days)))
            .unwrap_or(NaiveDate::MAX)
    }

    async fn for_domain(
        &self,
        domain: &Domain,
    ) -> Result<Vec<ApplicationRecord>, ApplicationError> {
        let mut all = self.registry.store.list_applications().await?;
        all.retain(|a| &a.domain == domain);
        Ok(all)
    }

    async fn load(&self, id: u64) -> Result<ApplicationRecord, ApplicationError> {
        self.registry
            .store
            .get_application(id)
            .await?
            .ok_or(ApplicationError::NotFound(id))
    }

    /// Adds what follows from today's date to a record.
    pub fn view(&self, application: ApplicationRecord) -> ApplicationView {
        let today = self.today();
        let pending = application.status == ApplicationStatus::Pending;
        let overdue = pending && today > application.decision_due;
        let working_days_left = pending.then(|| {
            let n = self
                .calendar
                .working_days_between(today, application.decision_due);
            // On the weekend after a Friday deadline no working day has
            // passed, yet the application is overdue: never report 0 then.
            if overdue { n.min(-1) } else { n }
        });
        let resubmit_from = match (application.status, application.decided_on) {
            (ApplicationStatus::Rejected, Some(d)) => Some(self.resubmit_from(d)),
            _ => None,
        };
        let mut missing: Vec<String> = [application.received_on, application.decision_due]
            .iter()
            .map(|d| d.year())
            .filter(|y| !self.calendar.covers(*y))
            .map(|y| y.to_string())
            .collect();
        missing.dedup();
        let calendar_warning = (pending && !missing.is_empty()).then(|| {
            format!(
                "the working-day calendar has no holidays for {}: the due date counts weekends only; add the year to the calendar file ([registration] calendar, shipped: data/calendar/kz.toml)",
                missing.join(", ")
            )
        });
        let skipped_days = self
            .calendar
            .skipped_between(application.received_on, application.decision_due);
        ApplicationView {
            skipped_days,
            overdue,
            working_days_left,
            resubmit_from,
            calendar_warning,
            application,
        }
    }

    /// Applications matching `filter`, oldest first.
    pub async fn list(
        &self,
        filter: &ApplicationFilter,
    ) -> Result<Vec<ApplicationView>, ApplicationError> {
        Ok(self
            .registry
            .store
            .list_applications()
            .await?
            .into_iter()
            .filter(|a| filter.status.is_none_or(|s| a.status == s))
            .filter(|a| filter.domain.as_ref().is_none_or(|d| &a.domain == d))
            .map(|a| self.view(a))
            .filter(|v| !filter.overdue || v.overdue)
            .collect())
    }

    /// Every application as stored, oldest first.
    pub async fn all(&self) -> Result<Vec<ApplicationRecord>, ApplicationError> {
        Ok(self.registry.store.list_applications().await?)
    }

    /// One application.
    pub async fn get(&self, id: u64) -> Result<ApplicationView, ApplicationError> {
        Ok(self.view(self.load(id).await?))
    }

    async fn pending(&self, id: u64) -> Result<ApplicationRecord, ApplicationError> {
        let app = self.load(id).await?;
        if app.status != ApplicationStatus::Pending {
            return Err(ApplicationError::Conflict(format!(
                "application #{id} is {}, not pending",
                app.status
            )));
        }
        Ok(app)
    }

    async fn decide(
        &self,
        mut app: ApplicationRecord,
        status: ApplicationStatus,
        actor: &str,
        reason: Option<String>,
    ) -> Result<ApplicationRecord, ApplicationError> {
        app.status = status;
        app.decided_on = Some(self.today());
        app.decided_at = Some(self.clock.now());
        app.decided_by = Some(actor.to_string());
        app.reason = reason;
        self.registry
            .store
            .update_application(&app, ApplicationStatus::Pending)
            .await
            .map_err(from_store)?;
        Ok(app)
    }

    /// Connects the domain with the application's servers and contacts (a
    /// disconnected domain is connected again) and marks it approved.
    pub async fn approve(
        &self,
        id: u64,
        actor: &str,
        shared_servers: bool,
    ) -> Result<Approval, ApplicationError> {
        self.approve_with(
            id,
            actor,
            ApproveOptions {
                shared_servers,
                allow_wide_range: false,
            },
        )
        .await
    }

    /// [`Applications::approve`] with every option. The server ranges are
    /// checked again: the limits may have changed since the intake.
    pub async fn approve_with(
        &self,
        id: u64,
        actor: &str,
        opts: ApproveOptions,
    ) -> Result<Approval, ApplicationError> {
        let _g = workflow_lock().await;
        let app = self.pending(id).await?;
        check_server_ranges(
            &app.servers,
            app.inbound.as_ref(),
            app.allow_wide_range || opts.allow_wide_range,
            self.ranges,
        )
        .map_err(ApplicationError::Invalid)?;
        let new = NewDomain {
            name: app.domain.clone(),
            owner: app.owner.clone(),
            servers: app.servers.clone(),
            contacts: app.contacts.clone(),
            inbound: app.inbound.clone(),
            shared_servers: opts.shared_servers,
        };
        let (domain, reconnected) = match self.registry.get(&app.domain) {
            None => (
                self.registry
                    .add_domain_as(new, Some(app.category), Some(app.id), &app.languages)
                    .await?,
                false,
            ),
            Some(d) if d.status == DomainStatus::Disconnected => (
                self.registry
                    .reconnect_domain(new, Some(app.category), Some(app.id), &app.languages)
                    .await?,
                true,
            ),
            Some(d) => {
                return Err(ApplicationError::Conflict(format!(
                    "domain {} is already registered ({}); reject or withdraw application #{id}",
                    d.name, d.status
                )));
            }
        };
        // The domain is connected first: if recording the decision then
        // fails, the operator sees the error and the domain's state is the truth.
        let app = self
            .decide(app, ApplicationStatus::Approved, actor, None)
            .await?;
        Ok(Approval {
            application: self.view(app),
            domain,
            reconnected,
        })
    }

    /// Rejects a pending application with reasons.
    pub async fn reject(
        &self,
        id: u64,
        actor: &str,
        reason: &str,
    ) -> Result<ApplicationView, ApplicationError> {
        check_text("reason", reason, 2000, true)?;
        let _g = workflow_lock().await;
        let app = self.pending(id).await?;
        let app = self
            .decide(
                app,
                ApplicationStatus::Rejected,
                actor,
                Some(reason.trim().to_string()),
            )
            .await?;
        Ok(self.view(app))
    }

    /// Records that the applicant took a pending application back; no lock follows.
    pub async fn withdraw(
        &self,
        id: u64,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<ApplicationView, ApplicationError> {
        if let Some(r) = reason {
            check_text("reason", r, 2000, false)?;
        }
        let _g = workflow_lock().await;
        let app = self.pending(id).await?;
        let reason = reason
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_string);
        let app = self
            .decide(app, ApplicationStatus::Withdrawn, actor, reason)
            .await?;
        Ok(self.view(app))
    }

    /// Pending applications due today or overdue whose postmaster alert has
    /// not gone out today.
    pub async fn due_for_alert(&self) -> Result<Vec<ApplicationView>, ApplicationError> {
        let today = self.today();
        Ok(self
            .list(&ApplicationFilter {
                status: Some(ApplicationStatus::Pending),
                ..Default::default()
            })
            .await?
            .into_iter()
            .filter(|v| {
                v.application.decision_due <= today && v.application.alerted_on != Some(today)
            })
            .collect())
    }

    /// Records that today's deadline alert for an application went out.
    pub async fn mark_alerted(&self, id: u64) -> Result<(), ApplicationError> {
        let _g = workflow_lock().await;
        let mut app = self.load(id).await?;
        let status = app.status;
        app.alerted_on = Some(self.today());
        self.registry
            .store
            .update_application(&app, status)
            .await
            .map_err(from_store)?;
        Ok(())
    }
}

fn validate_servers(servers: &[IpNet]) -> Result<(), ApplicationError> {
    if servers.is_empty() {
        return Err(ApplicationError::Invalid(
            "at least one mail-server address is needed".into(),
        ));
    }
    if servers.len() > 64 {
        return Err(ApplicationError::Invalid(
            "at most 64 server addresses per application".into(),
        ));
    }
    for s in servers {
        // Relaying rights for everything: never what an applicant means.
        if s.prefix_len() == 0 || s.addr().is_unspecified() {
            return Err(ApplicationError::Invalid(format!(
                "server {s} is not a mail-server address"
            )));
        }
    }
    Ok(())
}

/// Checks what the form says: texts present and printable, and a form not
/// dated after the operator received it.
fn validate_form(form: &ApplicationForm, received_on: NaiveDate) -> Result<(), ApplicationError> {
    let text = |field: &str, v: &str, max: usize| {
        if v.trim().is_empty() || v.len() > max || v.chars().any(char::is_control) {
            Err(ApplicationError::Invalid(format!(
                "form {field}: 1 to {max} characters, no control characters"
            )))
        } else {
            Ok(())
        }
    };
    text("number", &form.number, 100)?;
    text("reference", &form.reference, 200)?;
    if let Some(d) = &form.document {
        text("document", d, 200)?;
    }
    if form.dated > received_on {
        return Err(ApplicationError::Invalid(format!(
            "the form is dated {}, after its receipt on {received_on}",
            form.dated
        )));
    }
    Ok(())
}

fn validate_contacts(contacts: &[Contact], both_phones: bool) -> Result<(), ApplicationError> {
    if contacts.is_empty() {
        return Err(ApplicationError::Invalid(
            "at least one technical contact is needed".into(),
        ));
    }
    if contacts.len() > 20 {
        return Err(ApplicationError::Invalid(
            "at most 20 technical contacts per application".into(),
        ));
    }
    for c in contacts {
        super::contact::validate(c).map_err(ApplicationError::Invalid)?;
        // The rules ask for the contact's full name and phones; one phone is
        // the least the operator needs to reach someone.
        if c.name.trim().is_empty() {
            return Err(ApplicationError::Invalid(format!(
                "contact {}: the full name is required (`Full Name <{}>`)",
                c.email, c.email
            )));
        }
        // The form asks for both numbers of each specialist.
        if both_phones && (c.office_phone.is_none() || c.mobile_phone.is_none()) {
            return Err(ApplicationError::Invalid(format!(
                "contact {}: the form gives both a mobile and an office phone (`; mobile=PHONE; office=PHONE`)",
                c.email
            )));
        }
        if c.office_phone.is_none() && c.mobile_phone.is_none() {
            return Err(ApplicationError::Invalid(format!(
                "contact {}: a mobile or office phone is required (`; mobile=PHONE; office=PHONE`)",
                c.email
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
