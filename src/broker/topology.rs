//! Every exchange, queue and binding of the service, declared idempotently by each process that
//! needs them.
//!
//! ```text
//! {p}.webhooks (topic) ──explicit bindings──▶ {p}.customers, {p}.orders, {p}.compliance, {p}.app, {p}.bulk
//!       │ alternate-exchange: any topic no queue is bound to
//!       ▼
//! {p}.unrouted (fanout) ──▶ {p}.other   (recorded `ignored`, never lost)
//!
//! {p}.retry.<delay> (fanout) ──▶ queue {p}.retry.<delay>, x-message-ttl = delay,
//!                                  dead-letters back to {p}.webhooks with the original routing key
//! {p}.dead_letter (fanout) ──▶ queue {p}.dead_letter
//! ```
//!
//! Retry exchanges are fanout so a message keeps the routing key it was published with, and the
//! tier queue hands exactly that key back to `{p}.webhooks` when its TTL runs out.

use std::time::Duration;

use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, ShortString},
};

use crate::settings::{QueueType, Settings};

/// A work queue and the routing keys bound to it.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    pub name: &'static str,
    pub routing_keys: &'static [&'static str],
}

/// The work queues. Each topic a handler exists for is bound explicitly to one of them; anything
/// else reaches `{p}.other` through the alternate exchange.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "customers",
        routing_keys: &[
            "customers.create",
            "customers.update",
            "customers.enable",
            "customers.disable",
            "customers.delete",
        ],
    },
    Family {
        name: "orders",
        routing_keys: &[
            "orders.create",
            "orders.updated",
            "orders.paid",
            "orders.cancelled",
            "orders.fulfilled",
            "orders.partially_fulfilled",
            "orders.edited",
            "orders.delete",
        ],
    },
    Family {
        name: "compliance",
        routing_keys: &["customers.data_request", "customers.redact", "shop.redact"],
    },
    Family {
        name: "app",
        routing_keys: &["app.uninstalled"],
    },
    Family {
        name: "bulk",
        routing_keys: &["bulk_operations.finish"],
    },
    Family {
        name: "other",
        routing_keys: &[],
    },
];

/// How many times a quorum queue redelivers a message whose consumer died before settling it,
/// before dead-lettering it: the net for a message that kills the process.
pub const DELIVERY_LIMIT: i64 = 10;

/// Names and declaration of the topology for one `AMQP_PREFIX`.
#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
    queue_type: QueueType,
    retry_delays: Vec<Duration>,
}

impl Topology {
    pub fn new(settings: &Settings) -> Self {
        Self {
            prefix: settings.amqp_prefix.clone(),
            queue_type: settings.queue_type,
            retry_delays: settings.retry_delays.clone(),
        }
    }

    /// The topic exchange the receiver publishes to.
    pub fn webhooks_exchange(&self) -> String {
        format!("{}.webhooks", self.prefix)
    }

    /// Fanout exchange for topics no work queue is bound to (the alternate exchange).
    pub fn unrouted_exchange(&self) -> String {
        format!("{}.unrouted", self.prefix)
    }

    /// Exchange and queue (same name) of dead letters.
    pub fn dead_letter(&self) -> String {
        format!("{}.dead_letter", self.prefix)
    }

    pub fn work_queue(&self, family: &str) -> String {
        format!("{}.{family}", self.prefix)
    }

    /// Exchange and queue (same name) of retry tier `tier` (0-based).
    pub fn retry_tier(&self, tier: usize) -> Option<String> {
        let delay = self.retry_delays.get(tier)?;
        Some(format!("{}.retry.{}", self.prefix, delay_name(*delay)))
    }

    pub fn retry_delays(&self) -> &[Duration] {
        &self.retry_delays
    }

    /// Every queue name, for operators and for tests that clean up after themselves.
    pub fn queue_names(&self) -> Vec<String> {
        let mut names: Vec<String> = FAMILIES.iter().map(|f| self.work_queue(f.name)).collect();
        names.extend((0..self.retry_delays.len()).filter_map(|t| self.retry_tier(t)));
        names.push(self.dead_letter());
        names.dedup();
        names
    }

    /// Every exchange name.
    pub fn exchange_names(&self) -> Vec<String> {
        let mut names = vec![
            self.webhooks_exchange(),
            self.unrouted_exchange(),
            self.dead_letter(),
        ];
        names.extend((0..self.retry_delays.len()).filter_map(|t| self.retry_tier(t)));
        names.dedup();
        names
    }

    /// Declares everything; safe to run any number of times and from several processes at once.
    pub async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        let webhooks = self.webhooks_exchange();
        let unrouted = self.unrouted_exchange();
        let dead_letter = self.dead_letter();

