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
//! nothing left to do. Only one process imports a log at a time (an advisory lock, see
//! `db::sync_logs::ImportLock`): a finish that finds the lock taken — its own first copy still
//! importing, or the scheduler's reconciliation — is processed without importing.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use deadpool_postgres::Pool;

use crate::{
    broker::{WebhookMessage, consumer::Verdict},
    db::{
        self, DbError,
        bulk::BulkRow,
        deliveries::{self, Begin, Claim, Finished, NewDelivery},
    },
    handlers::{self, HandlerError, Outcome, Plan},
    shopify::payload::{Customer, Order},
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
    let mut plans = Vec::new();
    let mut seen = HashSet::new();
    for (i, message) in messages.iter().enumerate() {
        let h = &message.headers;
        if h.topic.as_str() == "bulk_operations/finish" {
            alone.push(i);
        } else if !seen.insert((h.shop.as_str(), h.webhook_id.as_str())) {
            // The same webhook twice in one batch: the first copy settles it.
            verdicts[i] = Some(Verdict::Done("duplicate"));
        } else {
            match handlers::plan(&h.topic, &message.body) {
                Ok(plan) => {
                    together.push(i);
                    plans.push(plan);
                }
                // A payload that can never be processed goes its own way, to dead letters.
                Err(_) => alone.push(i),
            }
        }
    }
    match apply_batch(&pool, &messages, &together, plans).await {
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

/// The messages at `indexes`, whose plans are `plans`, in one transaction. Bulk finishes are
/// never among them.
///
/// Statements per batch, whatever its size: the shop lookup, one claim of every delivery
/// ([`deliveries::begin_many`]), one last-write-wins upsert of all its customers and one of
/// all its orders (per shop; the bulk import's, under the same rule), then the commit. A claimed
/// customer or order webhook is claimed already `processed`: it commits with its effect or not
/// at all. Other topics run their handler on the same connection, pipelined.
async fn apply_batch(
    pool: &Pool,
    messages: &[WebhookMessage],
    indexes: &[usize],
    plans: Vec<Plan>,
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
    let shop_of = |i: usize| shops[messages[i].headers.shop.as_str()];
    let news: Vec<NewDelivery> = indexes
        .iter()
        .map(|&i| {
            let message = &messages[i];
            NewDelivery::new(&message.headers, &message.body, message.retry_count)
        })
        .collect();
    let claims: Vec<(i64, &NewDelivery, Claim)> = indexes
        .iter()
        .zip(&news)
        .zip(&plans)
        .map(|((&i, new), plan)| {
            let claim = match plan {
                Plan::Other => Claim::Processing,
                Plan::Customer(_) | Plan::Order(_) => Claim::Finished(Finished::Processed),
            };
            (shop_of(i), new, claim)
        })
        .collect();
    let claimed = deliveries::begin_many(&tx, &claims).await?;

    let mut customers: HashMap<i64, Vec<BulkRow<Customer>>> = HashMap::new();
    let mut orders: HashMap<i64, Vec<BulkRow<Order>>> = HashMap::new();
    let mut others = Vec::new();
    let mut applied = Vec::with_capacity(indexes.len());
    for (k, plan) in plans.into_iter().enumerate() {
        let (i, shop_id) = (indexes[k], shop_of(indexes[k]));
        let Some(delivery_id) = claimed[k] else {
            applied.push(Some(Applied::Duplicate));
            continue;
        };
        match plan {
            Plan::Customer(row) => customers.entry(shop_id).or_default().push(row),
            Plan::Order(row) => orders.entry(shop_id).or_default().push(row),
            Plan::Other => {
                others.push((k, i, news[k].delivery(delivery_id, shop_id)));
                applied.push(None);
                continue;
            }
        }
        applied.push(Some(Applied::Handled(Outcome::Processed)));
    }
    // All on the one connection, pipelined: tokio-postgres sends a statement while earlier ones
    // are still out. The webhooks are distinct, and last-write-wins makes their order irrelevant.
    let tx_ref = &tx;
    let upserts = async {
        for (shop_id, rows) in &customers {
            db::bulk::upsert_customers(tx_ref, *shop_id, rows).await?;
        }
        for (shop_id, rows) in &orders {
            db::bulk::upsert_orders(tx_ref, *shop_id, rows).await?;
        }
        Ok::<_, HandlerError>(())
    };
    let handled = futures::future::try_join_all(others.iter().map(|(k, i, delivery)| async move {
        let outcome = handlers::handle(tx_ref, delivery, &messages[*i].body).await?;
        deliveries::finish(tx_ref, delivery.id, outcome.finished()).await?;
        Ok::<_, HandlerError>((*k, outcome))
    }));
    let ((), handled) = futures::future::try_join(upserts, handled).await?;
    for (k, outcome) in handled {
        applied[k] = Some(Applied::Handled(outcome));
    }
    tx.commit().await.map_err(DbError::from)?;
    Ok(applied
        .into_iter()
        .map(|a| a.expect("every message of the batch is applied"))
        .collect())
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
        Resolution::ImportInProgress { .. } => {
            // The process holding the import lock ends the log; this copy has nothing to add.
            tracing::info!(%operation, "bulk result already being imported elsewhere");
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
