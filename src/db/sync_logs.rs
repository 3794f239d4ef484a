//! `sync_logs`: one row per full sync of one resource, `running` until its bulk operation ends.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::DbError;

/// What a full sync imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Customers,
    Orders,
}

impl Resource {
    /// Both, in the order a full sync starts them.
    pub const ALL: [Self; 2] = [Self::Customers, Self::Orders];

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == value)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customers => "customers",
            Self::Orders => "orders",
        }
    }
}

/// Records a started sync; `None` if one is already running for this shop and resource (the
/// partial unique index decides, so two schedulers cannot both start it).
pub async fn start(
    client: &impl GenericClient,
    shop_id: i64,
    resource: Resource,
    bulk_operation_id: &str,
) -> Result<Option<i64>, DbError> {
    let row = client
        .query_opt(
            "INSERT INTO sync_logs (shop_id, resource, status, bulk_operation_id)
             VALUES ($1, $2, 'running', $3)
             ON CONFLICT (shop_id, resource) WHERE status = 'running' DO NOTHING
             RETURNING id",
            &[&shop_id, &resource.as_str(), &bulk_operation_id],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// A bulk operation that ended without `completed`: its running log becomes `failed` with
/// `message`. Logs already finished are not touched. Returns the log's id if one changed.
pub async fn fail_running(
    client: &impl GenericClient,
    shop_id: i64,
    bulk_operation_id: &str,
    message: &str,
) -> Result<Option<i64>, DbError> {
    let row = client
        .query_opt(
            "UPDATE sync_logs
                SET status = 'failed', error_message = $3, completed_at = now()
              WHERE shop_id = $1 AND bulk_operation_id = $2 AND status = 'running'
             RETURNING id",
            &[&shop_id, &bulk_operation_id, &message],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// A sync log as the sync code reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncLog {
    pub id: i64,
    pub shop_id: i64,
    pub resource: Resource,
    pub status: String,
    /// `None` while the operation is being started (or if the starter died meanwhile).
    pub bulk_operation_id: Option<String>,
    pub started_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, shop_id, resource, status, bulk_operation_id, started_at";

fn log(row: &tokio_postgres::Row) -> SyncLog {
    SyncLog {
        id: row.get(0),
        shop_id: row.get(1),
        resource: Resource::parse(row.get(2)).unwrap_or(Resource::Customers),
        status: row.get(3),
        bulk_operation_id: row.get(4),
        started_at: row.get(5),
    }
}

/// Claims the right to start a sync *before* asking Shopify: a `running` row without an
/// operation id. `None` if one is already running for this shop and resource (the partial
/// unique index decides between concurrent schedulers), or — with `unless_within` — if a sync
/// of it started less than that long ago.
pub async fn claim(
    client: &impl GenericClient,
    shop_id: i64,
    resource: Resource,
    unless_within: Option<Duration>,
) -> Result<Option<i64>, DbError> {
    let within = unless_within.map(|d| d.as_secs_f64());
    let row = client
        .query_opt(
            "INSERT INTO sync_logs (shop_id, resource, status)
             SELECT $1, $2, 'running'
              WHERE $3::float8 IS NULL OR NOT EXISTS (
                    SELECT 1 FROM sync_logs
                     WHERE shop_id = $1 AND resource = $2
                       AND started_at > now() - make_interval(secs => $3::float8))
             ON CONFLICT (shop_id, resource) WHERE status = 'running' DO NOTHING
             RETURNING id",
            &[&shop_id, &resource.as_str(), &within],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// The operation Shopify started for a claimed log.
pub async fn record_operation(
    client: &impl GenericClient,
    log_id: i64,
    bulk_operation_id: &str,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE sync_logs SET bulk_operation_id = $2 WHERE id = $1",
            &[&log_id, &bulk_operation_id],
        )
        .await?;
    Ok(())
}

/// Gives a claim back when Shopify started nothing and nothing went wrong (e.g.
/// `OPERATION_IN_PROGRESS`): the resource is due again at the next run.
pub async fn release(client: &impl GenericClient, log_id: i64) -> Result<(), DbError> {
    client
        .execute(
            "DELETE FROM sync_logs
              WHERE id = $1 AND status = 'running' AND bulk_operation_id IS NULL",
            &[&log_id],
        )
        .await?;
    Ok(())
}

/// `running` → `failed` with `message`; false if the log had already ended.
pub async fn fail(
    client: &impl GenericClient,
    log_id: i64,
    message: &str,
) -> Result<bool, DbError> {
    Ok(client
        .execute(
            "UPDATE sync_logs
                SET status = 'failed', error_message = $2, completed_at = now()
              WHERE id = $1 AND status = 'running'",
            &[&log_id, &message],
        )
        .await?
        == 1)
}

/// `running` → `completed` with `records`; false if the log had already ended.
pub async fn complete(
    client: &impl GenericClient,
    log_id: i64,
    records: i64,
) -> Result<bool, DbError> {
    Ok(client
        .execute(
            "UPDATE sync_logs
                SET status = 'completed', records_synced = $2, completed_at = now(),
                    error_message = NULL
              WHERE id = $1 AND status = 'running'",
            &[&log_id, &records],
        )
        .await?
        == 1)
}

/// The log of `bulk_operation_id` (any status).
pub async fn by_operation(
    client: &impl GenericClient,
    shop_id: i64,
    bulk_operation_id: &str,
) -> Result<Option<SyncLog>, DbError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM sync_logs
                  WHERE shop_id = $1 AND bulk_operation_id = $2
                  ORDER BY id DESC LIMIT 1"
            ),
            &[&shop_id, &bulk_operation_id],
        )
        .await?;
    Ok(row.as_ref().map(log))
}

/// A claim whose starter died before it could record the operation gets the operation that a
/// finish (or a poll) tells us about. Returns the log if one was adopted.
pub async fn adopt(
    client: &impl GenericClient,
    shop_id: i64,
    resource: Resource,
    bulk_operation_id: &str,
) -> Result<Option<SyncLog>, DbError> {
    let row = client
        .query_opt(
            &format!(
                "UPDATE sync_logs SET bulk_operation_id = $3
                  WHERE shop_id = $1 AND resource = $2 AND status = 'running'
                    AND bulk_operation_id IS NULL
                 RETURNING {COLUMNS}"
            ),
            &[&shop_id, &resource.as_str(), &bulk_operation_id],
        )
        .await?;
    Ok(row.as_ref().map(log))
}

/// Running logs started more than `older_than` ago, oldest first.
pub async fn stale(
    client: &impl GenericClient,
    older_than: Duration,
) -> Result<Vec<SyncLog>, DbError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM sync_logs
                  WHERE status = 'running'
                    AND started_at < now() - make_interval(secs => $1::float8)
                  ORDER BY started_at"
            ),
            &[&older_than.as_secs_f64()],
        )
        .await?;
    Ok(rows.iter().map(log).collect())
}

