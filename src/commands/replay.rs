//! `replay`: stored deliveries back into the normal pipeline, published with confirms to
//! `{prefix}.webhooks` as the receiver would. Their delivery rows are processed again (dedupe
//! skips only `processed` and `ignored` ones).

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::{
    broker::{Publisher, Topology, WebhookMessage},
    db::deliveries::{self, ReplaySelection},
    settings::Settings,
    shopify::{ShopDomain, Topic},
};

/// What to replay, checked.
pub enum Selection {
    WebhookIds(Vec<String>),
    DeadLetters {
        topic: Option<Topic>,
        shop: Option<ShopDomain>,
        since: Option<DateTime<Utc>>,
    },
}

impl Selection {
    pub fn from_args(
        webhook_ids: Vec<String>,
        dead_letters: bool,
        topic: Option<String>,
        shop: Option<String>,
        since: Option<String>,
    ) -> anyhow::Result<Self> {
        match (webhook_ids.is_empty(), dead_letters) {
            (false, false) => {
                anyhow::ensure!(
                    topic.is_none() && shop.is_none() && since.is_none(),
                    "--topic, --shop and --since go with --dead-letters"
                );
                Ok(Self::WebhookIds(webhook_ids))
            }
            (true, true) => Ok(Self::DeadLetters {
                topic: topic
                    .map(|t| {
                        Topic::parse(&t).with_context(|| format!("--topic {t:?} is not a topic"))
                    })
                    .transpose()?,
                shop: shop
                    .map(|s| {
                        ShopDomain::parse(&s)
                            .with_context(|| format!("--shop {s:?} is not a myshopify.com domain"))
                    })
                    .transpose()?,
                since: since
                    .map(|s| {
                        DateTime::parse_from_rfc3339(&s)
                            .map(|t| t.to_utc())
                            .with_context(|| format!("--since {s:?} is not an RFC 3339 time"))
                    })
                    .transpose()?,
            }),
            _ => anyhow::bail!("give either --webhook-id ID … or --dead-letters"),
        }
    }
}

const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(settings: &Settings, selection: Selection) -> anyhow::Result<u8> {
    let client = super::client(settings).await?;
    let stored = match &selection {
        Selection::WebhookIds(ids) => {
            deliveries::for_replay(&client, &ReplaySelection::WebhookIds(ids)).await?
        }
        Selection::DeadLetters { topic, shop, since } => {
            deliveries::for_replay(
                &client,
                &ReplaySelection::DeadLetters {
                    topic: topic.as_ref(),
                    shop: shop.as_ref(),
                    since: *since,
                },
            )
            .await?
        }
    };

    let topology = Topology::new(settings);
    let cancel = CancellationToken::new();
    let publisher = Publisher::start(
        settings.amqp_url.clone(),
        "shopify-sync replay".into(),
        topology.clone(),
        cancel.clone(),
    );
    let mut replayed = 0usize;
    for webhook in stored {
        let Some(headers) = webhook.headers() else {
            eprintln!(
                "skipping {}: its stored headers are not valid",
                webhook.webhook_id
            );
            continue;
        };
        let message = WebhookMessage::new(headers, webhook.payload);
        publisher
            .publish(
                &topology.webhooks_exchange(),
                &message.routing_key(),
                &message.body,
                message.properties(),
                PUBLISH_TIMEOUT,
            )
            .await
            .with_context(|| {
                format!(
                    "cannot publish {} (replayed {replayed} before it)",
                    webhook.webhook_id
                )
            })?;
        replayed += 1;
    }
    cancel.cancel();
    println!("replayed {replayed}");
    Ok(0)
}
