//! Every Shopify sample payload, handled into the rows it should give.

use super::{SHOP, deliver, fixture, scalar};
use crate::helpers::TestDb;
use shopify_sync::db::{self, sync_logs::Resource};
use shopify_sync::handlers::Outcome;
use shopify_sync::shopify::ShopDomain;

#[tokio::test]
async fn every_sample_payload_is_handled_without_error_and_recorded() {
    let db = TestDb::new().await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/webhooks");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|n| n.strip_suffix(".json").map(str::to_owned))
        .collect();
    names.sort();
    assert!(names.len() >= 17, "{names:?}");

    for name in &names {
        let topic = name.replace("__", "/");
        let outcome = deliver(&db, &topic, &fixture(&topic)).await;

        let expected = match topic.as_str() {
            "shop/update" => Outcome::Ignored,
            "bulk_operations/finish" => Outcome::BulkCompleted {
                bulk_operation_id: "gid://shopify/BulkOperation/147595010".into(),
            },
            _ => Outcome::Processed,
        };
        assert_eq!(outcome, expected, "{topic}");
    }

    let unfinished: i64 = scalar(
        &db,
        "SELECT count(*) FROM webhook_deliveries WHERE status NOT IN ('processed', 'ignored')",
    )
    .await;
    let total: i64 = scalar(&db, "SELECT count(*) FROM webhook_deliveries").await;
    assert_eq!((unfinished, total), (0, names.len() as i64));
}

#[tokio::test]
async fn the_customer_samples_store_the_exact_customer() {
    let db = TestDb::new().await;

    for topic in [
        "customers/create",
        "customers/update",
        "customers/enable",
        "customers/disable",
    ] {
        deliver(&db, topic, &fixture(topic)).await;
    }

    let row = db
        .client()
        .await
        .query_one(
            "SELECT c.shopify_id, c.email, c.first_name, c.last_name, c.phone, c.state,
                    c.shopify_updated_at = '2022-01-01T00:00:00Z', c.raw ->> 'id', c.raw ->> 'note',
                    c.deleted_at IS NULL, s.domain
               FROM customers c JOIN shops s ON s.id = c.shop_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 706405506930370084);
    assert_eq!(row.get::<_, Option<&str>>(1), Some("bob@biller.com"));
    assert_eq!(row.get::<_, Option<&str>>(2), Some("Bob"));
    assert_eq!(row.get::<_, Option<&str>>(3), Some("Biller"));
    assert_eq!(row.get::<_, Option<&str>>(4), None);
    assert_eq!(row.get::<_, Option<&str>>(5), Some("disabled"));
    assert!(
        row.get::<_, bool>(6),
        "updated_at -05:00 stored as the same instant"
    );
    assert_eq!(row.get::<_, &str>(7), "706405506930370084");
    assert_eq!(row.get::<_, &str>(8), "This customer loves ice cream");
    assert!(row.get::<_, bool>(9));
    assert_eq!(row.get::<_, &str>(10), SHOP);

    deliver(&db, "customers/delete", &fixture("customers/delete")).await;
    let deleted: bool = scalar(&db, "SELECT deleted_at IS NOT NULL FROM customers").await;
    assert!(deleted);
}

#[tokio::test]
async fn the_order_samples_store_the_exact_order_and_money() {
    let db = TestDb::new().await;

    for topic in [
        "orders/create",
        "orders/updated",
        "orders/paid",
        "orders/cancelled",
        "orders/fulfilled",
    ] {
        deliver(&db, topic, &fixture(topic)).await;
    }

    let row = db
        .client()
        .await
        .query_one(
            "SELECT shopify_id, customer_shopify_id, name, email, financial_status,
                    fulfillment_status, currency, total_price::text, cancelled_at IS NOT NULL,
                    raw ->> 'id', raw ->> 'current_total_price', raw -> 'total_price_set'
                        -> 'shop_money' ->> 'amount', pg_typeof(total_price)::text
               FROM orders",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 820982911946154508);
    assert_eq!(row.get::<_, Option<i64>>(1), Some(115310627314723954));
    assert_eq!(row.get::<_, Option<&str>>(2), Some("#9999"));
    assert_eq!(row.get::<_, Option<&str>>(3), Some("jon@example.com"));
    assert_eq!(row.get::<_, Option<&str>>(4), Some("voided"));
    assert_eq!(row.get::<_, Option<&str>>(5), None);
    assert_eq!(row.get::<_, Option<&str>>(6), Some("USD"));
    assert_eq!(row.get::<_, &str>(7), "404.95");
    assert!(row.get::<_, bool>(8));
    assert_eq!(row.get::<_, &str>(9), "820982911946154508");
    assert_eq!(row.get::<_, &str>(10), "414.95");
    assert_eq!(row.get::<_, &str>(11), "404.95");
    assert_eq!(row.get::<_, &str>(12), "numeric");

    deliver(&db, "orders/delete", &fixture("orders/delete")).await;
    let deleted: bool = scalar(&db, "SELECT deleted_at IS NOT NULL FROM orders").await;
    assert!(deleted);
}

#[tokio::test]
async fn the_uninstall_sample_marks_the_shop_uninstalled_and_drops_its_token() {
    let db = TestDb::new().await;
    let shop = ShopDomain::parse(SHOP).unwrap();
    db::shops::register(&db.client().await, &shop, "shpat_secret")
        .await
        .unwrap();

    super::deliver_at(
        &db,
        "app/uninstalled",
        &fixture("app/uninstalled"),
        Some("2026-09-01T10:00:00Z"),
    )
    .await;

    let row = db
        .client()
        .await
        .query_one(
            "SELECT access_token, uninstalled_at = '2026-09-01T10:00:00Z' FROM shops",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<&str>>(0), None);
    assert!(row.get::<_, bool>(1));
}

#[tokio::test]
async fn the_bulk_finish_sample_is_handed_on_as_completed_and_leaves_its_log_running() {
    let db = TestDb::new().await;
    let shop = ShopDomain::parse(SHOP).unwrap();
    let client = db.client().await;
    let shop_id = db::shops::get_or_create(&client, &shop).await.unwrap();
    db::sync_logs::start(
        &client,
        shop_id,
        Resource::Orders,
        "gid://shopify/BulkOperation/147595010",
    )
    .await
    .unwrap()
    .unwrap();

    let outcome = deliver(
        &db,
        "bulk_operations/finish",
        &fixture("bulk_operations/finish"),
    )
    .await;

    assert_eq!(
        outcome,
        Outcome::BulkCompleted {
            bulk_operation_id: "gid://shopify/BulkOperation/147595010".into()
        }
    );
    let row = client
        .query_one(
            "SELECT status, completed_at IS NULL, error_message FROM sync_logs",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "running");
    assert!(row.get::<_, bool>(1));
    assert_eq!(row.get::<_, Option<&str>>(2), None);
    let status: String = scalar(
        &db,
        "SELECT status FROM webhook_deliveries WHERE topic = 'bulk_operations/finish'",
    )
    .await;
    assert_eq!(status, "processed");
}
