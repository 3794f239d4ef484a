//! The machine's limits, measured with plain lapin and tokio-postgres.

use std::{
    io::Write,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use anyhow::Context;

use futures::{SinkExt, StreamExt};
use lapin::{
    BasicProperties, Confirmation, Connection, ConnectionProperties,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable},
};
use secrecy::ExposeSecret;
use shopify_sync::{
    broker::{Topology, WebhookMessage},
    db::{self, deliveries},
    handlers,
    settings::QueueType,
    shopify::{ShopDomain, Topic, WebhookHeaders, WebhookId},
};

use super::{
    Bench, cpu,
    cpu::{Meter, Source},
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

/// Where the raw publish measurement sends its messages.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// A bare persistent message to a queue through the default exchange: the broker's cheapest.
    Bare,
    /// The receiver's own messages (the contract's properties and headers, `mandatory`) to the
    /// service's topic exchange, declared as the service declares it.
    AsTheService,
}

impl Publish {
    /// The report's row for this kind of publish.
    pub fn label(self) -> &'static str {
        match self {
            Self::Bare => "raw: lapin publish with confirm",
            Self::AsTheService => "raw: lapin publish with confirm, the service's messages",
        }
    }

    /// What the row measures.
    pub fn note(self, bench: &Bench) -> String {
        match self {
            Self::Bare => format!(
                "{} in flight on one channel, {} B bodies, persistent, default exchange",
                bench.args.connections,
                customer_body(1).len()
            ),
            Self::AsTheService => {
                "same, with the contract's headers, mandatory, via the topic exchange".to_owned()
            }
        }
    }
}

/// One publish measurement: its rate and the CPU per message of lapin and RabbitMQ.
pub struct Published {
    pub rate: f64,
    pub cpu: cpu::Split,
}

