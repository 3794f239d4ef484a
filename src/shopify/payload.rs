//! The parts of Shopify's webhook payloads the service reads. Everything else stays in the raw
//! JSON that is stored beside the typed columns.
//!
//! Ids are `i64` (serde_json reads integers exactly; an id beyond `i64` or a float is an error,
//! never a rounded number), money is `Decimal` read only from Shopify's decimal strings, and
//! timestamps keep the offset Shopify sent.

use chrono::{DateTime, FixedOffset};
use rust_decimal::Decimal;
use serde::Deserialize;

/// A timestamp as Shopify writes it: RFC 3339 with an offset, e.g. `2021-12-31T19:00:00-05:00`.
pub type Timestamp = DateTime<FixedOffset>;

/// `customers/create|update|enable|disable`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Customer {
    pub id: i64,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub state: Option<String>,
    pub created_at: Option<Timestamp>,
    /// Drives last-write-wins; see `db::bulk` for what `None` means.
    pub updated_at: Option<Timestamp>,
}

/// `orders/create|updated|paid|cancelled|fulfilled|partially_fulfilled`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Order {
    pub id: i64,
    pub customer: Option<CustomerRef>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub financial_status: Option<String>,
    pub fulfillment_status: Option<String>,
    pub currency: Option<String>,
    /// A decimal string such as `"414.95"`; a JSON number here is refused rather than rounded.
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub total_price: Option<Decimal>,
    pub cancelled_at: Option<Timestamp>,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
}

/// The customer an order belongs to; only its id is kept on the order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CustomerRef {
    pub id: i64,
}

/// `customers/delete` and `orders/delete`: only the id survives a delete.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Deleted {
    pub id: i64,
}

/// `orders/edited`: an edit record, not the order; the edited order arrives as `orders/updated`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OrderEdited {
    pub order_edit: OrderEdit,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OrderEdit {
    pub id: Option<i64>,
    pub order_id: i64,
}

/// The customer named by a compliance request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ComplianceCustomer {
    pub id: i64,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// `customers/redact`: erase this customer's personal data and that of these orders.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CustomersRedact {
    pub shop_id: Option<i64>,
    pub shop_domain: Option<String>,
    pub customer: ComplianceCustomer,
    #[serde(default)]
    pub orders_to_redact: Vec<i64>,
}

/// `customers/data_request`: the shop owner must be sent what is stored about this customer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CustomersDataRequest {
    pub shop_id: Option<i64>,
    pub shop_domain: Option<String>,
    pub customer: ComplianceCustomer,
    #[serde(default)]
    pub orders_requested: Vec<i64>,
    pub data_request: Option<DataRequest>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DataRequest {
    pub id: i64,
}

/// `shop/redact`: 48 hours after uninstall, erase everything about the shop's customers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ShopRedact {
    pub shop_id: Option<i64>,
    pub shop_domain: Option<String>,
}

/// `bulk_operations/finish`: a bulk operation ended, successfully or not.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BulkOperationFinish {
    /// `gid://shopify/BulkOperation/…`, the key of the sync log that started it.
    pub admin_graphql_api_id: String,
    /// `completed`, `failed`, `canceled`, `expired`, … (compared case-insensitively).
    pub status: String,
    pub error_code: Option<String>,
    pub completed_at: Option<Timestamp>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

