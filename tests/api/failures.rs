//! The failure path: delayed retries through the tier queues, dead letters, and replay.
//!
//! Failures are real Postgres errors: a trigger in the test's database raises a serialization
//! failure (SQLSTATE 40001, which the service rightly treats as transient) for chosen rows.

use std::time::Duration;

use futures::StreamExt;
use lapin::{
    options::{BasicAckOptions, BasicConsumeOptions},
    types::{AMQPValue, FieldTable},
};
use serde_json::json;
use tokio::time::Instant;

use crate::handlers::fixture_with;
use crate::helpers::{TestApp, Webhook, spawn_app};

/// Makes every write of a customer with this email fail transiently.
pub async fn fail_customers_with_email(db: &crate::helpers::TestDb, email: &str) {
    db.client()
        .await
        .batch_execute(&format!(
            "CREATE FUNCTION fail_customer() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.email = '{email}' THEN
                 RAISE EXCEPTION 'injected failure' USING ERRCODE = '40001';
               END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER fail_customer BEFORE INSERT OR UPDATE ON customers
               FOR EACH ROW EXECUTE FUNCTION fail_customer();"
        ))
        .await
        .unwrap();
}

/// Also makes every write of its delivery row fail, except the dead-letter record itself: no
/// earlier attempt can write the row.
async fn fail_delivery_rows_except_dead_letters(app: &TestApp, webhook_id: &str) {
    app.db()
        .client()
        .await
        .batch_execute(&format!(
            "CREATE FUNCTION fail_delivery() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.webhook_id = '{webhook_id}' AND NEW.status <> 'dead_letter' THEN
                 RAISE EXCEPTION 'injected failure' USING ERRCODE = '40001';
               END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER fail_delivery BEFORE INSERT OR UPDATE ON webhook_deliveries
               FOR EACH ROW EXECUTE FUNCTION fail_delivery();"
        ))
        .await
        .unwrap();
}

fn customer(email: &str) -> Vec<u8> {
    fixture_with(
        "customers/create",
        &[
            ("email", json!(email)),
            ("updated_at", json!("2026-01-01T00:00:00Z")),
        ],
    )
}

