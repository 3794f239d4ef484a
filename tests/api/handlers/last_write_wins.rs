//! Last write wins, exactly as the contract says: the stored row changes only when its
//! `shopify_updated_at` is NULL or `<=` the incoming `updated_at`; a delete is not undone.

use serde_json::json;

use super::{deliver, deliver_at, fixture_with, scalar};
use crate::helpers::TestDb;

const OLD: &str = "2026-01-01T10:00:00-05:00";
const NEW: &str = "2026-01-02T10:00:00-05:00";

fn customer(updated_at: &str, email: &str) -> Vec<u8> {
    fixture_with(
        "customers/update",
        &[("updated_at", json!(updated_at)), ("email", json!(email))],
    )
}

fn order(updated_at: &str, total: &str) -> Vec<u8> {
    fixture_with(
        "orders/updated",
        &[
            ("updated_at", json!(updated_at)),
            ("total_price", json!(total)),
        ],
    )
}

async fn customer_email(db: &TestDb) -> Option<String> {
    scalar(
        db,
        "SELECT email FROM customers WHERE shopify_id = 706405506930370084",
    )
    .await
}

async fn order_total(db: &TestDb) -> String {
    scalar(
        db,
        "SELECT total_price::text FROM orders WHERE shopify_id = 820982911946154508",
    )
    .await
}

#[tokio::test]
async fn older_update_does_not_overwrite_newer_customer() {
    let db = TestDb::new().await;

    deliver(&db, "customers/update", &customer(NEW, "new@example.com")).await;
    deliver(&db, "customers/update", &customer(OLD, "old@example.com")).await;

    assert_eq!(
        customer_email(&db).await.as_deref(),
        Some("new@example.com")
    );
    let raw_email: String = scalar(&db, "SELECT raw ->> 'email' FROM customers").await;
    assert_eq!(raw_email, "new@example.com");
}

#[tokio::test]
async fn newer_and_equally_new_customer_updates_apply() {
    let db = TestDb::new().await;

    deliver(&db, "customers/create", &customer(OLD, "first@example.com")).await;
    deliver(
        &db,
        "customers/update",
        &customer(NEW, "second@example.com"),
    )
    .await;
    assert_eq!(
        customer_email(&db).await.as_deref(),
        Some("second@example.com")
    );

    // The same instant written with another offset is equal, and equal applies.
    deliver(
        &db,
        "customers/update",
        &customer("2026-01-02T15:00:00Z", "third@example.com"),
    )
    .await;
    assert_eq!(
        customer_email(&db).await.as_deref(),
        Some("third@example.com")
    );
}

#[tokio::test]
async fn older_update_does_not_overwrite_newer_order() {
    let db = TestDb::new().await;

    deliver(&db, "orders/updated", &order(NEW, "500.10")).await;
    deliver(&db, "orders/paid", &order(OLD, "404.95")).await;

    assert_eq!(order_total(&db).await, "500.10");
}

#[tokio::test]
async fn equally_new_order_update_applies() {
    let db = TestDb::new().await;

    deliver(&db, "orders/create", &order(NEW, "1.00")).await;
    deliver(&db, "orders/updated", &order(NEW, "2.50")).await;

    assert_eq!(order_total(&db).await, "2.50");
}

#[tokio::test]
async fn a_customer_update_without_updated_at_never_overwrites_a_dated_row() {
    let db = TestDb::new().await;
    let undated = fixture_with(
        "customers/update",
        &[
            ("updated_at", json!(null)),
            ("email", json!("undated@example.com")),
        ],
    );

    deliver(&db, "customers/update", &customer(OLD, "dated@example.com")).await;
    deliver(&db, "customers/update", &undated).await;

    assert_eq!(
        customer_email(&db).await.as_deref(),
        Some("dated@example.com")
    );
}

#[tokio::test]
async fn delete_then_an_older_update_stays_deleted() {
    let db = TestDb::new().await;
    deliver(
        &db,
        "customers/create",
        &customer(OLD, "before@example.com"),
    )
    .await;

    deliver_at(
        &db,
        "customers/delete",
        &fixture_with("customers/delete", &[]),
        Some(NEW),
    )
    .await;
    deliver(
        &db,
        "customers/update",
        &customer(OLD, "replayed@example.com"),
    )
    .await;

    let row = db
        .client()
        .await
        .query_one(
            "SELECT deleted_at = $1::text::timestamptz, email FROM customers",
            &[&NEW],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, Option<&str>>(1), Some("before@example.com"));
}

#[tokio::test]
async fn a_later_update_never_clears_deleted_at() {
    let db = TestDb::new().await;
    deliver_at(
        &db,
        "orders/delete",
        &fixture_with("orders/delete", &[]),
        Some(OLD),
    )
    .await;

    deliver(&db, "orders/updated", &order(NEW, "9.99")).await;

    let deleted: bool = scalar(&db, "SELECT deleted_at IS NOT NULL FROM orders").await;
    assert!(deleted);
}

#[tokio::test]
async fn delete_of_an_unseen_customer_leaves_a_tombstone_an_older_create_does_not_revive() {
    let db = TestDb::new().await;

    deliver_at(
        &db,
        "customers/delete",
        &fixture_with("customers/delete", &[]),
        Some(NEW),
    )
    .await;
    deliver(&db, "customers/create", &customer(OLD, "late@example.com")).await;

    let row = db
        .client()
        .await
        .query_one(
            "SELECT deleted_at IS NOT NULL, email, raw FROM customers",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, Option<&str>>(1), None);
    assert_eq!(row.get::<_, Option<serde_json::Value>>(2), None);
}

#[tokio::test]
async fn delete_of_an_unseen_order_leaves_a_tombstone_an_older_create_does_not_revive() {
    let db = TestDb::new().await;

    deliver_at(
        &db,
        "orders/delete",
        &fixture_with("orders/delete", &[]),
        Some(NEW),
    )
    .await;
    deliver(&db, "orders/create", &order(OLD, "404.95")).await;

    let row = db
        .client()
        .await
        .query_one(
            "SELECT deleted_at IS NOT NULL, total_price IS NULL FROM orders",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert!(row.get::<_, bool>(1));
}

#[tokio::test]
async fn a_delete_without_trigger_time_counts_from_now() {
    let db = TestDb::new().await;
    deliver(&db, "customers/create", &customer(OLD, "a@example.com")).await;

    deliver(
        &db,
        "customers/delete",
        &fixture_with("customers/delete", &[]),
    )
    .await;

    let raised: bool = scalar(
        &db,
        "SELECT shopify_updated_at > now() - interval '1 minute' FROM customers",
    )
    .await;
    assert!(raised);
}
