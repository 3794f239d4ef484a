//! The receiver, over real HTTP and a real broker: the contract's status table, the message it
//! publishes, and what happens while the broker is away.

use std::time::{Duration, Instant};

use lapin::types::AMQPValue;
use serde::Deserialize;

use crate::helpers::{Proxy, Webhook, spawn_receiver, spawn_receiver_unready};

const ORDER: &str = r#"{"id":820982911946154508,"total_price":"414.95"}"#;
const WAIT: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
struct Vector {
    body: String,
    secret: String,
    hmac: String,
}

fn vectors() -> Vec<Vector> {
    serde_json::from_str(include_str!("../fixtures/hmac_vectors.json")).unwrap()
}

/// A body's verdict once its signature holds: JSON is accepted, anything else is a bad request.
fn expected_for(body: &str) -> reqwest::StatusCode {
    if serde_json::from_str::<serde_json::Value>(body).is_ok() {
        reqwest::StatusCode::OK
    } else {
        reqwest::StatusCode::BAD_REQUEST
    }
}

#[tokio::test]
async fn every_shopify_hmac_vector_verifies_and_one_changed_byte_fails() {
    for vector in vectors() {
        let app = spawn_receiver(&[("SHOPIFY_API_SECRET", &vector.secret)]).await;
        let mut webhook = Webhook::new("orders/create", vector.body.clone());
        webhook.hmac = Some(vector.hmac.clone());

        assert_eq!(
            app.post(&webhook).await,
            expected_for(&vector.body),
            "{}",
            vector.hmac
        );

        let mut changed_body = webhook.clone();
        changed_body.body[0] ^= 0x01;
        assert_eq!(app.post(&changed_body).await, 401);

        let mut changed_signature = webhook.clone();
        let mut sig = vector.hmac.clone().into_bytes();
        sig[3] = if sig[3] == b'A' { b'B' } else { b'A' };
        changed_signature.hmac = Some(String::from_utf8(sig).unwrap());
        assert_eq!(app.post(&changed_signature).await, 401);
    }
}

#[tokio::test]
async fn the_previous_secret_works_only_while_it_is_configured() {
    // Shopify's rotation vector: "foo=anything" signed with "old_secret".
    let vector = vectors()
        .into_iter()
        .find(|v| v.secret == "old_secret")
        .unwrap();
    let body = r#"{"rotated":true}"#;
    let old_signature =
        shopify_sync::shopify::sign(body.as_bytes(), &"old_secret".to_owned().into());
    let mut webhook = Webhook::new("orders/create", body);
    webhook.hmac = Some(old_signature);

    let rotating = spawn_receiver(&[
        ("SHOPIFY_API_SECRET", "secret"),
        ("SHOPIFY_API_SECRET_PREVIOUS", "old_secret"),
    ])
    .await;
    let mut vector_webhook = Webhook::new("orders/create", vector.body.clone());
    vector_webhook.hmac = Some(vector.hmac.clone());
    assert_eq!(rotating.post(&webhook).await, 200);
    assert_eq!(
        rotating.post(&vector_webhook).await,
        400,
        "signature good, body not JSON"
    );

    let rotated = spawn_receiver(&[("SHOPIFY_API_SECRET", "secret")]).await;
    assert_eq!(rotated.post(&webhook).await, 401);
    assert_eq!(rotated.post(&vector_webhook).await, 401);
}

#[tokio::test]
async fn every_refused_webhook_gets_its_status_and_publishes_nothing() {
    let app = spawn_receiver(&[("MAX_BODY_BYTES", "1024")]).await;
    let probe = app
        .broker
        .probe(&app.topology.webhooks_exchange(), "#")
        .await;

    let good = || Webhook::new("orders/create", ORDER);
    let mut cases: Vec<(&str, Webhook, u16)> = vec![];
    let mut w = good();
    w.omit_headers.push("X-Shopify-Hmac-Sha256");
    cases.push(("missing HMAC", w, 401));
    let mut w = good();
    w.hmac = Some("bm90IHRoZSByaWdodCBzaWduYXR1cmUgYXQgYWxsIQ==".into());
    cases.push(("wrong HMAC", w, 401));
    let mut w = good();
    w.hmac = Some("not base64 at all".into());
    cases.push(("garbage HMAC", w, 401));
    for header in [
        "X-Shopify-Topic",
        "X-Shopify-Shop-Domain",
        "X-Shopify-Webhook-Id",
        "X-Shopify-API-Version",
    ] {
        let mut w = good();
        w.omit_headers.push(header);
        cases.push(("missing required header", w, 400));
    }
    let mut w = good();
    w.shop = "evil.example.com".into();
    cases.push(("shop not *.myshopify.com", w, 400));
    cases.push(("body not JSON", Webhook::new("orders/create", "id=1"), 400));
    cases.push(("empty body", Webhook::new("orders/create", ""), 400));
    let mut w = good();
    w.topic = "orders/create/../../x".into();
    cases.push(("malformed topic", w, 400));
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(2048));
    cases.push((
        "body over MAX_BODY_BYTES",
        Webhook::new("orders/create", big),
        413,
    ));

    for (case, webhook, status) in &cases {
        assert_eq!(app.post(webhook).await.as_u16(), *status, "{case}");
    }

    // The probe saw nothing of the refused ones: the first message in it is the good one sent now.
    let accepted = good();
    assert_eq!(app.post(&accepted).await, 200);
    let first = probe.next(WAIT).await.expect("the accepted webhook");
    assert_eq!(
        first.properties.message_id().as_ref().unwrap().as_str(),
        accepted.webhook_id
    );
    assert!(probe.next(Duration::from_millis(200)).await.is_none());

    let metrics = app.metrics().await;
    for line in [
        r#"shopify_sync_webhooks_received_total{outcome="invalid_hmac",topic="unverified"} 3"#,
        r#"shopify_sync_webhooks_received_total{outcome="too_large",topic="unverified"} 1"#,
        r#"shopify_sync_webhooks_received_total{outcome="accepted",topic="orders/create"} 1"#,
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }
}

