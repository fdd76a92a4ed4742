//! The configuration in force, replaceable while the gateway runs.
//!
//! [`Live`] holds an `Arc<Config>` in a tokio `watch` channel: readers take
//! the current one on each use ([`Live::current`]), tasks that sleep on an
//! interval wake on a change ([`Live::subscribe`]). A reload
//! ([`Live::reload`]) reads the source again with [`Config::examine`],
//! keeps the old configuration whole when the new one has problems, keeps
//! the old value of every key bound at start ([`RESTART_KEYS`]), lets the
//! parts that are rebuilt from it ([`Live::follow`]) prepare and refuse,
//! and only then swaps it in, logging each key that changed.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;

use super::{Config, ConfigError, ConfigProblem, ConfigSource, show};

/// Applies a prepared change; runs only once every follower agreed.
pub type Commit = Box<dyn FnOnce() + Send>;

/// Prepares a part of the gateway for a new configuration: its problems
/// refuse the reload, else the commit that puts the part in force.
pub type Follower = Box<dyn Fn(&Config) -> Result<Commit, Vec<ConfigProblem>> + Send + Sync>;

/// Keeps `old`'s value of one key in `new`.
type Keep = fn(&mut Config, &Config);

/// The keys read once at start (sockets bound, files opened, pools and
/// caches sized, tasks scheduled): a reload keeps their running value and
/// says that a restart is needed. Every other key applies on reload.
pub const RESTART_KEYS: &[(&str, Keep)] = &[
    ("server.hostname", |n, o| {
        n.server.hostname = o.server.hostname.clone()
    }),
    ("server.data_dir", |n, o| {
        n.server.data_dir = o.server.data_dir.clone()
    }),
    ("store.url", |n, o| n.store.url = o.store.url.clone()),
    ("store.password_file", |n, o| {
        n.store.password_file = o.store.password_file.clone()
    }),
    ("store.tls_ca_file", |n, o| {
        n.store.tls_ca_file = o.store.tls_ca_file.clone()
    }),
    ("store.node_name", |n, o| {
        n.store.node_name = o.store.node_name.clone()
    }),
    ("store.admin_url", |n, o| {
        n.store.admin_url = o.store.admin_url.clone()
    }),
    ("store.governor_sync", |n, o| {
        n.store.governor_sync = o.store.governor_sync
    }),
    ("server.log_format", |n, o| {
        n.server.log_format = o.server.log_format
    }),
    ("server.queue_cache_size", |n, o| {
        n.server.queue_cache_size = o.server.queue_cache_size
    }),
    ("server.queue_journal", |n, o| {
        n.server.queue_journal = o.server.queue_journal
    }),
    ("smtp.listen", |n, o| n.smtp.listen = o.smtp.listen.clone()),
    ("smtp.min_free_space", |n, o| {
        n.smtp.min_free_space = o.smtp.min_free_space
    }),
    ("smtp.verify_recipients", |n, o| {
        n.smtp.verify_recipients = o.smtp.verify_recipients
    }),
    ("smtp.verify_positive_ttl", |n, o| {
        n.smtp.verify_positive_ttl = o.smtp.verify_positive_ttl
    }),
    ("smtp.verify_negative_ttl", |n, o| {
        n.smtp.verify_negative_ttl = o.smtp.verify_negative_ttl
    }),
    ("smtp.verify_timeout", |n, o| {
        n.smtp.verify_timeout = o.smtp.verify_timeout
    }),
    ("smtp.verify_probes_per_minute", |n, o| {
        n.smtp.verify_probes_per_minute = o.smtp.verify_probes_per_minute
    }),
    ("delivery.nameservers", |n, o| {
        n.delivery.nameservers = o.delivery.nameservers.clone()
    }),
    ("delivery.mx_port", |n, o| {
        n.delivery.mx_port = o.delivery.mx_port
    }),
    ("delivery.max_connections", |n, o| {
        n.delivery.max_connections = o.delivery.max_connections
    }),
    ("delivery.max_connections_per_destination", |n, o| {
        n.delivery.max_connections_per_destination = o.delivery.max_connections_per_destination
    }),
    ("delivery.max_body_memory", |n, o| {
        n.delivery.max_body_memory = o.delivery.max_body_memory
    }),
    ("delivery.min_backoff", |n, o| {
        n.delivery.min_backoff = o.delivery.min_backoff
    }),
    ("delivery.max_backoff", |n, o| {
        n.delivery.max_backoff = o.delivery.max_backoff
    }),
    ("delivery.connect_timeout", |n, o| {
        n.delivery.connect_timeout = o.delivery.connect_timeout
    }),
    ("delivery.command_timeout", |n, o| {
        n.delivery.command_timeout = o.delivery.command_timeout
    }),
    ("delivery.data_timeout", |n, o| {
        n.delivery.data_timeout = o.delivery.data_timeout
    }),
    ("delivery.tls_ca_file", |n, o| {
        n.delivery.tls_ca_file = o.delivery.tls_ca_file.clone()
    }),
    ("delivery.dnssec_trust_anchor", |n, o| {
        n.delivery.dnssec_trust_anchor = o.delivery.dnssec_trust_anchor.clone()
    }),
    ("delivery.mta_sts", |n, o| {
        n.delivery.mta_sts = o.delivery.mta_sts
    }),
    ("delivery.mta_sts_port", |n, o| {
        n.delivery.mta_sts_port = o.delivery.mta_sts_port
    }),
    ("admin.listen", |n, o| n.admin.listen = o.admin.listen),
    ("admin.tls_cert", |n, o| {
        n.admin.tls_cert = o.admin.tls_cert.clone()
    }),
    ("admin.tls_key", |n, o| {
        n.admin.tls_key = o.admin.tls_key.clone()
    }),
    ("admin.audit_refused_retention", |n, o| {
        n.admin.audit_refused_retention = o.admin.audit_refused_retention
    }),
    ("admin.audit_retention", |n, o| {
        n.admin.audit_retention = o.admin.audit_retention
    }),
    ("registration.gateway_addresses", |n, o| {
        n.registration.gateway_addresses = o.registration.gateway_addresses.clone()
    }),
    ("governor.recipient_memory", |n, o| {
        n.governor.recipient_memory = o.governor.recipient_memory
    }),
    ("governor.housekeeping_interval", |n, o| {
        n.governor.housekeeping_interval = o.governor.housekeeping_interval
    }),
    ("governor.webhook_attempts", |n, o| {
        n.governor.webhook_attempts = o.governor.webhook_attempts
    }),
    ("governor.webhook_timeout", |n, o| {
        n.governor.webhook_timeout = o.governor.webhook_timeout
    }),
];

