//! Opening a connection to RabbitMQ, bounded in time.

use std::time::Duration;

use lapin::{Connection, ConnectionProperties};
use secrecy::{ExposeSecret, SecretString};

/// Why the broker could not be reached. Never contains the URL (it may carry a password).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("RabbitMQ did not answer within {0:?}")]
    Timeout(Duration),
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
}

/// How long a connection attempt may take before it counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects with a connection name that shows in the management UI.
pub async fn connect(
    url: &SecretString,
    name: &str,
    timeout: Duration,
) -> Result<Connection, ConnectError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    tokio::time::timeout(
        timeout,
        Connection::connect(url.expose_secret(), properties),
    )
    .await
    .map_err(|_| ConnectError::Timeout(timeout))?
    .map_err(ConnectError::Amqp)
}
