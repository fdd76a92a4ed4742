//! The connection log: one record per SMTP session, written in batches.

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use chrono::{DateTime, Utc};
use redb::{ReadableTable, TableDefinition};

use super::LocalStore;
use crate::model::connections::{ConnectionFilter, ConnectionRecord};
use crate::store::StoreError;
use crate::store::db::{decode, encode};

/// Key: start time in ms (high 64 bits) and a sequence number, so that
/// records sort by time and pruning is a range delete.
pub(crate) const TABLE: TableDefinition<u128, &[u8]> = TableDefinition::new("connections");

fn peer_ip(peer: &str) -> Option<std::net::IpAddr> {
    peer.parse::<std::net::SocketAddr>()
        .map(|s| s.ip())
        .or_else(|_| peer.parse())
        .ok()
}

impl LocalStore {
    /// Writes a batch of session records (not fsynced: see [`ConnectionLog`]).
    pub fn insert_connections(
        &self,
        recs: &[ConnectionRecord],
        durable: bool,
    ) -> Result<(), StoreError> {
        let body = |tx: &redb::WriteTransaction| {
            let mut t = tx.open_table(TABLE)?;
            for rec in recs {
                let ms = rec.started_at.timestamp_millis().max(0) as u128;
                // Find a free key for this millisecond (several sessions may start in it).
                let mut key = ms << 64;
                while t.get(key)?.is_some() {
                    key += 1;
                }
                t.insert(key, encode(rec).as_slice())?;
            }
            Ok(())
        };
        if durable {
            self.db.write(body)
        } else {
            self.db.write_lazy(body)
        }
    }

    /// Session records matching `f`, newest first.
    pub fn list_connections(
        &self,
        f: &ConnectionFilter,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        let limit = f.limit.unwrap_or(100);
        let since = f
            .since
            .map(|t| (t.timestamp_millis().max(0) as u128) << 64)
            .unwrap_or(0);
        let domain = f.domain.as_ref().map(|d| d.to_ascii_lowercase());
        self.db.read(|tx| {
            let t = tx.open_table(TABLE)?;
            let mut out = Vec::new();
            for row in t.range(since..)?.rev() {
                if out.len() >= limit {
                    break;
                }
                let (k, v) = row?;
                let rec: ConnectionRecord = decode("connections", k.value(), v.value())?;
                if let Some(d) = &domain
                    && !rec.domains.iter().chain(&rec.claimed).any(|x| x == d)
                {
                    continue;
                }
                if let Some(ip) = f.ip
                    && peer_ip(&rec.peer) != Some(ip)
                {
                    continue;
                }
                out.push(rec);
            }
            Ok(out)
        })
    }

    /// Deletes records of sessions that started before `before`; returns how many.
    pub fn prune_connections(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let end = (before.timestamp_millis().max(0) as u128) << 64;
        self.db.write(|tx| {
            let mut t = tx.open_table(TABLE)?;
            let keys: Vec<u128> = t
                .range(..end)?
                .map(|r| r.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()?;
            for k in &keys {
                t.remove(*k)?;
            }
            Ok(keys.len() as u64)
        })
    }
}

/// Batches session records off the SMTP hot path: sessions add their record
/// to a shared list; a thread writes whatever has gathered in one transaction.
/// Only the first record of a batch wakes the thread, which then lets the
/// batch gather for [`GATHER`]: one thread wake-up per batch, not one per
/// session (at one connection at a time a wake-up per session was a
/// measurable share of each message's cost, `bench/results/2026-12-02-c1-profile.txt`).
/// Batches are not fsynced one by one (a lost last second of the log is
/// acceptable); one durable commit every few seconds bounds the loss.
#[derive(Clone)]
pub struct ConnectionLog {
    pending: Pending,
    tx: mpsc::Sender<Msg>,
}

/// Records waiting for the writer thread (which holds no sender, so that dropping the last
/// handle ends it).
type Pending = Arc<Mutex<Vec<ConnectionRecord>>>;

enum Msg {
    /// The first record of a batch arrived.
    Wake,
    Flush(mpsc::Sender<()>),
}

/// How long a batch gathers after its first record.
const GATHER: Duration = Duration::from_millis(50);

impl ConnectionLog {
    /// Starts the writer thread.
    pub fn start(store: LocalStore) -> ConnectionLog {
        let (tx, rx) = mpsc::channel::<Msg>();
        let pending = Pending::default();
        let p = pending.clone();
        std::thread::Builder::new()
            .name("ugem-connlog".into())
            .spawn(move || writer(store, rx, p))
            .expect("spawn connection log thread");
        ConnectionLog { pending, tx }
    }