/// One key whose value differs between the running and the new
/// configuration; values as `config show` prints them (secrets redacted).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// `section.key`.
    pub key: String,
    /// The value in force before.
    pub old: Value,
    /// The value in the source now.
    pub new: Value,
}

/// What a reload did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reloaded {
    /// Keys now in force with their new value.
    pub changed: Vec<Change>,
    /// Keys changed in the source that keep their running value until a restart.
    pub restart_needed: Vec<Change>,
}

struct Inner {
    tx: watch::Sender<Arc<Config>>,
    /// None: built in code (tests, replay); there is nothing to read again.
    source: Option<ConfigSource>,
    followers: Mutex<Vec<Follower>>,
    /// One reload at a time, so that two cannot interleave their swaps.
    reloading: Mutex<()>,
}

/// The configuration in force; cheap to clone, shared by every component.
#[derive(Clone)]
pub struct Live {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field(
                "source",
                &self.inner.source.as_ref().map(ConfigSource::name),
            )
            .finish_non_exhaustive()
    }
}

impl Live {
    /// `cfg`, read from `source`, which reloads read again.
    pub fn new(cfg: Config, source: ConfigSource) -> Live {
        Live::build(cfg, Some(source))
    }

    /// `cfg` with no source (tests, replay): a reload is refused.
    pub fn fixed(cfg: Config) -> Live {
        Live::build(cfg, None)
    }

    fn build(cfg: Config, source: Option<ConfigSource>) -> Live {
        let (tx, _) = watch::channel(Arc::new(cfg));
        Live {
            inner: Arc::new(Inner {
                tx,
                source,
                followers: Mutex::new(Vec::new()),
                reloading: Mutex::new(()),
            }),
        }
    }

    /// The configuration in force now; hold it for one decision, not longer.
    pub fn current(&self) -> Arc<Config> {
        self.inner.tx.borrow().clone()
    }

