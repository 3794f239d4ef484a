//! Bulk import throughput and memory: serves generated JSONL over local HTTP, imports it into a
//! fresh database with the service's own importer, and prints rows/s and the peak resident set
//! of the process. Each size runs in a child process of its own, so peaks do not mix.
//!
//! `cargo bench --bench import` (sizes in lines: `-- 50000 200000`).
//! `BENCH_DATABASE_URL` defaults to the tests' `postgres://postgres@127.0.0.1:5432/postgres`.

use std::{str::FromStr, time::Instant};

use axum::{Router, body::Body, extract::Path, routing::get};
use shopify_sync::{db, db::sync_logs::Resource, metrics::Metrics, shopify::ShopDomain, sync};

const DEFAULT_SIZES: [usize; 2] = [50_000, 200_000];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(child) = args.iter().find_map(|a| a.strip_prefix("--child=")) {
        let (resource, lines) = child.split_once(':').expect("--child=resource:lines");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(run(resource, lines.parse().expect("a line count")));
        return;
    }
    let mut sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = DEFAULT_SIZES.to_vec();
    }
    println!("resource   lines     rows/s   peak buffered   peak RSS");
    for resource in ["customers", "orders"] {
        for lines in &sizes {
            let status = std::process::Command::new(std::env::current_exe().expect("exe"))
                .arg(format!("--child={resource}:{lines}"))
                .status()
                .expect("child bench");
            assert!(status.success(), "{resource} {lines} failed");
        }
    }
}

async fn run(resource: &str, lines: usize) {
    let base = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let mut config = tokio_postgres::Config::from_str(&base).expect("BENCH_DATABASE_URL");
    config.dbname(&name);
    db::create_database_if_missing(&config)
        .await
        .expect("create");
    db::migrate(&config).await.expect("migrate");
    let pool = db::pool(&config, 4);
    let domain = ShopDomain::parse("bench.myshopify.com").expect("domain");
    let shop = db::shops::register(&pool.get().await.expect("db"), &domain, "token")
        .await
        .expect("shop");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new().route(
        "/{resource}/{lines}",
        get(
            |Path((resource, lines)): Path<(String, usize)>| async move {
                Body::from_stream(file(resource, lines))
            },
        ),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let url = format!("http://{addr}/{resource}/{lines}");
    let started = Instant::now();
    let response = reqwest::get(&url).await.expect("GET");
    let kind = Resource::parse(resource).expect("customers or orders");
    let stats =
        sync::import::import_stream(&pool, &Metrics::new(), shop, kind, response.bytes_stream())
            .await
            .expect("import");
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{resource:<10} {lines:>7} {:>10.0} {:>12} B {:>8} MiB",
        stats.records as f64 / seconds,
        stats.peak_buffered_bytes,
        peak_rss_kib() / 1024
    );

    pool.close();
    let mut admin = config.clone();
    admin.dbname("postgres");
    let (client, connection) = admin.connect(tokio_postgres::NoTls).await.expect("admin");
    tokio::spawn(connection);
    let _ = client
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await;
}

/// `VmHWM`: the most memory the process ever had resident.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
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

fn line(resource: &str, i: usize) -> String {
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
