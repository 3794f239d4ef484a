//! Integration tests against the real Postgres and RabbitMQ of this machine.
//! One test binary (faster to build); each module is one area.

#[allow(dead_code)] // each test module uses a part of the harness
mod helpers;

mod batches;
mod cli;
mod failures;
mod faults;
mod handlers;
mod migrations;
mod operations;
mod pipeline;
mod receiver;
mod sync;
