//! Handlers: one webhook's effect on Postgres, and whether a failure is worth retrying.
//!
//! [`handle`] runs inside the consumer's transaction, after `db::deliveries::begin` claimed the
//! delivery; the consumer alone decides ack, retry or dead letter from the result. One file per
//! topic family.
//!
//! Choices worth knowing:
//! - A customer or order without `updated_at` is stored, but only overwrites a row that has no
//!   `shopify_updated_at` either: it can never beat a dated write.
//! - Deletes happen at `X-Shopify-Triggered-At` (else now) and leave a tombstone for unseen ids.
//! - `orders/edited` is checked and processed with no change: it holds an edit record, and the
//!   edited order itself arrives as `orders/updated`.
//! - Redacts keep ids, money and statuses, keep an allow-list of non-personal keys in `raw`, and
//!   erase the stored webhook bodies about the customer; a redacted row is never refilled.
//! - Bodies with `\u0000` (refused by jsonb) are stored with U+FFFD in jsonb and, for
//!   deliveries, the exact bytes in `payload_raw` (see `db::json`).

mod app;
mod bulk;
mod compliance;
mod customers;
mod orders;

use std::borrow::Cow;

use deadpool_postgres::Transaction;
use serde::de::DeserializeOwned;

use crate::db::{
    DbError, bulk::BulkRow, deliveries::Delivery, deliveries::Finished, json::jsonb_text,
};
use crate::shopify::{
    Topic,
    payload::{Customer, Order},
};

/// What handling a webhook came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its effect is written.
    Processed,
    /// A topic the service has no handler for; recorded `ignored`.
    Ignored,
    /// `bulk_operations/finish` with `completed`: the result is ready to import (the bulk sync
    /// acts on it). The delivery itself is `processed`.
    BulkCompleted { bulk_operation_id: String },
    /// `bulk_operations/finish` without `completed` ended its running sync log `failed`.
    BulkFailed,
}

impl Outcome {
    /// The delivery status this outcome is recorded with.
    pub fn finished(&self) -> Finished {
        match self {
            Self::Ignored => Finished::Ignored,
            Self::Processed | Self::BulkCompleted { .. } | Self::BulkFailed => Finished::Processed,
        }
    }
}

/// Why a webhook could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The payload can never be processed as it is: dead-letter it at once, with the reason.
    #[error("{topic} payload: {reason}")]
    InvalidPayload { topic: String, reason: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl HandlerError {
    /// True when the same message may succeed later (retry tier); false means dead letter now.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::InvalidPayload { .. } => false,
            Self::Db(e) => e.is_transient(),
        }
    }

    fn invalid(topic: &Topic, reason: impl Into<String>) -> Self {
        Self::InvalidPayload {
            topic: topic.to_string(),
            reason: reason.into(),
        }
    }
}

/// Topics that carry a whole customer: last-write-wins upserts.
const CUSTOMER_UPSERTS: &[&str] = &[
    "customers/create",
    "customers/update",
    "customers/enable",
    "customers/disable",
];

/// Topics that carry a whole order: last-write-wins upserts.
const ORDER_UPSERTS: &[&str] = &[
    "orders/create",
    "orders/updated",
    "orders/paid",
    "orders/cancelled",
    "orders/fulfilled",
    "orders/partially_fulfilled",
];

/// What a webhook of a batch writes, read from its payload before any statement runs, so the
/// batch can write all its customers (and all its orders) with one statement.
#[derive(Debug, Clone)]
pub enum Plan {
    /// The customer to upsert under last write wins (`raw` is its jsonb text).
    Customer(BulkRow<Customer>),
    /// The order to upsert under last write wins.
    Order(BulkRow<Order>),
    /// Anything else: [`handle`] runs it inside the batch's transaction.
    Other,
}

/// The [`Plan`] of a webhook; a payload error is the permanent one [`handle`] would return.
pub fn plan(topic: &Topic, body: &[u8]) -> Result<Plan, HandlerError> {
    let topic_str = topic.as_str();
    Ok(if CUSTOMER_UPSERTS.contains(&topic_str) {
        Plan::Customer(customers::plan(topic, body)?)
    } else if ORDER_UPSERTS.contains(&topic_str) {
        Plan::Order(orders::plan(topic, body)?)
    } else {
        Plan::Other
    })
}

/// Applies one webhook's effect in `tx`. Any topic without a handler is [`Outcome::Ignored`].
pub async fn handle(
    tx: &Transaction<'_>,
    delivery: &Delivery,
    body: &[u8],
) -> Result<Outcome, HandlerError> {
    match delivery.topic.as_str() {
        topic if CUSTOMER_UPSERTS.contains(&topic) => customers::upsert(tx, delivery, body).await,
        "customers/delete" => customers::delete(tx, delivery, body).await,
        topic if ORDER_UPSERTS.contains(&topic) => orders::upsert(tx, delivery, body).await,
        "orders/edited" => orders::edited(delivery, body),
        "orders/delete" => orders::delete(tx, delivery, body).await,
        "app/uninstalled" => app::uninstalled(tx, delivery, body).await,
        "customers/data_request" => compliance::data_request(tx, delivery, body).await,
        "customers/redact" => compliance::customer_redact(tx, delivery, body).await,
        "shop/redact" => compliance::shop_redact(tx, delivery, body).await,
        "bulk_operations/finish" => bulk::finish(tx, delivery, body).await,
        _ => Ok(Outcome::Ignored),
    }
}

/// The typed payload, or a permanent error naming the topic and serde's reason
/// (e.g. "customers/update payload: missing field `id` at line 1 column 20").
fn parse<T: DeserializeOwned>(topic: &Topic, body: &[u8]) -> Result<T, HandlerError> {
    serde_json::from_slice(body).map_err(|e| HandlerError::invalid(topic, e.to_string()))
}

/// Shopify ids are positive; anything else is not an id of a real resource.
fn check_id(topic: &Topic, id: i64) -> Result<i64, HandlerError> {
    if id > 0 {
        Ok(id)
    } else {
        Err(HandlerError::invalid(
            topic,
            format!("id {id} is out of range"),
        ))
    }
}

/// The body as text for a `raw` jsonb column (the body parsed already, so it is UTF-8).
fn raw_json<'a>(topic: &Topic, body: &'a [u8]) -> Result<Cow<'a, str>, HandlerError> {
    jsonb_text(body).ok_or_else(|| HandlerError::invalid(topic, "body is not UTF-8"))
}
