//! Creating the database and applying `migrations/` with refinery.

use tokio_postgres::error::SqlState;

use super::DbError;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Any fixed number: every process that migrates takes this advisory lock first, so two
/// `migrate`s started together apply each migration once.
const MIGRATION_LOCK: i64 = 0x5359_4e43_4d49_4752; // "SYNCMIGR"

/// Creates the database named in `config` when it does not exist. Returns true if it created it.
pub async fn create_database_if_missing(config: &tokio_postgres::Config) -> Result<bool, DbError> {
    let name = config.get_dbname().unwrap_or("shopify_sync").to_owned();
    let mut admin = config.clone();
    admin.dbname("postgres");
    let client = super::connect(&admin).await?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if exists {
        return Ok(false);
    }
    let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
    match client.batch_execute(&statement).await {
        Ok(()) => Ok(true),
        // Someone else created it between our check and our statement.
        Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Applies every migration not yet applied. Returns how many it applied; safe to run twice and
/// from several processes at once.
pub async fn migrate(config: &tokio_postgres::Config) -> Result<usize, DbError> {
    let mut client = super::connect(config).await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let report = embedded::migrations::runner().run_async(&mut client).await;
    // The lock goes with the session anyway; unlock to be tidy.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    let report = report?;
    for migration in report.applied_migrations() {
        tracing::info!(
            version = migration.version(),
            name = migration.name(),
            "applied migration"
        );
    }
    Ok(report.applied_migrations().len())
}
