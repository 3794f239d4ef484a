//! The consumer loop: take deliveries under a prefetch, hand each to a handler, and settle it by
//! the handler's [`Verdict`] — ack, republish to the next retry tier, or send to dead letters.
//!
//! Handlers never touch AMQP; this loop alone decides. It reconnects by itself when the broker
//! goes away (unsettled messages come back by themselves), and on shutdown it stops taking
//! messages, lets the in-flight ones finish and settle, then closes its channel. How a batch's
//! verdicts become acks and republishes is in `settle.rs`.

use std::{sync::Arc, time::Duration};

use futures::{FutureExt, StreamExt, future::BoxFuture};
use lapin::{
    options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions},
    types::FieldTable,
};
use secrecy::SecretString;
use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{Publisher, Topology, WebhookMessage, acks::Acks, connection};
use crate::metrics::Metrics;

mod settle;
use settle::Settler;

/// What a handler made of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Settled; the label is the `outcome` of `shopify_sync_messages_total`.
    Done(&'static str),
    /// Failed, may succeed later: next retry tier, or dead letters after the last.
    Retry(String),
    /// Can never succeed: dead letters now.
    DeadLetter(String),
    /// Cannot be settled now (e.g. the database is down while recording a dead letter): put it
    /// back on its queue after a pause.
    Requeue(String),
}

/// Handles a batch of messages — what the consumer had at hand, at most [`MAX_BATCH`] — and
/// returns one verdict per message, in order. A handler that panics on a batch is run again on
/// each message alone, so only the message that panics counts as [`Verdict::Retry`].
pub type Handler =
    Arc<dyn Fn(Vec<WebhookMessage>) -> BoxFuture<'static, Vec<Verdict>> + Send + Sync>;

/// The most messages handed to a handler at once. Batches form only from deliveries already
/// received: the consumer never waits to fill one.
pub const MAX_BATCH: usize = 32;

/// Batches one consumer handles at once (each holds a database connection while it runs).
pub const MAX_CONCURRENT_BATCHES: usize = 4;

/// One consumer: which queue, and how it is labelled in metrics and logs.
#[derive(Clone)]
pub struct ConsumerConfig {
    pub url: SecretString,
    pub queue: String,
    /// The `queue` label of the metrics (the family, e.g. `customers`).
    pub label: String,
    pub prefetch: u16,
}

const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Consumes until `cancel` fires, reconnecting whenever the connection is lost.
pub async fn run(
    config: ConsumerConfig,
    topology: Topology,
    publisher: Publisher,
    handler: Handler,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    let settler = Arc::new(Settler {
        topology: topology.clone(),
        publisher,
        metrics,
        label: config.label.clone(),
    });
    while !cancel.is_cancelled() {
        match consume(&config, &topology, &settler, &handler, &cancel).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(error) => {
                tracing::warn!(queue = %config.queue, %error, retry_in = ?backoff, "consumer lost RabbitMQ");
            }
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    tracing::info!(queue = %config.queue, "consumer stopped");
}

/// One connection's worth of consuming. Returns when the connection or consumer ends, or on
/// shutdown after every in-flight message is settled.
async fn consume(
    config: &ConsumerConfig,
    topology: &Topology,
    settler: &Arc<Settler>,
    handler: &Handler,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let name = format!("shopify-sync consumer {}", config.label);
    let tag = format!("{}-{}", config.label, uuid::Uuid::new_v4().simple());
    // Every step is bounded: a connection that dies halfway must not leave an RPC pending forever.
    let setup = async {
        let connection =
            connection::connect(&config.url, &name, connection::CONNECT_TIMEOUT).await?;
        let channel = connection.create_channel().await?;
        topology.declare(&channel).await?;
        // At most `prefetch` unacked messages in this consumer: the bound of its concurrency.
        channel
            .basic_qos(config.prefetch, BasicQosOptions { global: false })
            .await?;
        let deliveries = channel
            .basic_consume(
                config.queue.as_str().into(),
                tag.as_str().into(),
                // Manual acks: a message is settled only after its transaction committed.
                BasicConsumeOptions {
                    no_ack: false,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok::<_, anyhow::Error>((connection, channel, deliveries))
    };
    let (connection, channel, mut deliveries) =
        tokio::time::timeout(SETUP_TIMEOUT, setup)
            .await
            .map_err(|_| anyhow::anyhow!("no consumer after {SETUP_TIMEOUT:?}"))??;
    tracing::info!(queue = %config.queue, "consuming");

    let in_flight = TaskTracker::new();
    let acks = Arc::new(Acks::new(settler.metrics.clone(), config.label.clone()));
    let slots = Arc::new(Semaphore::new(MAX_CONCURRENT_BATCHES));
    let ended = loop {
        // While every slot is busy, deliveries gather in the prefetch buffer and the next batch
        // takes them all at once: batches grow with the load, and nothing waits when idle.
        let slot = tokio::select! {
            () = cancel.cancelled() => break Ok(()),
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let first = tokio::select! {
            () = cancel.cancelled() => break Ok(()),
            next = deliveries.next() => next,
        };
        let mut batch = Vec::new();
        let mut end = None;
        let mut next = Some(first);
        // Whatever else has arrived already joins the batch; nothing waits for more.
        while let Some(item) = next {
            match item {
                Some(Ok(delivery)) => batch.push(delivery),
                Some(Err(error)) => end = Some(Err(error.into())),
                None => end = Some(Err(anyhow::anyhow!("the broker ended the consumer"))),
            }
            if end.is_some() || batch.len() == MAX_BATCH {
                break;
            }
            next = deliveries.next().now_or_never();
        }
        if !batch.is_empty() {
            let tags: Vec<u64> = batch.iter().map(|d| d.delivery_tag).collect();
            acks.open(tags.iter().copied());
            let (settler, handler, acks) = (settler.clone(), handler.clone(), acks.clone());
            in_flight.spawn(async move {
                settler.settle_batch(batch, &handler, &acks).await;
                drop(slot);
                acks.finish(&tags).await;
            });
        }
        if let Some(end) = end {
            break end;
        }
    };
    if cancel.is_cancelled() {
        // Stop taking messages; those delivered but not started go back when the channel closes.
        let _ = channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await;
    }
    in_flight.close();
    if ended.is_ok() {
        // Shutdown: every message in hand is settled before the channel closes.
        in_flight.wait().await;
    } else if tokio::time::timeout(IN_FLIGHT_GRACE, in_flight.wait())
        .await
        .is_err()
    {
        // The connection is gone, so their acks cannot arrive anyway: the broker redelivers
        // those messages, and dedupe makes the overlap harmless. Reconnect now.
        tracing::warn!(queue = %config.queue, "in-flight messages still running; reconnecting without them");
    }
    // A broker that no longer answers must not hold up the shutdown.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        if channel.status().connected() {
            let _ = channel.close(200, "consumer done".into()).await;
        }
        let _ = connection.close(200, "consumer done".into()).await;
    })
    .await;
    ended
}

/// Connecting, declaring the topology and starting to consume, all together.
const SETUP_TIMEOUT: Duration = Duration::from_secs(15);
/// After a lost connection, how long in-flight messages may delay the reconnect.
const IN_FLIGHT_GRACE: Duration = Duration::from_secs(2);

/// How long closing the channel and connection may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
