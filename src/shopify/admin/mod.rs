//! The Admin GraphQL client: one POST per query to
//! `{SHOPIFY_ADMIN_URL}/admin/api/{SHOPIFY_API_VERSION}/graphql.json` (`{shop}` = the shop's
//! domain) with `X-Shopify-Access-Token`.
//!
//! It rides out what Shopify asks it to: HTTP 429 (waits `Retry-After`) and GraphQL `THROTTLED`
//! (waits until the cost bucket holds the query again), and 5xx or a broken connection (bounded
//! exponential backoff). 401/403 are permanent. What is left is an [`AdminError`] that says
//! whether to try again later.

mod bulk;
mod error;
mod records;
mod throttle;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

pub use bulk::{BulkOperation, CUSTOMERS_QUERY, ORDERS_QUERY, OperationStatus, failure_message};
pub use error::{AdminError, UserError};
pub use records::{BulkCustomer, BulkOrder, Gid, IntoRecord, Line, parse_line};
pub use throttle::{QueryCost, ThrottleStatus};

use crate::shopify::ShopDomain;

/// How hard the client tries before it reports a failure.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all when the answer is 5xx or the connection fails.
    pub attempts: u32,
    /// Throttled answers (429 or `THROTTLED`) waited out before giving up.
    pub throttle_waits: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            throttle_waits: 10,
        }
    }
}

/// A query's deadline; result files have none (they stream for as long as they are).
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A download that sends nothing for this long is broken.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of an error body goes into a message.
const DETAIL_BYTES: usize = 300;

/// Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    url_template: String,
    api_version: String,
    policy: RetryPolicy,
}

#[derive(Deserialize)]
struct Envelope {
    data: Option<Value>,
    #[serde(default)]
    errors: Vec<GraphQlError>,
    extensions: Option<Extensions>,
}

#[derive(Deserialize)]
struct GraphQlError {
    message: String,
    extensions: Option<ErrorExtensions>,
}

#[derive(Deserialize)]
struct ErrorExtensions {
    code: Option<String>,
    cost: Option<QueryCost>,
}

#[derive(Deserialize)]
struct Extensions {
    cost: Option<QueryCost>,
}

