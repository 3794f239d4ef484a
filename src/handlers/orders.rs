//! `orders/create|updated|paid|cancelled|fulfilled|partially_fulfilled|edited|delete`.

use deadpool_postgres::GenericClient;

use super::{HandlerError, Outcome, check_id, parse, raw_json};
use crate::db::{self, deliveries::Delivery};
use crate::shopify::payload::{Deleted, Order, OrderEdited};

/// Every order topic but edited and delete carries the whole order: last write wins.
pub(super) async fn upsert(
    client: &impl GenericClient,
    delivery: &Delivery,
    body: &[u8],
) -> Result<Outcome, HandlerError> {
    let order: Order = parse(delivery, body)?;
    check_id(delivery, order.id)?;
    let raw = raw_json(delivery, body)?;
    let applied = db::orders::upsert(client, delivery.shop_id, &order, &raw).await?;
    if !applied {
        tracing::debug!(
            order = order.id,
            "stored order is newer or redacted; not changed"
        );
    }
    Ok(Outcome::Processed)
}

/// `orders/edited` carries an edit record, not the order, and Shopify follows it with
/// `orders/updated` holding the edited order. So it is checked and processed with no change:
/// nothing in it may stand in for the order's fields.
pub(super) fn edited(delivery: &Delivery, body: &[u8]) -> Result<Outcome, HandlerError> {
    let edited: OrderEdited = parse(delivery, body)?;
    check_id(delivery, edited.order_edit.order_id)?;
    Ok(Outcome::Processed)
}

/// A delete at the webhook's trigger time, so older updates arriving later stay out.
pub(super) async fn delete(
    client: &impl GenericClient,
    delivery: &Delivery,
    body: &[u8],
) -> Result<Outcome, HandlerError> {
    let deleted: Deleted = parse(delivery, body)?;
    let id = check_id(delivery, deleted.id)?;
    db::orders::mark_deleted(client, delivery.shop_id, id, delivery.triggered_at).await?;
    Ok(Outcome::Processed)
}