#[tokio::test]
async fn a_webhook_that_always_fails_is_a_dead_letter_after_exactly_one_plus_tiers_attempts() {
    let app = spawn_app(&[("RETRY_DELAYS", "100ms,200ms")]).await;
    fail_customers_with_email(app.db(), "doomed@example.com").await;
    let webhook = Webhook::new("customers/create", customer("doomed@example.com"));

    app.accept(&webhook).await;
    let dead = app
        .wait_for_status(&webhook.webhook_id, "dead_letter")
        .await;

    assert_eq!(dead.attempts, 3, "1 + len(RETRY_DELAYS)");
    assert!(dead.last_error.unwrap().contains("injected failure"));
    assert_eq!(dead.payload.unwrap()["email"], "doomed@example.com");
    assert!(dead.dead_lettered_at.is_some());
    assert_eq!(
        app.metric(r#"shopify_sync_messages_total{outcome="retried",queue="customers"}"#)
            .await,
        2.0
    );
    assert_eq!(
        app.metric(r#"shopify_sync_dead_letters_total{topic="customers/create"}"#)
            .await,
        1.0
    );
}

#[tokio::test]
async fn a_dead_letter_is_recorded_even_when_no_earlier_attempt_could_write_its_row() {
    let app = spawn_app(&[("RETRY_DELAYS", "100ms,200ms")]).await;
    let webhook = Webhook::new("customers/create", customer("anyone@example.com"));
    fail_delivery_rows_except_dead_letters(&app, &webhook.webhook_id).await;

    app.accept(&webhook).await;
    let dead = app
        .wait_for_status(&webhook.webhook_id, "dead_letter")
        .await;

    assert_eq!(dead.attempts, 3);
    assert!(dead.last_error.unwrap().contains("injected failure"));
    assert_eq!(dead.payload.unwrap()["email"], "anyone@example.com");
}

#[tokio::test]
async fn retries_come_back_in_order_and_no_sooner_than_each_tiers_delay() {
    let tiers = [Duration::from_millis(300), Duration::from_millis(600)];
    let app = spawn_app(&[("RETRY_DELAYS", "300ms,600ms")]).await;
    fail_customers_with_email(app.db(), "slow@example.com").await;
    // Every attempt passes through the webhooks exchange: the original, then each expired retry.
    let probe = app
        .broker
        .probe(&app.topology.webhooks_exchange(), "#")
        .await;
    let mut consumer = app
        .broker
        .channel
        .basic_consume(
            probe.name.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let webhook = Webhook::new("customers/create", customer("slow@example.com"));

    app.accept(&webhook).await;
    let mut arrivals = vec![];
    for _ in 0..3 {
        let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("an attempt")
            .unwrap()
            .unwrap();
        let retry_count = match delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("retry-count").cloned())
        {
            Some(AMQPValue::LongLongInt(n)) => n,
            None => 0,
            other => panic!("retry-count {other:?}"),
        };
        arrivals.push((retry_count, Instant::now()));
        delivery.ack(BasicAckOptions::default()).await.unwrap();
    }

    let counts: Vec<i64> = arrivals.iter().map(|(c, _)| *c).collect();
    assert_eq!(counts, [0, 1, 2], "attempts in order");
    for (tier, pair) in arrivals.windows(2).enumerate() {
        let waited = pair[1].1 - pair[0].1;
        assert!(
            waited >= tiers[tier],
            "tier {tier} came back after {waited:?}, its delay is {:?}",
            tiers[tier]
        );
    }
    app.wait_for_status(&webhook.webhook_id, "dead_letter")
        .await;
}

#[tokio::test]
async fn a_permanent_error_is_dead_lettered_on_its_first_attempt_with_the_reason() {
    let app = spawn_app(&[]).await;
    let webhook = Webhook::new("customers/update", r#"{"email":"no-id@example.com"}"#);

    app.accept(&webhook).await;
    let dead = app
        .wait_for_status(&webhook.webhook_id, "dead_letter")
        .await;

    assert_eq!(dead.attempts, 1);
    let error = dead.last_error.unwrap();
    assert!(error.contains("missing field `id`"), "{error}");
    assert_eq!(
        app.metric(r#"shopify_sync_messages_total{outcome="retried",queue="customers"}"#)
            .await,
        0.0
    );
}

#[tokio::test]
async fn replay_of_a_dead_letter_whose_cause_was_fixed_ends_processed() {
    let app = spawn_app(&[("RETRY_DELAYS", "100ms")]).await;
    fail_customers_with_email(app.db(), "later@example.com").await;
    let webhook = Webhook::new("customers/create", customer("later@example.com"));
    app.accept(&webhook).await;
    app.wait_for_status(&webhook.webhook_id, "dead_letter")
        .await;

    // The cause is fixed.
    app.db()
        .client()
        .await
        .batch_execute("DROP TRIGGER fail_customer ON customers")
        .await
        .unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_shopify-sync"))
        .args(["replay", "--dead-letters", "--topic", "customers/create"])
        .env("DATABASE_URL", app.db().url())
        .env("AMQP_PREFIX", &app.settings.amqp_prefix)
        .env("AMQP_URL", crate::helpers::broker::amqp_url())
        .env("QUEUE_TYPE", "classic")
        .env("RETRY_DELAYS", "100ms")
        .output()
        .await
        .unwrap();

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "replayed 1");
    app.wait_for_status(&webhook.webhook_id, "processed").await;
    let email: String = app
        .db()
        .client()
        .await
        .query_one(
            "SELECT email FROM customers WHERE shopify_id = 706405506930370084",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(email, "later@example.com");
}

#[tokio::test]
async fn deliveries_lists_what_happened() {
    let app = spawn_app(&[]).await;
    let webhook = Webhook::new("customers/update", r#"{"email":"no-id@example.com"}"#);
    app.accept(&webhook).await;
    app.wait_for_status(&webhook.webhook_id, "dead_letter")
        .await;

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_shopify-sync"))
        .args(["deliveries", "--status", "dead_letter"])
        .env("DATABASE_URL", app.db().url())
        .output()
        .await
        .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.contains(&webhook.webhook_id))
        .expect(&stdout);
    assert!(
        line.contains("customers/update")
            && line.contains("dead_letter")
            && line.contains("missing field"),
        "{line}"
    );
}

#[tokio::test]
async fn while_postgres_is_down_the_dead_letter_waits_and_is_recorded_when_it_returns() {
    let test_db = crate::helpers::TestDb::new().await;
    let postgres = crate::helpers::Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let url = test_db
        .url()
        .replace("127.0.0.1:5432", &postgres.addr.to_string());
    let app = crate::helpers::app::spawn_app_on(
        test_db,
        &[("DATABASE_URL", &url), ("RETRY_DELAYS", "50ms,50ms")],
    )
    .await;
    postgres.cut();

    let webhook = Webhook::new("customers/create", customer("while-down@example.com"));
    app.accept(&webhook).await;
    // Every attempt fails while Postgres is away; the last one reaches the dead-letter consumer,
    // which cannot record it either and keeps it.
    crate::helpers::eventually(
        Duration::from_secs(10),
        "the dead letter to be held",
        || async {
            (app.metric(
                r#"shopify_sync_messages_total{outcome="dead_lettered",queue="customers"}"#,
            )
            .await
                == 1.0)
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        app.delivery(&webhook.webhook_id).await.is_none(),
        "nothing could be written yet"
    );

    postgres.restore();
    let dead = app
        .wait_for_status(&webhook.webhook_id, "dead_letter")
        .await;

    assert_eq!(dead.attempts, 3);
    assert_eq!(dead.payload.unwrap()["email"], "while-down@example.com");
}
