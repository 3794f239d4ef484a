//! `shops`: one row per shop domain, created by its first verified webhook.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::DbError;
use crate::shopify::ShopDomain;

/// The shop's id, creating its row if this is the first we hear of it.
///
/// Not `ON CONFLICT DO UPDATE … RETURNING`: that would lock the shop row until the caller's
/// transaction ends and serialise every worker handling that shop. A concurrent first insert
/// makes our `DO NOTHING` wait for it; the second `SELECT` (a new snapshot) then sees it.
pub async fn get_or_create(
    client: &impl GenericClient,
    domain: &ShopDomain,
) -> Result<i64, DbError> {
    let select = client
        .prepare_cached("SELECT id FROM shops WHERE domain = $1")
        .await?;
    if let Some(row) = client.query_opt(&select, &[&domain.as_str()]).await? {
        return Ok(row.get(0));
    }
    let insert = client
        .prepare_cached(
            "INSERT INTO shops (domain) VALUES ($1) ON CONFLICT (domain) DO NOTHING RETURNING id",
        )
        .await?;
    if let Some(row) = client.query_opt(&insert, &[&domain.as_str()]).await? {
        return Ok(row.get(0));
    }
    Ok(client.query_one(&select, &[&domain.as_str()]).await?.get(0))
}

/// The shop's id if it has a row.
pub async fn find(
    client: &impl GenericClient,
    domain: &ShopDomain,
) -> Result<Option<i64>, DbError> {
    let row = client
        .query_opt(
            "SELECT id FROM shops WHERE domain = $1",
            &[&domain.as_str()],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Stores the Admin API token of an (re)installed shop (`shops add`): it counts as installed now.
pub async fn register(
    client: &impl GenericClient,
    domain: &ShopDomain,
    access_token: &str,
) -> Result<i64, DbError> {
    let row = client
        .query_one(
            "INSERT INTO shops (domain, access_token) VALUES ($1, $2)
             ON CONFLICT (domain) DO UPDATE
                SET access_token = EXCLUDED.access_token, installed_at = now(), uninstalled_at = NULL
             RETURNING id",
            &[&domain.as_str(), &access_token],
        )
        .await?;
    Ok(row.get(0))
}

/// `app/uninstalled`: the token is useless from now on, and the shop is no longer synced.
pub async fn mark_uninstalled(
    client: &impl GenericClient,
    shop_id: i64,
    at: Option<DateTime<Utc>>,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE shops SET uninstalled_at = COALESCE($2, now()), access_token = NULL
              WHERE id = $1",
            &[&shop_id, &at],
        )
        .await?;
    Ok(())
}

/// `shop/redact`: the shop's data is erased; its token goes too.
pub async fn drop_token(client: &impl GenericClient, shop_id: i64) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE shops SET access_token = NULL WHERE id = $1",
            &[&shop_id],
        )
        .await?;
    Ok(())
}

/// A shop the service can sync: installed, with an Admin API token.
#[derive(Clone)]
pub struct SyncableShop {
    pub id: i64,
    pub domain: String,
    /// Secret: never logged.
    pub access_token: String,
}

impl std::fmt::Debug for SyncableShop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncableShop")
            .field("id", &self.id)
            .field("domain", &self.domain)
            .field("access_token", &"[redacted]")
            .finish()
    }
}

/// Every installed shop with a token (the scheduler's work list).
pub async fn syncable(client: &impl GenericClient) -> Result<Vec<SyncableShop>, DbError> {
    let rows = client
        .query(
            "SELECT id, domain, access_token FROM shops
              WHERE access_token IS NOT NULL AND uninstalled_at IS NULL
              ORDER BY id",
            &[],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| SyncableShop {
            id: r.get(0),
            domain: r.get(1),
            access_token: r.get(2),
        })
        .collect())
}

/// The shop `shop_id` if it can be synced (installed, with a token).
pub async fn syncable_by_id(
    client: &impl GenericClient,
    shop_id: i64,
) -> Result<Option<SyncableShop>, DbError> {
    let row = client
        .query_opt(
            "SELECT id, domain, access_token FROM shops
              WHERE id = $1 AND access_token IS NOT NULL AND uninstalled_at IS NULL",
            &[&shop_id],
        )
        .await?;
    Ok(row.map(|r| SyncableShop {
        id: r.get(0),
        domain: r.get(1),
        access_token: r.get(2),
    }))
}
