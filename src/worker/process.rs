//! One webhook message, one transaction.

use std::time::Duration;

use deadpool_postgres::Pool;

use crate::{
    broker::{WebhookMessage, consumer::Verdict},
    db::{
        DbError,
        deliveries::{self, Begin, NewDelivery},
    },
    handlers::{self, HandlerError, Outcome},
};

/// How long recording a failed attempt may take; if the database is down the retry goes ahead
/// without the record (the dead-letter record at the end is the one that must not be lost).
const RECORD_FAILURE_TIMEOUT: Duration = Duration::from_secs(2);

/// Processes `message` and says how to settle it.
pub async fn process(pool: Pool, message: WebhookMessage) -> Verdict {
    let new = NewDelivery::new(&message.headers, &message.body, message.retry_count);
    match apply(&pool, &new, &message.body).await {
        Ok(Applied::Duplicate) => Verdict::Done("duplicate"),
        Ok(Applied::Handled(Outcome::Ignored)) => Verdict::Done("ignored"),
        Ok(Applied::Handled(Outcome::Processed | Outcome::BulkCompleted { .. })) => {
            Verdict::Done("processed")
        }
        Err(error) => {
            let text = error.to_string();
            record_failure(&pool, &new, &text).await;
            if error.is_transient() {
                Verdict::Retry(text)
            } else {
                Verdict::DeadLetter(text)
            }
        }
    }
}

enum Applied {
    /// Already processed: a redelivery with no effect.
    Duplicate,
    Handled(Outcome),
}

/// Claim, handle, finish and commit; any error rolls the whole transaction back.
async fn apply(pool: &Pool, new: &NewDelivery<'_>, body: &[u8]) -> Result<Applied, HandlerError> {
    let mut client = pool.get().await.map_err(DbError::from)?;
    let tx = client.transaction().await.map_err(DbError::from)?;
    let applied = match deliveries::begin(&tx, new).await? {
        Begin::AlreadyDone => Applied::Duplicate,
        Begin::Started(delivery) => {
            let outcome = handlers::handle(&tx, &delivery, body).await?;
            deliveries::finish(&tx, delivery.id, outcome.finished()).await?;
            Applied::Handled(outcome)
        }
    };
    tx.commit().await.map_err(DbError::from)?;
    Ok(applied)
}

/// Best effort: the delivery row shows `failed`, the attempt and the error while a retry waits.
async fn record_failure(pool: &Pool, new: &NewDelivery<'_>, error: &str) {
    let recorded = tokio::time::timeout(RECORD_FAILURE_TIMEOUT, async {
        let client = pool.get().await.map_err(DbError::from)?;
        deliveries::record_failure(&client, new, error).await
    })
    .await;
    match recorded {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot record the failed attempt"),
        Err(_) => tracing::warn!("recording the failed attempt timed out"),
    }
}
