//! Two `scheduler` processes at once: each sync starts once.

use std::time::Duration;

use super::{binary, count, shop_with_token};
use crate::helpers::{FakeShopify, TestDb, eventually};

#[tokio::test]
async fn two_schedulers_started_at_once_start_each_sync_once() {
    let (db, fake) = (TestDb::new().await, FakeShopify::start().await);
    for i in 0..3 {
        shop_with_token(&db, &format!("twin-{i}.myshopify.com")).await;
    }
    // Ticks every 200 ms: the two race for every shop and resource, again and again.
    let spawn = || {
        binary(&db, &fake)
            .env("SYNC_INTERVAL", "200ms")
            .arg("scheduler")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let (_first, _second) = (spawn(), spawn());

    eventually(Duration::from_secs(20), "six syncs to start", || async {
        let started = count(
            &db,
            "SELECT count(*) FROM sync_logs WHERE bulk_operation_id IS NOT NULL",
        )
        .await;
        (started == 6).then_some(())
    })
    .await;
    // What must not happen is a second start: give both a few more ticks to try.
    tokio::time::sleep(Duration::from_secs(1)).await;

    assert_eq!(
        fake.runs().len(),
        6,
        "one bulkOperationRunQuery per shop and resource"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM sync_logs").await, 6);
    assert_eq!(
        count(
            &db,
            "SELECT count(DISTINCT bulk_operation_id) FROM sync_logs WHERE status = 'running'"
        )
        .await,
        6
    );
}
