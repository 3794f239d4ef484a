//! The app started inside the test, on port 0, with its own database and AMQP prefix.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use shopify_sync::{
    app::{App, Components},
    broker::Topology,
    settings::Settings,
    shopify,
};
use tokio_util::sync::CancellationToken;

use super::{TestBroker, TestDb, broker::delete_topology};

pub const SECRET: &str = "test-app-secret";
pub const SHOP: &str = "test-shop.myshopify.com";

/// Settings every test app starts from: loopback ports chosen by the OS, short timeouts, classic
/// queues (quick to declare). `overrides` win.
pub fn test_vars(prefix: &str, overrides: &[(&str, &str)]) -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = [
        ("AMQP_URL", super::broker::amqp_url().as_str()),
        ("AMQP_PREFIX", prefix),
        ("QUEUE_TYPE", "classic"),
        ("SHOPIFY_API_SECRET", SECRET),
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("METRICS_ADDR", "127.0.0.1:0"),
        ("PUBLISH_TIMEOUT", "1s"),
        ("RETRY_DELAYS", "200ms,400ms"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in overrides {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    vars
}

/// A running app and the test's handles on it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT` of the receiver.
    pub address: String,
    pub metrics_address: String,
    pub settings: Settings,
    pub topology: Topology,
    pub broker: TestBroker,
    pub http: reqwest::Client,
    /// The app's database, when it runs workers. Dropped (with the database) after the app.
    pub db: Option<TestDb>,
    cancel: CancellationToken,
    /// The app runs on a runtime of its own, like a separate process: it shuts down gracefully
    /// even while the test's runtime is blocked in `Drop`.
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

/// Starts the receiver with a fresh prefix and waits until it has its broker channel.
pub async fn spawn_receiver(overrides: &[(&str, &str)]) -> TestApp {
    spawn(overrides, receiver_only(), None, true).await
}

/// Starts the receiver without waiting for the broker (for tests where it is away).
pub async fn spawn_receiver_unready(overrides: &[(&str, &str)]) -> TestApp {
    spawn(overrides, receiver_only(), None, false).await
}

/// Everything `serve` runs, on a fresh database and prefix: receiver, every consumer and the
/// dead-letter consumer.
pub async fn spawn_app(overrides: &[(&str, &str)]) -> TestApp {
    spawn_app_on(TestDb::new().await, overrides).await
}

/// [`spawn_app`] on a database the test made (e.g. to reach it through a [`super::Proxy`]).
pub async fn spawn_app_on(db: TestDb, overrides: &[(&str, &str)]) -> TestApp {
    let components = Components {
        receiver: true,
        workers: Some(shopify_sync::worker::all_families()),
        scheduler: false,
    };
    spawn(overrides, components, Some(db), true).await
}

fn receiver_only() -> Components {
    Components {
        receiver: true,
        workers: None,
        scheduler: false,
    }
}

async fn spawn(
    overrides: &[(&str, &str)],
    components: Components,
    db: Option<TestDb>,
    wait_ready: bool,
) -> TestApp {
    super::init_tracing();
    let prefix = super::unique("test");
    let mut vars = test_vars(&prefix, &[]);
    if let Some(db) = &db {
        vars.insert("DATABASE_URL".into(), db.url());
    }
    for (k, v) in overrides {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    let settings = Settings::from_vars(vars).expect("test settings");
    let topology = Topology::new(&settings);
    let cancel = CancellationToken::new();
    let (started, addresses) = tokio::sync::oneshot::channel();
    let thread = std::thread::spawn({
        let (settings, cancel) = (settings.clone(), cancel.clone());
        move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("app runtime");
            runtime.block_on(async move {
                let app = App::start(settings, components, cancel).await?;
                let _ = started.send((app.http_addr, app.metrics_addr));
                app.run_until_stopped().await
            })
        }
    });
    let Ok((http_addr, metrics_addr)) = addresses.await else {
        panic!("the app did not start: {:?}", thread.join());
    };
    let address = format!("http://{}", http_addr.expect("receiver address"));
    let metrics_address = format!("http://{metrics_addr}");
    let test_app = TestApp {
        address,
        metrics_address,
        settings,
        topology,
        broker: TestBroker::new(prefix).await,
        http: reqwest::Client::new(),
        db,
        cancel,
        thread: Some(thread),
    };
    if wait_ready {
        test_app.wait_ready().await;
    }
    test_app
}

/// What a test sends: Shopify's headers, signed body. Fields are public so a test can break one.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub topic: String,
    pub shop: String,
    pub webhook_id: String,
    pub body: Vec<u8>,
    /// `None`: signed with the app's secret.
    pub hmac: Option<String>,
    pub extra_headers: Vec<(String, String)>,
    pub omit_headers: Vec<&'static str>,
}

impl Webhook {
    pub fn new(topic: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            topic: topic.to_owned(),
            shop: SHOP.to_owned(),
            webhook_id: uuid::Uuid::new_v4().to_string(),
            body: body.into(),
            hmac: None,
            extra_headers: vec![],
            omit_headers: vec![],
        }
    }

    pub fn signature(&self) -> String {
        self.hmac
            .clone()
            .unwrap_or_else(|| shopify::sign(&self.body, &SECRET.to_owned().into()))
    }
}