impl BulkOperationFinish {
    pub fn is_completed(&self) -> bool {
        self.status.eq_ignore_ascii_case("completed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/webhooks/", $name, ".json"))
        };
    }

    #[test]
    fn the_customer_sample_keeps_its_id_above_2_pow_53_and_its_offset() {
        let c: Customer = serde_json::from_str(fixture!("customers__create")).unwrap();
        assert_eq!(c.id, 706405506930370084);
        assert_eq!(c.email.as_deref(), Some("bob@biller.com"));
        assert_eq!(c.phone, None);
        assert_eq!(c.state.as_deref(), Some("disabled"));
        let updated = c.updated_at.unwrap();
        assert_eq!(updated.offset().local_minus_utc(), -5 * 3600);
        assert_eq!(updated.to_utc().to_rfc3339(), "2022-01-01T00:00:00+00:00");
    }

    #[test]
    fn the_order_sample_has_an_exact_id_and_exact_money() {
        let o: Order = serde_json::from_str(fixture!("orders__create")).unwrap();
        assert_eq!(o.id, 820982911946154508);
        assert_eq!(o.customer.unwrap().id, 115310627314723954);
        assert_eq!(o.total_price, Some(Decimal::from_str("404.95").unwrap()));
        assert_eq!(o.name.as_deref(), Some("#9999"));
        assert_eq!(o.financial_status.as_deref(), Some("voided"));
        assert_eq!(o.fulfillment_status, None);
        assert!(o.cancelled_at.is_some());
    }

    #[test]
    fn money_as_a_json_number_is_refused_not_rounded() {
        let err = serde_json::from_str::<Order>(r#"{"id": 1, "total_price": 0.1}"#).unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
        let bad = serde_json::from_str::<Order>(r#"{"id": 1, "total_price": "12,50"}"#);
        assert!(bad.is_err());
    }

    #[test]
    fn an_id_beyond_i64_or_a_float_id_is_an_error() {
        assert!(serde_json::from_str::<Deleted>(r#"{"id": 9223372036854775808}"#).is_err());
        assert!(serde_json::from_str::<Deleted>(r#"{"id": 8.2e17}"#).is_err());
        let max: Deleted = serde_json::from_str(r#"{"id": 9223372036854775807}"#).unwrap();
        assert_eq!(max.id, i64::MAX);
    }

    #[test]
    fn a_payload_without_id_names_the_missing_field() {
        let err = serde_json::from_str::<Customer>(r#"{"email": "a@b.c"}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `id`"), "{err}");
    }

    #[test]
    fn a_bad_timestamp_is_an_error() {
        let bad = r#"{"id": 1, "updated_at": "yesterday"}"#;
        assert!(serde_json::from_str::<Customer>(bad).is_err());
    }

    #[test]
    fn delete_samples_carry_only_the_id() {
        let c: Deleted = serde_json::from_str(fixture!("customers__delete")).unwrap();
        let o: Deleted = serde_json::from_str(fixture!("orders__delete")).unwrap();
        assert_eq!((c.id, o.id), (706405506930370084, 820982911946154508));
    }

    #[test]
    fn compliance_samples_parse() {
        let r: CustomersRedact = serde_json::from_str(fixture!("customers__redact")).unwrap();
        assert_eq!(r.customer.id, 191167);
        assert_eq!(r.orders_to_redact, vec![299938, 280263, 220458]);
        let d: CustomersDataRequest =
            serde_json::from_str(fixture!("customers__data_request")).unwrap();
        assert_eq!(d.data_request.unwrap().id, 9999);
        let s: ShopRedact = serde_json::from_str(fixture!("shop__redact")).unwrap();
        assert_eq!(s.shop_id, Some(954889));
    }

    #[test]
    fn the_bulk_finish_sample_parses_and_knows_completion() {
        let b: BulkOperationFinish =
            serde_json::from_str(fixture!("bulk_operations__finish")).unwrap();
        assert_eq!(
            b.admin_graphql_api_id,
            "gid://shopify/BulkOperation/147595010"
        );
        assert!(b.is_completed());
        assert_eq!(b.kind.as_deref(), Some("query"));
        let failed = r#"{"admin_graphql_api_id": "gid://x", "status": "FAILED",
                         "error_code": "ACCESS_DENIED"}"#;
        let b: BulkOperationFinish = serde_json::from_str(failed).unwrap();
        assert!(!b.is_completed());
        assert_eq!(b.error_code.as_deref(), Some("ACCESS_DENIED"));
    }

    #[test]
    fn an_order_edit_names_its_order() {
        let e: OrderEdited =
            serde_json::from_str(r#"{"order_edit": {"id": 78, "order_id": 820982911946154508}}"#)
                .unwrap();
        assert_eq!(e.order_edit.order_id, 820982911946154508);
    }
}
