//! `sync_logs`: one row per full sync of one resource, `running` until its bulk operation ends.

use deadpool_postgres::GenericClient;

use super::DbError;

/// What a full sync imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Customers,
    Orders,
}

impl Resource {
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
