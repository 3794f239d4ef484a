//! Seeing an ended bulk operation through: ask its node (the finish webhook carries no URL),
//! import the result when it completed, and end its sync log either way.

use secrecy::SecretString;

use super::{ImportStats, SyncError, Syncer, import::import_stream, resource_of_query};
use crate::{
    db::{
        shops::{self, SyncableShop},
        sync_logs::{self, ImportLock, SyncLog},
    },
    shopify::{
        ShopDomain,
        admin::{AdminError, BulkOperation, OperationStatus, failure_message},
    },
};

/// What became of an operation's sync log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The result is imported; the log is `completed`.
    Completed { log_id: i64, records: i64 },
    /// The operation failed, was canceled or expired (or can never be read); the log is `failed`.
    Failed { log_id: i64, message: String },
    /// Shopify still runs it; nothing changed.
    StillRunning { log_id: i64 },
    /// Another process holds the log's import lock and imports it; nothing changed here.
    ImportInProgress { log_id: i64 },
    /// Its log had already ended: a redelivered finish, which changes nothing.
    AlreadyEnded,
    /// No log of this service waits for it (an operation someone else started).
    Unknown,
}

impl Syncer {
    /// `bulk_operations/finish` said `completed` for `operation` of shop `shop_id`.
    pub async fn finish_operation(
        &self,
        shop_id: i64,
        operation: &str,
    ) -> Result<Resolution, SyncError> {
        let (known, shop) = {
            let client = self.client().await?;
            let known = sync_logs::by_operation(&client, shop_id, operation).await?;
            if known.as_ref().is_some_and(|log| log.status != "running") {
                return Ok(Resolution::AlreadyEnded);
            }
            (known, shops::syncable_by_id(&client, shop_id).await?)
        };
        let Some(shop) = shop else {
            return match known {
                Some(log) => self.end_failed(log.id, NO_TOKEN).await,
                None => Ok(Resolution::Unknown),
            };
        };
        let node = match self.poll(&shop, operation).await? {
            Ok(node) => node,
            Err(reason) => {
                return match known {
                    Some(log) => self.end_failed(log.id, &reason).await,
                    None => Ok(Resolution::Unknown),
                };
            }
        };
        let log = match known {
            Some(log) => log,
            None => match self.adopt(&shop, &node).await? {
                Some(log) => log,
                None => return Ok(Resolution::Unknown),
            },
        };
        self.resolve(&log, &shop, node).await
    }

    /// The operation's node: `Ok(Err(reason))` when it can never be read (unknown id, token
    /// refused), `Err` when it is worth asking again later.
    pub(super) async fn poll(
        &self,
        shop: &SyncableShop,
        operation: &str,
    ) -> Result<Result<BulkOperation, String>, SyncError> {
        let domain = domain(shop)?;
        let token = SecretString::from(shop.access_token.clone());
        match self.admin.bulk_operation(&domain, &token, operation).await {
            Ok(Some(node)) => Ok(Ok(node)),
            Ok(None) => Ok(Err(format!("Shopify knows no bulk operation {operation}"))),
            Err(error) if error.is_transient() => Err(error.into()),
            Err(error) => Ok(Err(error.to_string())),
        }
    }

    /// Ends `log` as `node` says: import and complete, fail, or leave it running.
    pub(super) async fn resolve(
        &self,
        log: &SyncLog,
        shop: &SyncableShop,
        node: BulkOperation,
    ) -> Result<Resolution, SyncError> {
        match &node.status {
            OperationStatus::Completed => {
                let Some(lock) = ImportLock::try_take(&self.database, log.id).await? else {
                    tracing::info!(
                        log = log.id,
                        "another process imports this sync; left to it"
                    );
                    return Ok(Resolution::ImportInProgress { log_id: log.id });
                };
                let resolution = match lock.log_running(log.id).await {
                    // Completed by the lock's previous holder since this log was read.
                    Ok(false) => Ok(Resolution::AlreadyEnded),
                    Ok(true) => {
                        self.import_and_complete(log, shop, node.url.as_deref())
                            .await
                    }
                    Err(error) => Err(error.into()),
                };
                lock.release().await;
                resolution
            }
            status if status.is_unsuccessful() => {
                let message = failure_message(&status.to_string(), node.error_code.as_deref());
                self.end_failed(log.id, &message).await
            }
            _ => Ok(Resolution::StillRunning { log_id: log.id }),
        }
    }

    /// Imports the result at `url` (none: nothing matched) and completes the log. The caller
    /// holds the log's import lock.
    async fn import_and_complete(
        &self,
        log: &SyncLog,
        shop: &SyncableShop,
        url: Option<&str>,
    ) -> Result<Resolution, SyncError> {
        let records = match url {
            None => 0,
            Some(url) => match self.import_url(shop, log, url).await {
                Ok(stats) => i64::try_from(stats.records).unwrap_or(i64::MAX),
                Err(error) if error.is_transient() => return Err(error),
                Err(error) => return self.end_failed(log.id, &error.to_string()).await,
            },
        };
        let client = self.client().await?;
        if sync_logs::complete(&client, log.id, records).await? {
            self.count_sync("completed");
            tracing::info!(log = log.id, shop = shop.domain, records, "sync completed");
        }
        Ok(Resolution::Completed {
            log_id: log.id,
            records,
        })
    }

    async fn import_url(
        &self,
        shop: &SyncableShop,
        log: &SyncLog,
        url: &str,
    ) -> Result<ImportStats, SyncError> {
        let response = self.admin.download(&domain(shop)?, url).await?;
        let stats = import_stream(
            &self.pool,
            &self.metrics,
            shop.id,
            log.resource,
            response.bytes_stream(),
        )
        .await?;
        tracing::info!(
            log = log.id,
            shop = shop.domain,
            resource = log.resource.as_str(),
            records = stats.records,
            changed = stats.changed,
            skipped = stats.skipped,
            peak_buffered_bytes = stats.peak_buffered_bytes,
            "bulk result imported"
        );
        Ok(stats)
    }

    /// An operation no log knows by id: the claim its starter could not finish recording, if
    /// its query tells the resource.
    async fn adopt(
        &self,
        shop: &SyncableShop,
        node: &BulkOperation,
    ) -> Result<Option<SyncLog>, SyncError> {
        let Some(resource) = node.query.as_deref().and_then(resource_of_query) else {
            return Ok(None);
        };
        let client = self.client().await?;
        let adopted = sync_logs::adopt(&client, shop.id, resource, &node.id).await?;
        if let Some(log) = &adopted {
            tracing::warn!(
                log = log.id,
                operation = node.id,
                "adopted an unrecorded operation"
            );
        }
        Ok(adopted)
    }

    pub(super) async fn end_failed(
        &self,
        log_id: i64,
        message: &str,
    ) -> Result<Resolution, SyncError> {
        let client = self.client().await?;
        if sync_logs::fail(&client, log_id, message).await? {
            self.count_sync("failed");
            tracing::warn!(log = log_id, message, "sync failed");
        }
        Ok(Resolution::Failed {
            log_id,
            message: message.to_owned(),
        })
    }
}

pub(super) const NO_TOKEN: &str = "the shop is uninstalled or has no Admin API access token";

fn domain(shop: &SyncableShop) -> Result<ShopDomain, SyncError> {
    ShopDomain::parse(&shop.domain).ok_or_else(|| {
        SyncError::Admin(AdminError::Decode {
            shop: shop.domain.clone(),
            reason: "the stored domain is not a shop domain".into(),
        })
    })
}
