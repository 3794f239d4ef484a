//! A completed `bulk_operations/finish`, posted through the receiver: the worker asks the
//! operation's node, streams the result file and upserts it under last write wins.

use serde_json::{Value, json};
use shopify_sync::db::sync_logs::{self, Resource};

use super::{count, log_state, names, running_log, shop_with_token};
use crate::handlers::fixture_with;
use crate::helpers::{FakeShopify, File, TestApp, Webhook, app::SHOP, eventually, spawn_app};

const WAIT: std::time::Duration = std::time::Duration::from_secs(20);

async fn app_with(fake: &FakeShopify) -> TestApp {
    spawn_app(&[("SHOPIFY_ADMIN_URL", &fake.admin_url())]).await
}

fn finish(gid: &str, status: &str, error_code: Value) -> Webhook {
    let body = fixture_with(
        "bulk_operations/finish",
        &[
            ("admin_graphql_api_id", json!(gid)),
            ("status", json!(status)),
            ("error_code", error_code),
        ],
    );
    Webhook::new("bulk_operations/finish", body)
}

/// Posts a finish and waits until its delivery is processed.
async fn finished(app: &TestApp, gid: &str, status: &str) -> String {
    let webhook = finish(gid, status, Value::Null);
    app.accept(&webhook).await;
    app.wait_for_status(&webhook.webhook_id, "processed").await;
    webhook.webhook_id
}

