//! Postgres: the pool, database creation, migrations, and the queries of each table.
//! Knows nothing of the broker or HTTP.

pub mod bulk;
pub mod compliance;
pub mod customers;
pub mod deliveries;
pub mod json;
mod migrate;
pub mod orders;
pub mod shops;
pub mod sync_logs;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

pub use migrate::{create_database_if_missing, migrate};

/// A database failure, with the one question a caller has: is it worth trying again?
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("Postgres: {}", describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("Postgres pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("migration failed: {0}")]
    Migration(#[from] refinery::Error),
}

/// tokio-postgres prints only "db error"; the server's message and SQLSTATE are what an operator
/// reading `last_error` needs.
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => match std::error::Error::source(error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    }
}

impl DbError {
    /// True when the same work may succeed later (the database is away, busy, or a transaction
    /// lost a serialization race); false when the statement itself is wrong for this data.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Pool(_) => true,
            Self::Migration(_) => false,
            Self::Postgres(e) => match e.code() {
                // No SQLSTATE: the connection broke or could not be made.
                None => true,
                Some(code) => {
                    let class = &code.code()[..2];
                    // 08 connection, 40 rollback (serialization, deadlock), 53 resources,
                    // 57 operator intervention (shutdown), 58 system error.
                    matches!(class, "08" | "40" | "53" | "57" | "58")
                }
            },
        }
    }
}

/// How long to wait for a connection before the attempt counts as a (transient) failure.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A pool of `size` connections. Connections are made lazily, so this never fails on a database
/// that is down; queries fail (transiently) until it is back.
pub fn pool(config: &tokio_postgres::Config, size: usize) -> Pool {
    let manager = Manager::from_config(
        configured(config),
        NoTls,
        ManagerConfig {
            // Broken connections are noticed by the query that uses them; checking each one on
            // checkout would cost a round trip per message.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(CONNECT_TIMEOUT))
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .expect("a pool with a runtime and timeouts builds")
}

/// One connection outside the pool, for a session that must last longer than a checkout (an
/// advisory lock held through an import) without taking a connection from the pool's users.
pub async fn connect(config: &tokio_postgres::Config) -> Result<tokio_postgres::Client, DbError> {
    let (client, connection) = configured(config).connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "database connection closed");
        }
    });
    Ok(client)
}

/// `config` with the service's connect timeout and application name, unless it sets its own.
fn configured(config: &tokio_postgres::Config) -> tokio_postgres::Config {
    let mut config = config.clone();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("shopify-sync");
    }
    config
}

/// True if a trivial query succeeds (for `/readyz`).
pub async fn is_reachable(pool: &Pool) -> bool {
    match tokio::time::timeout(Duration::from_secs(2), pool.get()).await {
        Ok(Ok(client)) => client.simple_query("SELECT 1").await.is_ok(),
        _ => false,
    }
}
