//! How long to wait before the next attempt: Shopify's own hints where it gives them
//! (`Retry-After`, the GraphQL cost bucket), bounded exponential backoff otherwise.

use std::time::Duration;

use serde::Deserialize;

/// No single wait is longer than this, whatever Shopify suggests.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// First backoff after a 5xx or a broken connection; doubles per attempt.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Backoff never grows past this.
const BACKOFF_CAP: Duration = Duration::from_secs(8);
/// The least a throttled request waits (the bucket may already be refilling).
const MIN_THROTTLE_WAIT: Duration = Duration::from_millis(100);

/// `extensions.cost` of a GraphQL answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryCost {
    pub requested_query_cost: Option<f64>,
    pub throttle_status: Option<ThrottleStatus>,
}

/// The leaky bucket of the app on this shop, in cost points.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThrottleStatus {
    pub maximum_available: Option<f64>,
    pub currently_available: f64,
    /// Points restored per second.
    pub restore_rate: f64,
}

/// `Retry-After` of a 429, in (possibly fractional) seconds.
pub fn retry_after(header: Option<&str>) -> Option<Duration> {
    let seconds: f64 = header?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds).min(MAX_WAIT))
}

/// Time until the bucket holds the requested cost again: (requested − available) / restore rate.
/// Without a usable cost the wait is one second.
pub fn throttle_wait(cost: Option<&QueryCost>) -> Duration {
    let computed = cost.and_then(|cost| {
        let status = cost.throttle_status.as_ref()?;
        let requested = cost.requested_query_cost?;
        if status.restore_rate <= 0.0 {
            return None;
        }
        let missing = (requested - status.currently_available).max(0.0);
        Some(Duration::from_secs_f64(missing / status.restore_rate))
    });
    computed
        .unwrap_or(Duration::from_secs(1))
        .clamp(MIN_THROTTLE_WAIT, MAX_WAIT)
}

/// Backoff before retry number `attempt` (1 = the first retry): 250 ms, 500 ms, 1 s, … ≤ 8 s,
/// plus up to a quarter of jitter so clients that failed together do not retry together.
pub fn backoff(attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    let base = BACKOFF_BASE.saturating_mul(1 << exponent).min(BACKOFF_CAP);
    let jitter = base.mul_f64(rand::random::<f64>() / 4.0);
    base + jitter
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(requested: f64, available: f64, rate: f64) -> QueryCost {
        QueryCost {
            requested_query_cost: Some(requested),
            throttle_status: Some(ThrottleStatus {
                maximum_available: Some(2000.0),
                currently_available: available,
                restore_rate: rate,
            }),
        }
    }

    #[test]
    fn retry_after_reads_whole_and_fractional_seconds() {
        assert_eq!(retry_after(Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(Some("0.5")), Some(Duration::from_millis(500)));
        assert_eq!(retry_after(Some("3600")), Some(MAX_WAIT));
        assert_eq!(retry_after(Some("soon")), None);
        assert_eq!(retry_after(Some("-1")), None);
        assert_eq!(retry_after(None), None);
    }

    #[test]
    fn throttle_wait_is_the_missing_points_over_the_restore_rate() {
        // 10 points wanted, 2 left, 100 per second: 80 ms, raised to the 100 ms floor.
        assert_eq!(
            throttle_wait(Some(&cost(10.0, 2.0, 100.0))),
            MIN_THROTTLE_WAIT
        );
        // 1000 wanted, 0 left, 50 per second: 20 s.
        assert_eq!(
            throttle_wait(Some(&cost(1000.0, 0.0, 50.0))),
            Duration::from_secs(20)
        );
        assert_eq!(throttle_wait(Some(&cost(1e9, 0.0, 1.0))), MAX_WAIT);
        assert_eq!(throttle_wait(None), Duration::from_secs(1));
        assert_eq!(
            throttle_wait(Some(&cost(10.0, 0.0, 0.0))),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        for (attempt, base_ms) in [(1, 250), (2, 500), (3, 1000), (6, 8000), (40, 8000)] {
            let wait = backoff(attempt).as_millis();
            assert!(
                wait >= base_ms && wait <= base_ms * 5 / 4,
                "attempt {attempt}: {wait} ms"
            );
        }
    }

    #[test]
    fn the_cost_extension_deserializes_from_shopify_camel_case() {
        let cost: QueryCost = serde_json::from_str(
            r#"{"requestedQueryCost": 10, "actualQueryCost": null,
                "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 4,
                                   "restoreRate": 100.0}}"#,
        )
        .unwrap();
        assert_eq!(cost.requested_query_cost, Some(10.0));
        assert_eq!(cost.throttle_status.unwrap().currently_available, 4.0);
    }
}
