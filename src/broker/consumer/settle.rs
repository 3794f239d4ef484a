//! Settling a batch: run the handler, then turn each verdict into an ack, a republish to the
//! next retry tier, or a republish to dead letters — acking the original only once the
//! republish is confirmed.

use std::{panic::AssertUnwindSafe, sync::Arc, time::Duration};

use futures::FutureExt;
use lapin::{
    message::Delivery,
    options::{BasicAckOptions, BasicNackOptions},
};
use tokio::time::Instant;
use tracing::Instrument;

use super::{Handler, Verdict};
use crate::{
    broker::{Publisher, Topology, WebhookMessage, acks::Acks},
    metrics::Metrics,
};

/// An ack or nack on a broken connection may never be answered by lapin's IO loop.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a message that could not be settled waits before it goes back on its queue, so a
/// database outage does not turn into a hot redelivery loop.
const REQUEUE_PAUSE: Duration = Duration::from_secs(1);

/// Turns verdicts into acks and republishes.
pub(super) struct Settler {
    pub(super) topology: Topology,
    pub(super) publisher: Publisher,
    pub(super) metrics: Arc<Metrics>,
    pub(super) label: String,
}

/// Deadline for republishing a message to a retry tier or to dead letters.
const REPUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

impl Settler {
    pub(super) async fn settle_batch(
        &self,
        deliveries: Vec<Delivery>,
        handler: &Handler,
        acks: &Acks,
    ) {
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
