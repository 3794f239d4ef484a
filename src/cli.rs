//! The command line (see README "Commands").

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "shopify-sync",
    version,
    about = "Shopify webhooks → RabbitMQ → Postgres"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything in one process: migrations, topology, receiver, consumers, scheduler.
    Serve,
    /// Only the HTTP receiver (needs the secret and RabbitMQ, not Postgres).
    Receiver,
    /// Topic consumers and the dead-letter consumer.
    Worker {
        /// Work queues to consume (default: all), e.g. `customers,orders`.
        #[arg(long, value_delimiter = ',')]
        queues: Vec<String>,
    },
    /// Periodic full sync and stale-sync reconciliation (run one).
    Scheduler,
    /// Create the database if missing and apply migrations.
    Migrate,
    /// Sign a payload file as Shopify does and POST it to the receiver.
    Send(SendArgs),
    /// Republish stored dead-lettered deliveries into the normal pipeline.
    Replay {
        #[arg(long = "webhook-id")]
        webhook_ids: Vec<String>,
        #[arg(long)]
        dead_letters: bool,
        #[arg(long)]
        topic: Option<String>,
        #[arg(long)]
        shop: Option<String>,
        #[arg(long)]
        since: Option<String>,
    },
    /// List webhook deliveries.
    Deliveries {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        shop: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Manage shops.
    Shops {
        #[command(subcommand)]
        command: ShopsCommand,
    },
    /// Start a full sync for one shop now.
    Sync {
        #[arg(long)]
        shop: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ShopsCommand {
    /// Register a shop's Admin API access token.
    Add {
        #[arg(long)]
        domain: String,
        #[arg(long)]
        token: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// Webhook topic, e.g. `orders/create`.
    #[arg(long)]
    pub topic: String,
    /// Shop domain, `name.myshopify.com`.
    #[arg(long)]
    pub shop: String,
    /// The payload file, sent byte for byte.
    #[arg(long)]
    pub file: PathBuf,
    /// Receiver URL (default: `http://LISTEN_ADDR/webhooks/shopify`).
    #[arg(long)]
    pub url: Option<String>,
    /// Webhook id (default: a fresh UUID).
    #[arg(long = "webhook-id")]
    pub webhook_id: Option<String>,
    /// Event id (default: a fresh UUID).
    #[arg(long = "event-id")]
    pub event_id: Option<String>,
}
