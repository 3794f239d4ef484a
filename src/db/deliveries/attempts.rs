//! Recording an attempt that failed, outside the rolled-back transaction: `failed` while retries
//! remain, `dead_letter` at the end. Both are upserts that never lose the record.

use deadpool_postgres::GenericClient;

use super::{DeliveryStatus, NewDelivery};
use crate::db::{DbError, json::StoredBody, shops};

/// The longest `last_error` kept; a cause chain is rarely longer, a payload dump could be.
const MAX_ERROR_LEN: usize = 4000;

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

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("ééé", 3), "é");
    }
}
