//! The scheduler: every tick, start the syncs that are due and resolve stale ones, until the
//! process is told to stop.
//!
//! A shop's resource is due when no sync of it runs and none started within `SYNC_INTERVAL`;
//! the tick is shorter than that (at most a minute) so a resource Shopify deferred
//! (`OPERATION_IN_PROGRESS`) is tried again soon. A `running` log older than `SYNC_STALE_AFTER`
//! is polled: completed → imported (unless another process holds its import lock),
//! failed/canceled/expired → `failed`, running → left.
//! Stopping mid-tick is safe: every step is repeatable (see [`super`]).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Resolution, SyncError, Syncer, finish::NO_TOKEN};
use crate::db::{shops, sync_logs};

/// The longest pause between two ticks.
const MAX_TICK: Duration = Duration::from_secs(60);
/// The shortest (tests use intervals of milliseconds).
const MIN_TICK: Duration = Duration::from_millis(50);

/// The scheduler's timing, from `SYNC_INTERVAL` and `SYNC_STALE_AFTER`.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub interval: Duration,
    pub stale_after: Duration,
}

impl Schedule {
    fn tick(&self) -> Duration {
        self.interval
            .min(self.stale_after)
            .min(MAX_TICK)
            .max(MIN_TICK)
    }
}

/// Runs ticks until `cancel` fires. A failing tick (Postgres away) is logged and retried.
pub async fn run(syncer: Syncer, schedule: Schedule, cancel: CancellationToken) {
    tracing::info!(?schedule, "scheduler running");
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            result = syncer.tick(schedule) => {
                if let Err(error) = result {
                    tracing::warn!(%error, "scheduler tick failed");
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(schedule.tick()) => {}
        }
    }
    tracing::info!("scheduler stopped");
}

impl Syncer {
    /// One pass: start what is due for every syncable shop, then reconcile stale logs.
    pub async fn tick(&self, schedule: Schedule) -> Result<(), SyncError> {
        let shops = shops::syncable(&self.client().await?).await?;
        for shop in &shops {
            self.start_shop(shop, Some(schedule.interval)).await?;
        }
        self.reconcile_stale(schedule.stale_after).await
    }

    /// Resolves every `running` log older than `older_than` by polling its operation.
    pub async fn reconcile_stale(&self, older_than: std::time::Duration) -> Result<(), SyncError> {
        let stale = sync_logs::stale(&self.client().await?, older_than).await?;
        for log in stale {
            let shop = shops::syncable_by_id(&self.client().await?, log.shop_id).await?;
            let Some(shop) = shop else {
                self.end_failed(log.id, NO_TOKEN).await?;
                continue;
            };
            let Some(operation) = log.bulk_operation_id.clone() else {
                let message =
                    "no bulk operation was recorded: the process starting it stopped first";
                self.end_failed(log.id, message).await?;
                continue;
            };
            let resolution = match self.poll(&shop, &operation).await {
                Ok(Ok(node)) => self.resolve(&log, &shop, node).await,
                Ok(Err(reason)) => self.end_failed(log.id, &reason).await,
                Err(error) => Err(error),
            };
            match resolution {
                Ok(Resolution::StillRunning { .. }) => {
                    tracing::info!(log = log.id, operation, "stale sync still running; left")
                }
                Ok(Resolution::ImportInProgress { .. }) => {
                    tracing::info!(log = log.id, operation, "stale sync being imported; left")
                }
                Ok(resolution) => tracing::info!(log = log.id, ?resolution, "stale sync resolved"),
                // One shop's trouble must not stop the others' reconciliation.
                Err(error) => tracing::warn!(log = log.id, %error, "cannot reconcile stale sync"),
            }
        }
        Ok(())
    }
}
