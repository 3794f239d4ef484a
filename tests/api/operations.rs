//! Running it like production: signals, reconnection after broker and database outages, and
//! metrics that Prometheus' own checker accepts.

use std::{process::Stdio, time::Duration};

use serde_json::json;

use crate::handlers::fixture_with;
use crate::helpers::{
    Proxy, TestDb, Webhook, app::spawn_app_on, eventually, process::ServeProcess, spawn_app,
};

async fn post(address: &str, webhook: &Webhook) -> u16 {
    crate::helpers::app::post_webhook(&reqwest::Client::new(), address, webhook)
        .await
        .status()
        .as_u16()
}

fn customer(first_name: &str) -> Vec<u8> {
    fixture_with(
        "customers/update",
        &[
            ("first_name", json!(first_name)),
            ("updated_at", json!("2026-01-01T00:00:00Z")),
        ],
    )
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
