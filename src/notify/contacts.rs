//! Queues a notice to a domain's contacts and says what became of it: a
//! notice that cannot be queued never undoes the decision it reports.

use serde::Serialize;

use super::notices::Text;
use crate::config::Config;
use crate::model::domains::Contact;
use crate::registry::Registry;

/// What happened to a notice: queued (with its id) or why not.
#[derive(Debug, Clone, Serialize)]
pub struct NoticeOutcome {
    /// Who it is for.
    pub to: Vec<String>,
    /// The queue id, once queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued: Option<String>,
    /// The outgoing number, once queued (`2026-000123`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// Why it was not queued; the decision stands regardless.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Queues `text` to `contacts` (each address once); a failure is logged
/// and reported in the outcome, never raised.
pub async fn notify_contacts(
    queue: &ugem_queue::Queue,
    registry: &Registry,
    cfg: &Config,
    contacts: &[Contact],
    text: Text,
) -> NoticeOutcome {
    let mut to: Vec<String> = Vec::new();
    for c in contacts {
        if !to.iter().any(|t| t.eq_ignore_ascii_case(&c.email)) {
            to.push(c.email.clone());
        }
    }
    match super::enqueue_notice(queue, registry, cfg, &to, &text).await {
        Ok((id, number)) => NoticeOutcome {
            to,
            queued: Some(id.to_string()),
            number: Some(number),
            error: None,
        },
        Err(e) => {
            tracing::error!(error = %e, notice = text.name, "notice not queued");
            NoticeOutcome {
                to,
                queued: None,
                number: None,
                error: Some(e.to_string()),
            }
        }
    }
}
