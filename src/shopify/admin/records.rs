//! Lines of a bulk result file, mapped into the same rows the webhooks write.
//!
//! GraphQL and REST differ in shape, not in meaning: ids are gids (`gid://shopify/Customer/123`
//! → 123), fields are camelCase, money is a `MoneyBag` (`totalPriceSet.shopMoney.amount`, a
//! decimal string), and statuses are upper-case enums that map to REST's lower-case values
//! (`PAID` → `paid`; `PARTIALLY_FULFILLED` → `partial`, `UNFULFILLED` → null).

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, de::DeserializeOwned};

use crate::shopify::payload::{Customer, CustomerRef, Order, Timestamp};

/// A global id, `gid://shopify/{kind}/{id}` (a `?…` suffix is allowed and ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gid {
    pub kind: String,
    pub id: i64,
}

impl Gid {
    pub fn parse(value: &str) -> Option<Self> {
        let rest = value.strip_prefix("gid://shopify/")?;
        let (kind, id) = rest.split_once('/')?;
        let id = id.split_once('?').map_or(id, |(id, _)| id);
        let id: i64 = id.parse().ok().filter(|id| *id > 0)?;
        (!kind.is_empty()).then(|| Self {
            kind: kind.to_owned(),
            id,
        })
    }
}

/// What one line of a result file is.
#[derive(Debug, Clone, PartialEq)]
pub enum Line<T> {
    /// A top-level object of the resource, as a row.
    Record(T),
    /// An object of a nested connection: it carries `__parentId` and comes after its parent.
    Child,
    /// A top-level object of another type (not ours to import).
    Other(String),
}

/// Parses one JSONL line into `T`'s row. Errors name the problem, not the line's data.
pub fn parse_line<B, T>(line: &str) -> Result<Line<T>, String>
where
    B: DeserializeOwned + IntoRecord<T>,
{
    let bulk: B = serde_json::from_str(line).map_err(|e| e.to_string())?;
    bulk.into_record()
}

