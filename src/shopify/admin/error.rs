//! What can go wrong talking to the Admin API, with the one question a caller has: try again
//! later, or give up? Messages name the shop, never the access token.

use std::fmt;

/// A `userErrors` entry of a mutation (`BulkOperationUserError`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct UserError {
    /// Path to the input field at fault, if any.
    #[serde(default)]
    pub field: Option<Vec<String>>,
    pub message: String,
    /// e.g. `OPERATION_IN_PROGRESS`, `LIMIT_REACHED`, `INVALID`.
    #[serde(default)]
    pub code: Option<String>,
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        if let Some(field) = self.field.as_ref().filter(|f| !f.is_empty()) {
            write!(f, " [field {}]", field.join("."))?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// 401/403: the token is wrong, revoked, or lacks a scope. Retrying cannot help.
    #[error(
        "Shopify refused the access token of {shop} (HTTP {status}): reinstall the app or register a new token with `shops add`"
    )]
    Unauthorized { shop: String, status: u16 },
    /// Any other HTTP status that is not success (5xx after the retries ran out, or a 4xx).
    #[error("Admin API of {shop} answered HTTP {status}: {detail}")]
    Status {
        shop: String,
        status: u16,
        detail: String,
    },
    /// Still throttled after the waits the client allows itself.
    #[error("Admin API of {shop} is still throttling after {attempts} attempts")]
    Throttled { shop: String, attempts: u32 },
    /// Connection refused, reset, timed out: the network or Shopify is away.
    #[error("cannot reach the Admin API of {shop}: {source}")]
    Transport {
        shop: String,
        #[source]
        source: reqwest::Error,
    },
    /// Top-level GraphQL `errors` other than throttling: the query itself is refused.
    #[error("Admin API of {shop} refused the query: {messages}")]
    GraphQl { shop: String, messages: String },
    /// A mutation's `userErrors`.
    #[error("Admin API of {shop}: {}", join(.errors))]
    UserErrors {
        shop: String,
        errors: Vec<UserError>,
    },
    /// The answer is not the shape asked for.
    #[error("unexpected answer from the Admin API of {shop}: {reason}")]
    Decode { shop: String, reason: String },
}

fn join(errors: &[UserError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl AdminError {
    /// True when the same request may succeed later (network, 5xx, throttling).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::Throttled { .. } => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429,
            Self::Unauthorized { .. }
            | Self::GraphQl { .. }
            | Self::UserErrors { .. }
            | Self::Decode { .. } => false,
        }
    }

    /// The `userErrors` code when this is a single-reason user error (e.g. `LIMIT_REACHED`).
    pub fn user_error_code(&self) -> Option<&str> {
        match self {
            Self::UserErrors { errors, .. } => errors.iter().find_map(|e| e.code.as_deref()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_names_the_shop_and_is_permanent() {
        let e = AdminError::Unauthorized {
            shop: "a.myshopify.com".into(),
            status: 401,
        };
        assert!(e.to_string().contains("a.myshopify.com"));
        assert!(e.to_string().contains("401"));
        assert!(!e.is_transient());
    }

    #[test]
    fn server_errors_are_transient_and_client_errors_are_not() {
        let status = |status| AdminError::Status {
            shop: "a".into(),
            status,
            detail: String::new(),
        };
        assert!(status(502).is_transient());
        assert!(status(429).is_transient());
        assert!(!status(404).is_transient());
    }

    #[test]
    fn user_errors_show_message_code_and_field() {
        let e = AdminError::UserErrors {
            shop: "a".into(),
            errors: vec![UserError {
                field: Some(vec!["query".into()]),
                message: "A bulk query operation for this app and shop is already in progress."
                    .into(),
                code: Some("OPERATION_IN_PROGRESS".into()),
            }],
        };
        let text = e.to_string();
        assert!(
            text.contains("(OPERATION_IN_PROGRESS) [field query]"),
            "{text}"
        );
        assert_eq!(e.user_error_code(), Some("OPERATION_IN_PROGRESS"));
        assert!(!e.is_transient());
    }
}
