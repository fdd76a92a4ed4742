//! The postmaster's deadline alerts: once a day per pending application from
//! its decision date on, and a reminder when the calendar lacks a year; and
//! in the same rounds, the contacts' yearly confirmation reminders.

use std::sync::Arc;

use chrono::NaiveDate;
use tokio::sync::watch;

use super::mail::{NotifyError, enqueue_notice};
use super::notices;
use crate::config::{Config, Live};
use crate::registry::Registry;
use crate::registry::applications::{ApplicationError, Applications};

/// Why a round of alerts stopped early.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// Reading or updating applications failed.
    #[error(transparent)]
    Application(#[from] ApplicationError),
    /// The alert could not be queued.
    #[error(transparent)]
    Notify(#[from] NotifyError),
}

/// Runs until `stop` turns true: every `[registration] overdue_check_interval`,
/// queues an alert to the postmaster for each pending application that is due
/// today or overdue and has not been alerted today.
pub async fn overdue_alerts(
    registry: Arc<Registry>,
    queue: ugem_queue::Queue,
    live: Live,
    mut stop: watch::Receiver<bool>,
) {
    let mut calendar_reviewed: Option<NaiveDate> = None;
    let mut reloads = live.subscribe();
    loop {
        if *stop.borrow() {
            return;
        }
        // Built each round: a reload may change the calendar or the deadlines.
        let cfg = live.current();
        let apps = Arc::new(Applications::from_config(
            registry.clone(),
            &cfg.registration,
        ));
        match alert_due(&apps, &queue, &cfg).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(alerts = n, "deadline alerts queued for the postmaster"),
            Err(e) => tracing::warn!(error = %e, "deadline alerts failed; retrying next round"),
        }
        let today = apps.today();
        match super::reconfirm::remind_due(&registry, &queue, &cfg, today).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(reminders = n, "yearly confirmation reminders queued"),
            Err(e) => {
                tracing::warn!(error = %e, "confirmation reminders failed; retrying next round")
            }
        }
        if calendar_reviewed != Some(today) {
            calendar_reviewed = Some(today);
            if let Err(e) = calendar_reminder(&apps, &queue, &cfg, today).await {
                tracing::warn!(error = %e, "calendar reminder not queued");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(cfg.registration.overdue_check_interval.0) => {}
            _ = reloads.changed() => {
                // A reload is when staff expect their template files looked
                // at; they are read at each notice anyway.
                if let Some(dir) = &live.current().notify.templates_dir {
                    for e in super::templates::check_overrides(dir) {
                        tracing::warn!(problem = %e, "notice template override not used; the embedded one is");
                    }
                }
            }
            _ = crate::shutdown::stopped(&mut stop) => return,
        }
    }
}

/// One round: alerts for every application due for one; returns how many were queued.
pub async fn alert_due(
    apps: &Arc<Applications>,
    queue: &ugem_queue::Queue,
    cfg: &Config,
) -> Result<usize, AlertError> {
    let due = apps.due_for_alert().await?;
    let today = apps.today();
    let mut sent = 0;
    for v in due {
        let app = &v.application;
        let text = notices::deadline_alert(cfg, app, today, v.working_days_left.unwrap_or(0));
        let to = [cfg.server.postmaster.to_string()];
        let (id, _) = enqueue_notice(queue, apps.registry(), cfg, &to, &text).await?;
        tracing::warn!(
            application = app.id,
            domain = %app.domain,
            due = %app.decision_due,
            queue_id = %id,
            "application at or past its decision date; postmaster alerted"
        );
        // Marked after queueing: a crash in between repeats an alert rather than losing it.
        apps.mark_alerted(app.id).await?;
        sent += 1;
    }
    Ok(sent)
}

