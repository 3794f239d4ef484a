//! The privacy topics: personal data goes, ids and money stay, and every request is recorded.

use serde_json::{Value, json};

use super::{deliver, fixture, fixture_with, scalar};
use crate::helpers::TestDb;

/// The redact sample's customer (191167) with one order of its own and one listed order.
async fn store_customer_and_orders(db: &TestDb) {
    let customer = fixture_with(
        "customers/create",
        &[("id", json!(191167)), ("phone", json!("555-625-1199"))],
    );
    deliver(db, "customers/create", &customer).await;
    let own = fixture_with(
        "orders/create",
        &[("id", json!(1001)), ("customer", json!({"id": 191167}))],
    );
    deliver(db, "orders/create", &own).await;
    let listed = fixture_with(
        "orders/create",
        &[("id", json!(299938)), ("customer", json!(null))],
    );
    deliver(db, "orders/create", &listed).await;
    let other = fixture_with("orders/create", &[("id", json!(5555))]);
    deliver(db, "orders/create", &other).await;
}

#[tokio::test]
async fn customers_redact_removes_the_personal_data_of_the_customer_and_its_orders() {
    let db = TestDb::new().await;
    store_customer_and_orders(&db).await;

    deliver(&db, "customers/redact", &fixture("customers/redact")).await;

    let client = db.client().await;
    let c = client
        .query_one(
            "SELECT email, first_name, last_name, phone, state, redacted_at IS NOT NULL, raw
               FROM customers WHERE shopify_id = 191167",
            &[],
        )
        .await
        .unwrap();
    for i in 0..4 {
        assert_eq!(c.get::<_, Option<&str>>(i), None, "column {i}");
    }
    assert_eq!(c.get::<_, Option<&str>>(4), Some("disabled"));
    assert!(c.get::<_, bool>(5));
    let raw: Value = c.get(6);
    assert_eq!(raw["id"], json!(191167));
    for personal in [
        "email",
        "first_name",
        "note",
        "default_address",
        "addresses",
    ] {
        assert!(raw.get(personal).is_none(), "raw still has {personal}");
    }

    let orders = client
        .query(
            "SELECT shopify_id, email, redacted_at IS NOT NULL, total_price::text, raw
               FROM orders ORDER BY shopify_id",
            &[],
        )
        .await
        .unwrap();
    for o in &orders {
        let id: i64 = o.get(0);
        let redacted = id != 5555;
        assert_eq!(o.get::<_, bool>(2), redacted, "order {id}");
        assert_eq!(o.get::<_, &str>(3), "404.95", "order {id} keeps its money");
        let raw: Value = o.get(4);
        if redacted {
            assert_eq!(o.get::<_, Option<&str>>(1), None);
            for personal in [
                "email",
                "contact_email",
                "customer",
                "billing_address",
                "shipping_address",
            ] {
                assert!(
                    raw.get(personal).is_none(),
                    "order {id} raw still has {personal}"
                );
            }
            assert_eq!(raw["total_price"], json!("404.95"));
        } else {
            assert_eq!(o.get::<_, Option<&str>>(1), Some("jon@example.com"));
        }
    }

    let scrubbed: i64 = scalar(
        &db,
        "SELECT count(*) FROM webhook_deliveries WHERE payload IS NULL AND topic <> 'customers/redact'",
    )
    .await;
    assert_eq!(
        scrubbed, 3,
        "the customer's and its orders' stored bodies are erased"
    );
    let done: bool = scalar(
        &db,
        "SELECT completed_at IS NOT NULL FROM compliance_requests WHERE topic = 'customers/redact'",
    )
    .await;
    assert!(done);
}

#[tokio::test]
async fn a_redacted_customer_is_not_refilled_by_a_later_webhook() {
    let db = TestDb::new().await;
    store_customer_and_orders(&db).await;
    deliver(&db, "customers/redact", &fixture("customers/redact")).await;

    let replayed = fixture_with(
        "customers/update",
        &[
            ("id", json!(191167)),
            ("updated_at", json!("2030-01-01T00:00:00Z")),
        ],
    );
    deliver(&db, "customers/update", &replayed).await;

    let email: Option<String> = scalar(&db, "SELECT email FROM customers").await;
    assert_eq!(email, None);
}

#[tokio::test]
async fn customers_redact_for_an_unknown_customer_still_completes() {
    let db = TestDb::new().await;

    deliver(&db, "customers/redact", &fixture("customers/redact")).await;

    let recorded: i64 = scalar(
        &db,
        "SELECT count(*) FROM compliance_requests WHERE topic = 'customers/redact'
            AND payload -> 'customer' ->> 'id' = '191167' AND completed_at IS NOT NULL",
    )
    .await;
    assert_eq!(recorded, 1);
}

#[tokio::test]
async fn shop_redact_removes_the_shops_customers_and_orders() {
    let db = TestDb::new().await;
    store_customer_and_orders(&db).await;
    deliver(
        &db,
        "customers/data_request",
        &fixture("customers/data_request"),
    )
    .await;

    deliver(&db, "shop/redact", &fixture("shop/redact")).await;

    let customers: i64 = scalar(&db, "SELECT count(*) FROM customers").await;
    let orders: i64 = scalar(&db, "SELECT count(*) FROM orders").await;
    assert_eq!((customers, orders), (0, 0));
    let with_payload: Vec<String> = db
        .client()
        .await
        .query(
            "SELECT topic FROM webhook_deliveries WHERE payload IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(with_payload, ["shop/redact"]);
    let contact: Value = scalar(
        &db,
        "SELECT payload -> 'customer' FROM compliance_requests WHERE topic = 'customers/data_request'",
    )
    .await;
    assert_eq!(contact, json!({"id": 191167}));
}

#[tokio::test]
async fn a_data_request_is_recorded_once() {
    let db = TestDb::new().await;
    let headers = super::headers("customers/data_request");
    let body = fixture("customers/data_request");

    super::deliver_with(&db, &headers, &body).await.unwrap();
    let again = super::deliver_with(&db, &headers, &body).await.unwrap();

    assert_eq!(again, None, "the redelivery is already done");
    let row = db
        .client()
        .await
        .query_one(
            "SELECT count(*), min(webhook_id), bool_and(completed_at IS NULL),
                    min(payload -> 'data_request' ->> 'id')
               FROM compliance_requests",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    assert_eq!(row.get::<_, &str>(1), headers.webhook_id.as_str());
    assert!(row.get::<_, bool>(2), "a data request stays open");
    assert_eq!(row.get::<_, &str>(3), "9999");
}
