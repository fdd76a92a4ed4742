//! SMTP TLS reporting (RFC 8460, `[tlsrpt]`): the outbound TLS sessions to
//! MX hosts under a recipient domain's MTA-STS policy are counted per UTC
//! day in the local store ([`count`]); once a day the counts go to the
//! domains that publish a `_smtp._tls` record ([`send`]).
//!
//! - [`session`]: a connection attempt as a success or an RFC 8460 failure.
//! - [`report`]: the record, the JSON, the gzipped multipart/report mail.
//! - [`send`]: the daily run and staff's run of one day.

pub mod report;
pub mod send;
pub mod session;

use crate::model::tlsrpt::{ReportPolicy, SessionResult};
use crate::store::LocalStore;

/// Counts one session under `policy` for today (UTC), off the async
/// workers; a store error is logged, never the delivery's business.
pub fn count(store: &LocalStore, policy: ReportPolicy, result: SessionResult) {
    let store = store.clone();
    let day = chrono::Utc::now().date_naive();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = store.count_tls_session(day, &policy, &result) {
            tracing::warn!(domain = %policy.policy_domain, error = %e, "cannot count the TLS session for reporting");
        }
    });
}
