//! The receiver's routes.

use std::time::Instant;

use axum::{
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode},
};
use tracing::{Instrument, field};

use super::{ReceiveError, ReceiverState};
use crate::shopify::{self, webhook::TOPIC_HEADER};

/// `POST /webhooks/shopify`.
pub(crate) async fn receive(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<&'static str, ReceiveError> {
    let span = tracing::info_span!(
        "webhook",
        topic = field::Empty,
        shop = field::Empty,
        webhook_id = field::Empty
    );
    // Header values go into the span only after the signature is known to be good.
    let result = accept(&state, &headers, body, &span)
        .instrument(span.clone())
        .await;
    let topic = match &result {
        Ok(topic) => topic.clone(),
        // Before verification the topic is attacker-chosen: keep it out of metric labels.
        Err(ReceiveError::TooLarge | ReceiveError::InvalidHmac | ReceiveError::UnreadableBody) => {
            "unverified".to_owned()
        }
        Err(_) => verified_topic_label(&headers),
    };
    let outcome = result
        .as_ref()
        .map_or_else(ReceiveError::outcome, |_| "accepted");
    state
        .metrics
        .webhooks_received
        .with_label_values(&[topic.as_str(), outcome])
        .inc();
    let _entered = span.enter();
    result.map(|_| {
        tracing::info!("webhook accepted");
        "ok"
    })
}

/// Verify, parse, publish. Returns the topic on success.
async fn accept(
    state: &ReceiverState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    span: &tracing::Span,
) -> Result<String, ReceiveError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ReceiveError::TooLarge
        } else {
            ReceiveError::UnreadableBody
        }
    })?;

    let message = super::validate::validate(headers, &body, &state.secrets)?;
    span.record("topic", message.headers.topic.as_str());
    span.record("shop", message.headers.shop.as_str());
    span.record("webhook_id", message.headers.webhook_id.as_str());
    let started = Instant::now();
    state
        .publisher
        .publish(
            &state.exchange,
            &message.routing_key(),
            &message.body,
            message.properties(),
            state.publish_timeout,
        )
        .await?;
    state
        .metrics
        .publish_duration
        .observe(started.elapsed().as_secs_f64());
    Ok(message.headers.topic.as_str().to_owned())
}

/// For requests refused after the signature held: the topic if it is well-formed.
fn verified_topic_label(headers: &HeaderMap) -> String {
    headers
        .get(TOPIC_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(shopify::Topic::parse)
        .map_or_else(|| "invalid".to_owned(), |t| t.as_str().to_owned())
}

/// `GET /healthz`: the process is alive.
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the broker channel is open (and Postgres reachable where it is used).
pub(crate) async fn readyz(State(state): State<ReceiverState>) -> (StatusCode, &'static str) {
    let database_ok = match &state.readiness {
        Some(check) => check().await,
        None => true,
    };
    if state.publisher.is_ready() && database_ok {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}
