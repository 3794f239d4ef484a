//! Two workers at once: the conflict-update row lock, not an application lock, keeps effects
//! exactly-once and last-write-wins correct.

use std::time::Duration;

use serde_json::json;

use super::{SHOP, deliver_on, fixture, fixture_with, headers, scalar};
use crate::helpers::{TestDb, eventually};
use shopify_sync::db::{
    self,
    deliveries::{self, Begin, NewDelivery},
};
use shopify_sync::handlers::{self, Outcome};
use shopify_sync::shopify::ShopDomain;

/// The shop exists before the race, so the lock waited on is the delivery's or the customer's.
async fn shop_exists(db: &TestDb) {
    let shop = ShopDomain::parse(SHOP).unwrap();
    db::shops::get_or_create(&db.client().await, &shop)
        .await
        .unwrap();
}

/// Waits until another session of this database is blocked on a lock.
async fn someone_waits_for_a_lock(db: &TestDb) {
    eventually(
        Duration::from_secs(10),
        "a worker blocked on the row lock",
        || async {
            let waiting: i64 = scalar(
                db,
                "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .await;
            (waiting > 0).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn two_workers_holding_the_same_webhook_have_one_effect() {
    let db = TestDb::new().await;
    shop_exists(&db).await;
    let headers = headers("customers/update");
    let body = fixture("customers/update");

    // Worker A claims and handles the webhook but has not committed yet.
    let mut client = db.client().await;
    let tx = client.transaction().await.unwrap();
    let Begin::Started(delivery) = deliveries::begin(&tx, &NewDelivery::new(&headers, &body, 0))
        .await
        .unwrap()
    else {
        panic!("the first claim starts");
    };
    handlers::handle(&tx, &delivery, &body).await.unwrap();

    // Worker B gets a redelivered copy meanwhile, and waits on A's row.
    let (pool, b_headers, b_body) = (db.pool.clone(), headers.clone(), body.clone());
    let worker_b = tokio::spawn(async move { deliver_on(&pool, &b_headers, &b_body).await });
    someone_waits_for_a_lock(&db).await;
    deliveries::finish(&tx, delivery.id, Outcome::Processed.finished())
        .await
        .unwrap();
    tx.commit().await.unwrap();

    assert_eq!(worker_b.await.unwrap().unwrap(), None, "B finds it done");
    let (rows, attempts): (i64, i32) = {
        let row = db
            .client()
            .await
            .query_one(
                "SELECT count(*), max(attempts) FROM webhook_deliveries",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!((rows, attempts), (1, 1));
}

#[tokio::test]
async fn an_older_update_racing_a_newer_uncommitted_one_does_not_win() {
    let db = TestDb::new().await;
    shop_exists(&db).await;
    let newer = fixture_with(
        "customers/update",
        &[
            ("updated_at", json!("2026-02-01T00:00:00Z")),
            ("email", json!("new@example.com")),
        ],
    );
    let older = fixture_with(
        "customers/update",
        &[
            ("updated_at", json!("2026-01-01T00:00:00Z")),
            ("email", json!("old@example.com")),
        ],
    );

    let mut client = db.client().await;
    let tx = client.transaction().await.unwrap();
    let a = headers("customers/update");
    let Begin::Started(delivery) = deliveries::begin(&tx, &NewDelivery::new(&a, &newer, 0))
        .await
        .unwrap()
    else {
        panic!("the first claim starts");
    };
    handlers::handle(&tx, &delivery, &newer).await.unwrap();

    let pool = db.pool.clone();
    let worker_b =
        tokio::spawn(async move { deliver_on(&pool, &headers("customers/update"), &older).await });
    someone_waits_for_a_lock(&db).await;
    deliveries::finish(&tx, delivery.id, Outcome::Processed.finished())
        .await
        .unwrap();
    tx.commit().await.unwrap();

    assert_eq!(worker_b.await.unwrap().unwrap(), Some(Outcome::Processed));
    let email: String = scalar(&db, "SELECT email FROM customers").await;
    assert_eq!(email, "new@example.com");
}
