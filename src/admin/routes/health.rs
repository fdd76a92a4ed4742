//! Health, readiness and the Prometheus scrape (no token).

use super::*;

pub(super) async fn readyz(State(st): State<AdminState>) -> impl IntoResponse {
    if st.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

/// Prometheus scrape (no token, like the health checks: the admin listener
/// belongs on an internal network).
pub(super) async fn metrics(State(st): State<AdminState>) -> Result<impl IntoResponse, ApiError> {
    let queue = st.queue.clone();
    let store = st.store.clone();
    let snap = st.registry.snapshot();
    // While the shared store is out of reach the scrape still answers (the
    // outage is when the rest matters most), with the audit size as last read.
    static LAST_AUDIT: std::sync::Mutex<crate::model::audit::AuditSize> =
        std::sync::Mutex::new(crate::model::audit::AuditSize {
            records: 0,
            bytes: 0,
        });
    let audit = match st.audit.audit_size().await {
        Ok(a) => {
            *LAST_AUDIT.lock().unwrap_or_else(|p| p.into_inner()) = a;
            a
        }
        Err(crate::store::StoreError::Unavailable(_)) => {
            *LAST_AUDIT.lock().unwrap_or_else(|p| p.into_inner())
        }
        Err(e) => return Err(e.into()),
    };
    let mut g = tokio::task::spawn_blocking(move || -> Result<crate::metrics::Gauges, ApiError> {
        let c = queue.counts()?;
        let now = ugem_queue::unix_ms();
        // One pass over the envelopes for generated mail; fine at scrape
        // intervals for queues of tens of thousands.
        let backlog = queue
            .list(&ugem_queue::ListFilter::default())?
            .iter()
            .filter(|e| e.direction == ugem_queue::Direction::Local)
            .count() as u64;
        let stats = queue.stats();
        Ok(crate::metrics::Gauges {
            queue: vec![
                ("active", c.active as u64),
                ("deferred", c.deferred as u64),
                ("held", c.held as u64),
                ("leased", c.leased as u64),
            ],
            queue_bytes: c.bytes,
            oldest_age_seconds: c
                .oldest_arrival_ms
                .map(|t| now.saturating_sub(t) as f64 / 1000.0)
                .unwrap_or(0.0),
            notification_backlog: backlog,
            suspensions: Vec::new(),
            store_bytes: store.size_bytes(),
            queue_file_bytes: std::fs::metadata(queue.dir().join(ugem_queue::DB_FILE))
                .map(|m| m.len())
                .unwrap_or(0),
            journal_file_bytes: std::fs::metadata(queue.dir().join(ugem_queue::JOURNAL_FILE))
                .map(|m| m.len())
                .unwrap_or(0),
            queue_syncs: vec![("database", stats.commits), ("journal", stats.journaled)],
            queue_restored: stats.restored,
            audit_records: audit.records,
            audit_bytes: audit.bytes,
        })
    })
    .await
    .map_err(|e| ApiError::bad_request(e.to_string()))??;
    let (mut domains, mut senders) = (0u64, 0u64);
    for s in snap.active_suspensions() {
        match s.scope {
            Scope::Domain(_) => domains += 1,
            Scope::Sender(_) => senders += 1,
        }
    }
    g.suspensions = vec![("domain", domains), ("sender", senders)];
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::CONTENT_TYPE,
        )],
        crate::metrics::render(&g),
    ))
}
