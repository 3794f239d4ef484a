//! Workers: the handlers of [`crate::handlers`] behind the consumer loop of [`crate::broker`].
//!
//! A batch of messages (one, under light load) is one Postgres transaction: claim the deliveries
//! (dedupe), apply the effects, mark them processed, commit — and only then does the consumer
//! ack. A failed attempt is rolled back and recorded `failed` outside the transaction; the
//! dead-letter consumer records `dead_letter`.

mod dead_letter;
mod process;

use std::sync::Arc;

use deadpool_postgres::Pool;
use futures::FutureExt;

use crate::{
    broker::{
        Publisher, Topology,
        consumer::{self, ConsumerConfig, Handler},
        topology::FAMILIES,
    },
    metrics::Metrics,
    settings::Settings,
    sync::Syncer,
};

/// Every work queue's family name, in topology order.
pub fn all_families() -> Vec<String> {
    FAMILIES.iter().map(|f| f.name.to_owned()).collect()
}

/// Checks `--queues` against the topology.
pub fn validate_families(families: &[String]) -> anyhow::Result<()> {
    for family in families {
        if !FAMILIES.iter().any(|f| f.name == family) {
            anyhow::bail!(
                "unknown queue {family:?}; the queues are {}",
                all_families().join(", ")
            );
        }
    }
    Ok(())
}

/// Runs the consumers of `families` and the dead-letter consumer until `cancel` fires.
pub async fn run(
    settings: &Settings,
    families: Vec<String>,
    pool: Pool,
    publisher: Publisher,
    metrics: Arc<Metrics>,
    cancel: tokio_util::sync::CancellationToken,
) {
    let topology = Topology::new(settings);
    // Completed bulk operations are imported by the consumer of their finish.
    let syncer = Syncer::new(settings, pool.clone(), metrics.clone());
    let mut consumers = Vec::new();
    for family in families {
        let (pool, syncer) = (pool.clone(), syncer.clone());
        let handler: Handler = Arc::new(move |messages| {
            process::process_batch(pool.clone(), syncer.clone(), messages).boxed()
        });
        let config = ConsumerConfig {
            url: settings.amqp_url.clone(),
            queue: topology.work_queue(&family),
            label: family,
            prefetch: settings.prefetch,
        };
        consumers.push(tokio::spawn(consumer::run(
            config,
            topology.clone(),
            publisher.clone(),
            handler,
            metrics.clone(),
            cancel.clone(),
        )));
    }
    let dead_letters: Handler = {
        let (pool, metrics) = (pool.clone(), metrics.clone());
        Arc::new(move |messages: Vec<_>| {
            let (pool, metrics) = (pool.clone(), metrics.clone());
            async move {
                let mut verdicts = Vec::with_capacity(messages.len());
                for message in messages {
                    verdicts
                        .push(dead_letter::record(pool.clone(), metrics.clone(), message).await);
                }
                verdicts
            }
            .boxed()
        })
    };
    let config = ConsumerConfig {
        url: settings.amqp_url.clone(),
        queue: topology.dead_letter(),
        label: "dead_letter".to_owned(),
        prefetch: settings.prefetch,
    };
    consumers.push(tokio::spawn(consumer::run(
        config,
        topology.clone(),
        publisher,
        dead_letters,
        metrics,
        cancel,
    )));
    for consumer in consumers {
        if let Err(error) = consumer.await {
            tracing::error!(%error, "consumer task failed");
        }
    }
}
