//! The bulk import on a generated JSONL file: served over local HTTP by the measuring process
//! itself (streamed, never held), imported with the service's own importer.

use std::time::Instant;

use axum::{Router, body::Body, extract::Path, routing::get};
use shopify_sync::{db, db::sync_logs::Resource, metrics::Metrics, shopify::ShopDomain, sync};

/// Imports `lines` generated lines of `resource` into the bench's database and prints
/// `rows/s peak-buffered-bytes` on stdout (the parent reads this process's peak RSS).
pub async fn run(
    settings: &shopify_sync::settings::Settings,
    resource: &str,
    lines: usize,
) -> anyhow::Result<()> {
    let pool = db::pool(&settings.database, 4);
    let domain = ShopDomain::parse("bench-import.myshopify.com").expect("domain");
    let shop = db::shops::register(&pool.get().await?, &domain, "token").await?;
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
    tokio::spawn(async move { axum::serve(listener, app).await });

    let kind = Resource::parse(resource).ok_or_else(|| anyhow::anyhow!("customers or orders"))?;
    let started = Instant::now();
    let response = reqwest::get(format!("http://{addr}/{resource}/{lines}")).await?;
    let stats =
        sync::import::import_stream(&pool, &Metrics::new(), shop, kind, response.bytes_stream())
            .await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{} {}",
        stats.records as f64 / seconds,
        stats.peak_buffered_bytes
    );
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
