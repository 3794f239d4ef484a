//! Running it like production: signals, reconnection after broker and database outages, and
//! metrics that Prometheus' own checker accepts.

use std::{process::Stdio, time::Duration};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::handlers::fixture_with;
use crate::helpers::{
    Proxy, TestDb, Webhook,
    app::{spawn_app_on, test_vars},
    broker::delete_topology,
    eventually, spawn_app,
};
use shopify_sync::{broker::Topology, settings::Settings};

fn customer(first_name: &str) -> Vec<u8> {
    fixture_with(
        "customers/update",
        &[
            ("first_name", json!(first_name)),
            ("updated_at", json!("2026-01-01T00:00:00Z")),
        ],
    )
}

/// `shopify-sync <command>` as a child process, on a fresh database and prefix.
struct ServeProcess {
    child: tokio::process::Child,
    /// The receiver's URL (empty for processes without one).
    address: String,
    metrics_address: String,
    topology: Topology,
}

impl ServeProcess {
    async fn start(db: &TestDb) -> Self {
        Self::start_command("serve", db).await
    }

    async fn start_command(command: &str, db: &TestDb) -> Self {
        let prefix = crate::helpers::unique("test");
        let mut vars = test_vars(&prefix, &[("LOG_FORMAT", "json")]);
        vars.insert("DATABASE_URL".into(), db.url());
        let topology = Topology::new(&Settings::from_vars(vars.clone()).unwrap());
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_shopify-sync"))
            .arg(command)
            .env_clear()
            .envs(vars)
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // The addresses are in its log lines (it binds port 0); metrics come last.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (address, metrics_address) = tokio::time::timeout(Duration::from_secs(20), async {
            let mut address = String::new();
            while let Some(line) = lines.next_line().await.unwrap() {
                let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let addr = || format!("http://{}", entry["addr"].as_str().unwrap());
                if entry["message"] == "receiver listening" {
                    address = addr();
                } else if entry["message"] == "metrics listening" {
                    return (address, addr());
                }
            }
            panic!("{command} exited before listening");
        })
        .await
        .expect("the process starts");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            address,
            metrics_address,
            topology,
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args(["-s", signal, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let topology = self.topology.clone();
        crate::helpers::block_on_cleanup(async move { delete_topology(&topology).await });
    }
}

async fn post(address: &str, webhook: &Webhook) -> u16 {
    let headers = [
        ("X-Shopify-Hmac-Sha256", webhook.signature()),
        ("X-Shopify-Topic", webhook.topic.clone()),
        ("X-Shopify-Shop-Domain", webhook.shop.clone()),
        ("X-Shopify-Webhook-Id", webhook.webhook_id.clone()),
        ("X-Shopify-API-Version", "2026-10".to_owned()),
    ];
    let mut request = reqwest::Client::new().post(format!("{address}/webhooks/shopify"));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request
        .body(webhook.body.clone())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn status_of(db: &TestDb, webhook_id: &str) -> Option<String> {
    db.client()
        .await
        .query_opt(
            "SELECT status FROM webhook_deliveries WHERE webhook_id = $1",
            &[&webhook_id],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
}

async fn stops_cleanly_on(signal: &str) {
    let db = TestDb::new().await;
    let mut serve = ServeProcess::start(&db).await;
    let webhook = Webhook::new("customers/update", customer("Before"));
    eventually(
        Duration::from_secs(10),
        "serve to accept webhooks",
        || async { (post(&serve.address, &webhook).await == 200).then_some(()) },
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "the webhook to be processed",
        || async {
            (status_of(&db, &webhook.webhook_id).await.as_deref() == Some("processed"))
                .then_some(())
        },
    )
    .await;

    serve.signal(signal);
    let exit = tokio::time::timeout(Duration::from_secs(15), serve.child.wait())
        .await
        .expect("serve exits within a bounded time after the signal")
        .unwrap();

    assert!(exit.success(), "exit status {exit:?}");
    let broker = crate::helpers::TestBroker::new(String::new()).await;
    assert_eq!(
        broker.depth(&serve.topology.work_queue("customers")).await,
        0
    );
}

#[tokio::test]
async fn serve_stops_cleanly_on_sigterm() {
    stops_cleanly_on("TERM").await;
}

#[tokio::test]
async fn serve_stops_cleanly_on_ctrl_c() {
    stops_cleanly_on("INT").await;
}

#[tokio::test]
async fn workers_and_receiver_resume_by_themselves_after_the_broker_connection_is_cut() {
    let broker = Proxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let url = format!("amqp://guest:guest@{}/%2f", broker.addr);
    let app = spawn_app(&[("AMQP_URL", &url)]).await;
    let before = Webhook::new("customers/update", customer("Before"));
    app.accept(&before).await;
    app.wait_for_status(&before.webhook_id, "processed").await;

    broker.cut();
    assert_eq!(
        app.post(&Webhook::new("customers/update", customer("During")))
            .await,
        503
    );
    broker.restore();

    let after = Webhook::new("orders/updated", fixture_with("orders/updated", &[]));
    eventually(
        Duration::from_secs(15),
        "the receiver to accept again",
        || async { (app.post(&after).await == 200).then_some(()) },
    )
    .await;
    app.wait_for_status(&after.webhook_id, "processed").await;
}

#[tokio::test]
async fn a_database_outage_shorter_than_the_retry_window_dead_letters_nothing() {
    let db = TestDb::new().await;
    let postgres = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let url = db
        .url()
        .replace("127.0.0.1:5432", &postgres.addr.to_string());
    let app = spawn_app_on(
        db,
        &[
            ("DATABASE_URL", &url),
            ("RETRY_DELAYS", "200ms,500ms,1s,3s"),
        ],
    )
    .await;

    postgres.cut();
    let webhook = Webhook::new("customers/update", customer("Outage"));
    app.accept(&webhook).await;
    // Longer than the first tier, shorter than the whole window.
    eventually(Duration::from_secs(10), "a retry", || async {
        (app.metric(r#"shopify_sync_messages_total{outcome="retried",queue="customers"}"#)
            .await
            >= 1.0)
            .then_some(())
    })
    .await;
    postgres.restore();

    let processed = app.wait_for_status(&webhook.webhook_id, "processed").await;
    assert!(processed.attempts >= 2, "attempts {}", processed.attempts);
    assert_eq!(
        app.metric(r#"shopify_sync_messages_total{outcome="dead_lettered",queue="customers"}"#)
            .await,
        0.0
    );
}

async fn promtool_check(metrics: &str) {
    use tokio::io::AsyncWriteExt;
    let mut promtool = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; .ci/run installs it)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .await
        .unwrap();
    let output = promtool.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn the_worker_and_scheduler_processes_metrics_pass_promtool_too() {
    let db = TestDb::new().await;
    for command in ["worker", "scheduler", "receiver"] {
        let process = ServeProcess::start_command(command, &db).await;
        let metrics = reqwest::get(format!("{}/metrics", process.metrics_address))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("process_resident_memory_bytes"),
            "{command}"
        );
        promtool_check(&metrics).await;
    }
}

#[tokio::test]
async fn metrics_pass_promtool_check_metrics() {
    let app = spawn_app(&[]).await;
    let webhook = Webhook::new("customers/update", customer("Metrics"));
    app.accept(&webhook).await;
    app.wait_for_status(&webhook.webhook_id, "processed").await;
    assert_eq!(
        app.post(&Webhook::new("customers/update", "not json"))
            .await,
        400
    );
    let metrics = app.metrics().await;

    promtool_check(&metrics).await;
}
