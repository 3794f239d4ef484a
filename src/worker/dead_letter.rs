//! The dead-letter consumer: every message that reaches `{prefix}.dead_letter` becomes a
//! `dead_letter` row with its payload, attempts and last error — and only then is it acked.

use std::sync::Arc;

use deadpool_postgres::Pool;

use crate::{
    broker::{WebhookMessage, consumer::Verdict},
    db::{DbError, deliveries},
    metrics::Metrics,
};

/// What a message dead-lettered by RabbitMQ itself carries instead of our `last-error`: the
/// quorum queue's delivery limit was reached (its consumer kept dying before settling it).
const BROKER_DEAD_LETTERED: &str =
    "dead-lettered by RabbitMQ: delivery limit reached (the consumer died while handling it)";

pub async fn record(pool: Pool, metrics: Arc<Metrics>, message: WebhookMessage) -> Verdict {
    let error = message
        .last_error
        .clone()
        .unwrap_or_else(|| BROKER_DEAD_LETTERED.to_owned());
    // retry-count is the attempts that failed before the one that sent it here.
    let new = deliveries::NewDelivery::new(
        &message.headers,
        &message.body,
        message.retry_count.saturating_sub(1),
    );
    let recorded = async {
        let client = pool.get().await.map_err(DbError::from)?;
        deliveries::record_dead_letter(&client, &new, &error).await
    }
    .await;
    match recorded {
        Ok(_) => {
            metrics
                .dead_letters
                .with_label_values(&[message.headers.topic.as_str()])
                .inc();
            Verdict::Done("recorded")
        }
        // Keep the message until Postgres is back.
        Err(e) => Verdict::Requeue(format!("cannot record the dead letter: {e}")),
    }
}
