//! The harness: fresh databases, random AMQP prefixes, the app started on port 0, and cleanup.

pub mod app;
pub mod broker;
pub mod db;
pub mod fake_shopify;
pub mod process;
pub mod proxy;

pub use app::{TestApp, Webhook, spawn_app, spawn_receiver, spawn_receiver_unready};
pub use broker::TestBroker;
pub use db::TestDb;
pub use fake_shopify::{Canned, FakeShopify, File};
pub use proxy::Proxy;

use std::{future::Future, time::Duration};

/// Prints tracing output only when `TEST_LOG` is set.
pub fn init_tracing() {
    if std::env::var_os("TEST_LOG").is_some() {
        shopify_sync::telemetry::init(shopify_sync::settings::LogFormat::Pretty);
    }
}

/// A random name, so parallel tests never share a database or an AMQP prefix.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Polls `check` until it yields a value, failing the test after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs async cleanup from `Drop` (also while a failed test unwinds) on a runtime of its own.
pub fn block_on_cleanup<F: Future<Output = ()> + Send + 'static>(cleanup: F) {
    let joined = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("cleanup runtime")
            .block_on(cleanup)
    })
    .join();
    if joined.is_err() {
        eprintln!("test cleanup panicked");
    }
}
