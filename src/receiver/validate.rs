//! Everything the receiver decides about a request before publishing it, as one pure function:
//! signature first, then headers, then the body's JSON. Property-tested below.

use axum::http::HeaderMap;
use secrecy::SecretString;

use super::ReceiveError;
use crate::{
    broker::WebhookMessage,
    shopify::{self, WebhookHeaders, webhook::HMAC_HEADER},
};

/// The message to publish, or why the request is refused. Nothing but the signature header is
/// read before the HMAC over the raw `body` holds.
pub fn validate(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[SecretString],
) -> Result<WebhookMessage, ReceiveError> {
    let signature = headers
        .get(HMAC_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(ReceiveError::InvalidHmac)?;
    if !shopify::verify(body, signature, secrets) {
        return Err(ReceiveError::InvalidHmac);
    }
    let parsed = WebhookHeaders::from_headers(headers)?;
    serde_json::from_slice::<serde::de::IgnoredAny>(body)?;
    Ok(WebhookMessage::new(parsed, body.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderName, HeaderValue};
    use proptest::prelude::*;

    const NAMES: &[&str] = &[
        "x-shopify-hmac-sha256",
        "x-shopify-topic",
        "x-shopify-shop-domain",
        "x-shopify-webhook-id",
        "x-shopify-api-version",
        "x-shopify-event-id",
        "x-shopify-triggered-at",
        "x-shopify-sub-topic",
        "x-shopify-name",
        "content-type",
    ];

    fn secret() -> Vec<SecretString> {
        vec![SecretString::from("fuzz-secret")]
    }

    /// Header values as a hostile client might send them: any bytes a header may carry, huge,
    /// empty, or near-valid.
    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            "[ -~]{0,40}".prop_map(String::into_bytes),
            Just(b"orders/create".to_vec()),
            Just(b"shop.myshopify.com".to_vec()),
            Just(vec![b'a'; 10_000]),
        ]
    }

    fn headers(pairs: &[(usize, Vec<u8>)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, bytes) in pairs {
            if let Ok(v) = HeaderValue::from_bytes(bytes) {
                map.append(HeaderName::from_static(NAMES[*name % NAMES.len()]), v);
            }
        }
        map
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            "\\PC{0,64}".prop_map(String::into_bytes),
            Just(br#"{"id":820982911946154508}"#.to_vec()),
            Just(b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".to_vec()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Whatever arrives, nothing panics, and nothing passes without a valid signature.
        #[test]
        fn nothing_is_accepted_without_a_valid_signature(
            pairs in proptest::collection::vec((0usize..NAMES.len(), value()), 0..12),
            body in body(),
        ) {
            let map = headers(&pairs);
            let signed = map
                .get_all(HMAC_HEADER)
                .iter()
                .next()
                .and_then(|v| v.to_str().ok())
                .is_some_and(|sig| shopify::verify(&body, sig, &secret()));
            let result = validate(&map, &body, &secret());
            if !signed {
                prop_assert!(matches!(result, Err(ReceiveError::InvalidHmac)));
            }
        }

        /// With a valid signature, hostile headers and bodies are refused with 400, never
        /// accepted half-valid, never a panic.
        #[test]
        fn signed_requests_are_accepted_only_when_every_part_is_valid(
            pairs in proptest::collection::vec((1usize..NAMES.len(), value()), 0..3),
            body in body(),
        ) {
            // Start from a valid request, then let the hostile values replace or add headers.
            let mut map = valid_headers();
            for (name, value) in headers(&pairs) {
                if let Some(name) = name {
                    map.insert(name, value);
                }
            }
            let signature = shopify::sign(&body, &secret()[0]);
            map.insert(HMAC_HEADER, HeaderValue::from_str(&signature).unwrap());
            match validate(&map, &body, &secret()) {
                Ok(message) => {
                    prop_assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
                    prop_assert!(message.headers.shop.as_str().ends_with(".myshopify.com"));
                    prop_assert_eq!(message.body, body);
                }
                Err(error) => prop_assert_eq!(error.status().as_u16(), 400),
            }
        }
    }

    fn valid_headers() -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in [
            ("x-shopify-topic", "orders/create"),
            ("x-shopify-shop-domain", "shop.myshopify.com"),
            ("x-shopify-webhook-id", "w-1"),
            ("x-shopify-api-version", "2026-10"),
        ] {
            map.insert(name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn a_fully_valid_request_is_accepted() {
        let body = br#"{"id":1}"#;
        let mut map = valid_headers();
        map.insert(
            HMAC_HEADER,
            HeaderValue::from_str(&shopify::sign(body, &secret()[0])).unwrap(),
        );
        assert!(validate(&map, body, &secret()).is_ok());
    }
}