#[tokio::test]
async fn an_accepted_webhook_is_on_the_exchange_byte_for_byte_with_the_contract_headers() {
    let app = spawn_receiver(&[]).await;
    let probe = app
        .broker
        .probe(&app.topology.webhooks_exchange(), "#")
        .await;
    // Spacing and key order kept: the body must not be re-serialised.
    let body = "{ \"id\" : 820982911946154508,\n  \"total_price\":\"414.95\" }";
    let webhook = Webhook::new("orders/partially_fulfilled", body);

    let started = Instant::now();
    assert_eq!(app.post(&webhook).await, 200);
    let delivery = probe.next(WAIT).await.expect("message on the exchange");

    assert_eq!(delivery.data, body.as_bytes());
    assert_eq!(delivery.routing_key.as_str(), "orders.partially_fulfilled");
    let props = &delivery.properties;
    assert_eq!(*props.delivery_mode(), Some(2), "persistent");
    assert_eq!(
        props.content_type().as_ref().unwrap().as_str(),
        "application/json"
    );
    assert_eq!(
        props.message_id().as_ref().unwrap().as_str(),
        webhook.webhook_id
    );
    let timestamp = props.timestamp().expect("timestamp");
    let now = chrono::Utc::now().timestamp() as u64;
    assert!(timestamp <= now && now - timestamp <= started.elapsed().as_secs() + 2);
    let headers = props.headers().as_ref().unwrap().inner();
    let text = |key: &str| match headers.get(key) {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("header {key}: {other:?}"),
    };
    assert_eq!(text("shopify-topic"), "orders/partially_fulfilled");
    assert_eq!(text("shopify-shop-domain"), "test-shop.myshopify.com");
    assert_eq!(text("shopify-webhook-id"), webhook.webhook_id);
    assert_eq!(text("shopify-api-version"), "2026-10");
    assert_eq!(text("shopify-triggered-at"), "2026-12-03T10:00:00.000Z");
    assert!(!text("shopify-event-id").is_empty());
    assert!(
        !headers.contains_key("retry-count"),
        "no retry-count on a first attempt"
    );
}

