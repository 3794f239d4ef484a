//! One function per subcommand.

pub mod send;

use tokio_util::sync::CancellationToken;

use crate::{
    app::{App, Components},
    cli::Command,
    db,
    settings::Settings,
};

/// Exit status of a command that has not been built yet.
pub const NOT_YET_AVAILABLE: u8 = 2;

/// What a command ended with: an exit code, or an error for `main` to print.
pub async fn run(
    command: Command,
    settings: Settings,
    cancel: CancellationToken,
) -> anyhow::Result<u8> {
    match command {
        Command::Receiver => {
            let components = Components { receiver: true };
            App::start(settings, components, cancel)
                .await?
                .run_until_stopped()
                .await?;
            Ok(0)
        }
        Command::Migrate => {
            migrate(&settings).await?;
            Ok(0)
        }
        Command::Send(args) => send::run(&settings, args).await,
        Command::Serve
        | Command::Worker { .. }
        | Command::Scheduler
        | Command::Replay { .. }
        | Command::Deliveries { .. }
        | Command::Shops { .. }
        | Command::Sync { .. } => {
            eprintln!("shopify-sync: this command is not yet available");
            Ok(NOT_YET_AVAILABLE)
        }
    }
}

/// Creates the database when missing and applies migrations.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    use anyhow::Context;
    let name = settings.database_name();
    if db::create_database_if_missing(&settings.database)
        .await
        .with_context(|| format!("cannot create database {name} (DATABASE_URL)"))?
    {
        tracing::info!(database = name, "created database");
    }
    let applied = db::migrate(&settings.database)
        .await
        .with_context(|| format!("cannot migrate database {name} (DATABASE_URL)"))?;
    tracing::info!(database = name, applied, "database is up to date");
    Ok(())
}
