//! `bulk_operations/finish`: a bulk operation that did not complete fails its sync log (the old
//! system left it `running` forever); a completed one is handed on untouched.

use serde_json::json;

use super::{SHOP, deliver, fixture_with};
use crate::helpers::TestDb;
use shopify_sync::db::{self, sync_logs::Resource};
use shopify_sync::handlers::Outcome;
use shopify_sync::shopify::ShopDomain;

const OPERATION: &str = "gid://shopify/BulkOperation/147595010";

async fn running_log(db: &TestDb, operation: &str) -> i64 {
    let client = db.client().await;
    let shop = db::shops::get_or_create(&client, &ShopDomain::parse(SHOP).unwrap())
        .await
        .unwrap();
    db::sync_logs::start(&client, shop, Resource::Customers, operation)
        .await
        .unwrap()
        .expect("no sync running yet")
}

fn finish(status: &str, error_code: Option<&str>) -> Vec<u8> {
    fixture_with(
        "bulk_operations/finish",
        &[("status", json!(status)), ("error_code", json!(error_code))],
    )
}

async fn log_state(db: &TestDb, id: i64) -> (String, Option<String>, bool) {
    let row = db
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

#[tokio::test]
async fn a_failed_bulk_operation_fails_its_running_sync_log() {
    let db = TestDb::new().await;
    let log = running_log(&db, OPERATION).await;

    let outcome = deliver(
        &db,
        "bulk_operations/finish",
        &finish("failed", Some("INTERNAL_SERVER_ERROR")),
    )
    .await;

    assert_eq!(outcome, Outcome::BulkFailed);
    let (status, message, completed) = log_state(&db, log).await;
    assert_eq!(status, "failed");
    assert_eq!(
        message.as_deref(),
        Some("bulk operation failed: status=failed, error_code=INTERNAL_SERVER_ERROR")
    );
    assert!(completed);
}

#[tokio::test]
async fn canceled_cancelled_and_expired_bulk_operations_fail_their_logs() {
    for status in ["canceled", "cancelled", "expired", "CANCELED"] {
        let db = TestDb::new().await;
        let log = running_log(&db, OPERATION).await;

        deliver(&db, "bulk_operations/finish", &finish(status, None)).await;

        let (state, message, completed) = log_state(&db, log).await;
        assert_eq!(state, "failed", "{status}");
        let message = message.unwrap();
        assert!(message.contains(&format!("status={status}")), "{message}");
        assert!(message.contains("error_code=none"), "{message}");
        assert!(completed, "{status}");
    }
}

#[tokio::test]
async fn a_completed_bulk_operation_is_handed_on_and_its_log_left_running() {
    let db = TestDb::new().await;
    let log = running_log(&db, OPERATION).await;

    let outcome = deliver(&db, "bulk_operations/finish", &finish("completed", None)).await;

    assert_eq!(
        outcome,
        Outcome::BulkCompleted {
            bulk_operation_id: OPERATION.into()
        }
    );
    assert_eq!(log_state(&db, log).await, ("running".into(), None, false));
}

#[tokio::test]
async fn a_finish_for_an_ended_or_unknown_log_changes_nothing_and_is_processed() {
    let db = TestDb::new().await;
    let log = running_log(&db, OPERATION).await;
    db.client()
        .await
        .execute(
            "UPDATE sync_logs SET status = 'completed', completed_at = now() WHERE id = $1",
            &[&log],
        )
        .await
        .unwrap();

    let ended = deliver(
        &db,
        "bulk_operations/finish",
        &finish("failed", Some("TIMEOUT")),
    )
    .await;
    let unknown = fixture_with(
        "bulk_operations/finish",
        &[
            (
                "admin_graphql_api_id",
                json!("gid://shopify/BulkOperation/1"),
            ),
            ("status", json!("failed")),
        ],
    );
    let unknown = deliver(&db, "bulk_operations/finish", &unknown).await;

    assert_eq!((ended, unknown), (Outcome::Processed, Outcome::Processed));
    let (status, message, _) = log_state(&db, log).await;
    assert_eq!((status.as_str(), message), ("completed", None));
}
