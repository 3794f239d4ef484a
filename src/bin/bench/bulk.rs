//! The bulk import on a generated JSONL file: generated and served over local HTTP by the
//! measuring process (streamed, never held), imported with the service's own importer in a
//! process of its own, so its CPU and memory are its own.

use std::{process::Stdio, time::Duration, time::Instant};

use anyhow::Context;
use axum::{Router, body::Body, extract::Path, routing::get};
use shopify_sync::{db, db::sync_logs::Resource, metrics::Metrics, shopify::ShopDomain, sync};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{
    Bench,
    cpu::{Meter, Source},
    report::per_second,
};

/// Where the import process finds the file (set by [`measure`] for the child).
const FILE_URL: &str = "BENCH_BULK_FILE_URL";

/// The bulk import of a generated file per resource, each in a process of its own, against
/// COPY into the same table.
pub async fn measure(
    bench: &mut Bench,
    copy_customers: f64,
    copy_orders: f64,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new().route(
        "/{resource}/{lines}",
        get(
            |Path((resource, lines)): Path<(String, usize)>| async move {
                Body::from_stream(file(resource, lines))
            },
        ),
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    for (resource, copy) in [("customers", copy_customers), ("orders", copy_orders)] {
        super::raw::quiet(bench).await?;
        let lines = bench.args.bulk_lines;
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .args(["--role", &format!("import:{resource}:{lines}")])
            .envs(&bench.vars)
            .env(FILE_URL, format!("http://{addr}/{resource}/{lines}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().context("import pid")?;
        let meter = Meter::start(&[
            ("importer", Source::Pid(pid)),
            ("Postgres", Source::Named("postgres")),
            ("file generator", Source::Pid(std::process::id())),
        ]);
        let mut out = BufReader::new(child.stdout.take().context("stdout")?).lines();
        // The peak is read while the process runs (/proc forgets it once the process is reaped);
        // the CPU is read before the process lets its connections go (when its stdin closes), as
        // an exited backend's CPU leaves /proc too.
        let mut peak = 0.0f64;
        let line = loop {
            tokio::select! {
                line = out.next_line() => break line?.context("the import printed nothing")?,
                () = tokio::time::sleep(Duration::from_millis(100)) => peak = peak.max(peak_rss_mib(pid)),
            }
        };
        peak = peak.max(peak_rss_mib(pid));
        let mut fields = line.split_whitespace();
        let rows: f64 = fields.next().context("rows/s")?.parse()?;
        let buffered: f64 = fields.next().context("buffered")?.parse()?;
        let records: usize = fields.next().context("records")?.parse()?;
        let cpu = meter.per_item_tenths(records);
        drop(child.stdin.take());
        anyhow::ensure!(
            child.wait().await?.success(),
            "the {resource} import failed"
        );
        let what = if resource == "orders" {
            "orders (each + 1 line item)"
        } else {
            "customers"
        };
        bench.report.add(
            &format!("bulk import: {what}"),
            per_second(rows),
            &format!(
                "{lines} lines, {:.0} KB of file buffered at most",
                buffered / 1024.0
            ),
        );
        bench.report.add(
            &format!("bulk import {resource} / COPY into {resource}"),
            format!("{:.2}×", rows / copy),
            "goal ≥ 0.5×",
        );
        bench.report.add(
            &format!("bulk import {resource}: CPU per row"),
            cpu,
            "the file generator is this bench process",
        );
        bench.report.add(
            &format!("bulk import {resource}: peak RSS"),
            format!("{peak:.1} MiB"),
            "goal < 100 MiB whatever the size",
        );
    }
    server.abort();
    Ok(())
}

/// Imports `lines` generated lines of `resource`, fetched from [`FILE_URL`], into the bench's
/// database and prints `rows/s peak-buffered-bytes records` on stdout (the parent reads this
/// process's peak RSS and CPU).
pub async fn run(
    settings: &shopify_sync::settings::Settings,
    resource: &str,
    lines: usize,
) -> anyhow::Result<()> {
    let url = std::env::var(FILE_URL).with_context(|| format!("{FILE_URL} is not set"))?;
    let pool = db::pool(&settings.database, 4);
    let domain = ShopDomain::parse("bench-import.myshopify.com").expect("domain");
    let shop = db::shops::register(&pool.get().await?, &domain, "token").await?;
    let kind = Resource::parse(resource).ok_or_else(|| anyhow::anyhow!("customers or orders"))?;
    let started = Instant::now();
    let response = reqwest::get(url).await?.error_for_status()?;
    let stats =
        sync::import::import_stream(&pool, &Metrics::new(), shop, kind, response.bytes_stream())
            .await?;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        stats.lines == lines as u64,
        "{} of {lines} lines imported",
        stats.lines
    );
    println!(
        "{} {} {}",
        stats.records as f64 / seconds,
        stats.peak_buffered_bytes,
        stats.records
    );
    // Connections (and so their backends) stay until the parent has read their CPU.
    let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut tokio::io::sink()).await;
    drop(pool);
    Ok(())
}

/// `lines` lines of a customers or orders result (orders: each order then one line item).
fn file(
    resource: String,
    lines: usize,
) -> impl futures::Stream<Item = Result<String, std::convert::Infallible>> {
    futures::stream::iter((0..lines).step_by(500).map(move |start| {
        let end = (start + 500).min(lines);
        Ok((start..end).map(|i| line(&resource, i)).collect())
    }))
}

/// Line `i` of a generated result file, with its `\n`.
pub fn line(resource: &str, i: usize) -> String {
    if resource == "customers" {
        let id = i + 1;
        return format!(
            "{{\"id\":\"gid:\\/\\/shopify\\/Customer\\/{id}\",\"firstName\":\"First{id}\",\"lastName\":\"Last\",\"state\":\"ENABLED\",\"createdAt\":\"2026-01-01T00:00:00Z\",\"updatedAt\":\"2026-05-01T00:00:00Z\",\"defaultEmailAddress\":{{\"emailAddress\":\"c{id}@example.com\"}},\"defaultPhoneNumber\":null}}\n"
        );
    }
    let id = i / 2 + 1;
    if i % 2 == 1 {
        return format!(
            "{{\"id\":\"gid://shopify/LineItem/{id}\",\"title\":\"Item\",\"__parentId\":\"gid://shopify/Order/{id}\"}}\n"
        );
    }
    format!(
        "{{\"id\":\"gid://shopify/Order/{id}\",\"name\":\"#{id}\",\"email\":\"o{id}@example.com\",\"createdAt\":\"2026-01-01T00:00:00Z\",\"updatedAt\":\"2026-05-01T00:00:00Z\",\"cancelledAt\":null,\"displayFinancialStatus\":\"PAID\",\"displayFulfillmentStatus\":\"FULFILLED\",\"currencyCode\":\"EUR\",\"totalPriceSet\":{{\"shopMoney\":{{\"amount\":\"{id}.95\",\"currencyCode\":\"EUR\"}}}},\"customer\":{{\"id\":\"gid://shopify/Customer/{id}\"}}}}\n"
    )
}

/// `VmHWM` of a running process in MiB: the most it ever had resident.
fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