/// Warns (log and mail) when the calendar has no holidays for this year, or
/// in December for the next one.
async fn calendar_reminder(
    apps: &Applications,
    queue: &ugem_queue::Queue,
    cfg: &Config,
    today: NaiveDate,
) -> Result<(), NotifyError> {
    // From 1 December the next year too (`Calendar::missing_years`).
    let years = apps.calendar().missing_years(today);
    if years.is_empty() {
        return Ok(());
    }
    tracing::warn!(
        ?years,
        "the working-day calendar has no holidays for these years; review [registration]"
    );
    let text = notices::calendar_review(cfg, &years);
    let to = [cfg.server.postmaster.to_string()];
    enqueue_notice(queue, apps.registry(), cfg, &to, &text).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Domain;
    use crate::model::applications::ApplicantCategory;
    use crate::registry::applications::{FixedClock, NewApplication};
    use crate::registry::{parse_contact, parse_server};

    struct World {
        _dir: tempfile::TempDir,
        queue: ugem_queue::Queue,
        registry: Arc<Registry>,
        cfg: Config,
    }

    async fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let (_, store) = crate::store::open(&dir.path().join("store")).unwrap();
        let registry = Arc::new(Registry::open(Arc::new(store)).await.unwrap());
        let queue = ugem_queue::Queue::open(
            &dir.path().join("queue"),
            ugem_queue::QueueOptions {
                min_free_bytes: 0,
                ..Default::default()
            },
        )
        .unwrap();
        let mut cfg = Config::default();
        // The subjects below are the English templates'.
        cfg.notify.languages = vec![crate::model::language::Lang::En];
        World {
            _dir: dir,
            queue,
            registry,
            cfg,
        }
    }

    async fn submit(apps: &Applications, received: Option<NaiveDate>) -> u64 {
        apps.submit(
            NewApplication {
                domain: Domain::parse("agency.example.kz").unwrap(),
                owner: "Agency".into(),
                category: ApplicantCategory::StateBody,
                head: "Head".into(),
                servers: vec![parse_server("95.59.10.1").unwrap()],
                contacts: vec![
                    parse_contact("IT <it@agency.example.kz>; mobile=+7 701 0000000").unwrap(),
                ],
                inbound: None,
                received_on: received,
                allow_wide_range: false,
                form: None,
                languages: Vec::new(),
            },
            "root",
        )
        .await
        .unwrap()
        .application
        .id
    }

    fn queued(q: &ugem_queue::Queue) -> Vec<ugem_queue::Envelope> {
        q.list(&ugem_queue::ListFilter::default()).unwrap()
    }

    #[tokio::test]
    async fn one_alert_per_application_per_day() {
        let w = world().await;
        let clock = Arc::new(FixedClock::on("2026-03-02".parse().unwrap()));
        let apps = Arc::new(Applications::with_clock(
            w.registry.clone(),
            &w.cfg.registration,
            clock.clone(),
        ));
        submit(&apps, None).await; // due 2026-03-10
        assert_eq!(alert_due(&apps, &w.queue, &w.cfg).await.unwrap(), 0);
        clock.set("2026-03-10".parse().unwrap());
        assert_eq!(alert_due(&apps, &w.queue, &w.cfg).await.unwrap(), 1);
        assert_eq!(alert_due(&apps, &w.queue, &w.cfg).await.unwrap(), 0);
        clock.set("2026-03-11".parse().unwrap());
        assert_eq!(alert_due(&apps, &w.queue, &w.cfg).await.unwrap(), 1);

        let q = queued(&w.queue);
        assert_eq!(q.len(), 2);
        for e in &q {
            assert_eq!(e.direction, ugem_queue::Direction::Local);
            assert_eq!(e.sender, "postmaster@gateway.example");
            assert_eq!(e.recipients.len(), 1);
            assert_eq!(e.recipients[0].address, "postmaster@gateway.example");
        }
        let subjects: Vec<String> = q
            .iter()
            .map(|e| {
                let body = w.queue.body(e.id).unwrap().unwrap();
                let m = mail_parser::MessageParser::default().parse(&body).unwrap();
                m.subject().unwrap().to_string()
            })
            .collect();
        assert!(
            subjects.contains(&"Due today: application #1 for agency.example.kz".to_string()),
            "{subjects:?}"
        );
        assert!(
            subjects.contains(
                &"Overdue: application #1 for agency.example.kz (due 2026-03-10)".to_string()
            ),
            "{subjects:?}"
        );
    }

    #[tokio::test]
    async fn the_calendar_reminder_asks_for_next_year_from_december() {
        let w = world().await;
        let clock = Arc::new(FixedClock::on("2027-11-30".parse().unwrap()));
        let apps = Applications::with_clock(w.registry.clone(), &w.cfg.registration, clock.clone());
        // The shipped calendar covers 2027: nothing in November...
        calendar_reminder(&apps, &w.queue, &w.cfg, apps.today())
            .await
            .unwrap();
        assert!(queued(&w.queue).is_empty());
        // ...and from 1 December a reminder that 2028 is missing.
        clock.set("2027-12-01".parse().unwrap());
        calendar_reminder(&apps, &w.queue, &w.cfg, apps.today())
            .await
            .unwrap();
        let q = queued(&w.queue);
        assert_eq!(q.len(), 1);
        let body = w.queue.body(q[0].id).unwrap().unwrap();
        let m = mail_parser::MessageParser::default().parse(&body).unwrap();
        assert_eq!(
            m.subject(),
            Some("Working-day calendar: no holidays configured for 2028")
        );
    }

    #[tokio::test]
    async fn the_loop_alerts_and_stops_when_told() {
        let w = world().await;
        let apps = Applications::from_config(w.registry.clone(), &w.cfg.registration);
        let received = apps.today() - chrono::Days::new(20);
        submit(&apps, Some(received)).await;
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(overdue_alerts(
            w.registry.clone(),
            w.queue.clone(),
            crate::config::Live::fixed(w.cfg.clone()),
            rx,
        ));
        let mut alerted = false;
        for _ in 0..100 {
            let rec = apps.get(1).await.unwrap().application;
            if rec.alerted_on == Some(apps.today()) {
                alerted = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(alerted, "no alert recorded");
        assert!(!queued(&w.queue).is_empty());
        tx.send(true).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("the loop stops")
            .unwrap();
    }
}
