//! One function per subcommand.

mod deliveries;
mod replay;
pub mod send;
mod shops;
mod sync;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::{
    app::{App, Components},
    cli::{Command, ShopsCommand},
    db,
    settings::Settings,
    worker,
};

/// What a command ended with: an exit code, or an error for `main` to print.
pub async fn run(
    command: Command,
    settings: Settings,
    cancel: CancellationToken,
) -> anyhow::Result<u8> {
    match command {
        Command::Serve => {
            migrate(&settings).await?;
            let components = Components {
                receiver: true,
                workers: Some(worker::all_families()),
                scheduler: true,
            };
            run_app(settings, components, cancel).await
        }
        Command::Receiver => {
            let components = Components {
                receiver: true,
                workers: None,
                scheduler: false,
            };
            run_app(settings, components, cancel).await
        }
        Command::Worker { queues } => {
            let families = if queues.is_empty() {
                worker::all_families()
            } else {
                queues
            };
            let components = Components {
                receiver: false,
                workers: Some(families),
                scheduler: false,
            };
            run_app(settings, components, cancel).await
        }
        Command::Migrate => {
            migrate(&settings).await?;
            Ok(0)
        }
        Command::Send(args) => send::run(&settings, args).await,
        Command::Deliveries {
            status,
            shop,
            limit,
        } => deliveries::run(&settings, status, shop, limit).await,
        Command::Replay {
            webhook_ids,
            dead_letters,
            topic,
            shop,
            since,
        } => {
            let selection =
                replay::Selection::from_args(webhook_ids, dead_letters, topic, shop, since)?;
            replay::run(&settings, selection).await
        }
        Command::Scheduler => {
            let components = Components {
                receiver: false,
                workers: None,
                scheduler: true,
            };
            run_app(settings, components, cancel).await
        }
        Command::Shops {
            command: ShopsCommand::Add { domain, token },
        } => shops::add(&settings, &domain, &token).await,
        Command::Sync { shop } => sync::run(&settings, &shop).await,
    }
}

async fn run_app(
    settings: Settings,
    components: Components,
    cancel: CancellationToken,
) -> anyhow::Result<u8> {
    App::start(settings, components, cancel)
        .await?
        .run_until_stopped()
        .await?;
    Ok(0)
}

/// Creates the database when missing and applies migrations.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
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

/// A client for one-shot commands, with a clear error when Postgres is not there.
async fn client(settings: &Settings) -> anyhow::Result<deadpool_postgres::Object> {
    db::pool(&settings.database, 1)
        .get()
        .await
        .with_context(|| {
            format!(
                "cannot connect to database {} (DATABASE_URL)",
                settings.database_name()
            )
        })
}
