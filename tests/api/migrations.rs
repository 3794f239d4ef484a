//! `migrate`: creates the database, applies the schema, and can run again.

use crate::helpers::TestDb;
use shopify_sync::db;

#[tokio::test]
async fn migrate_twice_succeeds_and_applies_nothing_the_second_time() {
    let test_db = TestDb::new().await;

    let applied_again = db::migrate(&test_db.config).await.expect("second migrate");

    assert_eq!(applied_again, 0);
}

#[tokio::test]
async fn migrate_creates_a_missing_database() {
    let test_db = TestDb::new().await;
    let mut fresh = test_db.config.clone();
    let name = crate::helpers::unique("test");
    fresh.dbname(&name);

    let created = db::create_database_if_missing(&fresh).await.unwrap();
    let created_again = db::create_database_if_missing(&fresh).await.unwrap();
    let applied = db::migrate(&fresh).await.unwrap();

    assert!(created);
    assert!(!created_again);
    assert!(applied >= 1);
    test_db
        .client()
        .await
        .batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_contract_tables_and_unique_constraints_exist() {
    let test_db = TestDb::new().await;
    let client = test_db.client().await;

    let expected = [
        ("shops", vec!["domain"]),
        ("customers", vec!["shop_id", "shopify_id"]),
        ("orders", vec!["shop_id", "shopify_id"]),
        ("webhook_deliveries", vec!["shop_id", "webhook_id"]),
    ];
    for (table, columns) in expected {
        let rows = client
            .query(
                "SELECT array_agg(a.attname::text ORDER BY a.attname)
                   FROM pg_constraint c
                   JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
                  WHERE c.conrelid = $1::text::regclass AND c.contype = 'u'
                  GROUP BY c.oid",
                &[&table],
            )
            .await
            .unwrap();
        let uniques: Vec<Vec<String>> = rows.iter().map(|r| r.get(0)).collect();
        assert!(
            uniques.contains(&columns.iter().map(|c| c.to_string()).collect()),
            "{table} lacks UNIQUE{columns:?}; has {uniques:?}"
        );
    }

    let contract_columns = [
        (
            "shops",
            "id, domain, access_token, installed_at, uninstalled_at",
        ),
        (
            "customers",
            "id, shop_id, shopify_id, email, first_name, last_name, phone, state, \
             shopify_created_at, shopify_updated_at, deleted_at, redacted_at, raw",
        ),
        (
            "orders",
            "id, shop_id, shopify_id, customer_shopify_id, name, email, financial_status, \
             fulfillment_status, currency, total_price, cancelled_at, shopify_created_at, \
             shopify_updated_at, deleted_at, raw",
        ),
        (
            "webhook_deliveries",
            "id, shop_id, webhook_id, event_id, topic, status, attempts, last_error, payload, \
             received_at, processed_at, dead_lettered_at",
        ),
        (
            "sync_logs",
            "id, shop_id, resource, status, bulk_operation_id, started_at, completed_at, \
             error_message, records_synced",
        ),
        (
            "compliance_requests",
            "id, shop_id, topic, payload, received_at, completed_at",
        ),
    ];
    for (table, columns) in contract_columns {
        // Selecting the columns fails if any is missing.
        client
            .query(&format!("SELECT {columns} FROM {table} LIMIT 0"), &[])
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"));
    }

    let shopify_id_type: String = client
        .query_one(
            "SELECT data_type FROM information_schema.columns
              WHERE table_name = 'orders' AND column_name = 'shopify_id'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(shopify_id_type, "bigint");
}

#[tokio::test]
async fn lookups_have_their_indexes() {
    let test_db = TestDb::new().await;
    let client = test_db.client().await;

    let indexed: Vec<String> = client
        .query(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();

    for needle in [
        "webhook_deliveries USING btree (status",
        "sync_logs USING btree (bulk_operation_id",
    ] {
        assert!(
            indexed.iter().any(|d| d.contains(needle)),
            "no index like {needle}"
        );
    }
}

#[tokio::test]
async fn the_migrate_command_creates_the_database_and_can_run_again() {
    let name = crate::helpers::unique("test");
    let base = crate::helpers::db::base_url();
    let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);

    for run in 1..=2 {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_shopify-sync"))
            .arg("migrate")
            .env("DATABASE_URL", &url)
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let test_db = TestDb::new().await;
    let client = test_db.client().await;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap()
        .is_some();
    client
        .batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
    assert!(exists);
}