    /// A receiver that sees every configuration put in force from now on.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Config>> {
        self.inner.tx.subscribe()
    }

    /// Registers a part rebuilt on each reload (the TLS certificate, the log
    /// filter); it is asked even when no key changed, so that renewed
    /// files are read again.
    pub fn follow(&self, f: Follower) {
        self.lock_followers().push(f);
    }

    fn lock_followers(&self) -> std::sync::MutexGuard<'_, Vec<Follower>> {
        self.inner
            .followers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the source again and puts what may change live in force; on
    /// any problem nothing changes and the problems are returned. Blocks
    /// (it reads files): call it off the async runtime.
    pub fn reload(&self) -> Result<Reloaded, ConfigError> {
        let Some(source) = &self.inner.source else {
            return Err(ConfigError {
                source_name: "(built in)".into(),
                problems: vec![ConfigProblem::new(
                    "",
                    "this configuration has no file to read again",
                )],
            });
        };
        let _one = self
            .inner
            .reloading
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let result = Config::examine(source).and_then(|new| {
            let old = self.current();
            let (new, report) = settle(&old, new);
            let followers = self.lock_followers();
            let mut commits = Vec::new();
            let mut problems = Vec::new();
            for f in followers.iter() {
                match f(&new) {
                    Ok(c) => commits.push(c),
                    Err(p) => problems.extend(p),
                }
            }
            if !problems.is_empty() {
                return Err(ConfigError {
                    source_name: source.name(),
                    problems,
                });
            }
            for c in commits {
                c();
            }
            // What is allowed but unwise is said again, as at start.
            for w in new.warnings() {
                tracing::warn!(key = %w.key, "{}", w.message);
            }
            self.inner.tx.send_replace(Arc::new(new));
            Ok(report)
        });
        log(&result);
        result
    }
}

/// The configuration to put in force: `new` with the running value of
/// every restart-only key; and what differs, key by key.
fn settle(old: &Config, mut new: Config) -> (Config, Reloaded) {
    let mut report = Reloaded::default();
    let (old_raw, new_raw) = (raw(old), raw(&new));
    let (old_shown, new_shown) = (show::effective(old), show::effective(&new));
    for (section, keys) in new_raw.as_object().into_iter().flatten() {
        for (key, value) in keys.as_object().into_iter().flatten() {
            // Raw values decide (a redacted token looks the same when changed).
            if old_raw.get(section).and_then(|s| s.get(key)) == Some(value) {
                continue;
            }
            let name = format!("{section}.{key}");
            let shown = |tree: &Value| tree[section.as_str()][key.as_str()].clone();
            let change = Change {
                key: name.clone(),
                old: shown(&old_shown),
                new: shown(&new_shown),
            };
            match RESTART_KEYS.iter().find(|(k, _)| *k == name) {
                Some((_, keep)) => {
                    keep(&mut new, old);
                    report.restart_needed.push(change);
                }
                None => report.changed.push(change),
            }
        }
    }
    report.changed.sort_by(|a, b| a.key.cmp(&b.key));
    report.restart_needed.sort_by(|a, b| a.key.cmp(&b.key));
    (new, report)
}

fn raw(cfg: &Config) -> Value {
    serde_json::to_value(cfg).expect("the configuration serializes")
}

