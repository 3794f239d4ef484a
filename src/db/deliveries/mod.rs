//! `webhook_deliveries`: one row per (shop, webhook id), the ledger that makes processing
//! exactly-once in effect and keeps what failed for replay.
//!
//! The consumer runs [`begin`], the handler and [`finish`] in one transaction; after a rollback
//! it records the failed attempt with [`record_failure`] or [`record_dead_letter`].

mod query;
mod scrub;

use std::str::FromStr;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};

use super::{DbError, json::StoredBody, shops};
use crate::shopify::{ShopDomain, Topic, WebhookHeaders, WebhookId};

pub use query::{DeliveryRow, ListFilter, ReplaySelection, StoredWebhook, for_replay, list};
pub use scrub::{scrub_for_customer, scrub_shop};

/// The longest `last_error` kept; a cause chain is rarely longer, a payload dump could be.
const MAX_ERROR_LEN: usize = 4000;

/// The `status` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Processing,
    Processed,
    Failed,
    DeadLetter,
    Ignored,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "processing",
            Self::Processed => "processed",
            Self::Failed => "failed",
            Self::DeadLetter => "dead_letter",
            Self::Ignored => "ignored",
        }
    }
}

impl FromStr for DeliveryStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::Processing,
            Self::Processed,
            Self::Failed,
            Self::DeadLetter,
            Self::Ignored,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
        .ok_or_else(|| {
            format!("unknown status {s:?} (processing, processed, failed, dead_letter, ignored)")
        })
    }
}

/// One attempt at a webhook, as the consumer has it from the message.
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    pub shop: &'a ShopDomain,
    pub webhook_id: &'a WebhookId,
    pub event_id: Option<&'a str>,
    pub topic: &'a Topic,
    pub api_version: &'a str,
    /// `X-Shopify-Triggered-At`: when the change happened in Shopify (the time of a delete).
    pub triggered_at: Option<DateTime<Utc>>,
    /// The raw body, unchanged.
    pub payload: &'a [u8],
    /// 1 on the first attempt: `retry-count` + 1, from the message, never incremented here.
    pub attempt: i32,
}

impl<'a> NewDelivery<'a> {
    /// From a message's headers, body and `retry-count`. An unreadable trigger time is dropped
    /// (handlers then use the time of processing).
    pub fn new(headers: &'a WebhookHeaders, payload: &'a [u8], retry_count: u32) -> Self {
        Self {
            shop: &headers.shop,
            webhook_id: &headers.webhook_id,
            event_id: headers.event_id.as_deref(),
            topic: &headers.topic,
            api_version: &headers.api_version,
            triggered_at: headers
                .triggered_at
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.to_utc()),
            payload,
            attempt: i32::try_from(retry_count.saturating_add(1)).unwrap_or(i32::MAX),
        }
    }
}

/// A delivery being processed: what a handler needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub shop_id: i64,
    pub topic: Topic,
    pub webhook_id: WebhookId,
    pub triggered_at: Option<DateTime<Utc>>,
    pub attempt: i32,
}

/// What [`begin`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// Already `processed` or `ignored`: a redelivery, to be acked with no effect.
    AlreadyDone,
    /// The row is ours (locked until the transaction ends): handle it, then [`finish`].
    Started(Delivery),
}

/// How a handled delivery ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    Processed,
    Ignored,
}

/// Claims a delivery inside the message's transaction, creating the shop on its first webhook.
///
/// The upsert's conflict lock serialises two workers holding the same webhook: the second waits
/// for the first to commit and then finds the row done.
pub async fn begin(tx: &Transaction<'_>, new: &NewDelivery<'_>) -> Result<Begin, DbError> {
    let shop_id = shops::get_or_create(tx, new.shop).await?;
    let body = StoredBody::new(new.payload);
    let statement = tx
        .prepare_cached(
            "INSERT INTO webhook_deliveries AS d (shop_id, webhook_id, event_id, topic,
                    api_version, status, attempts, payload, payload_raw, triggered_at)
             VALUES ($1, $2, $3, $4, $5, 'processing', $6, $7::text::jsonb, $8, $9)
             ON CONFLICT (shop_id, webhook_id) DO UPDATE
                SET status = 'processing',
                    attempts = EXCLUDED.attempts,
                    event_id = COALESCE(EXCLUDED.event_id, d.event_id),
                    topic = EXCLUDED.topic,
                    api_version = EXCLUDED.api_version,
                    payload = EXCLUDED.payload,
                    payload_raw = EXCLUDED.payload_raw,
                    triggered_at = COALESCE(EXCLUDED.triggered_at, d.triggered_at),
                    updated_at = now()
              WHERE d.status NOT IN ('processed', 'ignored')
             RETURNING id",
        )
        .await?;
    let row = tx
        .query_opt(
            &statement,
            &[
                &shop_id,
                &new.webhook_id.as_str(),
                &new.event_id,
                &new.topic.as_str(),
                &new.api_version,
                &new.attempt,
                &body.json_str(),
                &body.raw,
                &new.triggered_at,
            ],
        )
        .await?;
    Ok(match row {
        None => Begin::AlreadyDone,
        Some(row) => Begin::Started(Delivery {
            id: row.get(0),
            shop_id,
            topic: new.topic.clone(),
            webhook_id: new.webhook_id.clone(),
            triggered_at: new.triggered_at,
            attempt: new.attempt,
        }),
    })
}

