//! The batched upserts of a bulk import (`db::bulk`) straight against Postgres: every rule of
//! the webhook upserts holds for a whole batch at once, and each row gets its own values.

use chrono::{DateTime, FixedOffset, Utc};
use shopify_sync::{
    db::{self, bulk::BulkRow},
    shopify::payload::{Customer, CustomerRef, Order},
};

use super::{names, shop_with_token};
use crate::helpers::TestDb;

fn at(s: &str) -> Option<DateTime<FixedOffset>> {
    Some(DateTime::parse_from_rfc3339(s).unwrap())
}

fn customer(id: i64, name: &str, updated: Option<&str>) -> BulkRow<Customer> {
    BulkRow {
        record: Customer {
            id,
            email: Some(format!("{name}@example.com")),
            first_name: Some(name.to_owned()),
            last_name: None,
            phone: (id % 2 == 0).then(|| format!("+1555{id}")),
            state: Some("enabled".into()),
            created_at: at("2026-01-01T00:00:00Z"),
            updated_at: updated.and_then(at),
        },
        raw: format!(r#"{{"id":{id},"firstName":"{name}"}}"#),
    }
}

#[tokio::test]
async fn a_customer_batch_changes_only_rows_it_is_not_older_than_and_never_undoes_a_delete_or_refills_a_redact()
 {
    let db = TestDb::new().await;
    let shop = shop_with_token(&db, "bulk-rows.myshopify.com").await;
    let client = db.client().await;
    // Stored: 1 newer than the batch, 2 older, 3 as old, 4 without a time, 5 deleted after the
    // batch's time, 6 deleted before it, 7 redacted.
    let stored = [
        customer(1, "stored", Some("2026-06-01T00:00:00Z")),
        customer(2, "stored", Some("2026-04-01T00:00:00Z")),
        customer(3, "stored", Some("2026-05-01T00:00:00Z")),
        customer(4, "stored", None),
        customer(7, "stored", Some("2026-04-01T00:00:00Z")),
    ];
    db::bulk::upsert_customers(&client, shop, &stored)
        .await
        .unwrap();
    let deleted = |s: &str| Some(s.parse::<DateTime<Utc>>().unwrap());
    db::customers::mark_deleted(&client, shop, 5, deleted("2026-06-01T00:00:00Z"))
        .await
        .unwrap();
    db::customers::mark_deleted(&client, shop, 6, deleted("2026-04-01T00:00:00Z"))
        .await
        .unwrap();
    assert!(db::customers::redact(&client, shop, 7).await.unwrap());

    let batch: Vec<_> = (1..=8)
        .map(|id| customer(id, "bulk", Some("2026-05-01T00:00:00Z")))
        .collect();
    let changed = db::bulk::upsert_customers(&client, shop, &batch)
        .await
        .unwrap();

    // 2, 3 (equal time: the later write wins), 4, 6 (fields only, still deleted) and 8 (new).
    assert_eq!(changed, 5);
    let bulk = || Some("bulk".to_owned());
    assert_eq!(
        names(&db).await,
        [
            (1, Some("stored".into())),
            (2, bulk()),
            (3, bulk()),
            (4, bulk()),
            (5, None),
            (6, bulk()),
            (7, None),
            (8, bulk()),
        ]
    );
    let rows = client
        .query(
            "SELECT shopify_id, deleted_at IS NOT NULL, redacted_at IS NOT NULL, email, raw
               FROM customers WHERE shopify_id IN (5, 6, 7) ORDER BY shopify_id",
            &[],
        )
        .await
        .unwrap();
    let state: Vec<(i64, bool, bool, Option<String>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        state,
        [
            (5, true, false, None),
            (6, true, false, Some("bulk@example.com".into())),
            (7, false, true, None),
        ],
        "deletes stay, a redacted row gets no personal data back"
    );
    let raw: serde_json::Value = rows[2].get(4);
    assert_eq!(raw.get("firstName"), None);
}

#[tokio::test]
async fn a_repeated_id_in_one_batch_keeps_its_newest_line_wherever_it_stands() {
    let db = TestDb::new().await;
    let shop = shop_with_token(&db, "bulk-rows.myshopify.com").await;
    let client = db.client().await;
    let batch = [
        customer(1, "newest", Some("2026-05-02T00:00:00Z")),
        customer(2, "older", Some("2026-05-01T00:00:00Z")),
        customer(1, "older", Some("2026-05-01T00:00:00Z")),
        customer(2, "newest", Some("2026-05-02T00:00:00Z")),
        customer(3, "first", Some("2026-05-01T00:00:00Z")),
        customer(3, "same-time-later-line", Some("2026-05-01T00:00:00Z")),
        customer(4, "timed", Some("2026-05-01T00:00:00Z")),
        customer(4, "untimed", None),
    ];
    let changed = db::bulk::upsert_customers(&client, shop, &batch)
        .await
        .unwrap();
    assert_eq!(changed, 4);
    assert_eq!(
        names(&db).await,
        [
            (1, Some("newest".into())),
            (2, Some("newest".into())),
            (3, Some("same-time-later-line".into())),
            (4, Some("timed".into())),
        ]
    );
}

#[tokio::test]
async fn every_column_of_a_batch_lands_in_its_own_row() {
    let db = TestDb::new().await;
    let shop = shop_with_token(&db, "bulk-rows.myshopify.com").await;
    let client = db.client().await;
    // Nulls in different columns of different rows: a column read out of step would show.
    let batch: Vec<_> = (1..=300)
        .map(|id| customer(id, &format!("n{id}"), None))
        .collect();
    db::bulk::upsert_customers(&client, shop, &batch)
        .await
        .unwrap();
    let rows = client
        .query(
            "SELECT shopify_id, first_name, email, phone, raw->>'firstName' FROM customers
              ORDER BY shopify_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 300);
    for row in rows {
        let id: i64 = row.get(0);
        assert_eq!(row.get::<_, String>(1), format!("n{id}"));
        assert_eq!(row.get::<_, String>(2), format!("n{id}@example.com"));
        assert_eq!(
            row.get::<_, Option<String>>(3),
            (id % 2 == 0).then(|| format!("+1555{id}"))
        );
        assert_eq!(row.get::<_, String>(4), format!("n{id}"));
    }

    let order = |id: i64, updated: &str, total: &str| BulkRow {
        record: Order {
            id,
            customer: (id % 3 != 0).then_some(CustomerRef { id: id * 10 }),
            name: Some(format!("#{id}")),
            email: None,
            financial_status: Some("paid".into()),
            fulfillment_status: (id % 2 == 0).then(|| "fulfilled".to_owned()),
            currency: Some("EUR".into()),
            total_price: Some(total.parse().unwrap()),
            cancelled_at: None,
            created_at: None,
            updated_at: at(updated),
        },
        raw: format!(r#"{{"id":{id}}}"#),
    };
    let orders: Vec<_> = (1..=50)
        .map(|id| order(id, "2026-05-01T00:00:00Z", &format!("{id}.05")))
        .collect();
    db::bulk::upsert_orders(&client, shop, &orders)
        .await
        .unwrap();
    db::orders::mark_deleted(&client, shop, 7, None)
        .await
        .unwrap();
    let newer = [
        order(7, "2026-05-02T00:00:00Z", "0.01"),
        order(8, "2026-05-02T00:00:00Z", "8.5"),
        order(9, "2026-04-30T00:00:00Z", "0.01"),
    ];
    assert_eq!(
        db::bulk::upsert_orders(&client, shop, &newer)
            .await
            .unwrap(),
        1,
        "7 was deleted now, after the line; 9 is older than what is stored"
    );
    let rows = client
        .query(
            "SELECT shopify_id, customer_shopify_id, name, fulfillment_status, total_price::text,
                    deleted_at IS NOT NULL
               FROM orders ORDER BY shopify_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 50);
    for row in rows {
        let id: i64 = row.get(0);
        assert_eq!(
            row.get::<_, Option<i64>>(1),
            (id % 3 != 0).then_some(id * 10)
        );
        assert_eq!(row.get::<_, String>(2), format!("#{id}"));
        assert_eq!(
            row.get::<_, Option<String>>(3).as_deref(),
            (id % 2 == 0).then_some("fulfilled")
        );
        let total = match id {
            8 => "8.5".to_owned(),
            _ => format!("{id}.05"),
        };
        assert_eq!(row.get::<_, String>(4), total);
        assert_eq!(row.get::<_, bool>(5), id == 7);
    }
}
