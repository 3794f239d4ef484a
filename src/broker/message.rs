//! The message format on `{prefix}.webhooks`: the raw body, unchanged, and Shopify's headers as
//! AMQP headers. Written by the receiver, read by the workers.

use chrono::Utc;
use lapin::{
    BasicProperties,
    types::{AMQPValue, FieldTable, ShortString},
};

use crate::shopify::{ShopDomain, Topic, WebhookHeaders, WebhookId};

pub const TOPIC: &str = "shopify-topic";
pub const SHOP_DOMAIN: &str = "shopify-shop-domain";
pub const WEBHOOK_ID: &str = "shopify-webhook-id";
pub const API_VERSION: &str = "shopify-api-version";
pub const EVENT_ID: &str = "shopify-event-id";
pub const TRIGGERED_AT: &str = "shopify-triggered-at";
pub const SUB_TOPIC: &str = "shopify-sub-topic";
pub const NAME: &str = "shopify-name";
/// The service's own attempt counter; absent on the first attempt. Never `x-death`, which RabbitMQ
/// 3.10 uses to detect cycles and may drop a message by.
pub const RETRY_COUNT: &str = "retry-count";
/// Set on a message sent to dead letters: why it could not be processed.
pub const LAST_ERROR: &str = "last-error";

/// Headers RabbitMQ adds when it dead-letters a message; stripped before a message is republished.
const BROKER_DEATH_HEADERS: &[&str] = &[
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
];

/// A webhook as it travels through RabbitMQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookMessage {
    pub headers: WebhookHeaders,
    pub body: Vec<u8>,
    /// Attempts that already failed (0 on the first attempt).
    pub retry_count: u32,
    /// Why the last attempt failed, carried to the dead-letter consumer.
    pub last_error: Option<String>,
}

/// A message on a work queue that is not one of ours (headers missing or invalid).
#[derive(Debug, thiserror::Error)]
#[error("malformed message: {0}")]
pub struct MalformedMessage(pub String);

impl WebhookMessage {
    pub fn new(headers: WebhookHeaders, body: Vec<u8>) -> Self {
        Self {
            headers,
            body,
            retry_count: 0,
            last_error: None,
        }
    }

    pub fn routing_key(&self) -> String {
        self.headers.topic.routing_key()
    }

    /// The AMQP properties of the contract: persistent, JSON, `message_id` = webhook id, a
    /// timestamp, and the Shopify headers.
    pub fn properties(&self) -> BasicProperties {
        let h = &self.headers;
        let mut table = FieldTable::default();
        let mut put = |key: &str, value: &str| {
            table.insert(key.into(), AMQPValue::LongString(value.into()));
        };
        put(TOPIC, h.topic.as_str());
        put(SHOP_DOMAIN, h.shop.as_str());
        put(WEBHOOK_ID, h.webhook_id.as_str());
        put(API_VERSION, &h.api_version);
        for (key, value) in [
            (EVENT_ID, &h.event_id),
            (TRIGGERED_AT, &h.triggered_at),
            (SUB_TOPIC, &h.sub_topic),
            (NAME, &h.name),
        ] {
            if let Some(value) = value {
                put(key, value);
            }
        }
        if let Some(error) = &self.last_error {
            put(LAST_ERROR, error);
        }
        if self.retry_count > 0 {
            table.insert(
                RETRY_COUNT.into(),
                AMQPValue::LongLongInt(self.retry_count.into()),
            );
        }
        BasicProperties::default()
            // 2 = persistent: written to disk by the broker before it confirms.
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(ShortString::from(h.webhook_id.as_str()))
            .with_timestamp(Utc::now().timestamp().try_into().unwrap_or_default())
            .with_headers(table)
    }

    /// Reads a delivered message back. Broker-added `x-death` headers are ignored.
    pub fn from_amqp(
        properties: &BasicProperties,
        body: Vec<u8>,
    ) -> Result<Self, MalformedMessage> {
        let empty = FieldTable::default();
        let table = properties.headers().as_ref().unwrap_or(&empty);
        let text = |key: &str| -> Option<String> {
            match table.inner().get(key)? {
                AMQPValue::LongString(s) => {
                    Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
                _ => None,
            }
        };
        let required =
            |key: &str| text(key).ok_or_else(|| MalformedMessage(format!("no {key} header")));
        let invalid = |key: &str| MalformedMessage(format!("invalid {key} header"));

        let headers = WebhookHeaders {
            topic: Topic::parse(&required(TOPIC)?).ok_or_else(|| invalid(TOPIC))?,
            shop: ShopDomain::parse(&required(SHOP_DOMAIN)?).ok_or_else(|| invalid(SHOP_DOMAIN))?,
            webhook_id: WebhookId::parse(&required(WEBHOOK_ID)?)
                .ok_or_else(|| invalid(WEBHOOK_ID))?,
            api_version: required(API_VERSION)?,
            event_id: text(EVENT_ID),
            triggered_at: text(TRIGGERED_AT),
            sub_topic: text(SUB_TOPIC),
            name: text(NAME),
        };
        let retry_count = match table.inner().get(RETRY_COUNT) {
            None => 0,
            Some(value) => integer(value)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| invalid(RETRY_COUNT))?,
        };
        Ok(Self {
            headers,
            body,
            retry_count,
            last_error: text(LAST_ERROR),
        })
    }

    /// True if RabbitMQ added death headers (for tests and diagnostics).
    pub fn has_broker_death_headers(properties: &BasicProperties) -> bool {
        properties
            .headers()
            .as_ref()
            .is_some_and(|t| BROKER_DEATH_HEADERS.iter().any(|k| t.contains_key(k)))
    }
}

fn integer(value: &AMQPValue) -> Option<i64> {
    match *value {
        AMQPValue::ShortShortInt(n) => Some(n.into()),
        AMQPValue::ShortShortUInt(n) => Some(n.into()),
        AMQPValue::ShortInt(n) => Some(n.into()),
        AMQPValue::ShortUInt(n) => Some(n.into()),
        AMQPValue::LongInt(n) => Some(n.into()),
        AMQPValue::LongUInt(n) => Some(n.into()),
        AMQPValue::LongLongInt(n) => Some(n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> WebhookMessage {
        WebhookMessage::new(
            WebhookHeaders {
                topic: Topic::parse("orders/create").unwrap(),
                shop: ShopDomain::parse("shop.myshopify.com").unwrap(),
                webhook_id: WebhookId::parse("w-1").unwrap(),
                api_version: "2026-10".into(),
                event_id: Some("e-1".into()),
                triggered_at: None,
                sub_topic: None,
                name: None,
            },
            br#"{"id":1}"#.to_vec(),
        )
    }

    #[test]
    fn a_message_survives_the_round_trip_through_amqp_properties() {
        let mut sent = message();
        sent.retry_count = 3;
        sent.last_error = Some("database unavailable".into());
        let back = WebhookMessage::from_amqp(&sent.properties(), sent.body.clone()).unwrap();
        assert_eq!(back, sent);
    }

    #[test]
    fn the_first_attempt_carries_no_retry_count() {
        let props = message().properties();
        assert!(!props.headers().as_ref().unwrap().contains_key(RETRY_COUNT));
        assert_eq!(*props.delivery_mode(), Some(2));
        assert_eq!(props.message_id().as_ref().unwrap().as_str(), "w-1");
    }

    #[test]
    fn a_message_without_our_headers_is_malformed() {
        assert!(WebhookMessage::from_amqp(&BasicProperties::default(), vec![]).is_err());
    }
}
