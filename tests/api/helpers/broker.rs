//! A test's view of RabbitMQ: a random prefix, probe queues, and cleanup of everything under it.

use std::time::Duration;

use futures::StreamExt;
use lapin::{
    Channel, Connection, ConnectionProperties,
    message::Delivery,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicGetOptions, ExchangeDeleteOptions,
        QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    types::FieldTable,
};
use shopify_sync::broker::Topology;

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL").unwrap_or_else(|_| AMQP_URL.to_owned())
}

/// A connection of the test's own, beside the app's.
pub struct TestBroker {
    pub prefix: String,
    pub connection: Connection,
    pub channel: Channel,
}

impl TestBroker {
    pub async fn new(prefix: String) -> Self {
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .expect("RabbitMQ at TEST_AMQP_URL");
        let channel = connection.create_channel().await.expect("channel");
        Self {
            prefix,
            connection,
            channel,
        }
    }

    /// An exclusive queue (gone with this connection) bound to `exchange` with `key`, as another
    /// service listening to the webhooks exchange would bind one.
    pub async fn probe(&self, exchange: &str, key: &str) -> Probe {
        let name = format!("{}.probe.{}", self.prefix, uuid::Uuid::new_v4().simple());
        self.channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions::exclusive(),
                FieldTable::default(),
            )
            .await
            .expect("declare probe queue");
        self.channel
            .queue_bind(
                name.as_str().into(),
                exchange.into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind probe queue");
        Probe {
            name,
            channel: self.channel.clone(),
        }
    }

    /// Number of ready messages in `queue`.
    pub async fn depth(&self, queue: &str) -> u32 {
        self.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map(|q| q.message_count())
            .unwrap_or(0)
    }
}

/// Deletes every queue and exchange of `topology` (called when a test ends).
pub async fn delete_topology(topology: &Topology) {
    let Ok(connection) = Connection::connect(&amqp_url(), ConnectionProperties::default()).await
    else {
        eprintln!("cannot connect to RabbitMQ to clean up");
        return;
    };
    for queue in topology.queue_names() {
        // A fresh channel each time: a failed delete closes its channel.
        if let Ok(channel) = connection.create_channel().await {
            let _ = channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
    }
    for exchange in topology.exchange_names() {
        if let Ok(channel) = connection.create_channel().await {
            let _ = channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
    }
    let _ = connection.close(200, "test done".into()).await;
}

/// A queue the test reads from.
pub struct Probe {
    pub name: String,
    channel: Channel,
}

impl Probe {
    /// The next message, waiting up to `timeout`.
    pub async fn next(&self, timeout: Duration) -> Option<Delivery> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let got = self
                .channel
                .basic_get(self.name.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .expect("basic.get");
            if let Some(message) = got {
                return Some(message.delivery);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Consumes everything that arrives within `window` (for counting).
    pub async fn drain(&self, window: Duration) -> Vec<Delivery> {
        let mut consumer = self
            .channel
            .basic_consume(
                self.name.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume probe");
        let mut seen = Vec::new();
        while let Ok(Some(Ok(delivery))) = tokio::time::timeout(window, consumer.next()).await {
            delivery.ack(BasicAckOptions::default()).await.expect("ack");
            seen.push(delivery);
        }
        seen
    }
}

/// Deletes a topology the test declared itself when the test ends, failed or not.
pub struct TopologyGuard(pub Topology);

impl Drop for TopologyGuard {
    fn drop(&mut self) {
        let topology = self.0.clone();
        super::block_on_cleanup(async move { delete_topology(&topology).await });
    }
}
