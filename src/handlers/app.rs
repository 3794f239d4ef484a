//! `app/uninstalled`.

use deadpool_postgres::GenericClient;
use serde::de::IgnoredAny;

use super::{HandlerError, Outcome, parse};
use crate::db::{self, deliveries::Delivery};

/// The shop removed the app: its token no longer works, so it is dropped, and the shop is marked
/// uninstalled (at the trigger time) so the scheduler stops syncing it. The body (the shop
/// object) is only checked to be JSON.
pub(super) async fn uninstalled(
    client: &impl GenericClient,
    delivery: &Delivery,
    body: &[u8],
) -> Result<Outcome, HandlerError> {
    let _: IgnoredAny = parse(&delivery.topic, body)?;
    db::shops::mark_uninstalled(client, delivery.shop_id, delivery.triggered_at).await?;
    Ok(Outcome::Processed)
}
