//! The import streams: what it holds does not grow with the file. Shown by the importer's own
//! counters (peak bytes of the file buffered, peak rows batched) on two file sizes; rows per
//! second are the benchmark's business (`cargo run --release --bin bench`), never asserted here.

use shopify_sync::{
    db::sync_logs::Resource,
    metrics::Metrics,
    sync::{
        ImportStats,
        import::{BATCH_ROWS, import_stream},
    },
};

use super::{count, shop_with_token};
use crate::helpers::{FakeShopify, File, TestDb};

async fn import(db: &TestDb, fake: &FakeShopify, shop: i64, lines: usize) -> ImportStats {
    let url = fake.file_url(File::Customers {
        count: lines,
        updated_at: "2026-05-01T00:00:00Z".into(),
    });
    let response = reqwest::get(url).await.unwrap().error_for_status().unwrap();
    import_stream(
        &db.pool,
        &Metrics::new(),
        shop,
        Resource::Customers,
        response.bytes_stream(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_200_000_line_file_is_imported_holding_no_more_than_a_20_000_line_one() {
    let (db, fake) = (TestDb::new().await, FakeShopify::start().await);
    let shop = shop_with_token(&db, "memory-shop.myshopify.com").await;

    let small = import(&db, &fake, shop, 20_000).await;
    let large = import(&db, &fake, shop, 200_000).await;

    assert_eq!(large.records, 200_000);
    assert_eq!(count(&db, "SELECT count(*) FROM customers").await, 200_000);
    // One network chunk plus an unfinished line, and at most a batch plus a chunk's lines.
    let bound = 256 * 1024;
    assert!(large.peak_buffered_bytes <= bound, "{large:?}");
    assert!(
        large.peak_buffered_bytes <= small.peak_buffered_bytes * 2,
        "{small:?} {large:?}"
    );
    assert!(large.peak_batch_rows <= BATCH_ROWS + 200, "{large:?}");
    assert_eq!(small.peak_batch_rows, large.peak_batch_rows);
    // The file is about 45 MB; what was held is a fraction of a percent of it.
    println!("small {small:?}\nlarge {large:?}");
}
