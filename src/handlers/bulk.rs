//! `bulk_operations/finish`.

use deadpool_postgres::GenericClient;

use super::{HandlerError, Outcome, parse};
use crate::db::{self, deliveries::Delivery};
use crate::shopify::{admin::failure_message, payload::BulkOperationFinish};

/// A finished bulk operation. Anything but `completed` fails its running sync log at once (the
/// old system left it `running` forever); `completed` is handed on as
/// [`Outcome::BulkCompleted`]: the worker imports it after this transaction (see
/// `worker::process`). A finish no log waits for (a log already ended, or an operation this
/// service did not start) is processed with a warning.
pub(super) async fn finish(
    client: &impl GenericClient,
    delivery: &Delivery,
    body: &[u8],
) -> Result<Outcome, HandlerError> {
    let finish: BulkOperationFinish = parse(&delivery.topic, body)?;
    let completed = finish.is_completed();
    let operation = finish.admin_graphql_api_id;
    if completed {
        return Ok(Outcome::BulkCompleted {
            bulk_operation_id: operation,
        });
    }
    let message = failure_message(&finish.status, finish.error_code.as_deref());
    match db::sync_logs::fail_running(client, delivery.shop_id, &operation, &message).await? {
        Some(log) => {
            tracing::info!(log, %operation, %message, "sync failed");
            Ok(Outcome::BulkFailed)
        }
        None => {
            tracing::warn!(%operation, %message, "no running sync log for this bulk operation");
            Ok(Outcome::Processed)
        }
    }
}