#[tokio::test]
async fn a_webhook_for_a_topic_no_worker_handles_is_still_kept() {
    let app = spawn_receiver(&[]).await;
    let other = app.topology.work_queue("other");

    assert_eq!(app.post(&Webhook::new("themes/publish", "{}")).await, 200);

    crate::helpers::eventually(WAIT, "the message in the other queue", || async {
        (app.broker.depth(&other).await == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn with_the_broker_gone_the_receiver_answers_503_in_time_and_recovers_by_itself() {
    let proxy = Proxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let url = format!("amqp://guest:guest@{}/%2f", proxy.addr);
    // Long enough for the reconnect (connect, topology, confirms) on a busy machine: the first
    // webhook after the broker returns waits for it.
    let app = spawn_receiver(&[("AMQP_URL", &url), ("PUBLISH_TIMEOUT", "1500ms")]).await;
    let probe = app
        .broker
        .probe(&app.topology.webhooks_exchange(), "#")
        .await;
    assert_eq!(app.post(&Webhook::new("orders/create", ORDER)).await, 200);
    assert!(probe.next(WAIT).await.is_some());

    proxy.cut();
    let started = Instant::now();
    let refused = Webhook::new("orders/create", ORDER);
    assert_eq!(app.post(&refused).await, 503);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "503 took {took:?}, PUBLISH_TIMEOUT is 1.5 s"
    );
    let ready = app
        .http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);

    proxy.restore();
    let after = Webhook::new("orders/create", ORDER);
    assert_eq!(
        app.post(&after).await,
        200,
        "first webhook after the broker is back"
    );
    let delivered = probe
        .next(WAIT)
        .await
        .expect("the webhook sent after recovery");
    assert_eq!(
        delivered.properties.message_id().as_ref().unwrap().as_str(),
        after.webhook_id,
        "the refused webhook must not have been published"
    );
    assert!(app.metrics().await.contains(
        r#"shopify_sync_webhooks_received_total{outcome="unavailable",topic="orders/create"} 1"#
    ));
}

#[tokio::test]
async fn a_receiver_started_while_the_broker_is_away_answers_503_then_200() {
    let proxy = Proxy::start("127.0.0.1:5672".parse().unwrap()).await;
    proxy.cut();
    let url = format!("amqp://guest:guest@{}/%2f", proxy.addr);
    let app = spawn_receiver_unready(&[("AMQP_URL", &url), ("PUBLISH_TIMEOUT", "1500ms")]).await;

    assert_eq!(app.post(&Webhook::new("orders/create", ORDER)).await, 503);

    proxy.restore();
    assert_eq!(app.post(&Webhook::new("orders/create", ORDER)).await, 200);
}

#[tokio::test]
async fn health_and_readiness_answer_on_the_receiver_port() {
    let app = spawn_receiver(&[]).await;
    for path in ["/healthz", "/readyz"] {
        let response = app
            .http
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn metrics_include_the_receiver_and_process_metrics() {
    let app = spawn_receiver(&[]).await;
    assert_eq!(app.post(&Webhook::new("customers/create", "{}")).await, 200);

    let metrics = app.metrics().await;

    for name in [
        "shopify_sync_webhooks_received_total",
        "shopify_sync_publish_duration_seconds_bucket",
        "process_resident_memory_bytes",
    ] {
        assert!(metrics.contains(name), "no {name} in\n{metrics}");
    }
}

#[tokio::test]
async fn a_client_that_sends_its_body_too_slowly_gets_408_and_nothing_is_published() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_receiver(&[("REQUEST_TIMEOUT", "300ms")]).await;
    let probe = app
        .broker
        .probe(&app.topology.webhooks_exchange(), "#")
        .await;
    let mut stream = tokio::net::TcpStream::connect(app.receiver_addr())
        .await
        .unwrap();

    let head = "POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\nX-Shopify-Hmac-Sha256: x\r\n\r\n{\"id\":";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;

    assert!(
        read.is_ok(),
        "the receiver must not wait for the slow client forever"
    );
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(probe.next(Duration::from_millis(200)).await.is_none());
}

#[tokio::test]
async fn idle_clients_holding_every_connection_slot_cannot_keep_a_webhook_out() {
    use tokio::io::AsyncReadExt;
    let app = spawn_receiver(&[("MAX_CONNECTIONS", "4"), ("REQUEST_TIMEOUT", "500ms")]).await;
    // Four clients connect and never send a byte: every slot is taken.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(
            tokio::net::TcpStream::connect(app.receiver_addr())
                .await
                .unwrap(),
        );
    }

    // A real webhook gets through once the idle ones are cut by the header timeout.
    let webhook = Webhook::new("orders/create", ORDER);
    let status = tokio::time::timeout(Duration::from_secs(5), app.post(&webhook)).await;

    assert_eq!(status.expect("served despite the idle clients"), 200);
    for mut stream in idle {
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "the idle connection was closed"
        );
    }
}

#[tokio::test]
async fn garbage_on_the_wire_publishes_nothing_and_the_receiver_keeps_serving() {
    use rand::{Rng, SeedableRng};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_receiver(&[("REQUEST_TIMEOUT", "300ms")]).await;
    let probe = app
        .broker
        .probe(&app.topology.webhooks_exchange(), "#")
        .await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let templates: [&[u8]; 4] = [
        b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /webhooks/shopify HTTP/1.1\r\nX-Shopify-Hmac-Sha256: \xff\xfe\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
    ];

    for i in 0..200 {
        let mut bytes = templates[i % templates.len()].to_vec();
        let noise: Vec<u8> = (0..rng.random_range(0..512))
            .map(|_| rng.random())
            .collect();
        bytes.extend(noise);
        let mut stream = tokio::net::TcpStream::connect(app.receiver_addr())
            .await
            .unwrap();
        let _ = stream.write_all(&bytes).await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut sink)).await;
    }

    let webhook = Webhook::new("orders/create", ORDER);
    assert_eq!(app.post(&webhook).await, 200);
    let first = probe.next(WAIT).await.expect("the valid webhook");
    assert_eq!(
        first.properties.message_id().as_ref().unwrap().as_str(),
        webhook.webhook_id
    );
}