/// A value as a log field: text unquoted, anything else as JSON.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One log line per change, per key left for a restart, per problem.
fn log(result: &Result<Reloaded, ConfigError>) {
    match result {
        Ok(r) => {
            for c in &r.changed {
                tracing::info!(key = %c.key, old = %plain(&c.old), new = %plain(&c.new), "configuration reloaded: key changed");
            }
            for c in &r.restart_needed {
                tracing::warn!(key = %c.key, running = %plain(&c.old), file = %plain(&c.new), "configuration reloaded: key changed but needs a restart; the running value stays");
            }
            tracing::info!(
                changed = r.changed.len(),
                restart_needed = r.restart_needed.len(),
                "configuration reloaded"
            );
        }
        Err(e) => {
            for p in &e.problems {
                tracing::error!(key = %p.key, "configuration reload refused: {}", p.message);
            }
            tracing::error!(
                source = %e.source_name,
                problems = e.problems.len(),
                "configuration reload refused; the running configuration stays"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::MINIMAL;

    /// The configurations of two versions of one file.
    fn versions(old: &str, new: &str) -> (Config, Config) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ugem.toml");
        let src = ConfigSource::File(path.clone());
        std::fs::write(&path, old).unwrap();
        let old = Config::examine_with_env(&src, &[]).unwrap();
        std::fs::write(&path, new).unwrap();
        (old, Config::examine_with_env(&src, &[]).unwrap())
    }

    #[test]
    fn every_restart_key_names_a_key() {
        let tree = show::effective(&Config::default());
        for (k, _) in RESTART_KEYS {
            let (section, key) = k.split_once('.').unwrap();
            assert!(tree[section].get(key).is_some(), "{k} is not a key");
        }
    }

    #[test]
    fn live_keys_change_and_restart_keys_keep_their_running_value() {
        let (old, new) = versions(
            MINIMAL,
            &format!(
                "{MINIMAL}[smtp]\nlisten = \"127.0.0.1:2600\"\nmax_recipients = 7\n[governor]\nsender_messages_per_minute = 3\nrecipient_memory = 1000\n"
            ),
        );
        let (put, report) = settle(&old, new);
        let keys = |v: &[Change]| v.iter().map(|c| c.key.clone()).collect::<Vec<_>>();
        assert_eq!(
            keys(&report.changed),
            ["governor.sender_messages_per_minute", "smtp.max_recipients"]
        );
        assert_eq!(
            keys(&report.restart_needed),
            ["governor.recipient_memory", "smtp.listen"]
        );
        assert_eq!(put.smtp.max_recipients, 7);
        assert_eq!(put.governor.sender_messages_per_minute, 3);
        assert_eq!(put.smtp.listen, old.smtp.listen);
        assert_eq!(put.governor.recipient_memory, old.governor.recipient_memory);
        // What is put in force differs from the old only by the live keys.
        let (_, again) = settle(&old, put);
        assert_eq!(keys(&again.changed), keys(&report.changed));
        assert!(again.restart_needed.is_empty());
    }

    #[test]
    fn a_changed_secret_is_reported_redacted() {
        let (old, new) = versions(MINIMAL, "[admin]\ntoken = \"abcdefghijklmnop\"\n");
        let (_, report) = settle(&old, new);
        assert_eq!(report.changed.len(), 1);
        assert_eq!(report.changed[0].key, "admin.token");
        assert_eq!(report.changed[0].new, Value::from(show::REDACTED));
    }

    #[test]
    fn a_bad_file_keeps_the_old_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ugem.toml");
        std::fs::write(&path, format!("{MINIMAL}[smtp]\nmax_recipients = 5\n")).unwrap();
        let src = ConfigSource::File(path.clone());
        let live = Live::new(Config::examine_with_env(&src, &[]).unwrap(), src);
        std::fs::write(&path, format!("{MINIMAL}[smtp]\nmax_recipients = 0\n")).unwrap();
        let err = live.reload().unwrap_err();
        assert_eq!(err.problems[0].key, "smtp.max_recipients");
        assert_eq!(live.current().smtp.max_recipients, 5);
        std::fs::write(&path, format!("{MINIMAL}[smtp]\nmax_recipients = 9\n")).unwrap();
        let rx = live.subscribe();
        let r = live.reload().unwrap();
        assert_eq!(r.changed[0].key, "smtp.max_recipients");
        assert_eq!(live.current().smtp.max_recipients, 9);
        assert!(rx.has_changed().unwrap());
    }

    #[test]
    fn a_follower_can_refuse_and_then_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ugem.toml");
        std::fs::write(&path, MINIMAL).unwrap();
        let src = ConfigSource::File(path.clone());
        let live = Live::new(Config::examine_with_env(&src, &[]).unwrap(), src);
        let applied = Arc::new(Mutex::new(Vec::new()));
        let seen = applied.clone();
        live.follow(Box::new(move |cfg: &Config| {
            let n = cfg.smtp.max_recipients;
            if n == 13 {
                return Err(vec![ConfigProblem::new("smtp.max_recipients", "unlucky")]);
            }
            let seen = seen.clone();
            Ok(Box::new(move || seen.lock().unwrap().push(n)) as Commit)
        }));
        std::fs::write(&path, format!("{MINIMAL}[smtp]\nmax_recipients = 13\n")).unwrap();
        assert_eq!(live.reload().unwrap_err().problems[0].message, "unlucky");
        assert_eq!(live.current().smtp.max_recipients, 100);
        std::fs::write(&path, format!("{MINIMAL}[smtp]\nmax_recipients = 12\n")).unwrap();
        live.reload().unwrap();
        assert_eq!(*applied.lock().unwrap(), [12]);
        assert!(Live::fixed(Config::default()).reload().is_err());
    }
}
