//! The peer link over PostgreSQL: one connection per node that LISTENs on
//! [`CHANNEL`] and publishes with `pg_notify` on the same connection, so a
//! publish never waits for the pool the registry's calls use. Nothing is
//! stored: NOTIFY is fire-and-forget, which is what the governor's
//! observations need (a lost batch costs a little precision, never mail).
//! When the connection drops it is made again after [`RETRY`]; what is
//! published meanwhile is dropped, not sent late: another node would count
//! it as traffic of the moment it arrives.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::registry::{PEER_MESSAGE_MAX, PeerLink};

/// The channel the nodes' messages travel on (not the registry's: its
/// listeners reload the registry on every notification).
pub const CHANNEL: &str = "ugem_governor";

/// Pause between attempts to reconnect.
const RETRY: Duration = Duration::from_secs(1);

/// Messages waiting to be published: at the governor's 5 batches a second,
/// several seconds of a flood; beyond that the newest are dropped.
const OUTGOING: usize = 64;

/// Messages received and not yet read by the governor.
const INCOMING: usize = 1024;

/// Starts the link's connection task; it ends when both ends of the link
/// are dropped.
pub(super) fn spawn(pg: tokio_postgres::Config, tls: MakeRustlsConnect) -> PeerLink {
    let (send, mut out) = mpsc::channel::<String>(OUTGOING);
    let (deliver, received) = mpsc::channel::<String>(INCOMING);
    tokio::spawn(async move {
        let mut first = true;
        loop {
            if deliver.is_closed() {
                return;
            }
            match pg.connect(tls.clone()).await {
                Ok((client, mut conn)) => {
                    let to_governor = deliver.clone();
                    // The connection must be polled for requests to be
                    // answered; notifications arrive through the same poll.
                    let mut reader = tokio::spawn(async move {
                        while let Some(msg) = std::future::poll_fn(|cx| conn.poll_message(cx)).await
                        {
                            match msg {
                                Ok(AsyncMessage::Notification(n)) if n.channel() == CHANNEL => {
                                    // A governor that cannot keep up loses
                                    // observations, the SMTP path nothing.
                                    let _ = to_governor.try_send(n.payload().to_string());
                                }
                                Ok(_) => {}
                                Err(e) => {
                                    tracing::warn!(error = %e, "PostgreSQL peer link lost");
                                    break;
                                }
                            }
                        }
                    });
                    let ready = async {
                        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
                        client.prepare("SELECT pg_notify($1, $2)").await
                    };
                    match ready.await {
                        Ok(notify) => {
                            if !first {
                                let stale = discard(&mut out);
                                tracing::info!(dropped = stale, "PostgreSQL peer link back");
                            }
                            first = false;
                            loop {
                                tokio::select! {
                                    _ = &mut reader => break,
                                    m = out.recv() => {
                                        let Some(m) = m else {
                                            reader.abort();
                                            return;
                                        };
                                        if m.len() > PEER_MESSAGE_MAX {
                                            tracing::error!(bytes = m.len(), "peer message too long; dropped");
                                            continue;
                                        }
                                        if let Err(e) = client.execute(&notify, &[&CHANNEL, &m]).await {
                                            tracing::warn!(error = %e, "PostgreSQL peer link: publish failed");
                                            reader.abort();
                                            break;
                                        }
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "PostgreSQL peer link: LISTEN failed");
                            reader.abort();
                        }
                    }
                    drop(client);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "PostgreSQL peer link: cannot connect");
                }
            }
            tokio::time::sleep(RETRY).await;
            discard(&mut out);
        }
    });
    PeerLink { send, received }
}

/// Drops what waits to be published; how many messages that was.
fn discard(out: &mut mpsc::Receiver<String>) -> usize {
    let mut n = 0;
    while out.try_recv().is_ok() {
        n += 1;
    }
    n
}
