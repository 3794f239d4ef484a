//! Reading deliveries back: the `deliveries` listing and what `replay` republishes.

use chrono::{DateTime, SecondsFormat, Utc};
use deadpool_postgres::GenericClient;

use super::DeliveryStatus;
use crate::db::DbError;
use crate::shopify::{ShopDomain, Topic, WebhookHeaders, WebhookId};

/// One line of `deliveries`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub id: i64,
    pub shop: String,
    pub webhook_id: String,
    pub topic: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// Which deliveries `deliveries` lists.
#[derive(Debug, Clone, Copy)]
pub struct ListFilter<'a> {
    pub status: Option<DeliveryStatus>,
    pub shop: Option<&'a ShopDomain>,
    pub limit: i64,
}

/// Deliveries matching `filter`, newest first.
pub async fn list(
    client: &impl GenericClient,
    filter: &ListFilter<'_>,
) -> Result<Vec<DeliveryRow>, DbError> {
    let rows = client
        .query(
            "SELECT d.id, s.domain, d.webhook_id, d.topic, d.status, d.attempts, d.last_error,
                    d.received_at
               FROM webhook_deliveries d JOIN shops s ON s.id = d.shop_id
              WHERE ($1::text IS NULL OR d.status = $1)
                AND ($2::text IS NULL OR s.domain = $2)
              ORDER BY d.received_at DESC, d.id DESC
              LIMIT $3",
            &[
                &filter.status.map(DeliveryStatus::as_str),
                &filter.shop.map(ShopDomain::as_str),
                &filter.limit,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| DeliveryRow {
            id: r.get(0),
            shop: r.get(1),
            webhook_id: r.get(2),
            topic: r.get(3),
            status: r.get(4),
            attempts: r.get(5),
            last_error: r.get(6),
            received_at: r.get(7),
        })
        .collect())
}

/// What `replay` takes from the ledger.
#[derive(Debug, Clone, Copy)]
pub enum ReplaySelection<'a> {
    /// These webhook ids, whatever their status (a processed one is a harmless no-op) and in
    /// every shop that has them.
    WebhookIds(&'a [String]),
    /// Dead letters, narrowed by topic, shop, and `dead_lettered_at >= since`.
    DeadLetters {
        topic: Option<&'a Topic>,
        shop: Option<&'a ShopDomain>,
        since: Option<DateTime<Utc>>,
    },
}

/// A stored webhook, ready to be published again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWebhook {
    pub shop: String,
    pub topic: String,
    pub webhook_id: String,
    pub event_id: Option<String>,
    pub api_version: Option<String>,
    pub triggered_at: Option<DateTime<Utc>>,
    /// The body: the exact bytes where they were kept (`payload_raw`), else the stored JSON as
    /// jsonb renders it (same values, ids and decimals exact; whitespace and key order are
    /// jsonb's).
    pub payload: Vec<u8>,
}

impl StoredWebhook {
    /// The message headers to republish with; `None` if the stored row is not a valid webhook.
    pub fn headers(&self) -> Option<WebhookHeaders> {
        Some(WebhookHeaders {
            topic: Topic::parse(&self.topic)?,
            shop: ShopDomain::parse(&self.shop)?,
            webhook_id: WebhookId::parse(&self.webhook_id)?,
            api_version: self.api_version.clone()?,
            event_id: self.event_id.clone(),
            triggered_at: self
                .triggered_at
                .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            sub_topic: None,
            name: None,
        })
    }
}

/// The stored webhooks `selection` names, oldest first. Rows whose payload was erased by a
/// redact are skipped: there is nothing left to replay.
pub async fn for_replay(
    client: &impl GenericClient,
    selection: &ReplaySelection<'_>,
) -> Result<Vec<StoredWebhook>, DbError> {
    const COLUMNS: &str = "SELECT s.domain, d.topic, d.webhook_id, d.event_id, d.api_version,
                d.triggered_at, COALESCE(d.payload_raw, convert_to(d.payload::text, 'UTF8'))
           FROM webhook_deliveries d JOIN shops s ON s.id = d.shop_id
          WHERE (d.payload IS NOT NULL OR d.payload_raw IS NOT NULL)";
    let rows = match *selection {
        ReplaySelection::WebhookIds(ids) => {
            let sql = format!("{COLUMNS} AND d.webhook_id = ANY ($1) ORDER BY d.received_at, d.id");
            client.query(&sql, &[&ids]).await?
        }
        ReplaySelection::DeadLetters { topic, shop, since } => {
            let sql = format!(
                "{COLUMNS} AND d.status = 'dead_letter'
                   AND ($1::text IS NULL OR d.topic = $1)
                   AND ($2::text IS NULL OR s.domain = $2)
                   AND ($3::timestamptz IS NULL OR d.dead_lettered_at >= $3)
                 ORDER BY d.received_at, d.id"
            );
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [
                &topic.map(Topic::as_str),
                &shop.map(ShopDomain::as_str),
                &since,
            ];
            client.query(&sql, &params).await?
        }
    };
    Ok(rows
        .iter()
        .map(|r| StoredWebhook {
            shop: r.get(0),
            topic: r.get(1),
            webhook_id: r.get(2),
            event_id: r.get(3),
            api_version: r.get(4),
            triggered_at: r.get(5),
            payload: r.get(6),
        })
        .collect())
}
