//! Fault injection: faults and duplicates lose nothing and apply nothing twice.
//!
//! Each scenario ends with a table of sent, accepted (200), processed, dead-lettered, lost and
//! double-applied. "Double-applied" is measured, not assumed: a trigger in the test's database
//! records every committed transition of a delivery to `processed` (the effect commits in the same
//! transaction), so a webhook whose effect was applied twice shows up twice.
//!
//! The faults hit the real binary (`serve`, `receiver`, `worker` as child processes) except where
//! a scenario needs to reach inside (the panicking handler runs the consumer loop in the test).
//! Fast versions run with `cargo test`; the long ones (5,000 webhooks) with
//! `cargo test --test api faults -- --ignored --nocapture`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::{StreamExt, stream};
use rand::{
    Rng,
    seq::{IndexedRandom, SliceRandom},
};
use serde_json::json;

use crate::handlers::fixture_with;
use crate::helpers::{
    Proxy, TestDb, Webhook,
    app::{metric_at, post_webhook, spawn_app_on},
    eventually,
    process::ServeProcess,
    spawn_receiver,
};

/// One webhook per customer: customer `i` gets its own id and email.
fn webhooks(count: usize) -> Vec<Webhook> {
    (1..=count)
        .map(|i| {
            let body = fixture_with(
                "customers/create",
                &[
                    ("id", json!(1_000_000 + i)),
                    ("email", json!(format!("c{i}@example.com"))),
                    ("updated_at", json!("2026-01-01T00:00:00Z")),
                ],
            );
            Webhook::new("customers/create", body)
        })
        .collect()
}

pub(crate) async fn install_effect_audit(db: &TestDb) {
    db.client()
        .await
        .batch_execute(
            "CREATE TABLE effect_audit (webhook_id text NOT NULL);
             CREATE FUNCTION audit_effect() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.status = 'processed'
                  AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM 'processed') THEN
                 INSERT INTO effect_audit VALUES (NEW.webhook_id);
               END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER audit_effect AFTER INSERT OR UPDATE ON webhook_deliveries
               FOR EACH ROW EXECUTE FUNCTION audit_effect();",
        )
        .await
        .unwrap();
}

