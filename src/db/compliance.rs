//! `compliance_requests`: the record of every mandatory privacy webhook and when it was done.

use deadpool_postgres::GenericClient;

use super::{DbError, json::StoredBody};

/// A compliance request to record.
#[derive(Debug, Clone, Copy)]
pub struct ComplianceRequest<'a> {
    pub shop_id: i64,
    pub topic: &'a str,
    pub webhook_id: &'a str,
    pub payload: &'a [u8],
    /// True when the work was done in the same transaction (redacts); a data request stays open
    /// until the shop owner has been sent the data.
    pub completed: bool,
}

/// Records the request once per (shop, webhook id); a second recording changes nothing.
pub async fn record(
    client: &impl GenericClient,
    request: &ComplianceRequest<'_>,
) -> Result<(), DbError> {
    // The column is NOT NULL jsonb: a body that is not JSON (the handler would have refused it)
    // is kept as a JSON string rather than lost.
    let body = StoredBody::new(request.payload);
    let lossy;
    let json = match body.json_str() {
        Some(json) => json,
        None => {
            lossy =
                serde_json::Value::String(String::from_utf8_lossy(request.payload).into_owned())
                    .to_string();
            lossy.as_str()
        }
    };
    client
        .execute(
            "INSERT INTO compliance_requests (shop_id, topic, webhook_id, payload, completed_at)
             VALUES ($1, $2, $3, $4::text::jsonb, CASE WHEN $5 THEN now() END)
             ON CONFLICT (shop_id, webhook_id) DO NOTHING",
            &[
                &request.shop_id,
                &request.topic,
                &request.webhook_id,
                &json,
                &request.completed,
            ],
        )
        .await?;
    Ok(())
}

/// `shop/redact`: the shop's earlier requests keep their record but lose the customer's contact
/// details.
pub async fn scrub_shop(client: &impl GenericClient, shop_id: i64) -> Result<u64, DbError> {
    Ok(client
        .execute(
            "UPDATE compliance_requests
                SET payload = payload #- '{customer,email}' #- '{customer,phone}'
              WHERE shop_id = $1 AND payload ? 'customer'",
            &[&shop_id],
        )
        .await?)
}
