//! What suspension and restore do to the queue, shared by the admin API and
//! the automatic governor: a suspended scope's queued outbound mail is held;
//! on restore it is released or deleted.

use ugem_queue::{Direction, Envelope, Queue, QueueError};

use crate::model::suspensions::Scope;

/// True for the queued outbound mail of `scope`.
pub fn scope_predicate(scope: &Scope) -> impl Fn(&Envelope) -> bool + Send + Sync + 'static {
    let scope = scope.clone();
    move |e: &Envelope| {
        e.direction == Direction::Outbound
            && match &scope {
                Scope::Domain(d) => e
                    .domain
                    .as_deref()
                    .is_some_and(|x| x.eq_ignore_ascii_case(d.as_str())),
                Scope::Sender(s) => e.sender.eq_ignore_ascii_case(s),
            }
    }
}

/// Holds the queued outbound mail of `scope`; returns how many messages.
pub async fn hold_scope_mail(
    queue: &Queue,
    scope: &Scope,
    reason: &str,
) -> Result<usize, QueueError> {
    queue
        .hold_where(reason.to_string(), scope_predicate(scope))
        .await
}

/// Releases (or deletes) the held outbound mail of `scope`.
pub async fn release_scope_mail(
    queue: &Queue,
    scope: &Scope,
    release: bool,
) -> Result<usize, QueueError> {
    if release {
        queue.release_where(scope_predicate(scope)).await
    } else {
        queue.delete_where(scope_predicate(scope)).await
    }
}
