//! Opening a connection to RabbitMQ, bounded in time.

use std::{str::FromStr, time::Duration};

use amq_protocol_uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};
use secrecy::{ExposeSecret, SecretString};

/// Why the broker could not be reached. Never contains the URL (it may carry a password).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("RabbitMQ did not answer within {0:?}")]
    Timeout(Duration),
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("AMQP_URL is not an AMQP URL")]
    BadUrl,
}

/// How long a connection attempt may take before it counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest frame asked for unless `AMQP_URL` says otherwise (`?frame_max=`). lapin keeps
/// send and receive buffers of 32 frames per connection, so RabbitMQ's default of 128 KiB costs
/// 8 MiB per connection once traffic has touched them; 16 KiB costs 1 MiB, and a message larger
/// than a frame is simply sent in several.
pub const FRAME_MAX: u32 = 16 * 1024;

/// Connects with a connection name that shows in the management UI.
pub async fn connect(
    url: &SecretString,
    name: &str,
    timeout: Duration,
) -> Result<Connection, ConnectError> {
    let mut uri = AMQPUri::from_str(url.expose_secret()).map_err(|_| ConnectError::BadUrl)?;
    uri.query.frame_max.get_or_insert(FRAME_MAX);
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    tokio::time::timeout(timeout, Connection::connect_uri(uri, properties))
        .await
        .map_err(|_| ConnectError::Timeout(timeout))?
        .map_err(ConnectError::Amqp)
}
