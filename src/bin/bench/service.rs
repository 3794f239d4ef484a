//! The service under load, as separate processes: this binary re-executed with `--role`.

use std::{
    net::SocketAddr,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::Context;
use shopify_sync::{
    app::{App, Components},
    broker::Topology,
    settings::Settings,
    worker,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use super::{
    Bench,
    cpu::{Meter, Source, Split},
    load,
    report::{per_second, rate},
};

/// Runs one part of the service until SIGTERM, announcing its addresses on stdout.
pub async fn run_role(role: &str) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let components = match role {
        "receiver" => Components {
            receiver: true,
            workers: None,
            scheduler: false,
        },
        "worker" => Components {
            receiver: false,
            workers: Some(worker::all_families()),
            scheduler: false,
        },
        other => {
            // `import:<resource>:<lines>`: one bulk import, in a process of its own.
            let mut parts = other.split(':');
            let (Some("import"), Some(resource), Some(lines)) =
                (parts.next(), parts.next(), parts.next())
            else {
                anyhow::bail!("unknown role {other}");
            };
            return super::bulk::run(&settings, resource, lines.parse()?).await;
        }
    };
    let cancel = CancellationToken::new();
    let app = App::start(settings, components, cancel.clone()).await?;
    println!(
        "READY {} {}",
        app.http_addr
            .map_or_else(|| "-".to_owned(), |a| a.to_string()),
        app.metrics_addr
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        term.recv().await;
        cancel.cancel();
    });
    app.run_until_stopped().await
}

struct Process {
    child: tokio::process::Child,
    http: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
}

impl Process {
    async fn start(bench: &Bench, role: &str) -> anyhow::Result<Self> {
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .args(["--role", role])
            .envs(&bench.vars)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("the service did not start")??
            .context("the service exited")?;
        let http = line.split_whitespace().nth(1).and_then(|a| a.parse().ok());
        let metrics = line.split_whitespace().nth(2).and_then(|a| a.parse().ok());
        Ok(Self {
            child,
            http,
            metrics,
        })
    }

