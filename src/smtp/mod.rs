//! Inbound SMTP: protocol parsing (pure), session state machine, listener.
//!
//! - [`line`], [`command`], [`data`]: bytes in, typed values out; no I/O,
//!   fuzzed. The reply type is [`crate::reply`] (ground floor: delivery,
//!   policy and the governor use it too), re-exported here as `reply`.
//! - [`session`]: one client, from greeting to QUIT, over any byte stream
//!   (one file per verb); asks [`crate::policy`] at MAIL and RCPT and hands
//!   accepted messages to the queue.
//! - [`listener`]: the accept loop and connection limits.
//! - [`spool`]: large message data on disk instead of in memory.
//! - [`crate::tls`]: STARTTLS configuration (ground floor: the admin API and
//!   `config check` load certificates with it), re-exported here as `tls`.

pub mod command;
pub mod data;
pub mod line;
pub mod listener;
pub mod session;
pub mod spool;

// Moved to the ground floor (see tests/layering.rs); the old paths stay.
pub use crate::reply;
pub use crate::tls;

use std::sync::Arc;

use crate::config::live::Commit;
use crate::config::{Config, ConfigProblem, Live};
use crate::registry::Registry;
use crate::store::local::ConnectionLog;

/// Everything a session needs, shared by all sessions.
pub struct Gateway {
    /// The configuration in force (a session takes it once, at its start).
    pub cfg: Live,
    /// The registry (MAIL/RCPT decisions read its snapshot).
    pub registry: Arc<Registry>,
    /// The spool.
    pub queue: ugem_queue::Queue,
    /// Session records.
    pub connlog: ConnectionLog,
    /// STARTTLS configuration, when certificates are configured.
    pub tls: tls::TlsHolder,
    /// Rate limits and the anomaly detector (checked at connect, MAIL, RCPT).
    pub governor: Arc<crate::governor::Governor>,
    /// Inbound recipient verification (`smtp.verify_recipients`).
    pub verifier: Option<Arc<crate::delivery::verify::Verifier>>,
    /// Where large messages are spooled (`data_dir/spool`).
    pub spool_dir: Arc<std::path::Path>,
    /// DKIM signers of the registered domains (shared with the admin API,
    /// which refreshes them when staff change a key).
    pub dkim: crate::dkim::Signers,
}

impl Gateway {
    /// Builds the shared state; loads the TLS certificate when configured.
    pub fn new(
        cfg: Live,
        registry: Arc<Registry>,
        queue: ugem_queue::Queue,
        connlog: ConnectionLog,
        governor: Arc<crate::governor::Governor>,
        verifier: Option<Arc<crate::delivery::verify::Verifier>>,
        dkim: crate::dkim::Signers,
    ) -> Result<Arc<Gateway>, tls::TlsError> {
        let start = cfg.current();
        let tls = tls::TlsHolder::new(certificate(&start)?);
        let spool_dir = spool::dir(&start.server.data_dir).into();
        Ok(Arc::new(Gateway {
            spool_dir,
            cfg,
            registry,
            queue,
            connlog,
            tls,
            governor,
            verifier,
            dkim,
        }))
    }

    /// Makes the STARTTLS certificate follow reloads: each reload reads
    /// the files of `smtp.tls_cert` and `smtp.tls_key` again (a renewed
    /// certificate under the same names), and one that does not load
    /// refuses the reload, so the old certificate stays in service.
    pub fn follow_reloads(&self) {
        let holder = self.tls.clone();
        self.cfg.follow(Box::new(move |cfg: &Config| {
            let loaded = certificate(cfg)
                .map_err(|e| vec![ConfigProblem::new("smtp.tls_cert", e.to_string())])?;
            let holder = holder.clone();
            Ok(Box::new(move || {
                if loaded.is_some() {
                    tracing::info!("TLS certificate reloaded");
                }
                holder.set(loaded);
            }) as Commit)
        }));
    }
}

/// The STARTTLS certificate `cfg` names (None: STARTTLS not offered).
fn certificate(cfg: &Config) -> Result<Option<Arc<rustls::ServerConfig>>, tls::TlsError> {
    match (&cfg.smtp.tls_cert, &cfg.smtp.tls_key) {
        (Some(c), Some(k)) => tls::load(c, k).map(Some),
        _ => Ok(None),
    }
}
