//! The accept loop: connection limits in total and per client IP, one tokio
//! task per session.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::Gateway;
use super::session;

/// Bound SMTP sockets, not yet accepting.
pub struct Listeners {
    sockets: Vec<TcpListener>,
}

impl Listeners {
    /// Binds every address (fails on the first that cannot be bound).
    pub async fn bind(addrs: &[SocketAddr]) -> std::io::Result<Listeners> {
        let mut sockets = Vec::new();
        for a in addrs {
            let l = TcpListener::bind(a).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot listen on smtp.listen {a}: {e}"))
            })?;
            sockets.push(l);
        }
        Ok(Listeners { sockets })
    }

    /// The bound addresses (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// Accepts until `stop` turns true, then waits for the sessions to end
    /// (they see `stop` too and answer `421 4.3.2`). Sessions still running
    /// when `kill` turns true are dropped where they are.
    pub async fn serve(
        self,
        gw: Arc<Gateway>,
        stop: watch::Receiver<bool>,
        kill: watch::Receiver<bool>,
    ) {
        let tracker = Tracker::default();
        let mut tasks = tokio::task::JoinSet::new();
        for l in self.sockets {
            tasks.spawn(accept_loop(
                l,
                gw.clone(),
                tracker.clone(),
                stop.clone(),
                kill.clone(),
            ));
        }
        while tasks.join_next().await.is_some() {}
        // Wait for the sessions in flight (they see `stop` and wind down).
        while tracker.total() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

async fn accept_loop(
    l: TcpListener,
    gw: Arc<Gateway>,
    tracker: Tracker,
    mut stop: watch::Receiver<bool>,
    kill: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            r = l.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = crate::shutdown::stopped(&mut stop) => return,
        };
        let _ = stream.set_nodelay(true);
        let ip = crate::policy::canonical_ip(peer.ip());
        let limits = &gw.cfg.current().smtp;
        match tracker.admit(ip, limits.max_connections, limits.max_connections_per_ip) {
            Ok(guard) => {
                let gw = gw.clone();
                let stop = stop.clone();
                let mut kill = kill.clone();
                tokio::spawn(async move {
                    let _guard = guard;
                    tokio::select! {
                        _ = session::run(gw, stream, peer, stop) => {}
                        _ = crate::shutdown::stopped(&mut kill) => {}
                    }
                });
            }
            Err(why) => {
                tokio::spawn(refuse(stream, why));
            }
        }
    }
}

async fn refuse(mut stream: TcpStream, why: &'static str) {
    let line = format!("421 4.7.0 {why}, try again later\r\n");
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let _ = stream.write_all(line.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Counts sessions in total and per client IP.
#[derive(Clone, Default)]
struct Tracker {
    inner: Arc<Mutex<TrackerInner>>,
}

#[derive(Default)]
struct TrackerInner {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Releases a session's slot when dropped.
struct Slot {
    tracker: Tracker,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self.tracker.inner.lock().unwrap_or_else(|p| p.into_inner());
        t.total = t.total.saturating_sub(1);
        if let Some(n) = t.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                t.per_ip.remove(&self.ip);
            }
        }
    }
}

impl Tracker {
    fn admit(&self, ip: IpAddr, max_total: usize, max_per_ip: usize) -> Result<Slot, &'static str> {
        let mut t = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if t.total >= max_total {
            return Err("too many connections in total");
        }
        let n = t.per_ip.entry(ip).or_insert(0);
        if *n >= max_per_ip {
            return Err("too many connections from your IP address");
        }
        *n += 1;
        t.total += 1;
        Ok(Slot {
            tracker: self.clone(),
            ip,
        })
    }

    fn total(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}
