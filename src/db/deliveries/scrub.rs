//! Erasing personal data from stored webhook bodies (compliance topics). A scrubbed delivery
//! keeps its status, attempts and error, but has no payload left to replay.

use deadpool_postgres::GenericClient;

use crate::db::DbError;

/// `customers/redact`: erases the stored bodies about this customer or these orders — customer
/// topics naming the customer, order topics of its orders — except the redact delivery itself.
pub async fn scrub_for_customer(
    client: &impl GenericClient,
    shop_id: i64,
    customer_shopify_id: i64,
    order_ids: &[i64],
    except_delivery_id: i64,
) -> Result<u64, DbError> {
    // jsonb renders numbers exactly, so ids are compared as text.
    let customer = customer_shopify_id.to_string();
    let orders: Vec<String> = order_ids.iter().map(i64::to_string).collect();
    Ok(client
        .execute(
            "UPDATE webhook_deliveries
                SET payload = NULL, payload_raw = NULL, updated_at = now()
              WHERE shop_id = $1 AND id <> $4 AND payload IS NOT NULL
                AND (payload -> 'customer' ->> 'id' = $2
                     OR (topic LIKE 'customers/%' AND payload ->> 'id' = $2)
                     OR (topic LIKE 'orders/%' AND (payload ->> 'id' = ANY ($3)
                         OR payload -> 'order_edit' ->> 'order_id' = ANY ($3))))",
            &[&shop_id, &customer, &orders, &except_delivery_id],
        )
        .await?)
}

/// `shop/redact`: erases every stored body of the shop except the redact delivery itself.
pub async fn scrub_shop(
    client: &impl GenericClient,
    shop_id: i64,
    except_delivery_id: i64,
) -> Result<u64, DbError> {
    Ok(client
        .execute(
            "UPDATE webhook_deliveries
                SET payload = NULL, payload_raw = NULL, updated_at = now()
              WHERE shop_id = $1 AND id <> $2
                AND (payload IS NOT NULL OR payload_raw IS NOT NULL)",
            &[&shop_id, &except_delivery_id],
        )
        .await?)
}
