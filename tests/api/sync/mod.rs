//! Full syncs against a fake Admin API (a real HTTP server in the test): starting bulk queries,
//! importing their results, stale reconciliation, and concurrent schedulers.

mod bulk_rows;
mod client;
mod commands;
mod import;
mod memory;
mod scheduler;
mod stale;

use shopify_sync::db::{self, sync_logs::Resource};
use shopify_sync::shopify::ShopDomain;
use tokio::process::Command;

use crate::helpers::{FakeShopify, TestDb, broker::amqp_url, unique};

pub const TOKEN: &str = "shpat_test_token_0123456789";

/// The binary with only what the test sets, pointed at `db` and `fake`.
pub fn binary(db: &TestDb, fake: &FakeShopify) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shopify-sync"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db.url())
        .env("AMQP_URL", amqp_url())
        .env("AMQP_PREFIX", unique("test"))
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("SHOPIFY_ADMIN_URL", fake.admin_url())
        .kill_on_drop(true);
    command
}

/// A shop with an Admin API token, as `shops add` leaves it.
pub async fn shop_with_token(db: &TestDb, domain: &str) -> i64 {
    let domain = ShopDomain::parse(domain).unwrap();
    db::shops::register(&db.client().await, &domain, TOKEN)
        .await
        .unwrap()
}

/// A running sync log for `gid`, as the scheduler leaves it.
pub async fn running_log(db: &TestDb, shop: i64, resource: Resource, gid: &str) -> i64 {
    db::sync_logs::start(&db.client().await, shop, resource, gid)
        .await
        .unwrap()
        .expect("no sync running yet")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogState {
    pub status: String,
    pub error: Option<String>,
    pub records: i64,
    pub completed: bool,
}

pub async fn log_state(db: &TestDb, id: i64) -> LogState {
    let row = db
        .client()
        .await
        .query_one(
            "SELECT status, error_message, records_synced, completed_at IS NOT NULL
               FROM sync_logs WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    LogState {
        status: row.get(0),
        error: row.get(1),
        records: row.get(2),
        completed: row.get(3),
    }
}

/// Every customer's Shopify id and first name, by id.
pub async fn names(db: &TestDb) -> Vec<(i64, Option<String>)> {
    db.client()
        .await
        .query(
            "SELECT shopify_id, first_name FROM customers ORDER BY shopify_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The one number `sql` selects.
pub async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}
