//! The consumer loop: take deliveries under a prefetch, hand each to a handler, and settle it by
//! the handler's [`Verdict`] — ack, republish to the next retry tier, or send to dead letters.
//!
//! Handlers never touch AMQP; this loop alone decides. It reconnects by itself when the broker
//! goes away (unsettled messages come back by themselves), and on shutdown it stops taking
//! messages, lets the in-flight ones finish and settle, then closes its channel.

use std::{panic::AssertUnwindSafe, sync::Arc, time::Duration};

use futures::{FutureExt, StreamExt, future::BoxFuture};
use lapin::{
    message::Delivery,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    },
    types::FieldTable,
};
use secrecy::SecretString;
use tokio::{sync::Semaphore, time::Instant};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use super::{Publisher, Topology, WebhookMessage, acks::Acks, connection};
use crate::metrics::Metrics;

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

/// How long a message that could not be settled waits before it goes back on its queue, so a
/// database outage does not turn into a hot redelivery loop.
const REQUEUE_PAUSE: Duration = Duration::from_secs(1);
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
/// An ack or nack on a broken connection may never be answered by lapin's IO loop.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long closing the channel and connection may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Turns verdicts into acks and republishes.
struct Settler {
    topology: Topology,
    publisher: Publisher,
    metrics: Arc<Metrics>,
    label: String,
}

/// Deadline for republishing a message to a retry tier or to dead letters.
const REPUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

