//! `customers`: deletes that stay deleted, and redaction (upserts: `super::bulk`).

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::DbError;

/// Top-level keys of a customer's raw JSON that are not personal data and survive a redact.
pub const NON_PERSONAL_KEYS: &[&str] = &[
    "id",
    "admin_graphql_api_id",
    "created_at",
    "updated_at",
    "state",
    "currency",
    "tax_exempt",
];

/// `customers/delete` at `at` (the webhook's trigger time, else now).
///
/// Marks the row deleted and raises `shopify_updated_at` to the delete time so an update older
/// than the delete, arriving later, does not apply. A customer never seen gets a tombstone row
/// for the same reason.
pub async fn mark_deleted(
    client: &impl GenericClient,
    shop_id: i64,
    shopify_id: i64,
    at: Option<DateTime<Utc>>,
) -> Result<(), DbError> {
    let statement = client
        .prepare_cached(
            "INSERT INTO customers AS c (shop_id, shopify_id, shopify_updated_at, deleted_at)
             VALUES ($1, $2, COALESCE($3, now()), COALESCE($3, now()))
             ON CONFLICT (shop_id, shopify_id) DO UPDATE
                SET deleted_at = LEAST(c.deleted_at, EXCLUDED.deleted_at),
                    shopify_updated_at = GREATEST(c.shopify_updated_at, EXCLUDED.shopify_updated_at),
                    synced_at = now()",
        )
        .await?;
    client
        .execute(&statement, &[&shop_id, &shopify_id, &at])
        .await?;
    Ok(())
}

/// `customers/redact`: removes the customer's personal data, keeps the id and non-personal
/// columns, and sets `redacted_at`. True if the customer was stored.
pub async fn redact(
    client: &impl GenericClient,
    shop_id: i64,
    shopify_id: i64,
) -> Result<bool, DbError> {
    let changed = client
        .execute(
            "UPDATE customers
                SET email = NULL, first_name = NULL, last_name = NULL, phone = NULL,
                    raw = (SELECT jsonb_object_agg(key, value) FROM jsonb_each(raw)
                            WHERE key = ANY ($3)),
                    redacted_at = COALESCE(redacted_at, now())
              WHERE shop_id = $1 AND shopify_id = $2",
            &[&shop_id, &shopify_id, &NON_PERSONAL_KEYS],
        )
        .await?;
    Ok(changed > 0)
}

/// `shop/redact`: every customer of the shop is deleted. Returns how many.
pub async fn delete_all(client: &impl GenericClient, shop_id: i64) -> Result<u64, DbError> {
    Ok(client
        .execute("DELETE FROM customers WHERE shop_id = $1", &[&shop_id])
        .await?)
}