/// A bulk line type that knows its gid kind and how to become a row.
pub trait IntoRecord<T> {
    fn into_record(self) -> Result<Line<T>, String>;
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkCustomer {
    id: String,
    #[serde(rename = "__parentId")]
    parent_id: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    /// `CustomerState`: `DISABLED`, `INVITED`, `ENABLED`, `DECLINED` → REST's lower case.
    state: Option<String>,
    created_at: Option<Timestamp>,
    updated_at: Option<Timestamp>,
    /// Older API versions.
    email: Option<String>,
    phone: Option<String>,
    default_email_address: Option<EmailAddress>,
    default_phone_number: Option<PhoneNumber>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EmailAddress {
    email_address: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PhoneNumber {
    phone_number: Option<String>,
}

impl IntoRecord<Customer> for BulkCustomer {
    fn into_record(self) -> Result<Line<Customer>, String> {
        let Some(id) = top_level(&self.id, &self.parent_id, "Customer")? else {
            return Ok(kind_of(&self.id, &self.parent_id));
        };
        Ok(Line::Record(Customer {
            id,
            email: self
                .default_email_address
                .and_then(|e| e.email_address)
                .or(self.email),
            first_name: self.first_name,
            last_name: self.last_name,
            phone: self
                .default_phone_number
                .and_then(|p| p.phone_number)
                .or(self.phone),
            state: self.state.map(|s| s.to_ascii_lowercase()),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkOrder {
    id: String,
    #[serde(rename = "__parentId")]
    parent_id: Option<String>,
    name: Option<String>,
    email: Option<String>,
    created_at: Option<Timestamp>,
    updated_at: Option<Timestamp>,
    cancelled_at: Option<Timestamp>,
    display_financial_status: Option<String>,
    display_fulfillment_status: Option<String>,
    currency_code: Option<String>,
    total_price_set: Option<MoneyBag>,
    customer: Option<Node>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MoneyBag {
    shop_money: Option<Money>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Money {
    /// `Decimal` scalar: a string, never a float.
    amount: Option<String>,
    currency_code: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Node {
    id: String,
}

impl IntoRecord<Order> for BulkOrder {
    fn into_record(self) -> Result<Line<Order>, String> {
        let Some(id) = top_level(&self.id, &self.parent_id, "Order")? else {
            return Ok(kind_of(&self.id, &self.parent_id));
        };
        let money = self.total_price_set.and_then(|set| set.shop_money);
        let (amount, money_currency) = match money {
            Some(m) => (m.amount, m.currency_code),
            None => (None, None),
        };
        let total_price = amount
            .map(|a| Decimal::from_str(&a).map_err(|e| format!("totalPriceSet amount {a:?}: {e}")))
            .transpose()?;
        let customer = self
            .customer
            .map(|c| {
                Gid::parse(&c.id)
                    .map(|gid| CustomerRef { id: gid.id })
                    .ok_or_else(|| format!("customer id {:?} is not a gid", c.id))
            })
            .transpose()?;
        Ok(Line::Record(Order {
            id,
            customer,
            name: self.name,
            email: self.email,
            financial_status: self
                .display_financial_status
                .map(|s| s.to_ascii_lowercase()),
            fulfillment_status: self
                .display_fulfillment_status
                .as_deref()
                .and_then(rest_fulfillment_status),
            currency: self.currency_code.or(money_currency),
            total_price,
            cancelled_at: self.cancelled_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }))
    }
}

/// `OrderDisplayFulfillmentStatus` → REST `fulfillment_status`, which has only `fulfilled`,
/// `partial`, `restocked` and null (nothing fulfilled yet, whatever the reason).
pub fn rest_fulfillment_status(display: &str) -> Option<String> {
    match display.to_ascii_uppercase().as_str() {
        "FULFILLED" => Some("fulfilled".into()),
        "PARTIALLY_FULFILLED" => Some("partial".into()),
        "RESTOCKED" => Some("restocked".into()),
        _ => None,
    }
}

/// The numeric id of a top-level object of `kind`; `None` for a child or another kind.
fn top_level(gid: &str, parent: &Option<String>, kind: &str) -> Result<Option<i64>, String> {
    if parent.is_some() {
        return Ok(None);
    }
    let parsed = Gid::parse(gid).ok_or_else(|| format!("id {gid:?} is not a gid"))?;
    Ok((parsed.kind == kind).then_some(parsed.id))
}

fn kind_of<T>(gid: &str, parent: &Option<String>) -> Line<T> {
    match parent {
        Some(_) => Line::Child,
        None => Line::Other(Gid::parse(gid).map(|g| g.kind).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(line: &str) -> Line<Customer> {
        parse_line::<BulkCustomer, Customer>(line).unwrap()
    }

    fn order(line: &str) -> Line<Order> {
        parse_line::<BulkOrder, Order>(line).unwrap()
    }

    #[test]
    fn gids_become_ids_and_anything_else_is_refused() {
        let gid = Gid::parse("gid://shopify/Customer/706405506930370084").unwrap();
        assert_eq!(
            (gid.kind.as_str(), gid.id),
            ("Customer", 706405506930370084)
        );
        let suffixed = Gid::parse("gid://shopify/MailingAddress/9?model_name=CustomerAddress");
        assert_eq!(suffixed.unwrap().id, 9);
        for bad in [
            "123",
            "gid://shopify/Customer/",
            "gid://shopify/Customer/-1",
            "gid://x/A/1",
        ] {
            assert_eq!(Gid::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_customer_line_with_escaped_slashes_and_nulls_maps_to_the_webhook_row() {
        let line = r#"{"id":"gid:\/\/shopify\/Customer\/706405506930370084","firstName":"Bob",
            "lastName":null,"state":"ENABLED","createdAt":"2026-01-01T10:00:00Z",
            "updatedAt":"2026-02-01T10:00:00-05:00","defaultEmailAddress":{"emailAddress":"bob@biller.com"},
            "defaultPhoneNumber":null}"#;
        let Line::Record(c) = customer(line) else {
            panic!("a record")
        };
        assert_eq!(c.id, 706405506930370084);
        assert_eq!(c.email.as_deref(), Some("bob@biller.com"));
        assert_eq!((c.last_name, c.phone), (None, None));
        assert_eq!(c.state.as_deref(), Some("enabled"));
        assert_eq!(
            c.updated_at.unwrap().to_rfc3339(),
            "2026-02-01T10:00:00-05:00"
        );
    }

    #[test]
    fn older_api_versions_email_and_phone_fields_are_read_too() {
        let line = r#"{"id":"gid://shopify/Customer/1","email":"a@b.c","phone":"+1555"}"#;
        let Line::Record(c) = customer(line) else {
            panic!("a record")
        };
        assert_eq!(
            (c.email.as_deref(), c.phone.as_deref()),
            (Some("a@b.c"), Some("+1555"))
        );
    }

    #[test]
    fn an_order_line_maps_money_statuses_and_its_customer() {
        let line = r##"{"id":"gid://shopify/Order/820982911946154508","name":"#1001",
            "email":"jon@example.com","createdAt":"2026-01-01T10:00:00Z","updatedAt":"2026-01-02T10:00:00Z",
            "cancelledAt":null,"displayFinancialStatus":"PARTIALLY_REFUNDED",
            "displayFulfillmentStatus":"PARTIALLY_FULFILLED","currencyCode":"EUR",
            "totalPriceSet":{"shopMoney":{"amount":"1234567890.12","currencyCode":"EUR"}},
            "customer":{"id":"gid://shopify/Customer/115310627314723954"}}"##;
        let Line::Record(o) = order(line) else {
            panic!("a record")
        };
        assert_eq!(o.id, 820982911946154508);
        assert_eq!(o.customer.unwrap().id, 115310627314723954);
        assert_eq!(o.financial_status.as_deref(), Some("partially_refunded"));
        assert_eq!(o.fulfillment_status.as_deref(), Some("partial"));
        assert_eq!(o.currency.as_deref(), Some("EUR"));
        assert_eq!(o.total_price.unwrap().to_string(), "1234567890.12");
    }

    #[test]
    fn fulfillment_statuses_follow_rest() {
        assert_eq!(
            rest_fulfillment_status("FULFILLED").as_deref(),
            Some("fulfilled")
        );
        assert_eq!(
            rest_fulfillment_status("RESTOCKED").as_deref(),
            Some("restocked")
        );
        for none in ["UNFULFILLED", "OPEN", "ON_HOLD", "IN_PROGRESS", "SCHEDULED"] {
            assert_eq!(rest_fulfillment_status(none), None, "{none}");
        }
    }

    #[test]
    fn an_order_without_customer_or_money_keeps_them_null() {
        let line = r#"{"id":"gid://shopify/Order/5","customer":null,"totalPriceSet":null}"#;
        let Line::Record(o) = order(line) else {
            panic!("a record")
        };
        assert_eq!((o.customer, o.total_price, o.currency), (None, None, None));
    }

    #[test]
    fn children_and_other_kinds_are_not_records() {
        let child = r#"{"id":"gid://shopify/LineItem/7","__parentId":"gid://shopify/Order/5"}"#;
        assert_eq!(order(child), Line::Child);
        let other = r#"{"id":"gid://shopify/Product/7"}"#;
        assert_eq!(order(other), Line::Other("Product".into()));
    }

    #[test]
    fn a_broken_line_or_money_as_a_float_is_an_error() {
        assert!(parse_line::<BulkOrder, Order>("{\"id\":").is_err());
        assert!(
            parse_line::<BulkOrder, Order>(
                r#"{"id":"gid://shopify/Order/1","totalPriceSet":{"shopMoney":{"amount":1.5}}}"#
            )
            .is_err()
        );
        assert!(parse_line::<BulkOrder, Order>(r#"{"id":"Order/1"}"#).is_err());
    }
}
