//! Wiring: builds the parts a command asks for from [`Settings`], binds their listeners, and runs
//! them until the shared [`CancellationToken`] fires.
//!
//! As in zero2prod's `Application`: [`App::start`] binds (port 0 in tests) and returns the bound
//! addresses; [`App::run_until_stopped`] waits for the end and for every task to finish.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::{net::TcpListener, sync::Mutex};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    broker::{Publisher, Topology},
    db,
    metrics::{self, Metrics},
    receiver::{Readiness, Receiver, ReceiverConfig},
    settings::Settings,
    sync::{self, Syncer},
    worker,
};

/// The longest shutdown waits for in-flight requests and messages.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Which parts run in this process.
#[derive(Debug, Clone, Default)]
pub struct Components {
    /// The HTTP receiver on `LISTEN_ADDR`.
    pub receiver: bool,
    /// Consumers of these work queue families, and the dead-letter consumer; `None`: no workers.
    pub workers: Option<Vec<String>>,
    /// The full-sync scheduler (`SYNC_INTERVAL`, `SYNC_STALE_AFTER`).
    pub scheduler: bool,
}

/// A running process: its addresses and its tasks.
pub struct App {
    /// The receiver's address, when it runs.
    pub http_addr: Option<SocketAddr>,
    pub metrics_addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    cancel: CancellationToken,
    /// Stops the publisher, after everything that publishes has finished.
    publisher_cancel: CancellationToken,
    tracker: TaskTracker,
    failure: Arc<Mutex<Option<anyhow::Error>>>,
}

impl App {
    /// Binds every listener and starts every part. Fails at once on a bad setting or a port in use.
    pub async fn start(
        settings: Settings,
        components: Components,
        cancel: CancellationToken,
    ) -> anyhow::Result<Self> {
        let metrics = Metrics::new();
        let topology = Topology::new(&settings);
        let tracker = TaskTracker::new();
        let failure = Arc::new(Mutex::new(None));
        let mut app = Self {
            http_addr: None,
            metrics_addr: settings.metrics_addr,
            metrics: metrics.clone(),
            cancel: cancel.clone(),
            publisher_cancel: CancellationToken::new(),
            tracker: tracker.clone(),
            failure,
        };

        let metrics_listener = TcpListener::bind(settings.metrics_addr)
            .await
            .with_context(|| format!("cannot listen on METRICS_ADDR {}", settings.metrics_addr))?;
        app.metrics_addr = metrics_listener.local_addr()?;
        app.spawn(
            "metrics",
            metrics::serve(metrics_listener, metrics.clone(), cancel.clone()),
        );

        let secret = match components.receiver {
            true => Some(settings.require_api_secret()?.clone()),
            false => None,
        };
        if let Some(families) = &components.workers {
            worker::validate_families(families)?;
        }
        // One confirmed publishing channel per process: the receiver's webhooks and the workers'
        // retries share it. The scheduler alone never publishes, so it does not connect.
        let publisher = (components.receiver || components.workers.is_some()).then(|| {
            Publisher::start(
                settings.amqp_url.clone(),
                "shopify-sync publisher".into(),
                topology.clone(),
                app.publisher_cancel.clone(),
            )
        });
        let pool = (components.workers.is_some() || components.scheduler)
            .then(|| db::pool(&settings.database, settings.database_pool_size));

        if let (true, Some(pool)) = (components.scheduler, pool.clone()) {
            let syncer = Syncer::new(&settings, pool, metrics.clone());
            let schedule = sync::scheduler::Schedule {
                interval: settings.sync_interval,
                stale_after: settings.sync_stale_after,
            };
            let cancel = cancel.clone();
            app.spawn("scheduler", async move {
                sync::scheduler::run(syncer, schedule, cancel).await;
                Ok::<(), anyhow::Error>(())
            });
        }

        if let (Some(families), Some(pool), Some(publisher)) =
            (components.workers.clone(), pool.clone(), publisher.clone())
        {
            let (settings, metrics, cancel) = (settings.clone(), metrics.clone(), cancel.clone());
            app.spawn("workers", async move {
                worker::run(&settings, families, pool, publisher, metrics, cancel).await;
                Ok::<(), anyhow::Error>(())
            });
        }

        if let (Some(secret), Some(publisher)) = (secret, publisher) {
            let readiness: Option<Readiness> = pool.map(|pool| -> Readiness {
                Arc::new(move || {
                    let pool = pool.clone();
                    Box::pin(async move { db::is_reachable(&pool).await })
                })
            });
            let receiver = Receiver::bind(
                settings.listen_addr,
                ReceiverConfig {
                    secret,
                    previous_secret: settings.api_secret_previous.clone(),
                    max_body_bytes: settings.max_body_bytes,
                    publish_timeout: settings.publish_timeout,
                    request_timeout: settings.request_timeout,
                    max_connections: settings.max_connections,
                },
                publisher,
                &topology,
                metrics.clone(),
                readiness,
            )
            .await
            .with_context(|| format!("cannot listen on LISTEN_ADDR {}", settings.listen_addr))?;
            app.http_addr = Some(receiver.local_addr());
            tracing::info!(addr = %receiver.local_addr(), "receiver listening");
            app.spawn("receiver", receiver.run(cancel.clone()));
        }
        tracing::info!(addr = %app.metrics_addr, "metrics listening");
        Ok(app)
    }

    /// Runs `task` on the tracker; its failure stops the whole process.
    fn spawn<E>(
        &self,
        name: &'static str,
        task: impl Future<Output = Result<(), E>> + Send + 'static,
    ) where
        E: Into<anyhow::Error> + Send + 'static,
    {
        let (cancel, failure) = (self.cancel.clone(), self.failure.clone());
        self.tracker.spawn(async move {
            if let Err(error) = task.await {
                let error = error.into().context(format!("{name} failed"));
                tracing::error!(error = format!("{error:#}"), "stopping");
                failure.lock().await.get_or_insert(error);
                cancel.cancel();
            }
        });
    }

    /// The token that stops this app.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Waits until the app is told to stop (or a part fails), then for every task to finish:
    /// the receiver answers its in-flight requests and consumers settle their in-flight
    /// messages, all still able to publish; then the publisher closes. After
    /// [`SHUTDOWN_TIMEOUT`] it stops waiting (unsettled messages go back to their queues).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.cancel.cancelled().await;
        self.tracker.close();
        if tokio::time::timeout(SHUTDOWN_TIMEOUT, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(timeout = ?SHUTDOWN_TIMEOUT, "in-flight work did not finish; stopping anyway");
        }
        self.publisher_cancel.cancel();
        match self.failure.lock().await.take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}
