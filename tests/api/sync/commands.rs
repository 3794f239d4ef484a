//! `shops add` and `sync --shop`, run as the real binary against the fake Admin API.

use super::{TOKEN, binary, count, shop_with_token};
use crate::helpers::{Canned, FakeShopify, TestDb};

const SHOP: &str = "sync-shop.myshopify.com";

async fn sync(db: &TestDb, fake: &FakeShopify) -> std::process::Output {
    binary(db, fake)
        .args(["sync", "--shop", SHOP])
        .output()
        .await
        .unwrap()
}

/// (resource, status, bulk_operation_id, error_message) of every log, by resource.
async fn logs(db: &TestDb) -> Vec<(String, String, Option<String>, Option<String>)> {
    db.client()
        .await
        .query(
            "SELECT resource, status, bulk_operation_id, error_message FROM sync_logs
              ORDER BY resource",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

#[tokio::test]
async fn sync_starts_a_bulk_query_per_resource_with_the_shops_token_and_records_running_logs() {
    let (db, fake) = (TestDb::new().await, FakeShopify::start().await);
    let added = binary(&db, &fake)
        .args(["shops", "add", "--domain", SHOP, "--token", TOKEN])
        .output()
        .await
        .unwrap();
    assert!(added.status.success(), "{added:?}");

    let output = sync(&db, &fake).await;

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout} {output:?}");
    let runs = fake.runs();
    assert_eq!(runs.len(), 2, "one bulk query per resource");
    for run in &runs {
        assert_eq!(run.token.as_deref(), Some(TOKEN));
        assert_eq!(run.shop, SHOP);
    }
    let queries: Vec<&str> = runs
        .iter()
        .map(|r| r.variables["query"].as_str().unwrap())
        .collect();
    assert!(queries[0].contains("customers") && queries[1].contains("orders"));
    let logs = logs(&db).await;
    assert_eq!(logs.len(), 2);
    for (resource, status, operation, _) in &logs {
        assert_eq!(status, "running", "{resource}");
        let operation = operation
            .as_deref()
            .expect("the operation's id is recorded");
        assert!(operation.starts_with("gid://shopify/BulkOperation/"));
        assert!(
            stdout.contains(&format!("{resource}: started {operation}")),
            "{stdout}"
        );
    }
}

#[tokio::test]
async fn a_second_sync_while_one_runs_starts_nothing() {
    let (db, fake) = (TestDb::new().await, FakeShopify::start().await);
    shop_with_token(&db, SHOP).await;
    assert!(sync(&db, &fake).await.status.success());

    let again = sync(&db, &fake).await;

    assert!(again.status.success());
    assert_eq!(fake.runs().len(), 2);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already running"));
    assert_eq!(count(&db, "SELECT count(*) FROM sync_logs").await, 2);
}

#[tokio::test]
async fn a_429_from_the_admin_api_is_waited_out_and_the_sync_starts() {
    let (db, fake) = (TestDb::new().await, FakeShopify::start().await);
    shop_with_token(&db, SHOP).await;
    fake.script(Canned::too_many_requests("0.2"));

    let output = sync(&db, &fake).await;

    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        fake.runs().len(),
        3,
        "the 429 and two accepted bulk queries"
    );
    let logs = logs(&db).await;
    assert!(
        logs.iter().all(|l| l.1 == "running" && l.2.is_some()),
        "{logs:?}"
    );
}

#[tokio::test]
async fn a_401_ends_the_sync_failed_with_a_message_naming_the_shop_and_not_the_token() {
    let (db, fake) = (TestDb::new().await, FakeShopify::start().await);
    shop_with_token(&db, SHOP).await;
    fake.always(Canned::status(401));

    let output = sync(&db, &fake).await;

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(SHOP) && stderr.contains("401"), "{stderr}");
    assert!(!stderr.contains(TOKEN), "{stderr}");
    assert_eq!(fake.requests().len(), 2, "a 401 is not retried");
    for (resource, status, operation, error) in logs(&db).await {
        assert_eq!((status.as_str(), operation), ("failed", None), "{resource}");
        let error = error.unwrap();
        assert!(error.contains(SHOP) && error.contains("401"), "{error}");
        assert!(!error.contains(TOKEN));
    }
}

#[tokio::test]
async fn operation_in_progress_leaves_the_resource_for_the_next_run_and_says_so() {
    let (db, fake) = (TestDb::new().await, FakeShopify::start().await);
    shop_with_token(&db, SHOP).await;
    fake.busy("orders", "OPERATION_IN_PROGRESS");

    let output = sync(&db, &fake).await;

    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("orders: left for the next run")
            && stdout.contains("OPERATION_IN_PROGRESS"),
        "{stdout}"
    );
    let logs = logs(&db).await;
    assert_eq!(logs.len(), 1, "no log for what did not start: {logs:?}");
    assert_eq!(
        (logs[0].0.as_str(), logs[0].1.as_str()),
        ("customers", "running")
    );
}

#[tokio::test]
async fn sync_of_an_unregistered_shop_says_to_add_it() {
    let (db, fake) = (TestDb::new().await, FakeShopify::start().await);

    let output = sync(&db, &fake).await;

    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("shops add"));
    assert!(fake.requests().is_empty());
}
