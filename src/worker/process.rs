//! One webhook message, one transaction — except a completed bulk operation, whose import is
//! too long for one.
//!
//! `bulk_operations/finish` with `completed`: the transaction claims the delivery and commits it
//! still `processing`; the import then runs outside any transaction (each batch commits by
//! itself), the sync log becomes `completed`, and only then is the delivery marked `processed`
//! and the message acked. A transient failure on the way is retried like any other: the
//! redelivered finish imports again (idempotent upserts) or, once the log is `completed`, finds
//! nothing left to do.

use std::time::Duration;

use deadpool_postgres::Pool;

use crate::{
    broker::{WebhookMessage, consumer::Verdict},
    db::{
        DbError,
        deliveries::{self, Begin, NewDelivery},
    },
    handlers::{self, HandlerError, Outcome},
    sync::{Resolution, Syncer},
};

/// How long recording a failed attempt may take; if the database is down the retry goes ahead
/// without the record (the dead-letter record at the end is the one that must not be lost).
const RECORD_FAILURE_TIMEOUT: Duration = Duration::from_secs(2);

/// Processes `message` and says how to settle it.
pub async fn process(pool: Pool, syncer: Syncer, message: WebhookMessage) -> Verdict {
    let new = NewDelivery::new(&message.headers, &message.body, message.retry_count);
    let failure = match apply(&pool, &new, &message.body).await {
        Ok(Applied::Duplicate) => return Verdict::Done("duplicate"),
        Ok(Applied::Handled(Outcome::Ignored)) => return Verdict::Done("ignored"),
        Ok(Applied::Handled(Outcome::BulkFailed)) => {
            syncer.count_sync("failed");
            return Verdict::Done("processed");
        }
        Ok(Applied::Handled(Outcome::Processed | Outcome::BulkCompleted { .. })) => {
            return Verdict::Done("processed");
        }
        Ok(Applied::Import {
            delivery_id,
            shop_id,
            bulk_operation_id,
        }) => match import(&pool, &syncer, delivery_id, shop_id, &bulk_operation_id).await {
            Ok(()) => return Verdict::Done("processed"),
            Err(failure) => failure,
        },
        Err(error) => (error.to_string(), error.is_transient()),
    };
    let (text, transient) = failure;
    record_failure(&pool, &new, &text).await;
    if transient {
        Verdict::Retry(text)
    } else {
        Verdict::DeadLetter(text)
    }
}

enum Applied {
    /// Already processed: a redelivery with no effect.
    Duplicate,
    Handled(Outcome),
    /// A completed bulk operation: claimed and committed `processing`, to be imported now.
    Import {
        delivery_id: i64,
        shop_id: i64,
        bulk_operation_id: String,
    },
}

/// Imports a completed operation, then marks its delivery processed. A failure is its text and
/// whether to retry it.
async fn import(
    pool: &Pool,
    syncer: &Syncer,
    delivery_id: i64,
    shop_id: i64,
    operation: &str,
) -> Result<(), (String, bool)> {
    let resolution = syncer
        .finish_operation(shop_id, operation)
        .await
        .map_err(|e| (e.to_string(), e.is_transient()))?;
    match &resolution {
        Resolution::Unknown => {
            tracing::warn!(%operation, "no sync log waits for this completed bulk operation")
        }
        Resolution::StillRunning { .. } => {
            // Shopify said finished but the node says running: ask again later.
            return Err((format!("bulk operation {operation} is still running"), true));
        }
        _ => tracing::debug!(%operation, ?resolution, "bulk finish handled"),
    }
    let finished = async {
        let mut client = pool.get().await.map_err(DbError::from)?;
        let tx = client.transaction().await.map_err(DbError::from)?;
        deliveries::finish(&tx, delivery_id, deliveries::Finished::Processed).await?;
        tx.commit().await.map_err(DbError::from)
    };
    finished
        .await
        .map_err(|e: DbError| (e.to_string(), e.is_transient()))
}

/// Claim, handle, finish and commit; any error rolls the whole transaction back.
async fn apply(pool: &Pool, new: &NewDelivery<'_>, body: &[u8]) -> Result<Applied, HandlerError> {
    let mut client = pool.get().await.map_err(DbError::from)?;
    let tx = client.transaction().await.map_err(DbError::from)?;
    let applied = match deliveries::begin(&tx, new).await? {
        Begin::AlreadyDone => Applied::Duplicate,
        Begin::Started(delivery) => match handlers::handle(&tx, &delivery, body).await? {
            Outcome::BulkCompleted { bulk_operation_id } => Applied::Import {
                delivery_id: delivery.id,
                shop_id: delivery.shop_id,
                bulk_operation_id,
            },
            outcome => {
                deliveries::finish(&tx, delivery.id, outcome.finished()).await?;
                Applied::Handled(outcome)
            }
        },
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
