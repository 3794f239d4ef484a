//! The last-write-wins upserts of customers and orders, for any number of rows: a webhook (one
//! row), a worker's batch and a bulk import's batch all write through them, so the rule lives
//! in one place. One statement per call (one array per column, unnested side by side in the
//! select list: Postgres then walks the arrays in step, where `FROM UNNEST(a, b, …)` would first
//! copy each one into a tuplestore).
//!
//! The rule, in one statement, so concurrent workers need no locks: the stored row changes only
//! when its `shopify_updated_at` is NULL or `<=` the incoming `updated_at`. An incoming row
//! without `updated_at` therefore only fills a row that has no timestamp either. `deleted_at` is
//! never cleared (a delete raised `shopify_updated_at`, so older updates lose), and a redacted
//! row is never refilled with personal data. Within one call, the newest row per id is kept.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;

use super::DbError;
use crate::shopify::payload::{Customer, Order, Timestamp};

/// One record of a result file and its line, stored as `raw`.
#[derive(Debug, Clone)]
pub struct BulkRow<T> {
    pub record: T,
    /// The JSON line as Shopify wrote it (jsonb-safe).
    pub raw: String,
}

/// Upserts `rows` for `shop_id`; returns how many rows changed (the others were not newer).
pub async fn upsert_customers(
    client: &impl GenericClient,
    shop_id: i64,
    rows: &[BulkRow<Customer>],
) -> Result<u64, DbError> {
    let rows = newest_per_id(rows, |c| (c.id, c.updated_at));
    let statement = client
        .prepare_cached(
            "INSERT INTO customers AS c (shop_id, shopify_id, email, first_name, last_name, phone,
                    state, shopify_created_at, shopify_updated_at, raw)
             SELECT $1, t.shopify_id, t.email, t.first_name, t.last_name, t.phone, t.state,
                    t.created_at, t.updated_at, t.raw::jsonb
               FROM (SELECT unnest($2::bigint[]) AS shopify_id, unnest($3::text[]) AS email,
                            unnest($4::text[]) AS first_name, unnest($5::text[]) AS last_name,
                            unnest($6::text[]) AS phone, unnest($7::text[]) AS state,
                            unnest($8::timestamptz[]) AS created_at,
                            unnest($9::timestamptz[]) AS updated_at,
                            unnest($10::text[]) AS raw) AS t
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
                AND c.redacted_at IS NULL",
        )
        .await?;
    let ids: Vec<i64> = column(&rows, |c| c.id);
    let created: Vec<Option<Timestamp>> = column(&rows, |c| c.created_at);
    let updated: Vec<Option<Timestamp>> = column(&rows, |c| c.updated_at);
    let raw: Vec<&str> = rows.iter().map(|r| r.raw.as_str()).collect();
    Ok(client
        .execute(
            &statement,
            &[
                &shop_id,
                &ids,
                &column(&rows, |c| c.email.as_deref()),
                &column(&rows, |c| c.first_name.as_deref()),
                &column(&rows, |c| c.last_name.as_deref()),
                &column(&rows, |c| c.phone.as_deref()),
                &column(&rows, |c| c.state.as_deref()),
                &created,
                &updated,
                &raw,
            ],
        )
        .await?)
}

