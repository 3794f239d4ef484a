//! shopify-sync keeps a Shopify shop's customers and orders correct in Postgres, from webhooks
//! through RabbitMQ.
//!
//! The layout follows the data:
//!
//! - [`shopify`] — signatures, headers and topics, payloads, the Admin GraphQL client (no
//!   broker, no database)
//! - [`receiver`] — HTTP: verify → publish with confirm → status (no database)
//! - [`broker`] — RabbitMQ topology, the self-healing publisher, the message format
//! - [`db`] — the pool, migrations and queries, one file per table
//! - [`handlers`] — one webhook's effect on Postgres, one file per topic family (no broker)
//! - [`sync`] — full syncs: start bulk queries, import their results, the scheduler
//! - [`metrics`], [`telemetry`], [`settings`] — what every process shares
//! - [`app`] — wiring the parts a command runs; [`cli`] and [`commands`] — the command line

pub mod app;
pub mod broker;
pub mod cli;
pub mod commands;
pub mod db;
pub mod handlers;
pub mod metrics;
pub mod receiver;
pub mod settings;
pub mod shopify;
pub mod sync;
pub mod telemetry;
pub mod worker;
