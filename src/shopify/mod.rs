//! What the service knows about Shopify itself: webhook signatures, headers and topics, payloads,
//! and the Admin API. Knows nothing of the broker or the database.

pub mod admin;
pub mod payload;
pub mod signature;
pub mod webhook;

pub use signature::{sign, verify};
pub use webhook::{ShopDomain, Topic, WebhookHeaders, WebhookId};
