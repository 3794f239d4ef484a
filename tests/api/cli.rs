//! The binary itself: `send` against a running receiver, and how it refuses bad settings.

use std::{path::Path, time::Duration};

use tokio::process::Command;

use crate::helpers::{app::SECRET, spawn_receiver};

/// The binary as a child process (tokio's, so the app inside the test keeps running meanwhile).
fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shopify-sync"));
    // Only what the test sets: no stray DATABASE_URL or secret from the environment.
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

fn fixture_topics() -> Vec<(String, std::path::PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webhooks");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let stem = path.file_stem().unwrap().to_str().unwrap();
            (stem.replace("__", "/"), path)
        })
        .collect()
}

#[tokio::test]
async fn send_delivers_every_shopify_sample_payload_through_the_receiver() {
    let app = spawn_receiver(&[]).await;
    let probe = app
        .broker
        .probe(&app.topology.webhooks_exchange(), "#")
        .await;
    let url = format!("{}/webhooks/shopify", app.address);
    let fixtures = fixture_topics();
    assert!(
        fixtures.len() >= 17,
        "the Shopify samples are in tests/fixtures"
    );

    for (topic, file) in &fixtures {
        let webhook_id = uuid::Uuid::new_v4().to_string();
        let output = binary()
            .env("SHOPIFY_API_SECRET", SECRET)
            .args([
                "send",
                "--topic",
                topic,
                "--shop",
                "test-shop.myshopify.com",
            ])
            .args(["--url", &url, "--webhook-id", &webhook_id])
            .arg("--file")
            .arg(file)
            .output()
            .await
            .unwrap();

        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{topic}: {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(stdout.trim(), "200 OK", "{topic}");
        let delivery = probe.next(Duration::from_secs(5)).await.expect(topic);
        assert_eq!(
            delivery.data,
            std::fs::read(file).unwrap(),
            "{topic}: body changed"
        );
        assert_eq!(delivery.routing_key.as_str(), topic.replace('/', "."));
        assert_eq!(
            delivery.properties.message_id().as_ref().unwrap().as_str(),
            webhook_id
        );
    }
}

#[tokio::test]
async fn send_with_the_wrong_secret_prints_401_and_fails() {
    let app = spawn_receiver(&[]).await;
    let (topic, file) = fixture_topics().remove(0);

    let output = binary()
        .env("SHOPIFY_API_SECRET", "not-the-secret")
        .args([
            "send",
            "--topic",
            &topic,
            "--shop",
            "test-shop.myshopify.com",
        ])
        .args(["--url", &format!("{}/webhooks/shopify", app.address)])
        .arg("--file")
        .arg(file)
        .output()
        .await
        .unwrap();

    assert!(!output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "401 Unauthorized"
    );
}

#[tokio::test]
async fn a_bad_setting_stops_the_process_with_a_line_naming_it() {
    for (var, value) in [
        ("PUBLISH_TIMEOUT", "soon"),
        ("RETRY_DELAYS", "10s,,1m"),
        ("QUEUE_TYPE", "lazy"),
    ] {
        let output = binary()
            .env("SHOPIFY_API_SECRET", "x")
            .env(var, value)
            .arg("receiver")
            .output()
            .await
            .unwrap();

        assert!(!output.status.success(), "{var}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(var), "{stderr}");
    }
}

#[tokio::test]
async fn the_receiver_without_a_secret_names_the_missing_variable_and_never_prints_secrets() {
    let output = binary()
        .env("AMQP_URL", "amqp://guest:hush-hush@127.0.0.1:1/%2f")
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .arg("receiver")
        .output()
        .await
        .unwrap();

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SHOPIFY_API_SECRET"), "{stderr}");
    assert!(!stderr.contains("hush-hush"), "{stderr}");
}
