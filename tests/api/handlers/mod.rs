//! Handlers against the real Postgres: each webhook runs as the consumer will run it — begin,
//! handle and finish in one transaction, rolled back on error.

mod bulk;
mod compliance;
mod concurrency;
mod deliveries;
mod fixtures;
mod last_write_wins;

use deadpool_postgres::Pool;
use serde_json::Value;
use shopify_sync::db::{self, deliveries::Begin, deliveries::NewDelivery};
use shopify_sync::handlers::{self, HandlerError, Outcome};
use shopify_sync::shopify::{ShopDomain, Topic, WebhookHeaders, WebhookId};

use crate::helpers::TestDb;

pub const SHOP: &str = "test-shop.myshopify.com";

/// A Shopify sample payload from `tests/fixtures/webhooks/`, by topic (`orders/create`).
pub fn fixture(topic: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/webhooks/{}.json",
        env!("CARGO_MANIFEST_DIR"),
        topic.replace('/', "__")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The sample of `topic` with some top-level fields replaced.
pub fn fixture_with(topic: &str, changes: &[(&str, Value)]) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(&fixture(topic)).unwrap();
    for (key, new) in changes {
        value[*key] = new.clone();
    }
    serde_json::to_vec(&value).unwrap()
}

/// Headers of one webhook of the test shop with a fresh webhook id.
pub fn headers(topic: &str) -> WebhookHeaders {
    WebhookHeaders {
        topic: Topic::parse(topic).unwrap(),
        shop: ShopDomain::parse(SHOP).unwrap(),
        webhook_id: WebhookId::parse(&uuid::Uuid::new_v4().to_string()).unwrap(),
        api_version: "2026-07".into(),
        event_id: Some(uuid::Uuid::new_v4().to_string()),
        triggered_at: None,
        sub_topic: None,
        name: None,
    }
}

/// Runs one delivery; `Ok(None)` when `begin` found it already done.
pub async fn deliver_with(
    db: &TestDb,
    headers: &WebhookHeaders,
    body: &[u8],
) -> Result<Option<Outcome>, HandlerError> {
    deliver_on(&db.pool, headers, body).await
}

/// [`deliver_with`] on a pool, for a worker of its own in a spawned task.
pub async fn deliver_on(
    pool: &Pool,
    headers: &WebhookHeaders,
    body: &[u8],
) -> Result<Option<Outcome>, HandlerError> {
    let mut client = pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let new = NewDelivery::new(headers, body, 0);
    let delivery = match db::deliveries::begin(&tx, &new).await? {
        Begin::AlreadyDone => {
            tx.commit().await.unwrap();
            return Ok(None);
        }
        Begin::Started(delivery) => delivery,
    };
    match handlers::handle(&tx, &delivery, body).await {
        Ok(outcome) => {
            db::deliveries::finish(&tx, delivery.id, outcome.finished()).await?;
            tx.commit().await.unwrap();
            Ok(Some(outcome))
        }
        Err(error) => {
            tx.rollback().await.unwrap();
            Err(error)
        }
    }
}

/// Delivers a new webhook of `topic` that must succeed.
pub async fn deliver(db: &TestDb, topic: &str, body: &[u8]) -> Outcome {
    deliver_at(db, topic, body, None).await
}

/// Delivers a new webhook of `topic` triggered at `triggered_at` (RFC 3339).
pub async fn deliver_at(
    db: &TestDb,
    topic: &str,
    body: &[u8],
    triggered_at: Option<&str>,
) -> Outcome {
    let mut headers = headers(topic);
    headers.triggered_at = triggered_at.map(str::to_owned);
    deliver_with(db, &headers, body)
        .await
        .unwrap_or_else(|e| panic!("{topic}: {e}"))
        .expect("a new webhook is not already done")
}

/// The one value `sql` selects.
pub async fn scalar<T>(db: &TestDb, sql: &str) -> T
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    db.client()
        .await
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}