impl TestApp {
    pub async fn wait_ready(&self) {
        super::eventually(
            Duration::from_secs(10),
            "the receiver to be ready",
            || async {
                let status = self
                    .http
                    .get(format!("{}/readyz", self.address))
                    .send()
                    .await
                    .ok()?
                    .status();
                status.is_success().then_some(())
            },
        )
        .await;
    }

    /// POSTs `webhook` with all of Shopify's headers and returns the status.
    pub async fn post(&self, webhook: &Webhook) -> reqwest::StatusCode {
        self.post_response(webhook).await.status()
    }

    pub async fn post_response(&self, webhook: &Webhook) -> reqwest::Response {
        post_webhook(&self.http, &self.address, webhook).await
    }

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.metrics_address))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Stops the app and waits for it to finish.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.cancel.cancel();
        match self.thread.take() {
            Some(thread) => tokio::task::spawn_blocking(move || thread.join())
                .await
                .expect("join")
                .expect("app thread"),
            None => Ok(()),
        }
    }

    pub fn receiver_addr(&self) -> SocketAddr {
        self.address
            .trim_start_matches("http://")
            .parse()
            .expect("receiver address")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            eprintln!("the app panicked");
        }
        let topology = self.topology.clone();
        super::block_on_cleanup(async move { delete_topology(&topology).await });
    }
}

/// A delivery row as the tests read it.
#[derive(Debug, Clone)]
pub struct DeliveryState {
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub payload: Option<serde_json::Value>,
    pub dead_lettered_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl TestApp {
    pub fn db(&self) -> &TestDb {
        self.db
            .as_ref()
            .expect("this app has a database (spawn_app)")
    }

    /// The delivery row of `webhook_id`, if any.
    pub async fn delivery(&self, webhook_id: &str) -> Option<DeliveryState> {
        let client = self.db().client().await;
        let row = client
            .query_opt(
                "SELECT status, attempts, last_error, payload, dead_lettered_at
                   FROM webhook_deliveries WHERE webhook_id = $1",
                &[&webhook_id],
            )
            .await
            .expect("query deliveries")?;
        Some(DeliveryState {
            status: row.get(0),
            attempts: row.get(1),
            last_error: row.get(2),
            payload: row.get(3),
            dead_lettered_at: row.get(4),
        })
    }

    /// Waits until the delivery of `webhook_id` has `status`, and returns it.
    pub async fn wait_for_status(&self, webhook_id: &str, status: &str) -> DeliveryState {
        super::eventually(
            Duration::from_secs(15),
            &format!("delivery {webhook_id} to be {status}"),
            || async {
                self.delivery(webhook_id)
                    .await
                    .filter(|d| d.status == status)
            },
        )
        .await
    }

    /// Posts and expects 200.
    pub async fn accept(&self, webhook: &Webhook) {
        let status = self.post(webhook).await;
        assert_eq!(status, 200, "{} {}", webhook.topic, webhook.webhook_id);
    }

    /// A metric sample's value, 0 when absent. `series` is the name with its labels as printed.
    pub async fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

/// POSTs `webhook` with all of Shopify's headers to the receiver at `address`.
pub async fn post_webhook(
    http: &reqwest::Client,
    address: &str,
    webhook: &Webhook,
) -> reqwest::Response {
    let headers = [
        ("X-Shopify-Hmac-Sha256", webhook.signature()),
        ("X-Shopify-Topic", webhook.topic.clone()),
        ("X-Shopify-Shop-Domain", webhook.shop.clone()),
        ("X-Shopify-Webhook-Id", webhook.webhook_id.clone()),
        ("X-Shopify-API-Version", "2026-10".to_owned()),
        ("X-Shopify-Event-Id", uuid::Uuid::new_v4().to_string()),
        (
            "X-Shopify-Triggered-At",
            "2026-12-03T10:00:00.000Z".to_owned(),
        ),
    ];
    let mut request = http
        .post(format!("{address}/webhooks/shopify"))
        .header("Content-Type", "application/json");
    for (name, value) in headers {
        if !webhook
            .omit_headers
            .iter()
            .any(|o| o.eq_ignore_ascii_case(name))
        {
            request = request.header(name, value);
        }
    }
    for (name, value) in &webhook.extra_headers {
        request = request.header(name, value);
    }
    request
        .body(webhook.body.clone())
        .send()
        .await
        .expect("POST to the receiver")
}

/// A metric sample's value at a `/metrics` endpoint, 0 when absent.
pub async fn metric_at(metrics_address: &str, series: &str) -> f64 {
    let Ok(response) = reqwest::get(format!("{metrics_address}/metrics")).await else {
        return 0.0;
    };
    response
        .text()
        .await
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}
