//! A result file → batched last-write-wins upserts, streamed: memory is one unfinished line, one
//! network chunk and one batch of rows, whatever the file's size.
//!
//! Each batch commits on its own (no transaction spans the import), so an import that stops
//! halfway has written some rows — all of them correct under last write wins — and is simply run
//! again; the sync log stays `running` until the last batch is in.

use std::future::Future;

use deadpool_postgres::{Object, Pool};
use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;

use super::jsonl::{LineSplitter, SplitError};
use crate::{
    db::{DbError, bulk, bulk::BulkRow, json::jsonb_safe, sync_logs::Resource},
    metrics::Metrics,
    shopify::{
        admin::{BulkCustomer, BulkOrder, IntoRecord, Line, parse_line},
        payload::{Customer, Order},
    },
};

/// Rows per upsert statement: large enough to amortise the round trip, small enough to keep a
/// batch's memory and lock time low.
pub const BATCH_ROWS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The download broke off.
    #[error("reading the bulk result file: {0}")]
    Read(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The file itself is wrong (a line that is not the JSON asked for).
    #[error("bulk result file: {0}")]
    File(#[from] SplitError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl ImportError {
    /// A broken download or database may work next time; a broken file will not.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Read(_) => true,
            Self::File(_) => false,
            Self::Db(e) => e.is_transient(),
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportStats {
    /// Lines read, blank ones included.
    pub lines: u64,
    /// Records of the resource imported (written, or older than the stored row).
    pub records: u64,
    /// Rows that changed (new, or newer than what was stored).
    pub changed: u64,
    /// Child objects and objects of other types, not imported.
    pub skipped: u64,
    /// The most bytes of the file held at once.
    pub peak_buffered_bytes: usize,
    /// The most rows in one batch (at most `FLUSHES_IN_FLIGHT` + 1 batches are held at once).
    pub peak_batch_rows: usize,
}

/// Imports the JSONL `stream` of a `resource` bulk query into `shop_id`'s rows.
pub async fn import_stream<S, B, E>(
    pool: &Pool,
    metrics: &Metrics,
    shop_id: i64,
    resource: Resource,
    stream: S,
) -> Result<ImportStats, ImportError>
where
    S: Stream<Item = Result<B, E>> + Send,
    B: AsRef<[u8]> + Send,
    E: std::error::Error + Send + Sync + 'static,
{
    match resource {
        Resource::Customers => run::<Customer, _, _, _>(pool, metrics, shop_id, stream).await,
        Resource::Orders => run::<Order, _, _, _>(pool, metrics, shop_id, stream).await,
    }
}

/// A row type a bulk file can fill.
trait Record: Sized + Send + Sync + 'static {
    const RESOURCE: Resource;
    type Bulk: DeserializeOwned + IntoRecord<Self>;
    fn upsert<'a>(
        client: &'a Object,
        shop_id: i64,
        rows: &'a [BulkRow<Self>],
    ) -> impl Future<Output = Result<u64, DbError>> + Send + 'a;
}

impl Record for Customer {
    const RESOURCE: Resource = Resource::Customers;
    type Bulk = BulkCustomer;
    fn upsert<'a>(
        client: &'a Object,
        shop_id: i64,
        rows: &'a [BulkRow<Self>],
    ) -> impl Future<Output = Result<u64, DbError>> + Send + 'a {
        bulk::upsert_customers(client, shop_id, rows)
    }
}

impl Record for Order {
    const RESOURCE: Resource = Resource::Orders;
    type Bulk = BulkOrder;
    fn upsert<'a>(
        client: &'a Object,
        shop_id: i64,
        rows: &'a [BulkRow<Self>],
    ) -> impl Future<Output = Result<u64, DbError>> + Send + 'a {
        bulk::upsert_orders(client, shop_id, rows)
    }
}

async fn run<T: Record, S, B, E>(
    pool: &Pool,
    metrics: &Metrics,
    shop_id: i64,
    stream: S,
) -> Result<ImportStats, ImportError>
where
    S: Stream<Item = Result<B, E>> + Send,
    B: AsRef<[u8]> + Send,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut stream = std::pin::pin!(stream);
    let mut splitter = LineSplitter::new();
    let mut batch: Vec<BulkRow<T>> = Vec::with_capacity(BATCH_ROWS);
    let mut stats = ImportStats::default();
    // Up to FLUSHES_IN_FLIGHT batches are written while the next one is parsed: Postgres and
    // the parser work at once, and memory stays bounded by those few batches.
    let mut flushes = FuturesUnordered::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ImportError::Read(Box::new(e)))?;
        splitter.push(chunk.as_ref(), |line| collect(line, &mut batch, &mut stats))?;
        stats.peak_batch_rows = stats.peak_batch_rows.max(batch.len());
        if batch.len() >= BATCH_ROWS {
            if flushes.len() >= FLUSHES_IN_FLIGHT {
                settle::<T>(flushes.next().await, metrics, &mut stats)?;
            }
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
            flushes.push(flush(pool.clone(), shop_id, full));
        }
    }
    let split = splitter.finish(|line| collect(line, &mut batch, &mut stats))?;
    stats.peak_batch_rows = stats.peak_batch_rows.max(batch.len());
    if !batch.is_empty() {
        flushes.push(flush(pool.clone(), shop_id, batch));
    }
    while let Some(done) = flushes.next().await {
        settle::<T>(Some(done), metrics, &mut stats)?;
    }
    stats.lines = split.lines;
    stats.peak_buffered_bytes = split.peak_buffered_bytes;
    Ok(stats)
}

/// Batches being written at once (each on a connection of its own).
const FLUSHES_IN_FLIGHT: usize = 3;

/// Counts a written batch: (rows changed, records written).
fn settle<T: Record>(
    done: Option<Result<(u64, u64), ImportError>>,
    metrics: &Metrics,
    stats: &mut ImportStats,
) -> Result<(), ImportError> {
    let Some(done) = done else { return Ok(()) };
    let (changed, records) = done?;
    stats.changed += changed;
    stats.records += records;
    metrics
        .bulk_records
        .with_label_values(&[T::RESOURCE.as_str()])
        .inc_by(records);
    Ok(())
}

/// One line into the batch (or counted as skipped).
fn collect<T: Record>(
    line: &[u8],
    batch: &mut Vec<BulkRow<T>>,
    stats: &mut ImportStats,
) -> Result<(), String> {
    // Checked once here: the parser then reads a `str` and does not check each string again.
    let text = std::str::from_utf8(line).map_err(|e| e.to_string())?;
    match parse_line::<T::Bulk, T>(text)? {
        Line::Record(record) => {
            batch.push(BulkRow {
                record,
                raw: jsonb_safe(text).into_owned(),
            });
        }
        Line::Child | Line::Other(_) => stats.skipped += 1,
    }
    Ok(())
}

async fn flush<T: Record>(
    pool: Pool,
    shop_id: i64,
    batch: Vec<BulkRow<T>>,
) -> Result<(u64, u64), ImportError> {
    let client = pool.get().await.map_err(DbError::from)?;
    let changed = T::upsert(&client, shop_id, &batch).await?;
    Ok((changed, batch.len() as u64))
}
