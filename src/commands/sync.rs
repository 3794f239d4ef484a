//! `sync --shop S`: start a full sync of one shop now, whatever `SYNC_INTERVAL` says. Prints one
//! line per resource; fails when Shopify refused for good (the log then says why).

use anyhow::Context;

use crate::{
    db,
    metrics::Metrics,
    settings::Settings,
    shopify::ShopDomain,
    sync::{StartOutcome, Syncer},
};

pub async fn run(settings: &Settings, shop: &str) -> anyhow::Result<u8> {
    let domain = ShopDomain::parse(shop)
        .with_context(|| format!("--shop {shop:?} is not a *.myshopify.com shop domain"))?;
    let client = super::client(settings).await?;
    let id = db::shops::find(&client, &domain)
        .await?
        .with_context(|| format!("{domain} is not registered: run `shops add` first"))?;
    let shop = db::shops::syncable_by_id(&client, id)
        .await?
        .with_context(|| format!("{domain} has no Admin API token: run `shops add` first"))?;
    drop(client);

    let pool = db::pool(&settings.database, 2);
    let syncer = Syncer::new(settings, pool, Metrics::new());
    let reports = syncer
        .start_shop(&shop, None)
        .await
        .with_context(|| format!("cannot start the sync of {domain}"))?;
    for report in &reports {
        println!("{report}");
    }
    let failed: Vec<String> = reports
        .iter()
        .filter_map(|r| match &r.outcome {
            StartOutcome::Failed { message } => Some(format!("{}: {message}", r.resource.as_str())),
            _ => None,
        })
        .collect();
    anyhow::ensure!(
        failed.is_empty(),
        "sync of {domain} failed: {}",
        failed.join("; ")
    );
    Ok(0)
}
