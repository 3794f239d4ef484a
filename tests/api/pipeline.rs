//! The whole path, HTTP → RabbitMQ → worker → Postgres, including the four defects of the old
//! system, each as its own test.

use std::time::Duration;

use serde_json::{Value, json};
use shopify_sync::db::{shops, sync_logs};

use crate::handlers::{fixture, fixture_with};
use crate::helpers::{TestApp, Webhook, eventually, spawn_app};

const WAIT: Duration = Duration::from_secs(15);
const CUSTOMER: i64 = 706405506930370084;
const ORDER: i64 = 820982911946154508;

fn customer(updated_at: &str, first_name: &str) -> Vec<u8> {
    fixture_with(
        "customers/update",
        &[
            ("updated_at", json!(updated_at)),
            ("first_name", json!(first_name)),
        ],
    )
}

fn order(updated_at: &str, financial_status: &str) -> Vec<u8> {
    fixture_with(
        "orders/updated",
        &[
            ("updated_at", json!(updated_at)),
            ("financial_status", json!(financial_status)),
        ],
    )
}

async fn send(app: &TestApp, topic: &str, body: Vec<u8>) -> String {
    let webhook = Webhook::new(topic, body);
    app.accept(&webhook).await;
    webhook.webhook_id
}

async fn processed(app: &TestApp, topic: &str, body: Vec<u8>) -> String {
    let id = send(app, topic, body).await;
    app.wait_for_status(&id, "processed").await;
    id
}

async fn customer_first_name(app: &TestApp) -> Option<String> {
    app.db()
        .client()
        .await
        .query_opt(
            "SELECT first_name FROM customers WHERE shopify_id = $1",
            &[&CUSTOMER],
        )
        .await
        .unwrap()
        .and_then(|r| r.get(0))
}

/// Starts a running sync log for `gid`, as the scheduler does.
async fn running_sync(app: &TestApp, gid: &str) -> i64 {
    let client = app.db().client().await;
    let shop = shops::get_or_create(
        &client,
        &shopify_sync::shopify::ShopDomain::parse(crate::helpers::app::SHOP).unwrap(),
    )
    .await
    .unwrap();
    sync_logs::start(&client, shop, sync_logs::Resource::Customers, gid)
        .await
        .unwrap()
        .expect("a new running log")
}

