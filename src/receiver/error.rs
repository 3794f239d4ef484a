//! Why a webhook was refused, and the status Shopify gets for it.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};

use crate::{broker::PublishError, shopify::webhook::HeaderError};

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("body larger than the limit")]
    TooLarge,
    #[error("missing or invalid HMAC signature")]
    InvalidHmac,
    #[error(transparent)]
    BadHeader(#[from] HeaderError),
    #[error("body is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("body could not be read")]
    UnreadableBody,
    #[error("not accepted: {0}")]
    Unavailable(#[from] PublishError),
}

impl ReceiveError {
    /// The `outcome` label of `shopify_sync_webhooks_received_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::InvalidHmac => "invalid_hmac",
            Self::BadHeader(_) | Self::NotJson(_) | Self::UnreadableBody => "bad_request",
            Self::Unavailable(_) => "unavailable",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidHmac => StatusCode::UNAUTHORIZED,
            Self::BadHeader(_) | Self::NotJson(_) | Self::UnreadableBody => StatusCode::BAD_REQUEST,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ReceiveError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "webhook not accepted; Shopify will retry");
        } else {
            tracing::info!(error = %self, "webhook refused");
        }
        // The client learns the class of the problem, never internals.
        let text = match &self {
            Self::Unavailable(_) => "temporarily unavailable".to_owned(),
            other => other.to_string(),
        };
        (status, text).into_response()
    }
}
