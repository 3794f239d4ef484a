//! `customers`: last-write-wins upserts, deletes that stay deleted, and redaction.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::DbError;
use crate::shopify::payload::Customer;

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

/// Inserts or updates a customer from a webhook; true if the row changed.
///
/// Last write wins in one statement, so concurrent workers need no locks: the stored row changes
/// only when its `shopify_updated_at` is NULL or not newer than the incoming `updated_at`. An
/// incoming row without `updated_at` therefore only fills a row that has no timestamp either.
/// `deleted_at` is never cleared (a delete raised `shopify_updated_at`, so older updates lose),
/// and a redacted row is never refilled with personal data.
pub async fn upsert(
    client: &impl GenericClient,
    shop_id: i64,
    customer: &Customer,
    raw_json: &str,
) -> Result<bool, DbError> {
    let statement = client
        .prepare_cached(
            "INSERT INTO customers AS c (shop_id, shopify_id, email, first_name, last_name, phone,
                    state, shopify_created_at, shopify_updated_at, raw)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::jsonb)
             ON CONFLICT (shop_id, shopify_id) DO UPDATE
                SET email = EXCLUDED.email,
                    first_name = EXCLUDED.first_name,
                    last_name = EXCLUDED.last_name,
                    phone = EXCLUDED.phone,
                    state = EXCLUDED.state,
                    shopify_created_at = COALESCE(EXCLUDED.shopify_created_at, c.shopify_created_at),
                    shopify_updated_at = EXCLUDED.shopify_updated_at,
                    raw = EXCLUDED.raw,
                    synced_at = now()
              WHERE (c.shopify_updated_at IS NULL
                     OR c.shopify_updated_at <= EXCLUDED.shopify_updated_at)
                AND c.redacted_at IS NULL
             RETURNING id",
        )
        .await?;
    let row = client
        .query_opt(
            &statement,
            &[
                &shop_id,
                &customer.id,
                &customer.email,
                &customer.first_name,
                &customer.last_name,
                &customer.phone,
                &customer.state,
                &customer.created_at,
                &customer.updated_at,
                &raw_json,
            ],
        )
        .await?;
    Ok(row.is_some())
}

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
