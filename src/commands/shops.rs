//! `shops add --domain S --token T`: the Admin API token a full sync needs.

use anyhow::Context;

use crate::{db, settings::Settings, shopify::ShopDomain};

pub async fn add(settings: &Settings, domain: &str, token: &str) -> anyhow::Result<u8> {
    let domain = ShopDomain::parse(domain)
        .with_context(|| format!("--domain {domain:?} is not a *.myshopify.com shop domain"))?;
    let token = token.trim();
    anyhow::ensure!(!token.is_empty(), "--token is empty");
    let client = super::client(settings).await?;
    db::shops::register(&client, &domain, token)
        .await
        .with_context(|| format!("cannot register {domain}"))?;
    println!("registered {domain}");
    Ok(0)
}
