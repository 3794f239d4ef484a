//! `orders/create|updated|paid|cancelled|fulfilled|partially_fulfilled|edited|delete`.

use deadpool_postgres::GenericClient;

use super::{HandlerError, Outcome, check_id, parse, raw_json};
use crate::db::{self, bulk::BulkRow, deliveries::Delivery};
use crate::shopify::{
    Topic,
    payload::{Deleted, Order, OrderEdited},
};

/// The order an upsert topic carries, checked, with its jsonb text.
pub(super) fn plan(topic: &Topic, body: &[u8]) -> Result<BulkRow<Order>, HandlerError> {
    let record: Order = parse(topic, body)?;
    check_id(topic, record.id)?;
    let raw = raw_json(topic, body)?.into_owned();
    Ok(BulkRow { record, raw })
}

/// Every order topic but edited and delete carries the whole order: last write wins.
pub(super) async fn upsert(
    client: &impl GenericClient,
    delivery: &Delivery,
    body: &[u8],
) -> Result<Outcome, HandlerError> {
    let row = plan(&delivery.topic, body)?;
    let changed =
        db::bulk::upsert_orders(client, delivery.shop_id, std::slice::from_ref(&row)).await?;
    if changed == 0 {
        tracing::debug!(
            order = row.record.id,
            "stored order is newer or redacted; not changed"
        );
    }
    Ok(Outcome::Processed)
}

/// `orders/edited` carries an edit record, not the order, and Shopify follows it with
/// `orders/updated` holding the edited order. So it is checked and processed with no change:
/// nothing in it may stand in for the order's fields.
pub(super) fn edited(delivery: &Delivery, body: &[u8]) -> Result<Outcome, HandlerError> {
    let edited: OrderEdited = parse(&delivery.topic, body)?;
    check_id(&delivery.topic, edited.order_edit.order_id)?;
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
    db::orders::mark_deleted(client, delivery.shop_id, id, delivery.triggered_at).await?;
    Ok(Outcome::Processed)
}
