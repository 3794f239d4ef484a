//! `send`: an offline `shopify webhook trigger` — signs a payload file exactly as Shopify does and
//! POSTs it with every Shopify header.

use anyhow::Context;
use chrono::{SecondsFormat, Utc};

use crate::{
    cli::SendArgs,
    settings::Settings,
    shopify::{self, ShopDomain, Topic, webhook},
};

pub async fn run(settings: &Settings, args: SendArgs) -> anyhow::Result<u8> {
    let secret = settings.require_api_secret()?;
    let topic = Topic::parse(&args.topic)
        .with_context(|| format!("--topic {:?} is not a topic like orders/create", args.topic))?;
    let shop = ShopDomain::parse(&args.shop)
        .with_context(|| format!("--shop {:?} is not a name.myshopify.com domain", args.shop))?;
    let body = tokio::fs::read(&args.file)
        .await
        .with_context(|| format!("cannot read --file {}", args.file.display()))?;
    let url = args.url.unwrap_or_else(|| default_url(settings));

    let fresh_id = || uuid::Uuid::new_v4().to_string();
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("user-agent", "Shopify-Captain-Hook")
        .header(webhook::HMAC_HEADER, shopify::sign(&body, secret))
        .header(webhook::TOPIC_HEADER, topic.as_str())
        .header(webhook::SHOP_HEADER, shop.as_str())
        .header(webhook::API_VERSION_HEADER, &settings.shopify_api_version)
        .header(
            webhook::WEBHOOK_ID_HEADER,
            args.webhook_id.unwrap_or_else(fresh_id),
        )
        .header(
            webhook::EVENT_ID_HEADER,
            args.event_id.unwrap_or_else(fresh_id),
        )
        .header(
            webhook::TRIGGERED_AT_HEADER,
            Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        )
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot POST to {url}"))?;
    let status = response.status();
    println!("{status}");
    Ok(if status.is_success() { 0 } else { 1 })
}

/// The receiver on this machine: `LISTEN_ADDR`, with an unspecified address made loopback.
fn default_url(settings: &Settings) -> String {
    let mut addr = settings.listen_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}/webhooks/shopify")
}