/// Upserts `rows` for `shop_id`; returns how many rows changed.
pub async fn upsert_orders(
    client: &impl GenericClient,
    shop_id: i64,
    rows: &[BulkRow<Order>],
) -> Result<u64, DbError> {
    let rows = newest_per_id(rows, |o| (o.id, o.updated_at));
    let statement = client
        .prepare_cached(
            "INSERT INTO orders AS o (shop_id, shopify_id, customer_shopify_id, name, email,
                    financial_status, fulfillment_status, currency, total_price, cancelled_at,
                    shopify_created_at, shopify_updated_at, raw)
             SELECT $1, t.shopify_id, t.customer_id, t.name, t.email, t.financial_status,
                    t.fulfillment_status, t.currency, t.total_price, t.cancelled_at,
                    t.created_at, t.updated_at, t.raw::jsonb
               FROM (SELECT unnest($2::bigint[]) AS shopify_id,
                            unnest($3::bigint[]) AS customer_id, unnest($4::text[]) AS name,
                            unnest($5::text[]) AS email, unnest($6::text[]) AS financial_status,
                            unnest($7::text[]) AS fulfillment_status,
                            unnest($8::text[]) AS currency, unnest($9::numeric[]) AS total_price,
                            unnest($10::timestamptz[]) AS cancelled_at,
                            unnest($11::timestamptz[]) AS created_at,
                            unnest($12::timestamptz[]) AS updated_at,
                            unnest($13::text[]) AS raw) AS t
             ON CONFLICT (shop_id, shopify_id) DO UPDATE
                SET customer_shopify_id = EXCLUDED.customer_shopify_id,
                    name = EXCLUDED.name,
                    email = EXCLUDED.email,
                    financial_status = EXCLUDED.financial_status,
                    fulfillment_status = EXCLUDED.fulfillment_status,
                    currency = EXCLUDED.currency,
                    total_price = EXCLUDED.total_price,
                    cancelled_at = EXCLUDED.cancelled_at,
                    shopify_created_at = COALESCE(EXCLUDED.shopify_created_at, o.shopify_created_at),
                    shopify_updated_at = EXCLUDED.shopify_updated_at,
                    raw = EXCLUDED.raw,
                    synced_at = now()
              WHERE (o.shopify_updated_at IS NULL
                     OR o.shopify_updated_at <= EXCLUDED.shopify_updated_at)
                AND o.redacted_at IS NULL",
        )
        .await?;
    let ids: Vec<i64> = column(&rows, |o| o.id);
    let customers: Vec<Option<i64>> = column(&rows, |o| o.customer.as_ref().map(|c| c.id));
    let totals: Vec<_> = column(&rows, |o| o.total_price);
    let raw: Vec<&str> = rows.iter().map(|r| r.raw.as_str()).collect();
    Ok(client
        .execute(
            &statement,
            &[
                &shop_id,
                &ids,
                &customers,
                &column(&rows, |o| o.name.as_deref()),
                &column(&rows, |o| o.email.as_deref()),
                &column(&rows, |o| o.financial_status.as_deref()),
                &column(&rows, |o| o.fulfillment_status.as_deref()),
                &column(&rows, |o| o.currency.as_deref()),
                &totals,
                &column(&rows, |o| o.cancelled_at),
                &column(&rows, |o| o.created_at),
                &column(&rows, |o| o.updated_at),
                &raw,
            ],
        )
        .await?)
}

/// One array parameter: `field` of every row, borrowed from the rows.
fn column<'a, T, V>(rows: &[&'a BulkRow<T>], field: impl Fn(&'a T) -> V) -> Vec<V> {
    rows.iter().map(|r| field(&r.record)).collect()
}

/// One row per id, the newest (Postgres refuses to update one row twice in a statement; a
/// result file should not repeat an id, but one that does must not fail the import).
fn newest_per_id<T>(
    rows: &[BulkRow<T>],
    key: fn(&T) -> (i64, Option<Timestamp>),
) -> Vec<&BulkRow<T>> {
    let mut at: HashMap<i64, usize> = HashMap::with_capacity(rows.len());
    let mut kept: Vec<&BulkRow<T>> = Vec::with_capacity(rows.len());
    for row in rows {
        let (id, updated) = key(&row.record);
        match at.get(&id) {
            Some(&i) if key(&kept[i].record).1 > updated => {}
            Some(&i) => kept[i] = row,
            None => {
                at.insert(id, kept.len());
                kept.push(row);
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_id_keeps_its_newest_line() {
        let at = |s: &str| Some(chrono::DateTime::parse_from_rfc3339(s).unwrap());
        let row = |id, updated: &str, raw: &str| BulkRow {
            record: (id, at(updated)),
            raw: raw.to_owned(),
        };
        let rows = [
            row(1, "2026-01-02T00:00:00Z", "new"),
            row(2, "2026-01-01T00:00:00Z", "only"),
            row(1, "2026-01-01T00:00:00Z", "old"),
        ];
        let kept = newest_per_id(&rows, |r| *r);
        let raws: Vec<_> = kept.iter().map(|r| r.raw.as_str()).collect();
        assert_eq!(raws, ["new", "only"]);
    }
}
