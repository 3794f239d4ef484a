//! `customers/create|update|enable|disable|delete`.

use deadpool_postgres::GenericClient;

use super::{HandlerError, Outcome, check_id, parse, raw_json};
use crate::db::{self, bulk::BulkRow, deliveries::Delivery};
use crate::shopify::{
    Topic,
    payload::{Customer, Deleted},
};

/// The customer a create/update/enable/disable carries, checked, with its jsonb text.
pub(super) fn plan(topic: &Topic, body: &[u8]) -> Result<BulkRow<Customer>, HandlerError> {
    let record: Customer = parse(topic, body)?;
    check_id(topic, record.id)?;
    let raw = raw_json(topic, body)?.into_owned();
    Ok(BulkRow { record, raw })
}

/// Every customer topic but delete carries the whole customer: last write wins.
pub(super) async fn upsert(
    client: &impl GenericClient,
    delivery: &Delivery,
    body: &[u8],
) -> Result<Outcome, HandlerError> {
    let row = plan(&delivery.topic, body)?;
    let changed =
        db::bulk::upsert_customers(client, delivery.shop_id, std::slice::from_ref(&row)).await?;
    if changed == 0 {
        tracing::debug!(
            customer = row.record.id,
            "stored customer is newer, redacted or deleted-later; not changed"
        );
    }
    Ok(Outcome::Processed)
}

/// A delete at the webhook's trigger time, so older updates arriving later stay out.
pub(super) async fn delete(
    client: &impl GenericClient,
    delivery: &Delivery,
    body: &[u8],
) -> Result<Outcome, HandlerError> {
    let deleted: Deleted = parse(&delivery.topic, body)?;
    let id = check_id(&delivery.topic, deleted.id)?;
    db::customers::mark_deleted(client, delivery.shop_id, id, delivery.triggered_at).await?;
    Ok(Outcome::Processed)
}
