//! The mandatory privacy topics: `customers/data_request`, `customers/redact`, `shop/redact`.
//! Each is recorded in `compliance_requests`; the redacts do their erasing in the same
//! transaction, so the record says done only when it is.

use deadpool_postgres::GenericClient;

use super::{HandlerError, Outcome, check_id, parse};
use crate::db::{self, compliance::ComplianceRequest, deliveries::Delivery};
use crate::shopify::payload::{CustomersDataRequest, CustomersRedact, ShopRedact};

/// Recorded (open) for the shop owner; the data itself is not sent by this service.
pub(super) async fn data_request(
    client: &impl GenericClient,
    delivery: &Delivery,
    body: &[u8],
) -> Result<Outcome, HandlerError> {
    let request: CustomersDataRequest = parse(&delivery.topic, body)?;
    check_id(&delivery.topic, request.customer.id)?;
    record(client, delivery, body, false).await?;
    Ok(Outcome::Processed)
}

/// Erases the customer's personal data, that of its orders and of the listed orders, and the
/// stored webhook bodies about them; ids, money and statuses stay. A customer never stored
/// still gets its request recorded as done.
pub(super) async fn customer_redact(
    client: &impl GenericClient,
    delivery: &Delivery,
    body: &[u8],
) -> Result<Outcome, HandlerError> {
    let request: CustomersRedact = parse(&delivery.topic, body)?;
    let customer = check_id(&delivery.topic, request.customer.id)?;
    let shop = delivery.shop_id;
    let orders = &request.orders_to_redact;
    let found = db::customers::redact(client, shop, customer).await?;
    let redacted_orders = db::orders::redact(client, shop, customer, orders).await?;
    let scrubbed =
        db::deliveries::scrub_for_customer(client, shop, customer, orders, delivery.id).await?;
    record(client, delivery, body, true).await?;
    tracing::info!(
        customer,
        found,
        redacted_orders,
        scrubbed,
        "customer redacted"
    );
    Ok(Outcome::Processed)
}

/// Deletes the shop's customers and orders, erases its stored webhook bodies and the contact
/// details in its earlier compliance requests, and drops its token.
pub(super) async fn shop_redact(
    client: &impl GenericClient,
    delivery: &Delivery,
    body: &[u8],
) -> Result<Outcome, HandlerError> {
    let _: ShopRedact = parse(&delivery.topic, body)?;
    let shop = delivery.shop_id;
    let customers = db::customers::delete_all(client, shop).await?;
    let orders = db::orders::delete_all(client, shop).await?;
    let scrubbed = db::deliveries::scrub_shop(client, shop, delivery.id).await?;
    db::compliance::scrub_shop(client, shop).await?;
    db::shops::drop_token(client, shop).await?;
    record(client, delivery, body, true).await?;
    tracing::info!(customers, orders, scrubbed, "shop redacted");
    Ok(Outcome::Processed)
}

async fn record(
    client: &impl GenericClient,
    delivery: &Delivery,
    body: &[u8],
    completed: bool,
) -> Result<(), HandlerError> {
    let request = ComplianceRequest {
        shop_id: delivery.shop_id,
        topic: delivery.topic.as_str(),
        webhook_id: delivery.webhook_id.as_str(),
        payload: body,
        completed,
    };
    Ok(db::compliance::record(client, &request).await?)
}