/// The high half of every import lock's key ("IMPT"): no import lock can meet the migration lock
/// (`db::migrate`), the only other advisory lock of the service.
const IMPORT_LOCKS: i64 = 0x494D_5054 << 32;

/// The advisory lock key that an import of log `log_id` holds while it runs.
pub fn import_lock_key(log_id: i64) -> i64 {
    IMPORT_LOCKS.wrapping_add(log_id)
}

/// The right to import one sync log: a session-level advisory lock, held on a connection of its
/// own, so that two processes — a worker and the scheduler, or a finish redelivered while its
/// first copy still imports — never read the same result file at once. If the process dies, its
/// session ends and Postgres releases the lock.
pub struct ImportLock {
    client: tokio_postgres::Client,
    key: i64,
}

impl ImportLock {
    /// Takes the lock of log `log_id`; `None` if another session holds it.
    pub async fn try_take(
        config: &tokio_postgres::Config,
        log_id: i64,
    ) -> Result<Option<Self>, DbError> {
        let client = super::connect(config).await?;
        let key = import_lock_key(log_id);
        let taken: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await?
            .get(0);
        Ok(taken.then_some(Self { client, key }))
    }

    /// Whether the log is still `running` (another importer may have completed it just before
    /// the lock was taken).
    pub async fn log_running(&self, log_id: i64) -> Result<bool, DbError> {
        let row = self
            .client
            .query_opt(
                "SELECT 1 FROM sync_logs WHERE id = $1 AND status = 'running'",
                &[&log_id],
            )
            .await?;
        Ok(row.is_some())
    }

    /// Releases the lock now; dropping it closes the connection, which releases it a moment
    /// later.
    pub async fn release(self) {
        if let Err(error) = self
            .client
            .execute("SELECT pg_advisory_unlock($1)", &[&self.key])
            .await
        {
            tracing::debug!(%error, "releasing an import lock; the connection's end releases it");
        }
    }
}
