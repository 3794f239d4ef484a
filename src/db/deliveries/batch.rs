//! Claiming a batch's deliveries with one statement.

use deadpool_postgres::Transaction;

use super::{DeliveryStatus, Finished, NewDelivery};
use crate::db::{DbError, json::StoredBody};

/// How a delivery claimed by [`begin_many`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// `processing`: its handler runs next in the transaction, then `finish` ends it.
    Processing,
    /// Already finished: its effect is written by the same transaction (a batch's multi-row
    /// upsert), and nothing commits unless all of it does.
    Finished(Finished),
}

impl Claim {
    fn status(self) -> &'static str {
        match self {
            Self::Processing => DeliveryStatus::Processing.as_str(),
            Self::Finished(Finished::Processed) => DeliveryStatus::Processed.as_str(),
            Self::Finished(Finished::Ignored) => DeliveryStatus::Ignored.as_str(),
        }
    }
}

/// Claims deliveries of known shops, any number in one `INSERT … SELECT FROM UNNEST` (one for
/// [`super::begin`]).
/// Returns, per input, the claimed row's id, or `None` for a delivery already `processed` or
/// `ignored` (a redelivery, to be acked with no effect).
///
/// The webhooks must be distinct (shop, webhook id) pairs: one statement cannot claim a row twice.
pub async fn begin_many(
    tx: &Transaction<'_>,
    claims: &[(i64, &NewDelivery<'_>, Claim)],
) -> Result<Vec<Option<i64>>, DbError> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO webhook_deliveries AS d (shop_id, webhook_id, event_id, topic,
                    api_version, status, attempts, payload, payload_raw, triggered_at,
                    processed_at)
             SELECT t.shop_id, t.webhook_id, t.event_id, t.topic, t.api_version, t.status,
                    t.attempts, t.payload::jsonb, t.payload_raw, t.triggered_at,
                    CASE WHEN t.status = 'processing' THEN NULL ELSE now() END
               FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                           $6::text[], $7::int[], $8::text[], $9::bytea[], $10::timestamptz[])
                    AS t(shop_id, webhook_id, event_id, topic, api_version, status, attempts,
                         payload, payload_raw, triggered_at)
             ON CONFLICT (shop_id, webhook_id) DO UPDATE
                SET status = EXCLUDED.status,
                    attempts = EXCLUDED.attempts,
                    event_id = COALESCE(EXCLUDED.event_id, d.event_id),
                    topic = EXCLUDED.topic,
                    api_version = EXCLUDED.api_version,
                    payload = EXCLUDED.payload,
                    payload_raw = EXCLUDED.payload_raw,
                    triggered_at = COALESCE(EXCLUDED.triggered_at, d.triggered_at),
                    processed_at = EXCLUDED.processed_at,
                    last_error = CASE WHEN EXCLUDED.status = 'processing'
                                      THEN d.last_error END,
                    updated_at = now()
              WHERE d.status NOT IN ('processed', 'ignored')
             RETURNING id, shop_id, webhook_id",
        )
        .await?;
    let bodies: Vec<StoredBody> = claims
        .iter()
        .map(|(_, new, _)| StoredBody::new(new.payload))
        .collect();
    let shops: Vec<i64> = claims.iter().map(|(shop, _, _)| *shop).collect();
    let ids: Vec<&str> = claims
        .iter()
        .map(|(_, n, _)| n.webhook_id.as_str())
        .collect();
    let events: Vec<Option<&str>> = claims.iter().map(|(_, n, _)| n.event_id).collect();
    let topics: Vec<&str> = claims.iter().map(|(_, n, _)| n.topic.as_str()).collect();
    let versions: Vec<&str> = claims.iter().map(|(_, n, _)| n.api_version).collect();
    let statuses: Vec<&str> = claims.iter().map(|(_, _, c)| c.status()).collect();
    let attempts: Vec<i32> = claims.iter().map(|(_, n, _)| n.attempt).collect();
    let payloads: Vec<Option<&str>> = bodies.iter().map(StoredBody::json_str).collect();
    let raws: Vec<Option<&[u8]>> = bodies.iter().map(|b| b.raw).collect();
    let triggered: Vec<_> = claims.iter().map(|(_, n, _)| n.triggered_at).collect();
    let rows = tx
        .query(
            &statement,
            &[
                &shops, &ids, &events, &topics, &versions, &statuses, &attempts, &payloads, &raws,
                &triggered,
            ],
        )
        .await?;
    let claimed: std::collections::HashMap<(i64, &str), i64> = rows
        .iter()
        .map(|row| ((row.get(1), row.get(2)), row.get(0)))
        .collect();
    Ok(claims
        .iter()
        .map(|(shop, new, _)| claimed.get(&(*shop, new.webhook_id.as_str())).copied())
        .collect())
}
