//! The delivery ledger: at most one completed processing per webhook id, dead letters that are
//! always recorded, and what `deliveries` and `replay` read back.

use serde_json::json;

use super::{SHOP, deliver_with, fixture, fixture_with, headers, scalar};
use crate::helpers::TestDb;
use shopify_sync::db::deliveries::{
    self, DeliveryStatus, ListFilter, NewDelivery, ReplaySelection,
};
use shopify_sync::handlers::{HandlerError, Outcome};
use shopify_sync::shopify::ShopDomain;

async fn delivery_row(
    db: &TestDb,
    webhook_id: &str,
) -> (String, i32, Option<String>, Option<serde_json::Value>, bool) {
    let row = db
        .client()
        .await
        .query_one(
            "SELECT status, attempts, last_error, payload, dead_lettered_at IS NOT NULL
               FROM webhook_deliveries WHERE webhook_id = $1",
            &[&webhook_id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

#[tokio::test]
async fn a_redelivered_processed_webhook_is_already_done_and_changes_nothing() {
    let db = TestDb::new().await;
    let headers = headers("customers/update");
    deliver_with(&db, &headers, &fixture("customers/update"))
        .await
        .unwrap();

    let newer = fixture_with(
        "customers/update",
        &[
            ("updated_at", json!("2030-01-01T00:00:00Z")),
            ("email", json!("x@y.z")),
        ],
    );
    let again = deliver_with(&db, &headers, &newer).await.unwrap();

    assert_eq!(again, None);
    let email: String = scalar(&db, "SELECT email FROM customers").await;
    assert_eq!(email, "bob@biller.com");
}

#[tokio::test]
async fn an_unknown_topic_is_recorded_ignored() {
    let db = TestDb::new().await;
    let headers = headers("products/create");

    let outcome = deliver_with(&db, &headers, br#"{"id": 1}"#).await.unwrap();

    assert_eq!(outcome, Some(Outcome::Ignored));
    let (status, attempts, ..) = delivery_row(&db, headers.webhook_id.as_str()).await;
    assert_eq!((status.as_str(), attempts), ("ignored", 1));
}

#[tokio::test]
async fn a_payload_without_id_is_a_permanent_error_that_names_the_field() {
    let db = TestDb::new().await;
    for topic in [
        "customers/update",
        "orders/create",
        "customers/delete",
        "orders/delete",
    ] {
        let error = deliver_with(&db, &headers(topic), br#"{"email": "a@b.c"}"#)
            .await
            .unwrap_err();

        assert!(!error.is_transient(), "{topic}: {error}");
        assert!(matches!(error, HandlerError::InvalidPayload { .. }));
        let text = error.to_string();
        assert!(
            text.starts_with(&format!("{topic} payload: missing field `id`")),
            "{text}"
        );
    }
    let rows: i64 = scalar(&db, "SELECT count(*) FROM webhook_deliveries").await;
    assert_eq!(rows, 0, "a failed attempt rolls back its delivery row");
}

#[tokio::test]
async fn bad_money_timestamps_and_ids_are_permanent_errors() {
    let db = TestDb::new().await;
    let cases = [
        (
            "orders/create",
            fixture_with("orders/create", &[("total_price", json!(404.95))]),
        ),
        (
            "orders/create",
            fixture_with("orders/create", &[("updated_at", json!("soon"))]),
        ),
        (
            "customers/update",
            br#"{"id": 99999999999999999999}"#.to_vec(),
        ),
        ("customers/update", br#"{"id": -5}"#.to_vec()),
        ("orders/edited", br#"{"order_edit": {}}"#.to_vec()),
    ];
    for (topic, body) in cases {
        let error = deliver_with(&db, &headers(topic), &body).await.unwrap_err();
        assert!(!error.is_transient(), "{topic}: {error}");
    }
}

#[tokio::test]
async fn a_dead_letter_with_no_earlier_row_is_recorded_with_payload_attempts_and_error() {
    let db = TestDb::new().await;
    let headers = headers("orders/create");
    let body = fixture("orders/create");
    let new = NewDelivery::new(&headers, &body, 4);

    let recorded =
        deliveries::record_dead_letter(&db.client().await, &new, "orders/create payload: boom")
            .await
            .unwrap();

    assert!(recorded);
    let (status, attempts, error, payload, dead_lettered) =
        delivery_row(&db, headers.webhook_id.as_str()).await;
    assert_eq!((status.as_str(), attempts), ("dead_letter", 5));
    assert_eq!(error.as_deref(), Some("orders/create payload: boom"));
    assert_eq!(payload.unwrap()["id"], json!(820982911946154508_i64));
    assert!(dead_lettered);
}

#[tokio::test]
async fn a_dead_letter_after_a_recorded_failure_updates_the_row() {
    let db = TestDb::new().await;
    let headers = headers("customers/update");
    let body = fixture("customers/update");
    let client = db.client().await;

    deliveries::record_failure(
        &client,
        &NewDelivery::new(&headers, &body, 0),
        "database away",
    )
    .await
    .unwrap();
    let (status, attempts, ..) = delivery_row(&db, headers.webhook_id.as_str()).await;
    assert_eq!((status.as_str(), attempts), ("failed", 1));

    deliveries::record_dead_letter(&client, &NewDelivery::new(&headers, &body, 4), "still away")
        .await
        .unwrap();

    let (status, attempts, error, payload, dead_lettered) =
        delivery_row(&db, headers.webhook_id.as_str()).await;
    assert_eq!((status.as_str(), attempts), ("dead_letter", 5));
    assert_eq!(error.as_deref(), Some("still away"));
    assert!(payload.is_some() && dead_lettered);
    let rows: i64 = scalar(&db, "SELECT count(*) FROM webhook_deliveries").await;
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn a_late_dead_letter_does_not_downgrade_a_processed_webhook() {
    let db = TestDb::new().await;
    let headers = headers("customers/update");
    let body = fixture("customers/update");
    deliver_with(&db, &headers, &body).await.unwrap();

    let recorded = deliveries::record_dead_letter(
        &db.client().await,
        &NewDelivery::new(&headers, &body, 2),
        "dup",
    )
    .await
    .unwrap();

    assert!(!recorded);
    let (status, _, error, ..) = delivery_row(&db, headers.webhook_id.as_str()).await;
    assert_eq!((status.as_str(), error), ("processed", None));
}

#[tokio::test]
async fn a_dead_letter_whose_body_jsonb_refuses_is_recorded_and_replays_exactly() {
    let db = TestDb::new().await;
    let nul = br#"{"id": 1, "note": "a\u0000b"}"#.to_vec();
    let not_json = b"\xff not json".to_vec();
    let (h1, h2) = (headers("customers/update"), headers("customers/update"));
    let client = db.client().await;

    deliveries::record_dead_letter(&client, &NewDelivery::new(&h1, &nul, 0), "x")
        .await
        .unwrap();
    deliveries::record_dead_letter(&client, &NewDelivery::new(&h2, &not_json, 0), "y")
        .await
        .unwrap();

    let (_, _, _, payload, _) = delivery_row(&db, h1.webhook_id.as_str()).await;
    assert_eq!(payload.unwrap()["note"], json!("a\u{fffd}b"));
    let (status, _, _, payload, _) = delivery_row(&db, h2.webhook_id.as_str()).await;
    assert_eq!((status.as_str(), payload), ("dead_letter", None));
    let stored = deliveries::for_replay(
        &client,
        &ReplaySelection::DeadLetters {
            topic: None,
            shop: None,
            since: None,
        },
    )
    .await
    .unwrap();
    let bodies: Vec<&[u8]> = stored.iter().map(|s| s.payload.as_slice()).collect();
    assert_eq!(bodies, [&nul[..], &not_json[..]]);
}

#[tokio::test]
async fn a_webhook_with_a_nul_in_its_body_is_processed() {
    let db = TestDb::new().await;
    let body = fixture_with("customers/update", &[("note", json!("before\u{0}after"))]);
    assert!(String::from_utf8_lossy(&body).contains("\\u0000"));

    let outcome = super::deliver(&db, "customers/update", &body).await;

    assert_eq!(outcome, Outcome::Processed);
    let note: String = scalar(&db, "SELECT raw ->> 'note' FROM customers").await;
    assert_eq!(note, "before\u{fffd}after");
}

#[tokio::test]
async fn dead_letters_are_listed_and_read_back_for_replay() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let mut dead = headers("orders/create");
    dead.triggered_at = Some("2026-09-01T10:00:00Z".into());
    let body = fixture("orders/create");
    deliveries::record_dead_letter(&client, &NewDelivery::new(&dead, &body, 4), "gave up")
        .await
        .unwrap();
    deliver_with(
        &db,
        &headers("customers/update"),
        &fixture("customers/update"),
    )
    .await
    .unwrap();

    let shop = ShopDomain::parse(SHOP).unwrap();
    let all = deliveries::list(
        &client,
        &ListFilter {
            status: None,
            shop: Some(&shop),
            limit: 10,
        },
    )
    .await
    .unwrap();
    let dead_only = deliveries::list(
        &client,
        &ListFilter {
            status: Some(DeliveryStatus::DeadLetter),
            shop: None,
            limit: 10,
        },
    )
    .await
    .unwrap();
    let replay = deliveries::for_replay(
        &client,
        &ReplaySelection::DeadLetters {
            topic: Some(&dead.topic),
            shop: Some(&shop),
            since: None,
        },
    )
    .await
    .unwrap();
    let by_id = deliveries::for_replay(
        &client,
        &ReplaySelection::WebhookIds(&[dead.webhook_id.to_string()]),
    )
    .await
    .unwrap();

    assert_eq!(all.len(), 2);
    assert_eq!(all[0].topic, "customers/update", "newest first");
    assert_eq!(dead_only.len(), 1);
    assert_eq!(
        (dead_only[0].attempts, dead_only[0].last_error.as_deref()),
        (5, Some("gave up"))
    );
    assert_eq!(replay, by_id);
    assert_eq!(replay[0].headers(), Some(dead.clone()));
    let replayed: serde_json::Value = serde_json::from_slice(&replay[0].payload).unwrap();
    let original: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(replayed, original);
    assert!(String::from_utf8_lossy(&replay[0].payload).contains("820982911946154508"));
}
