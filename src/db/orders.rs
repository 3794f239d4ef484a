//! `orders`: deletes that stay deleted, and redaction (upserts: `super::bulk`).

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::DbError;

/// Top-level keys of an order's raw JSON that are not personal data and survive a redact
/// (an allow-list: addresses, contact details, notes and client details all go).
pub const NON_PERSONAL_KEYS: &[&str] = &[
    "id",
    "admin_graphql_api_id",
    "name",
    "number",
    "order_number",
    "currency",
    "presentment_currency",
    "financial_status",
    "fulfillment_status",
    "total_price",
    "subtotal_price",
    "total_tax",
    "total_discounts",
    "cancel_reason",
    "cancelled_at",
    "closed_at",
    "processed_at",
    "created_at",
    "updated_at",
    "test",
];

/// `orders/delete` at `at`; see [`super::customers::mark_deleted`] for why it is written so.
pub async fn mark_deleted(
    client: &impl GenericClient,
    shop_id: i64,
    shopify_id: i64,
    at: Option<DateTime<Utc>>,
) -> Result<(), DbError> {
    let statement = client
        .prepare_cached(
            "INSERT INTO orders AS o (shop_id, shopify_id, shopify_updated_at, deleted_at)
             VALUES ($1, $2, COALESCE($3, now()), COALESCE($3, now()))
             ON CONFLICT (shop_id, shopify_id) DO UPDATE
                SET deleted_at = LEAST(o.deleted_at, EXCLUDED.deleted_at),
                    shopify_updated_at = GREATEST(o.shopify_updated_at, EXCLUDED.shopify_updated_at),
                    synced_at = now()",
        )
        .await?;
    client
        .execute(&statement, &[&shop_id, &shopify_id, &at])
        .await?;
    Ok(())
}

/// `customers/redact`: scrubs the personal data of the customer's orders and of the listed
/// orders (ids, money and statuses stay). Returns how many orders were redacted.
pub async fn redact(
    client: &impl GenericClient,
    shop_id: i64,
    customer_shopify_id: i64,
    order_ids: &[i64],
) -> Result<u64, DbError> {
    Ok(client
        .execute(
            "UPDATE orders
                SET email = NULL,
                    raw = (SELECT jsonb_object_agg(key, value) FROM jsonb_each(raw)
                            WHERE key = ANY ($4)),
                    redacted_at = COALESCE(redacted_at, now())
              WHERE shop_id = $1 AND (customer_shopify_id = $2 OR shopify_id = ANY ($3))",
            &[
                &shop_id,
                &customer_shopify_id,
                &order_ids,
                &NON_PERSONAL_KEYS,
            ],
        )
        .await?)
}

/// `shop/redact`: every order of the shop is deleted. Returns how many.
pub async fn delete_all(client: &impl GenericClient, shop_id: i64) -> Result<u64, DbError> {
    Ok(client
        .execute("DELETE FROM orders WHERE shop_id = $1", &[&shop_id])
        .await?)
}
