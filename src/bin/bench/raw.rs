//! The machine's limits, measured with plain lapin and tokio-postgres.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable},
};
use secrecy::ExposeSecret;
use shopify_sync::{
    db::{self, deliveries},
    handlers,
    settings::QueueType,
    shopify::{ShopDomain, Topic, WebhookHeaders, WebhookId},
};

use super::{
    Bench,
    report::{per_second, rate},
};

pub const SHOP: &str = "bench-shop.myshopify.com";

/// A realistic customer webhook body for customer `id` (Shopify's sample with its id replaced).
pub fn customer_body(id: i64) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(include_bytes!(
        "../../../tests/fixtures/webhooks/customers__update.json"
    ))
    .expect("the fixture is JSON");
    value["id"] = id.into();
    value["email"] = format!("c{id}@example.com").into();
    serde_json::to_vec_pretty(&value).expect("serialises")
}

fn raw_queue(bench: &Bench) -> String {
    format!("{}.bench.raw", bench.settings.amqp_prefix)
}

async fn connect(bench: &Bench) -> anyhow::Result<Connection> {
    Connection::connect(
        bench.settings.amqp_url.expose_secret(),
        ConnectionProperties::default(),
    )
    .await
    .context("RabbitMQ")
}

/// Publish-with-confirm rate on one channel with `connections` publishes in flight, the way the
/// receiver publishes under that many concurrent requests, into a queue of the service's type.
pub async fn publish_confirm(bench: &mut Bench) -> anyhow::Result<f64> {
    let connection = connect(bench).await?;
    let channel = connection.create_channel().await?;
    let mut args = FieldTable::default();
    let kind = match bench.settings.queue_type {
        QueueType::Quorum => "quorum",
        QueueType::Classic => "classic",
    };
    args.insert("x-queue-type".into(), AMQPValue::LongString(kind.into()));
    channel
        .queue_declare(
            raw_queue(bench).as_str().into(),
            QueueDeclareOptions::durable(),
            args,
        )
        .await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let body = Arc::new(customer_body(1));
    let total = bench.args.webhooks;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..bench.args.connections {
        let (channel, body, next, queue) = (
            channel.clone(),
            body.clone(),
            next.clone(),
            raw_queue(bench),
        );
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let confirm = channel
                    .basic_publish(
                        "".into(),
                        queue.as_str().into(),
                        BasicPublishOptions::default(),
                        &body,
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await?
                    .await?;
                anyhow::ensure!(confirm.is_ack(), "nacked");
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let value = rate(total, started.elapsed().as_secs_f64());
    bench.report.add(
        "raw: lapin publish with confirm",
        per_second(value),
        &format!(
            "{} in flight on one channel, {} B bodies, persistent",
            bench.args.connections,
            body.len()
        ),
    );
    let _ = connection.close(200, "done".into()).await;
    Ok(value)
}

/// Consume + ack rate of the messages the publish measurement left, at the service's prefetch.
pub async fn consume_ack(bench: &mut Bench) -> anyhow::Result<f64> {
    let connection = connect(bench).await?;
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(bench.settings.prefetch, BasicQosOptions { global: false })
        .await?;
    let queue = raw_queue(bench);
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let started = Instant::now();
    for _ in 0..bench.args.webhooks {
        let delivery = consumer.next().await.context("consumer ended")??;
        delivery.ack(BasicAckOptions::default()).await?;
    }
    let value = rate(bench.args.webhooks, started.elapsed().as_secs_f64());
    bench.report.add(
        "raw: lapin consume + ack",
        per_second(value),
        &format!("prefetch {}", bench.settings.prefetch),
    );
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await?;
    let _ = connection.close(200, "done".into()).await;
    Ok(value)
}

/// One transaction per webhook doing what the worker does — delivery row, customer upsert,
/// status — with as many in parallel as the worker's pool has connections.
pub async fn transaction_ceiling(bench: &mut Bench) -> anyhow::Result<f64> {
    let pool = db::pool(&bench.settings.database, bench.settings.database_pool_size);
    let total = bench.args.webhooks;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..bench.settings.database_pool_size {
        let (pool, next) = (pool.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<(), anyhow::Error>(());
                }
                let headers = WebhookHeaders {
                    topic: Topic::parse("customers/update").expect("topic"),
                    shop: ShopDomain::parse(SHOP).expect("shop"),
                    webhook_id: WebhookId::parse(&format!("raw-{i}")).expect("id"),
                    api_version: "2026-10".into(),
                    event_id: None,
                    triggered_at: None,
                    sub_topic: None,
                    name: None,
                };
                let body = customer_body(10_000_000 + i as i64);
                let mut client = pool.get().await?;
                let tx = client.transaction().await?;
                let new = deliveries::NewDelivery::new(&headers, &body, 0);
                if let deliveries::Begin::Started(delivery) = deliveries::begin(&tx, &new).await? {
                    let outcome = handlers::handle(&tx, &delivery, &body).await?;
                    deliveries::finish(&tx, delivery.id, outcome.finished()).await?;
                }
                tx.commit().await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let value = rate(total, started.elapsed().as_secs_f64());
    bench.report.add(
        "raw: Postgres, one transaction per webhook",
        per_second(value),
        &format!(
            "delivery row + customer upsert + status, {} in parallel",
            bench.settings.database_pool_size
        ),
    );
    truncate(bench).await?;
    Ok(value)
}

/// `COPY` into the customers table: the ceiling of bulk loading.
pub async fn copy_rows(bench: &mut Bench) -> anyhow::Result<f64> {
    let pool = db::pool(&bench.settings.database, 1);
    let client = pool.get().await?;
    let shop_id =
        db::shops::get_or_create(&client, &ShopDomain::parse(SHOP).expect("shop")).await?;
    let rows = 200_000usize;
    let started = Instant::now();
    let sink = client
        .copy_in("COPY customers (shop_id, shopify_id, email, first_name, last_name, state, shopify_updated_at, raw) FROM STDIN")
        .await?;
    let mut sink = Box::pin(sink);
    let mut buffer = Vec::with_capacity(1 << 20);
    for i in 0..rows {
        use std::io::Write;
        writeln!(
            buffer,
            "{shop_id}\t{}\tc{i}@example.com\tBob\tBiller\tenabled\t2026-01-01 00:00:00+00\t{{\"id\": {}}}",
            20_000_000 + i,
            20_000_000 + i
        )?;
        if buffer.len() > (1 << 20) - 256 {
            sink.send(bytes::Bytes::from(std::mem::take(&mut buffer)))
                .await?;
        }
    }
    sink.send(bytes::Bytes::from(buffer)).await?;
    sink.as_mut().finish().await?;
    let value = rate(rows, started.elapsed().as_secs_f64());
    bench.report.add(
        "raw: COPY into customers",
        per_second(value),
        &format!("{rows} rows, one connection"),
    );
    truncate(bench).await?;
    Ok(value)
}

async fn truncate(bench: &Bench) -> anyhow::Result<()> {
    let pool = db::pool(&bench.settings.database, 1);
    pool.get()
        .await?
        .batch_execute("TRUNCATE customers, orders, webhook_deliveries")
        .await?;
    Ok(())
}