        // The alternate exchange first, so no message published meanwhile is unroutable.
        declare_exchange(
            channel,
            &unrouted,
            ExchangeKind::Fanout,
            FieldTable::default(),
        )
        .await?;
        let mut args = FieldTable::default();
        args.insert("alternate-exchange".into(), long_string(&unrouted));
        declare_exchange(channel, &webhooks, ExchangeKind::Topic, args).await?;
        declare_exchange(
            channel,
            &dead_letter,
            ExchangeKind::Fanout,
            FieldTable::default(),
        )
        .await?;

        for family in FAMILIES {
            let queue = self.work_queue(family.name);
            let mut args = self.queue_args();
            if self.queue_type == QueueType::Quorum {
                // A message redelivered this often (its consumer keeps dying) goes to dead letters.
                args.insert(
                    "x-delivery-limit".into(),
                    AMQPValue::LongLongInt(DELIVERY_LIMIT),
                );
                args.insert("x-dead-letter-exchange".into(), long_string(&dead_letter));
            }
            declare_queue(channel, &queue, args).await?;
            for key in family.routing_keys {
                bind(channel, &queue, &webhooks, key).await?;
            }
        }
        bind(channel, &self.work_queue("other"), &unrouted, "").await?;

        for tier in 0..self.retry_delays.len() {
            let name = self.retry_tier(tier).expect("tier in range");
            declare_exchange(channel, &name, ExchangeKind::Fanout, FieldTable::default()).await?;
            let mut args = self.queue_args();
            let ttl = i64::try_from(self.retry_delays[tier].as_millis()).unwrap_or(i64::MAX);
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
            // No x-dead-letter-routing-key: an expired message keeps its own (the webhook topic).
            args.insert("x-dead-letter-exchange".into(), long_string(&webhooks));
            declare_queue(channel, &name, args).await?;
            bind(channel, &name, &name, "").await?;
        }

        declare_queue(channel, &dead_letter, self.queue_args()).await?;
        bind(channel, &dead_letter, &dead_letter, "").await?;
        Ok(())
    }

    fn queue_args(&self) -> FieldTable {
        let mut args = FieldTable::default();
        match self.queue_type {
            QueueType::Quorum => {
                args.insert("x-queue-type".into(), long_string("quorum"));
                // Dead-lettering out of a quorum queue is confirmed internally, so an expired retry
                // or an over-delivered message is never dropped on the way (needs reject-publish).
                args.insert(
                    "x-dead-letter-strategy".into(),
                    long_string("at-least-once"),
                );
                args.insert("x-overflow".into(), long_string("reject-publish"));
            }
            QueueType::Classic => {
                args.insert("x-queue-type".into(), long_string("classic"));
            }
        }
        args
    }
}

/// `10s`, `1m`, `500ms`: the delay as it appears in a retry queue's name.
fn delay_name(delay: Duration) -> String {
    let ms = delay.as_millis();
    match ms {
        0 => "0ms".to_owned(),
        _ if ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) => format!("{}m", ms / 60_000),
        _ if ms.is_multiple_of(1_000) => format!("{}s", ms / 1_000),
        _ => format!("{ms}ms"),
    }
}

pub(crate) fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(value.into())
}

async fn declare_exchange(
    channel: &Channel,
    name: &str,
    kind: ExchangeKind,
    args: FieldTable,
) -> lapin::Result<()> {
    let options = ExchangeDeclareOptions {
        // Survives a broker restart; messages in flight are never routed to nowhere.
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(ShortString::from(name), kind, options, args)
        .await
}

async fn declare_queue(channel: &Channel, name: &str, args: FieldTable) -> lapin::Result<()> {
    // Durable, shared by competing consumers, never deleted when idle.
    let options = QueueDeclareOptions::durable();
    channel
        .queue_declare(ShortString::from(name), options, args)
        .await
        .map(drop)
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) -> lapin::Result<()> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_queues_are_named_by_delay() {
        let settings = Settings::from_vars(
            [(
                "RETRY_DELAYS".to_string(),
                "500ms,10s,1m,30m,2h".to_string(),
            )]
            .into(),
        )
        .unwrap();
        let topology = Topology::new(&settings);
        let names: Vec<_> = (0..5).map(|t| topology.retry_tier(t).unwrap()).collect();
        assert_eq!(
            names,
            [
                "shopify.retry.500ms",
                "shopify.retry.10s",
                "shopify.retry.1m",
                "shopify.retry.30m",
                "shopify.retry.2h"
            ]
        );
        assert_eq!(topology.retry_tier(5), None);
    }

    #[test]
    fn every_handled_topic_is_bound_once() {
        let mut keys: Vec<_> = FAMILIES.iter().flat_map(|f| f.routing_keys).collect();
        let total = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), total, "a routing key is bound to two queues");
    }
}
