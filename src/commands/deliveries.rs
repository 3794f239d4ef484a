//! `deliveries`: the ledger of webhook deliveries, newest first.

use std::io::Write;

use anyhow::Context;

use crate::{
    db::deliveries::{self, DeliveryStatus, ListFilter},
    settings::Settings,
    shopify::ShopDomain,
};

pub async fn run(
    settings: &Settings,
    status: Option<String>,
    shop: Option<String>,
    limit: i64,
) -> anyhow::Result<u8> {
    let status = status
        .map(|s| s.parse::<DeliveryStatus>())
        .transpose()
        .map_err(|e| anyhow::anyhow!("--status: {e}"))?;
    let shop = shop
        .map(|s| {
            ShopDomain::parse(&s)
                .with_context(|| format!("--shop {s:?} is not a myshopify.com domain"))
        })
        .transpose()?;
    anyhow::ensure!(limit > 0, "--limit must be at least 1");

    let client = super::client(settings).await?;
    let rows = deliveries::list(
        &client,
        &ListFilter {
            status,
            shop: shop.as_ref(),
            limit,
        },
    )
    .await?;

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<8} {:<32} {:<24} {:<38} {:<12} {:>8}  LAST ERROR",
        "ID", "SHOP", "TOPIC", "WEBHOOK ID", "STATUS", "ATTEMPTS"
    )?;
    for row in rows {
        let error = row.last_error.as_deref().unwrap_or("").replace('\n', " ");
        writeln!(
            out,
            "{:<8} {:<32} {:<24} {:<38} {:<12} {:>8}  {}",
            row.id,
            row.shop,
            row.topic,
            row.webhook_id,
            row.status,
            row.attempts,
            shorten(&error, 100)
        )?;
    }
    Ok(0)
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}