impl Settler {
    async fn settle_batch(&self, deliveries: Vec<Delivery>, handler: &Handler, acks: &Acks) {
        let started = Instant::now();
        let mut batch = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            match WebhookMessage::from_amqp(&delivery.properties, delivery.data.clone()) {
                Ok(message) => {
                    self.observe_age(&delivery);
                    batch.push((delivery, message));
                }
                Err(error) => {
                    // Not one of ours: it can never be processed, and nothing can record it.
                    let routing_key = delivery.routing_key.to_string();
                    tracing::error!(queue = %self.label, %error, routing_key, "dropping a malformed message");
                    self.ack(&delivery, "dead_lettered").await;
                    acks.closed(delivery.delivery_tag).await;
                }
            }
        }
        if batch.is_empty() {
            return;
        }
        let messages: Vec<WebhookMessage> = batch.iter().map(|(_, m)| m.clone()).collect();
        self.metrics
            .batch_size
            .with_label_values(&[self.label.as_str()])
            .observe(messages.len() as f64);
        let span = tracing::debug_span!("batch", queue = %self.label, size = messages.len());
        let verdicts = match run_handler(handler, messages.clone())
            .instrument(span.clone())
            .await
        {
            Ok(verdicts) if verdicts.len() == messages.len() => verdicts,
            outcome => {
                if let Err(panic) = &outcome {
                    tracing::warn!(parent: &span, panic = %panic, "handler panicked on a batch; handling its messages one by one");
                }
                let mut verdicts = Vec::with_capacity(messages.len());
                for message in messages {
                    let verdict = match run_handler(handler, vec![message]).await {
                        Ok(mut one) if one.len() == 1 => one.remove(0),
                        Ok(_) => Verdict::Retry("handler returned no verdict".to_owned()),
                        Err(panic) => Verdict::Retry(format!("handler panicked: {panic}")),
                    };
                    verdicts.push(verdict);
                }
                verdicts
            }
        };
        // The finished ones first, acked in as few frames as the ledger allows; then the
        // failed ones, whose republishing takes longer.
        let (done, failed): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .zip(verdicts)
            .partition(|(_, verdict)| matches!(verdict, Verdict::Done(_)));
        for ((delivery, message), verdict) in done {
            self.settle(delivery, message, verdict, started, acks).await;
        }
        acks.flush().await;
        for ((delivery, message), verdict) in failed {
            self.settle(delivery, message, verdict, started, acks).await;
        }
    }

    fn observe_age(&self, delivery: &Delivery) {
        if let Some(sent) = *delivery.properties.timestamp() {
            let age = (chrono::Utc::now().timestamp() as u64).saturating_sub(sent);
            self.metrics
                .message_age
                .with_label_values(&[self.label.as_str()])
                .observe(age as f64);
        }
    }

    /// Acks, forwards or requeues one message by its verdict.
    async fn settle(
        &self,
        delivery: Delivery,
        message: WebhookMessage,
        verdict: Verdict,
        started: Instant,
        acks: &Acks,
    ) {
        let tag = delivery.delivery_tag;
        let in_ledger = matches!(verdict, Verdict::Done(_));
        let routing_key = delivery.routing_key.to_string();
        let span = tracing::info_span!(
            "message",
            queue = %self.label,
            topic = %message.headers.topic,
            shop = %message.headers.shop,
            webhook_id = %message.headers.webhook_id,
            attempt = message.retry_count + 1,
        );
        let outcome = match verdict {
            Verdict::Done(outcome) => {
                // Acked with its neighbours once they are done too (`Acks::flush`).
                acks.ready(tag, delivery.acker.clone(), outcome);
                Some(outcome)
            }
            Verdict::Retry(error) => match self.topology.retry_tier(message.retry_count as usize) {
                Some(tier) => {
                    tracing::warn!(parent: &span, %error, tier, "attempt failed; retrying later");
                    let forwarded = self
                        .forward(&delivery, message, &tier, &routing_key, error, "retried")
                        .await;
                    if forwarded.is_some() {
                        let delay = tier.rsplit('.').next().unwrap_or_default();
                        self.metrics
                            .retries
                            .with_label_values(&[self.label.as_str(), delay])
                            .inc();
                    }
                    forwarded
                }
                None => {
                    tracing::error!(parent: &span, %error, "last attempt failed; dead-lettering");
                    self.dead_letter(&delivery, message, &routing_key, error)
                        .await
                }
            },
            Verdict::DeadLetter(error) => {
                tracing::error!(parent: &span, %error, "cannot be processed; dead-lettering");
                self.dead_letter(&delivery, message, &routing_key, error)
                    .await
            }
            Verdict::Requeue(error) => {
                tracing::warn!(parent: &span, %error, "cannot settle now; requeueing");
                tokio::time::sleep(REQUEUE_PAUSE).await;
                self.requeue(&delivery).await;
                None
            }
        };
        if !in_ledger {
            // Acked alone after its republish, or nacked: later acks need not wait for it.
            acks.closed(tag).await;
        }
        if outcome.is_some() {
            self.metrics
                .processing_duration
                .with_label_values(&[self.label.as_str()])
                .observe(started.elapsed().as_secs_f64());
        }
    }

    async fn dead_letter(
        &self,
        delivery: &Delivery,
        message: WebhookMessage,
        routing_key: &str,
        error: String,
    ) -> Option<&'static str> {
        let exchange = self.topology.dead_letter();
        self.forward(
            delivery,
            message,
            &exchange,
            routing_key,
            error,
            "dead_lettered",
        )
        .await
    }

    /// Republishes `message` (confirmed, `retry-count` + 1, broker death headers gone) to
    /// `exchange`, then acks the original. If the republish fails, the original goes back to
    /// its queue instead: never both lost and acked.
    async fn forward(
        &self,
        delivery: &Delivery,
        mut message: WebhookMessage,
        exchange: &str,
        routing_key: &str,
        error: String,
        outcome: &'static str,
    ) -> Option<&'static str> {
        message.retry_count += 1;
        message.last_error = Some(error);
        let published = self
            .publisher
            .publish(
                exchange,
                routing_key,
                &message.body,
                message.properties(),
                REPUBLISH_TIMEOUT,
            )
            .await;
        match published {
            Ok(()) => {
                self.ack(delivery, outcome).await;
                Some(outcome)
            }
            Err(error) => {
                tracing::warn!(%error, exchange, "cannot republish; the message goes back to its queue");
                self.requeue(delivery).await;
                None
            }
        }
    }

    async fn ack(&self, delivery: &Delivery, outcome: &'static str) {
        // Ok(false): the channel is gone; the broker will redeliver, and dedupe makes that harmless.
        match tokio::time::timeout(SETTLE_TIMEOUT, delivery.ack(BasicAckOptions::default())).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                tracing::warn!("ack on a closed channel; the message will be redelivered");
            }
            Ok(Err(error)) => tracing::warn!(%error, "ack failed; the message will be redelivered"),
            Err(_) => tracing::warn!("ack unanswered; the message will be redelivered"),
        }
        self.metrics
            .messages
            .with_label_values(&[self.label.as_str(), outcome])
            .inc();
    }

    async fn requeue(&self, delivery: &Delivery) {
        // lapin's default nack has requeue: false, which would drop (or dead-letter) the message.
        let options = BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        };
        match tokio::time::timeout(SETTLE_TIMEOUT, delivery.nack(options)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "nack failed; the message will be redelivered")
            }
            Err(_) => tracing::warn!("nack unanswered; the message will be redelivered"),
        }
    }
}

/// Runs the handler on a batch, catching a panic as its text.
async fn run_handler(
    handler: &Handler,
    messages: Vec<WebhookMessage>,
) -> Result<Vec<Verdict>, String> {
    AssertUnwindSafe(handler(messages))
        .catch_unwind()
        .await
        .map_err(|panic| panic_text(&panic))
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