    /// Queues one record for writing.
    pub fn record(&self, rec: ConnectionRecord) {
        let first = {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            p.push(rec);
            p.len() == 1
        };
        if first {
            let _ = self.tx.send(Msg::Wake);
        }
    }

    /// Writes everything queued so far durably, then returns.
    pub fn flush(&self) {
        let (done_tx, done_rx) = mpsc::channel();
        if self.tx.send(Msg::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(Duration::from_secs(10));
        }
    }
}

fn writer(store: LocalStore, rx: mpsc::Receiver<Msg>, pending: Pending) {
    let mut last_durable = std::time::Instant::now();
    let mut dirty = false;
    loop {
        let mut msgs = Vec::new();
        let mut gone = false;
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(m) => msgs.push(m),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => gone = true,
        }
        if matches!(msgs.first(), Some(Msg::Wake)) {
            // The batch gathers; a flush asked meanwhile ends the wait early.
            match rx.recv_timeout(GATHER) {
                Ok(m) => msgs.push(m),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => gone = true,
            }
        }
        msgs.extend(rx.try_iter());
        let waiters = msgs
            .into_iter()
            .filter_map(|m| match m {
                Msg::Flush(w) => Some(w),
                Msg::Wake => None,
            })
            .collect();
        write(&store, &pending, waiters, &mut dirty, &mut last_durable);
        if gone {
            break;
        }
    }
}

/// Writes the gathered records (durably when someone waits or it is time), then answers.
fn write(
    store: &LocalStore,
    pending: &Mutex<Vec<ConnectionRecord>>,
    waiters: Vec<mpsc::Sender<()>>,
    dirty: &mut bool,
    last_durable: &mut std::time::Instant,
) {
    let batch = std::mem::take(&mut *pending.lock().unwrap_or_else(|p| p.into_inner()));
    let durable = !waiters.is_empty() || last_durable.elapsed() > Duration::from_secs(5);
    if !batch.is_empty() || (durable && *dirty) {
        match store.insert_connections(&batch, durable) {
            Ok(()) => *dirty = !durable,
            Err(e) => {
                tracing::error!(error = %e, lost = batch.len(), "connection log write failed")
            }
        }
        if durable {
            *last_durable = std::time::Instant::now();
        }
    }
    for w in waiters {
        let _ = w.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::connections::*;

    fn rec(peer: &str, domain: &str, at: DateTime<Utc>) -> ConnectionRecord {
        ConnectionRecord {
            session: "s1".into(),
            peer: peer.into(),
            ehlo: Some("mail.agency.example.kz".into()),
            tls: None,
            domains: vec![domain.into()],
            claimed: Vec::new(),
            mail_count: 1,
            rcpt_count: 2,
            messages: 1,
            queue_ids: vec![],
            refusals: vec![Refusal {
                command: "RCPT".into(),
                code: 550,
                text: "5.7.1 relaying denied".into(),
            }],
            started_at: at,
            ended_at: at,
            bytes_in: 100,
            bytes_out: 200,
            close: "quit".into(),
        }
    }

    #[test]
    fn filter_and_prune() {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::store::open(dir.path()).unwrap().0;
        let now = Utc::now();
        let old = now - chrono::Duration::days(100);
        let log = ConnectionLog::start(s.clone());
        log.record(rec("192.0.2.1:4000", "a.example.kz", old));
        log.record(rec("192.0.2.2:4000", "b.example.kz", now));
        log.record(rec("192.0.2.2:4001", "b.example.kz", now));
        log.flush();
        let all = s.list_connections(&ConnectionFilter::default()).unwrap();
        assert_eq!(all.len(), 3);
        let b = s
            .list_connections(&ConnectionFilter {
                domain: Some("B.example.kz".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(b.len(), 2);
        let ip = s
            .list_connections(&ConnectionFilter {
                ip: Some("192.0.2.1".parse().unwrap()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(ip.len(), 1);
        assert_eq!(
            s.prune_connections(now - chrono::Duration::days(90))
                .unwrap(),
            1
        );
        assert_eq!(
            s.list_connections(&ConnectionFilter::default())
                .unwrap()
                .len(),
            2
        );
    }
}
