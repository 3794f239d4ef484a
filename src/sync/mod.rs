//! Full syncs through Shopify bulk operations: webhooks are not guaranteed, so every shop is
//! re-read in full every `SYNC_INTERVAL`.
//!
//! - [`start`] — claim a `running` sync log, then `bulkOperationRunQuery`, then record the
//!   operation's id on the log (insert-before-call: see `db::sync_logs::claim`).
//! - [`finish`] — an operation ended: ask its node, import the JSONL or fail the log.
//! - [`import`] and [`jsonl`] — stream the result file line by line into batched upserts.
//! - [`scheduler`] — the periodic loop: start what is due, reconcile stale logs.
//!
//! A sync log is the unit of truth: it stays `running` until its result is imported in full
//! (`completed`, with `records_synced`) or the operation is known to have failed (`failed`, with
//! the reason). Every step can be repeated: upserts are last-write-wins and idempotent, and a
//! log that has ended is never changed again. One process at a time imports a log: the import
//! holds the log's advisory lock (`db::sync_logs::ImportLock`).

mod finish;
pub mod import;
pub mod jsonl;
pub mod scheduler;
mod start;

use std::sync::Arc;

use deadpool_postgres::Pool;

pub use finish::Resolution;
pub use import::{ImportError, ImportStats};
pub use start::{StartOutcome, StartReport};

use crate::{
    db::{DbError, sync_logs::Resource},
    metrics::Metrics,
    settings::Settings,
    shopify::admin::{AdminClient, AdminError, CUSTOMERS_QUERY, ORDERS_QUERY},
};

/// What full syncs need; cheap to clone.
#[derive(Clone)]
pub struct Syncer {
    pool: Pool,
    /// For the import lock's own connection (see `db::sync_logs::ImportLock`).
    database: tokio_postgres::Config,
    admin: AdminClient,
    metrics: Arc<Metrics>,
}

/// Why a sync step could not be taken. Failures that end a sync for good are written to its
/// log instead; what is left here is worth another try (or is the database's fault).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Import(#[from] ImportError),
}

impl SyncError {
    /// True when the same step may succeed later (retry the message, or the next run).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Admin(e) => e.is_transient(),
            Self::Db(e) => e.is_transient(),
            Self::Import(e) => e.is_transient(),
        }
    }
}

impl Syncer {
    pub fn new(settings: &Settings, pool: Pool, metrics: Arc<Metrics>) -> Self {
        let admin = AdminClient::new(&settings.shopify_admin_url, &settings.shopify_api_version);
        Self {
            pool,
            database: settings.database.clone(),
            admin,
            metrics,
        }
    }

    /// Counts a sync that ended (`completed` or `failed`) in `shopify_sync_syncs_total`.
    pub fn count_sync(&self, outcome: &str) {
        self.metrics.syncs.with_label_values(&[outcome]).inc();
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, DbError> {
        Ok(self.pool.get().await?)
    }
}

/// The bulk query that reads all of `resource`.
pub fn query_of(resource: Resource) -> &'static str {
    match resource {
        Resource::Customers => CUSTOMERS_QUERY,
        Resource::Orders => ORDERS_QUERY,
    }
}

/// Which resource a bulk operation's query reads (its first connection), e.g. for an
/// operation whose log lost its id.
pub fn resource_of_query(query: &str) -> Option<Resource> {
    let rest = query.trim_start().strip_prefix('{')?.trim_start();
    let word: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    Resource::parse(&word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resource_of_each_sync_query_is_read_back_from_it() {
        for resource in Resource::ALL {
            assert_eq!(resource_of_query(query_of(resource)), Some(resource));
        }
        assert_eq!(
            resource_of_query("{ orders(query: \"x\") { edges { node { id } } } }"),
            Some(Resource::Orders)
        );
        assert_eq!(
            resource_of_query("{ products { edges { node { id } } } }"),
            None
        );
    }
}