    /// Sum of a metric's samples whose line starts with `prefix` and holds `label`, from the
    /// process's `/metrics`.
    async fn metric_sum(&self, prefix: &str, label: &str) -> f64 {
        let Some(addr) = self.metrics else { return 0.0 };
        static CLIENT: std::sync::LazyLock<reqwest::Client> =
            std::sync::LazyLock::new(reqwest::Client::new);
        let Ok(response) = CLIENT.get(format!("http://{addr}/metrics")).send().await else {
            return 0.0;
        };
        response
            .text()
            .await
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(prefix) && l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn cpu(&self) -> Source {
        Source::Pid(self.child.id().unwrap_or(0))
    }

    /// (current RSS, peak RSS) in MiB, from /proc.
    fn memory(&self) -> (f64, f64) {
        let status = self
            .child
            .id()
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-s", "TERM", &pid.to_string()])
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(35), self.child.wait()).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// One closed-loop load of the receiver alone.
pub struct ReceiverRun {
    pub rate: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// Publish to confirm, inside the receiver (its `publish_duration` histogram's mean).
    pub confirm_wait: Duration,
    pub cpu: Split,
    /// RSS in MiB before the load and at its peak.
    pub rss_idle: f64,
    pub rss_peak: f64,
}

/// The receiver alone, in a process of its own, under closed-loop load from `connections`
/// keep-alive connections; its queues are purged afterwards.
pub async fn receiver_load(bench: &Bench) -> anyhow::Result<ReceiverRun> {
    let receiver = Process::start(bench, "receiver").await?;
    let (rss_idle, _) = receiver.memory();
    let address = receiver.http.context("receiver address")?;
    let requests = load::requests(address, 1, bench.args.webhooks);
    super::cpu::settle().await;
    let meter = Meter::start(&[
        ("receiver", receiver.cpu()),
        ("load generator", Source::Pid(std::process::id())),
        ("RabbitMQ", Source::Named("beam.smp")),
    ]);
    let load::Load {
        mut latencies,
        took,
    } = load::run(address, bench.args.connections, requests).await?;
    let cpu = meter.split(latencies.len());
    let (_, rss_peak) = receiver.memory();
    let waited = receiver
        .metric_sum("shopify_sync_publish_duration_seconds_sum", "")
        .await;
    let published = receiver
        .metric_sum("shopify_sync_publish_duration_seconds_count", "")
        .await;
    latencies.sort();
    let run = ReceiverRun {
        rate: rate(latencies.len(), took.as_secs_f64()),
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        confirm_wait: Duration::from_secs_f64(waited / published.max(1.0)),
        cpu,
        rss_idle,
        rss_peak,
    };
    // The next measurement starts from empty queues.
    purge(bench).await?;
    receiver.stop().await;
    Ok(run)
}

/// POST to `processed` row, with receiver and worker running; against the one-transaction-per-
/// webhook ceiling.
pub async fn end_to_end(bench: &mut Bench, ceiling: f64) -> anyhow::Result<f64> {
    let receiver = Process::start(bench, "receiver").await?;
    let worker = Process::start(bench, "worker").await?;
    let (idle, _) = worker.memory();
    let address = receiver.http.context("receiver address")?;
    let total = bench.args.webhooks;
    let pool = shopify_sync::db::pool(&bench.settings.database, 1);
    let client = pool.get().await?;
    let requests = load::requests(address, 1_000_000, total);
    super::cpu::settle().await;
    let meter = Meter::start(&[
        ("receiver", receiver.cpu()),
        ("worker", worker.cpu()),
        ("load generator", Source::Pid(std::process::id())),
        ("RabbitMQ", Source::Named("beam.smp")),
        ("Postgres", Source::Named("postgres")),
    ]);
    let started = Instant::now();
    load::run(address, bench.args.connections, requests).await?;
    // The worker's own count (after commit and ack) is polled, not Postgres, so the polling
    // costs the database nothing; the rows are counted once at the end.
    loop {
        let acked = worker
            .metric_sum("shopify_sync_messages_total{", "outcome=\"processed\"")
            .await;
        if acked as usize >= total {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "only {acked} of {total} processed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    let done: i64 = client
        .query_one("SELECT count(*) FROM webhook_deliveries WHERE status = 'processed' AND webhook_id LIKE 'bench-%'", &[])
        .await?
        .get(0);
    anyhow::ensure!(
        done as usize == total,
        "{done} of {total} rows are processed"
    );
    let (_, peak) = worker.memory();
    let batched = worker.metric_sum("shopify_sync_batch_size_sum", "").await;
    let batches = worker.metric_sum("shopify_sync_batch_size_count", "").await;
    let value = rate(total, took.as_secs_f64());
    bench.report.add(
        "end to end: POST → processed row",
        per_second(value),
        "receiver + worker processes",
    );
    bench.report.add(
        "end to end / transaction ceiling",
        format!("{:.2}×", value / ceiling),
        "goal ≥ 1.4×",
    );
    bench
        .report
        .add("end to end: CPU per webhook", meter.per_item(total), "");
    bench.report.add(
        "worker: mean batch (messages per transaction)",
        format!("{:.1}", batched / batches.max(1.0)),
        "",
    );
    bench.report.add(
        "worker RSS idle / peak under load",
        format!("{idle:.1} / {peak:.1} MiB"),
        "goal ≤ 32 MiB",
    );
    worker.stop().await;
    receiver.stop().await;
    Ok(value)
}

pub async fn purge(bench: &Bench) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    let connection = lapin::Connection::connect(
        bench.settings.amqp_url.expose_secret(),
        lapin::ConnectionProperties::default(),
    )
    .await?;
    let channel = connection.create_channel().await?;
    for queue in Topology::new(&bench.settings).queue_names() {
        let _ = channel
            .queue_purge(queue.as_str().into(), Default::default())
            .await;
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}

/// Deletes the bench's queues, exchanges and database.
pub async fn cleanup(bench: &Bench) {
    use secrecy::ExposeSecret;
    let topology = Topology::new(&bench.settings);
    if let Ok(connection) = lapin::Connection::connect(
        bench.settings.amqp_url.expose_secret(),
        lapin::ConnectionProperties::default(),
    )
    .await
    {
        for queue in topology
            .queue_names()
            .into_iter()
            .chain([format!("{}.bench.raw", bench.settings.amqp_prefix)])
        {
            if let Ok(channel) = connection.create_channel().await {
                let _ = channel
                    .queue_delete(queue.as_str().into(), Default::default())
                    .await;
            }
        }
        for exchange in topology.exchange_names() {
            if let Ok(channel) = connection.create_channel().await {
                let _ = channel
                    .exchange_delete(exchange.as_str().into(), Default::default())
                    .await;
            }
        }
        let _ = connection.close(200, "done".into()).await;
    }
    let mut admin = bench.settings.database.clone();
    admin.dbname("postgres");
    if let Ok((client, connection)) = admin.connect(tokio_postgres::NoTls).await {
        tokio::spawn(connection);
        let name = bench.settings.database_name();
        let _ = client
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await;
    }
}
