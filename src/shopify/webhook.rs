//! The headers of a Shopify webhook, parsed into types that can only hold valid values.

use std::fmt;

use axum::http::HeaderMap;

pub const HMAC_HEADER: &str = "x-shopify-hmac-sha256";
pub const TOPIC_HEADER: &str = "x-shopify-topic";
pub const SHOP_HEADER: &str = "x-shopify-shop-domain";
pub const WEBHOOK_ID_HEADER: &str = "x-shopify-webhook-id";
pub const API_VERSION_HEADER: &str = "x-shopify-api-version";
pub const EVENT_ID_HEADER: &str = "x-shopify-event-id";
pub const TRIGGERED_AT_HEADER: &str = "x-shopify-triggered-at";
pub const SUB_TOPIC_HEADER: &str = "x-shopify-sub-topic";
pub const NAME_HEADER: &str = "x-shopify-name";

/// Why a webhook's headers were refused (the receiver answers 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("missing header {0}")]
    Missing(&'static str),
    #[error("header {0} is not a valid value")]
    Invalid(&'static str),
}

/// A shop's permanent domain, `name.myshopify.com`, in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShopDomain(String);

impl ShopDomain {
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim().to_ascii_lowercase();
        let name = value.strip_suffix(".myshopify.com")?;
        let valid = !name.is_empty()
            && name.len() <= 63
            && !name.starts_with('-')
            && !name.ends_with('-')
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        valid.then_some(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShopDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A webhook topic such as `orders/create`: two or more `/`-separated segments of `[a-z0-9_]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic(String);

impl Topic {
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let segments: Vec<&str> = value.split('/').collect();
        let valid = value.len() <= 128
            && segments.len() >= 2
            && segments.iter().all(|s| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            });
        valid.then(|| Self(value.to_owned()))
    }

    /// The message's routing key: `/` becomes `.` (`orders/create` → `orders.create`).
    pub fn routing_key(&self) -> String {
        self.0.replace('/', ".")
    }

    /// The topic a routing key stands for (`orders.create` → `orders/create`).
    pub fn from_routing_key(key: &str) -> Option<Self> {
        Self::parse(&key.replace('.', "/"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Shopify's id of one webhook delivery (a UUID in practice; the same on Shopify's retries).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WebhookId(String);

impl WebhookId {
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        is_token(value, 255).then(|| Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WebhookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Non-empty visible ASCII without spaces, at most `max` bytes.
fn is_token(value: &str, max: usize) -> bool {
    !value.is_empty() && value.len() <= max && value.bytes().all(|b| b.is_ascii_graphic())
}

/// Every Shopify header the service keeps, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookHeaders {
    pub topic: Topic,
    pub shop: ShopDomain,
    pub webhook_id: WebhookId,
    pub api_version: String,
    pub event_id: Option<String>,
    pub triggered_at: Option<String>,
    pub sub_topic: Option<String>,
    pub name: Option<String>,
}

impl WebhookHeaders {
    /// Parses the headers after the signature has been checked.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, HeaderError> {
        let required = |name: &'static str| -> Result<&str, HeaderError> {
            optional(headers, name)?.ok_or(HeaderError::Missing(name))
        };
        let token = |name: &'static str, max: usize| -> Result<Option<String>, HeaderError> {
            match optional(headers, name)? {
                None => Ok(None),
                Some(v) if is_token(v, max) => Ok(Some(v.to_owned())),
                Some(_) => Err(HeaderError::Invalid(name)),
            }
        };
        let api_version = required(API_VERSION_HEADER)?;
        if !is_token(api_version, 32) {
            return Err(HeaderError::Invalid(API_VERSION_HEADER));
        }
        Ok(Self {
            topic: Topic::parse(required(TOPIC_HEADER)?)
                .ok_or(HeaderError::Invalid(TOPIC_HEADER))?,
            shop: ShopDomain::parse(required(SHOP_HEADER)?)
                .ok_or(HeaderError::Invalid(SHOP_HEADER))?,
            webhook_id: WebhookId::parse(required(WEBHOOK_ID_HEADER)?)
                .ok_or(HeaderError::Invalid(WEBHOOK_ID_HEADER))?,
            api_version: api_version.to_owned(),
            event_id: token(EVENT_ID_HEADER, 255)?,
            triggered_at: token(TRIGGERED_AT_HEADER, 64)?,
            sub_topic: token(SUB_TOPIC_HEADER, 128)?,
            name: optional(headers, NAME_HEADER)?
                .filter(|v| v.len() <= 255)
                .map(str::to_owned),
        })
    }
}

/// A header's value as text; an empty value counts as absent, a non-ASCII one as invalid.
fn optional<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
) -> Result<Option<&'h str>, HeaderError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => {
            let value = value
                .to_str()
                .map_err(|_| HeaderError::Invalid(name))?
                .trim();
            Ok((!value.is_empty()).then_some(value))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn shop_domains_must_be_myshopify() {
        assert_eq!(
            ShopDomain::parse("Example-Shop.myshopify.com")
                .unwrap()
                .as_str(),
            "example-shop.myshopify.com"
        );
        for bad in [
            "example.com",
            ".myshopify.com",
            "a.b.myshopify.com",
            "evil.com/.myshopify.com",
            "-x.myshopify.com",
            "shop.myshopify.com.evil.com",
            "",
        ] {
            assert!(ShopDomain::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn topics_map_to_routing_keys_and_back() {
        let topic = Topic::parse("orders/partially_fulfilled").unwrap();
        assert_eq!(topic.routing_key(), "orders.partially_fulfilled");
        assert_eq!(
            Topic::from_routing_key("orders.partially_fulfilled"),
            Some(topic)
        );
        for bad in [
            "orders",
            "orders/",
            "/create",
            "Orders/Create",
            "orders/cre ate",
            "a/*",
            "a/#",
        ] {
            assert!(Topic::parse(bad).is_none(), "{bad:?}");
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    const FULL: [(&str, &str); 5] = [
        (TOPIC_HEADER, "orders/create"),
        (SHOP_HEADER, "shop.myshopify.com"),
        (WEBHOOK_ID_HEADER, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"),
        (API_VERSION_HEADER, "2026-10"),
        (EVENT_ID_HEADER, "98880550-7158-44d4-b7cd-2c97c8a091b5"),
    ];

    #[test]
    fn full_headers_parse() {
        let parsed = WebhookHeaders::from_headers(&headers(&FULL)).unwrap();
        assert_eq!(parsed.topic.as_str(), "orders/create");
        assert_eq!(
            parsed.event_id.as_deref(),
            Some("98880550-7158-44d4-b7cd-2c97c8a091b5")
        );
        assert_eq!(parsed.triggered_at, None);
    }

    #[test]
    fn each_required_header_is_required() {
        for missing in [
            TOPIC_HEADER,
            SHOP_HEADER,
            WEBHOOK_ID_HEADER,
            API_VERSION_HEADER,
        ] {
            let pairs: Vec<_> = FULL
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            assert_eq!(
                WebhookHeaders::from_headers(&headers(&pairs)),
                Err(HeaderError::Missing(missing))
            );
        }
    }
}
