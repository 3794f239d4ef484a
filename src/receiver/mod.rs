//! The HTTP receiver: verify → publish with confirm → status. Needs only the secret and the broker.

mod error;
mod routes;
mod server;
pub mod validate;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::DefaultBodyLimit, routing::get, routing::post};
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;

pub use error::ReceiveError;

use crate::{
    broker::{Publisher, Topology},
    metrics::Metrics,
};

/// What `/readyz` checks besides the broker, for processes that also use Postgres.
pub type Readiness = Arc<dyn Fn() -> futures::future::BoxFuture<'static, bool> + Send + Sync>;

/// Everything a request needs.
#[derive(Clone)]
pub(crate) struct ReceiverState {
    pub secrets: Arc<Vec<SecretString>>,
    pub publisher: Publisher,
    pub exchange: Arc<str>,
    pub publish_timeout: Duration,
    pub metrics: Arc<Metrics>,
    pub readiness: Option<Readiness>,
}

/// A bound receiver; [`Receiver::run`] serves it.
pub struct Receiver {
    listener: TcpListener,
    router: Router,
    max_connections: usize,
    request_timeout: Duration,
}

/// What the receiver is built from.
pub struct ReceiverConfig {
    pub secret: SecretString,
    pub previous_secret: Option<SecretString>,
    pub max_body_bytes: usize,
    pub publish_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
}

impl Receiver {
    /// Binds `addr` (port 0 picks a free port, as tests do).
    pub async fn bind(
        addr: SocketAddr,
        config: ReceiverConfig,
        publisher: Publisher,
        topology: &Topology,
        metrics: Arc<Metrics>,
        readiness: Option<Readiness>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let secrets = std::iter::once(config.secret)
            .chain(config.previous_secret)
            .collect();
        let state = ReceiverState {
            secrets: Arc::new(secrets),
            publisher,
            exchange: topology.webhooks_exchange().into(),
            publish_timeout: config.publish_timeout,
            metrics,
            readiness,
        };
        let router = Router::new()
            .route("/webhooks/shopify", post(routes::receive))
            .route("/healthz", get(routes::healthz))
            .route("/readyz", get(routes::readyz))
            .layer(DefaultBodyLimit::max(config.max_body_bytes))
            // A client that takes longer than this to send its request is cut off with 408.
            .layer(TimeoutLayer::with_status_code(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                config.request_timeout,
            ))
            .with_state(state);
        Ok(Self {
            listener,
            router,
            max_connections: config.max_connections,
            request_timeout: config.request_timeout,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `cancel` fires, then finishes in-flight requests.
    pub async fn run(self, cancel: CancellationToken) -> std::io::Result<()> {
        server::serve(
            self.listener,
            self.router,
            self.max_connections,
            self.request_timeout,
            cancel,
        )
        .await
    }
}
