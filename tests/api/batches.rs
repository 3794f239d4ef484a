//! A worker that takes its queue in batches (one transaction, one multi-row statement per kind
//! of effect) ends exactly where one message at a time would: last write wins within a batch as
//! across batches, a delete and a redact are not undone, and a redelivered webhook changes
//! nothing.

use std::time::Duration;

use rand::seq::SliceRandom;
use serde_json::json;

use crate::faults::{Tally, install_effect_audit, send_all, start_worker};
use crate::handlers::fixture_with;
use crate::helpers::{TestDb, Webhook, spawn_receiver};

const REDACTED: i64 = 9_000_001;
const DELETED: i64 = 9_000_002;
const VERSIONED: i64 = 9_000_003;
const ORDER: i64 = 9_000_004;
const SEEN: i64 = 9_000_005;

fn customer(id: i64, updated_at: &str, first_name: &str) -> Webhook {
    let body = fixture_with(
        "customers/update",
        &[
            ("id", json!(id)),
            ("first_name", json!(first_name)),
            ("updated_at", json!(updated_at)),
        ],
    );
    Webhook::new("customers/update", body)
}

fn at(minute: u32) -> String {
    format!("2026-02-01T10:{minute:02}:00Z")
}

async fn text(db: &TestDb, sql: &str, id: i64) -> Option<String> {
    db.client()
        .await
        .query_one(sql, &[&id])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_ends_as_one_message_at_a_time_would() {
    let db = TestDb::new().await;
    install_effect_audit(&db).await;
    let app = spawn_receiver(&[("QUEUE_TYPE", "quorum")]).await;

    // Before the batch: one webhook processed, and a customer redacted.
    let seen = customer(SEEN, &at(1), "first");
    send_all(&app.address, std::slice::from_ref(&seen)).await;
    let worker = start_worker(&app.settings.amqp_prefix, &db);
    Tally::count("one webhook", &db, 1, 1, Duration::from_secs(30)).await;
    drop(worker);
    db.client()
        .await
        .execute(
            "INSERT INTO customers (shop_id, shopify_id, shopify_updated_at, redacted_at)
             SELECT id, $1, '2026-01-01', now() FROM shops",
            &[&REDACTED],
        )
        .await
        .unwrap();

    let mut batch = vec![
        // The same webhook again, with a newer body: a redelivery, so no effect.
        Webhook {
            body: customer(SEEN, &at(59), "changed").body,
            ..seen.clone()
        },
        customer(REDACTED, &at(30), "refilled"),
        customer(DELETED, &at(20), "before-delete"),
        customer(DELETED, &at(10), "older"),
    ];
    let mut delete = Webhook::new("customers/delete", json!({ "id": DELETED }).to_string());
    delete.omit_headers = vec!["X-Shopify-Triggered-At"];
    delete.extra_headers = vec![("X-Shopify-Triggered-At".into(), at(25))];
    batch.push(delete);
    batch.extend((0..12).map(|v| customer(VERSIONED, &at(v), &format!("v{v}"))));
    batch.extend((0..6).map(|v| {
        let body = fixture_with(
            "orders/updated",
            &[
                ("id", json!(ORDER)),
                ("total_price", json!(format!("{v}.00"))),
                ("updated_at", json!(at(v))),
            ],
        );
        Webhook::new("orders/updated", body)
    }));
    batch.shuffle(&mut rand::rng());
    // Queued before the worker starts, so it takes them in batches.
    let (accepted, _) = send_all(&app.address, &batch).await;
    assert_eq!(accepted, batch.len());
    let worker = start_worker(&app.settings.amqp_prefix, &db);
    let new = batch.len() - 1;
    let tally = Tally::count(
        "a mixed batch",
        &db,
        1 + new,
        1 + new,
        Duration::from_secs(30),
    )
    .await;
    drop(worker);

    tally.assert_nothing_lost();
    assert_eq!(tally.processed as usize, 1 + new, "{tally:?}");
    let first_name = "SELECT first_name FROM customers WHERE shopify_id = $1";
    assert_eq!(
        text(&db, first_name, VERSIONED).await.as_deref(),
        Some("v11")
    );
    assert_eq!(text(&db, first_name, SEEN).await.as_deref(), Some("first"));
    assert_eq!(
        text(&db, first_name, REDACTED).await,
        None,
        "never refilled"
    );
    let deleted = "SELECT deleted_at::text FROM customers WHERE shopify_id = $1";
    assert!(text(&db, deleted, DELETED).await.is_some(), "deleted");
    let updated = "SELECT to_char(shopify_updated_at AT TIME ZONE 'UTC', 'HH24:MI') FROM customers WHERE shopify_id = $1";
    assert_eq!(
        text(&db, updated, DELETED).await.as_deref(),
        Some("10:25"),
        "the delete's time stands; the older updates did not pass it"
    );
    let total = "SELECT total_price::text FROM orders WHERE shopify_id = $1";
    assert_eq!(text(&db, total, ORDER).await.as_deref(), Some("5.00"));
    let stored = "SELECT payload ->> 'first_name' FROM webhook_deliveries WHERE webhook_id = $1";
    let row = db
        .client()
        .await
        .query_one(stored, &[&seen.webhook_id])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("first"));
}
