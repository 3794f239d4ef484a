//! A publisher with confirms that keeps itself connected.
//!
//! A supervisor task owns the connection: it connects, declares the topology, enables confirms and
//! publishes the live channel through a `watch`; when the connection dies it clears it and
//! reconnects with backoff. A publish that finds no channel wakes the supervisor and waits for one
//! until its deadline, so the first request after the broker returns already succeeds.

use std::{sync::Arc, time::Duration};

use lapin::{
    BasicProperties, Channel, Confirmation, Connection,
    options::{BasicPublishOptions, ConfirmSelectOptions},
};
use secrecy::SecretString;
use tokio::{
    sync::{Notify, watch},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use super::{
    connection::{CONNECT_TIMEOUT, connect},
    topology::Topology,
};

/// Why a message is not (known to be) on the broker. Every case means: not accepted, try again.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("broker unreachable")]
    Unavailable,
    #[error("broker blocked the connection (resource alarm)")]
    Blocked,
    #[error("no confirm from the broker within {0:?}")]
    Timeout(Duration),
    #[error("broker refused the message (nack)")]
    Nacked,
    #[error("no queue is bound for routing key {0}")]
    Unroutable(String),
    #[error("broker error: {0}")]
    Amqp(#[from] lapin::Error),
}

#[derive(Clone)]
struct Link {
    connection: Arc<Connection>,
    channel: Channel,
}

impl Link {
    fn alive(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

struct Shared {
    current: watch::Sender<Option<Link>>,
    /// Wakes the supervisor early: a publish failed or found no channel.
    wake: Notify,
}

/// Cheap to clone; all clones share one connection and channel.
#[derive(Clone)]
pub struct Publisher {
    shared: Arc<Shared>,
}

impl Publisher {
    /// Starts the supervisor; it runs until `cancel` fires. Returns at once: the first connection is
    /// made in the background (use [`Publisher::wait_ready`] to wait for it).
    pub fn start(
        url: SecretString,
        name: String,
        topology: Topology,
        cancel: CancellationToken,
    ) -> Self {
        let (current, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            current,
            wake: Notify::new(),
        });
        tokio::spawn(supervise(shared.clone(), url, name, topology, cancel));
        Self { shared }
    }

    /// True while a confirmed channel is open.
    pub fn is_ready(&self) -> bool {
        self.shared
            .current
            .borrow()
            .as_ref()
            .is_some_and(Link::alive)
    }

    /// Waits up to `timeout` for the first connection.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        self.link_until(Instant::now() + timeout).await.is_some()
    }

    /// Publishes persistently to `exchange` and waits for the broker's confirm, all within
    /// `timeout`. `mandatory`: a message no queue takes is an error, not a silent drop.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
        timeout: Duration,
    ) -> Result<(), PublishError> {
        let deadline = Instant::now() + timeout;
        let link = self
            .link_until(deadline)
            .await
            .ok_or(PublishError::Unavailable)?;
        if link.connection.status().blocked() {
            return Err(PublishError::Blocked);
        }
        let options = BasicPublishOptions {
            // Unroutable messages come back to us instead of vanishing.
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let confirmed = tokio::time::timeout_at(deadline, async {
            link.channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    options,
                    body,
                    properties,
                )
                .await?
                .await
        })
        .await;
        let result = match confirmed {
            Err(_) => Err(PublishError::Timeout(timeout)),
            Ok(Err(e)) => Err(PublishError::Amqp(e)),
            Ok(Ok(Confirmation::Ack(None))) => Ok(()),
            Ok(Ok(Confirmation::Ack(Some(_)))) => {
                Err(PublishError::Unroutable(routing_key.to_owned()))
            }
            Ok(Ok(Confirmation::Nack(_) | Confirmation::NotRequested)) => Err(PublishError::Nacked),
        };
        if matches!(
            result,
            Err(PublishError::Amqp(_) | PublishError::Timeout(_))
        ) {
            // Let the supervisor look at the connection now rather than at its next check.
            self.shared.wake.notify_one();
        }
        result
    }

    /// The live link, waiting (and waking the supervisor) until `deadline` if there is none.
    async fn link_until(&self, deadline: Instant) -> Option<Link> {
        let mut rx = self.shared.current.subscribe();
        loop {
            if let Some(link) = rx.borrow_and_update().as_ref().filter(|l| l.alive()) {
                return Some(link.clone());
            }
            self.shared.wake.notify_one();
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return None,
            }
        }
    }
}

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a live connection is looked at (besides being woken by a failed publish).
const HEALTH_CHECK: Duration = Duration::from_millis(500);

async fn supervise(
    shared: Arc<Shared>,
    url: SecretString,
    name: String,
    topology: Topology,
    cancel: CancellationToken,
) {
    let mut backoff = MIN_BACKOFF;
    while !cancel.is_cancelled() {
        match open(&url, &name, &topology).await {
            Ok(link) => {
                tracing::info!(connection = %name, "connected to RabbitMQ");
                backoff = MIN_BACKOFF;
                shared.current.send_replace(Some(link.clone()));
                while link.alive() {
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(HEALTH_CHECK) => {}
                        () = shared.wake.notified() => {}
                    }
                }
                shared.current.send_replace(None);
                if cancel.is_cancelled() {
                    let close = link.connection.close(200, "shutting down".into());
                    let _ = tokio::time::timeout(Duration::from_secs(2), close).await;
                    break;
                }
                tracing::warn!(connection = %name, "lost the RabbitMQ connection; reconnecting");
            }
            Err(error) => {
                tracing::warn!(connection = %name, %error, retry_in = ?backoff, "cannot reach RabbitMQ");
                // A waiting publish may wake us before the backoff is over: then try at once.
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                    () = shared.wake.notified() => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn open(url: &SecretString, name: &str, topology: &Topology) -> Result<Link, PublishError> {
    // Bounded as a whole: a connection that dies halfway must not leave an RPC pending forever.
    tokio::time::timeout(Duration::from_secs(15), open_unbounded(url, name, topology))
        .await
        .map_err(|_| PublishError::Unavailable)?
}

async fn open_unbounded(
    url: &SecretString,
    name: &str,
    topology: &Topology,
) -> Result<Link, PublishError> {
    let connection = connect(url, name, CONNECT_TIMEOUT)
        .await
        .map_err(|e| match e {
            super::connection::ConnectError::Amqp(e) => PublishError::Amqp(e),
            super::connection::ConnectError::Timeout(_)
            | super::connection::ConnectError::BadUrl => PublishError::Unavailable,
        })?;
    let channel = connection.create_channel().await?;
    topology.declare(&channel).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(Link {
        connection: Arc::new(connection),
        channel,
    })
}