impl AdminClient {
    /// `url_template` is `SHOPIFY_ADMIN_URL` (e.g. `https://{shop}`).
    pub fn new(url_template: &str, api_version: &str) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("shopify-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a reqwest client with timeouts builds");
        Self {
            http,
            url_template: url_template.trim_end_matches('/').to_owned(),
            api_version: api_version.to_owned(),
            policy: RetryPolicy::default(),
        }
    }

    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The GraphQL endpoint of `shop`.
    pub fn graphql_url(&self, shop: &ShopDomain) -> String {
        format!(
            "{}/admin/api/{}/graphql.json",
            self.url_template.replace("{shop}", shop.as_str()),
            self.api_version
        )
    }

    /// Runs `query` with `variables` for `shop` and decodes `data` as `T`.
    pub async fn graphql<T: DeserializeOwned>(
        &self,
        shop: &ShopDomain,
        token: &SecretString,
        query: &str,
        variables: Value,
    ) -> Result<T, AdminError> {
        let url = self.graphql_url(shop);
        let body = json!({ "query": query, "variables": variables });
        let name = || shop.to_string();
        let (mut failures, mut throttles) = (0, 0);
        loop {
            let sent = self
                .http
                .post(&url)
                .timeout(QUERY_TIMEOUT)
                .header("X-Shopify-Access-Token", token.expose_secret())
                .json(&body)
                .send()
                .await;
            let error = match sent {
                Err(source) => AdminError::Transport {
                    shop: name(),
                    source: source.without_url(),
                },
                Ok(response) => {
                    let status = response.status().as_u16();
                    if status == 429 {
                        throttles += 1;
                        if throttles > self.policy.throttle_waits {
                            return Err(AdminError::Throttled {
                                shop: name(),
                                attempts: throttles,
                            });
                        }
                        let hint = response
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok());
                        let wait = throttle::retry_after(hint).unwrap_or(Duration::from_secs(1));
                        tracing::info!(shop = %shop, ?wait, "Admin API answered 429; waiting");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    match self.answer(shop, response).await? {
                        Answer::Data(data) => {
                            return serde_json::from_value(data).map_err(|e| AdminError::Decode {
                                shop: name(),
                                reason: e.to_string(),
                            });
                        }
                        Answer::Throttled(wait) => {
                            throttles += 1;
                            if throttles > self.policy.throttle_waits {
                                return Err(AdminError::Throttled {
                                    shop: name(),
                                    attempts: throttles,
                                });
                            }
                            tracing::info!(shop = %shop, ?wait, "query THROTTLED; waiting");
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                        Answer::Retry(error) => error,
                    }
                }
            };
            failures += 1;
            if failures >= self.policy.attempts {
                return Err(error);
            }
            let wait = throttle::backoff(failures);
            tracing::warn!(shop = %shop, %error, ?wait, "Admin API request failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Reads one HTTP answer: data, a throttle to wait out, a retryable failure, or an error.
    async fn answer(
        &self,
        shop: &ShopDomain,
        response: reqwest::Response,
    ) -> Result<Answer, AdminError> {
        let status = response.status();
        if status.as_u16() == 401 || status.as_u16() == 403 {
            return Err(AdminError::Unauthorized {
                shop: shop.to_string(),
                status: status.as_u16(),
            });
        }
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(source) => {
                return Ok(Answer::Retry(AdminError::Transport {
                    shop: shop.to_string(),
                    source: source.without_url(),
                }));
            }
        };
        if !status.is_success() {
            let error = AdminError::Status {
                shop: shop.to_string(),
                status: status.as_u16(),
                detail: excerpt(&bytes),
            };
            return match status.is_server_error() {
                true => Ok(Answer::Retry(error)),
                false => Err(error),
            };
        }
        let envelope: Envelope =
            serde_json::from_slice(&bytes).map_err(|e| AdminError::Decode {
                shop: shop.to_string(),
                reason: format!("{e}: {}", excerpt(&bytes)),
            })?;
        let throttled = envelope
            .errors
            .iter()
            .find(|e| e.extensions.as_ref().and_then(|x| x.code.as_deref()) == Some("THROTTLED"));
        if let Some(error) = throttled {
            let cost = envelope
                .extensions
                .as_ref()
                .and_then(|x| x.cost.as_ref())
                .or_else(|| error.extensions.as_ref().and_then(|x| x.cost.as_ref()));
            return Ok(Answer::Throttled(throttle::throttle_wait(cost)));
        }
        if !envelope.errors.is_empty() {
            let messages = envelope
                .errors
                .iter()
                .map(|e| e.message.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(AdminError::GraphQl {
                shop: shop.to_string(),
                messages,
            });
        }
        envelope
            .data
            .map(Answer::Data)
            .ok_or_else(|| AdminError::Decode {
                shop: shop.to_string(),
                reason: "no data and no errors".into(),
            })
    }

    /// Starts downloading a result file (a signed URL: no token, and the URL is never logged).
    /// 5xx and connection failures before the body starts are retried like queries.
    pub async fn download(
        &self,
        shop: &ShopDomain,
        url: &str,
    ) -> Result<reqwest::Response, AdminError> {
        let mut failures = 0;
        loop {
            let error = match self.http.get(url).send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let error = AdminError::Status {
                        shop: shop.to_string(),
                        status,
                        detail: "downloading the bulk operation result".into(),
                    };
                    if !error.is_transient() {
                        return Err(error);
                    }
                    error
                }
                Err(source) => AdminError::Transport {
                    shop: shop.to_string(),
                    source: source.without_url(),
                },
            };
            failures += 1;
            if failures >= self.policy.attempts {
                return Err(error);
            }
            tokio::time::sleep(throttle::backoff(failures)).await;
        }
    }
}

enum Answer {
    Data(Value),
    Throttled(Duration),
    Retry(AdminError),
}

fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(DETAIL_BYTES)]);
    text.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_puts_the_shop_and_version_in_place() {
        let client = AdminClient::new("https://{shop}", "2026-10");
        let shop = ShopDomain::parse("a-shop.myshopify.com").unwrap();
        assert_eq!(
            client.graphql_url(&shop),
            "https://a-shop.myshopify.com/admin/api/2026-10/graphql.json"
        );
        let local = AdminClient::new("http://127.0.0.1:9/", "2026-10");
        assert_eq!(
            local.graphql_url(&shop),
            "http://127.0.0.1:9/admin/api/2026-10/graphql.json"
        );
    }
}
