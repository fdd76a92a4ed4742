//! The change feed: one connection per node that LISTENs on the channel the
//! schema's triggers notify, and bumps a counter that the registry follows.
//! When the connection drops it is made again, and the counter is bumped
//! once more then: notifications sent while it was down are lost, so the
//! follower must reload everything, not just what was named.

use std::time::Duration;

use tokio::sync::watch;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::schema::CHANNEL;

/// Pause between attempts to reconnect.
const RETRY: Duration = Duration::from_secs(1);

/// Starts the listener; the receiver changes on every notification and on
/// every reconnection. The task ends when every receiver is gone.
pub(super) fn spawn(pg: tokio_postgres::Config, tls: MakeRustlsConnect) -> watch::Receiver<u64> {
    let (tx, rx) = watch::channel(0u64);
    tokio::spawn(async move {
        let mut first = true;
        while !tx.is_closed() {
            match pg.connect(tls.clone()).await {
                Ok((client, mut conn)) => {
                    let bump = tx.clone();
                    // The connection must be polled for the LISTEN to be
                    // answered; messages arrive through the same poll.
                    let reader = tokio::spawn(async move {
                        while let Some(msg) = std::future::poll_fn(|cx| conn.poll_message(cx)).await
                        {
                            match msg {
                                Ok(AsyncMessage::Notification(_)) => {
                                    bump.send_modify(|n| *n += 1);
                                }
                                Ok(_) => {}
                                Err(e) => {
                                    tracing::warn!(error = %e, "PostgreSQL change feed lost");
                                    break;
                                }
                            }
                        }
                    });
                    match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                        Ok(()) => {
                            if !first {
                                tracing::info!("PostgreSQL change feed back");
                            }
                            // Whatever changed while nobody listened.
                            tx.send_modify(|n| *n += 1);
                            first = false;
                            tokio::select! {
                                _ = reader => {}
                                _ = tx.closed() => return,
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "PostgreSQL change feed: LISTEN failed");
                            reader.abort();
                        }
                    }
                    drop(client);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "PostgreSQL change feed: cannot connect");
                }
            }
            tokio::time::sleep(RETRY).await;
        }
    });
    rx
}
