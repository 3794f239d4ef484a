//! `customers/create|update|enable|disable|delete`.

use deadpool_postgres::GenericClient;

use super::{HandlerError, Outcome, check_id, parse, raw_json};
use crate::db::{self, deliveries::Delivery};
use crate::shopify::payload::{Customer, Deleted};

/// Every customer topic but delete carries the whole customer: last write wins.
pub(super) async fn upsert(
    client: &impl GenericClient,
    delivery: &Delivery,
    body: &[u8],
) -> Result<Outcome, HandlerError> {
    let customer: Customer = parse(delivery, body)?;
    check_id(delivery, customer.id)?;
    let raw = raw_json(delivery, body)?;
    let applied = db::customers::upsert(client, delivery.shop_id, &customer, &raw).await?;
    if !applied {
        tracing::debug!(
            customer = customer.id,
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
    let deleted: Deleted = parse(delivery, body)?;
    let id = check_id(delivery, deleted.id)?;
    db::customers::mark_deleted(client, delivery.shop_id, id, delivery.triggered_at).await?;
    Ok(Outcome::Processed)
}