/// Ends a handled delivery in the same transaction as its effects.
pub async fn finish(
    tx: &Transaction<'_>,
    delivery_id: i64,
    finished: Finished,
) -> Result<(), DbError> {
    let status = match finished {
        Finished::Processed => DeliveryStatus::Processed,
        Finished::Ignored => DeliveryStatus::Ignored,
    };
    let statement = tx
        .prepare_cached(
            "UPDATE webhook_deliveries
                SET status = $2, processed_at = now(), last_error = NULL, updated_at = now()
              WHERE id = $1",
        )
        .await?;
    tx.execute(&statement, &[&delivery_id, &status.as_str()])
        .await?;
    Ok(())
}

/// A failed attempt that will be retried: status `failed` with its attempt number and error.
/// Returns false if another copy of the webhook already completed (nothing is downgraded).
pub async fn record_failure(
    client: &impl GenericClient,
    new: &NewDelivery<'_>,
    error: &str,
) -> Result<bool, DbError> {
    record_attempt(client, new, DeliveryStatus::Failed, error).await
}

/// A webhook given up on: status `dead_letter`, payload, attempts, error and time — an upsert,
/// whether or not an earlier attempt wrote the row. A row already `processed` or `ignored` (a
/// late duplicate) is left alone and false returned.
pub async fn record_dead_letter(
    client: &impl GenericClient,
    new: &NewDelivery<'_>,
    error: &str,
) -> Result<bool, DbError> {
    record_attempt(client, new, DeliveryStatus::DeadLetter, error).await
}

async fn record_attempt(
    client: &impl GenericClient,
    new: &NewDelivery<'_>,
    status: DeliveryStatus,
    error: &str,
) -> Result<bool, DbError> {
    let shop_id = shops::get_or_create(client, new.shop).await?;
    let error = truncate(error, MAX_ERROR_LEN);
    let body = StoredBody::new(new.payload);
    match upsert_attempt(client, shop_id, new, status, error, &body).await {
        // Valid JSON that jsonb still refuses (say, a number beyond numeric's range): keep the
        // bytes alone so the record is never lost.
        Err(DbError::Postgres(e)) if is_data_exception(&e) && body.json.is_some() => {
            let bytes_only = StoredBody {
                json: None,
                raw: Some(new.payload),
            };
            upsert_attempt(client, shop_id, new, status, error, &bytes_only).await
        }
        other => other,
    }
}

async fn upsert_attempt(
    client: &impl GenericClient,
    shop_id: i64,
    new: &NewDelivery<'_>,
    status: DeliveryStatus,
    error: &str,
    body: &StoredBody<'_>,
) -> Result<bool, DbError> {
    let statement = client
        .prepare_cached(
            "INSERT INTO webhook_deliveries AS d (shop_id, webhook_id, event_id, topic,
                    api_version, status, attempts, last_error, payload, payload_raw, triggered_at,
                    dead_lettered_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10, $11,
                     CASE WHEN $6 = 'dead_letter' THEN now() END)
             ON CONFLICT (shop_id, webhook_id) DO UPDATE
                SET status = EXCLUDED.status,
                    attempts = EXCLUDED.attempts,
                    last_error = EXCLUDED.last_error,
                    payload = EXCLUDED.payload,
                    payload_raw = EXCLUDED.payload_raw,
                    event_id = COALESCE(EXCLUDED.event_id, d.event_id),
                    api_version = EXCLUDED.api_version,
                    triggered_at = COALESCE(EXCLUDED.triggered_at, d.triggered_at),
                    dead_lettered_at = COALESCE(EXCLUDED.dead_lettered_at, d.dead_lettered_at),
                    updated_at = now()
              WHERE d.status NOT IN ('processed', 'ignored')
             RETURNING id",
        )
        .await?;
    let row = client
        .query_opt(
            &statement,
            &[
                &shop_id,
                &new.webhook_id.as_str(),
                &new.event_id,
                &new.topic.as_str(),
                &new.api_version,
                &status.as_str(),
                &new.attempt,
                &error,
                &body.json_str(),
                &body.raw,
                &new.triggered_at,
            ],
        )
        .await?;
    Ok(row.is_some())
}

/// SQLSTATE class 22: the value, not the statement or the server, is the problem.
fn is_data_exception(error: &tokio_postgres::Error) -> bool {
    error.code().is_some_and(|c| c.code().starts_with("22"))
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
