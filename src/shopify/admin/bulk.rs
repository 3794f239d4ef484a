//! Bulk operations: start one (`bulkOperationRunQuery`), ask how one is doing (`node(id:)`), and
//! the two queries a full sync runs.

use std::fmt;

use secrecy::SecretString;
use serde::{Deserialize, Deserializer};
use serde_json::json;

use super::{AdminClient, AdminError, UserError};
use crate::shopify::ShopDomain;

/// Every customer, with the fields the `customers` table keeps. `email`/`phone` moved to
/// `defaultEmailAddress`/`defaultPhoneNumber` in recent API versions.
pub const CUSTOMERS_QUERY: &str = "{ customers { edges { node { id firstName lastName state \
     createdAt updatedAt defaultEmailAddress { emailAddress } defaultPhoneNumber { phoneNumber } \
     } } } }";

/// Every order, with the fields the `orders` table keeps (money in the shop's currency).
pub const ORDERS_QUERY: &str = "{ orders { edges { node { id name email createdAt updatedAt \
     cancelledAt displayFinancialStatus displayFulfillmentStatus currencyCode \
     totalPriceSet { shopMoney { amount currencyCode } } customer { id } } } } }";

const RUN_QUERY: &str = "mutation RunBulkQuery($query: String!) { \
     bulkOperationRunQuery(query: $query) { bulkOperation { id status } \
     userErrors { field message code } } }";

const NODE_QUERY: &str = "query BulkOperation($id: ID!) { node(id: $id) { \
     ... on BulkOperation { id status errorCode url partialDataUrl objectCount createdAt \
     completedAt query } } }";

/// `BulkOperationStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationStatus {
    Created,
    Running,
    Canceling,
    Completed,
    Canceled,
    Failed,
    Expired,
    /// A status added after this was written; treated as still running.
    Other(String),
}

impl OperationStatus {
    pub fn parse(value: &str) -> Self {
        match value.to_ascii_uppercase().as_str() {
            "CREATED" => Self::Created,
            "RUNNING" => Self::Running,
            "CANCELING" => Self::Canceling,
            "COMPLETED" => Self::Completed,
            "CANCELED" | "CANCELLED" => Self::Canceled,
            "FAILED" => Self::Failed,
            "EXPIRED" => Self::Expired,
            _ => Self::Other(value.to_owned()),
        }
    }

    /// Ended without a result to import.
    pub fn is_unsuccessful(&self) -> bool {
        matches!(self, Self::Canceled | Self::Failed | Self::Expired)
    }
}

impl fmt::Display for OperationStatus {
    /// Lower case, as the `bulk_operations/finish` webhook writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Canceling => "canceling",
            Self::Completed => "completed",
            Self::Canceled => "canceled",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::Other(other) => return f.write_str(&other.to_ascii_lowercase()),
        };
        f.write_str(text)
    }
}

impl<'de> Deserialize<'de> for OperationStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::parse(&String::deserialize(d)?))
    }
}

/// A `BulkOperation` node (the fields asked for; the mutation's answer has only id and status).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkOperation {
    /// `gid://shopify/BulkOperation/…`
    pub id: String,
    pub status: OperationStatus,
    pub error_code: Option<String>,
    /// The JSONL result; `null` when the query matched nothing.
    pub url: Option<String>,
    /// What a failed operation managed to write (not imported: a failed sync imports nothing).
    pub partial_data_url: Option<String>,
    /// `UnsignedInt64`, sent as a string.
    #[serde(default, deserialize_with = "count")]
    pub object_count: Option<u64>,
    pub created_at: Option<String>,
    pub completed_at: Option<String>,
    /// The query it runs; tells which resource an operation is for.
    pub query: Option<String>,
}

/// The `sync_logs.error_message` of a bulk operation that did not complete; the same words
/// whether the finish webhook or a poll said so.
pub fn failure_message(status: &str, error_code: Option<&str>) -> String {
    format!(
        "bulk operation failed: status={status}, error_code={}",
        error_code.unwrap_or("none")
    )
}

fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Count {
        Text(String),
        Number(u64),
    }
    Ok(match Option::<Count>::deserialize(d)? {
        None => None,
        Some(Count::Number(n)) => Some(n),
        Some(Count::Text(text)) => Some(text.parse().map_err(serde::de::Error::custom)?),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunData {
    bulk_operation_run_query: Option<RunPayload>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunPayload {
    bulk_operation: Option<BulkOperation>,
    #[serde(default)]
    user_errors: Vec<UserError>,
}

#[derive(Deserialize)]
struct NodeData {
    node: Option<BulkOperation>,
}

impl AdminClient {
    /// Starts a bulk query. `userErrors` (e.g. `OPERATION_IN_PROGRESS`, `LIMIT_REACHED`) come
    /// back as [`AdminError::UserErrors`].
    pub async fn run_bulk_query(
        &self,
        shop: &ShopDomain,
        token: &SecretString,
        query: &str,
    ) -> Result<BulkOperation, AdminError> {
        let data: RunData = self
            .graphql(shop, token, RUN_QUERY, json!({ "query": query }))
            .await?;
        let payload = data
            .bulk_operation_run_query
            .ok_or_else(|| decode(shop, "no bulkOperationRunQuery payload"))?;
        if !payload.user_errors.is_empty() {
            return Err(AdminError::UserErrors {
                shop: shop.to_string(),
                errors: payload.user_errors,
            });
        }
        payload
            .bulk_operation
            .ok_or_else(|| decode(shop, "no bulkOperation and no userErrors"))
    }

    /// The operation `id`, or `None` if Shopify knows no such node.
    pub async fn bulk_operation(
        &self,
        shop: &ShopDomain,
        token: &SecretString,
        id: &str,
    ) -> Result<Option<BulkOperation>, AdminError> {
        let data: NodeData = self
            .graphql(shop, token, NODE_QUERY, json!({ "id": id }))
            .await?;
        Ok(data.node)
    }
}

fn decode(shop: &ShopDomain, reason: &str) -> AdminError {
    AdminError::Decode {
        shop: shop.to_string(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_answer_decodes_with_its_count_as_a_string() {
        let op: BulkOperation = serde_json::from_str(
            r#"{"id": "gid://shopify/BulkOperation/720918", "status": "COMPLETED",
                "errorCode": null, "url": "https://storage.example/x.jsonl",
                "partialDataUrl": null, "objectCount": "57", "createdAt": "2026-01-01T00:00:00Z",
                "completedAt": "2026-01-01T00:05:00Z", "query": "{ customers { edges { node { id } } } }"}"#,
        )
        .unwrap();
        assert_eq!(op.status, OperationStatus::Completed);
        assert_eq!(op.object_count, Some(57));
        assert_eq!(op.url.as_deref(), Some("https://storage.example/x.jsonl"));
    }

    #[test]
    fn statuses_read_in_any_case_and_print_as_the_webhook_does() {
        assert_eq!(
            OperationStatus::parse("CANCELED"),
            OperationStatus::Canceled
        );
        assert_eq!(OperationStatus::parse("expired"), OperationStatus::Expired);
        assert!(OperationStatus::parse("FAILED").is_unsuccessful());
        assert!(!OperationStatus::parse("RUNNING").is_unsuccessful());
        assert_eq!(OperationStatus::Expired.to_string(), "expired");
    }

    #[test]
    fn the_failure_message_names_status_and_error_code() {
        assert_eq!(
            failure_message("failed", Some("ACCESS_DENIED")),
            "bulk operation failed: status=failed, error_code=ACCESS_DENIED"
        );
        assert_eq!(
            failure_message("expired", None),
            "bulk operation failed: status=expired, error_code=none"
        );
    }
}
