//! One transaction per batch of webhooks, one per webhook when a batch fails — except a
//! completed bulk operation, whose import is too long for one.
//!
//! A batch (what a consumer had at hand) is claimed, handled and finished in one transaction and
//! committed once, which is what makes the worker faster than one commit per message. If
//! anything in it fails, nothing of it is committed, and each of its messages is then processed
//! on its own, so one bad message costs only itself. Bulk finishes and second copies of a
//! webhook within the batch are settled apart.
//!
//! `bulk_operations/finish` with `completed`: the transaction claims the delivery and commits it
//! still `processing`; the import then runs outside any transaction (each batch commits by
//! itself), the sync log becomes `completed`, and only then is the delivery marked `processed`
//! and the message acked. A transient failure on the way is retried like any other: the
//! redelivered finish imports again (idempotent upserts) or, once the log is `completed`, finds
//! nothing left to do.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use deadpool_postgres::Pool;

use crate::{
    broker::{WebhookMessage, consumer::Verdict},
    db::{
        self, DbError,
        deliveries::{self, Begin, NewDelivery},
    },
    handlers::{self, HandlerError, Outcome},
    sync::{Resolution, Syncer},
};

/// How long recording a failed attempt may take; if the database is down the retry goes ahead
/// without the record (the dead-letter record at the end is the one that must not be lost).
const RECORD_FAILURE_TIMEOUT: Duration = Duration::from_secs(2);

/// Processes a batch; one verdict per message, in order.
pub async fn process_batch(
    pool: Pool,
    syncer: Syncer,
    messages: Vec<WebhookMessage>,
) -> Vec<Verdict> {
    if messages.len() == 1 {
        let message = messages.into_iter().next().expect("one message");
        return vec![process(pool, syncer, message).await];
    }
    let mut verdicts: Vec<Option<Verdict>> = vec![None; messages.len()];
    let (mut together, mut alone) = (Vec::new(), Vec::new());
    let mut seen = HashSet::new();
    for (i, message) in messages.iter().enumerate() {
        let h = &message.headers;
        if h.topic.as_str() == "bulk_operations/finish" {
            alone.push(i);
        } else if !seen.insert((h.shop.as_str(), h.webhook_id.as_str())) {
            // The same webhook twice in one batch: the first copy settles it.
            verdicts[i] = Some(Verdict::Done("duplicate"));
        } else {
            together.push(i);
        }
    }
    match apply_batch(&pool, &messages, &together).await {
        Ok(applied) => {
            for (i, applied) in together.into_iter().zip(applied) {
                verdicts[i] = Some(match applied {
                    Applied::Duplicate => Verdict::Done("duplicate"),
                    Applied::Handled(Outcome::Ignored) => Verdict::Done("ignored"),
                    _ => Verdict::Done("processed"),
                });
            }
        }
        Err(error) => {
            tracing::debug!(%error, size = together.len(), "batch failed; processing its messages one by one");
            alone.extend(together);
        }
    }
    for i in alone {
        verdicts[i] = Some(process(pool.clone(), syncer.clone(), messages[i].clone()).await);
    }
    verdicts
        .into_iter()
        .map(|v| v.expect("every message has a verdict"))
        .collect()
}

/// The messages at `indexes` in one transaction. Bulk finishes are never among them.
async fn apply_batch(
    pool: &Pool,
    messages: &[WebhookMessage],
    indexes: &[usize],
) -> Result<Vec<Applied>, HandlerError> {
    let mut client = pool.get().await.map_err(DbError::from)?;
    let tx = client.transaction().await.map_err(DbError::from)?;
    // A batch is usually one shop's: look each shop up once.
    let mut shops: HashMap<&str, i64> = HashMap::new();
    for &i in indexes {
        let shop = &messages[i].headers.shop;
        if !shops.contains_key(shop.as_str()) {
            let id = db::shops::get_or_create(&tx, shop).await?;
            shops.insert(shop.as_str(), id);
        }
    }
    // The messages' statements are pipelined on the one connection (tokio-postgres sends a
    // query while earlier ones are still out): the batch costs a few round trips, not a few per
    // message. Each message's own steps stay in order; the messages are distinct webhooks, and
    // last-write-wins makes their order irrelevant.
    let (tx_ref, shops) = (&tx, &shops);
    let applied = futures::future::try_join_all(indexes.iter().map(|&i| async move {
        let tx = tx_ref;
        let message = &messages[i];
        let new = NewDelivery::new(&message.headers, &message.body, message.retry_count);
        let shop_id = shops[message.headers.shop.as_str()];
        Ok::<_, HandlerError>(match deliveries::begin_in_shop(tx, shop_id, &new).await? {
            Begin::AlreadyDone => Applied::Duplicate,
            Begin::Started(delivery) => {
                let outcome = handlers::handle(tx, &delivery, &message.body).await?;
                deliveries::finish(tx, delivery.id, outcome.finished()).await?;
                Applied::Handled(outcome)
            }
        })
    }))
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(applied)
}

/// Processes `message` alone and says how to settle it.
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