/// Posts every webhook, 16 at a time, retrying a refusal as Shopify does. Returns how many
/// were accepted and how many attempts were refused on the way.
pub(crate) async fn send_all(address: &str, webhooks: &[Webhook]) -> (usize, usize) {
    let refused = AtomicUsize::new(0);
    let http = reqwest::Client::new();
    let accepted = stream::iter(webhooks)
        .map(|webhook| {
            let (refused, http) = (&refused, &http);
            async move {
                for _ in 0..100 {
                    match tokio::time::timeout(
                        Duration::from_secs(10),
                        post_webhook(http, address, webhook),
                    )
                    .await
                    {
                        Ok(response) if response.status() == 200 => return true,
                        _ => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                false
            }
        })
        .buffer_unordered(16)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    (accepted, refused.into_inner())
}

#[derive(Debug)]
pub(crate) struct Tally {
    scenario: &'static str,
    sent: usize,
    accepted: usize,
    pub(crate) processed: i64,
    pub(crate) dead_lettered: i64,
    lost: i64,
    double_applied: i64,
}

impl Tally {
    /// Waits until every accepted webhook is `processed` or `dead_letter` (or the wait ends),
    /// then counts.
    pub(crate) async fn count(
        scenario: &'static str,
        db: &TestDb,
        sent: usize,
        accepted: usize,
        wait: Duration,
    ) -> Self {
        let client = db.client().await;
        let settled = || async {
            client
                .query_one(
                    "SELECT count(*) FROM webhook_deliveries WHERE status IN ('processed', 'dead_letter')",
                    &[],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
        };
        let deadline = tokio::time::Instant::now() + wait;
        while settled().await < accepted as i64 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let count = |sql: &'static str| {
            let client = &client;
            async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
        };
        let processed =
            count("SELECT count(*) FROM webhook_deliveries WHERE status = 'processed'").await;
        let dead_lettered =
            count("SELECT count(*) FROM webhook_deliveries WHERE status = 'dead_letter'").await;
        let double_applied = count(
            "SELECT count(*) FROM (SELECT webhook_id FROM effect_audit GROUP BY webhook_id HAVING count(*) > 1) d",
        )
        .await;
        let tally = Self {
            scenario,
            sent,
            accepted,
            processed,
            dead_lettered,
            lost: accepted as i64 - processed - dead_lettered,
            double_applied,
        };
        tally.print();
        tally
    }

    fn print(&self) {
        println!(
            "\n| scenario | sent | accepted (200) | processed | dead-lettered | lost | double-applied |\n\
             |---|---|---|---|---|---|---|\n\
             | {} | {} | {} | {} | {} | {} | {} |",
            self.scenario,
            self.sent,
            self.accepted,
            self.processed,
            self.dead_lettered,
            self.lost,
            self.double_applied
        );
    }

    pub(crate) fn assert_nothing_lost(&self) {
        assert_eq!(self.accepted, self.sent, "{self:?}");
        assert_eq!(self.lost, 0, "{self:?}");
        assert_eq!(self.double_applied, 0, "{self:?}");
    }
}

async fn customers(db: &TestDb) -> i64 {
    db.client()
        .await
        .query_one("SELECT count(*) FROM customers", &[])
        .await
        .unwrap()
        .get(0)
}

/// A `shopify-sync worker` child process on the test's database and prefix.
pub(crate) fn start_worker(prefix: &str, db: &TestDb) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_shopify-sync"))
        .arg("worker")
        .env_clear()
        .env("DATABASE_URL", db.url())
        .env("AMQP_URL", crate::helpers::broker::amqp_url())
        .env("AMQP_PREFIX", prefix)
        .env("QUEUE_TYPE", "quorum")
        .env("RETRY_DELAYS", "200ms,400ms")
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "error")
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn worker_killed_at_random_moments(count: usize, kills: usize) -> Tally {
    let db = TestDb::new().await;
    install_effect_audit(&db).await;
    let receiver = ServeProcess::start_with("receiver", &db, &[("QUEUE_TYPE", "quorum")]).await;
    let all = webhooks(count);
    let mut worker = start_worker(&receiver.prefix, &db);

    let killer = async {
        for _ in 0..kills {
            let pause = rand::rng().random_range(200..900);
            tokio::time::sleep(Duration::from_millis(pause)).await;
            worker.start_kill().unwrap(); // SIGKILL: no chance to settle anything
            worker.wait().await.unwrap();
            worker = start_worker(&receiver.prefix, &db);
        }
    };
    let ((accepted, _), ()) = tokio::join!(send_all(&receiver.address, &all), killer);

    let tally = Tally::count(
        "worker SIGKILLed and restarted",
        &db,
        count,
        accepted,
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(
        customers(&db).await,
        tally.processed,
        "one customer per processed webhook"
    );
    let _ = worker.start_kill();
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_at_random_moments_loses_nothing_and_applies_nothing_twice() {
    worker_killed_at_random_moments(400, 3)
        .await
        .assert_nothing_lost();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 5,000 webhooks; run with --ignored"]
async fn long_a_worker_killed_at_random_moments_during_5000_webhooks() {
    let tally = worker_killed_at_random_moments(5_000, 12).await;
    tally.assert_nothing_lost();
    assert_eq!(tally.dead_lettered, 0);
}

async fn broker_cut_mid_run(count: usize) -> Tally {
    let db = TestDb::new().await;
    install_effect_audit(&db).await;
    let broker = Proxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let url = format!("amqp://guest:guest@{}/%2f", broker.addr);
    let serve = ServeProcess::start_with("serve", &db, &[("AMQP_URL", &url)]).await;
    let all = webhooks(count);

    let cutter = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        broker.cut();
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        broker.restore();
    };
    let ((accepted, refused), ()) = tokio::join!(send_all(&serve.address, &all), cutter);
    println!("refused with 503 while the broker was away, then retried: {refused}");

    let tally = Tally::count(
        "broker connection cut mid-run",
        &db,
        count,
        accepted,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(customers(&db).await, tally.processed);
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_the_broker_connection_mid_run_loses_nothing() {
    broker_cut_mid_run(400).await.assert_nothing_lost();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 5,000 webhooks; run with --ignored"]
async fn long_cutting_the_broker_connection_during_5000_webhooks() {
    broker_cut_mid_run(5_000).await.assert_nothing_lost();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_away_longer_than_the_first_tier_but_within_the_window_dead_letters_nothing() {
    let db = TestDb::new().await;
    install_effect_audit(&db).await;
    let postgres = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let url = db
        .url()
        .replace("127.0.0.1:5432", &postgres.addr.to_string());
    let serve = ServeProcess::start_with(
        "serve",
        &db,
        &[("DATABASE_URL", &url), ("RETRY_DELAYS", "300ms,1s,2s,4s")],
    )
    .await;
    let all = webhooks(300);

    postgres.cut();
    let (accepted, _) = send_all(&serve.address, &all).await;
    // Away for longer than the first tier (300 ms), shorter than the window (7.3 s).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    postgres.restore();

    let tally = Tally::count(
        "Postgres away 1.5 s",
        &db,
        all.len(),
        accepted,
        Duration::from_secs(60),
    )
    .await;
    tally.assert_nothing_lost();
    assert_eq!(
        tally.dead_lettered, 0,
        "nothing dead-lettered within the retry window"
    );
    assert!(
        metric_at(
            &serve.metrics_address,
            r#"shopify_sync_messages_total{outcome="retried",queue="customers"}"#
        )
        .await
            > 0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_versions_of_one_customer_in_random_order_with_duplicates_store_the_newest() {
    let db = TestDb::new().await;
    install_effect_audit(&db).await;
    let app = spawn_app_on(db, &[]).await;
    let versions: Vec<Webhook> = (0..100)
        .map(|v| {
            let body = fixture_with(
                "customers/update",
                &[
                    ("first_name", json!(format!("v{v}"))),
                    (
                        "updated_at",
                        json!(format!("2026-01-01T00:{:02}:{:02}Z", v / 60, v % 60)),
                    ),
                ],
            );
            Webhook::new("customers/update", body)
        })
        .collect();
    let mut sends = versions.clone();
    // Shopify's retries: 30 of them delivered twice.
    sends.extend(versions.choose_multiple(&mut rand::rng(), 30).cloned());
    sends.shuffle(&mut rand::rng());

    let (accepted, _) = send_all(&app.address, &sends).await;
    let tally = Tally::count(
        "100 versions, 30 duplicates, shuffled",
        app.db(),
        versions.len(),
        accepted - 30,
        Duration::from_secs(30),
    )
    .await;

    tally.assert_nothing_lost();
    assert_eq!(tally.processed, 100);
    let stored: String = app
        .db()
        .client()
        .await
        .query_one(
            "SELECT first_name FROM customers WHERE shopify_id = 706405506930370084",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, "v99", "the newest version wins whatever the order");
    eventually(Duration::from_secs(10), "30 duplicates counted", || async {
        (app.metric(r#"shopify_sync_messages_total{outcome="duplicate",queue="customers"}"#)
            .await
            == 30.0)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_makes_its_handler_panic_is_contained_retried_and_dead_lettered() {
    use shopify_sync::broker::{
        Publisher, Topology, WebhookMessage,
        consumer::{self, ConsumerConfig, Handler, Verdict},
    };
    use shopify_sync::{metrics::Metrics, settings::Settings, shopify::WebhookHeaders};
    use tokio_util::sync::CancellationToken;

    let prefix = crate::helpers::unique("test");
    let settings = Settings::from_vars(crate::helpers::app::test_vars(
        &prefix,
        &[("RETRY_DELAYS", "50ms,50ms")],
    ))
    .unwrap();
    let topology = Topology::new(&settings);
    let _cleanup = crate::helpers::broker::TopologyGuard(topology.clone());
    let cancel = CancellationToken::new();
    let publisher = Publisher::start(
        settings.amqp_url.clone(),
        "test".into(),
        topology.clone(),
        cancel.clone(),
    );
    assert!(publisher.wait_ready(Duration::from_secs(5)).await);
    let handled = Arc::new(AtomicUsize::new(0));
    let handler: Handler = {
        let handled = handled.clone();
        // Like a real handler's transaction, a batch has an effect only if all of it succeeds.
        Arc::new(move |messages: Vec<WebhookMessage>| {
            let handled = handled.clone();
            Box::pin(async move {
                for message in &messages {
                    assert!(!message.body.starts_with(b"{\"boom\""), "a handler bug");
                }
                handled.fetch_add(messages.len(), Ordering::SeqCst);
                vec![Verdict::Done("processed"); messages.len()]
            })
        })
    };
    let config = ConsumerConfig {
        url: settings.amqp_url.clone(),
        queue: topology.work_queue("customers"),
        label: "customers".into(),
        prefetch: 8,
    };
    let metrics = Metrics::new();
    let consumer = tokio::spawn(consumer::run(
        config,
        topology.clone(),
        publisher.clone(),
        handler,
        metrics.clone(),
        cancel.clone(),
    ));
    let broker = crate::helpers::TestBroker::new(prefix).await;
    let dead_letters = broker.probe(&topology.dead_letter(), "").await;

    let publish = |body: &'static str| {
        let mut headers = axum::http::HeaderMap::new();
        for (k, v) in [
            ("x-shopify-topic", "customers/update"),
            ("x-shopify-shop-domain", "shop.myshopify.com"),
            ("x-shopify-api-version", "2026-10"),
        ] {
            headers.insert(k, v.parse().unwrap());
        }
        headers.insert(
            "x-shopify-webhook-id",
            uuid::Uuid::new_v4().to_string().parse().unwrap(),
        );
        let message = WebhookMessage::new(
            WebhookHeaders::from_headers(&headers).unwrap(),
            body.as_bytes().to_vec(),
        );
        let (publisher, exchange) = (publisher.clone(), topology.webhooks_exchange());
        async move {
            publisher
                .publish(
                    &exchange,
                    &message.routing_key(),
                    &message.body,
                    message.properties(),
                    Duration::from_secs(5),
                )
                .await
                .unwrap()
        }
    };
    publish(r#"{"boom":true}"#).await;
    for _ in 0..20 {
        publish(r#"{"id":1}"#).await;
    }

    let dead = dead_letters
        .next(Duration::from_secs(10))
        .await
        .expect("the panicking message in dead letters");
    let headers = dead.properties.headers().as_ref().unwrap().inner().clone();
    let last_error = match headers.get("last-error") {
        Some(lapin::types::AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("last-error {other:?}"),
    };
    assert!(last_error.contains("handler panicked"), "{last_error}");
    assert_eq!(
        headers.get("retry-count"),
        Some(&lapin::types::AMQPValue::LongLongInt(3))
    );
    // The consumer survived: everything else was handled, and it still takes new messages.
    publish(r#"{"id":2}"#).await;
    eventually(Duration::from_secs(10), "the other messages", || async {
        (handled.load(Ordering::SeqCst) == 21).then_some(())
    })
    .await;
    assert!(!consumer.is_finished(), "no crash, no crash loop");
    let retried = metrics.render();
    assert!(
        retried.contains(r#"shopify_sync_messages_total{outcome="retried",queue="customers"} 2"#),
        "{retried}"
    );
    let more_dead = dead_letters.drain(Duration::from_millis(300)).await.len();
    let (processed, dead_lettered) = (handled.load(Ordering::SeqCst) as i64, 1 + more_dead as i64);
    let tally = Tally {
        scenario: "handler panics on one message",
        sent: 22,
        accepted: 22,
        processed,
        dead_lettered,
        lost: 22 - processed - dead_lettered,
        // Each message's handler ran to completion once: 21 counted, one never completed.
        double_applied: (processed - 21).max(0),
    };
    tally.print();
    tally.assert_nothing_lost();
    assert_eq!(dead_lettered, 1);

    cancel.cancel();
    consumer.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_message_in_a_batch_costs_only_itself() {
    let db = TestDb::new().await;
    install_effect_audit(&db).await;
    crate::failures::fail_customers_with_email(&db, "c7@example.com").await;
    let app = spawn_receiver(&[("QUEUE_TYPE", "quorum")]).await;
    let mut all = webhooks(60);
    // One that always fails transiently (c7), one that can never be processed (no id).
    all.push(Webhook::new(
        "customers/update",
        r#"{"email":"no-id@example.com"}"#,
    ));
    // Queued before any worker runs, so the worker takes them in batches.
    let (accepted, _) = send_all(&app.address, &all).await;
    let worker = start_worker(&app.settings.amqp_prefix, &db);

    let tally = Tally::count(
        "a bad and a failing message among 59 good ones",
        &db,
        all.len(),
        accepted,
        Duration::from_secs(30),
    )
    .await;
    drop(worker);

    tally.assert_nothing_lost();
    assert_eq!((tally.processed, tally.dead_lettered), (59, 2), "{tally:?}");
    let client = db.client().await;
    let attempts: Vec<(String, i32)> = client
        .query(
            "SELECT last_error, attempts FROM webhook_deliveries WHERE status = 'dead_letter' ORDER BY attempts",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(
        attempts[0].0.contains("missing field `id`") && attempts[0].1 == 1,
        "{attempts:?}"
    );
    assert!(
        attempts[1].0.contains("injected failure") && attempts[1].1 == 3,
        "{attempts:?}"
    );
}