async fn sync_log(app: &TestApp, id: i64) -> (String, Option<String>, bool) {
    let row = app
        .db()
        .client()
        .await
        .query_one(
            "SELECT status, error_message, completed_at IS NOT NULL FROM sync_logs WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

async fn bulk_finish_ends_the_sync_failed(status: &str, error_code: Value) {
    let app = spawn_app(&[]).await;
    let gid = format!("gid://shopify/BulkOperation/{}", rand::random::<u32>());
    let log = running_sync(&app, &gid).await;

    let body = fixture_with(
        "bulk_operations/finish",
        &[
            ("admin_graphql_api_id", json!(gid)),
            ("status", json!(status)),
            ("error_code", error_code),
        ],
    );
    processed(&app, "bulk_operations/finish", body).await;

    let (state, error, completed) = sync_log(&app, log).await;
    assert_eq!(
        state, "failed",
        "a {status} bulk operation must not stay running"
    );
    let error = error.expect("error_message");
    assert!(error.contains(status), "{error}");
    assert!(completed, "completed_at set");
}

#[tokio::test]
async fn a_failed_bulk_operation_leaves_its_sync_log_failed_not_running() {
    bulk_finish_ends_the_sync_failed("failed", json!("INTERNAL_SERVER_ERROR")).await;
}

#[tokio::test]
async fn a_canceled_bulk_operation_leaves_its_sync_log_failed_not_running() {
    bulk_finish_ends_the_sync_failed("canceled", Value::Null).await;
}

#[tokio::test]
async fn an_older_customer_update_arriving_after_a_newer_one_does_not_overwrite_it() {
    let app = spawn_app(&[]).await;
    processed(
        &app,
        "customers/update",
        customer("2026-03-01T10:00:00-05:00", "Newer"),
    )
    .await;

    processed(
        &app,
        "customers/update",
        customer("2026-02-01T10:00:00-05:00", "Older"),
    )
    .await;

    assert_eq!(customer_first_name(&app).await.as_deref(), Some("Newer"));
}

#[tokio::test]
async fn an_older_order_update_arriving_after_a_newer_one_does_not_overwrite_it() {
    let app = spawn_app(&[]).await;
    processed(
        &app,
        "orders/updated",
        order("2026-03-01T10:00:00Z", "paid"),
    )
    .await;

    processed(
        &app,
        "orders/updated",
        order("2026-02-01T10:00:00Z", "pending"),
    )
    .await;

    let status: String = app
        .db()
        .client()
        .await
        .query_one(
            "SELECT financial_status FROM orders WHERE shopify_id = $1",
            &[&ORDER],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "paid");
}

#[tokio::test]
async fn a_newer_update_does_overwrite() {
    let app = spawn_app(&[]).await;
    processed(
        &app,
        "customers/update",
        customer("2026-02-01T10:00:00Z", "Older"),
    )
    .await;

    processed(
        &app,
        "customers/update",
        customer("2026-03-01T10:00:00Z", "Newer"),
    )
    .await;

    assert_eq!(customer_first_name(&app).await.as_deref(), Some("Newer"));
}

#[tokio::test]
async fn the_same_webhook_id_delivered_twice_has_one_effect() {
    let app = spawn_app(&[]).await;
    let mut first = Webhook::new(
        "customers/update",
        customer("2026-02-01T10:00:00Z", "First"),
    );
    app.accept(&first).await;
    app.wait_for_status(&first.webhook_id, "processed").await;

    // Shopify's retry of the same delivery; a body that would change the row if applied again.
    first.body = customer("2026-03-01T10:00:00Z", "Second");
    app.accept(&first).await;

    eventually(WAIT, "the duplicate to be counted", || async {
        (app.metric(r#"shopify_sync_messages_total{outcome="duplicate",queue="customers"}"#)
            .await
            == 1.0)
            .then_some(())
    })
    .await;
    assert_eq!(customer_first_name(&app).await.as_deref(), Some("First"));
    assert_eq!(app.delivery(&first.webhook_id).await.unwrap().attempts, 1);
}

#[tokio::test]
async fn a_delete_followed_by_an_older_update_stays_deleted() {
    let app = spawn_app(&[]).await;
    processed(
        &app,
        "customers/create",
        customer("2026-01-01T10:00:00Z", "Bob"),
    )
    .await;
    // The test posts with X-Shopify-Triggered-At 2026-12-03T10:00:00Z: the time of the delete.
    processed(&app, "customers/delete", fixture("customers/delete")).await;

    processed(
        &app,
        "customers/update",
        customer("2026-06-01T10:00:00Z", "Zombie"),
    )
    .await;

    let row = app
        .db()
        .client()
        .await
        .query_one(
            "SELECT deleted_at IS NOT NULL, first_name FROM customers WHERE shopify_id = $1",
            &[&CUSTOMER],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "still deleted");
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("Bob"));
}

#[tokio::test]
async fn customers_redact_removes_the_customers_personal_data() {
    let app = spawn_app(&[]).await;
    let created = fixture_with("customers/create", &[("id", json!(191167))]);
    processed(&app, "customers/create", created).await;

    processed(&app, "customers/redact", fixture("customers/redact")).await;

    let row = app
        .db()
        .client()
        .await
        .query_one(
            "SELECT email, first_name, last_name, phone, redacted_at IS NOT NULL
               FROM customers WHERE shopify_id = 191167",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), None);
    assert_eq!(row.get::<_, Option<String>>(1), None);
    assert_eq!(row.get::<_, Option<String>>(2), None);
    assert_eq!(row.get::<_, Option<String>>(3), None);
    assert!(row.get::<_, bool>(4));
}

#[tokio::test]
async fn a_topic_without_a_handler_is_recorded_ignored() {
    let app = spawn_app(&[]).await;

    let id = send(&app, "shop/update", fixture("shop/update")).await;

    app.wait_for_status(&id, "ignored").await;
}

#[tokio::test]
async fn every_shopify_sample_payload_is_processed_into_its_rows() {
    let app = spawn_app(&[]).await;
    let mut sent = vec![];
    let dir = format!("{}/tests/fixtures/webhooks", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
    {
        let topic = path
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .replace("__", "/");
        // Redacts would erase what the others wrote, and a delete handled before its create
        // (consumers work concurrently) would rightly leave only a tombstone: they come after.
        if topic.ends_with("redact") || topic.ends_with("delete") {
            continue;
        }
        sent.push((
            topic.clone(),
            send(&app, &topic, std::fs::read(path).unwrap()).await,
        ));
    }

    for (topic, id) in &sent {
        let expected = if topic == "shop/update" {
            "ignored"
        } else {
            "processed"
        };
        app.wait_for_status(id, expected).await;
    }
    let client = app.db().client().await;
    let order = client
        .query_one(
            "SELECT shopify_id, total_price::text, currency, email FROM orders WHERE shopify_id = $1",
            &[&ORDER],
        )
        .await
        .unwrap();
    assert_eq!(order.get::<_, i64>(0), ORDER, "ids above 2^53 intact");
    assert_eq!(order.get::<_, String>(1), "404.95", "money exact");
    assert_eq!(order.get::<_, String>(2), "USD");
    assert_eq!(order.get::<_, String>(3), "jon@example.com");
    let customer = client
        .query_one(
            "SELECT email, state FROM customers WHERE shopify_id = $1",
            &[&CUSTOMER],
        )
        .await
        .unwrap();
    assert_eq!(customer.get::<_, String>(0), "bob@biller.com");
    assert_eq!(customer.get::<_, String>(1), "disabled");
    let uninstalled: bool = client
        .query_one(
            "SELECT uninstalled_at IS NOT NULL FROM shops WHERE domain = $1",
            &[&crate::helpers::app::SHOP],
        )
        .await
        .unwrap()
        .get(0);
    assert!(uninstalled, "app/uninstalled marked the shop");
    let compliance: i64 = client
        .query_one("SELECT count(*) FROM compliance_requests", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(compliance, 1, "customers/data_request recorded");

    for topic in ["customers/delete", "orders/delete"] {
        processed(&app, topic, fixture(topic)).await;
    }
    let deleted = client
        .query_one(
            "SELECT (SELECT count(*) FROM customers WHERE deleted_at IS NOT NULL),
                    (SELECT count(*) FROM orders WHERE deleted_at IS NOT NULL)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((deleted.get::<_, i64>(0), deleted.get::<_, i64>(1)), (1, 1));
}

#[tokio::test]
async fn quorum_queues_carry_webhooks_end_to_end() {
    let app = spawn_app(&[("QUEUE_TYPE", "quorum")]).await;

    processed(
        &app,
        "customers/create",
        customer("2026-01-01T10:00:00Z", "Quorum"),
    )
    .await;

    assert_eq!(customer_first_name(&app).await.as_deref(), Some("Quorum"));
}
