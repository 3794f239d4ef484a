//! Prometheus metrics of the contract, one registry per process (tests run several apps in one
//! process, so nothing is registered globally), served on `METRICS_ADDR/metrics`.

use std::sync::Arc;

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Every metric the service exports. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Webhooks at the receiver, by topic and outcome (accepted, invalid_hmac, bad_request,
    /// too_large, unavailable).
    pub webhooks_received: IntCounterVec,
    /// Time from the start of a publish to the broker's confirm.
    pub publish_duration: Histogram,
    /// Messages settled by consumers, by queue and outcome (processed, duplicate, retried,
    /// dead_lettered, ignored).
    pub messages: IntCounterVec,
    pub processing_duration: HistogramVec,
    /// Messages handled together in one batch (one transaction), by queue.
    pub batch_size: HistogramVec,
    /// Retries scheduled, by queue and tier (the tier's delay, e.g. `10s`).
    pub retries: IntCounterVec,
    /// Age of a message when a consumer takes it (now − its AMQP timestamp): how far behind the
    /// queue is.
    pub message_age: HistogramVec,
    pub dead_letters: IntCounterVec,
    pub bulk_records: IntCounterVec,
    pub syncs: IntCounterVec,
}

/// Buckets from 0.5 ms to 10 s: publishes and transactions are fast, until they are not.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets from 1 s to 2 h: message timestamps have a resolution of one second, and a retried
/// message is as old as its delays.
const AGE_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0,
];

impl Metrics {
    pub fn new() -> Arc<Self> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
            let h = HistogramVec::new(opts, labels).expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let metrics = Self {
            webhooks_received: counter(
                "shopify_sync_webhooks_received_total",
                "Webhooks received over HTTP, by topic and outcome.",
                &["topic", "outcome"],
            ),
            publish_duration: {
                let opts = HistogramOpts::new(
                    "shopify_sync_publish_duration_seconds",
                    "Time from publish to the broker's confirm.",
                )
                .buckets(LATENCY_BUCKETS.to_vec());
                let h = Histogram::with_opts(opts).expect("valid metric");
                registry
                    .register(Box::new(h.clone()))
                    .expect("unique metric");
                h
            },
            messages: counter(
                "shopify_sync_messages_total",
                "Messages settled by consumers, by queue and outcome.",
                &["queue", "outcome"],
            ),
            processing_duration: histogram(
                "shopify_sync_processing_duration_seconds",
                "Time to handle one message, to its ack.",
                &["queue"],
            ),
            batch_size: {
                let opts = HistogramOpts::new(
                    "shopify_sync_batch_size",
                    "Messages a consumer handled together, in one transaction.",
                )
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0]);
                let h = HistogramVec::new(opts, &["queue"]).expect("valid metric");
                registry
                    .register(Box::new(h.clone()))
                    .expect("unique metric");
                h
            },
            retries: counter(
                "shopify_sync_retries_total",
                "Failed attempts sent to a delayed-retry tier, by queue and tier.",
                &["queue", "tier"],
            ),
            message_age: {
                let opts = HistogramOpts::new(
                    "shopify_sync_message_age_seconds",
                    "Age of a message when a consumer takes it, from its AMQP timestamp.",
                )
                .buckets(AGE_BUCKETS.to_vec());
                let h = HistogramVec::new(opts, &["queue"]).expect("valid metric");
                registry
                    .register(Box::new(h.clone()))
                    .expect("unique metric");
                h
            },
            dead_letters: counter(
                "shopify_sync_dead_letters_total",
                "Deliveries recorded as dead letters, by topic.",
                &["topic"],
            ),
            bulk_records: counter(
                "shopify_sync_bulk_records_total",
                "Records imported from bulk operation results, by resource.",
                &["resource"],
            ),
            syncs: counter(
                "shopify_sync_syncs_total",
                "Full syncs finished, by outcome.",
                &["outcome"],
            ),
            registry,
        };
        #[cfg(target_os = "linux")]
        metrics
            .registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("unique metric");
        Arc::new(metrics)
    }

    /// The registry in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

/// Serves `GET /metrics` on `listener` until `cancel` fires.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(render))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
}

async fn render(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
}
