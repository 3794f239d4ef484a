//! `cargo run --release --bin bench`: measures the service against what this machine can do at
//! most, in one run, and prints a table (see BENCHMARKS.md).
//!
//! Raw limits are measured by this same program with plain lapin and tokio-postgres at the
//! concurrency and prefetch the service uses; the service runs as child processes (this binary
//! re-executed with `--role receiver|worker`), so their memory is measured per process.

mod bulk;
mod cpu;
mod load;
mod raw;
mod receiver;
mod report;
mod service;

use std::collections::HashMap;

use anyhow::Context;
use clap::Parser;
use shopify_sync::settings::Settings;

#[derive(Debug, Parser)]
pub struct Args {
    /// Webhooks per service measurement.
    #[arg(long, default_value_t = 20_000)]
    pub webhooks: usize,
    /// Concurrent HTTP connections of the load generator (closed loop).
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Lines of the generated bulk result files (customers, then orders).
    #[arg(long, default_value_t = 1_000_000)]
    pub bulk_lines: usize,
    /// Rounds of the receiver comparison (raw publishes, then the receiver); medians are
    /// reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Only these parts (with the raw limits they are compared to): receiver, e2e, bulk.
    #[arg(long, value_delimiter = ',', default_value = "receiver,e2e,bulk")]
    pub only: Vec<Part>,
    /// Run as a service process (internal).
    #[arg(long, hide = true)]
    pub role: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    Receiver,
    E2e,
    Bulk,
}

/// Everything a measurement needs to know about where it runs.
pub struct Bench {
    pub args: Args,
    pub settings: Settings,
    pub vars: HashMap<String, String>,
    pub report: report::Report,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    if let Some(role) = args.role.clone() {
        return runtime.block_on(service::run_role(&role));
    }
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let server = base.rsplit_once('/').map_or(base.as_str(), |(s, _)| s);
    let vars: HashMap<String, String> = [
        ("DATABASE_URL", format!("{server}/bench_{id}")),
        ("AMQP_PREFIX", format!("bench_{id}")),
        ("SHOPIFY_API_SECRET", "bench-secret".to_owned()),
        ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .chain(
        std::env::vars().filter(|(k, _)| k == "AMQP_URL" || k == "QUEUE_TYPE" || k == "PREFETCH"),
    )
    .collect();
    let settings = Settings::from_vars(vars.clone()).context("bench settings")?;
    shopify_sync::commands::migrate(&settings).await?;
    let mut bench = Bench {
        args,
        settings,
        vars,
        report: report::Report::default(),
    };

    let outcome = measure_all(&mut bench).await;
    service::cleanup(&bench).await;
    outcome?;
    bench.report.print(&bench);
    Ok(())
}

async fn measure_all(bench: &mut Bench) -> anyhow::Result<()> {
    let only = bench.args.only.clone();
    if only.contains(&Part::Receiver) {
        receiver::compare(bench).await?;
    }
    if only.contains(&Part::E2e) {
        cpu::settle().await;
        let ceiling = raw::transaction_ceiling(bench).await?;
        cpu::settle().await;
        service::end_to_end(bench, ceiling).await?;
    }
    if only.contains(&Part::Bulk) {
        let customers = raw::copy_customers(bench).await?;
        let orders = raw::copy_orders(bench).await?;
        bulk::measure(bench, customers, orders).await?;
    }
    Ok(())
}
