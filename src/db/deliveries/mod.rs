//! `webhook_deliveries`: one row per (shop, webhook id), the ledger that makes processing
//! exactly-once in effect and keeps what failed for replay.
//!
//! The consumer runs [`begin`], the handler and [`finish`] in one transaction; after a rollback
//! it records the failed attempt with [`record_failure`] or [`record_dead_letter`].

mod attempts;
mod batch;
mod query;
mod scrub;

use std::str::FromStr;

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;

use super::{DbError, shops};
use crate::shopify::{ShopDomain, Topic, WebhookHeaders, WebhookId};

pub use attempts::{record_dead_letter, record_failure};
pub use batch::{Claim, begin_many};
pub use query::{DeliveryRow, ListFilter, ReplaySelection, StoredWebhook, for_replay, list};
pub use scrub::{scrub_for_customer, scrub_shop};

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

    /// The delivery once claimed as row `id` of shop `shop_id`.
    pub fn delivery(&self, id: i64, shop_id: i64) -> Delivery {
        Delivery {
            id,
            shop_id,
            topic: self.topic.clone(),
            webhook_id: self.webhook_id.clone(),
            triggered_at: self.triggered_at,
            attempt: self.attempt,
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
    let claimed = begin_many(tx, &[(shop_id, new, Claim::Processing)]).await?;
    Ok(match claimed.first().copied().flatten() {
        None => Begin::AlreadyDone,
        Some(id) => Begin::Started(new.delivery(id, shop_id)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_from_their_column_values() {
        assert_eq!("dead_letter".parse(), Ok(DeliveryStatus::DeadLetter));
        assert_eq!(DeliveryStatus::Processed.as_str(), "processed");
        assert!("done".parse::<DeliveryStatus>().is_err());
    }

    #[test]
    fn a_new_delivery_counts_attempts_from_one_and_reads_the_trigger_time() {
        let headers = WebhookHeaders {
            topic: Topic::parse("orders/create").unwrap(),
            shop: ShopDomain::parse("s.myshopify.com").unwrap(),
            webhook_id: WebhookId::parse("w").unwrap(),
            api_version: "2026-07".into(),
            event_id: None,
            triggered_at: Some("2023-03-29T18:00:27.877041743Z".into()),
            sub_topic: None,
            name: None,
        };
        let new = NewDelivery::new(&headers, b"{}", 2);
        assert_eq!(new.attempt, 3);
        assert_eq!(
            new.triggered_at.unwrap().timestamp_nanos_opt(),
            Some(1_680_112_827_877_041_743)
        );
        let mut bad = headers.clone();
        bad.triggered_at = Some("yesterday".into());
        assert_eq!(NewDelivery::new(&bad, b"{}", 0).triggered_at, None);
    }
}