#[tokio::test]
async fn a_completed_finish_imports_every_customer_and_order_of_the_result_files() {
    let fake = FakeShopify::start().await;
    let app = app_with(&fake).await;
    let shop = shop_with_token(app.db(), SHOP).await;
    let updated_at = "2026-05-01T12:00:00Z".to_owned();
    let customers = fake.add_operation(
        "COMPLETED",
        None,
        Some(File::Customers {
            count: 120,
            updated_at: updated_at.clone(),
        }),
    );
    let orders = fake.add_operation(
        "COMPLETED",
        None,
        Some(File::Orders {
            count: 80,
            updated_at,
        }),
    );
    let customers_log = running_log(app.db(), shop, Resource::Customers, &customers).await;
    let orders_log = running_log(app.db(), shop, Resource::Orders, &orders).await;

    finished(&app, &customers, "completed").await;
    finished(&app, &orders, "completed").await;

    let db = app.db();
    assert_eq!(count(db, "SELECT count(*) FROM customers").await, 120);
    assert_eq!(
        count(db, "SELECT count(*) FROM orders").await,
        80,
        "line items are not orders"
    );
    let customers_state = log_state(db, customers_log).await;
    assert_eq!(
        (customers_state.status.as_str(), customers_state.records),
        ("completed", 120)
    );
    assert!(customers_state.completed);
    assert_eq!(log_state(db, orders_log).await.records, 80);
    let order = db
        .client()
        .await
        .query_one(
            "SELECT customer_shopify_id, name, email, financial_status, fulfillment_status,
                    currency, total_price::text, shopify_updated_at = '2026-05-01T12:00:00Z'
               FROM orders WHERE shopify_id = 7",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(order.get::<_, Option<i64>>(0), Some(7));
    assert_eq!(order.get::<_, String>(1), "#7");
    assert_eq!(order.get::<_, String>(2), "o7@example.com");
    assert_eq!(order.get::<_, String>(3), "paid");
    assert_eq!(order.get::<_, String>(4), "partial");
    assert_eq!(order.get::<_, String>(5), "EUR");
    assert_eq!(order.get::<_, String>(6), "7.95");
    assert!(order.get::<_, bool>(7));
    let customer = db
        .client()
        .await
        .query_one(
            "SELECT email, first_name, last_name, state FROM customers WHERE shopify_id = 3",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(customer.get::<_, String>(0), "c3@example.com");
    assert_eq!(customer.get::<_, String>(1), "First3");
    assert_eq!(customer.get::<_, Option<String>>(2), None);
    assert_eq!(customer.get::<_, String>(3), "enabled");
    let metric = app
        .metric(r#"shopify_sync_bulk_records_total{resource="customers"}"#)
        .await;
    assert_eq!(metric, 120.0);
    assert_eq!(
        app.metric(r#"shopify_sync_syncs_total{outcome="completed"}"#)
            .await,
        2.0
    );
}

#[tokio::test]
async fn an_older_bulk_line_does_not_overwrite_a_newer_webhook_row_and_a_newer_line_does() {
    let fake = FakeShopify::start().await;
    let app = app_with(&fake).await;
    let shop = shop_with_token(app.db(), SHOP).await;
    for (id, name) in [(1, "Webhook-newer"), (2, "Webhook-older")] {
        let body = fixture_with(
            "customers/update",
            &[
                ("id", json!(id)),
                ("first_name", json!(name)),
                ("updated_at", json!("2026-03-01T10:00:00-05:00")),
            ],
        );
        let webhook = Webhook::new("customers/update", body);
        app.accept(&webhook).await;
        app.wait_for_status(&webhook.webhook_id, "processed").await;
    }
    let line = |id: i64, name: &str, updated: &str| {
        format!(
            r#"{{"id":"gid:\/\/shopify\/Customer\/{id}","firstName":"{name}","updatedAt":"{updated}","defaultEmailAddress":null}}"#
        )
    };
    let file = File::Lines(vec![
        line(1, "Bulk-older", "2026-03-01T14:59:59Z"),
        line(2, "Bulk-newer", "2026-03-01T15:00:01Z"),
    ]);
    let gid = fake.add_operation("COMPLETED", None, Some(file));
    let log = running_log(app.db(), shop, Resource::Customers, &gid).await;

    finished(&app, &gid, "completed").await;

    assert_eq!(
        names(app.db()).await,
        [
            (1, Some("Webhook-newer".into())),
            (2, Some("Bulk-newer".into()))
        ]
    );
    assert_eq!(log_state(app.db(), log).await.records, 2);
}

#[tokio::test]
async fn a_completed_operation_without_a_url_completes_with_zero_records() {
    let fake = FakeShopify::start().await;
    let app = app_with(&fake).await;
    let shop = shop_with_token(app.db(), SHOP).await;
    let gid = fake.add_operation("COMPLETED", None, None);
    let log = running_log(app.db(), shop, Resource::Orders, &gid).await;

    finished(&app, &gid, "completed").await;

    let state = log_state(app.db(), log).await;
    assert_eq!((state.status.as_str(), state.records), ("completed", 0));
    assert_eq!(fake.downloads(), 0);
}

#[tokio::test]
async fn a_redelivered_finish_for_a_completed_log_changes_nothing() {
    let fake = FakeShopify::start().await;
    let app = app_with(&fake).await;
    let shop = shop_with_token(app.db(), SHOP).await;
    let file = |count| File::Customers {
        count,
        updated_at: "2026-05-01T00:00:00Z".into(),
    };
    let gid = fake.add_operation("COMPLETED", None, Some(file(5)));
    let log = running_log(app.db(), shop, Resource::Customers, &gid).await;
    finished(&app, &gid, "completed").await;
    let requests = fake.requests().len();

    // Shopify sends the finish again, under a new webhook id; the file would now say more.
    fake.set_operation(&gid, "COMPLETED", Some(file(9)));
    finished(&app, &gid, "completed").await;

    assert_eq!(fake.requests().len(), requests, "not even asked again");
    assert_eq!(fake.downloads(), 1);
    assert_eq!(count(app.db(), "SELECT count(*) FROM customers").await, 5);
    assert_eq!(log_state(app.db(), log).await.records, 5);
}

#[tokio::test]
async fn an_import_that_breaks_off_halfway_is_retried_to_completion() {
    let fake = FakeShopify::start().await;
    let app = app_with(&fake).await;
    let shop = shop_with_token(app.db(), SHOP).await;
    let full = File::Customers {
        count: 3000,
        updated_at: "2026-05-01T00:00:00Z".into(),
    };
    let file = File::BreaksAfter {
        file: Box::new(full),
        lines: 1500,
    };
    let gid = fake.add_operation("COMPLETED", None, Some(file));
    let log = running_log(app.db(), shop, Resource::Customers, &gid).await;

    let webhook = finish(&gid, "completed", Value::Null);
    app.accept(&webhook).await;

    let delivery = app.wait_for_status(&webhook.webhook_id, "processed").await;
    assert_eq!(delivery.attempts, 2, "the broken download was retried");
    assert_eq!(fake.downloads(), 2);
    assert_eq!(
        count(app.db(), "SELECT count(*) FROM customers").await,
        3000
    );
    let state = log_state(app.db(), log).await;
    assert_eq!((state.status.as_str(), state.records), ("completed", 3000));
}

#[tokio::test]
async fn failed_canceled_and_expired_finishes_end_their_logs_failed() {
    let fake = FakeShopify::start().await;
    let app = app_with(&fake).await;
    let mut logs = vec![];
    for (i, (status, code)) in [
        ("failed", json!("ACCESS_DENIED")),
        ("canceled", Value::Null),
        ("expired", Value::Null),
    ]
    .into_iter()
    .enumerate()
    {
        // One shop each: only one sync of a resource runs per shop.
        let domain = format!("shop-{i}.myshopify.com");
        let shop = shop_with_token(app.db(), &domain).await;
        let gid = format!("gid://shopify/BulkOperation/{}", 900 + i);
        let log = running_log(app.db(), shop, Resource::Customers, &gid).await;
        let mut webhook = finish(&gid, status, code.clone());
        webhook.shop = domain;
        app.accept(&webhook).await;
        logs.push((log, status, code, webhook.webhook_id));
    }

    for (log, status, code, webhook_id) in logs {
        app.wait_for_status(&webhook_id, "processed").await;
        let state = log_state(app.db(), log).await;
        assert_eq!(state.status, "failed", "{status}");
        let code = code.as_str().unwrap_or("none").to_owned();
        assert_eq!(
            state.error.as_deref(),
            Some(format!("bulk operation failed: status={status}, error_code={code}").as_str())
        );
        assert!(state.completed);
    }
    eventually(WAIT, "three failed syncs counted", || async {
        (app.metric(r#"shopify_sync_syncs_total{outcome="failed"}"#)
            .await
            == 3.0)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_finish_for_an_operation_whose_start_was_never_recorded_is_adopted_and_imported() {
    let fake = FakeShopify::start().await;
    let app = app_with(&fake).await;
    let shop = shop_with_token(app.db(), SHOP).await;
    // The starter claimed the log, Shopify started the operation, the starter died.
    let claim =
        shopify_sync::db::sync_logs::claim(&app.db().client().await, shop, Resource::Orders, None)
            .await
            .unwrap()
            .unwrap();
    let file = File::Orders {
        count: 10,
        updated_at: "2026-05-01T00:00:00Z".into(),
    };
    let gid = fake.add_operation("COMPLETED", None, Some(file));

    finished(&app, &gid, "completed").await;

    let state = log_state(app.db(), claim).await;
    assert_eq!((state.status.as_str(), state.records), ("completed", 10));
    assert_eq!(count(app.db(), "SELECT count(*) FROM orders").await, 10);
}

#[tokio::test]
async fn a_finish_while_another_process_imports_the_log_is_processed_without_a_second_import() {
    let fake = FakeShopify::start().await;
    let app = app_with(&fake).await;
    let shop = shop_with_token(app.db(), SHOP).await;
    let file = File::Customers {
        count: 40,
        updated_at: "2026-05-01T00:00:00Z".into(),
    };
    let gid = fake.add_operation("COMPLETED", None, Some(file));
    let log = running_log(app.db(), shop, Resource::Customers, &gid).await;
    // Another importer of this log: a session holding its import lock.
    let other = app.db().client().await;
    let key = sync_logs::import_lock_key(log);
    other
        .execute("SELECT pg_advisory_lock($1)", &[&key])
        .await
        .unwrap();

    finished(&app, &gid, "completed").await;

    assert_eq!(fake.downloads(), 0, "the file is left to the lock's holder");
    assert_eq!(count(app.db(), "SELECT count(*) FROM customers").await, 0);
    assert_eq!(log_state(app.db(), log).await.status, "running");

    // That importer is gone without completing: the next finish (or the stale poll) imports.
    other
        .execute("SELECT pg_advisory_unlock($1)", &[&key])
        .await
        .unwrap();
    finished(&app, &gid, "completed").await;

    assert_eq!(fake.downloads(), 1);
    assert_eq!(count(app.db(), "SELECT count(*) FROM customers").await, 40);
    let state = log_state(app.db(), log).await;
    assert_eq!((state.status.as_str(), state.records), ("completed", 40));
}
