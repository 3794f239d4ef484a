//! Starting full syncs, once per shop and resource however many schedulers run.
//!
//! Insert before call: a `running` log without an operation id is claimed first (the partial
//! unique index `sync_logs_one_running_idx` lets exactly one claimant win), then Shopify is asked
//! to start the bulk query, then its id is recorded. A crash between Shopify's answer and the
//! record leaves a claim without id: the operation's finish (or a poll) adopts it by resource
//! (`db::sync_logs::adopt`), and stale reconciliation fails a claim nothing ever adopted.

use std::{fmt, time::Duration};

use secrecy::SecretString;

use super::{SyncError, Syncer, query_of};
use crate::{
    db::{shops::SyncableShop, sync_logs, sync_logs::Resource},
    shopify::{ShopDomain, admin::AdminError},
};

/// What became of one resource of a shop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// Shopify runs the bulk query; the log waits for its finish.
    Started { log_id: i64, operation: String },
    /// A sync of it is running, or (for the scheduler) ran less than `SYNC_INTERVAL` ago.
    Skipped,
    /// Shopify runs another bulk query for this app and shop (`OPERATION_IN_PROGRESS`,
    /// `LIMIT_REACHED`) or could not be reached: nothing started, due again at the next run.
    Deferred { reason: String },
    /// Shopify refused for good (e.g. a revoked token); the log is `failed` with the reason.
    Failed { message: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartReport {
    pub resource: Resource,
    pub outcome: StartOutcome,
}

impl fmt::Display for StartReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let resource = self.resource.as_str();
        match &self.outcome {
            StartOutcome::Started { operation, .. } => write!(f, "{resource}: started {operation}"),
            StartOutcome::Skipped => write!(f, "{resource}: a sync is already running"),
            StartOutcome::Deferred { reason } => {
                write!(f, "{resource}: left for the next run: {reason}")
            }
            StartOutcome::Failed { message } => write!(f, "{resource}: failed: {message}"),
        }
    }
}

/// Shopify's answers that mean "not now" rather than "no".
const BUSY_CODES: [&str; 2] = ["OPERATION_IN_PROGRESS", "LIMIT_REACHED"];

impl Syncer {
    /// Starts a sync of every resource of `shop` that has none running — and, with
    /// `unless_within`, none started that recently. Errors only when Postgres fails.
    pub async fn start_shop(
        &self,
        shop: &SyncableShop,
        unless_within: Option<Duration>,
    ) -> Result<Vec<StartReport>, SyncError> {
        let mut reports = Vec::new();
        for resource in Resource::ALL {
            let outcome = self.start_one(shop, resource, unless_within).await?;
            let report = StartReport { resource, outcome };
            match &report.outcome {
                StartOutcome::Started { .. } => tracing::info!(shop = shop.domain, %report),
                StartOutcome::Skipped => tracing::debug!(shop = shop.domain, %report),
                StartOutcome::Deferred { .. } | StartOutcome::Failed { .. } => {
                    tracing::warn!(shop = shop.domain, %report)
                }
            }
            reports.push(report);
        }
        Ok(reports)
    }

    async fn start_one(
        &self,
        shop: &SyncableShop,
        resource: Resource,
        unless_within: Option<Duration>,
    ) -> Result<StartOutcome, SyncError> {
        let client = self.client().await?;
        let Some(log_id) = sync_logs::claim(&client, shop.id, resource, unless_within).await?
        else {
            return Ok(StartOutcome::Skipped);
        };
        let Some(domain) = ShopDomain::parse(&shop.domain) else {
            let message = format!("{:?} is not a shop domain", shop.domain);
            sync_logs::fail(&client, log_id, &message).await?;
            self.count_sync("failed");
            return Ok(StartOutcome::Failed { message });
        };
        let token = SecretString::from(shop.access_token.clone());
        let started = self
            .admin
            .run_bulk_query(&domain, &token, query_of(resource))
            .await;
        match started {
            Ok(operation) => {
                sync_logs::record_operation(&client, log_id, &operation.id).await?;
                Ok(StartOutcome::Started {
                    log_id,
                    operation: operation.id,
                })
            }
            Err(error) if is_busy(&error) || error.is_transient() => {
                sync_logs::release(&client, log_id).await?;
                Ok(StartOutcome::Deferred {
                    reason: error.to_string(),
                })
            }
            Err(error) => {
                let message = error.to_string();
                sync_logs::fail(&client, log_id, &message).await?;
                self.count_sync("failed");
                Ok(StartOutcome::Failed { message })
            }
        }
    }
}

fn is_busy(error: &AdminError) -> bool {
    error
        .user_error_code()
        .is_some_and(|code| BUSY_CODES.contains(&code))
}
