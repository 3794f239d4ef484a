//! RabbitMQ: the topology, a self-healing publisher with confirms, the message format, and the
//! consumer loop with its retry routing. Knows nothing of the database or of handlers' insides.

pub mod acks;
pub mod connection;
pub mod consumer;
pub mod message;
pub mod publisher;
pub mod topology;

pub use message::WebhookMessage;
pub use publisher::{PublishError, Publisher};
pub use topology::Topology;