/// Publish-with-confirm rate on one channel with `connections` publishes in flight, the way the
/// receiver publishes under that many concurrent requests, into queues of the service's type.
pub async fn publish_confirm(bench: &Bench, kind: Publish) -> anyhow::Result<Published> {
    let connection = connect(bench).await?;
    let channel = connection.create_channel().await?;
    let mut args = FieldTable::default();
    let queue_type = match bench.settings.queue_type {
        QueueType::Quorum => "quorum",
        QueueType::Classic => "classic",
    };
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(queue_type.into()),
    );
    channel
        .queue_declare(
            raw_queue(bench).as_str().into(),
            QueueDeclareOptions::durable(),
            args,
        )
        .await?;
    let topology = Topology::new(&bench.settings);
    topology.declare(&channel).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let body = Arc::new(customer_body(1));
    let (exchange, routing_key, options) = match kind {
        Publish::Bare => (
            String::new(),
            raw_queue(bench),
            BasicPublishOptions::default(),
        ),
        Publish::AsTheService => (
            topology.webhooks_exchange(),
            "customers.update".to_owned(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
        ),
    };
    let total = bench.args.webhooks;
    let next = Arc::new(AtomicUsize::new(0));
    let meter = Meter::start(&[
        ("lapin", Source::Pid(std::process::id())),
        ("RabbitMQ", Source::Named("beam.smp")),
    ]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..bench.args.connections {
        let (channel, body, next) = (channel.clone(), body.clone(), next.clone());
        let (exchange, routing_key) = (exchange.clone(), routing_key.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<(), anyhow::Error>(());
                }
                let properties = match kind {
                    Publish::Bare => BasicProperties::default().with_delivery_mode(2),
                    Publish::AsTheService => service_message(i, &body).properties(),
                };
                let confirm = channel
                    .basic_publish(
                        exchange.as_str().into(),
                        routing_key.as_str().into(),
                        options,
                        &body,
                        properties,
                    )
                    .await?
                    .await?;
                anyhow::ensure!(
                    matches!(confirm, Confirmation::Ack(None)),
                    "not confirmed: {confirm:?}"
                );
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let published = Published {
        rate: rate(total, started.elapsed().as_secs_f64()),
        cpu: meter.split(total),
    };
    let _ = connection.close(200, "done".into()).await;
    Ok(published)
}

/// The headers of raw customer webhook `i`.
fn raw_headers(i: usize) -> WebhookHeaders {
    WebhookHeaders {
        topic: Topic::parse("customers/update").expect("topic"),
        shop: ShopDomain::parse(SHOP).expect("shop"),
        webhook_id: WebhookId::parse(&format!("raw-{i}")).expect("id"),
        api_version: "2026-10".into(),
        event_id: None,
        triggered_at: None,
        sub_topic: None,
        name: None,
    }
}

/// The message the receiver makes of customer webhook `i`.
fn service_message(i: usize, body: &[u8]) -> WebhookMessage {
    WebhookMessage::new(raw_headers(i), body.to_vec())
}

/// Consume + ack rate of the messages the publish measurement left, at the service's prefetch.
pub async fn consume_ack(bench: &Bench) -> anyhow::Result<f64> {
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
    let meter = Meter::start(&[
        ("client", Source::Pid(std::process::id())),
        ("Postgres", Source::Named("postgres")),
    ]);
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
                let headers = raw_headers(i);
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
    bench.report.add(
        "raw transactions: CPU per webhook",
        meter.per_item(total),
        "",
    );
    truncate(bench).await?;
    Ok(value)
}

/// `COPY` into the customers table: the ceiling of bulk loading customers.
pub async fn copy_customers(bench: &mut Bench) -> anyhow::Result<f64> {
    copy_rows(
        bench,
        "customers",
        "shop_id, shopify_id, email, first_name, last_name, state, shopify_updated_at, raw",
        |buffer, shop_id, i| {
            writeln!(
                buffer,
                "{shop_id}\t{}\tc{i}@example.com\tBob\tBiller\tenabled\t2026-01-01 00:00:00+00\t{{\"id\": {}}}",
                20_000_000 + i,
                20_000_000 + i
            )
        },
    )
    .await
}

/// `COPY` into the orders table of the columns the import writes, each row as wide as the
/// import's: the order line of the bench's result file as `raw`.
pub async fn copy_orders(bench: &mut Bench) -> anyhow::Result<f64> {
    copy_rows(
        bench,
        "orders",
        "shop_id, shopify_id, customer_shopify_id, name, email, financial_status, \
         fulfillment_status, currency, total_price, cancelled_at, shopify_created_at, \
         shopify_updated_at, raw",
        |buffer, shop_id, i| {
            let id = i + 1;
            // The bench file's order line; it holds no backslash or tab to escape for COPY.
            let raw = super::bulk::line("orders", 2 * i);
            write!(
                buffer,
                "{shop_id}\t{id}\t{id}\t#{id}\to{id}@example.com\tpaid\tfulfilled\tEUR\t{id}.95\t\\N\t\
                 2026-01-01 00:00:00+00\t2026-05-01 00:00:00+00\t{raw}"
            )
        },
    )
    .await
}

/// `rows` lines of COPY text from `row` into `table`, on one connection; rows/s.
async fn copy_rows(
    bench: &mut Bench,
    table: &str,
    columns: &str,
    row: impl Fn(&mut Vec<u8>, i64, usize) -> std::io::Result<()>,
) -> anyhow::Result<f64> {
    let pool = db::pool(&bench.settings.database, 1);
    let client = pool.get().await?;
    let shop_id =
        db::shops::get_or_create(&client, &ShopDomain::parse(SHOP).expect("shop")).await?;
    let rows = 200_000usize;
    quiet(bench).await?;
    let meter = Meter::start(&[
        ("client", Source::Pid(std::process::id())),
        ("Postgres", Source::Named("postgres")),
    ]);
    let started = Instant::now();
    let sink = client
        .copy_in(&format!("COPY {table} ({columns}) FROM STDIN"))
        .await?;
    let mut sink = Box::pin(sink);
    let mut buffer = Vec::with_capacity(1 << 20);
    for i in 0..rows {
        row(&mut buffer, shop_id, i)?;
        if buffer.len() > (1 << 20) - 1024 {
            sink.send(bytes::Bytes::from(std::mem::take(&mut buffer)))
                .await?;
        }
    }
    sink.send(bytes::Bytes::from(buffer)).await?;
    sink.as_mut().finish().await?;
    let value = rate(rows, started.elapsed().as_secs_f64());
    bench.report.add(
        &format!("raw: COPY into {table}"),
        per_second(value),
        &format!("{rows} rows, one connection"),
    );
    bench.report.add(
        &format!("raw: COPY into {table}: CPU per row"),
        meter.per_item_tenths(rows),
        "",
    );
    truncate(bench).await?;
    Ok(value)
}

/// A checkpoint, then an idle broker and database: each bulk measurement starts with no dirty
/// buffers or pending WAL of the one before.
pub async fn quiet(bench: &Bench) -> anyhow::Result<()> {
    let pool = db::pool(&bench.settings.database, 1);
    pool.get().await?.batch_execute("CHECKPOINT").await?;
    cpu::settle().await;
    Ok(())
}

async fn truncate(bench: &Bench) -> anyhow::Result<()> {
    let pool = db::pool(&bench.settings.database, 1);
    pool.get()
        .await?
        .batch_execute("TRUNCATE customers, orders, webhook_deliveries")
        .await?;
    Ok(())
}
