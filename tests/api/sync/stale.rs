//! Stale reconciliation: a `running` log older than `SYNC_STALE_AFTER` is resolved by polling
//! its operation, by the real `scheduler` binary.

use std::time::Duration;

use shopify_sync::db::sync_logs::{self, Resource};

use super::{LogState, binary, count, log_state, running_log, shop_with_token};
use crate::helpers::{FakeShopify, File, TestDb, eventually};

const WAIT: Duration = Duration::from_secs(20);

fn scheduler(db: &TestDb, fake: &FakeShopify) -> tokio::process::Child {
    binary(db, fake)
        .env("SYNC_STALE_AFTER", "100ms")
        .arg("scheduler")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

async fn ended(db: &TestDb, log: i64) -> LogState {
    eventually(WAIT, &format!("log {log} to end"), || async {
        let state = log_state(db, log).await;
        (state.status != "running").then_some(state)
    })
    .await
}

/// Waits until the scheduler has asked Shopify about operation `gid` twice: one tick after the
/// one that saw it first, so whatever that tick would do is done.
async fn polled_twice(fake: &FakeShopify, gid: &str) {
    eventually(
        WAIT,
        &format!("operation {gid} to be polled twice"),
        || async {
            let polls = fake
                .requests()
                .iter()
                .filter(|r| r.variables["id"] == gid)
                .count();
            (polls >= 2).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_sync_whose_finish_never_comes_is_imported_by_the_stale_poll() {
    let (db, fake) = (TestDb::new().await, FakeShopify::start().await);
    let shop = shop_with_token(&db, "stale-shop.myshopify.com").await;
    let file = File::Customers {
        count: 50,
        updated_at: "2026-05-01T00:00:00Z".into(),
    };
    let gid = fake.add_operation("COMPLETED", None, Some(file));
    let log = running_log(&db, shop, Resource::Customers, &gid).await;

    let _scheduler = scheduler(&db, &fake);

    let state = ended(&db, log).await;
    assert_eq!((state.status.as_str(), state.records), ("completed", 50));
    assert_eq!(count(&db, "SELECT count(*) FROM customers").await, 50);
}

#[tokio::test]
async fn stale_failed_canceled_and_expired_operations_end_failed_and_a_running_one_is_left() {
    let (db, fake) = (TestDb::new().await, FakeShopify::start().await);
    let mut logs = vec![];
    for (i, (status, code)) in [
        ("FAILED", Some("ACCESS_DENIED")),
        ("CANCELED", None),
        ("EXPIRED", None),
        ("RUNNING", None),
    ]
    .into_iter()
    .enumerate()
    {
        let shop = shop_with_token(&db, &format!("stale-{i}.myshopify.com")).await;
        let gid = fake.add_operation(status, code, None);
        logs.push((running_log(&db, shop, Resource::Customers, &gid).await, gid));
    }
    // A claim whose starter died before it could record the operation.
    let orphan_shop = shop_with_token(&db, "stale-orphan.myshopify.com").await;
    let orphan = sync_logs::claim(&db.client().await, orphan_shop, Resource::Orders, None)
        .await
        .unwrap()
        .unwrap();

    let _scheduler = scheduler(&db, &fake);

    for ((log, _), expected) in logs.iter().zip([
        "bulk operation failed: status=failed, error_code=ACCESS_DENIED",
        "bulk operation failed: status=canceled, error_code=none",
        "bulk operation failed: status=expired, error_code=none",
    ]) {
        let state = ended(&db, *log).await;
        assert_eq!(state.status, "failed");
        assert_eq!(state.error.as_deref(), Some(expected));
        assert!(state.completed);
    }
    let orphan = ended(&db, orphan).await;
    assert_eq!(orphan.status, "failed");
    assert!(
        orphan
            .error
            .unwrap()
            .contains("no bulk operation was recorded")
    );
    let (running_log, running_gid) = &logs[3];
    polled_twice(&fake, running_gid).await;
    assert_eq!(log_state(&db, *running_log).await.status, "running");
}

#[tokio::test]
async fn a_stale_sync_another_process_is_importing_is_left_until_its_lock_is_free() {
    let (db, fake) = (TestDb::new().await, FakeShopify::start().await);
    let shop = shop_with_token(&db, "stale-locked.myshopify.com").await;
    let file = File::Customers {
        count: 30,
        updated_at: "2026-05-01T00:00:00Z".into(),
    };
    let gid = fake.add_operation("COMPLETED", None, Some(file));
    let log = running_log(&db, shop, Resource::Customers, &gid).await;
    // A worker importing this log's result: a session holding its import lock.
    let importer = db.client().await;
    let key = sync_logs::import_lock_key(log);
    importer
        .execute("SELECT pg_advisory_lock($1)", &[&key])
        .await
        .unwrap();

    let _scheduler = scheduler(&db, &fake);

    polled_twice(&fake, &gid).await;
    assert_eq!(fake.downloads(), 0, "left to the lock's holder");
    assert_eq!(log_state(&db, log).await.status, "running");

    // The importer died without completing: its session ends, and the lock with it.
    drop(deadpool_postgres::Object::take(importer));
    let state = ended(&db, log).await;
    assert_eq!((state.status.as_str(), state.records), ("completed", 30));
    assert_eq!(count(&db, "SELECT count(*) FROM customers").await, 30);
}
